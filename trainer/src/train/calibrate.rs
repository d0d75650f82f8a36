// SPDX-License-Identifier: MIT OR Apache-2.0
//! Thresholds from validation data: the novelty threshold keeps the target share of in-distribution crops, the
//! anomaly threshold separates novelties from anomalies.

use odm_core::metrics::threshold_at_tpr;
use odm_core::Scorer;
use tch::Tensor;

use super::config::TrainConfig;
use super::embed::distances;
use super::rundata::RunData;
use crate::error::TrainError;

/// What a collapsed calibration means, for `train` and `inspect`.
pub const COLLAPSE_WARNING: &str = "calibration collapsed: the anomaly threshold equals the novelty threshold, so \
     this bundle never says `novelty`: every crop it does not accept as a known sign is called an `anomaly`. The \
     distance ranks known against unknown but does not separate unknown signs from non-signs on the calibration data. \
     Mine anomalies (--seen-anomaly-dir) or set the thresholds by hand (odmclassify novelty-threshold / \
     anomaly-threshold).";

/// Fewest validation crops a class needs for its own novelty threshold; classes with fewer use the global one.
pub const PER_CLASS_MIN: usize = 30;

/// Calibrated thresholds: global, and per class where a class has enough validation crops.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    pub novelty: f64,
    pub anomaly: f64,
    /// Per class (bundle order): (novelty, anomaly), `None` below [`PER_CLASS_MIN`] crops.
    pub per_class: Vec<Option<(f64, f64)>>,
}

/// Novelty threshold: the target TPR of in-distribution validation distances, over all of them and per nearest class.
/// Anomaly threshold: the distance that best separates the calibration novelties (held-out seen OOD classes) from
/// validation anomalies (balanced error), never below the novelty threshold; without anomaly data, the 99th
/// percentile of the novelties. A class's anomaly threshold is the global one, raised to its novelty threshold.
///
/// `embed` turns crops into embeddings: the run's network, or an ONNX file in ONNX Runtime (`bundle --onnx`).
pub fn calibrate(
    cfg: &TrainConfig,
    embed: &mut dyn FnMut(&Tensor) -> Result<Tensor, TrainError>,
    data: &RunData,
    scorer: &Scorer,
) -> Result<Thresholds, TrainError> {
    let bad = |e: odm_core::MetricsError| TrainError::Config(format!("calibration: {e}"));
    let val = distances(scorer, &embed(&data.val_in.x)?);
    let val_in: Vec<f64> = val.iter().map(|p| p.1).collect();
    let nov = threshold_at_tpr(&val_in, cfg.tpr).map_err(bad)?;
    let novelties: Vec<f64> = match &data.val_ood {
        Some(t) if !t.y.is_empty() => distances(scorer, &embed(&t.x)?).iter().map(|p| p.1).collect(),
        _ => val_in.clone(),
    };
    let mut anomalies: Vec<f64> = Vec::new();
    for (_, t) in &data.val_anomaly {
        anomalies.extend(distances(scorer, &embed(&t.x)?).into_iter().map(|p| p.1));
    }
    let median = |v: &[f64]| {
        let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        s.sort_by(f64::total_cmp);
        s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
    };
    if !anomalies.is_empty() && median(&anomalies) < median(&novelties) {
        eprintln!(
            "odm-train: warning: validation anomalies lie closer to the class centres than the calibration novelties \
             (median {:.2} < {:.2}): the distance cannot tell novelties from anomalies here, so the anomaly threshold \
             falls to the novelty threshold and every unknown crop is reported as an anomaly",
            median(&anomalies),
            median(&novelties)
        );
    }
    let ano = if anomalies.is_empty() {
        threshold_at_tpr(&novelties, 0.99).map_err(bad)?
    } else {
        let mut cands: Vec<f64> = novelties.iter().chain(&anomalies).copied().filter(|v| v.is_finite()).collect();
        cands.sort_by(f64::total_cmp);
        let err = |t: f64| {
            0.5 * novelties.iter().filter(|&&v| v > t).count() as f64 / novelties.len() as f64
                + 0.5 * anomalies.iter().filter(|&&v| v <= t).count() as f64 / anomalies.len() as f64
        };
        cands.iter().copied().min_by(|a, b| err(*a).total_cmp(&err(*b))).unwrap_or(nov)
    }
    .max(nov);
    if ano <= nov {
        eprintln!("odm-train: WARNING: {COLLAPSE_WARNING}");
    }
    let mut by_class = vec![Vec::new(); scorer.num_classes()];
    for &(k, d) in &val {
        if let Some(v) = by_class.get_mut(k) {
            v.push(d);
        }
    }
    let per_class = by_class
        .iter()
        .map(|d| {
            if d.len() < PER_CLASS_MIN {
                return Ok(None);
            }
            let n = threshold_at_tpr(d, cfg.tpr).map_err(bad)?;
            Ok(Some((n, ano.max(n))))
        })
        .collect::<Result<_, TrainError>>()?;
    Ok(Thresholds { novelty: nov, anomaly: ano, per_class })
}
