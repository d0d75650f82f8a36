# SPDX-License-Identifier: MIT OR Apache-2.0
"""The fleet report: every clip's status and tries, verdict rates by ground-truth kind over the fleet, the merged
drift histogram, and against a baseline bundle the clips and classes whose verdicts or labels changed, with the
worst examples (largest distance shift first)."""
from __future__ import annotations

from pathlib import Path

from . import results

WORST = 10


def build(clips, new, base, bundle: Path, baseline: Path | None, compare_with) -> dict:
    r = {
        "bundle": str(bundle),
        "baseline": str(baseline) if baseline else None,
        "clips": [
            {"name": o.name, "status": o.status, "tries": o.tries, "error": o.error, "folder": str(o.folder),
             "rois": o.summary.get("rois", 0)}
            for o in new
        ],
        "fleet": results.merge([o.summary for o in new if o.status != "failed"]),
    }
    if base is not None:
        by_name = {o.name: o for o in base}
        changed, classes, worst = [], {}, []
        for o in new:
            b = by_name.get(o.name)
            if o.status == "failed" or b is None or b.status == "failed":
                continue
            diff = results.changes(
                results.read(b.folder / "results.jsonl"), results.read(o.folder / "results.jsonl")
            )
            odm_compare = compare_with(b.folder / "results.jsonl", o.folder / "results.jsonl")
            if diff or odm_compare:
                changed.append({"name": o.name, "changed_rois": len(diff), "odm_train_compare_differences": odm_compare})
            for d in diff:
                for label in {d["before"]["label"], d["after"]["label"]} - {None}:
                    classes[label] = classes.get(label, 0) + 1
                worst.append({"clip": o.name, **d})
        worst.sort(key=lambda d: -d["shift"])
        r["against_baseline"] = {
            "baseline_fleet": results.merge([o.summary for o in base if o.status != "failed"]),
            "clips_changed": changed,
            "classes_changed": dict(sorted(classes.items(), key=lambda kv: -kv[1])),
            "worst": worst[:WORST],
        }
    return r


def _rates(s: dict) -> list[str]:
    rows = ["| ground truth | ROIs | " + " | ".join(results.VERDICTS) + " |", "|---|---:|" + "---:|" * len(results.VERDICTS)]
    table = s["by_kind"] or {"all": s["verdicts"]}
    for kind, row in sorted(table.items()):
        n = sum(row.values())
        cells = [f"{100.0 * row.get(v, 0) / max(n, 1):.1f}%" for v in results.VERDICTS]
        rows.append(f"| {kind} | {n} | " + " | ".join(cells) + " |")
    return rows


def markdown(r: dict) -> str:
    f = r["fleet"]
    lines = [
        f"# odm fleet report", "",
        f"bundle `{r['bundle']}`" + (f", baseline `{r['baseline']}`" if r.get("baseline") else "")
        + f"; {len(r['clips'])} clips, {f['frames']} frames, {f['rois']} ROIs; {r.get('workers')} workers x "
        f"{r.get('threads')} threads, {r.get('seconds')} s.", "",
        "## Clips", "", "| clip | status | tries | ROIs | error |", "|---|---|---:|---:|---|",
    ]
    for c in r["clips"]:
        lines.append(f"| {c['name']} | {c['status']} | {c['tries']} | {c['rois']} | {c['error']} |")
    lines += ["", "## Verdict rates", ""] + _rates(f)
    if f["known_total"]:
        lines += ["", f"Known signs with the right label: {f['known_correct']} of {f['known_total']} "
                  f"({100.0 * f['known_correct'] / f['known_total']:.1f}%)."]
    lines += ["", "## Distances (drift histogram)", "",
              "ROIs by distance / anomaly threshold, bins of 0.1 over [0, 2), the last beyond:", "",
              "`" + " ".join(str(n) for n in f["hist"]) + "`"]
    b = r.get("against_baseline")
    if b is not None:
        lines += ["", "## Against the baseline", "", "Baseline verdict rates:", ""] + _rates(b["baseline_fleet"])
        lines += ["", f"Clips whose verdicts or labels changed: {len(b['clips_changed'])} of {len(r['clips'])}.", ""]
        if b["clips_changed"]:
            lines += ["| clip | ROIs changed | odm-train compare differences |", "|---|---:|---:|"]
            lines += [f"| {c['name']} | {c['changed_rois']} | {c['odm_train_compare_differences']} |" for c in b["clips_changed"]]
        if b["classes_changed"]:
            lines += ["", "Classes involved: " + ", ".join(f"{k} ({v})" for k, v in b["classes_changed"].items())]
        if b["worst"]:
            lines += ["", "Largest changes:", "", "| clip | frame | id | before | after |", "|---|---:|---:|---|---|"]
            for w in b["worst"]:
                fmt = lambda x: f"{x['label']} {x['verdict']} {x['distance'] if x['distance'] is None else round(x['distance'], 3)}"
                lines.append(f"| {w['clip']} | {w['frame']} | {w['id']} | {fmt(w['before'])} | {fmt(w['after'])} |")
    return "\n".join(lines) + "\n"
