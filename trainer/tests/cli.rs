// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `odm-train` command line as users type it: flags merged into a config file field by field, the same meaning
//! of `--data` everywhere, `--threads` on the commands that embed data, progress lines when stderr is not a terminal.

use std::path::Path;
use std::process::{Command, Output};

use odm_trainer::synth::{self, SynthConfig};

fn odm_train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_odm-train")).args(args).output().expect("odm-train runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn tiny_data(root: &Path) {
    let sc = SynthConfig {
        seed: 4,
        train_per_class: 24,
        test_per_class: 4,
        background: 20,
        noise: 0,
        classes: [
            "regulatory--maximum-speed-limit-30--g1",
            "regulatory--stop--g1",
            "regulatory--yield--g1",
            "regulatory--keep-left--g1",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    };
    synth::run(root, &sc, false).unwrap();
}

#[test]
fn list_flags_merge_into_the_config_file_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tiny_data(&data);
    let cfg = dir.path().join("cfg.json");
    std::fs::write(
        &cfg,
        serde_json::json!({
            "data": data, "in_dist": ["regulatory--maximum-speed-limit-30--g1", "regulatory--stop--g1", "regulatory--yield--g1"], "seen_ood": [],
            "unseen_ood": ["regulatory--keep-left--g1"], "steps": 2, "batch": 16, "arch": "lenet", "input": 28, "embedding": 8,
            "val_fraction": 0.25
        })
        .to_string(),
    )
    .unwrap();
    // --seen-ood names one class: it moves out of the file's in_dist; in_dist and unseen_ood stay the file's.
    let run = dir.path().join("run");
    let o = odm_train(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--seen-ood",
        "regulatory--yield--g1",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        written["in_dist"],
        serde_json::json!(["regulatory--maximum-speed-limit-30--g1", "regulatory--stop--g1"])
    );
    assert_eq!(written["seen_ood"], serde_json::json!(["regulatory--yield--g1"]));
    assert_eq!(written["unseen_ood"], serde_json::json!(["regulatory--keep-left--g1"]));
    assert_eq!(written["steps"], 2);
    // Not a terminal: progress comes as lines on stderr.
    assert!(text(&o).contains("odm-train: train 2/2 (100%)"), "{}", text(&o));

    // --threads on a command that embeds data; 0 is refused.
    let o = odm_train(&["eval", "--run", run.to_str().unwrap(), "--noise", "10", "--threads", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = odm_train(&["eval", "--run", run.to_str().unwrap(), "--threads", "0"]);
    assert!(!o.status.success() && text(&o).contains("--threads 0"), "{}", text(&o));
}

#[test]
fn split_takes_the_dataset_root_like_train() {
    let dir = tempfile::tempdir().unwrap();
    tiny_data(dir.path());
    for data in [dir.path().to_owned(), dir.path().join("train")] {
        let o = odm_train(&[
            "split",
            "--data",
            data.to_str().unwrap(),
            "--in",
            "regulatory--stop--g1,regulatory--yield--g1",
            "--seen-ood",
            "regulatory--keep-left--g1",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(plan.to_string().contains("regulatory--keep-left--g1"), "{plan}");
    }
}
