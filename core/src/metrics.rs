// SPDX-License-Identifier: MIT OR Apache-2.0
//! Out-of-distribution metrics as defined in Masana et al. (BMVC 2018), supplementary A.
//!
//! **Direction.** Every score here is an out-of-distribution score: larger means further from the training
//! distribution (odm uses the distance to the nearest class centre). A crop is accepted as in-distribution when its
//! score is at or below a threshold `t`. In-distribution samples are the positives for TPR and FPR:
//! `TPR(t) = P(score_in <= t)`, `FPR(t) = P(score_out <= t)`.
//!
//! * FPR at 95% TPR: `t` is the smallest in-distribution score with `TPR(t) >= 0.95`; the FPR there.
//! * Detection error: `0.5 (1 - TPR(t)) + 0.5 FPR(t)` at that same `t`.
//! * AUROC: area under the ROC curve, in-distribution positive; equals `P(score_out > score_in)` with ties counted
//!   one half (scikit-learn's `roc_auc_score(y_in, -score)`).
//! * AUPR-in: average precision with in-distribution positive and `-score` as the decision value;
//!   AUPR-out: out-of-distribution positive and `score` as the decision value (scikit-learn's
//!   `average_precision_score`: the step-wise sum `sum_n (R_n - R_{n-1}) P_n`, no interpolation).
//!
//! All functions return fractions in [0, 1]; reports multiply by 100.

use serde::{Deserialize, Serialize};

use crate::error::MetricsError;

fn check(scores: &[f64], what: &'static str) -> Result<(), MetricsError> {
    if scores.is_empty() {
        return Err(MetricsError::Empty(what));
    }
    if scores.iter().any(|s| !s.is_finite()) {
        return Err(MetricsError::NonFinite(what));
    }
    Ok(())
}

fn sorted(scores: &[f64]) -> Vec<f64> {
    let mut v = scores.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// Threshold calibration: the smallest in-distribution score `t` such that at least `tpr` of `in_scores` are `<= t`.
pub fn threshold_at_tpr(in_scores: &[f64], tpr: f64) -> Result<f64, MetricsError> {
    check(in_scores, "in-distribution")?;
    if !(tpr > 0.0 && tpr <= 1.0) {
        return Err(MetricsError::Tpr(tpr));
    }
    let s = sorted(in_scores);
    // ceil with a tolerance so that 0.95 * 20 = 19.000000000000004 asks for 19 samples, not 20.
    let k = ((tpr * s.len() as f64) - 1e-9).ceil().max(1.0) as usize;
    Ok(s[k.min(s.len()) - 1])
}

/// Fraction of `scores` at or below `t`.
pub fn rate_at_or_below(scores: &[f64], t: f64) -> f64 {
    scores.iter().filter(|&&s| s <= t).count() as f64 / scores.len() as f64
}

/// The operating point at a target TPR: (threshold, actual TPR, FPR).
pub fn operating_point(in_scores: &[f64], out_scores: &[f64], tpr: f64) -> Result<(f64, f64, f64), MetricsError> {
    check(out_scores, "out-of-distribution")?;
    let t = threshold_at_tpr(in_scores, tpr)?;
    Ok((t, rate_at_or_below(in_scores, t), rate_at_or_below(out_scores, t)))
}

/// FPR at the given TPR (the paper reports it at 95%).
pub fn fpr_at_tpr(in_scores: &[f64], out_scores: &[f64], tpr: f64) -> Result<f64, MetricsError> {
    Ok(operating_point(in_scores, out_scores, tpr)?.2)
}

/// Detection error `0.5 (1 - TPR) + 0.5 FPR` at the operating point of the given TPR.
pub fn detection_error(in_scores: &[f64], out_scores: &[f64], tpr: f64) -> Result<f64, MetricsError> {
    let (_, tpr_actual, fpr) = operating_point(in_scores, out_scores, tpr)?;
    Ok(0.5 * (1.0 - tpr_actual) + 0.5 * fpr)
}

/// AUROC with in-distribution positive: `P(score_out > score_in) + 0.5 P(score_out == score_in)`.
pub fn auroc(in_scores: &[f64], out_scores: &[f64]) -> Result<f64, MetricsError> {
    check(in_scores, "in-distribution")?;
    check(out_scores, "out-of-distribution")?;
    let outs = sorted(out_scores);
    let mut wins = 0.0f64;
    for &s in in_scores {
        // Out scores strictly above s, and equal to s.
        let below_or_eq = outs.partition_point(|&o| o <= s);
        let below = outs.partition_point(|&o| o < s);
        wins += (outs.len() - below_or_eq) as f64 + 0.5 * (below_or_eq - below) as f64;
    }
    Ok(wins / (in_scores.len() as f64 * outs.len() as f64))
}

/// Average precision (scikit-learn's definition) of positives against negatives; larger values mean "positive".
pub fn average_precision(pos: &[f64], neg: &[f64]) -> Result<f64, MetricsError> {
    check(pos, "positive")?;
    if neg.iter().any(|s| !s.is_finite()) {
        return Err(MetricsError::NonFinite("negative"));
    }
    let mut all: Vec<(f64, bool)> = pos.iter().map(|&s| (s, true)).chain(neg.iter().map(|&s| (s, false))).collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let total_pos = pos.len() as f64;
    let (mut tp, mut fp, mut ap, mut prev_recall) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut i = 0;
    while i < all.len() {
        // One threshold per distinct value: ties enter together.
        let v = all[i].0;
        while i < all.len() && all[i].0 == v {
            if all[i].1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        let recall = tp / total_pos;
        ap += (recall - prev_recall) * (tp / (tp + fp));
        prev_recall = recall;
    }
    Ok(ap)
}

/// AUPR with in-distribution as the positive class (decision value `-score`).
pub fn aupr_in(in_scores: &[f64], out_scores: &[f64]) -> Result<f64, MetricsError> {
    check(out_scores, "out-of-distribution")?;
    let neg = |v: &[f64]| v.iter().map(|s| -s).collect::<Vec<_>>();
    average_precision(&neg(in_scores), &neg(out_scores))
}

/// AUPR with out-of-distribution as the positive class (decision value `score`).
pub fn aupr_out(in_scores: &[f64], out_scores: &[f64]) -> Result<f64, MetricsError> {
    check(in_scores, "in-distribution")?;
    average_precision(out_scores, in_scores)
}

/// Fraction of predictions equal to the labels.
pub fn accuracy<T: PartialEq>(pred: &[T], truth: &[T]) -> Result<f64, MetricsError> {
    if pred.len() != truth.len() {
        return Err(MetricsError::Length(pred.len(), truth.len()));
    }
    if pred.is_empty() {
        return Err(MetricsError::Empty("prediction"));
    }
    Ok(pred.iter().zip(truth).filter(|(p, t)| p == t).count() as f64 / pred.len() as f64)
}

/// One row of the paper's Table 2 for one out-of-distribution set, as fractions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OodReport {
    pub fpr95: f64,
    pub det_err: f64,
    pub auroc: f64,
    pub aupr_in: f64,
    pub aupr_out: f64,
}

impl OodReport {
    /// All five metrics at 95% TPR.
    pub fn compute(in_scores: &[f64], out_scores: &[f64]) -> Result<OodReport, MetricsError> {
        Ok(OodReport {
            fpr95: fpr_at_tpr(in_scores, out_scores, 0.95)?,
            det_err: detection_error(in_scores, out_scores, 0.95)?,
            auroc: auroc(in_scores, out_scores)?,
            aupr_in: aupr_in(in_scores, out_scores)?,
            aupr_out: aupr_out(in_scores, out_scores)?,
        })
    }

    /// The same row in percent, as `metrics.json` and the reports write it.
    pub fn percent(&self) -> OodReport {
        OodReport {
            fpr95: 100.0 * self.fpr95,
            det_err: 100.0 * self.det_err,
            auroc: 100.0 * self.auroc,
            aupr_in: 100.0 * self.aupr_in,
            aupr_out: 100.0 * self.aupr_out,
        }
    }
}
