// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `odm-train` command line on inputs that used to be taken without a word (issue 23): resumes that would
//! write under another name, conflicting flags, tolerances and files that cannot be what the user meant, a closed
//! pipe. Each refusal names the flag, the file or the field.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use odm_trainer::synth::{self, SynthConfig};

fn odm_train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_odm-train")).args(args).output().expect("odm-train runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A refused command: exit code 1 or 2 (clap's usage errors) and a message holding every part.
fn refused(args: &[&str], parts: &[&str]) -> String {
    let o = odm_train(args);
    let t = text(&o);
    assert!(matches!(o.status.code(), Some(1 | 2)), "odm-train {args:?} was not refused: {:?}\n{t}", o.status);
    for p in parts {
        assert!(t.contains(p), "odm-train {args:?}: {p:?} missing from:\n{t}");
    }
    t
}

fn tiny_data(root: &Path) {
    let sc = SynthConfig {
        seed: 5,
        train_per_class: 24,
        test_per_class: 4,
        background: 20,
        noise: 0,
        classes: ["regulatory--maximum-speed-limit-30--g1", "regulatory--stop--g1", "regulatory--yield--g1"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    };
    synth::run(root, &sc, false).unwrap();
}

/// Train a tiny ML run named `name` into `run` through the command line.
fn train_tiny(data: &Path, run: &Path, name: &str, steps: &str) {
    let o = odm_train(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--method",
        "ml",
        "--arch",
        "lenet",
        "--input",
        "16",
        "--embedding",
        "4",
        "--batch",
        "8",
        "--steps",
        steps,
        "--checkpoint-every",
        "1",
        "--name",
        name,
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_resume_without_flags_continues_the_runs_own_config_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tiny_data(&data);
    let run = dir.path().join("run");
    train_tiny(&data, &run, "mine", "2");
    // No --data, no --name: the run's config.json gives them (this used to be refused for want of --data, and with
    // --data it wrote odm-model.onnx beside mine.onnx).
    let o = odm_train(&["train", "--resume", "--steps", "3", "--out", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("resuming at step 2"), "{}", text(&o));
    assert!(run.join("mine.odm.json").is_file() && !run.join("odm-model.odm.json").exists());
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!((cfg["name"].as_str(), cfg["steps"].as_u64()), (Some("mine"), Some(3)));
    // Another --name on a resume is refused, naming both.
    refused(
        &["train", "--resume", "--steps", "4", "--name", "theirs", "--out", run.to_str().unwrap()],
        &["--name mine (this run: theirs)"],
    );
}

/// odmexport-style lines: `frames` frames, one ROI each at `(x, 20)`, with `verdict` and `distance`.
fn results_file(path: &Path, frames: u64, x: f64, verdict: &str, distance: f64) {
    let lines: String = (0..frames)
        .map(|f| {
            let roi = serde_json::json!({"id": 1, "x": x, "y": 20, "w": 24, "h": 24, "label": "regulatory--stop--g1",
                "distance": distance, "verdict": verdict, "kind": "known"});
            serde_json::json!({"frame": f, "rois": [roi]}).to_string() + "\n"
        })
        .collect();
    std::fs::write(path, lines).unwrap();
}

/// Run odm-train with stdout and stderr on pipes whose reading ends are already closed: every write fails (EPIPE).
fn with_closed_pipes(args: &[&str]) -> std::process::ExitStatus {
    let (out_r, out_w) = std::io::pipe().unwrap();
    let (err_r, err_w) = std::io::pipe().unwrap();
    drop((out_r, err_r));
    Command::new(env!("CARGO_BIN_EXE_odm-train"))
        .args(args)
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w))
        .status()
        .expect("odm-train runs")
}

#[test]
fn compare_survives_a_closed_pipe_and_refuses_empty_files_and_bad_tolerances() {
    let dir = tempfile::tempdir().unwrap();
    let (e, a, empty) = (dir.path().join("e.jsonl"), dir.path().join("a.jsonl"), dir.path().join("empty.jsonl"));
    results_file(&e, 200, 10.0, "known", 1.0);
    results_file(&a, 200, 10.0, "known", 2.0);
    std::fs::write(&empty, "").unwrap();
    let (es, as_, em) = (e.to_str().unwrap(), a.to_str().unwrap(), empty.to_str().unwrap());
    // `odm-train compare ... 2>&1 | head -1`: the differences still exit 1, the agreement 0; never a panic (101).
    assert_eq!(with_closed_pipes(&["compare", es, as_]).code(), Some(1), "differences, closed pipes");
    assert_eq!(with_closed_pipes(&["compare", es, es]).code(), Some(0), "agreement, closed pipes");
    // An empty file is a run that wrote nothing, on either side.
    refused(&["compare", em, as_], &["empty.jsonl", "holds no frame"]);
    refused(&["compare", es, em], &["empty.jsonl", "holds no frame"]);
    // A negative tolerance would fail every ROI, NaN would pass every one.
    for t in ["-1", "NaN", "inf"] {
        refused(&["compare", es, as_, "--tolerance", t], &[&format!("--tolerance {t}"), "0 or more"]);
    }
    // The fleet reads the count from the last line.
    let t = refused(&["compare", es, as_], &["odm-train: 200 differences from"]);
    assert!(t.contains("frame 0 ROI 1: distance 2, expected 1"), "{t}");
}

#[test]
fn summary_warns_of_truth_from_another_clip_and_of_verdicts_odm_never_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (r, truth, other) = (dir.path().join("r.jsonl"), dir.path().join("t.jsonl"), dir.path().join("o.jsonl"));
    results_file(&r, 20, 10.0, "known", 1.0);
    results_file(&truth, 20, 10.0, "known", 0.0);
    // Another clip's truth: other boxes, and fewer frames.
    results_file(&other, 12, 300.0, "known", 0.0);
    let (rs, ts, os) = (r.to_str().unwrap(), truth.to_str().unwrap(), other.to_str().unwrap());
    let o = odm_train(&["summary", rs, "--truth", ts]);
    assert!(o.status.success() && !text(&o).contains("warning"), "the clip's own truth: no warning\n{}", text(&o));
    for how in ["ids", "boxes"] {
        let o = odm_train(&["summary", rs, "--truth", os, "--match", how]);
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        assert!(t.contains("warning: --truth") && t.contains("o.jsonl") && t.contains("another clip"), "{how}: {t}");
        assert!(t.contains("only 0 of 20 result boxes lie on a truth box"), "{how}: {t}");
    }
    // Results past the truth's last frame, on its boxes where they overlap: still another clip.
    let short = dir.path().join("short.jsonl");
    results_file(&short, 15, 10.0, "known", 0.0);
    let t = text(&odm_train(&["summary", rs, "--truth", short.to_str().unwrap()]));
    assert!(t.contains("the results go on to frame 19 but the truth ends at frame 14"), "{t}");
    // Results that stop early (a run cut short) are not another clip.
    let t = text(&odm_train(&["summary", short.to_str().unwrap(), "--truth", rs]));
    assert!(!t.contains("warning"), "{t}");
    // A verdict odmclassify never writes is counted apart, and said.
    let odd = dir.path().join("odd.jsonl");
    results_file(&odd, 3, 10.0, "knwon", 1.0);
    let t = text(&odm_train(&["summary", odd.to_str().unwrap()]));
    assert!(t.contains("warning") && t.contains("3 ROIs have verdict \"knwon\""), "{t}");
    // An empty results file is not a summary of nothing.
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    refused(&["summary", empty.to_str().unwrap()], &["empty.jsonl", "holds no frame"]);
}

#[test]
fn mine_rois_without_truth_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let rois = dir.path().join("drive.rois.jsonl");
    results_file(&rois, 3, 10.0, "known", 0.0);
    let out = dir.path().join("mined");
    let (r, o) = (rois.to_str().unwrap(), out.to_str().unwrap());
    refused(&["mine", "--clip", "drive.mp4", "--rois", r, "--out", o], &["--rois", "needs --truth", "the signs too"]);
    assert!(!out.exists(), "a refused mine left {}", out.display());
}

#[test]
fn conflicting_flags_are_refused_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = out.to_str().unwrap();
    // Mining flags act only in ODM training: beside --method ce or ml they were silently ignored.
    let t = refused(
        &["train", "--data", "d", "--method", "ce", "--seen-anomaly-dir", "bg", "--ood-fraction", "0.5", "--out", o],
        &["--method ce mines no out-of-distribution data", "--seen-anomaly-dir", "--ood-fraction"],
    );
    assert!(!t.contains("--permuted-ood"), "a flag not given is not named: {t}");
    refused(
        &["train", "--data", "d", "--method", "ml", "--permuted-ood", "0.5", "--out", o],
        &["--method ml", "--permuted-ood"],
    );
    assert!(!out.exists(), "a refused train left {}", out.display());
    // --allow-drop says what --mode replace may do; with --mode add it meant nothing.
    refused(
        &["centers", "--run", "r", "--data", "d", "--out", o, "--mode", "add", "--allow-drop"],
        &["--allow-drop", "--mode replace", "--mode add"],
    );
}

#[test]
fn centers_refuses_to_overwrite_the_runs_own_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tiny_data(&data);
    let run = dir.path().join("run");
    train_tiny(&data, &run, "mine", "2");
    let before = std::fs::read(run.join("mine.odm.json")).unwrap();
    let (r, d) = (run.to_str().unwrap(), data.to_str().unwrap());
    // The same folder spelt another way is the same folder.
    let dotted = format!("{}/../run/", run.display());
    for out in [r, dotted.as_str()] {
        refused(&["centers", "--run", r, "--data", d, "--out", out], &["is the run's own folder", "mine.odm.json"]);
    }
    assert_eq!(std::fs::read(run.join("mine.odm.json")).unwrap(), before, "the run's bundle is untouched");
    // Another folder works.
    let o = odm_train(&["centers", "--run", r, "--data", d, "--out", dir.path().join("new").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn inspect_refuses_a_bundle_whose_dimension_the_network_does_not_have() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("colors");
    assert!(odm_train(&["fixture", "--out", fixture.to_str().unwrap()]).status.success());
    let good = fixture.join("colors.odm.json");
    let o = odm_train(&["inspect", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    // One more dimension in the bundle (and in every centre): the bundle's own checks pass, the network has 4.
    let mut b: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&good).unwrap()).unwrap();
    b["model"]["output"]["dim"] = serde_json::json!(5);
    for c in b["classes"].as_array_mut().unwrap() {
        c["center"].as_array_mut().unwrap().push(serde_json::json!(0.0));
    }
    let wrong = fixture.join("wrong.odm.json");
    std::fs::write(&wrong, b.to_string()).unwrap();
    refused(
        &["inspect", wrong.to_str().unwrap()],
        &["wrong.odm.json", "field `model.output.dim`", "is 5 but the network's output \"embedding\" is [N,4]"],
    );
    // An output name the network does not have.
    b["model"]["output"]["dim"] = serde_json::json!(4);
    for c in b["classes"].as_array_mut().unwrap() {
        c["center"].as_array_mut().unwrap().pop();
    }
    b["model"]["output"]["name"] = serde_json::json!("features");
    std::fs::write(&wrong, b.to_string()).unwrap();
    refused(&["inspect", wrong.to_str().unwrap()], &["wrong.odm.json", "no output named \"features\""]);
    // A type error in a bundle names the field's path, in words.
    b["model"]["output"]["dim"] = serde_json::json!("four");
    std::fs::write(&wrong, b.to_string()).unwrap();
    let t = refused(&["inspect", wrong.to_str().unwrap()], &["field `model.output.dim`", "expected a whole number"]);
    assert!(!t.contains("usize"), "{t}");
}

#[test]
fn help_shows_no_raw_rustdoc_links() {
    let top = odm_train(&["--help"]);
    let list = String::from_utf8_lossy(&top.stdout).into_owned();
    let commands: Vec<&str> = list
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() > 20, "{list}");
    for c in commands {
        let help = text(&odm_train(&[c, "--help"]));
        for link in ["[`", "`]"] {
            assert!(!help.contains(link), "odm-train {c} --help shows a rustdoc link ({link}):\n{help}");
        }
    }
}
