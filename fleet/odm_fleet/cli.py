# SPDX-License-Identifier: MIT OR Apache-2.0
"""odm-fleet: fleet regression of odm models on recorded clips, on Ray.

    odm-fleet run MANIFEST --bundle NEW.odm.json [--baseline OLD.odm.json] --out DIR [--address local|auto|HOST:PORT]
        [--workers N] [--threads T] [--max-retries R] [--set PROPERTY=VALUE ...]

MANIFEST: JSON lines, one clip each: {"clip": FILE, "rois": FILE | "proposals", "truth": FILE?, "name": NAME?}.
The plugin comes from GStreamer's plugin path (GST_PLUGIN_PATH is passed to the workers); odm-train (for `compare`)
from ODM_TRAIN or PATH. Exit code 0 when every clip finished, 1 when some failed (listed in the report), 2 on bad
arguments.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .run import fleet


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="odm-fleet", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="every clip of a manifest through the odm pipeline, one Ray task per clip")
    r.add_argument("manifest", type=Path)
    r.add_argument("--bundle", type=Path, required=True)
    r.add_argument("--baseline", type=Path)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--address", default="local",
                   help="local (start a Ray instance here, even if a cluster runs on this machine), auto (the cluster "
                        "`ray start` made on this machine, or RAY_ADDRESS), or HOST:PORT of a cluster's head node")
    r.add_argument("--workers", type=int, default=2,
                   help="with --address local: clips at a time (on a cluster, each node's --num-cpus decides)")
    r.add_argument("--threads", type=int, default=1, help="odmclassify threads, and Ray CPUs, per clip")
    r.add_argument("--max-retries", type=int, default=3, help="attempts after a worker dies")
    r.add_argument("--set", action="append", default=[], metavar="PROPERTY=VALUE",
                   help="an odmclassify property for every clip (part of the key that decides what is done)")
    a = ap.parse_args(argv)
    element = {}
    for s in a.set:
        k, sep, v = s.partition("=")
        if not sep or not k:
            ap.error(f"--set {s!r}: PROPERTY=VALUE")
        element[k] = v
    for f in [a.manifest, a.bundle] + ([a.baseline] if a.baseline else []):
        if not f.is_file():
            ap.error(f"{f}: no such file")
    if a.workers < 1 or a.threads < 1:
        ap.error("--workers and --threads must be at least 1")
    try:
        rep = fleet(a.manifest, a.bundle, a.out, a.baseline, a.address, a.workers, a.threads, element, a.max_retries)
    except ValueError as e:
        print(f"odm-fleet: {e}", file=sys.stderr)
        return 2
    print((a.out / "report.md").read_text())
    return 1 if any(c["status"] == "failed" for c in rep["clips"]) else 0


if __name__ == "__main__":
    sys.exit(main())
