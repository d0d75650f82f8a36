# SPDX-License-Identifier: MIT OR Apache-2.0
"""One clip through the odm pipeline: the work of one Ray task, written so that nothing is ever half done.

The pipeline is pipelines/classify-clip.sh's without the video output:

    filesrc ! decodebin ! videoconvert ! video/x-raw,format=NV12
      ! (odmroireplay location=ROIS | odmproposals [! odmtrack, where the plugin has it])
      ! odmclassify model=MODEL bundle=BUNDLE threads=N ! odmexport location=OUT/.results.PID.tmp ! fakesink

Results go to a temporary name and are renamed to results.jsonl when complete; done.json, written the same way last,
marks the clip done for its key (clip, bundle and settings). Every attempt appends a line to `tries`, so the report
can say how many attempts a clip took, including attempts whose worker process died.
"""
from __future__ import annotations

import json
import os
import subprocess
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


def run(job: dict) -> dict:
    """Classify one clip; returns its summary (and writes results.jsonl, summary in done.json)."""
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "tries", "a") as f:
        f.write(f"{os.getpid()}\n")
    for f in [job["clip"], job["model"], job["bundle"], job["odm_train"]] + ([job["rois"]] if job["rois"] else []):
        if not Path(f).is_file():
            raise ClipFailed(f"{f}: no such file")
    tmp = out / f".results.{os.getpid()}.tmp"
    p = subprocess.run(pipeline(job, tmp), capture_output=True, text=True, timeout=job.get("timeout", 3600))
    if p.returncode != 0:
        tmp.unlink(missing_ok=True)
        why = (p.stderr or p.stdout).strip().splitlines()
        raise ClipFailed(f"{job['clip']}: gst-launch-1.0 failed: {' | '.join(why[-3:]) or f'exit {p.returncode}'}")
    os.replace(tmp, out / "results.jsonl")
    truth = Path(job["truth"]) if job.get("truth") else None
    summary = results.summarise(out / "results.jsonl", truth, job["rois"] is None, job["odm_train"])
    summary["hist"] = results.drift_histogram(results.read(out / "results.jsonl"))
    write_atomic(out / "done.json", json.dumps({"key": job["key"], "name": job["name"], "summary": summary}) + "\n")
    return summary
