// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmclassify `attach-embedding`: each crop's embedding on its result (custom meta, ROI param, odmexport's line),
//! off by default, absent on reused and skipped results; and it is the embedding the distance was measured from.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use gst::prelude::*;
use gstodm::meta::{self, Outcome, RoiResult};
use serde_json::Value;

const LEFT: Rect = (0, 0, 20, 20);
const RIGHT: Rect = (60, 0, 20, 20);

fn harness(el: &gst::Element) -> gst_check::Harness {
    let mut h = gst_check::Harness::with_element(el, Some("sink"), Some("src"));
    h.set_src_caps(rgb_caps(96, 48));
    h
}

fn push(h: &mut gst_check::Harness, pts: u64) -> gst::Buffer {
    let frame = rgb_frame(96, 48, &[(LEFT, RED), (RIGHT, BLUE)]);
    h.push(buffer_with_rois(frame, &[(1, LEFT), (2, RIGHT)], pts)).expect("the buffer is taken");
    h.pull().expect("every buffer comes out")
}

/// The colour bundle's centres, by label.
fn centres() -> Vec<(String, Vec<f64>)> {
    let b: Value = serde_json::from_str(&fs::read_to_string(models().join("colors/colors.odm.json")).unwrap()).unwrap();
    b["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let centre = c["center"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            (c["label"].as_str().unwrap().to_owned(), centre)
        })
        .collect()
}

#[test]
fn off_by_default() {
    init();
    let el = classifier(&[]);
    assert!(!el.property::<bool>("attach-embedding"));
    let out = push(&mut harness(&el), 0);
    let results = meta::read(&out);
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r.embedding.is_none()));
}

#[test]
fn the_embedding_is_the_one_the_distance_was_measured_from() {
    init();
    let el = classifier(&[("attach-embedding", "true")]);
    let out = push(&mut harness(&el), 0);
    let results = meta::read(&out);
    let centres = centres();
    for r in &results {
        let e = r.embedding.as_ref().unwrap_or_else(|| panic!("ROI {} has no embedding", r.roi_id));
        assert_eq!(e.len(), centres[0].1.len(), "the bundle's output dim");
        let Outcome::Classified { label, distance, .. } = &r.outcome else { panic!("skipped") };
        let c = &centres.iter().find(|(l, _)| l == &**label).unwrap().1;
        let d = e.iter().zip(c).map(|(a, b)| (*a as f64 - b).powi(2)).sum::<f64>().sqrt();
        assert!((d - distance).abs() < 1e-4, "ROI {}: |e - centre| {d} vs distance {distance}", r.roi_id);
    }
    // The ROI params carry it too (a structure round trip).
    let params: Vec<RoiResult> =
        out.iter_meta::<gst_video::VideoRegionOfInterestMeta>().filter_map(|m| meta::roi_param(&m)).collect();
    assert_eq!(params, results);
}

#[test]
fn it_survives_converters_and_reaches_odmexport_lines_that_follow_the_schema() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let mut h = gst_check::Harness::new_parse(&format!(
        "odmclassify model={} attach-embedding=true reclassify-interval=2 ! videoconvert ! video/x-raw,format=I420 ! \
         odmexport location={}",
        colors_model(),
        out.display()
    ));
    h.set_src_caps(rgb_caps(96, 48));
    for f in 0..2 {
        push(&mut h, f * 33_333_333);
    }
    let _ = h.push_event(gst::event::Eos::new());
    drop(h);
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/results.schema.json");
    let schema: Value = serde_json::from_str(&fs::read_to_string(&schema_path).unwrap()).unwrap();
    let schema = jsonschema::validator_for(&schema).unwrap();
    let lines: Vec<Value> =
        fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        let errors: Vec<String> = schema.iter_errors(l).map(|e| format!("{e} at {}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{errors:?}\n{l}");
    }
    // Frame 0 computed: embeddings of 4 floats. Frame 1 reused (reclassify-interval=2): none.
    for roi in lines[0]["rois"].as_array().unwrap() {
        assert_eq!(roi["embedding"].as_array().map(Vec::len), Some(4), "{roi}");
    }
    for roi in lines[1]["rois"].as_array().unwrap() {
        assert_eq!(roi["reused"], true, "{roi}");
        assert!(roi.get("embedding").is_none(), "{roi}");
    }
}

#[test]
fn a_network_whose_output_is_not_finite_attaches_no_embedding() {
    // A bundle std of 1e-45 scales the crop to infinities: the network's outputs are not finite; the ROI is
    // skipped ("invalid model output") and carries no embedding.
    init();
    let dir = tempfile::tempdir().unwrap();
    fs::copy(models().join("colors/colors.onnx"), dir.path().join("tiny.onnx")).unwrap();
    let mut v: Value =
        serde_json::from_str(&fs::read_to_string(models().join("colors/colors.odm.json")).unwrap()).unwrap();
    v["model"]["file"] = "tiny.onnx".into();
    v["model"]["input"]["std"] = serde_json::json!([1e-45, 1e-45, 1e-45]);
    fs::write(dir.path().join("tiny.odm.json"), serde_json::to_string(&v).unwrap()).unwrap();
    let el = gst::ElementFactory::make("odmclassify")
        .property("model", dir.path().join("tiny.onnx").display().to_string())
        .property("attach-embedding", true)
        .build()
        .unwrap();
    let out = push(&mut harness(&el), 0);
    let results = meta::read(&out);
    assert_eq!(results.len(), 2);
    for r in &results {
        assert_eq!(r.outcome, Outcome::Skipped { reason: "invalid model output".into() });
        assert!(r.embedding.is_none());
    }
}

#[test]
fn it_can_be_switched_while_playing() {
    init();
    let el = classifier(&[]);
    let mut h = harness(&el);
    assert!(meta::read(&push(&mut h, 0)).iter().all(|r| r.embedding.is_none()));
    el.set_property("attach-embedding", true);
    assert!(meta::read(&push(&mut h, 1)).iter().all(|r| r.embedding.is_some()));
    el.set_property("attach-embedding", false);
    assert!(meta::read(&push(&mut h, 2)).iter().all(|r| r.embedding.is_none()));
}
