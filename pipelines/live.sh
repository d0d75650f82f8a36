#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Live: a V4L2 camera (or an RTSP dashcam with SOURCE=rtsp://...) through odmproposals, odmtrack (stable ids for the
# proposals' boxes) and odmclassify, drawn on screen, results as JSON lines. Not run in CI (needs a camera and a
# display).
#
#   gst-launch-1.0 v4l2src device=/dev/video0 ! videoconvert ! video/x-raw,format=NV12 ! odmproposals ! odmtrack !
#     odmclassify model=models/signs/signs.onnx stats-interval=300 ! odmexport location=out/live.jsonl !
#     odmoverlay ! videoconvert ! autovideosink
#   (RTSP: rtspsrc location=URL latency=200 ! decodebin ! videoconvert ! ...)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL=${MODEL:-$ROOT/models/signs/signs.onnx}
SOURCE=${SOURCE:-/dev/video0}
# shellcheck source=pipelines/odm-env.sh
. "$ROOT/pipelines/odm-env.sh"
odm_env build
mkdir -p out
case "$SOURCE" in
  rtsp://*) src="rtspsrc location=$SOURCE latency=200 ! decodebin" ;;
  *) src="v4l2src device=$SOURCE" ;;
esac
# shellcheck disable=SC2086
exec gst-launch-1.0 $src ! videoconvert ! video/x-raw,format=NV12 ! odmproposals ! odmtrack ! \
  odmclassify model="$MODEL" stats-interval=300 ! odmexport location=out/live.jsonl ! odmoverlay ! videoconvert ! \
  autovideosink
