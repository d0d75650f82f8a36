#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Regression on a recorded clip: run it through odmclassify with recorded ROIs and compare the results with expected
# ones. Exit code 0 when every frame's ROIs have the expected labels and verdicts and distances within TOLERANCE
# (default 1e-3); 1 and the differences otherwise; 2 when an input or a tool is missing (checked before the run).
#
#   pipelines/regress.sh CLIP ROIS.jsonl EXPECTED.jsonl
#
#   gst-launch-1.0 filesrc location=CLIP ! decodebin ! videoconvert ! video/x-raw,format=NV12 !
#     odmroireplay location=ROIS.jsonl ! odmclassify model=$MODEL ! odmexport location=ACTUAL.jsonl ! fakesink
# Environment: MODEL (default models/signs/signs.onnx beside these scripts), TOLERANCE, ACTUAL (where to keep the
# run's results; without it they go to a temporary file, removed at the end), GST_PLUGIN_PATH and ODM_TRAIN (default:
# the checkout's release build, which this does not build, or the installed plugin and odm-train: see
# pipelines/odm-env.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=pipelines/odm-env.sh
. "$ROOT/pipelines/odm-env.sh"
[ $# -eq 3 ] || { echo "usage: $0 CLIP ROIS.jsonl EXPECTED.jsonl" >&2; exit 2; }
MODEL=${MODEL:-$ROOT/models/signs/signs.onnx}
odm_input "$1" clip
odm_input "$2" "ROI file"
odm_input "$3" "expected results"
odm_input "$MODEL" model
odm_tools
clip=$(realpath -- "$1"); rois=$(realpath -- "$2"); expected=$(realpath -- "$3")
odm_env nobuild
if [ -z "${ACTUAL:-}" ]; then
  ACTUAL=$(mktemp --suffix=.jsonl)
  trap 'rm -f -- "$ACTUAL"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
fi
gst-launch-1.0 -q filesrc location="$clip" ! decodebin ! videoconvert ! video/x-raw,format=NV12 ! \
  odmroireplay location="$rois" ! odmclassify model="$MODEL" ! odmexport location="$ACTUAL" ! fakesink
"$ODM_TRAIN" compare "$expected" "$ACTUAL" --tolerance "${TOLERANCE:-1e-3}"
