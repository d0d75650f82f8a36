# SPDX-License-Identifier: MIT OR Apache-2.0
"""One clip through the odm pipeline: the work of one Ray task, written so that nothing is ever half done.

The pipeline is pipelines/classify-clip.sh's without the video output:

    filesrc ! decodebin ! videoconvert ! video/x-raw,format=NV12
      ! (odmroireplay location=ROIS | odmproposals [! odmtrack, where the plugin has it])
      ! odmclassify model=MODEL bundle=BUNDLE threads=N ! odmexport location=OUT/.results.PID.tmp ! fakesink

Results go to a temporary name and are renamed to results.jsonl when complete; done.json, written the same way last,
marks the clip done for its key (clip, bundle and settings) and names the Ray node that did it. Every attempt appends a
line to `tries` (a JSON object: the worker's pid, its Ray node id and IP, the start time), so the report can say how
many attempts a clip took and where, including attempts whose worker process or whole node died.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from . import results


class ClipFailed(Exception):
    """The clip cannot be classified (it does not decode, a file is missing...): not worth a retry."""


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def pipeline(job: dict, out: Path) -> list[str]:
    """The gst-launch-1.0 arguments for a job."""
    if job["rois"] is not None:
        detector = ["odmroireplay", f"location={job['rois']}"]
    else:
        # Proposals are numbered per frame; odmtrack gives them ids that follow each sign (as classify-clip.sh does).
        detector = ["odmproposals"] + (["!", "odmtrack"] if job.get("tracker") else [])
    classify = ["odmclassify", f"model={job['model']}", f"bundle={job['bundle']}", f"threads={job['threads']}"]
    classify += [f"{k}={v}" for k, v in sorted(job.get("element", {}).items())]
    return (
        ["gst-launch-1.0", "-q", "filesrc", f"location={job['clip']}", "!", "decodebin", "!", "videoconvert", "!",
         "video/x-raw,format=NV12", "!"]
        + detector + ["!"] + classify
        + ["!", "odmexport", f"location={out}", "!", "fakesink"]
    )


def where() -> dict:
    """The Ray node this runs on (id and IP); empty outside a Ray worker."""
    try:
        import ray

        if not ray.is_initialized():
            return {}
        return {"node": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address()}
    except Exception:  # never fail a clip over its bookkeeping
        return {}


def read_tries(folder: Path) -> list[dict]:
    """The attempts recorded in a clip's `tries` (older runs wrote the pid alone on each line)."""
    t = folder / "tries"
    if not t.exists():
        return []
    tries = []
    for line in t.read_text().splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            e = None
        tries.append(e if isinstance(e, dict) else {"pid": line.strip()})
    return tries


def run(job: dict) -> dict:
    """Classify one clip; returns its summary, the node that did it and the seconds it took (and writes
    results.jsonl, then done.json with the same)."""
    t0 = time.time()
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    node = where()
    with open(out / "tries", "a") as f:
        f.write(json.dumps({"pid": os.getpid(), **node, "start": round(t0, 3)}) + "\n")
    for f in [job["clip"], job["model"], job["bundle"], job["odm_train"]] + ([job["rois"]] if job["rois"] else []):
        if not Path(f).is_file():
            raise ClipFailed(f"{f}: no such file")
    tmp = out / f".results.{os.getpid()}.tmp"
    p = subprocess.run(pipeline(job, tmp), capture_output=True, text=True, timeout=job.get("timeout", 3600))
    if p.returncode != 0:
        tmp.unlink(missing_ok=True)
        why = (p.stderr or p.stdout).strip().splitlines()
        # gst-launch's first "ERROR: from element ..." line says why; the last lines often only that it stopped.
        first = [line for line in why if line.startswith("ERROR: from element")][:1]
        why = first + [line for line in why[-3:] if line not in first]
        raise ClipFailed(f"{job['clip']}: gst-launch-1.0 failed: {' | '.join(why) or f'exit {p.returncode}'}")
    os.replace(tmp, out / "results.jsonl")
    truth = Path(job["truth"]) if job.get("truth") else None
    summary = results.summarise(out / "results.jsonl", truth, job["rois"] is None, job["odm_train"])
    summary["hist"] = results.drift_histogram(results.read(out / "results.jsonl"))
    done = {"key": job["key"], "name": job["name"], "summary": summary, **node, "seconds": round(time.time() - t0, 3)}
    write_atomic(out / "done.json", json.dumps(done) + "\n")
    return done
