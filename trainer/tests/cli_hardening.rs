// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `odm-train` command line on inputs that used to be taken without a word (issue 23): resumes that would
//! write under another name, conflicting flags, tolerances and files that cannot be what the user meant, a closed
//! pipe. Each refusal names the flag, the file or the field.

use std::path::Path;
use std::process::{Command, Output};

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
