// SPDX-License-Identifier: MIT OR Apache-2.0
//! Regression on the demo drive with the shipped model: `pipelines/regress.sh` must reproduce
//! `models/signs/demo.expected.jsonl` (labels and verdicts exactly, distances within 1e-3). The drive is rendered
//! here exactly as `make demo` renders it (`odm-train clip --bundle models/signs/signs.odm.json`, default seed and size).
//! Refresh the expected file after a deliberate change with `pipelines/demo.sh` and
//! `cp out/demo/results.jsonl models/signs/demo.expected.jsonl`.

use odm_e2e::*;
use odm_trainer::synth::clip::{self, ClipConfig};

#[test]
fn demo_drive_reproduces_the_stored_results() {
    let models = repo().join("models/signs");
    let bundle = odm_core::Bundle::load(&models.join("signs.odm.json")).unwrap();
    let cfg = ClipConfig::for_bundle(&bundle);
    let dir = tempfile::tempdir().unwrap();
    let s = clip::run(&dir.path().join("drive.mp4"), &dir.path().join("drive.rois.jsonl"), &cfg).unwrap();
    let reg = tempfile::NamedTempFile::new().unwrap();
    let odm_train = target_dir().join("odm-train");
    assert!(odm_train.exists(), "{} missing: cargo build --workspace first", odm_train.display());
    let regress = |expected: &std::path::Path| {
        gst_tool(repo().join("pipelines/regress.sh"), reg.path())
            .args([&s.video, &s.rois, &expected.to_owned()])
            .env("ODM_TRAIN", &odm_train)
            .env("MODEL", models.join("signs.onnx"))
            .output()
            .unwrap()
    };
    let out = regress(&models.join("demo.expected.jsonl"));
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("frames agree"), "{t}");

    // And it can fail: a changed expectation is caught.
    let text = std::fs::read_to_string(models.join("demo.expected.jsonl")).unwrap();
    let changed = text.replacen("\"verdict\":\"known\"", "\"verdict\":\"novelty\"", 1);
    assert_ne!(changed, text, "the expected file has a known verdict to change");
    let bad = dir.path().join("changed.jsonl");
    std::fs::write(&bad, changed).unwrap();
    let out = regress(&bad);
    assert!(!out.status.success(), "a changed verdict must fail: {}", odm_e2e::text(&out));
    assert!(odm_e2e::text(&out).contains("expected"), "{}", odm_e2e::text(&out));
}
