# SPDX-License-Identifier: MIT OR Apache-2.0
# The two commands of the README. Each sets the machine up by itself (scripts/bootstrap.sh).
.PHONY: demo test bootstrap build meson-check clean

demo:
	pipelines/demo.sh

test:
	scripts/test.sh

bootstrap:
	scripts/bootstrap.sh

build: bootstrap
	cargo build --release -p gst-plugin-odm -p odm-trainer

meson-check: bootstrap
	scripts/meson-check.sh

clean:
	cargo clean
	rm -rf build
