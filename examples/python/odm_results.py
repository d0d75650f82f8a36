#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Embedding odm in a Python application (PyGObject): run a pipeline, read odmclassify's results.

With emit-messages=true, odmclassify posts an element message `odm-results` per frame: `results` is an array of
`odm` structures (roi-id, x, y, w, h, class-id, label, distance, confidence, verdict, thresholds, model). The frames
go to an appsink for the application. The same structures travel on the buffers in the `OdmResultsMeta` custom meta:
examples/python/odm_probe.py reads them in a pad probe. Needs python3-gi and gir1.2-gstreamer-1.0 (Debian),
installed by scripts/bootstrap.sh.

Usage: GST_PLUGIN_PATH=target/release python3 examples/python/odm_results.py [--model FILE] [--frames N] [SOURCE]
SOURCE is a gst-launch fragment ending in raw video (default: a test pattern, each frame one crop).
Prints one line per classified ROI: frame, label, distance, verdict. Exit code 1 when nothing was classified.
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/signs/signs.onnx")
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("source", nargs="?", default=None)
    args = ap.parse_args()

    Gst.init(None)
    source = args.source or (
        f"videotestsrc pattern=blue num-buffers={args.frames} ! video/x-raw,width=64,height=64"
    )
    mode = "" if args.source else "mode=frame"
    pipeline = Gst.parse_launch(
        f"{source} ! odmclassify {mode} emit-messages=true model={args.model} ! "
        "appsink name=sink emit-signals=true sync=false"
    )
    frames = []

    def on_sample(sink):
        # The frames themselves, for the application (drawing, recording...); results come from the bus below.
        frames.append(sink.emit("pull-sample").get_buffer().pts)
        return Gst.FlowReturn.OK

    pipeline.get_by_name("sink").connect("new-sample", on_sample)
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    classified = 0
    frame = 0
    while True:
        msg = bus.timed_pop_filtered(
            10 * Gst.SECOND, Gst.MessageType.ELEMENT | Gst.MessageType.EOS | Gst.MessageType.ERROR
        )
        if msg is None or msg.type == Gst.MessageType.EOS:
            break
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            print(f"error: {err.message} ({dbg})", file=sys.stderr)
            pipeline.set_state(Gst.State.NULL)
            return 2
        s = msg.get_structure()
        if s is None or s.get_name() != "odm-results":
            continue
        results = s.get_value("results")
        for r in results:
            print(f"frame {frame} label {r.get_string('label')} distance {r.get_double('distance')[1]:.3f} "
                  f"verdict {r.get_string('verdict')} category {r.get_string('category') or 'none'}")
            classified += 1
        frame += 1
    pipeline.set_state(Gst.State.NULL)
    print(f"{classified} ROIs classified in {len(frames)} frames")
    return 0 if classified else 1


if __name__ == "__main__":
    sys.exit(main())
