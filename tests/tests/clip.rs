// SPDX-License-Identifier: MIT OR Apache-2.0
//! The synthetic drive and the pipelines around it, through gst-launch-1.0 and the built plugin: the clip decodes to
//! the frames its ground truth describes, recorded ROIs replay onto it, results export and compare, and the Python
//! example reads results from a real pipeline.

use odm_e2e::*;
use odm_trainer::clip::{self, ClipConfig};
use odm_trainer::results;

fn small_clip(dir: &std::path::Path) -> clip::ClipSummary {
    let cfg = ClipConfig { width: 640, height: 360, seconds: 2.0, fps: 15, seed: 3, ..Default::default() };
    clip::run(&dir.join("drive.mp4"), &dir.join("drive.rois.jsonl"), &cfg).unwrap()
}

#[test]
fn clip_decodes_and_its_ground_truth_replays_through_the_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let s = small_clip(dir.path());
    assert_eq!(s.frames, 30);
    let truth = results::read(&s.rois).unwrap();
    assert_eq!(truth.len(), 30, "one line per frame");
    assert!(s.boxes > 0);
    // Objects approach: an object seen in two frames is bigger in the later one.
    let size = |f: usize, id: i32| {
        let text = std::fs::read_to_string(&s.rois).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().nth(f).unwrap()).unwrap();
        line["rois"].as_array().unwrap().iter().find(|r| r["id"] == id).map(|r| r["w"].as_f64().unwrap())
    };
    let (a, b, id) = (0..30)
        .flat_map(|f| truth[f].rois.iter().map(move |r| (f, r.id)))
        .find_map(|(f, id)| (f + 6..30).rev().find_map(|g| Some((size(f, id)?, size(g, id)?, id))))
        .expect("an object seen 6 frames apart");
    assert!(b > a, "object {id}: {a} then {b}");
    let kinds: std::collections::BTreeSet<_> =
        truth.iter().flat_map(|f| f.rois.iter().filter_map(|r| r.kind.clone())).collect();
    assert!(kinds.contains("known"), "{kinds:?}");

    // Decode, replay, classify (colour model), export.
    let out = dir.path().join("results.jsonl");
    let run = classify_clip(&s.video, &s.rois, &repo().join("models/colors/colors.onnx"), "NV12", &out);
    assert!(run.status.success(), "{}", text(&run));
    let got = results::read(&out).unwrap();
    assert_eq!(got.len(), 30, "every decoded frame exported");
    for (g, t) in got.iter().zip(&truth) {
        assert_eq!(g.rois.len(), t.rois.len(), "frame {}", g.frame);
        assert!(g.rois.iter().all(|r| r.verdict.is_some()), "frame {}: every ROI has a result", g.frame);
    }
    // The run agrees with itself; a changed verdict is caught.
    assert!(results::compare(&got, &got, 1e-6).is_empty());
    let mut changed = got.clone();
    let r = changed.iter_mut().flat_map(|f| f.rois.iter_mut()).next().unwrap();
    r.verdict = Some("novelty-not".into());
    assert_eq!(results::compare(&got, &changed, 1e-6).len(), 1);
    let summary = results::summarise(&got, Some(&truth));
    assert_eq!(summary.rois, s.boxes);
    assert!(summary.markdown().contains("| known |"));
}

#[test]
fn python_example_reads_results() {
    let reg = tempfile::NamedTempFile::new().unwrap();
    let model = repo().join("models/colors/colors.onnx");
    let out = gst_tool("/usr/bin/python3", reg.path())
        .arg(repo().join("examples/python/odm_results.py"))
        .args(["--model", model.to_str().unwrap(), "--frames", "3"])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(t.matches("label blue").count(), 3, "{t}");
    assert!(t.contains("3 ROIs classified in 3 frames"), "{t}");
}

#[test]
fn a_clip_that_does_not_decode_stops_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.mp4");
    std::fs::write(&bad, b"this is not a video").unwrap();
    let rois = dir.path().join("rois.jsonl");
    std::fs::write(&rois, "{\"frame\": 0, \"rois\": []}\n").unwrap();
    let reg = tempfile::NamedTempFile::new().unwrap();
    let out = dir.path().join("results.jsonl");
    let run = gst_tool("gst-launch-1.0", reg.path())
        .args(["-q", "filesrc", &format!("location={}", bad.display()), "!", "decodebin", "!", "videoconvert"])
        .args(["!", "odmroireplay", &format!("location={}", rois.display()), "!", "odmexport"])
        .args([&format!("location={}", out.display()), "!", "fakesink"])
        .output()
        .unwrap();
    let t = text(&run);
    assert!(!run.status.success(), "{t}");
    assert!(t.contains("ERROR"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
}
