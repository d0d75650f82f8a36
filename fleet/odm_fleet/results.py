# SPDX-License-Identifier: MIT OR Apache-2.0
"""Reading odmexport JSON lines (docs/results.md) and what the fleet report needs from them.

The per-clip counts are odm-train's (`odm-train summary --json`; `compare` and `report` for the rest); this module
only does what a fleet needs on top: counts that add up across clips, the drift histogram, and the ROIs whose verdict
or label differ between two runs of the same clip.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

VERDICTS = ["known", "novelty", "anomaly", "skipped"]
#: Bins of the drift histogram: distance / anomaly threshold over [0, 2), a last bin beyond (as odmclassify's odm-drift).
BINS = 21


def read(path: Path) -> list[dict]:
    """The frames of a JSON-lines file; errors name the file and the line."""
    frames = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                frames.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: line {n}: {e}") from None
    return frames


def summarise(results_file: Path, truth: Path | None, by_boxes: bool, odm_train: str) -> dict:
    """Verdict counts of one clip, by ground-truth kind when the truth is given: `odm-train summary --json` (joined by
    ROI id for replayed boxes, by overlap for a live detector such as odmproposals)."""
    args = [odm_train, "summary", str(results_file), "--json", "--match", "boxes" if by_boxes else "ids"]
    if truth is not None:
        args += ["--truth", str(truth)]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"odm-train summary {results_file}: {p.stderr.strip() or p.stdout.strip()}")
    return json.loads(p.stdout)


def drift_histogram(frames: list[dict]) -> list[int]:
    """Distances of classified ROIs relative to their class's anomaly threshold, in BINS bins over [0, 2) and one
    beyond: comparable across clips and models."""
    h = [0] * BINS
    for f in frames:
        for r in f.get("rois", []):
            d, a = r.get("distance"), r.get("anomaly_threshold")
            if d is None or not a:
                continue
            h[min(int(d / a * (BINS - 1) / 2), BINS - 1)] += 1
    return h


def merge(summaries: list[dict]) -> dict:
    """Add up per-clip summaries."""
    m = {"frames": 0, "rois": 0, "verdicts": {}, "by_kind": {}, "known_correct": 0, "known_total": 0, "hist": [0] * BINS}
    for s in summaries:
        for k in ["frames", "rois", "known_correct", "known_total"]:
            m[k] += s.get(k, 0)
        for v, n in s.get("verdicts", {}).items():
            m["verdicts"][v] = m["verdicts"].get(v, 0) + n
        for kind, row in s.get("by_kind", {}).items():
            dst = m["by_kind"].setdefault(kind, {})
            for v, n in row.items():
                dst[v] = dst.get(v, 0) + n
        m["hist"] = [a + b for a, b in zip(m["hist"], s.get("hist", [0] * BINS))]
    return m


def changes(baseline: list[dict], new: list[dict]) -> list[dict]:
    """The ROIs whose verdict or label differ between two runs of the same clip (joined by frame and ROI id)."""
    old = {(f["frame"], r["id"]): r for f in baseline for r in f.get("rois", [])}
    out = []
    for f in new:
        for r in f.get("rois", []):
            o = old.get((f["frame"], r["id"]))
            if o is None:
                continue
            if o.get("verdict") != r.get("verdict") or o.get("label") != r.get("label"):
                d0, d1 = o.get("distance"), r.get("distance")
                out.append({
                    "frame": f["frame"], "id": r["id"], "x": r.get("x"), "y": r.get("y"), "w": r.get("w"), "h": r.get("h"),
                    "before": {"label": o.get("label"), "verdict": o.get("verdict"), "distance": d0},
                    "after": {"label": r.get("label"), "verdict": r.get("verdict"), "distance": d1},
                    "shift": abs((d1 or 0.0) - (d0 or 0.0)),
                })
    return out
