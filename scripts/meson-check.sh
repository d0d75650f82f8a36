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
[ "$(grep -c "label blue verdict known .* category none$" <<<"$out")" = 3 ] && grep -q "3 ROIs classified in 3 frames" <<<"$out" || {
  echo "$out" >&2
  echo "the C example did not read 3 blue results from OdmResultsMeta" >&2
  exit 1
}
echo "meson: examples/c/odm_probe read OdmResultsMeta in a pad probe: $(head -1 <<<"$out")"

# odm-train, the pipelines scripts and the shipped model, installed beside the plugin: classify a clip with the
# installed copy of pipelines/classify-clip.sh (no checkout above it, so nothing is built; odm-env.sh uses the
# installed plugin and odm-train).
prefix=$(meson introspect --buildoptions "$work/build" | python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
bin="$work/dest$prefix/bin/odm-train"
share="$work/dest$prefix/share/odm"
[ -x "$bin" ] || { echo "meson install did not put odm-train in $work/dest$prefix/bin" >&2; exit 1; }
[ -x "$share/pipelines/classify-clip.sh" ] && [ -f "$share/models/signs/signs.odm.json" ] || {
  echo "meson install did not put the pipelines scripts and the shipped model in $share" >&2
  exit 1
}
gst-launch-1.0 -q videotestsrc num-buffers=15 ! video/x-raw,width=320,height=240,framerate=15/1 ! x264enc ! \
  mp4mux ! filesink location="$work/clip.mp4"
out=$(cd "$work" && PATH="$work/dest$prefix/bin:$PATH" GST_PLUGIN_PATH="$work/dest$plugins_dir" \
  GST_REGISTRY="$work/registry.bin" CARGO_TARGET_DIR=/nonexistent "$share/pipelines/classify-clip.sh" clip.mp4 2>&1) || {
  echo "$out" >&2
  echo "the installed pipelines/classify-clip.sh failed" >&2
  exit 1
}
[ -s "$work/out/clip.results.jsonl" ] && [ "$(wc -l <"$work/out/clip.results.jsonl")" = 15 ] || {
  echo "$out" >&2
  echo "the installed pipelines/classify-clip.sh wrote no 15-line results file" >&2
  exit 1
}
echo "meson: installed odm-train ($(du -h "$bin" | cut -f1)) and share/odm; the installed classify-clip.sh classified a clip"
