// SPDX-License-Identifier: MIT OR Apache-2.0
//! The reference rule end to end, on the shipped signs model and bundle with real ONNX Runtime: a crop within the
//! novelty threshold is `known` only when its nearest class is nearer than `reference-ratio` times the nearest of the
//! bundle's category references (the seen designs' centres); otherwise `novelty`. The element's results equal
//! odm-core's scorer on the same embeddings, the property changes the rule while PLAYING, and a ratio on a bundle
//! with no references is refused (a warning while PLAYING, an error naming the bundle at start).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use gst::prelude::*;
use gstodm::meta::{self, Outcome};
use odm_core::{Bundle, Scorer, Verdict};
use serde_json::Value;

/// A copy of the shipped network and bundle; `refs` false removes the category references and the rule.
fn signs(refs: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = models().join("signs");
    fs::copy(src.join("signs.onnx"), dir.path().join("signs.onnx")).unwrap();
    let mut v: Value = serde_json::from_str(&fs::read_to_string(src.join("signs.odm.json")).unwrap()).unwrap();
    if !refs {
        v.as_object_mut().unwrap().remove("category_refs");
        v["score"].as_object_mut().unwrap().remove("reference_ratio");
    }
    fs::write(dir.path().join("signs.odm.json"), serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let model = dir.path().join("signs.onnx");
    (dir, model)
}

/// Four coloured patches on grey, a ROI on each, so that crops land in different places of the embedding space.
fn frame(pts: u64) -> gst::Buffer {
    let patches =
        [((2, 2, 28, 28), RED), ((34, 2, 28, 28), BLUE), ((2, 34, 28, 28), YELLOW), ((34, 34, 28, 28), GREEN)];
    let rois: Vec<(i32, Rect)> = patches.iter().enumerate().map(|(i, (r, _))| (i as i32 + 1, *r)).collect();
    buffer_with_rois(rgb_frame(64, 64, &patches), &rois, pts)
}

fn harness(model: &Path, props: &[(&str, &str)]) -> (gst::Element, gst_check::Harness) {
    init();
    let el = gst::ElementFactory::make("odmclassify")
        .property("model", model.display().to_string())
        .property("attach-embedding", true)
        .build()
        .unwrap();
    for (k, v) in props {
        el.set_property_from_str(k, v);
    }
    let mut h = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
    h.set_src_caps(rgb_caps(64, 64));
    (el, h)
}

/// (class id, verdict, category) of each result of one frame, with its embedding.
fn results(h: &mut gst_check::Harness, pts: u64) -> Vec<(i32, Verdict, Option<odm_core::Category>, Vec<f32>)> {
    h.push(frame(pts)).unwrap();
    let out = h.pull().unwrap();
    meta::read(&out)
        .into_iter()
        .map(|r| match r.outcome {
            Outcome::Classified { class_id, verdict, category, .. } => {
                (class_id, verdict, category, r.embedding.expect("attach-embedding=true"))
            }
            Outcome::Skipped { reason } => panic!("skipped: {reason}"),
        })
        .collect()
}

#[test]
fn the_reference_ratio_decides_between_known_and_novelty_as_the_scorer_does() {
    let (dir, model) = signs(true);
    let bundle = Bundle::open(&dir.path().join("signs.odm.json")).unwrap();
    assert!(!bundle.category_refs.is_empty(), "the shipped bundle carries the seen designs' centres");
    // Every crop within the thresholds, so that the rule alone decides between known and novelty.
    let (el, mut h) = harness(&model, &[("novelty-threshold", "1e6"), ("anomaly-threshold", "2e6")]);
    let mut scorer = Scorer::new(&bundle);
    scorer.set_overrides(Some(1e6), Some(2e6)).unwrap();
    let check = |h: &mut gst_check::Harness, pts: u64, scorer: &Scorer| {
        let got = results(h, pts);
        assert_eq!(got.len(), 4);
        for (id, verdict, category, e) in &got {
            let want = scorer.score(e).unwrap();
            assert_eq!((*id, *verdict, *category), (want.class_id, want.verdict, want.category), "{e:?}");
        }
        got.into_iter().map(|r| (r.0, r.1, r.2)).collect::<Vec<_>>()
    };
    // The bundle's own rule (-1).
    assert_eq!(el.property::<f64>("reference-ratio"), -1.0);
    let bundles = check(&mut h, 0, &scorer);
    // 0: the thresholds alone, every crop known with its class's category.
    el.set_property("reference-ratio", 0.0f64);
    scorer.set_reference_ratio(None).unwrap();
    let off = check(&mut h, 1, &scorer);
    assert!(off.iter().all(|r| r.1 == Verdict::Known), "{off:?}");
    // A tiny ratio: no class is nearer than a millionth of the nearest reference, every crop a novelty with a
    // category (the nearest design's); the nearest class is still reported.
    el.set_property("reference-ratio", 1e-6f64);
    scorer.set_reference_ratio(Some(1e-6)).unwrap();
    let strict = check(&mut h, 2, &scorer);
    assert!(strict.iter().all(|r| r.1 == Verdict::Novelty && r.2.is_some()), "{strict:?}");
    let ids = |v: &[(i32, Verdict, Option<odm_core::Category>)]| v.iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(ids(&strict), ids(&off), "the rule changes the verdict, not the nearest class");
    // Back to the bundle's.
    el.set_property("reference-ratio", -1.0f64);
    scorer.set_reference_ratio(bundle.score.reference_ratio).unwrap();
    assert_eq!(check(&mut h, 3, &scorer), bundles);
    drop(h);

    // Set before start, with a bundle that has references: in force from the first frame.
    let (el, mut h) =
        harness(&model, &[("novelty-threshold", "1e6"), ("anomaly-threshold", "2e6"), ("reference-ratio", "1e-6")]);
    assert_eq!(el.property::<f64>("reference-ratio"), 1e-6);
    scorer.set_reference_ratio(Some(1e-6)).unwrap();
    assert_eq!(check(&mut h, 0, &scorer), strict);
}

#[test]
fn a_reference_ratio_without_references_is_refused() {
    let (_dir, model) = signs(false);
    // While PLAYING: a warning on the bus, the old value kept, classification goes on.
    let (el, mut h) = harness(&model, &[]);
    let bus = gst::Bus::new();
    el.set_bus(Some(&bus));
    assert_eq!(results(&mut h, 0).len(), 4);
    el.set_property("reference-ratio", 1.0f64);
    assert_eq!(el.property::<f64>("reference-ratio"), -1.0, "refused, kept");
    let warning = bus.pop_filtered(&[gst::MessageType::Warning]).expect("a warning");
    let gst::MessageView::Warning(w) = warning.view() else { unreachable!() };
    let text = format!("{} {}", w.error(), w.debug().unwrap_or_default());
    assert!(text.contains("reference-ratio = 1") && text.contains("no category references"), "{text}");
    assert_eq!(results(&mut h, 1).len(), 4);
    drop(h);

    // Set before start: the element does not start, and its error names the bundle and the cause.
    init();
    let line = format!(
        "videotestsrc num-buffers=1 ! video/x-raw,format=RGB,width=64,height=64 ! odmclassify model={} \
         reference-ratio=1 ! fakesink",
        model.display()
    );
    let pipeline = gst::parse::launch(&line).unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Error])
        .expect("an error");
    let gst::MessageView::Error(e) = msg.view() else { unreachable!() };
    let text = format!("{} {}", e.error(), e.debug().unwrap_or_default());
    assert!(text.contains("signs.odm.json") && text.contains("no category references"), "{text}");
    pipeline.set_state(gst::State::Null).unwrap();
}
