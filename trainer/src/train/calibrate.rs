// SPDX-License-Identifier: MIT OR Apache-2.0
//! Thresholds from validation data: the novelty threshold keeps the target share of in-distribution crops, the
//! anomaly threshold separates novelties from anomalies.

use odm_core::metrics::threshold_at_tpr;
use odm_core::Scorer;
use tch::Tensor;

use super::config::TrainConfig;
use super::embed::{distances, to_vec};
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
             (median {:.2} < {:.2}): the distance tells novelties from anomalies poorly here, and the anomaly \
             threshold that best separates them is unreliable (a second warning follows if it falls to the novelty \
             threshold)",
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

/// The reference rule's ratios [`fit_rule`] tries: 0.50, 0.55, ..., 2.00 (each the nearest `f64` to its decimal).
pub fn rule_ratios() -> Vec<f64> {
    (10..=40).map(|i| i as f64 / 20.0).collect()
}

/// One validation crop as the scorer sees it: its distance to its nearest class, that class's novelty threshold in
/// the bundle, and its distance to the nearest category reference. A crop with no nearest class (an embedding the
/// scorer refuses) has an infinite distance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleCrop {
    pub distance: f64,
    pub threshold: f64,
    pub reference: f64,
}

impl RuleCrop {
    /// Whether the scorer calls this crop `known` once every novelty threshold is multiplied by `scale` and the
    /// reference rule is at `ratio` (none: the thresholds alone): the scorer's own comparisons, to the last bit.
    pub fn known(&self, scale: f64, ratio: Option<f64>) -> bool {
        self.distance <= self.threshold * scale && self.within_rule(ratio)
    }

    /// Whether the reference rule at `ratio` (none: no rule) lets this crop stay `known`, whatever the thresholds.
    fn within_rule(&self, ratio: Option<f64>) -> bool {
        self.distance.is_finite()
            && ratio.is_none_or(|r| odm_core::score::within_reference_bound(r, self.distance, self.reference))
    }

    /// The smallest scale at which the thresholds keep this crop (before rounding: see [`fit_rule`]).
    fn scale_needed(&self) -> f64 {
        if self.distance <= 0.0 {
            0.0
        } else {
            self.distance / self.threshold
        }
    }
}

/// Each embedding as the reference rule sees it ([`RuleCrop`]): its distance to its nearest class, that class's
/// novelty threshold and its distance to the nearest category reference, through odm-core's scorer.
pub fn rule_crops(scorer: &Scorer, e: &Tensor) -> Vec<RuleCrop> {
    let v = to_vec(e);
    v.chunks_exact(scorer.dim())
        .map(|row| match scorer.nearest(row) {
            Some((k, d)) => RuleCrop {
                distance: d as f64,
                threshold: scorer.thresholds(k).0,
                reference: scorer.nearest_reference(row),
            },
            None => RuleCrop { distance: f64::INFINITY, threshold: 1.0, reference: f64::INFINITY },
        })
        .collect()
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
    /// calibration anomalies called `known`, at this fit, as the scorer decides.
    pub kept: f64,
    pub novelty_known: f64,
    pub anomaly_known: Option<f64>,
    /// How many validation crops of the known classes, calibration novelties and calibration anomalies it was fit on.
    #[serde(default)]
    pub crops: [usize; 3],
}

impl RuleFit {
    /// One sentence: the ratio, the scale and what they do on the validation crops.
    pub fn describe(&self) -> String {
        format!(
            "The novelty thresholds and the reference rule chosen together on validation data to keep {:.1}% of \
             known crops: ratio {}, thresholds x {:.4}; on the validation crops ({} known, {} novelties, {} \
             anomalies) {:.2}% of the known classes' kept, {:.2}% of the calibration novelties{} called `known`.",
            100.0 * self.tpr,
            self.ratio.map_or("none (the thresholds alone)".into(), |r| format!("{r:.2}")),
            self.scale,
            self.crops[0],
            self.crops[1],
            self.crops[2],
            100.0 * self.kept,
            100.0 * self.novelty_known,
            self.anomaly_known
                .map_or(String::new(), |a| format!(" and {:.2}% of the calibration anomalies", 100.0 * a))
        )
    }
}

/// Choose the novelty thresholds and the reference rule's ratio together on validation data: for each ratio of
/// `ratios` (and for no rule), the smallest scale of the novelty thresholds at which the scorer keeps `tpr` of the
/// known classes' validation crops `known` under the rule ([`RuleCrop::known`]); of those, the one that calls the
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
    // As threshold_at_tpr: the smallest count that is at least `tpr` of the crops (to within 1e-9 of a crop).
    let need = ((tpr * known.len() as f64) - 1e-9).ceil().max(1.0) as usize;
    let count =
        |crops: &[RuleCrop], scale: f64, ratio: Option<f64>| crops.iter().filter(|c| c.known(scale, ratio)).count();
    let share =
        |crops: &[RuleCrop], scale: f64, ratio: Option<f64>| count(crops, scale, ratio) as f64 / crops.len() as f64;
    let mut order: Vec<f64> = ratios.to_vec();
    order.sort_by(|a, b| b.total_cmp(a));
    let mut best: Option<(f64, RuleFit)> = None;
    for ratio in [None].into_iter().chain(order.into_iter().map(Some)) {
        let mut scales: Vec<f64> = known.iter().filter(|c| c.within_rule(ratio)).map(RuleCrop::scale_needed).collect();
        if scales.len() < need {
            continue;
        }
        scales.sort_by(f64::total_cmp);
        let mut scale = scales[need - 1];
        // `distance / threshold * threshold` may round below `distance`: step up to the scorer's own verdict.
        for _ in 0..4 {
            if !scale.is_finite() || count(known, scale, ratio) >= need {
                break;
            }
            scale = scale.next_up();
        }
        if !scale.is_finite() || count(known, scale, ratio) < need {
            continue;
        }
        let novelty_known = share(novelties, scale, ratio);
        let anomaly_known = (!anomalies.is_empty()).then(|| share(anomalies, scale, ratio));
        let cost = anomaly_known.map_or(novelty_known, |a| 0.5 * (novelty_known + a));
        if best.as_ref().is_none_or(|b| cost < b.0) {
            let kept = share(known, scale, ratio);
            let crops = [known.len(), novelties.len(), anomalies.len()];
            best = Some((cost, RuleFit { ratio, scale, tpr, kept, novelty_known, anomaly_known, crops }));
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
    use odm_core::Verdict;

    /// Crops at distance `tau` (rounded to `f32`, as the scorer's distances are) from a class whose threshold is
    /// 1, and `tau / rho` from the nearest reference.
    fn crops(v: &[(f64, f64)]) -> Vec<RuleCrop> {
        v.iter()
            .map(|&(tau, rho)| {
                let distance = tau as f32 as f64;
                RuleCrop { distance, threshold: 1.0, reference: distance / rho }
            })
            .collect()
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
        assert_eq!(fit.scale, 0.9f32 as f64, "9 of 10 known crops");
        assert_eq!((fit.kept, fit.novelty_known, fit.anomaly_known), (0.9, 0.0, None));
    }

    #[test]
    fn no_rule_when_the_references_do_not_help_and_the_scale_is_the_plain_threshold() {
        // The references say nothing: every crop has the same rho.
        let known = crops(&(1..=20).map(|i| (i as f64 / 20.0, 1.0)).collect::<Vec<_>>());
        let novel = crops(&(1..=20).map(|i| (0.5 + i as f64 / 20.0, 1.0)).collect::<Vec<_>>());
        let fit = fit_rule(&known, &novel, &[], 0.95, &rule_ratios()).unwrap();
        assert_eq!(fit.ratio, None, "ties go to no rule");
        assert_eq!(fit.scale, 0.95f32 as f64, "threshold_at_tpr's quantile: 19 of 20");
        let plain = odm_core::metrics::threshold_at_tpr(&known.iter().map(|c| c.distance).collect::<Vec<_>>(), 0.95);
        assert_eq!(fit.scale, plain.unwrap());
        assert_eq!(fit.novelty_known, 0.45, "the 9 novelties at or below 0.95");
    }

    #[test]
    fn a_ratio_that_stops_the_novelties_keeps_the_tpr_at_the_known_crops_own_quantile() {
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
    fn a_strict_ratio_can_raise_the_thresholds_above_the_plain_quantile() {
        // The two known crops nearest their class are nearer a reference still (rho 1.5); a ratio that stops the
        // novelties (rho 1.2, close to a class) stops them too, so keeping 80% needs the furthest known crop.
        let mut v: Vec<(f64, f64)> = (1..=2).map(|i| (i as f64 / 10.0, 1.5)).collect();
        v.extend((3..=10).map(|i| (i as f64 / 10.0, 0.5)));
        let novel = crops(&[(0.2, 1.2); 10]);
        let fit = fit_rule(&crops(&v), &novel, &[], 0.8, &rule_ratios()).unwrap();
        let plain = fit_rule(&crops(&v), &novel, &[], 0.8, &[]).unwrap();
        assert_eq!((plain.ratio, plain.scale, plain.novelty_known), (None, 0.8f32 as f64, 1.0));
        let r = fit.ratio.expect("the rule stops every novelty");
        assert!((r - 1.15).abs() < 1e-12, "the largest ratio below the novelties' 1.2: {r}");
        assert_eq!((fit.scale, fit.kept, fit.novelty_known), (1.0, 0.8, 0.0), "raised from 0.8 to 1.0");
    }

    #[test]
    fn the_scale_keeps_the_tpr_by_the_scorers_own_comparison_where_division_rounds_down() {
        // Distances and thresholds whose quotient, multiplied back, falls one ulp short of the distance.
        let mut odd = Vec::new();
        for i in 1..4000u32 {
            let d = (i as f32 * 0.0137) as f64;
            let t = 0.1 + i as f64 * 0.00731;
            if (d / t) * t < d {
                odd.push(RuleCrop { distance: d, threshold: t, reference: f64::INFINITY });
            }
        }
        assert!(odd.len() >= 5, "the arithmetic gives such pairs: {}", odd.len());
        for c in &odd {
            // One crop alone: TPR 1 must keep it, by the thresholds alone (a novelty no rule can stop: as far from
            // the references) and under a rule at ratio 1 (its reference as far as its class; a novelty close to
            // its class but on a reference, which only the rule stops).
            let fit = fit_rule(&[*c], &[*c], &[], 1.0, &[1.0]).unwrap();
            assert_eq!(fit.ratio, None, "{c:?}");
            assert!(c.known(fit.scale, fit.ratio) && fit.kept == 1.0, "{c:?} at {fit:?}");
            let on_edge = RuleCrop { reference: c.distance, ..*c };
            let stopped = RuleCrop { distance: 0.0, threshold: c.threshold, reference: 0.0 };
            let fit = fit_rule(&[on_edge], &[RuleCrop { distance: 1e-3, ..stopped }], &[], 1.0, &[1.0]).unwrap();
            assert_eq!((fit.ratio, fit.novelty_known), (Some(1.0), 0.0), "{c:?}");
            assert!(on_edge.known(fit.scale, fit.ratio) && fit.kept == 1.0, "{c:?} at {fit:?}");
        }
    }

    #[test]
    fn the_rule_test_is_the_scorers() {
        // Against odm-core's scorer on a bundle: one class at 0 (novelty threshold 1, anomaly 10), one reference at
        // 1 on the first axis; crops along the segment and off it, at ratios whose products round in f32.
        let json = serde_json::json!({
            "format": odm_core::bundle::FORMAT, "name": "t",
            "model": {"file": "t.onnx", "sha256": "0".repeat(64),
                "input": {"name": "i", "width": 4, "height": 4, "color": "RGB", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
                    "context": 0.0},
                "output": {"name": "o", "dim": 2}, "precision": "fp32"},
            "classes": [{"id": 0, "label": "regulatory--stop--g1", "center": [0.0, 0.0]}],
            "category_refs": [{"label": "warning--other-danger--g1", "category": "warning", "center": [1.0, 0.0]}],
            "score": {"kind": odm_core::bundle::SCORE_KIND, "novelty_threshold": 1.0, "anomaly_threshold": 10.0},
            "training": {}
        });
        let bundle: odm_core::Bundle = serde_json::from_value(json).unwrap();
        let mut scorer = Scorer::new(&bundle);
        let mut checked = 0;
        for ratio in [0.55, 0.9, 1.0, 1.15, 1.45] {
            scorer.set_reference_ratio(Some(ratio)).unwrap();
            for i in 0..200 {
                let e = [i as f32 * 0.0049, (i % 7) as f32 * 0.013];
                let (k, d) = scorer.nearest(&e).unwrap();
                let c = RuleCrop {
                    distance: d as f64,
                    threshold: scorer.thresholds(k).0,
                    reference: scorer.nearest_reference(&e),
                };
                assert_eq!(c.known(1.0, Some(ratio)), scorer.score(&e).unwrap().verdict == Verdict::Known, "{e:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, 1000);
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
        // A known crop with no class (infinite distance) cannot be kept at any scale.
        let lost = RuleCrop { distance: f64::INFINITY, threshold: 1.0, reference: f64::INFINITY };
        let e = fit_rule(&[lost], &k, &[], 0.95, &[1.0]).unwrap_err().to_string();
        assert!(e.contains("no ratio keeps 95.0%"), "{e}");
    }
}
