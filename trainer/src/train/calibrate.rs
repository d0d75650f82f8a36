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

/// The reference rule's ratios [`fit_rule`] tries: 0.50, 0.55, ..., 2.00.
pub fn rule_ratios() -> Vec<f64> {
    (10..=40).map(|i| i as f64 * 0.05).collect()
}

/// One validation crop as the rule sees it: its distance over its nearest class's novelty threshold (`tau`;
/// `known` by the thresholds alone when at most the scale) and over its distance to the nearest category
/// reference (`rho`; `known` by the rule when at most the ratio). Infinite for a crop with no nearest class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleCrop {
    pub tau: f64,
    pub rho: f64,
}

/// The novelty thresholds and the reference rule's ratio chosen together ([`fit_rule`]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RuleFit {
    /// The ratio; `None` when the thresholds alone did best.
    pub ratio: Option<f64>,
    /// The factor every novelty threshold (global and per class) is multiplied by.
    pub scale: f64,
    /// The share of the known classes' validation crops the fit was asked to keep.
    pub tpr: f64,
    /// Shares (0..1) of the validation crops of known classes kept `known`, of the calibration novelties and of the
    /// calibration anomalies called `known`, at this fit (by its arithmetic, before any rounding).
    pub kept: f64,
    pub novelty_known: f64,
    pub anomaly_known: Option<f64>,
}

/// Choose the novelty thresholds and the reference rule's ratio together on validation data: for each ratio of
/// `ratios` (and for no rule), the one scale of the novelty thresholds that keeps `tpr` of the known classes'
/// validation crops `known` under the rule (`tau <= scale` and `rho <= ratio`); of those, the one that calls the
/// fewest calibration crops `known` (the mean of the novelties' and the anomalies' shares; the novelties' alone
/// without anomalies). A ratio that cannot keep `tpr` at any scale is not a candidate. Ties go to no rule, then to
/// the larger ratio. The novelties must be designs the rule's references do not hold (the held-out calibration
/// designs), or the rule would be judged on its own references.
pub fn fit_rule(
    known: &[RuleCrop],
    novelties: &[RuleCrop],
    anomalies: &[RuleCrop],
    tpr: f64,
    ratios: &[f64],
) -> Result<RuleFit, TrainError> {
    if known.is_empty() || novelties.is_empty() {
        return Err(TrainError::Config(format!(
            "calibrating the reference rule needs validation crops of the known classes ({}) and calibration \
             novelties, held-out seen designs ({})",
            known.len(),
            novelties.len()
        )));
    }
    if !(tpr > 0.0 && tpr <= 1.0) {
        return Err(TrainError::Config(format!(
            "calibrating the reference rule: the TPR must be in (0, 1], got {tpr}"
        )));
    }
    if let Some(r) = ratios.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
        return Err(TrainError::Config(format!("calibrating the reference rule: a ratio must be positive, got {r}")));
    }
    // As threshold_at_tpr: the smallest count that is at least `tpr` of the crops.
    let need = ((tpr * known.len() as f64) - 1e-9).ceil().max(1.0) as usize;
    let share = |crops: &[RuleCrop], scale: f64, ratio: f64| {
        crops.iter().filter(|c| c.tau <= scale && c.rho <= ratio).count() as f64 / crops.len() as f64
    };
    let mut order: Vec<f64> = ratios.to_vec();
    order.sort_by(|a, b| b.total_cmp(a));
    let mut best: Option<(f64, RuleFit)> = None;
    for ratio in [None].into_iter().chain(order.into_iter().map(Some)) {
        let r = ratio.unwrap_or(f64::INFINITY);
        let mut taus: Vec<f64> = known.iter().filter(|c| c.rho <= r).map(|c| c.tau).collect();
        if taus.len() < need {
            continue;
        }
        taus.sort_by(f64::total_cmp);
        let scale = taus[need - 1];
        if !scale.is_finite() {
            continue;
        }
        let novelty_known = share(novelties, scale, r);
        let anomaly_known = (!anomalies.is_empty()).then(|| share(anomalies, scale, r));
        let cost = anomaly_known.map_or(novelty_known, |a| 0.5 * (novelty_known + a));
        if best.as_ref().is_none_or(|b| cost < b.0) {
            let kept = share(known, scale, r);
            best = Some((cost, RuleFit { ratio, scale, tpr, kept, novelty_known, anomaly_known }));
        }
    }
    best.map(|b| b.1).ok_or_else(|| {
        TrainError::Config(format!(
            "calibrating the reference rule: no ratio keeps {:.1}% of the {} validation crops known",
            100.0 * tpr,
            known.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crops(v: &[(f64, f64)]) -> Vec<RuleCrop> {
        v.iter().map(|&(tau, rho)| RuleCrop { tau, rho }).collect()
    }

    #[test]
    fn the_rule_is_chosen_when_it_lets_fewer_novelties_through_at_the_same_tpr() {
        // Ten known crops, all nearer their class than any reference (rho < 1) and within 1.0 of their threshold.
        let known = crops(&(1..=10).map(|i| (i as f64 / 10.0, 0.5 + i as f64 / 100.0)).collect::<Vec<_>>());
        // Novelties as close as the known crops by distance, but nearer a reference (rho > 1).
        let novel = crops(&(1..=10).map(|i| (i as f64 / 10.0, 1.2 + i as f64 / 100.0)).collect::<Vec<_>>());
        let fit = fit_rule(&known, &novel, &[], 0.9, &rule_ratios()).unwrap();
        let r = fit.ratio.expect("the rule helps here");
        assert!((0.6..1.21).contains(&r), "a ratio between the two groups: {r}");
        assert_eq!(fit.scale, 0.9, "9 of 10 known crops");
        assert_eq!((fit.kept, fit.novelty_known, fit.anomaly_known), (0.9, 0.0, None));
    }

    #[test]
    fn no_rule_when_the_references_do_not_help_and_the_scale_is_the_plain_threshold() {
        // The references say nothing: every crop has the same rho.
        let known = crops(&(1..=20).map(|i| (i as f64 / 20.0, 1.0)).collect::<Vec<_>>());
        let novel = crops(&(1..=20).map(|i| (0.5 + i as f64 / 20.0, 1.0)).collect::<Vec<_>>());
        let fit = fit_rule(&known, &novel, &[], 0.95, &rule_ratios()).unwrap();
        assert_eq!(fit.ratio, None, "ties go to no rule");
        assert_eq!(fit.scale, 0.95, "threshold_at_tpr's quantile: 19 of 20");
        let plain = odm_core::metrics::threshold_at_tpr(&known.iter().map(|c| c.tau).collect::<Vec<_>>(), 0.95);
        assert_eq!(fit.scale, plain.unwrap());
        assert_eq!(fit.novelty_known, 0.45, "the 9 novelties at or below 0.95");
    }

    #[test]
    fn a_strict_ratio_raises_the_threshold_to_keep_the_tpr() {
        // Half the known crops sit far from the references (rho 0.5), half near one (rho 0.9); the novelties are
        // near references (rho 1.5) but close to a class (tau 0.3). A ratio below 1.5 stops them all; to keep 90%
        // the scale must stay at the known crops' own 90th percentile.
        let mut v: Vec<(f64, f64)> = (1..=10).map(|i| (i as f64 / 10.0, 0.5)).collect();
        v.extend((1..=10).map(|i| (i as f64 / 10.0, 0.9)));
        let fit =
            fit_rule(&crops(&v), &crops(&[(0.3, 1.5); 5]), &crops(&[(0.2, 3.0); 4]), 0.9, &rule_ratios()).unwrap();
        let r = fit.ratio.unwrap();
        assert!((0.9..1.5).contains(&r), "{r}");
        assert_eq!((fit.novelty_known, fit.anomaly_known), (0.0, Some(0.0)));
        assert!(fit.kept >= 0.9, "{}", fit.kept);
        // Ties at zero cost go to the largest ratio that still stops them: just under 1.5.
        assert!((r - 1.45).abs() < 1e-9, "{r}");
    }

    #[test]
    fn bad_input_is_refused_with_its_reason() {
        let k = crops(&[(0.5, 0.5)]);
        let e = fit_rule(&[], &k, &[], 0.95, &rule_ratios()).unwrap_err().to_string();
        assert!(e.contains("validation crops of the known classes (0)"), "{e}");
        let e = fit_rule(&k, &[], &[], 0.95, &rule_ratios()).unwrap_err().to_string();
        assert!(e.contains("held-out seen designs (0)"), "{e}");
        let e = fit_rule(&k, &k, &[], 1.5, &rule_ratios()).unwrap_err().to_string();
        assert!(e.contains("TPR"), "{e}");
        let e = fit_rule(&k, &k, &[], 0.95, &[0.0]).unwrap_err().to_string();
        assert!(e.contains("ratio must be positive"), "{e}");
        // A known crop with no class (infinite tau) cannot be kept at any finite scale.
        let e = fit_rule(&crops(&[(f64::INFINITY, f64::INFINITY)]), &k, &[], 0.95, &[1.0]).unwrap_err().to_string();
        assert!(e.contains("no ratio keeps 95.0%"), "{e}");
    }
}
