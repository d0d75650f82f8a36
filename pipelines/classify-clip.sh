#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Classify your own footage: any file decodebin reads, with recorded ROIs (JSON lines, as odmroireplay reads them)
# or, without them, odmproposals' sign candidates.
#
#   pipelines/classify-clip.sh CLIP [ROIS.jsonl]
#
#   gst-launch-1.0 filesrc location=CLIP ! decodebin ! videoconvert ! video/x-raw,format=NV12 !
#     odmroireplay location=ROIS.jsonl (or odmproposals) ! odmclassify model=$MODEL !
#     odmexport location=OUT/CLIP.results.jsonl ! odmoverlay ! videoconvert ! x264enc ! mp4mux !
#     filesink location=OUT/CLIP.annotated.mp4
# Environment: MODEL (default models/signs/signs.onnx beside these scripts), OUT (default out/ in the current folder).
# Runs from a checkout (builds the plugin and odm-train with cargo) or installed by meson (uses the installed ones):
# see pipelines/odm-env.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 CLIP [ROIS.jsonl]" >&2; exit 2; }
clip=$(realpath "$1")
rois=${2:+$(realpath "$2")}
MODEL=${MODEL:-$ROOT/models/signs/signs.onnx}
OUT=${OUT:-out}
[ -f "$clip" ] || { echo "$clip: no such file" >&2; exit 2; }
# shellcheck source=pipelines/odm-env.sh
. "$ROOT/pipelines/odm-env.sh"
odm_env build
mkdir -p "$OUT"
name=$(basename "${clip%.*}")
det=${rois:+odmroireplay location=$rois}
det=${det:-odmproposals}
# shellcheck disable=SC2086
gst-launch-1.0 -q filesrc location="$clip" ! decodebin ! videoconvert ! video/x-raw,format=NV12 ! $det ! \
  odmclassify model="$MODEL" ! odmexport location="$OUT/$name.results.jsonl" ! odmoverlay ! videoconvert ! \
  x264enc speed-preset=faster ! mp4mux ! filesink location="$OUT/$name.annotated.mp4"
"$ODM_TRAIN" summary "$OUT/$name.results.jsonl"
echo "wrote $OUT/$name.annotated.mp4 and $OUT/$name.results.jsonl"
