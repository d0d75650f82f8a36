# SPDX-License-Identifier: MIT OR Apache-2.0
"""The fleet runner on real parts: a local Ray instance started by the test, the built odm plugin in real
GStreamer pipelines, clips rendered by `odm-train clip`.

Needs GST_PLUGIN_PATH (the built plugin's folder) and ODM_TRAIN (the built odm-train), as scripts/test.sh sets them.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from odm_fleet import cli, results
from odm_fleet.run import fleet

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "models/signs/signs.odm.json"


def odm_train() -> str:
    t = os.environ.get("ODM_TRAIN")
    assert t and Path(t).is_file(), "set ODM_TRAIN to the built odm-train (scripts/test.sh does)"
    assert os.environ.get("GST_PLUGIN_PATH"), "set GST_PLUGIN_PATH to the built plugin's folder (scripts/test.sh does)"
    return t


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Four short drives (640x360, 10 fps, 2 s) with their ROI files, and a file that is not a video."""
    d = tmp_path_factory.mktemp("clips")
    for seed in range(1, 5):
        subprocess.run(
            [odm_train(), "clip", "--out", str(d / f"c{seed}"), "--seconds", "2", "--width", "640", "--height", "360",
             "--fps", "10", "--seed", str(seed), "--bundle", str(BUNDLE)],
            check=True, capture_output=True,
        )
    (d / "broken.mp4").write_bytes(b"this is not a video")
    return d


def manifest(d: Path, name: str, entries: list[dict]) -> Path:
    p = d / name
    p.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return p


def entry(i: int, proposals: bool = False) -> dict:
    return {"clip": f"c{i}/drive.mp4", "rois": "proposals" if proposals else f"c{i}/drive.rois.jsonl",
            "truth": f"c{i}/drive.rois.jsonl", "name": f"clip{i}"}


def classify_clip(clips: Path, i: int, proposals: bool, out: Path) -> Path:
    """pipelines/classify-clip.sh on one clip, with the same plugin and odm-train (nothing built)."""
    args = [str(ROOT / "pipelines/classify-clip.sh"), str(clips / f"c{i}/drive.mp4")]
    if not proposals:
        args.append(str(clips / f"c{i}/drive.rois.jsonl"))
    env = dict(os.environ, OUT=str(out), MODEL=str(ROOT / "models/signs/signs.onnx"))
    p = subprocess.run(args, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    return out / "drive.results.jsonl"


def killing_odm_train(d: Path, name: str) -> str:
    """odm-train, except the first time a Ray worker asks it for the summary of clip NAME's results: then it kills
    that worker (its parent process) with SIGKILL, as a crash or the OOM killer would, in the middle of the clip's
    task. Ray must run the task again; the second time it passes through. Nothing in odm_fleet knows about it."""
    marker = d / f"killed-{name}"
    wrapper = d / "odm-train-killing"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        f'  *"/{name}-"*"/results.jsonl"*)\n'
        f"    if mkdir {shlex.quote(str(marker))} 2>/dev/null; then kill -9 $PPID; exit 1; fi ;;\n"
        "esac\n"
        f'exec {shlex.quote(odm_train())} "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


def test_fleet_runs_every_clip_retries_a_dead_worker_restarts_and_compares(clips, tmp_path):
    odm_train()
    out = tmp_path / "fleet"

    # A first run on two clips.
    first = fleet(manifest(clips, "two.jsonl", [entry(1), entry(2)]), BUNDLE, out, workers=2)
    assert [(c["name"], c["status"], c["tries"]) for c in first["clips"]] == [("clip1", "done", 1), ("clip2", "done", 1)]

    # Restarted on four clips and a broken one, with a baseline bundle whose novelty threshold was lowered, and the
    # worker running clip3 killed on its first attempt.
    base_dir = tmp_path / "baseline"
    base_dir.mkdir()
    b = json.loads(BUNDLE.read_text())
    b["score"]["novelty_threshold"] = b["score"]["novelty_threshold"] * 0.6
    for c in b["classes"]:
        c.pop("novelty_threshold", None)
        c.pop("anomaly_threshold", None)
    (base_dir / "signs.odm.json").write_text(json.dumps(b))
    shutil.copy(ROOT / "models/signs/signs.onnx", base_dir / "signs.onnx")
    entries = [entry(1), entry(2), entry(3), entry(4, proposals=True), {"clip": "broken.mp4", "rois": "proposals", "name": "broken"}]
    rep = fleet(manifest(clips, "all.jsonl", entries), BUNDLE, out, baseline=base_dir / "signs.odm.json", workers=2,
                odm_train=killing_odm_train(tmp_path, "clip3"))
    assert (tmp_path / "killed-clip3").is_dir(), "the worker running clip3 was killed"
    status = {c["name"]: (c["status"], c["tries"]) for c in rep["clips"]}
    # Only the missing clips ran; the killed worker's clip was tried again and finished; the broken clip is listed
    # with its error and did not stop the others.
    assert status["clip1"] == ("skipped", 1) and status["clip2"] == ("skipped", 1)
    assert status["clip3"] == ("done", 2)
    assert status["clip4"] == ("done", 1)
    broken = next(c for c in rep["clips"] if c["name"] == "broken")
    assert broken["status"] == "failed" and "broken.mp4" in broken["error"], broken

    # Every clip's results are exactly what pipelines/classify-clip.sh writes for it.
    folders = {c["name"]: Path(c["folder"]) for c in rep["clips"]}
    for i, proposals in [(1, False), (2, False), (3, False), (4, True)]:
        want = classify_clip(clips, i, proposals, tmp_path / f"single{i}")
        got = folders[f"clip{i}"] / "results.jsonl"
        assert got.read_text() == want.read_text(), f"clip{i}"
        assert not list(folders[f"clip{i}"].glob(".*.tmp")), "no temporary file left"

    # The fleet numbers add up, by ground-truth kind (boxes joined by id, or by overlap for the proposals clip).
    f = rep["fleet"]
    assert f["rois"] == sum(c["rois"] for c in rep["clips"]) > 0
    assert "known" in f["by_kind"] and "unknown" in f["by_kind"], f["by_kind"]
    assert sum(f["hist"]) > 0

    # Against the baseline: the lowered threshold changed verdicts; the report names the clips and classes, and
    # odm-train compare agrees that they differ.
    ab = rep["against_baseline"]
    assert ab["clips_changed"], ab
    assert all(c["odm_train_compare_differences"] for c in ab["clips_changed"])
    assert ab["classes_changed"] and ab["worst"]
    assert ab["worst"][0]["before"]["verdict"] != ab["worst"][0]["after"]["verdict"] or \
        ab["worst"][0]["before"]["label"] != ab["worst"][0]["after"]["label"]
    md = (out / "report.md").read_text()
    assert "## Against the baseline" in md and "| broken | failed |" in md


def test_the_command_line_refuses_bad_input_and_reports_failures(clips, tmp_path, capsys):
    odm_train()
    with pytest.raises(SystemExit) as e:
        cli.main(["run", str(tmp_path / "none.jsonl"), "--bundle", str(BUNDLE), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    bad = manifest(clips, "bad.jsonl", [{"clip": "c1/drive.mp4"}])
    assert cli.main(["run", str(bad), "--bundle", str(BUNDLE), "--out", str(tmp_path / "o")]) == 2
    assert "line 1" in capsys.readouterr().err
    only_broken = manifest(clips, "broken.jsonl", [{"clip": "broken.mp4", "rois": "proposals"}])
    assert cli.main(["run", str(only_broken), "--bundle", str(BUNDLE), "--out", str(tmp_path / "o2"), "--workers", "1"]) == 1


def test_results_helpers_add_up_and_join_by_boxes(tmp_path):
    frames = [{"frame": 0, "rois": [
        {"id": 1, "x": 0, "y": 0, "w": 10, "h": 10, "label": "regulatory--stop--g1", "verdict": "known", "distance": 1.0, "anomaly_threshold": 2.0},
        {"id": 2, "x": 50, "y": 50, "w": 10, "h": 10, "label": "regulatory--stop--g1", "verdict": "anomaly", "distance": 5.0, "anomaly_threshold": 2.0},
    ]}]
    truth = [{"frame": 0, "rois": [{"id": 9, "x": 1, "y": 0, "w": 10, "h": 10, "kind": "known", "label": "regulatory--stop--g1"}]}]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(f) + "\n" for f in frames))
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(f) + "\n" for f in truth))
    s = results.summarise(tmp_path / "r.jsonl", tmp_path / "t.jsonl", True, odm_train())
    assert s["by_kind"] == {"known": {"known": 1}, "no-object": {"anomaly": 1}}
    assert s["known_correct"] == 1
    # 1/2 of the anomaly threshold: bin 5 of 0.1-wide bins; 5/2 is beyond 2: the last bin.
    assert results.drift_histogram(frames) == [0] * 5 + [1] + [0] * 14 + [1]
    m = results.merge([dict(s, hist=results.drift_histogram(frames))] * 2)
    assert m["rois"] == 4 and m["by_kind"]["known"]["known"] == 2 and sum(m["hist"]) == 4
