// SPDX-License-Identifier: MIT OR Apache-2.0
//! The sign category of every result, end to end: a bundle whose labels are taxonomy names (`regulatory--c0--g1`)
//! on the shipped network, in a real pipeline (odmroireplay, odmclassify, odmexport, appsink) with real ONNX Runtime.
//! The category is on each ROI's `odm` param, in the `OdmResultsMeta` custom meta, in the `odm-results` bus message
//! and in odmexport's JSON line (which follows docs/results.schema.json): the class's for `known`, the nearest
//! class's for `novelty`, none (NULL / null) for `anomaly`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use gst::prelude::*;
use gst_video::VideoRegionOfInterestMeta;
use gstodm::meta::Outcome;
use odm_core::Verdict;
use serde_json::Value;

/// A copy of the shipped network with its bundle's labels renamed to taxonomy names, regulatory and warning in
/// turn; the ONNX bytes are the same, so the bundle's SHA-256 still holds. Returns the folder and class id -> category.
fn taxonomy_signs() -> (tempfile::TempDir, PathBuf, BTreeMap<i32, &'static str>) {
    let dir = tempfile::tempdir().unwrap();
    let src = models().join("signs");
    fs::copy(src.join("signs.onnx"), dir.path().join("signs.onnx")).unwrap();
    let mut v: Value = serde_json::from_str(&fs::read_to_string(src.join("signs.odm.json")).unwrap()).unwrap();
    // Without the seen designs' category references, a novelty's category is its nearest class's (renamed here):
    // the field's path end to end is what is checked, the references' rule is core's (tests/score.rs).
    v.as_object_mut().unwrap().remove("category_refs");
    // The reference rule needs them (plugin/tests/reference.rs covers it), and without the vote of several nearest
    // designs (`score.category_votes`, core's tests/score.rs) the nearest class alone names a novelty's category.
    v["score"].as_object_mut().unwrap().remove("reference_ratio");
    v["score"].as_object_mut().unwrap().remove("category_votes");
    let mut categories = BTreeMap::new();
    for (i, class) in v["classes"].as_array_mut().unwrap().iter_mut().enumerate() {
        let category = if i % 2 == 0 { "regulatory" } else { "warning" };
        class["label"] = Value::from(format!("{category}--c{i}--g1"));
        categories.insert(class["id"].as_i64().unwrap() as i32, category);
    }
    fs::write(dir.path().join("signs.odm.json"), serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let model = dir.path().join("signs.onnx");
    (dir, model, categories)
}

/// What one run saw: the buffers' ROI params and custom-meta entries, the bus messages' entries, the JSON lines.
struct Seen {
    params: Vec<gst::Structure>,
    custom: Vec<gst::Structure>,
    rust: Vec<gstodm::meta::RoiResult>,
    messages: Vec<gst::Structure>,
    lines: Vec<Value>,
}

/// Two frames of SMPTE bars with three recorded boxes each, through odmclassify on `model` with the given threshold
/// overrides (so that every crop gets the verdict under test).
fn run(model: &Path, novelty: f64, anomaly: f64) -> Seen {
    init();
    let dir = tempfile::tempdir().unwrap();
    let rois = dir.path().join("rois.jsonl");
    let boxes = r#"[{"x": 4, "y": 4, "w": 28, "h": 28, "id": 1}, {"x": 40, "y": 10, "w": 30, "h": 40, "id": 2},
        {"x": 70, "y": 30, "w": 24, "h": 30, "id": 3}]"#
        .replace('\n', "");
    fs::write(&rois, format!("{{\"frame\": 0, \"rois\": {boxes}}}\n{{\"frame\": 1, \"rois\": {boxes}}}\n")).unwrap();
    let out = dir.path().join("out.jsonl");
    let line = format!(
        "videotestsrc pattern=smpte num-buffers=2 ! video/x-raw,format=RGB,width=96,height=64 ! odmroireplay \
         location={} ! odmclassify model={} emit-messages=true novelty-threshold={novelty} anomaly-threshold={anomaly} \
         ! odmexport location={} ! appsink name=sink sync=false",
        rois.display(),
        model.display(),
        out.display()
    );
    let pipeline = gst::parse::launch(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
    let sink =
        pipeline.downcast_ref::<gst::Bin>().unwrap().by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let (mut params, mut custom, mut rust) = (Vec::new(), Vec::new(), Vec::new());
    while let Ok(sample) = sink.pull_sample() {
        let buf = sample.buffer().unwrap();
        params
            .extend(buf.iter_meta::<VideoRegionOfInterestMeta>().filter_map(|m| m.param("odm").map(|s| s.to_owned())));
        let meta = gst::meta::CustomMeta::from_buffer(buf, "OdmResultsMeta").unwrap();
        let results = meta.structure().get::<gst::Array>("results").unwrap();
        custom.extend(results.iter().map(|v| v.get::<gst::Structure>().unwrap()));
        rust.extend(gstodm::meta::read(buf));
    }
    let bus = pipeline.bus().unwrap();
    let mut messages = Vec::new();
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Error(e) => panic!("{line}: {} ({:?})", e.error(), e.debug()),
            gst::MessageView::Element(e) => {
                let Some(s) = e.structure().filter(|s| s.name() == "odm-results") else { continue };
                let results = s.get::<gst::Array>("results").unwrap();
                messages.extend(results.iter().map(|v| v.get::<gst::Structure>().unwrap()));
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let lines = fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    Seen { params, custom, rust, messages, lines }
}

/// Every result of a run has the verdict `want` and, on every path, the category it must have.
fn check(seen: &Seen, want: Verdict, categories: &BTreeMap<i32, &'static str>) {
    let expected = |class_id: i32| match want {
        Verdict::Anomaly => None,
        Verdict::Known | Verdict::Novelty => Some(categories[&class_id]),
    };
    assert_eq!((seen.params.len(), seen.custom.len(), seen.messages.len()), (6, 6, 6), "2 frames of 3 ROIs");
    for (path, entries) in [("ROI param", &seen.params), ("custom meta", &seen.custom), ("bus message", &seen.messages)]
    {
        for s in entries {
            let verdict = s.get::<&str>("verdict").unwrap();
            assert_eq!(verdict, want.as_str(), "{path}: {s}");
            let class_id = s.get::<i32>("class-id").unwrap();
            let category = s.get::<Option<&str>>("category").unwrap_or_else(|e| panic!("{path}: {e}: {s}"));
            assert_eq!(category, expected(class_id), "{path}: {s}");
            if let Some(c) = category {
                // The label's first part: the nearest class's, also for a novelty.
                let label = s.get::<&str>("label").unwrap();
                assert_eq!(label.split("--").next(), Some(c), "{path}: {s}");
            }
        }
    }
    assert_eq!(seen.rust.len(), 6);
    for r in &seen.rust {
        let Outcome::Classified { class_id, verdict, category, .. } = &r.outcome else { panic!("skipped: {r:?}") };
        assert_eq!((*verdict, category.map(|c| c.as_str())), (want, expected(*class_id)), "gstodm::meta::read");
    }
    let schema = results_schema();
    assert_eq!(seen.lines.len(), 2);
    for line in &seen.lines {
        assert_eq!(schema_errors(&schema, line), Vec::<String>::new(), "{line}");
        for roi in line["rois"].as_array().unwrap() {
            assert_eq!(roi["verdict"], want.as_str(), "{roi}");
            let class_id = roi["class_id"].as_i64().unwrap() as i32;
            let category = roi.get("category").unwrap_or_else(|| panic!("no category in {roi}"));
            assert_eq!(category.as_str(), expected(class_id), "{roi}");
            assert!(category.is_string() || category.is_null(), "{roi}");
        }
    }
}

#[test]
fn the_category_travels_on_buffers_in_messages_and_in_json_lines() {
    let (_dir, model, categories) = taxonomy_signs();
    // Thresholds far above every distance: all known, each with its class's category.
    let known = run(&model, 1e6, 1e6);
    check(&known, Verdict::Known, &categories);
    // Novelty threshold 0: all novelty, each with its nearest class's category.
    let novelty = run(&model, 0.0, 1e6);
    check(&novelty, Verdict::Novelty, &categories);
    // Both 0: all anomaly, no category (NULL on buffers, null in JSON).
    let anomaly = run(&model, 0.0, 0.0);
    check(&anomaly, Verdict::Anomaly, &categories);
    assert!(anomaly.params.iter().all(|s| s.has_field("category")), "the field is there, as a NULL string");
    // The crops are the same each time: novelty names the nearest class, as known did.
    let ids = |s: &Seen| s.custom.iter().map(|s| s.get::<i32>("class-id").unwrap()).collect::<Vec<_>>();
    assert_eq!(ids(&known), ids(&novelty));

    // The schema holds the rules the element follows: an anomaly with a category, or a category outside the four,
    // is refused.
    let schema = results_schema();
    let mut line = anomaly.lines[0].clone();
    line["rois"][0]["category"] = Value::from("warning");
    assert!(!schema_errors(&schema, &line).is_empty(), "the schema accepts an anomaly with a category");
    let mut line = known.lines[0].clone();
    line["rois"][0]["category"] = Value::from("advisory");
    assert!(!schema_errors(&schema, &line).is_empty(), "the schema accepts an unknown category");
    line["rois"][0].as_object_mut().unwrap().remove("category");
    assert!(!schema_errors(&schema, &line).is_empty(), "the schema accepts a line without category");
}

#[test]
fn a_bundle_without_categories_gives_none() {
    // The colour model's labels (`red`) are no taxonomy names and it gives no category: NULL and null everywhere,
    // and the lines still follow the schema.
    let seen = run(Path::new(&colors_model()), 1e6, 1e6);
    assert!(seen.custom.iter().all(|s| s.get::<Option<&str>>("category").unwrap().is_none()));
    let schema = results_schema();
    for line in &seen.lines {
        assert_eq!(schema_errors(&schema, line), Vec::<String>::new(), "{line}");
        assert!(line["rois"].as_array().unwrap().iter().all(|r| r["category"].is_null()), "{line}");
    }
}
