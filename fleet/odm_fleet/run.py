# SPDX-License-Identifier: MIT OR Apache-2.0
"""The fleet run: every clip of a manifest as one Ray task, for a bundle and optionally a baseline bundle, then one
report.

Layout of OUT:
    clips/<name>-<key>/results.jsonl, done.json, tries      one folder per clip, bundle and settings (the key)
    baseline/<name>-<key>/...                               the same for the baseline bundle
    report.md, report.json                                  the fleet report

A clip whose folder has done.json is done: a run stopped and started again does only the others. A task whose worker
dies, or whose whole node dies, is retried by Ray (`max_retries`) on any node still up; a clip that fails for good is
listed with its error. Tasks are scheduled with Ray's SPREAD strategy, so that a cluster's nodes share the clips (and a
lost node takes as little work with it as possible); each clip's report says which node did it and where its attempts
ran.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import clip as clip_work
from . import results


@dataclass
class Clip:
    name: str
    clip: Path
    rois: Path | None  # None: odmproposals
    truth: Path | None


def load_manifest(path: Path) -> list[Clip]:
    """Clips of a manifest: JSON lines `{"clip": FILE, "rois": FILE | "proposals", "truth": FILE?, "name": NAME?}`,
    paths relative to the manifest's folder. Errors name the file and line."""
    clips, names = [], set()
    base = path.parent
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            where = f"{path}: line {n}"
            try:
                e = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: {err}") from None
            if not isinstance(e, dict) or "clip" not in e or "rois" not in e:
                raise ValueError(f"{where}: needs \"clip\" and \"rois\" (a file, or \"proposals\")")
            c = (base / e["clip"]).resolve()
            rois = None if e["rois"] == "proposals" else (base / e["rois"]).resolve()
            truth = (base / e["truth"]).resolve() if e.get("truth") else None
            name = e.get("name") or c.parent.name + "-" + c.stem
            if name in names:
                raise ValueError(f"{where}: the name {name!r} is used twice (give \"name\")")
            names.add(name)
            clips.append(Clip(name, c, rois, truth))
    if not clips:
        raise ValueError(f"{path}: no clip")
    return clips


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bundle_files(bundle: Path) -> tuple[Path, str]:
    """The model beside a bundle and the bundle's identity: the SHA-256 of the bundle file and of the model."""
    b = json.loads(bundle.read_text())
    model = bundle.parent / b["model"]["file"]
    return model, hashlib.sha256((sha256(bundle) + sha256(model)).encode()).hexdigest()


def clip_key(c: Clip, bundle_id: str, settings: dict) -> str:
    """What must match for an earlier result to stand: the clip (path, size, time), the boxes, the bundle (its file
    and its model) and the pipeline's settings."""
    st = c.clip.stat() if c.clip.exists() else None
    parts = {
        "clip": str(c.clip), "size": st.st_size if st else None, "mtime": st.st_mtime_ns if st else None,
        "rois": sha256(c.rois) if c.rois and c.rois.exists() else str(c.rois), "bundle": bundle_id,
        "settings": settings,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Outcome:
    name: str
    folder: Path
    status: str  # done | skipped | failed
    tries: int
    summary: dict = field(default_factory=dict)
    error: str = ""
    node: str = ""  # the Ray node that did the clip (done, or skipped: the earlier run's)
    ip: str = ""
    seconds: float | None = None  # the successful attempt's wall time
    tried_on: list[str] = field(default_factory=list)  # the node of every attempt, in order ("" if not recorded)


def _outcome(name: str, folder: Path, status: str, done: dict | None = None, error: str = "") -> Outcome:
    tries = clip_work.read_tries(folder)
    done = done or {}
    return Outcome(
        name, folder, status, len(tries), done.get("summary", {}), error, done.get("node", ""), done.get("ip", ""),
        done.get("seconds"), [t.get("node", "") for t in tries],
    )


def _plugin_env() -> dict:
    """The environment the tasks need to find the plugin (passed to Ray's workers)."""
    keep = ["GST_PLUGIN_PATH", "GST_REGISTRY", "ORT_DYLIB_PATH", "ODM_ORT_DIR", "PATH"]
    return {k: os.environ[k] for k in keep if k in os.environ}


def has_element(name: str) -> bool:
    """Whether GStreamer (with this process's GST_PLUGIN_PATH, which the workers get too) has the element."""
    return subprocess.run(["gst-inspect-1.0", name], capture_output=True).returncode == 0


def run_clips(
    clips: list[Clip], bundle: Path, out: Path, threads: int, element: dict, max_retries: int, odm_train: str
) -> list[Outcome]:
    """Every clip through the pipeline with `bundle`, one Ray task each (Ray must be initialised)."""
    import ray

    model, bundle_id = bundle_files(bundle)
    # Pipeline 2: odmtrack after odmproposals where the plugin has it (decided here, once, so that the key says it).
    tracker = has_element("odmtrack")
    settings = {"threads": threads, "element": element, "pipeline": 2, "tracker": tracker}
    jobs, outcomes, pending = [], {}, {}
    # SPREAD: clips go to every node of a cluster rather than filling the driver's node first.
    task = ray.remote(clip_work.run).options(
        num_cpus=threads, max_retries=max_retries, retry_exceptions=False, scheduling_strategy="SPREAD"
    )
    for c in clips:
        key = clip_key(c, bundle_id, settings)
        folder = out / f"{c.name}-{key}"
        done = folder / "done.json"
        if done.is_file():
            d = json.loads(done.read_text())
            if d.get("key") == key:
                outcomes[c.name] = _outcome(c.name, folder, "skipped", d)
                continue
        job = {
            "name": c.name, "clip": str(c.clip), "rois": str(c.rois) if c.rois else None,
            "truth": str(c.truth) if c.truth else None, "model": str(model), "bundle": str(bundle),
            "threads": threads, "element": element, "out": str(folder), "key": key, "odm_train": odm_train,
            "tracker": tracker,
        }
        jobs.append(job)
        pending[task.remote(job)] = c.name
    folders = {j["name"]: Path(j["out"]) for j in jobs}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        ref = ready[0]
        name = pending.pop(ref)
        try:
            outcomes[name] = _outcome(name, folders[name], "done", ray.get(ref))
        except Exception as e:  # RayTaskError (ClipFailed), WorkerCrashedError / NodeDiedError after the last retry
            cause = getattr(e, "cause", None) or e
            msg = str(cause).strip().splitlines()
            outcomes[name] = _outcome(name, folders[name], "failed", None, msg[-1] if msg else repr(e))
    return [outcomes[c.name] for c in clips]


def cluster_nodes() -> list[dict]:
    """The live nodes of the Ray cluster this process is connected to: id, IP, CPUs."""
    import ray

    return [
        {"node": n["NodeID"], "ip": n.get("NodeManagerAddress", ""), "cpus": n.get("Resources", {}).get("CPU", 0)}
        for n in ray.nodes() if n.get("Alive")
    ]


def compare(odm_train: str, baseline: Path, new: Path) -> int:
    """`odm-train compare` on two results files: how many differences it counts (labels, verdicts, distances beyond
    1e-3)."""
    p = subprocess.run([odm_train, "compare", str(baseline), str(new)], capture_output=True, text=True)
    if p.returncode == 0:
        return 0
    # It lists the first 30 differences, then ends with "odm-train: N differences from FILE".
    m = re.search(r"odm-train: (\d+) differences", p.stderr)
    if m is None:
        raise RuntimeError(f"odm-train compare {baseline} {new}: {p.stderr.strip()}")
    return int(m.group(1))


def reachable(address: str, timeout: float = 10.0) -> None:
    """Refuse a HOST:PORT where nothing answers (ray.init would wait for it for many minutes)."""
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--address {address!r}: local, auto or HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ValueError(f"cannot reach the Ray cluster at {address}: {e}") from None


def fleet(
    manifest: Path, bundle: Path, out: Path, baseline: Path | None = None, address: str = "local", workers: int = 2,
    threads: int = 1, element: dict | None = None, max_retries: int = 3, odm_train: str | None = None,
) -> dict:
    """The whole run; returns the report (also written as OUT/report.json and OUT/report.md)."""
    import ray

    from . import report

    clips = load_manifest(manifest)
    # Absolute: Ray's workers do not run in this process's folder (on a cluster, nor on other machines).
    bundle, baseline = bundle.resolve(), baseline.resolve() if baseline else None
    element = element or {}
    out.mkdir(parents=True, exist_ok=True)
    odm_train = odm_train or os.environ.get("ODM_TRAIN") or shutil.which("odm-train")
    if not odm_train:
        raise ValueError("odm-train not found: set ODM_TRAIN or put it on PATH")
    odm_train = str(Path(odm_train).resolve())
    t0 = time.time()
    env = {"env_vars": _plugin_env()}
    if address == "local":
        # address="local": a new instance even when RAY_ADDRESS is set or a `ray start` cluster runs on this machine
        # (with no address, ray.init would join that one, and refuse num_cpus).
        ray.init(address="local", num_cpus=workers * threads, include_dashboard=False, logging_level="ERROR",
                 runtime_env=env)
    else:
        reachable(address)
        try:
            ray.init(address=address, logging_level="ERROR", runtime_env=env)
        except ConnectionError as e:
            # Ray 2.60's `ray start --head` turns token authentication on by itself when ~/.ray/auth_token exists
            # (a local ray.init() writes one), and then says only "Failed to connect" to a driver without the token.
            raise ValueError(
                f"cannot join the Ray cluster at {address}: {e}. Is it up? If it uses token authentication, set "
                "RAY_AUTH_MODE=token here, with the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN"
            ) from None
    try:
        nodes = cluster_nodes()
        new = run_clips(clips, bundle, out / "clips", threads, element, max_retries, odm_train)
        base = run_clips(clips, baseline, out / "baseline", threads, element, max_retries, odm_train) if baseline else None
    finally:
        ray.shutdown()
    r = report.build(clips, new, base, bundle, baseline, compare_with=lambda b, n: compare(odm_train, b, n))
    r["seconds"] = round(time.time() - t0, 2)
    r["workers"], r["threads"], r["address"] = workers, threads, address
    r["cluster"] = nodes  # the nodes alive when the run started
    (out / "report.json").write_text(json.dumps(r, indent=2) + "\n")
    (out / "report.md").write_text(report.markdown(r))
    return r
