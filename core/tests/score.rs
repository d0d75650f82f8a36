// SPDX-License-Identifier: MIT OR Apache-2.0
//! Nearest-centre scoring and verdicts.

use std::path::Path;

use odm_core::{Bundle, ScoreError, Scorer, Verdict};
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
    assert_eq!(confidence(0.0, 2.0), 1.0);
    assert_eq!(confidence(2.0, 2.0), 0.5);
    assert!((confidence(4.0, 2.0) - 0.0625).abs() < 1e-12);
    assert!(confidence(1.0, 2.0) > 0.5 && confidence(2.0001, 2.0) < 0.5);
    assert_eq!((confidence(0.0, 0.0), confidence(0.1, 0.0)), (1.0, 0.0));
    assert_eq!((confidence(f64::INFINITY, 1.0), confidence(f64::NAN, 1.0)), (0.0, 0.0));
    // Monotone in the distance, and the same test as the verdict `known` at every distance.
    let mut last = 1.0;
    for i in 0..400 {
        let d = i as f64 * 0.01;
        let c = confidence(d, 1.7);
        assert!(c <= last && (0.0..=1.0).contains(&c));
        assert_eq!(c >= 0.5, d <= 1.7, "{d}");
        last = c;
    }
}
