#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Called by meson.build: build a package with cargo and copy its artifact to meson's output path.
# Usage: meson-cargo.sh CARGO SOURCE_DIR CARGO_TARGET_DIR BUILDTYPE PACKAGE ARTIFACT OUTPUT
#   (the plugin: PACKAGE gst-plugin-odm, ARTIFACT libgstodm.so; the trainer: odm-trainer, odm-train)
set -euo pipefail
cargo=$1 src=$2 target_dir=$3 buildtype=$4 package=$5 artifact=$6 output=$(realpath -m "$7")
profile=release
flag=--release
case "$buildtype" in debug) profile=debug flag="" ;; esac
# The trainer links the libtorch that scripts/bootstrap.sh unpacks (.cargo/config.toml points LIBTORCH there): cargo
# runs in the source folder so that config applies.
cd "$src"
"$cargo" build $flag --manifest-path "$src/Cargo.toml" -p "$package" --target-dir "$target_dir"
cp "$target_dir/$profile/$artifact" "$output"
