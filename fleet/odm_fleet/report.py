# SPDX-License-Identifier: MIT OR Apache-2.0
"""The fleet report: every clip's status, tries and Ray node, the work each node did, verdict rates by ground-truth
kind over the fleet, the merged drift histogram, and against a baseline bundle the clips and classes whose verdicts or labels changed, with the
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
             "rois": o.summary.get("rois", 0), "node": o.node, "ip": o.ip, "seconds": o.seconds,
             "tried_on": o.tried_on}
            for o in new
        ],
        "nodes": nodes(new),
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


def nodes(outcomes) -> list[dict]:
    """This run's work by Ray node (clips skipped as done earlier are left out): clips done there, attempts started
    there (a clip whose worker or node died counts an attempt on that node and a clip done elsewhere), and the wall
    seconds of its clips done."""
    by = {}
    for o in outcomes:
        if o.status == "skipped":
            continue
        for n in o.tried_on:
            by.setdefault(n, {"node": n, "ip": "", "clips": 0, "attempts": 0, "seconds": 0.0})["attempts"] += 1
        if o.status == "done":
            e = by.setdefault(o.node, {"node": o.node, "ip": "", "clips": 0, "attempts": 0, "seconds": 0.0})
            e["ip"] = o.ip
            e["clips"] += 1
            e["seconds"] = round(e["seconds"] + (o.seconds or 0.0), 3)
    return sorted(by.values(), key=lambda e: (-e["clips"], e["node"]))


def _short(node: str) -> str:
    return node[:8] if node else "-"


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
    cluster = r.get("cluster") or []
    if r.get("address", "local") == "local":
        where = f"{r.get('workers')} workers x {r.get('threads')} threads"
    else:
        where = (f"Ray cluster {r.get('address')}: {len(cluster)} nodes, {sum(n['cpus'] for n in cluster):g} CPUs at "
                 f"the start, {r.get('threads')} thread(s) a clip")
    lines = [
        f"# odm fleet report", "",
        f"bundle `{r['bundle']}`" + (f", baseline `{r['baseline']}`" if r.get("baseline") else "")
        + f"; {len(r['clips'])} clips, {f['frames']} frames, {f['rois']} ROIs; {where}, {r.get('seconds')} s.", "",
        "## Clips", "", "| clip | status | tries | ROIs | node | attempts on | error |", "|---|---|---:|---:|---|---|---|",
    ]
    for c in r["clips"]:
        tried = " ".join(_short(n) for n in c.get("tried_on", []))
        lines.append(f"| {c['name']} | {c['status']} | {c['tries']} | {c['rois']} | {_short(c.get('node', ''))} | "
                     f"{tried} | {c['error']} |")
    if r.get("nodes"):
        lines += ["", "## Nodes", "", "This run's clips by the Ray node that did them (attempts include those whose "
                  "worker or node died):", "", "| node | IP | clips done | attempts | seconds in clips done |",
                  "|---|---|---:|---:|---:|"]
        lines += [f"| {_short(n['node'])} | {n['ip'] or '-'} | {n['clips']} | {n['attempts']} | {n['seconds']:.1f} |"
                  for n in r["nodes"]]
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
