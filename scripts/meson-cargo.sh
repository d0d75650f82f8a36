#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Called by meson.build: build the plugin with cargo and copy libgstodm.so to meson's output path.
# Usage: meson-cargo.sh CARGO SOURCE_DIR CARGO_TARGET_DIR BUILDTYPE OUTPUT
set -euo pipefail
cargo=$1 src=$2 target_dir=$3 buildtype=$4 output=$5
profile=release
flag=--release
case "$buildtype" in debug) profile=debug flag="" ;; esac
"$cargo" build $flag --manifest-path "$src/Cargo.toml" -p gst-plugin-odm --target-dir "$target_dir"
cp "$target_dir/$profile/libgstodm.so" "$output"
