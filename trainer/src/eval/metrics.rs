// SPDX-License-Identifier: MIT OR Apache-2.0
//! The tables of an evaluation: one row per test set (the paper's Table 2), the verdict confusion matrix, and
//! [`score_sets`], which fills them for a metric-learning bundle with any embedder (the run's network, or an ONNX
//! file in ONNX Runtime).

use std::collections::BTreeMap;

use odm_core::metrics::{accuracy, OodReport};
use odm_core::{Bundle, Scorer, Verdict};
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::categories::{self, design_centres, CategoryReport};
use super::sets::{SetKind, TestSets};
use super::sizes::{self, SizeReport};
use crate::error::TrainError;
use crate::train::embed::{distances, to_vec};

/// One test set's row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetRow {
    pub fpr95: f64,
    pub det_err: f64,
    pub auroc: f64,
    pub aupr_in: f64,
    pub aupr_out: f64,
    pub count: usize,
    /// Share of the set given each verdict by the bundle's thresholds (metric-learning runs), in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdicts: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metrics {
    pub method: String,
    pub in_accuracy: f64,
    pub in_count: usize,
    /// Verdicts on the in-distribution test images (metric-learning runs), in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_verdicts: Option<BTreeMap<String, f64>>,
    pub sets: BTreeMap<String, SetRow>,
    /// AUROC (percent) of the distance at telling unknown signs (`novelty`) from anomalies: per anomaly set, and
    /// `all` pooled over every anomaly set (metric-learning runs with both kinds of test data).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub novelty_vs_anomaly: BTreeMap<String, f64>,
    /// Verdict counts by truth (metric-learning runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confusion: Option<Confusion>,
    /// Categories of the unknown signs and the figures per category (taxonomy labels only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<CategoryReport>,
    /// Accuracy and novelty figures by crop size (metric-learning runs on image folders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizes: Option<SizeReport>,
}

/// Verdict counts: rows are the truth (known sign, unknown sign, not a sign), columns the verdicts in
/// [`Verdict::ALL`] order (known, novelty, anomaly).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub known: [usize; 3],
    pub unknown_sign: [usize; 3],
    pub not_a_sign: [usize; 3],
}

impl Confusion {
    /// Count verdicts of `(nearest class, distance)` pairs into `row`.
    fn add(row: &mut [usize; 3], scorer: &Scorer, d: &[(usize, f64)]) {
        for &(k, dist) in d {
            let v = if k == usize::MAX { Verdict::Anomaly } else { scorer.verdict(k, dist) };
            if let Some(i) = Verdict::ALL.iter().position(|&w| w == v) {
                row[i] += 1;
            }
        }
    }

    /// The matrix as Markdown, counts and row percentages.
    pub fn markdown(&self) -> String {
        let mut s = String::from("| truth \\ verdict | known | novelty | anomaly |\n|---|---:|---:|---:|\n");
        for (name, row) in
            [("known sign", &self.known), ("unknown sign", &self.unknown_sign), ("not a sign", &self.not_a_sign)]
        {
            let n = row.iter().sum::<usize>().max(1) as f64;
            s.push_str(&format!("| {name} |"));
            for c in row {
                s.push_str(&format!(" {c} ({:.1}%) |", 100.0 * *c as f64 / n));
            }
            s.push('\n');
        }
        s
    }
}

impl Metrics {
    /// The table as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "method `{}` — in-distribution accuracy {:.2}% ({} test images)\n\n| set | n | FPR95 | det. err | AUROC | AUPR-in | AUPR-out |\n|---|---:|---:|---:|---:|---:|---:|\n",
            self.method, self.in_accuracy, self.in_count
        );
        for (name, r) in &self.sets {
            s.push_str(&format!(
                "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                r.count, r.fpr95, r.det_err, r.auroc, r.aupr_in, r.aupr_out
            ));
        }
        if !self.novelty_vs_anomaly.is_empty() {
            s.push_str("\nNovelty vs anomaly (AUROC of the distance, unknown signs against each anomaly set):\n\n");
            s.push_str("| anomaly set | AUROC |\n|---|---:|\n");
            for (name, auroc) in &self.novelty_vs_anomaly {
                s.push_str(&format!("| {name} | {auroc:.2} |\n"));
            }
        }
        if let Some(c) = &self.confusion {
            s.push_str("\nVerdicts under the bundle's thresholds (unknown sign: `novelty`; not a sign: every anomaly set):\n\n");
            s.push_str(&c.markdown());
        }
        if let Some(c) = &self.categories {
            s.push('\n');
            s.push_str(&c.markdown());
        }
        if let Some(z) = &self.sizes {
            s.push('\n');
            s.push_str(&z.markdown());
        }
        s
    }
}

fn verdict_rates(scorer: &Scorer, d: &[(usize, f64)]) -> BTreeMap<String, f64> {
    let mut m: BTreeMap<String, f64> = Verdict::ALL.iter().map(|v| (v.as_str().to_owned(), 0.0)).collect();
    for &(k, dist) in d {
        if k != usize::MAX {
            *m.get_mut(scorer.verdict(k, dist).as_str()).expect("all verdicts present") += 100.0 / d.len() as f64;
        }
    }
    m
}

/// One row of the paper's table: in-distribution distances `ins` against one set's `outs`.
pub(crate) fn set_row(
    ins: &[f64],
    outs: &[f64],
    n: usize,
    verdicts: Option<BTreeMap<String, f64>>,
) -> Result<SetRow, TrainError> {
    let r = OodReport::compute(ins, outs).map_err(|e| TrainError::Config(format!("metrics: {e}")))?.percent();
    Ok(SetRow {
        fpr95: r.fpr95,
        det_err: r.det_err,
        auroc: r.auroc,
        aupr_in: r.aupr_in,
        aupr_out: r.aupr_out,
        count: n,
        verdicts,
    })
}

/// The paper's table for a metric-learning bundle on its test sets (accuracy, every set against the in-distribution
/// test images, novelty against each anomaly set, the verdict confusion matrix), with `embed` giving the embeddings:
/// the run's network, or an ONNX file in ONNX Runtime (`eval --onnx`, `bundle --onnx`).
pub fn score_sets(
    method: &str,
    bundle: &Bundle,
    tests: &TestSets,
    embed: &mut dyn FnMut(&Tensor) -> Result<Tensor, TrainError>,
) -> Result<Metrics, TrainError> {
    let scorer = Scorer::new(bundle);
    let (in_t, sets) = (&tests.inside, &tests.sets);
    let din = distances(&scorer, &embed(&in_t.x)?);
    let pred: Vec<i64> = din.iter().map(|p| if p.0 == usize::MAX { -1 } else { p.0 as i64 }).collect();
    let ins: Vec<f64> = din.iter().map(|p| p.1).collect();
    let mut m = Metrics {
        method: method.to_owned(),
        in_accuracy: 100.0 * accuracy(&pred, &in_t.y).map_err(|e| TrainError::Config(e.to_string()))?,
        in_count: ins.len(),
        in_verdicts: Some(verdict_rates(&scorer, &din)),
        sets: BTreeMap::new(),
        novelty_vs_anomaly: BTreeMap::new(),
        confusion: None,
        categories: None,
        sizes: None,
    };
    let in_rows: Vec<(i64, usize, f64)> = in_t.y.iter().zip(&din).map(|(&y, &(k, d))| (y, k, d)).collect();
    let mut unseen_rows: Vec<(String, Vec<f32>, usize, f64)> = Vec::new();
    let mut unseen_d: Vec<(usize, f64)> = Vec::new();
    let mut confusion = Confusion::default();
    Confusion::add(&mut confusion.known, &scorer, &din);
    let mut novelty: Vec<f64> = Vec::new();
    let mut anomalies: Vec<(String, Vec<f64>)> = Vec::new();
    for (name, kind, x) in sets {
        let e = embed(x)?;
        let d = distances(&scorer, &e);
        let outs: Vec<f64> = d.iter().map(|p| p.1).collect();
        if *kind == SetKind::Novelty && tests.novelty_classes.len() == d.len() {
            let v = to_vec(&e);
            unseen_rows = tests
                .novelty_classes
                .iter()
                .zip(v.chunks_exact(scorer.dim()))
                .zip(&d)
                .map(|((c, row), &(k, dist))| (c.clone(), row.to_vec(), k, dist))
                .collect();
        }
        m.sets.insert(name.clone(), set_row(&ins, &outs, outs.len(), Some(verdict_rates(&scorer, &d)))?);
        match kind {
            SetKind::Novelty => {
                Confusion::add(&mut confusion.unknown_sign, &scorer, &d);
                unseen_d = d.clone();
                novelty = outs;
            }
            SetKind::Anomaly => {
                Confusion::add(&mut confusion.not_a_sign, &scorer, &d);
                anomalies.push((name.clone(), outs));
            }
            SetKind::SeenNovelty => {}
        }
    }
    if !novelty.is_empty() && !anomalies.is_empty() {
        let auroc = |outs: &[f64]| -> Result<f64, TrainError> {
            Ok(OodReport::compute(&novelty, outs)
                .map_err(|e| TrainError::Config(format!("metrics: {e}")))?
                .percent()
                .auroc)
        };
        let all: Vec<f64> = anomalies.iter().flat_map(|(_, v)| v.iter().copied()).collect();
        m.novelty_vs_anomaly.insert("all".into(), auroc(&all)?);
        for (name, outs) in &anomalies {
            m.novelty_vs_anomaly.insert(name.clone(), auroc(outs)?);
        }
    }
    m.confusion = Some(confusion);
    let seen_refs = match &tests.seen_train {
        Some((names, x)) => design_centres(names, &to_vec(&embed(x)?), scorer.dim()),
        None => Vec::new(),
    };
    m.categories = categories::report(bundle, &scorer, &in_rows, &unseen_rows, &seen_refs)?;
    let known = |k: usize, d: f64| scorer.verdict(k, d) == Verdict::Known;
    m.sizes = sizes::report(known, &in_rows, &tests.inside_sizes, &unseen_d, &tests.novelty_sizes)?;
    Ok(m)
}
