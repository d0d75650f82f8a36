// SPDX-License-Identifier: MIT OR Apache-2.0
//! Nearest-centre scoring and verdicts.

use std::path::Path;

use odm_core::{Bundle, ScoreError, ScoreResult, Scorer, Verdict};
use serde_json::json;

fn bundle() -> Bundle {
    let v = json!({
        "format": "odm-bundle/1", "name": "t",
        "model": {"file": "m.onnx", "sha256": "0".repeat(64),
                  "input": {"name": "input", "width": 8, "height": 8, "color": "RGB",
                            "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "context": 0.0},
                  "output": {"name": "embedding", "dim": 2}},
        "classes": [{"id": 7, "label": "origin", "center": [0.0, 0.0]},
                    {"id": 9, "label": "far", "center": [10.0, 0.0], "novelty_threshold": 0.5, "anomaly_threshold": 0.6}],
        "score": {"kind": "nearest-center-euclidean", "novelty_threshold": 1.0, "anomaly_threshold": 3.0}
    });
    Bundle::from_json(&v.to_string(), Path::new("t.odm.json")).unwrap()
}

#[test]
fn nearest_centre_distance_and_verdict() {
    let s = Scorer::new(&bundle());
    let r = s.score(&[0.6, 0.8]).unwrap();
    assert_eq!((r.class_index, r.class_id, r.verdict), (0, 7, Verdict::Known));
    assert!((r.distance - 1.0).abs() < 1e-6);
    assert_eq!(s.score(&[0.0, 2.0]).unwrap().verdict, Verdict::Novelty);
    assert_eq!(s.score(&[0.0, 3.5]).unwrap().verdict, Verdict::Anomaly);
    // Per-class thresholds of class 9: 0.55 away is novelty there, though it would be known for class 7.
    let r = s.score(&[10.55, 0.0]).unwrap();
    assert_eq!((r.class_id, r.verdict), (9, Verdict::Novelty));
    assert_eq!(s.label(1), "far");
}

#[test]
fn batch_scoring_and_invalid_rows() {
    let s = Scorer::new(&bundle());
    let emb = [0.0, 0.0, 9.0, 0.0, f32::NAN, 0.0];
    let mut out = [None; 4];
    assert_eq!(s.score_batch(&emb, &mut out).unwrap(), 3);
    assert_eq!(out[0].unwrap().class_id, 7);
    assert_eq!(out[1].unwrap().class_id, 9);
    assert_eq!(out[1].unwrap().verdict, Verdict::Anomaly);
    assert!(out[2].is_none(), "a non-finite embedding must not produce a class");
    assert_eq!(s.score_batch(&emb[..5], &mut out), Err(ScoreError::Shape { len: 5, dim: 2 }));
    assert_eq!(s.score_batch(&emb, &mut out[..2]), Err(ScoreError::Output { rows: 3, out: 2 }));
    assert!(s.score(&[1.0]).is_none());
}

#[test]
fn overrides_apply_to_every_class_and_are_checked() {
    let mut s = Scorer::new(&bundle());
    s.set_overrides(Some(2.5), Some(4.0)).unwrap();
    assert_eq!(s.score(&[0.0, 2.0]).unwrap().verdict, Verdict::Known);
    assert_eq!(s.score(&[10.0, 3.0]).unwrap().verdict, Verdict::Novelty);
    assert_eq!(s.thresholds(1), (2.5, 4.0));
    // A novelty override above the bundle's anomaly threshold lifts the anomaly band with it.
    s.set_overrides(Some(5.0), None).unwrap();
    assert_eq!(s.thresholds(0), (5.0, 5.0));
    assert!(s.set_overrides(Some(f64::NAN), None).is_err());
    assert!(s.set_overrides(Some(-1.0), None).is_err());
    assert!(s.set_overrides(Some(3.0), Some(2.0)).is_err());
    s.set_overrides(None, None).unwrap();
    assert_eq!(s.thresholds(0), (1.0, 3.0));
    assert_eq!("novelty".parse::<Verdict>().unwrap(), Verdict::Novelty);
}

#[test]
fn confidence_is_one_half_exactly_at_the_novelty_threshold() {
    use odm_core::score::confidence;
    assert_eq!(confidence(0.0, 2.0, None), 1.0);
    assert_eq!(confidence(2.0, 2.0, None), 0.5);
    assert!((confidence(4.0, 2.0, None) - 0.0625).abs() < 1e-12);
    assert!(confidence(1.0, 2.0, None) > 0.5 && confidence(2.0001, 2.0, None) < 0.5);
    assert_eq!((confidence(0.0, 0.0, None), confidence(0.1, 0.0, None)), (1.0, 0.0));
    assert_eq!((confidence(f64::INFINITY, 1.0, None), confidence(f64::NAN, 1.0, None)), (0.0, 0.0));
    // A reference bound below the threshold takes its place; one above it changes nothing.
    assert_eq!(confidence(1.0, 2.0, Some(1.0)), 0.5);
    assert_eq!(confidence(1.0, 2.0, Some(3.0)), confidence(1.0, 2.0, None));
    assert_eq!((confidence(0.0, 2.0, Some(0.0)), confidence(0.1, 2.0, Some(0.0))), (1.0, 0.0));
    // Monotone in the distance, and the same test as the verdict `known` at every distance.
    let mut last = 1.0;
    for i in 0..400 {
        let d = i as f64 * 0.01;
        let c = confidence(d, 1.7, None);
        assert!(c <= last && (0.0..=1.0).contains(&c));
        assert_eq!(c >= 0.5, d <= 1.7, "{d}");
        last = c;
    }
}

/// Three classes: a taxonomy label (regulatory), an explicit category (warning), and a label with neither.
fn categorised() -> Bundle {
    let v = json!({
        "format": "odm-bundle/1", "name": "t",
        "model": {"file": "m.onnx", "sha256": "0".repeat(64),
                  "input": {"name": "input", "width": 8, "height": 8, "color": "RGB",
                            "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "context": 0.0},
                  "output": {"name": "embedding", "dim": 2}},
        "classes": [{"id": 0, "label": "regulatory--stop--g1", "center": [0.0, 0.0]},
                    {"id": 1, "label": "curve", "category": "warning", "center": [10.0, 0.0]},
                    {"id": 2, "label": "red", "center": [0.0, 10.0]}],
        "score": {"kind": "nearest-center-euclidean", "novelty_threshold": 1.0, "anomaly_threshold": 3.0}
    });
    Bundle::from_json(&v.to_string(), Path::new("t.odm.json")).unwrap()
}

#[test]
fn the_category_is_the_classs_when_known_the_nearest_classs_when_novelty_and_none_when_anomaly() {
    use odm_core::Category::{Regulatory, Warning};
    let s = Scorer::new(&categorised());
    // (embedding, nearest class id, distance, verdict, category), by hand: thresholds 1 and 3 for every class.
    let cases = [
        ([0.6, 0.8], 0, 1.0, Verdict::Known, Some(Regulatory)),
        ([0.0, -2.0], 0, 2.0, Verdict::Novelty, Some(Regulatory)),
        ([-3.5, 0.0], 0, 3.5, Verdict::Anomaly, None),
        ([10.0, 0.5], 1, 0.5, Verdict::Known, Some(Warning)),
        ([12.4, 0.0], 1, 2.4, Verdict::Novelty, Some(Warning)),
        ([14.0, 0.0], 1, 4.0, Verdict::Anomaly, None),
        ([0.0, 10.5], 2, 0.5, Verdict::Known, None),
        ([0.0, 12.0], 2, 2.0, Verdict::Novelty, None),
    ];
    for (e, id, d, verdict, category) in cases {
        let r = s.score(&e).unwrap();
        assert_eq!((r.class_id, r.verdict, r.category), (id, verdict, category), "{e:?}");
        assert!((r.distance - d).abs() < 1e-6, "{e:?}: {}", r.distance);
    }
    assert_eq!(
        (s.class_category(0), s.class_category(1), s.class_category(2)),
        (Some(Regulatory), Some(Warning), None)
    );
    assert_eq!(s.category(1, Verdict::Anomaly), None);
    // The batch path gives the same, and an override that makes a novelty known keeps its category.
    let mut out = [None; 2];
    s.score_batch(&[0.0, -2.0, -3.5, 0.0], &mut out).unwrap();
    assert_eq!(out.map(|r| r.unwrap().category), [Some(Regulatory), None]);
    let mut s = s;
    s.set_overrides(Some(5.0), Some(6.0)).unwrap();
    let r = s.score(&[-3.5, 0.0]).unwrap();
    assert_eq!((r.verdict, r.category), (Verdict::Known, Some(Regulatory)));
}

#[test]
fn a_novelty_takes_the_category_of_the_nearest_design_among_classes_and_references() {
    use odm_core::bundle::CategoryRef;
    use odm_core::Category;
    // Classes: regulatory at (0, 0), warning at (10, 0), "red" (no category) at (0, 10); novelty band (1, 3].
    let mut b = categorised();
    let near_ref = [1.5f32, 1.5];
    let r = Scorer::new(&b).score(&near_ref).unwrap();
    assert_eq!((r.verdict, r.category), (Verdict::Novelty, Some(Category::Regulatory)), "no references: nearest class");
    // A reference (a seen design, information) at (2, 2).
    b.category_refs = vec![CategoryRef {
        label: "information--c--g1".into(),
        category: Category::Information,
        center: vec![2.0, 2.0],
    }];
    b.validate(Path::new("t.odm.json")).unwrap();
    let s = Scorer::new(&b);
    let r = s.score(&near_ref).unwrap();
    assert_eq!((r.verdict, r.category, r.class_index), (Verdict::Novelty, Some(Category::Information), 0));
    // Near the class without a category: the nearest design that has one.
    let r = s.score(&[0.5, 8.5]).unwrap();
    assert_eq!((r.verdict, r.class_index, r.category), (Verdict::Novelty, 2, Some(Category::Information)));
    // Known and anomaly verdicts are untouched by references.
    assert_eq!(s.score(&[0.5, 0.0]).unwrap().category, Some(Category::Regulatory));
    assert_eq!(s.score(&[100.0, 100.0]).unwrap().category, None);
    // A reference of the wrong dimension is refused by field.
    b.category_refs[0].center = vec![1.0];
    let e = b.validate(Path::new("t.odm.json")).unwrap_err().to_string();
    assert!(e.contains("category_refs[0].center"), "{e}");
    // So is a reference that is also a class.
    b.category_refs[0].center = vec![2.0, 2.0];
    b.category_refs[0].label = b.classes[1].label.clone();
    let e = b.validate(Path::new("t.odm.json")).unwrap_err().to_string();
    assert!(e.contains("category_refs[0].label") && e.contains("also a class"), "{e}");
}

#[test]
fn a_novelty_takes_the_category_the_nearest_designs_vote_for_with_score_category_votes() {
    use odm_core::bundle::CategoryRef;
    use odm_core::Category::{Information, Regulatory, Warning};
    // Classes: regulatory at (0, 0), warning at (10, 0), "red" (no category, never voting) at (0, 10); novelty band
    // (1, 3]. Two information references at (3, 0) and (0, -3), a warning reference at (-2.5, 0).
    let mut b = categorised();
    let r =
        |label: &str, category, center: [f32; 2]| CategoryRef { label: label.into(), category, center: center.into() };
    b.category_refs = vec![
        r("information--a--g1", Information, [3.0, 0.0]),
        r("information--b--g1", Information, [0.0, -3.0]),
        r("warning--c--g1", Warning, [-2.5, 0.0]),
    ];
    let crop = [1.2f32, -1.2];
    // Distances by hand: regulatory 1.697, information (3, 0) 2.163, information (0, -3) 2.163, warning (-2.5, 0)
    // 3.889, warning (10, 0) 8.88.
    let scored = |b: &Bundle| Scorer::new(b).score(&crop).unwrap();
    assert_eq!((scored(&b).verdict, scored(&b).category), (Verdict::Novelty, Some(Regulatory)), "the nearest design");
    let with = |votes: u32| {
        let mut b = b.clone();
        b.score.category_votes = Some(votes);
        b.validate(Path::new("t.odm.json")).unwrap();
        scored(&b).category
    };
    assert_eq!(with(1), Some(Regulatory), "one vote is the nearest design");
    // Three nearest: regulatory 1/1.697 = 0.589 against information 2/2.163 = 0.925.
    assert_eq!(with(3), Some(Information));
    // Two nearest: 0.589 against one information 0.462.
    assert_eq!(with(2), Some(Regulatory));
    // Every design (more votes than designs): information 0.925 against regulatory 0.589 and warning 0.37.
    assert_eq!(with(32), Some(Information));
    // A tie goes to the nearest design's category: at (0, -2), two information references 2 away (weight 1/2 + 1/2)
    // against a warning reference 1 away (weight 1), the regulatory class 2 away outvoted.
    let mut tie = b.clone();
    tie.category_refs = vec![
        r("information--a--g1", Information, [0.0, -4.0]),
        r("information--b--g1", Information, [2.0, -2.0]),
        r("warning--c--g1", Warning, [0.0, -3.0]),
    ];
    tie.score.category_votes = Some(3);
    let t = Scorer::new(&tie).score(&[0.0, -2.0]).unwrap();
    assert_eq!((t.verdict, t.class_index, t.category), (Verdict::Novelty, 0, Some(Warning)));
    // A design at distance 0 decides alone.
    let mut on = b.clone();
    on.category_refs[2].center = vec![1.2, -1.2];
    on.score.category_votes = Some(5);
    assert_eq!(Scorer::new(&on).score(&crop).unwrap().category, Some(Warning));
    // The vote names only a novelty's category: a known crop keeps its class's, an anomaly none.
    let mut v = b.clone();
    v.score.category_votes = Some(3);
    let s = Scorer::new(&v);
    assert_eq!(s.score(&[0.3, -0.3]).unwrap().category, Some(Regulatory));
    assert_eq!(s.score(&[100.0, 100.0]).unwrap().category, None);
    // The batch path and novelty_category agree with score.
    let mut out = [None; 1];
    s.score_batch(&crop, &mut out).unwrap();
    assert_eq!(out[0].unwrap().category, Some(Information));
    assert_eq!(s.novelty_category(&crop, 0), Some(Information));
    // The setter overrides the bundle's number both ways, and refuses what the bundle's field refuses.
    let mut s = Scorer::new(&v);
    assert_eq!(s.category_votes(), 3);
    s.set_category_votes(1).unwrap();
    assert_eq!((s.category_votes(), s.score(&crop).unwrap().category), (1, Some(Regulatory)));
    let mut s = Scorer::new(&b);
    assert_eq!(s.category_votes(), 1, "absent: the nearest design");
    s.set_category_votes(3).unwrap();
    assert_eq!(s.score(&crop).unwrap().category, Some(Information));
    for bad in [0, 33] {
        let e = s.set_category_votes(bad).unwrap_err().to_string();
        assert!(e.contains(&bad.to_string()) && e.contains("1 to 32"), "{e}");
        assert_eq!(s.category_votes(), 3, "a refused number leaves the one in force");
    }
    // Out of range: refused by field.
    for bad in [0, 33] {
        let mut v = b.clone();
        v.score.category_votes = Some(bad);
        let e = v.validate(Path::new("t.odm.json")).unwrap_err().to_string();
        assert!(e.contains("score.category_votes") && e.contains(&bad.to_string()), "{e}");
    }
}

#[test]
fn the_reference_rule_turns_a_known_crop_nearer_a_seen_design_into_a_novelty() {
    use odm_core::bundle::CategoryRef;
    use odm_core::Category;
    // Classes: regulatory at (0, 0), warning at (10, 0), "red" at (0, 10); known within 1 (novelty band (1, 3]).
    // A reference (a seen design, warning) at (1.2, 0).
    let mut b = categorised();
    b.category_refs =
        vec![CategoryRef { label: "warning--c--g1".into(), category: Category::Warning, center: vec![1.2, 0.0] }];
    // (0.8, 0): 0.8 from class 0, 0.4 from the reference. (-0.8, 0): 0.8 from class 0, 2.0 from the reference.
    let (near_ref, far_ref) = ([0.8f32, 0.0], [-0.8f32, 0.0]);
    // Without the rule, the thresholds alone: both known.
    let s = Scorer::new(&b);
    assert_eq!(s.reference_ratio(), None);
    assert_eq!(s.score(&near_ref).unwrap().verdict, Verdict::Known);
    // Ratio 1: the crop nearer the reference is a novelty of the reference's category; the other stays known.
    b.score.reference_ratio = Some(1.0);
    b.validate(Path::new("t.odm.json")).unwrap();
    let s = Scorer::new(&b);
    let r = s.score(&near_ref).unwrap();
    assert_eq!((r.verdict, r.category, r.class_index), (Verdict::Novelty, Some(Category::Warning), 0));
    assert!((r.distance - 0.8).abs() < 1e-6, "the distance is still the class's: {}", r.distance);
    assert_eq!(s.verdict(0, 0.8), Verdict::Known, "verdict() is the thresholds alone");
    assert_eq!(s.verdict_at(&near_ref, 0, 0.8), Verdict::Novelty);
    let r = s.score(&far_ref).unwrap();
    assert_eq!((r.verdict, r.category), (Verdict::Known, Some(Category::Regulatory)));
    // Each result carries its bound (ratio x distance to the reference), and its confidence, made of it, is below
    // one half exactly when the rule or the thresholds make it no `known`.
    let bound = |e: &[f32]| s.score(e).unwrap().reference_bound.expect("the rule is in force");
    assert!((bound(&near_ref) - 0.4).abs() < 1e-6 && (bound(&far_ref) - 2.0).abs() < 1e-6);
    let conf = |r: ScoreResult| s.confidence(r.class_index, r.distance as f64, r.reference_bound.map(f64::from));
    assert!(conf(s.score(&near_ref).unwrap()) < 0.5 && conf(s.score(&far_ref).unwrap()) > 0.5);
    for i in 0..60 {
        for j in 0..60 {
            let e = [i as f32 * 0.1 - 3.0, j as f32 * 0.1 - 3.0];
            let r = s.score(&e).unwrap();
            assert_eq!(conf(r), r.confidence, "the result's own confidence: {e:?}");
            assert_eq!(r.confidence >= 0.5, r.verdict == Verdict::Known, "{e:?}: {r:?}");
            // The rule's test, published for calibration, is the scorer's to the bit.
            let (k, d) = s.nearest(&e).unwrap();
            let within = odm_core::score::within_reference_bound(1.0, d as f64, s.nearest_reference(&e));
            if s.verdict(k, d as f64) == Verdict::Known {
                assert_eq!(within, s.verdict_at(&e, k, d as f64) == Verdict::Known, "{e:?}");
            }
        }
    }
    // At ratios whose products round in f32 too.
    for ratio in [0.55, 0.9, 1.15, 1.45] {
        let mut t = s.clone();
        t.set_reference_ratio(Some(ratio)).unwrap();
        for i in 0..400 {
            let e = [i as f32 * 0.0031, (i % 9) as f32 * 0.011];
            let (k, d) = t.nearest(&e).unwrap();
            if t.verdict(k, d as f64) == Verdict::Known {
                let within = odm_core::score::within_reference_bound(ratio, d as f64, t.nearest_reference(&e));
                assert_eq!(within, t.score(&e).unwrap().verdict == Verdict::Known, "{ratio} {e:?}");
            }
        }
    }
    // On the bound itself the crop is known, as on the threshold: (0.6, 0) is 0.6 from its class and the reference.
    let r = s.score(&[0.6, 0.0]).unwrap();
    assert_eq!(r.distance, r.reference_bound.unwrap(), "a tie");
    assert_eq!((r.verdict, conf(r)), (Verdict::Known, 0.5));
    // A ratio beyond f32's range gives the largest finite bound, never an infinite one.
    let mut huge = s.clone();
    huge.set_reference_ratio(Some(f64::MAX)).unwrap();
    assert_eq!(huge.score(&near_ref).unwrap().reference_bound, Some(f32::MAX));
    // Ratio 2.5: 0.8 < 2.5 x 0.4, known again. Novelty and anomaly verdicts are never touched.
    let mut s = s;
    s.set_reference_ratio(Some(2.5)).unwrap();
    assert_eq!(s.score(&near_ref).unwrap().verdict, Verdict::Known);
    assert_eq!(s.score(&[1.2, 1.5]).unwrap().verdict, Verdict::Novelty);
    assert_eq!(s.score(&[-4.0, 0.0]).unwrap().verdict, Verdict::Anomaly);
    // The override is checked; None turns the rule off.
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(s.set_reference_ratio(Some(bad)), Err(odm_core::ScoreError::Ratio(..))), "{bad}");
    }
    s.set_reference_ratio(None).unwrap();
    assert_eq!(s.score(&near_ref).unwrap().verdict, Verdict::Known);
    // A bundle's ratio is checked by field: not positive, or with no references to compare with.
    b.score.reference_ratio = Some(-1.0);
    let e = b.validate(Path::new("t.odm.json")).unwrap_err().to_string();
    assert!(e.contains("score.reference_ratio"), "{e}");
    b.score.reference_ratio = Some(1.0);
    b.category_refs.clear();
    let e = b.validate(Path::new("t.odm.json")).unwrap_err().to_string();
    assert!(e.contains("score.reference_ratio") && e.contains("category_refs"), "{e}");
    // And a scorer without references refuses the override.
    b.score.reference_ratio = None;
    let mut s = Scorer::new(&b);
    assert!(matches!(s.set_reference_ratio(Some(1.0)), Err(odm_core::ScoreError::Ratio(..))));
}
