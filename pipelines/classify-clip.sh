#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Classify your own footage: any file decodebin reads, with recorded ROIs (JSON lines, as odmroireplay reads them)
# or, without them, the shipped sign detector (odmdetect, models/detector) or odmproposals' sign candidates, each
# followed by odmtrack.
#
#   pipelines/classify-clip.sh CLIP [ROIS.jsonl]
#
#   gst-launch-1.0 filesrc location=CLIP ! decodebin ! videoconvert ! video/x-raw,format=NV12 !
#     odmroireplay location=ROIS.jsonl (or odmdetect ... ! odmtrack, or odmproposals ! odmtrack) ! odmclassify model=$MODEL !
#     odmexport location=OUT/CLIP.results.jsonl ! odmoverlay ! videoconvert ! x264enc ! mp4mux !
#     filesink location=OUT/CLIP.annotated.mp4
# Environment: MODEL (default models/signs/signs.onnx beside these scripts), OUT (default out/ in the current folder),
# DETECTOR without a ROI file: detect (default: models/detector/detector.onnx at score-threshold 0.4, the threshold
# its REPORT measured) or proposals (odmproposals: cheaper, finds far fewer real signs); DETECTOR_MODEL another
# detector for odmdetect.
# Runs from any folder, from a checkout (builds the plugin and odm-train with cargo in the checkout) or installed by
# meson (uses the installed ones): see pipelines/odm-env.sh.
# Every input is checked before anything is written; the run writes to temporary files in OUT, moved into place only
# when it succeeded, so a failed run leaves the clip's earlier results and video as they were, and no empty files.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=pipelines/odm-env.sh
. "$ROOT/pipelines/odm-env.sh"
{ [ $# -ge 1 ] && [ $# -le 2 ]; } || { echo "usage: $0 CLIP [ROIS.jsonl]" >&2; exit 2; }
MODEL=${MODEL:-$ROOT/models/signs/signs.onnx}
OUT=${OUT:-out}
DETECTOR=${DETECTOR:-detect}
DETECTOR_MODEL=${DETECTOR_MODEL:-$ROOT/models/detector/detector.onnx}
case "$DETECTOR" in
  detect | proposals) ;;
  *) echo "odm: DETECTOR must be detect or proposals, not $DETECTOR" >&2; exit 2 ;;
esac
odm_input "$1" clip
clip=$(realpath -- "$1")
rois=
if [ $# -eq 2 ]; then
  odm_input "$2" "ROI file"
  rois=$(realpath -- "$2")
fi
odm_input "$MODEL" model
if [ -z "$rois" ] && [ "$DETECTOR" = detect ]; then odm_input "$DETECTOR_MODEL" "detector model"; fi
odm_tools
mkdir -p -- "$OUT" || { echo "odm: cannot create the output folder $OUT" >&2; exit 2; }
OUT=$(cd -- "$OUT" && pwd)
[ -w "$OUT" ] || { echo "odm: cannot write into the output folder $OUT" >&2; exit 2; }
odm_env build

base=$(basename -- "$clip")
name=${base%.*}
results=$OUT/$name.results.jsonl video=$OUT/$name.annotated.mp4
tmp_results=$OUT/.$name.results.$$.jsonl tmp_video=$OUT/.$name.annotated.$$.mp4
trap 'rm -f -- "$tmp_results" "$tmp_video"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [ -n "$rois" ]; then
  det=(odmroireplay "location=$rois")
elif [ "$DETECTOR" = detect ]; then
  # A detector's boxes get fresh ids every frame; odmtrack gives them ids that follow each sign.
  det=(odmdetect "model=$DETECTOR_MODEL" score-threshold=0.4 ! odmtrack)
else
  # Proposals are numbered per frame; odmtrack (where the plugin has it) gives them ids that follow each sign.
  det=(odmproposals)
  if gst-inspect-1.0 odmtrack >/dev/null 2>&1; then det+=(! odmtrack); fi
fi
if ! gst-launch-1.0 -q filesrc location="$clip" ! decodebin ! videoconvert ! video/x-raw,format=NV12 ! "${det[@]}" ! \
  odmclassify model="$MODEL" ! odmexport location="$tmp_results" ! odmoverlay ! videoconvert ! \
  x264enc speed-preset=faster ! mp4mux ! filesink location="$tmp_video"; then
  echo "odm: the pipeline failed on $clip; nothing was written (earlier results in $OUT are kept)" >&2
  exit 1
fi
mv -f -- "$tmp_results" "$results"
mv -f -- "$tmp_video" "$video"
"$ODM_TRAIN" summary "$results"
echo "wrote $video and $results"
