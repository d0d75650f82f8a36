// SPDX-License-Identifier: MIT OR Apache-2.0
//! Bring your own model: a network odm's trainer did not train (another input name, dynamic height and width, BGR,
//! its own normalisation) gets a bundle from the `odm-train bundle --onnx` command, and that bundle runs in
//! odmclassify through gst-launch-1.0 on video frames.

use odm_e2e::*;
use odm_trainer::export::fixture::{colour_dataset, foreign_onnx, grey_tree};

/// The label and verdict odmclassify gives a frame of one colour (`videotestsrc` ARGB foreground), in gst-launch.
fn classify_colour(model: &std::path::Path, argb: u32, registry: &std::path::Path) -> (String, String) {
    let out = gst_tool("gst-launch-1.0", registry)
        .args(["-m", "videotestsrc", "pattern=solid-color", &format!("foreground-color={argb:#010x}")])
        .args(["num-buffers=2", "!", "video/x-raw,format=I420,width=64,height=48", "!", "odmclassify", "mode=frame"])
        .args(["emit-messages=true", &format!("model={}", model.display()), "!", "fakesink"])
        .output()
        .expect("gst-launch-1.0 runs");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let field = |name: &str| {
        // The results array prints escaped: label\=\(string\)red\,
        let key = format!("{name}\\=\\(string\\)");
        let at = t.find(&key).unwrap_or_else(|| panic!("no {name} in:\n{t}"));
        t[at + key.len()..].split(['\\', ',', ';', ' ']).next().unwrap_or_default().to_owned()
    };
    (field("label"), field("verdict"))
}

#[test]
fn a_network_odm_did_not_train_runs_in_odmclassify_through_odm_train_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("their-net.onnx");
    std::fs::write(&onnx, foreign_onnx(None)).unwrap();
    let data = dir.path().join("data");
    colour_dataset(&data, 40, 10).unwrap();
    grey_tree(&dir.path().join("grey"), 60).unwrap();
    let out = dir.path().join("bundle");
    let run = std::process::Command::new(target_dir().join("odm-train"))
        .args(["bundle", "--onnx", onnx.to_str().unwrap(), "--data", data.to_str().unwrap()])
        .args(["--in", "red,green,blue,yellow", "--seen-ood", "magenta", "--unseen-ood", "cyan"])
        .args(["--anomaly-dir", dir.path().join("grey").to_str().unwrap()])
        .args(["--input-size", "24x20", "--color", "bgr", "--mean", "0.4,0.45,0.5", "--std", "0.2,0.22,0.24"])
        .args(["--noise", "50", "--out", out.to_str().unwrap()])
        .output()
        .expect("odm-train runs");
    let t = text(&run);
    assert!(run.status.success(), "{t}");
    assert!(
        t.contains("their-net.odm.json (4 classes, dim 5") && t.contains("in-distribution accuracy 100.00%"),
        "{t}"
    );

    let model = out.join("their-net.onnx");
    let registry = dir.path().join("registry.bin");
    for (argb, label) in [(0xffdc1e1e_u32, "red"), (0xff1ec828, "green"), (0xff1e28dc, "blue"), (0xffe6dc1e, "yellow")]
    {
        assert_eq!(classify_colour(&model, argb, &registry), (label.to_owned(), "known".to_owned()), "{argb:#x}");
    }
    // The colour it never saw, and grey: not a known sign.
    for argb in [0xff1ed2dc_u32, 0xff808080] {
        let (label, verdict) = classify_colour(&model, argb, &registry);
        assert_ne!(verdict, "known", "{argb:#x} was called {label}");
    }
}
