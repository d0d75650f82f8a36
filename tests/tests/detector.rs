// SPDX-License-Identifier: MIT OR Apache-2.0
//! The shipped sign detectors (models/detector/detector.onnx and its INT8 export detector-int8.onnx) in odmdetect
//! on a short rendered drive they never saw
//! (its own seed: not the demo's 7, not the training drives' 101-104): gst-launch-1.0 with odmexport, the boxes
//! scored against the drive's truth with `odm-train detector eval`'s own code.

use std::fs;

use odm_e2e::{gst_tool, repo, text};
use odm_trainer::detector::eval;
use odm_trainer::synth::clip::{self, ClipConfig};

#[test]
fn the_shipped_detector_finds_the_signs_of_a_rendered_drive() {
    finds_the_signs("detector.onnx");
}

#[test]
fn the_shipped_int8_detector_finds_the_signs_of_a_rendered_drive() {
    finds_the_signs("detector-int8.onnx");
}

fn finds_the_signs(name: &str) {
    let model = repo().join("models/detector").join(name);
    assert!(model.is_file(), "{} is missing (models/detector/make.sh makes it)", model.display());
    let dir = tempfile::tempdir().unwrap();
    let cfg = ClipConfig { seconds: 3.0, fps: 10, seed: 31, ..Default::default() };
    let s = clip::run(&dir.path().join("drive.mp4"), &dir.path().join("drive.rois.jsonl"), &cfg).unwrap();
    let out = dir.path().join("boxes.jsonl");
    let o = gst_tool("gst-launch-1.0", &dir.path().join("registry.bin"))
        .args(["-q", "filesrc", &format!("location={}", s.video.display()), "!", "decodebin", "!", "videoconvert"])
        .args(["!", "odmdetect", &format!("model={}", model.display()), "score-threshold=0.05"])
        .args(["!", "odmexport", &format!("location={}", out.display()), "!", "fakesink"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let lines = fs::read_to_string(&out).unwrap();
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    let types: Vec<&str> = first["rois"].as_array().unwrap().iter().filter_map(|r| r["type"].as_str()).collect();
    assert!(types.iter().all(|t| *t == "traffic-sign"), "labels from the model's names metadata: {types:?}");

    let detections = eval::read_detections(&out).unwrap();
    let truth = odm_trainer::data::rois::read(&s.rois).unwrap();
    assert_eq!(detections.len(), truth.len(), "one line per frame");
    let e = eval::evaluate(&detections, &truth, 0.25, 12.0);
    let (n, found) = e.bands[2];
    assert!(n >= 10, "the drive has signs of 32 px and more to find: {}", e.markdown());
    // Measured on this drive with the shipped detector (models/detector/REPORT.md): 100% of the signs of 16 px and
    // more and of 32 px and more, 2.97 false boxes per frame (FP32 and INT8 alike). The bars leave margin (an earlier, shorter training
    // missed a yield sign over six frames: 75% at 32 px and more).
    assert!(e.recall(3) >= 0.85, "recall on signs of 16 px and more:\n{}", e.markdown());
    assert!(found as f64 >= 0.75 * n as f64, "recall on signs of 32 px and more:\n{}", e.markdown());
    assert!(e.false_boxes as f64 <= 4.5 * e.frames as f64, "false boxes per frame:\n{}", e.markdown());
}
