// SPDX-License-Identifier: MIT OR Apache-2.0
//! The reference rule end to end, on the shipped signs model and bundle with real ONNX Runtime: a crop within the
//! novelty threshold is `known` only when its nearest class is no further than `reference-ratio` times the nearest of
//! the bundle's category references (the seen designs' centres); otherwise `novelty`. The element's results equal
//! odm-core's scorer on the same embeddings, the property changes the rule while PLAYING, the confidence and the
//! `reference-bound` follow the rule on buffers and in JSON lines, and a ratio on a bundle with no references is
//! refused (a warning while PLAYING, an error naming the bundle at start).

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

#[test]
fn the_category_votes_property_sets_how_many_designs_name_a_novelty_as_the_scorer_does() {
    let (dir, model) = signs(true);
    let bundle = Bundle::open(&dir.path().join("signs.odm.json")).unwrap();
    assert_eq!(bundle.score.category_votes, Some(5), "the shipped bundle votes");
    // Every crop a novelty (a tiny reference ratio within huge thresholds), so that each result carries the
    // category the votes name.
    let props = [("novelty-threshold", "1e6"), ("anomaly-threshold", "2e6"), ("reference-ratio", "1e-6")];
    let (el, mut h) = harness(&model, &props);
    let mut scorer = Scorer::new(&bundle);
    scorer.set_overrides(Some(1e6), Some(2e6)).unwrap();
    scorer.set_reference_ratio(Some(1e-6)).unwrap();
    let mut pts = 0;
    let mut categories = |h: &mut gst_check::Harness, el: &gst::Element, votes: u32, scorer: &mut Scorer| {
        el.set_property("category-votes", votes);
        scorer.set_category_votes(if votes == 0 { 5 } else { votes }).unwrap();
        pts += 1;
        let got = results(h, pts);
        assert_eq!(got.len(), 4);
        let mut cats = Vec::new();
        for (id, verdict, category, e) in &got {
            let want = scorer.score(e).unwrap();
            assert_eq!((*id, *verdict, *category), (want.class_id, Verdict::Novelty, want.category), "{e:?}");
            // The number asked for, not the bundle's, named it: the scorer with the bundle's number on the same
            // embedding.
            cats.push((*category, Scorer::new(&bundle).novelty_category(e, scorer.score(e).unwrap().class_index)));
        }
        cats
    };
    assert_eq!(el.property::<u32>("category-votes"), 0, "the bundle's own");
    let own = categories(&mut h, &el, 0, &mut scorer);
    assert!(own.iter().all(|(got, bundles)| got == bundles), "{own:?}");
    let mut differs = false;
    for votes in [1, 2, 3, 9, 32] {
        let got = categories(&mut h, &el, votes, &mut scorer);
        differs |= got.iter().any(|(got, bundles)| got != bundles);
        assert_eq!(el.property::<u32>("category-votes"), votes);
    }
    assert!(differs, "some number of votes names another category than the bundle's 5 on these crops");
    assert_eq!(categories(&mut h, &el, 0, &mut scorer), own, "0 restores the bundle's");
    el.set_property("category-votes", 3u32);
    // A bundle reloaded while PLAYING keeps the number in force.
    el.set_property("bundle", dir.path().join("signs.odm.json").display().to_string());
    scorer.set_category_votes(3).unwrap();
    pts += 1;
    for (id, verdict, category, e) in results(&mut h, pts) {
        let want = scorer.score(&e).unwrap();
        assert_eq!((id, verdict, category), (want.class_id, want.verdict, want.category));
    }
    drop(h);
    // Set before start: in force from the first frame.
    let (el, mut h) = harness(&model, &[props[0], props[1], props[2], ("category-votes", "1")]);
    assert_eq!(el.property::<u32>("category-votes"), 1);
    scorer.set_category_votes(1).unwrap();
    for (id, verdict, category, e) in results(&mut h, 0) {
        let want = scorer.score(&e).unwrap();
        assert_eq!((id, verdict, category), (want.class_id, want.verdict, want.category));
    }
}

/// Each `odm` structure of a buffer (the ROI params, then the custom meta's entries).
fn structures(buf: &gst::BufferRef) -> Vec<gst::Structure> {
    let params = buf
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .filter_map(|m| m.param("odm").map(|s| s.to_owned()))
        .collect::<Vec<_>>();
    let meta = gst::meta::CustomMeta::from_buffer(buf, meta::RESULTS_META).expect("the results meta");
    let custom = meta.structure().get::<gst::Array>("results").unwrap();
    params.into_iter().chain(custom.iter().map(|v| v.get::<gst::Structure>().unwrap())).collect()
}

fn embedding_of(s: &gst::StructureRef) -> Vec<f32> {
    s.get::<gst::Array>("embedding").unwrap().iter().map(|v| v.get::<f32>().unwrap()).collect()
}

#[test]
fn the_confidence_and_the_reference_bound_follow_the_rule_on_buffers_and_in_json_lines() {
    let (dir, model) = signs(true);
    let bundle = Bundle::open(&dir.path().join("signs.odm.json")).unwrap();
    let out = dir.path().join("out.jsonl");
    init();
    // Every crop within the thresholds, so that the rule alone decides between known and novelty.
    let mut h = gst_check::Harness::new_parse(&format!(
        "odmclassify name=c model={} attach-embedding=true novelty-threshold=1e6 anomaly-threshold=2e6 ! odmexport \
         location={}",
        model.display(),
        out.display()
    ));
    h.set_src_caps(rgb_caps(64, 64));
    let el = h.element().unwrap().downcast::<gst::Bin>().unwrap().by_name("c").unwrap();
    let mut scorer = Scorer::new(&bundle);
    scorer.set_overrides(Some(1e6), Some(2e6)).unwrap();
    let mut frame_at = |pts: u64| {
        h.push(frame(pts)).unwrap();
        structures(&h.pull().unwrap())
    };

    // The rule off: every crop known, no bound, the confidence of the distance alone.
    el.set_property("reference-ratio", 0.0f64);
    let off = frame_at(0);
    assert_eq!(off.len(), 8, "4 ROI params and 4 custom-meta entries");
    for s in &off {
        assert_eq!(s.get::<&str>("verdict").unwrap(), "known", "{s}");
        assert!(!s.has_field("reference-bound"), "{s}");
        assert!(s.get::<f64>("confidence").unwrap() > 0.5, "{s}");
    }
    // A ratio between the crops' own distance ratios (class / nearest reference): some known, some not.
    let mut q: Vec<f64> = off[..4]
        .iter()
        .map(|s| {
            let e = embedding_of(s);
            scorer.nearest(&e).unwrap().1 as f64 / scorer.nearest_reference(&e)
        })
        .collect();
    q.sort_by(f64::total_cmp);
    assert!(q[1] < q[2], "the four crops sit at distinct ratios: {q:?}");
    let ratio = (q[1] + q[2]) / 2.0;
    el.set_property("reference-ratio", ratio);
    scorer.set_reference_ratio(Some(ratio)).unwrap();
    let on = frame_at(1);
    let mut verdicts = Vec::new();
    for s in &on {
        let want = scorer.score(&embedding_of(s)).unwrap();
        let (verdict, confidence) = (s.get::<&str>("verdict").unwrap(), s.get::<f64>("confidence").unwrap());
        assert_eq!(verdict, want.verdict.as_str(), "{s}");
        assert_eq!(s.get::<f64>("reference-bound").ok(), want.reference_bound.map(f64::from), "{s}");
        assert_eq!(confidence, want.confidence, "{s}");
        assert_eq!(confidence >= 0.5, want.verdict == Verdict::Known, "{s}");
        verdicts.push(want.verdict);
    }
    assert!(verdicts.contains(&Verdict::Known) && verdicts.contains(&Verdict::Novelty), "{verdicts:?}");
    // The Rust reader reads the confidence and the bound back.
    let pushed = {
        h.push(frame(2)).unwrap();
        h.pull().unwrap()
    };
    let last = structures(&pushed);
    for r in meta::read(&pushed) {
        let Outcome::Classified { verdict, confidence, reference_bound, .. } = r.outcome else {
            panic!("skipped: {r:?}")
        };
        let want = scorer.score(r.embedding.as_deref().unwrap()).unwrap();
        assert_eq!(
            (verdict, confidence, reference_bound),
            (want.verdict, want.confidence, want.reference_bound.map(f64::from))
        );
    }
    // A reference-bound field of another type is refused as the whole result (never read as no bound, which would
    // change what the result says); an absent one is no rule.
    let mut s = last[0].clone();
    assert!(gstodm::meta::RoiResult::from_structure(&s).is_some());
    s.set("reference-bound", "far");
    assert_eq!(gstodm::meta::RoiResult::from_structure(&s), None);
    s.remove_field("reference-bound");
    let r = gstodm::meta::RoiResult::from_structure(&s).unwrap();
    assert!(matches!(r.outcome, Outcome::Classified { reference_bound: None, .. }), "{r:?}");
    drop(h);

    // odmexport's lines: the same fields with underscores, and the schema's.
    let lines: Vec<Value> =
        fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    let schema = results_schema();
    for (line, structures) in lines.iter().zip([&off, &on, &last]) {
        assert_eq!(schema_errors(&schema, line), Vec::<String>::new(), "{line}");
        for roi in line["rois"].as_array().unwrap() {
            let id = roi["id"].as_i64().unwrap() as i32;
            let s = structures.iter().find(|s| s.get::<i32>("roi-id").unwrap() == id).unwrap();
            assert_eq!(roi["verdict"].as_str(), s.get::<&str>("verdict").ok(), "{roi}");
            // serde_json reads floats to within an ulp or so (no float_roundtrip).
            let near = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                (a, b) => a == b,
            };
            assert!(near(roi["confidence"].as_f64(), s.get::<f64>("confidence").ok()), "{roi}: {s}");
            assert!(near(roi["reference_bound"].as_f64(), s.get::<f64>("reference-bound").ok()), "{roi}: {s}");
        }
    }
}

/// A reused result (`reclassify-interval`) is the earlier frame's whole: verdict, distance, bound and confidence.
#[test]
fn a_reused_result_keeps_the_bound_and_confidence_it_was_scored_with() {
    let (_dir, model) = signs(true);
    let (_el, mut h) = harness(&model, &[("reclassify-interval", "2")]);
    let mut seen = Vec::new();
    for pts in 0..2 {
        h.push(frame(pts)).unwrap();
        let mut results = meta::read(&h.pull().unwrap());
        results.sort_by_key(|r| r.roi_id);
        seen.push(results);
    }
    assert_eq!(seen[0].len(), 4);
    for (first, second) in seen[0].iter().zip(&seen[1]) {
        assert!(!first.reused && second.reused, "{second:?}");
        assert_eq!(first.outcome, second.outcome);
        let Outcome::Classified { reference_bound, .. } = &second.outcome else { panic!("skipped: {second:?}") };
        assert!(reference_bound.is_some(), "the shipped bundle's rule is in force: {second:?}");
    }
}
