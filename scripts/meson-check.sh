#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Build and install the plugin the way GStreamer projects are packaged (meson, DESTDIR), then load it from there.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$ROOT/target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
meson setup "$work/build" "$ROOT" --buildtype=release -Dcargo-target-dir="$target" >"$work/setup.log" || {
  cat "$work/setup.log"
  exit 1
}
meson compile -C "$work/build"
DESTDIR="$work/dest" meson install -C "$work/build"
plugins_dir=$(pkg-config --variable=pluginsdir gstreamer-1.0)
so="$work/dest$plugins_dir/libgstodm.so"
[ -f "$so" ] || { echo "meson install did not put libgstodm.so in $work/dest$plugins_dir" >&2; exit 1; }
out=$(GST_PLUGIN_PATH="$work/dest$plugins_dir" GST_REGISTRY="$work/registry.bin" gst-inspect-1.0 odm)
grep -q "odmclassify" <<<"$out" || { echo "$out" >&2; echo "installed plugin does not list odmclassify" >&2; exit 1; }
echo "meson: installed $(du -h "$so" | cut -f1) libgstodm.so into DESTDIR$plugins_dir; gst-inspect-1.0 odm lists odmclassify"

# The C example, built by meson, reads the results meta in a pad probe on the installed plugin.
probe="$work/build/odm_probe"
[ -x "$probe" ] || { echo "meson did not build examples/c/odm_probe.c (no C compiler?)" >&2; exit 1; }
out=$(GST_PLUGIN_PATH="$work/dest$plugins_dir" GST_REGISTRY="$work/registry.bin" "$probe" "$ROOT/models/colors/colors.onnx" 3)
[ "$(grep -c "label blue verdict known" <<<"$out")" = 3 ] && grep -q "3 ROIs classified in 3 frames" <<<"$out" || {
  echo "$out" >&2
  echo "the C example did not read 3 blue results from OdmResultsMeta" >&2
  exit 1
}
echo "meson: examples/c/odm_probe read OdmResultsMeta in a pad probe: $(head -1 <<<"$out")"
