#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The README's main command (`make demo`): set up, build, render the synthetic dashcam drive, classify every sign
# region with the shipped model, and write what happened.
#
#   gst-launch-1.0 filesrc location=out/demo/drive.mp4 ! decodebin ! videoconvert ! video/x-raw,format=NV12 !
#     odmroireplay location=out/demo/drive.rois.jsonl !          # regions (DETECTOR=detect: odmdetect with the
#                                                                #  shipped detector ! odmtrack; proposals: odmproposals ! odmtrack)
#     odmclassify model=models/signs/signs.onnx !                # class, distance, verdict per region
#     odmexport location=out/demo/results.jsonl !                # one JSON line per frame
#     odmoverlay ! videoconvert ! x264enc ! mp4mux ! filesink location=out/demo/annotated.mp4
#
# Then: a summary table (frames, ROIs, verdicts by ground-truth kind, fps) and annotated PNG frames in out/demo/.
# Environment: MODEL (default models/signs/signs.onnx), DETECTOR (replay | detect | proposals), OUT (default out/demo).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
MODEL=${MODEL:-models/signs/signs.onnx}
DETECTOR=${DETECTOR:-replay}
OUT=${OUT:-out/demo}

scripts/bootstrap.sh
cargo build --release -p gst-plugin-odm -p odm-trainer
export GST_PLUGIN_PATH="$TARGET/release"
export GST_REGISTRY="$TARGET/release/odm-registry.bin"
T="$TARGET/release/odm-train"
mkdir -p "$OUT"

if [ ! -f "$OUT/drive.mp4" ] || [ ! -f "$OUT/drive.rois.jsonl" ]; then
  "$T" clip --out "$OUT" --bundle "${MODEL%.onnx}.odm.json"
fi
case "$DETECTOR" in
  replay) det="odmroireplay location=$OUT/drive.rois.jsonl" ;;
  detect) det="odmdetect model=models/detector/detector.onnx score-threshold=0.4 ! odmtrack" ;;
  proposals) det="odmproposals ! odmtrack" ;;
  *) echo "DETECTOR must be replay, detect or proposals" >&2; exit 2 ;;
esac
line="filesrc location=$OUT/drive.mp4 ! decodebin ! videoconvert ! video/x-raw,format=NV12 ! $det ! \
odmclassify model=$MODEL ! odmexport location=$OUT/results.jsonl ! odmoverlay ! videoconvert ! \
x264enc speed-preset=faster bitrate=4000 ! mp4mux ! filesink location=$OUT/annotated.mp4"
echo "gst-launch-1.0 $line"
start=$(date +%s.%N)
# shellcheck disable=SC2086
gst-launch-1.0 -q $line
end=$(date +%s.%N)
frames=$(wc -l < "$OUT/results.jsonl")

# A few annotated frames as PNG.
rm -f "$OUT"/frame-*.png
gst-launch-1.0 -q filesrc location="$OUT/annotated.mp4" ! decodebin ! videoconvert ! videorate ! \
  video/x-raw,framerate=1/3 ! pngenc ! multifilesink location="$OUT/frame-%02d.png"

echo
# Replayed boxes join the truth by id; proposals by overlap (and their recall by sign size is what to read).
truth=(--truth "$OUT/drive.rois.jsonl"); [ "$DETECTOR" != replay ] && truth+=(--match boxes)
"$T" summary "$OUT/results.jsonl" "${truth[@]}"
awk -v f="$frames" -v s="$start" -v e="$end" \
  'BEGIN { printf "%d frames in %.1f s: %.1f frames/s (decode, %s, classify, export, overlay, encode)\n", f, e - s, f / (e - s), "'"$DETECTOR"'" }'
echo "wrote $OUT/annotated.mp4, $OUT/results.jsonl, $(ls "$OUT"/frame-*.png | wc -l) PNG frames in $OUT/"
