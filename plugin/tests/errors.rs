// SPDX-License-Identifier: MIT OR Apache-2.0
//! Bad models and bundles: the element posts an error naming the file and the cause, and never starts streaming.

mod common;

use std::fs;
use std::path::Path;

use common::*;

fn launch_with(model: &Path, extra: &str) -> Result<Vec<gst::Structure>, String> {
    run_launch(&format!(
        "videotestsrc num-buffers=2 ! video/x-raw,width=64,height=48 ! odmclassify mode=frame model={} {extra} ! fakesink",
        model.display()
    ))
}

/// A temp folder holding a copy of the colour model and its bundle; `edit` changes the bundle JSON.
fn copy_model(edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = models().join("colors");
    fs::copy(src.join("colors.onnx"), dir.path().join("colors.onnx")).unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(src.join("colors.odm.json")).unwrap()).unwrap();
    edit(&mut v);
    fs::write(dir.path().join("colors.odm.json"), serde_json::to_string_pretty(&v).unwrap()).unwrap();
    dir
}

fn assert_mentions(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "error does not mention {p:?}: {err}");
    }
}

#[test]
fn missing_model() {
    let err = launch_with(Path::new("/nonexistent/signs.onnx"), "").unwrap_err();
    assert_mentions(&err, &["/nonexistent/signs.onnx", "not found"]);
}

#[test]
fn no_model_set() {
    let err = run_launch("videotestsrc num-buffers=1 ! odmclassify ! fakesink").unwrap_err();
    assert_mentions(&err, &["no model set"]);
}

#[test]
fn missing_bundle() {
    let dir = copy_model(|_| {});
    fs::remove_file(dir.path().join("colors.odm.json")).unwrap();
    let err = launch_with(&dir.path().join("colors.onnx"), "").unwrap_err();
    assert_mentions(&err, &["colors.odm.json", "cannot read"]);
}

#[test]
fn corrupt_model_with_a_matching_bundle() {
    // The bundle's hash matches the corrupt bytes: the failure must come from ONNX Runtime, naming the file.
    let dir = copy_model(|_| {});
    let onnx = dir.path().join("colors.onnx");
    let mut bytes = fs::read(&onnx).unwrap();
    bytes.truncate(bytes.len() / 2);
    fs::write(&onnx, &bytes).unwrap();
    let sha = odm_core::bundle::sha256_file(&onnx).unwrap();
    let bundle = dir.path().join("colors.odm.json");
    let mut v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&bundle).unwrap()).unwrap();
    v["model"]["sha256"] = serde_json::json!(sha);
    fs::write(&bundle, v.to_string()).unwrap();
    let err = launch_with(&onnx, "").unwrap_err();
    assert_mentions(&err, &[&onnx.display().to_string(), "ONNX Runtime cannot load the model"]);
}

#[test]
fn bundle_for_another_model() {
    let dir = copy_model(|v| v["model"]["sha256"] = serde_json::json!("ab".repeat(32)));
    let err = launch_with(&dir.path().join("colors.onnx"), "").unwrap_err();
    assert_mentions(&err, &["colors.odm.json", "model.sha256", "another model"]);
}

#[test]
fn bundle_with_a_bad_field() {
    let dir = copy_model(|v| v["classes"][2]["center"] = serde_json::json!([1.0, 2.0]));
    let err = launch_with(&dir.path().join("colors.onnx"), "").unwrap_err();
    assert_mentions(&err, &["colors.odm.json", "classes[2].center", "model.output.dim is 4"]);
}

#[test]
fn bundle_with_a_bad_category() {
    // Not one of the four: the error names the file, the field, the class and the value.
    let dir = copy_model(|v| v["classes"][1]["category"] = serde_json::json!("advisory"));
    let err = launch_with(&dir.path().join("colors.onnx"), "").unwrap_err();
    assert_mentions(&err, &["colors.odm.json", "classes[1].category", "class \"green\"", "advisory"]);
    // Against the category of a taxonomy label.
    let dir = copy_model(|v| {
        v["classes"][2]["label"] = serde_json::json!("warning--blue--g1");
        v["classes"][2]["category"] = serde_json::json!("information");
    });
    let err = launch_with(&dir.path().join("colors.onnx"), "").unwrap_err();
    assert_mentions(&err, &["colors.odm.json", "classes[2].category", "warning--blue--g1", "\"information\""]);
}

#[test]
fn malformed_bundle() {
    let dir = copy_model(|_| {});
    fs::write(dir.path().join("colors.odm.json"), "{ \"format\": \"odm-bundle/1\", ").unwrap();
    let err = launch_with(&dir.path().join("colors.onnx"), "").unwrap_err();
    assert_mentions(&err, &["colors.odm.json", "malformed bundle JSON"]);
}

#[test]
fn bundle_that_does_not_fit_the_network() {
    // Hash and fields are valid, but the network takes 16x16 crops and the bundle says 32x32.
    let dir = copy_model(|v| {
        v["model"]["input"]["width"] = serde_json::json!(32);
        v["model"]["input"]["height"] = serde_json::json!(32);
    });
    let err = launch_with(&dir.path().join("colors.onnx"), "").unwrap_err();
    assert_mentions(&err, &["colors.onnx", "does not match its bundle", "[N,3,32,32]"]);
    let dir = copy_model(|v| v["model"]["output"]["name"] = serde_json::json!("features"));
    let err = launch_with(&dir.path().join("colors.onnx"), "").unwrap_err();
    assert_mentions(&err, &["no output named \"features\""]);
}

#[test]
fn bundle_property_overrides_the_sibling() {
    let dir = copy_model(|v| v["name"] = serde_json::json!("renamed"));
    let msgs = run_launch(&format!(
        "videotestsrc num-buffers=1 ! video/x-raw,width=64,height=48 ! odmclassify mode=frame emit-messages=true \
         model={} bundle={} ! fakesink",
        colors_model(),
        dir.path().join("colors.odm.json").display()
    ))
    .unwrap();
    assert_eq!(msgs.iter().find(|s| s.name() == "odm-results").unwrap().get::<&str>("model").unwrap(), "renamed");
}

#[test]
fn ort_library_naming_another_library_than_the_one_running_is_an_error() {
    // The process runs the library the lookup finds (the bootstrap one here). A missing path, or another file, is
    // refused with both paths named; the library that runs may be named again.
    let (_, loaded) = gstodm::runtime::environment(None).unwrap();
    let copy = tempfile::tempdir().unwrap();
    let other = copy.path().join("libonnxruntime.so");
    fs::copy(&loaded, &other).unwrap();
    for asked in [Path::new("/nonexistent/libonnxruntime.so"), other.as_path()] {
        let err = run_launch(&format!(
            "videotestsrc num-buffers=1 ! odmclassify mode=frame model={} ort-library={} ! fakesink",
            colors_model(),
            asked.display()
        ))
        .unwrap_err();
        assert_mentions(&err, &[&asked.display().to_string(), "already runs the one at", "can load only one"]);
    }
    run_launch(&format!(
        "videotestsrc num-buffers=1 ! odmclassify mode=frame model={} ort-library={} ! fakesink",
        colors_model(),
        loaded.display()
    ))
    .unwrap();
}
