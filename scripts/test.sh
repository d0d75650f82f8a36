#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The README's test command (`make test`), and what CI runs (.ci/run): set up, check formatting and lints, run every
# test of the workspace (unit, GStreamer pipelines, ONNX Runtime sessions, end-to-end through gst-launch), then build
# and install the plugin through meson into a scratch DESTDIR and inspect it. Ends with one "N passed, N failed" line.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TERM_COLOR=never

step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

step bootstrap
scripts/bootstrap.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo build"
# The end-to-end tests load the built libgstodm.so (a cdylib, which `cargo test` alone does not link).
cargo build --workspace

step "cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

step "meson build and install"
meson_status=0
scripts/meson-check.sh || meson_status=$?

passed=$(awk '/^test result:/ {s += $4} END {print s + 0}' "$log")
failed=$(awk '/^test result:/ {s += $6} END {print s + 0}' "$log")
[ "$meson_status" -eq 0 ] && passed=$((passed + 1)) || failed=$((failed + 1))
echo
echo "odm: $passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$meson_status" -eq 0 ]
