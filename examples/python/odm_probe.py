#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Reading odmclassify's results on the buffers in Python (PyGObject): a pad probe reads OdmResultsMeta.

Each buffer leaving odmclassify carries the custom meta `OdmResultsMeta`: its structure holds `results`, an array of
`odm` structures, one per ROI (roi-id, x, y, w, h, class-id, label, distance, confidence, verdict, category,
thresholds, model; docs/results.md). It survives copies, videoconvert and videoscale, so the probe can sit anywhere downstream.
Needs python3-gi and gir1.2-gstreamer-1.0 (Debian), installed by scripts/bootstrap.sh.

Usage: GST_PLUGIN_PATH=target/release python3 examples/python/odm_probe.py --model FILE [--frames N] [SOURCE]
SOURCE is a gst-launch fragment ending in raw video (default: a test pattern, each frame one crop).
Prints one line per ROI: frame, roi id, label, verdict, distance, confidence, category ("none" for an anomaly or a
bundle without categories). Exit code 1 when nothing was classified.
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
    source = args.source or f"videotestsrc pattern=blue num-buffers={args.frames} ! video/x-raw,width=64,height=64"
    mode = "" if args.source else "mode=frame"
    pipeline = Gst.parse_launch(f"{source} ! odmclassify name=classify {mode} model={args.model} ! fakesink")
    counts = {"frames": 0, "classified": 0}

    def on_buffer(pad, info):
        meta = info.get_buffer().get_custom_meta("OdmResultsMeta")
        if meta is not None:
            for r in meta.get_structure().get_value("results"):
                verdict = r.get_string("verdict")
                # A NULL string (no category) reads as None.
                category = r.get_string("category") or "none"
                print(f"frame {counts['frames']} roi {r.get_int('roi-id')[1]} label {r.get_string('label')} "
                      f"verdict {verdict} distance {r.get_double('distance')[1]:.3f} "
                      f"confidence {r.get_double('confidence')[1]:.3f} category {category}")
                counts["classified"] += verdict != "skipped"
        counts["frames"] += 1
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("classify").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, on_buffer)
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(30 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if msg is None or msg.type == Gst.MessageType.ERROR:
        print("error: " + (msg.parse_error()[0].message if msg else "no end of stream within 30 s"), file=sys.stderr)
        return 2
    print(f"{counts['classified']} ROIs classified in {counts['frames']} frames")
    return 0 if counts["classified"] else 1


if __name__ == "__main__":
    sys.exit(main())
