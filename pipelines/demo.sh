#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The README's main command (`make demo`): set up, build the plugin, and run real GStreamer pipelines through
# odmclassify.
#
# Until the synthetic dashcam clip, the trained sign model and the companion elements exist (issues 6 and 7), the
# demo runs the committed hand-built `colors` model (models/colors, written by `odm-train fixture`) on GStreamer test
# patterns: each frame is one crop (mode=frame), classified as a known colour, a novelty or an anomaly. Each
# pipeline is a plain gst-launch line, printed before it runs; the results come from odmclassify's bus messages.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

scripts/bootstrap.sh
cargo build --release -p gst-plugin-odm -p odm-trainer
export GST_PLUGIN_PATH="$TARGET/release"
export GST_REGISTRY="$TARGET/release/odm-registry.bin"
MODEL=${MODEL:-models/colors/colors.onnx}

gst-inspect-1.0 odm | sed -n '1,8p'
echo
printf '%-10s %-10s %-10s %-10s %s\n' pattern format label verdict distance
for spec in red:I420 green:NV12 blue:RGB white:BGRx black:I420 smpte:NV12; do
  pattern=${spec%%:*} format=${spec##*:}
  line="videotestsrc pattern=$pattern num-buffers=5 ! video/x-raw,format=$format,width=320,height=240 ! odmclassify mode=frame emit-messages=true model=$MODEL ! fakesink"
  [ "${VERBOSE:-0}" = 1 ] && echo "gst-launch-1.0 -m $line"
  # shellcheck disable=SC2086
  out=$(gst-launch-1.0 -m $line 2>&1) || { echo "$out" >&2; exit 1; }
  msg=$(grep -m1 'odm-results' <<<"$out")
  label=$(sed -n 's/.*label\\=\\(string\\)\([^\\]*\)\\,.*/\1/p' <<<"$msg")
  verdict=$(sed -n 's/.*verdict\\=\\(string\\)\([^\\]*\)\\,.*/\1/p' <<<"$msg")
  distance=$(sed -n 's/.*distance\\=\\(double\\)\([^\\]*\)\\,.*/\1/p' <<<"$msg")
  printf '%-10s %-10s %-10s %-10s %.3f\n' "$pattern" "$format" "$label" "$verdict" "$distance"
done
echo
echo "frames: 5 per pattern; each pipeline: gst-launch-1.0 -m videotestsrc ... ! odmclassify mode=frame model=$MODEL ! fakesink (VERBOSE=1 prints them)"
