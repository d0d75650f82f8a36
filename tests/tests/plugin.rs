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
    let bundle = odm_trainer::export::fixture::write(dir.path()).unwrap();
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

/// gst-launch-1.0 with odmexport writing into `location`, under a shell prelude (limits), guarded against a hang.
fn export_in_gst_launch(prelude: &str, location: &str, buffers: u32, reg: &std::path::Path) -> std::process::Output {
    let line = format!(
        "{prelude} exec timeout -s KILL 120 gst-launch-1.0 videotestsrc num-buffers={buffers} ! \
         video/x-raw,width=64,height=48 ! odmexport location={location} ! fakesink"
    );
    gst_tool("bash", reg).args(["-c", &line]).output().unwrap()
}

#[test]
fn export_on_a_full_disk_fails_cleanly_in_gst_launch() {
    // ENOSPC on every write (/dev/full): the error names the file and the cause, and gst-launch stops and exits 1
    // (it used to hang on "Failed to deactivate pad" or segfault freeing the pipeline). Both with the error in the
    // stream (many lines) and at EOS (a few lines, written when the stream ends).
    let reg = tempfile::NamedTempFile::new().unwrap();
    for buffers in [5000, 3] {
        let out = export_in_gst_launch("", "/dev/full", buffers, reg.path());
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{buffers} buffers: {t}");
        assert!(t.contains("cannot write /dev/full: No space left on device"), "{t}");
        assert!(t.contains("Freeing pipeline"), "{t}");
        assert!(!t.contains("Failed to deactivate") && !t.contains("SIGSEGV"), "{t}");
    }
}

#[test]
fn export_keeps_whole_lines_when_a_write_fails() {
    // A file-size limit of 200 KiB (a few write chunks) (ulimit -f; SIGXFSZ ignored, as a shell may): odmexport stops
    // short of the limit (it reads it before each write) with an error naming the file and the limit, and the file
    // holds whole JSON lines only, frames 0..n in order. (A write that fails outright, a full disk, is the test above.)
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.jsonl");
    let reg = dir.path().join("registry.bin");
    let out = export_in_gst_launch("trap '' XFSZ; ulimit -f 200;", &out_path.display().to_string(), 20000, &reg);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let named = format!("cannot write {}: the file size limit (ulimit -f) of 204800 bytes", out_path.display());
    assert!(t.contains(&named), "{t}");
    assert!(t.contains("lines were not written, the file ends at its last whole line"), "{t}");
    let written = std::fs::read(&out_path).unwrap();
    assert!(!written.is_empty() && written.len() <= 200 * 1024 && written.ends_with(b"\n"), "{} bytes", written.len());
    for (i, line) in String::from_utf8(written).unwrap().lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}: {line}", i + 1));
        assert_eq!(v["frame"], i as u64);
    }
}
