# SPDX-License-Identifier: MIT OR Apache-2.0
"""The fleet runner on real parts: a local Ray instance, and a two-node Ray cluster on this machine, started by the
tests; the built odm plugin in real GStreamer pipelines; clips rendered by `odm-train clip`.

Needs GST_PLUGIN_PATH (the built plugin's folder) and ODM_TRAIN (the built odm-train), as scripts/test.sh sets them.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
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


@pytest.fixture(scope="module")
def reference(clips, tmp_path_factory):
    """reference(i, proposals): pipelines/classify-clip.sh's results for clip i (run once, then shared by the tests:
    the one-node fleet and the cluster are both held to them)."""
    d = tmp_path_factory.mktemp("reference")
    done = {}

    def get(i: int, proposals: bool = False) -> str:
        if (i, proposals) not in done:
            done[i, proposals] = classify_clip(clips, i, proposals, d / f"c{i}{'p' if proposals else ''}").read_text()
        return done[i, proposals]

    return get


def classify_clip(clips: Path, i: int, proposals: bool, out: Path) -> Path:
    """pipelines/classify-clip.sh on one clip, with the same plugin and odm-train (nothing built)."""
    args = [str(ROOT / "pipelines/classify-clip.sh"), str(clips / f"c{i}/drive.mp4")]
    if not proposals:
        args.append(str(clips / f"c{i}/drive.rois.jsonl"))
    # The fleet's "proposals" entries are classify-clip.sh's odmproposals path (its default is the shipped detector).
    env = dict(os.environ, OUT=str(out), MODEL=str(ROOT / "models/signs/signs.onnx"), DETECTOR="proposals")
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


def test_fleet_runs_every_clip_retries_a_dead_worker_restarts_and_compares(clips, reference, tmp_path):
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
        got = folders[f"clip{i}"] / "results.jsonl"
        assert got.read_text() == reference(i, proposals), f"clip{i}"
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
    # A cluster address where nothing answers: a clear error at once (ray.init alone waits for many minutes).
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    one = manifest(clips, "one.jsonl", [entry(1)])
    assert cli.main(["run", str(one), "--bundle", str(BUNDLE), "--out", str(tmp_path / "o"), "--address",
                     f"127.0.0.1:{port}"]) == 2
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in capsys.readouterr().err
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


# --- the fleet on a two-node Ray cluster ----------------------------------------------------------------------------

#: Per node: small, on a 24 GiB machine shared with trainings (Ray's floor is 75 MiB).
OBJECT_STORE = 80 << 20


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a process, None when it is gone."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(f[1]), int(f[19])


def descendants(pid: int) -> list[tuple[int, int]]:
    """A process and all its descendants, as (pid, start time) so that a pid reused later is never killed."""
    children = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and (st := _stat(int(d.name))):
            children.setdefault(st[0], []).append((int(d.name), st[1]))
    me = _stat(pid)
    found, todo = ([(pid, me[1])] if me else []), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c[0])
    return found


def sigkill(procs: list[tuple[int, int]]) -> None:
    for pid, start in procs:
        st = _stat(pid)
        if st and st[1] == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def first_difference(path: Path, want: str) -> str:
    got = path.read_text().splitlines()
    for k, (g, w) in enumerate(zip(got, want.splitlines())):
        if g != w:
            return f"{path}: line {k + 1}:\n got {g}\nwant {w}"
    return f"{path}: {len(got)} lines, {len(want.splitlines())} wanted"


def wait_for(what: str, cond, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None):
    """Wait on a condition (generous timeouts; never a timed assertion)."""
    deadline = time.monotonic() + timeout
    while not (v := cond()):
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"odm-fleet exited ({proc.returncode}) while waiting for {what}:\n{log.read_text() if log else ''}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout} s")
        time.sleep(0.1)
    return v


@pytest.fixture
def cluster():
    """A Ray cluster of two nodes on this machine, 1 CPU each (one clip at a time per node): the head node (the GCS,
    where the driver connects) and a worker node. Every process of both nodes, and everything they started, is killed
    at the end, pass or fail."""
    from ray.cluster_utils import Cluster

    temp = tempfile.mkdtemp(prefix="odm-ray-")  # short: Ray's socket paths live under it
    c, procs = None, []
    try:
        c = Cluster(initialize_head=True, head_node_args=dict(
            num_cpus=1, object_store_memory=OBJECT_STORE, temp_dir=temp, include_dashboard=False,
            # A dead node is declared dead after ~3 missed 1 s health checks instead of Ray's ~15 s default.
            _system_config={"health_check_period_ms": 1000, "health_check_failure_threshold": 3},
        ))
        worker = c.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
        yield c, worker
    finally:
        if c is not None:
            for node in [c.head_node, *c.worker_nodes]:
                if node is not None:
                    for ps in node.all_processes.values():
                        for p in ps:
                            procs += descendants(p.process.pid)
            c.shutdown()
        sigkill(procs)  # workers (and their gst-launch / odm-train children) that outlived their raylet
        shutil.rmtree(temp, ignore_errors=True)


def node_killing_odm_train(state: Path, victim_raylet: int) -> str:
    """odm-train for the fleet, with a hold that puts a clip in flight on the victim node when the test kills it.
    Each node runs one clip at a time (1 CPU). The head node's first clip waits in its summary until the victim node
    holds a clip, so the other clips go to the victim; there the first clip passes (the victim finishes a clip of its
    own) and the second is held in its summary (its results written, done.json not yet) until the node dies. The
    node of a call is the raylet above the Ray worker that runs odm-train. A retry passes through. Nothing in odm_fleet
    knows about it."""
    wrapper = state / "odm-train-node-killing"
    wrapper.write_text(f"""#!{sys.executable}
import os, sys, time
from pathlib import Path

state, odm_train, args = Path({str(state)!r}), {odm_train()!r}, sys.argv[1:]
held = state / "held"
if args[:1] == ["summary"]:
    worker = os.getppid()
    raylet = int(Path(f"/proc/{{worker}}/stat").read_text().rsplit(")", 1)[1].split()[1])
    deadline = time.monotonic() + 600
    if raylet == {victim_raylet}:
        try:
            (state / "victim-passed").mkdir()
        except FileExistsError:
            (held / "worker").parent.mkdir()
            (held / "args").write_text(" ".join(args))
            (held / "worker").write_text(str(worker))
            while time.monotonic() < deadline:  # until the node is killed
                time.sleep(0.2)
            sys.exit(1)
    else:
        while not (held / "worker").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
os.execv(odm_train, [odm_train] + args)
""")
    wrapper.chmod(0o755)
    return str(wrapper)


def test_fleet_on_two_nodes_loses_a_node_mid_run_and_every_clip_is_done_once(cluster, clips, reference, tmp_path):
    c, victim = cluster
    head_id, victim_id = c.head_node.node_id, victim.node_id
    victim_raylet = victim.all_processes["raylet"][0].process.pid
    state = tmp_path / "state"
    state.mkdir()
    # Six clips: the four drives (one through odmproposals and odmtrack) and two of them again under other names.
    clipset = [(1, False), (2, False), (3, False), (4, True), (1, False), (2, False)]
    names = ["clip1", "clip2", "clip3", "clip4", "clip1-again", "clip2-again"]
    entries = [dict(entry(i, p), name=n) for (i, p), n in zip(clipset, names)]
    man = manifest(clips, "cluster.jsonl", entries)
    out = tmp_path / "fleet"
    log = tmp_path / "odm-fleet.log"
    env = dict(os.environ, ODM_TRAIN=node_killing_odm_train(state, victim_raylet))
    with open(log, "w") as lf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "odm_fleet.cli", "run", str(man), "--bundle", str(BUNDLE), "--out", str(out),
             "--address", c.address], stdout=lf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        # A clip in flight on the worker node (its second clip, held in its summary): kill the whole node, as a
        # machine that dies would: the raylet and everything under it (Ray workers, odm-train), SIGKILL.
        worker = int(wait_for("a clip held on the worker node", lambda: (state / "held" / "worker").exists()
                              and (state / "held" / "worker").read_text(), 240, proc, log))
        assert _stat(worker)[0] == victim_raylet
        held_clip = (state / "held" / "args").read_text().split()[1]
        doomed = descendants(victim_raylet)
        c.remove_node(victim, allow_graceful=False)
        sigkill(doomed)
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert rc == 0, log.read_text()

    rep = json.loads((out / "report.json").read_text())
    by = {r["name"]: r for r in rep["clips"]}
    killed = next(n for n in names if f"/{n}-" in held_clip)
    # Every clip done, each once: one attempt each, except the clip whose node died: two attempts, the first on the
    # dead node, the second (the one that finished it) on the head node.
    assert {n: (r["status"], r["tries"]) for n, r in by.items()} == \
        {n: ("done", 2 if n == killed else 1) for n in names}, rep["clips"]
    assert by[killed]["tried_on"] == [victim_id, head_id] and by[killed]["node"] == head_id
    for n, r in by.items():
        assert r["tried_on"] == [r["node"]] or n == killed
    # Both nodes finished clips (the worker node one, before it died).
    done_on = {r["node"] for r in rep["clips"]}
    assert done_on == {head_id, victim_id}, rep["clips"]
    nodes = {n["node"]: n for n in rep["nodes"]}
    assert nodes[victim_id]["clips"] == 1 and nodes[victim_id]["attempts"] == 2
    assert nodes[head_id]["clips"] == len(names) - 1
    assert {n["node"] for n in rep["cluster"]} == {head_id, victim_id}
    assert "## Nodes" in (out / "report.md").read_text()

    # Nothing lost, nothing twice: one folder per clip, each with its results and done.json, no temporary file; the
    # results are exactly those of classify-clip.sh (which the one-node fleet gives, test above).
    folders = sorted(p.name.rsplit("-", 1)[0] for p in (out / "clips").iterdir())
    assert folders == sorted(names)
    for (i, p), n in zip(clipset, names):
        f = Path(by[n]["folder"])
        assert (f / "results.jsonl").read_text() == reference(i, p), (n, first_difference(f / "results.jsonl", reference(i, p)))
        assert json.loads((f / "done.json").read_text())["node"] == by[n]["node"]
        assert not list(f.glob(".*.tmp")), n

    # And the same report numbers as one node: the manifest again on a local instance.
    one = fleet(man, BUNDLE, tmp_path / "one-node", workers=1)
    assert [(r["name"], r["status"], r["tries"], r["rois"]) for r in one["clips"]] == \
        [(n, "done", 1, by[n]["rois"]) for n in names]
    assert one["fleet"] == rep["fleet"]
    for r in one["clips"]:
        assert Path(r["folder"], "results.jsonl").read_text() == Path(by[r["name"]]["folder"], "results.jsonl").read_text()
