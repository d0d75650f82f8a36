# SPDX-License-Identifier: MIT OR Apache-2.0
"""Reading odmexport JSON lines (docs/results.md) and what the fleet report needs from them.

The per-clip tables of one file are odm-train's (`odm-train summary`, `compare`, `report`); this module only does
what a fleet needs on top: counts that add up across clips, and the differences between two runs of the same clips.
"""
from __future__ import annotations

import json
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


def iou(a: dict, b: dict) -> float:
    """Intersection over union of two boxes `{x, y, w, h}`."""
    ix = max(0.0, min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"]))
    iy = max(0.0, min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"]))
    inter = ix * iy
    union = a["w"] * a["h"] + b["w"] * b["h"] - inter
    return inter / union if union > 0 else 0.0


#: A result box shows a ground-truth box at this IoU or more (odm-train's DETECTION_IOU).
DETECTION_IOU = 0.5


def summarise(frames: list[dict], truth: list[dict] | None, by_boxes: bool = False) -> dict:
    """Verdict counts, by ground-truth kind when the truth is given: joined by frame and ROI id (replayed boxes), or
    with `by_boxes` by overlap (a live detector such as odmproposals; a box on no truth box is `no-object`), as
    `odm-train summary --match ids|boxes` does."""
    by_id, by_frame = {}, {}
    for t in truth or []:
        by_frame[t["frame"]] = t.get("rois", [])
        for r in t.get("rois", []):
            by_id[(t["frame"], r["id"])] = r
    s = {"frames": len(frames), "rois": 0, "verdicts": {}, "by_kind": {}, "known_correct": 0, "known_total": 0}
    for f in frames:
        for r in f.get("rois", []):
            s["rois"] += 1
            v = r.get("verdict") or "none"
            s["verdicts"][v] = s["verdicts"].get(v, 0) + 1
            if truth is None:
                continue
            if by_boxes:
                best = max(by_frame.get(f["frame"], []), key=lambda t: iou(r, t), default=None)
                t = best if best is not None and iou(r, best) >= DETECTION_IOU else {"kind": "no-object"}
            else:
                t = by_id.get((f["frame"], r["id"]))
                if t is None:
                    continue
            kind, label = t.get("kind"), t.get("label")
            row = s["by_kind"].setdefault(kind or "?", {})
            row[v] = row.get(v, 0) + 1
            if kind == "known":
                s["known_total"] += 1
                s["known_correct"] += int(v == "known" and r.get("label") == label)
    return s


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
