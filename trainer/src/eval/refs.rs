// SPDX-License-Identifier: MIT OR Apache-2.0
//! The seen designs as a second opinion on `known` (the reference rule), at several ratios. ODM pushes the seen
//! out-of-distribution designs into a ring around the known classes; an unknown sign that passes the novelty
//! threshold of a known class may still sit nearer a seen design's centre (the bundle's category references) than
//! the class's. The rule measured here keeps `known` only when the nearest class is also no further than `gamma`
//! times the nearest seen design (`export` writes gamma 1 into the bundle by default, `score.reference_ratio`, and
//! odmclassify applies it): `d_class <= threshold` and `d_class <= gamma * d_ref`. The thresholds are those of the
//! bundle the table's run was scored with. Smaller `gamma` is stricter. Each row gives
//! what it keeps of the known signs and what it lets through of the unknown signs and of what is not a sign, and the
//! novelty AUROC of the matching score `max(d_class / threshold, d_class / (gamma * d_ref))`.

use odm_core::metrics::OodReport;
use odm_core::{Scorer, Verdict};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// The `gamma` values measured.
pub const GAMMAS: [f64; 6] = [0.8, 0.9, 1.0, 1.1, 1.25, 1.5];

/// One `gamma`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RefRow {
    /// None: the thresholds alone (no reference rule).
    pub gamma: Option<f64>,
    /// Known test crops called `known`, and called `known` with their own class (percent).
    pub known_kept: f64,
    pub known_label: f64,
    /// Unseen-design crops called `known`, and the rest of them that stay within the anomaly threshold (`novelty`).
    pub unseen_known: f64,
    pub unseen_novelty: f64,
    /// Crops of every anomaly set called `known`.
    pub not_sign_known: f64,
    /// Unseen designs against the known test crops by the rule's score.
    pub auroc: f64,
    pub fpr95: f64,
}

/// The rule at every `gamma`, beside the thresholds alone (the first row of the table).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RefReport {
    /// Seen designs whose centres were the references.
    pub refs: usize,
    pub rows: Vec<RefRow>,
}

/// One crop: embedding, nearest class, distance to it; `label` the true class for known crops.
pub struct Crop<'a> {
    pub e: &'a [f32],
    pub k: usize,
    pub d: f64,
    pub label: Option<i64>,
}

fn pct(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        100.0 * n as f64 / of as f64
    }
}

/// The report, with the scorer's category references; None without references or without unseen designs.
pub fn report(
    scorer: &Scorer,
    known: &[Crop],
    unseen: &[Crop],
    not_signs: &[Crop],
) -> Result<Option<RefReport>, TrainError> {
    if scorer.num_references() == 0 || unseen.is_empty() || known.is_empty() {
        return Ok(None);
    }
    // (nearest class, distance, distance to the nearest reference, label) of each crop.
    let prep = |crops: &[Crop]| -> Vec<(usize, f64, f64, Option<i64>)> {
        crops.iter().map(|c| (c.k, c.d, scorer.nearest_reference(c.e), c.label)).collect()
    };
    let (kn, un, ns) = (prep(known), prep(unseen), prep(not_signs));
    // Scorer::verdict_at at ratio `gamma` (its bound rounded to f32 as there), with the reference distance worked
    // out once per crop.
    let verdict = |k: usize, d: f64, dr: f64, gamma: f64| -> Verdict {
        if k == usize::MAX {
            return Verdict::Anomaly;
        }
        match scorer.verdict(k, d) {
            Verdict::Known if !odm_core::score::within_reference_bound(gamma, d, dr) => Verdict::Novelty,
            v => v,
        }
    };
    let score = |k: usize, d: f64, dr: f64, gamma: f64| -> f64 {
        if k == usize::MAX {
            return f64::MAX;
        }
        let t = scorer.thresholds(k).0.max(f64::MIN_POSITIVE);
        let s = (d / t).max(d / (gamma * dr).max(f64::MIN_POSITIVE));
        // A crop on a reference (or a threshold of 0) scores as far as can be, not as infinity.
        if s.is_finite() {
            s
        } else {
            f64::MAX
        }
    };
    let mut rows = Vec::new();
    for g in [None].into_iter().chain(GAMMAS.map(Some)) {
        let gamma = g.unwrap_or(f64::INFINITY);
        let count = |rows: &[(usize, f64, f64, Option<i64>)], v: Verdict| {
            rows.iter().filter(|r| verdict(r.0, r.1, r.2, gamma) == v).count()
        };
        let label =
            kn.iter().filter(|r| verdict(r.0, r.1, r.2, gamma) == Verdict::Known && r.3 == Some(r.0 as i64)).count();
        let s = |rows: &[(usize, f64, f64, Option<i64>)]| -> Vec<f64> {
            rows.iter().map(|r| if gamma.is_finite() { score(r.0, r.1, r.2, gamma) } else { r.1 }).collect()
        };
        let o =
            OodReport::compute(&s(&kn), &s(&un)).map_err(|e| TrainError::Config(format!("metrics: {e}")))?.percent();
        rows.push(RefRow {
            gamma: g,
            known_kept: pct(count(&kn, Verdict::Known), kn.len()),
            known_label: pct(label, kn.len()),
            unseen_known: pct(count(&un, Verdict::Known), un.len()),
            unseen_novelty: pct(count(&un, Verdict::Novelty), un.len()),
            not_sign_known: pct(count(&ns, Verdict::Known), ns.len()),
            auroc: o.auroc,
            fpr95: o.fpr95,
        });
    }
    Ok(Some(RefReport { refs: scorer.num_references(), rows }))
}

impl RefReport {
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "The seen designs as a second opinion (the reference rule): `known` only when the nearest class is also \
             no further than gamma times the nearest of {} seen-design centres, at the novelty thresholds the verdicts \
             above were scored with; gamma 1 is what `export` writes into the bundle by default, ∞ the thresholds \
             alone.\n\n| gamma | known kept | \
             own label | unseen → known | unseen → novelty | not a sign → known | novelty AUROC | FPR95 |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            self.refs
        );
        for r in &self.rows {
            let g = r.gamma.map_or("∞".into(), |g| format!("{g:.2}"));
            s.push_str(&format!(
                "| {g} | {:.2}% | {:.2}% | {:.1}% | {:.1}% | {:.2}% | {:.2} | {:.2} |\n",
                r.known_kept, r.known_label, r.unseen_known, r.unseen_novelty, r.not_sign_known, r.auroc, r.fpr95
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Classes at (0, 0) and (10, 0), known within 2, anomaly beyond 4; one reference at (2, 0).
    #[test]
    fn the_rows_count_what_the_rule_keeps_and_the_infinite_row_is_the_thresholds_alone() {
        let v = serde_json::json!({
            "format": "odm-bundle/1", "name": "t",
            "model": {"file": "m.onnx", "sha256": "0".repeat(64),
                      "input": {"name": "input", "width": 8, "height": 8, "color": "RGB",
                                "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "context": 0.0},
                      "output": {"name": "embedding", "dim": 2}},
            "classes": [{"id": 0, "label": "a", "center": [0.0, 0.0]}, {"id": 1, "label": "b", "center": [10.0, 0.0]}],
            "score": {"kind": "nearest-center-euclidean", "novelty_threshold": 2.0, "anomaly_threshold": 4.0}
        });
        let mut bundle = odm_core::Bundle::from_json(&v.to_string(), std::path::Path::new("t.odm.json")).unwrap();
        let bare = Scorer::new(&bundle);
        bundle.category_refs = vec![odm_core::bundle::CategoryRef {
            label: "warning--r--g1".into(),
            category: odm_core::Category::Warning,
            center: vec![2.0, 0.0],
        }];
        let scorer = Scorer::new(&bundle);
        let crop = |e: &'static [f32], label| Crop { e, k: 0, d: (e[0] * e[0] + e[1] * e[1]).sqrt() as f64, label };
        // Known: one far from the reference (kept), one nearer it than its class (0.5 against 1.5: not kept at 1).
        let known = [crop(&[0.5, 0.0], Some(0)), crop(&[1.5, 0.0], Some(0))];
        // Unseen: both within the threshold; one 0.2 from the reference, one on it (its score stays finite).
        let unseen = [crop(&[1.8, 0.0], None), crop(&[2.0, 0.0], None)];
        let not_signs = [crop(&[0.0, 5.0], None)];
        let r = report(&scorer, &known, &unseen, &not_signs).unwrap().unwrap();
        assert_eq!(r.refs, 1);
        assert_eq!(r.rows.len(), 1 + GAMMAS.len());
        let row = |g: Option<f64>| r.rows.iter().find(|x| x.gamma == g).unwrap().clone();
        let inf = row(None);
        assert_eq!((inf.known_kept, inf.known_label, inf.unseen_known, inf.unseen_novelty), (100.0, 100.0, 100.0, 0.0));
        assert_eq!(inf.not_sign_known, 0.0);
        let one = row(Some(1.0));
        assert_eq!((one.known_kept, one.known_label, one.unseen_known, one.unseen_novelty), (50.0, 50.0, 0.0, 100.0));
        // At 1.5 the kept known crop needs 0.5 < 1.5 x 1.5; the other 1.5 < 1.5 x 0.5 fails: the same as 1.
        assert_eq!(row(Some(1.5)).known_kept, 50.0);
        assert!(r.rows.iter().all(|x| x.auroc.is_finite() && x.fpr95.is_finite()), "{r:?}");
        // Without references or unseen crops there is nothing to table.
        assert!(report(&bare, &known, &unseen, &not_signs).unwrap().is_none());
        assert!(report(&scorer, &known, &[], &not_signs).unwrap().is_none());
        assert!(r.markdown().contains("| ∞ | 100.00% |"), "{}", r.markdown());
    }
}
