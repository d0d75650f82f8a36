// SPDX-License-Identifier: MIT OR Apache-2.0
//! OOD metrics against values computed independently with scikit-learn 1.x (numbers written in).
//!
//! Reference script (Python): `roc_auc_score(y, -s)`, `average_precision_score(y, -s)` (AUPR-in),
//! `average_precision_score(1 - y, s)` (AUPR-out), with `y = 1` for in-distribution and `s` the distance;
//! FPR at 95% TPR as `fpr[argmax(tpr >= 0.95)]` of `roc_curve(y, -s, drop_intermediate=False)`.

use odm_core::metrics::*;
use odm_core::MetricsError;

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

struct Case {
    name: &'static str,
    ins: &'static [f64],
    outs: &'static [f64],
    auroc: f64,
    aupr_in: f64,
    aupr_out: f64,
}

const CASES: &[Case] = &[
    Case {
        name: "distinct",
        ins: &[0.1, 0.4, 0.35, 0.8, 0.2, 0.05, 0.6, 0.3],
        outs: &[0.5, 0.9, 0.7, 0.45, 1.2, 0.33],
        auroc: 0.8125,
        aupr_in: 0.882142857142857,
        aupr_out: 0.788492063492063,
    },
    Case {
        name: "ties",
        ins: &[1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0],
        outs: &[2.0, 3.0, 3.0, 5.0, 5.0, 1.0],
        auroc: 0.607142857142857,
        aupr_in: 0.590909090909091,
        aupr_out: 0.652680652680653,
    },
    Case { name: "all-equal", ins: &[1.0, 1.0, 1.0], outs: &[1.0, 1.0], auroc: 0.5, aupr_in: 0.6, aupr_out: 0.4 },
    Case { name: "tiny", ins: &[0.0], outs: &[1.0], auroc: 1.0, aupr_in: 1.0, aupr_out: 1.0 },
    Case {
        name: "reversed",
        ins: &[5.0, 6.0],
        outs: &[1.0, 2.0, 3.0],
        auroc: 0.0,
        aupr_in: 0.325,
        aupr_out: 0.477777777777778,
    },
];

#[test]
fn auroc_and_aupr_match_scikit_learn() {
    for c in CASES {
        let tol = |a: f64, b: f64, what: &str| assert!((a - b).abs() < 1e-12, "{}: {what} {a} != {b}", c.name);
        tol(auroc(c.ins, c.outs).unwrap(), c.auroc, "auroc");
        tol(aupr_in(c.ins, c.outs).unwrap(), c.aupr_in, "aupr_in");
        tol(aupr_out(c.ins, c.outs).unwrap(), c.aupr_out, "aupr_out");
    }
}

// numpy RandomState(0): normal(1.0, 0.5, 40) and normal(2.0, 0.7, 30), rounded to 2 decimals (many ties).
const IN40: &[f64] = &[
    1.88, 1.2, 1.49, 2.12, 1.93, 0.51, 1.48, 0.92, 0.95, 1.21, 1.07, 1.73, 1.38, 1.06, 1.22, 1.17, 1.75, 0.9, 1.16,
    0.57, -0.28, 1.33, 1.43, 0.63, 2.13, 0.27, 1.02, 0.91, 1.77, 1.73, 1.08, 1.19, 0.56, 0.01, 0.83, 1.08, 1.62, 1.6,
    0.81, 0.85,
];
const OUT30: &[f64] = &[
    1.27, 1.01, 0.81, 3.37, 1.64, 1.69, 1.12, 2.54, 0.87, 1.85, 1.37, 2.27, 1.64, 1.17, 1.98, 2.3, 2.05, 2.21, 1.56,
    1.75, 1.53, 1.75, 1.43, 0.79, 2.12, 1.72, 0.86, 2.32, 1.36, 2.04,
];

#[test]
fn fpr95_detection_error_and_areas_on_overlapping_sets() {
    let (t, tpr, fpr) = operating_point(IN40, OUT30, 0.95).unwrap();
    close(t, 1.93);
    close(tpr, 0.95);
    close(fpr, 2.0 / 3.0);
    close(fpr_at_tpr(IN40, OUT30, 0.95).unwrap(), 0.6666666666666666);
    close(detection_error(IN40, OUT30, 0.95).unwrap(), 0.35833333333333334);
    close(auroc(IN40, OUT30).unwrap(), 0.731666666666667);
    close(aupr_in(IN40, OUT30).unwrap(), 0.780359429388265);
    close(aupr_out(IN40, OUT30).unwrap(), 0.706311911519869);
    let r = OodReport::compute(IN40, OUT30).unwrap().percent();
    assert!((r.auroc - 73.1666666666667).abs() < 1e-9);
}

#[test]
fn calibration_keeps_the_target_fraction() {
    let ins: Vec<f64> = (1..=20).map(|i| i as f64).collect();
    // 95% of 20 is 19 samples: the 19th smallest, not the 20th (floating point 0.95 * 20 > 19).
    close(threshold_at_tpr(&ins, 0.95).unwrap(), 19.0);
    close(threshold_at_tpr(&ins, 1.0).unwrap(), 20.0);
    close(threshold_at_tpr(&ins, 0.01).unwrap(), 1.0);
    close(threshold_at_tpr(&[3.0], 0.95).unwrap(), 3.0);
    // Ties at the threshold: all of them are kept, the TPR exceeds the target.
    let tied = [1.0, 2.0, 2.0, 2.0];
    close(threshold_at_tpr(&tied, 0.5).unwrap(), 2.0);
    close(rate_at_or_below(&tied, 2.0), 1.0);
}

#[test]
fn separable_and_all_equal_extremes() {
    let ins = [0.1, 0.2, 0.3];
    let outs = [5.0, 6.0];
    close(fpr_at_tpr(&ins, &outs, 0.95).unwrap(), 0.0);
    close(detection_error(&ins, &outs, 0.95).unwrap(), 0.0);
    // All scores equal: every out sample is accepted with the in samples.
    let same = [2.0, 2.0, 2.0];
    close(fpr_at_tpr(&same, &same, 0.95).unwrap(), 1.0);
    close(detection_error(&same, &same, 0.95).unwrap(), 0.5);
}

#[test]
fn refuses_empty_and_non_finite_sets() {
    assert_eq!(auroc(&[], &[1.0]), Err(MetricsError::Empty("in-distribution")));
    assert_eq!(auroc(&[1.0], &[]), Err(MetricsError::Empty("out-of-distribution")));
    assert_eq!(fpr_at_tpr(&[f64::NAN], &[1.0], 0.95), Err(MetricsError::NonFinite("in-distribution")));
    assert_eq!(aupr_out(&[1.0], &[f64::INFINITY]), Err(MetricsError::NonFinite("positive")));
    assert_eq!(threshold_at_tpr(&[1.0], 0.0), Err(MetricsError::Tpr(0.0)));
    assert_eq!(threshold_at_tpr(&[1.0], 1.5), Err(MetricsError::Tpr(1.5)));
}

#[test]
fn accuracy_counts_matches() {
    close(accuracy(&[1, 2, 3, 4], &[1, 2, 0, 4]).unwrap(), 0.75);
    assert_eq!(accuracy::<i32>(&[], &[]), Err(MetricsError::Empty("prediction")));
    assert_eq!(accuracy(&[1], &[1, 2]), Err(MetricsError::Length(1, 2)));
}
