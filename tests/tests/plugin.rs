// SPDX-License-Identifier: MIT OR Apache-2.0
//! The built plugin as users meet it: gst-inspect-1.0 and gst-launch-1.0 on a bundle the trainer writes.

use odm_e2e::*;

#[test]
fn gst_inspect_shows_the_plugin_and_element() {
    let reg = tempfile::NamedTempFile::new().unwrap();
    let out = gst_tool("gst-inspect-1.0", reg.path()).arg("odm").output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains(&format!("Version                  {}", env!("CARGO_PKG_VERSION"))), "{t}");
    assert!(t.contains("Open-set traffic-sign classification"), "{t}");
    for element in ["odmclassify", "odmroireplay", "odmproposals", "odmoverlay", "odmexport"] {
        assert!(t.contains(element), "{element}: {t}");
    }
    let out = gst_tool("gst-inspect-1.0", reg.path()).arg("odmclassify").output().unwrap();
    let t = text(&out);
    for prop in [
        "model",
        "bundle",
        "ort-library",
        "batch-size",
        "novelty-threshold",
        "execution-provider",
        "device-id",
        "fallback",
        "max-size",
        "stats-interval",
        "inference-p99-us",
        "changeable in NULL, READY, PAUSED or PLAYING state",
    ] {
        assert!(t.contains(prop), "gst-inspect odmclassify lacks {prop:?}:\n{t}");
    }
}

#[test]
fn trainer_bundle_runs_in_gst_launch() {
    // The trainer writes the fixture model; gst-launch runs it on real video frames; the messages carry results.
    let dir = tempfile::tempdir().unwrap();
    let bundle = odm_trainer::fixture::write(dir.path()).unwrap();
    let model = bundle.with_file_name("colors.onnx");
    let reg = tempfile::NamedTempFile::new().unwrap();
    for (pattern, label, verdict) in
        [("red", "red", "known"), ("green", "green", "known"), ("white", "yellow", "anomaly")]
    {
        let out = gst_tool("gst-launch-1.0", reg.path())
            .args(["-m", "videotestsrc", &format!("pattern={pattern}"), "num-buffers=2", "!"])
            .args(["video/x-raw,format=I420,width=96,height=64", "!"])
            .args(["odmclassify", "mode=frame", "emit-messages=true", &format!("model={}", model.display()), "!"])
            .arg("fakesink")
            .output()
            .unwrap();
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        let lines: Vec<&str> = t.lines().filter(|l| l.contains("odm-results")).collect();
        assert_eq!(lines.len(), 2, "{t}");
        for l in lines {
            assert!(l.contains(&format!("label\\=\\(string\\){label}")), "{pattern}: {l}");
            assert!(l.contains(&format!("verdict\\=\\(string\\){verdict}")), "{pattern}: {l}");
        }
    }
}

#[test]
fn missing_model_fails_the_pipeline_with_its_name() {
    let reg = tempfile::NamedTempFile::new().unwrap();
    let out = gst_tool("gst-launch-1.0", reg.path())
        .args(["videotestsrc", "num-buffers=1", "!", "odmclassify", "model=/no/such/model.onnx", "!", "fakesink"])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(!out.status.success());
    assert!(t.contains("model file /no/such/model.onnx not found"), "{t}");
}
