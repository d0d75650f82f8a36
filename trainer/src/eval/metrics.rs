// SPDX-License-Identifier: MIT OR Apache-2.0
//! The tables of an evaluation: one row per test set (the paper's Table 2), the verdict confusion matrix, and
//! [`score_sets`], which fills them for a metric-learning bundle with any embedder (the run's network, or an ONNX
//! file in ONNX Runtime).

use std::collections::BTreeMap;

use odm_core::metrics::{accuracy, OodReport};
use odm_core::{Bundle, Scorer, Verdict};
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::categories::{self, CategoryReport};
use super::mistakes::{self, MistakeReport};
use super::refs::{self, Crop, RefReport};
use super::sets::{SetKind, TestSets};
use super::sizes::{self, SizeReport};
use crate::error::TrainError;
use crate::train::calibrate::RuleFit;
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
    /// The known test images taken for another design: by how that design relates to theirs (another variant of
    /// the same sign, another sign of the category, another category) and the pairs confused most (taxonomy labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mistakes: Option<MistakeReport>,
    /// The reference rule at several ratios, at the bundle's novelty thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refs: Option<RefReport>,
    /// The novelty thresholds and the rule's ratio chosen together on validation data (`eval --reference-ratio
    /// calibrate`), when they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_fit: Option<RuleFit>,
    /// The reference rule the tables were scored with, as `--reference-ratio` takes it, when not the default
    /// (`metrics-rule-*` tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_rule: Option<String>,
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
    /// Count `verdicts` into `row`.
    fn add(row: &mut [usize; 3], verdicts: &[Verdict]) {
        for v in verdicts {
            if let Some(i) = Verdict::ALL.iter().position(|w| w == v) {
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
        if let Some(w) = &self.mistakes {
            s.push('\n');
            s.push_str(&w.markdown());
        }
        if let Some(c) = &self.categories {
            s.push('\n');
            s.push_str(&c.markdown());
        }
        if let Some(z) = &self.sizes {
            s.push('\n');
            s.push_str(&z.markdown());
        }
        if let Some(r) = &self.refs {
            s.push('\n');
            s.push_str(&r.markdown());
        }
        match self.reference_rule.as_deref() {
            Some("0") => {
                s.push_str("\nScored without the reference rule (`--reference-ratio 0`: the thresholds alone).\n")
            }
            Some(r) => s.push_str(&format!("\nScored with the reference rule `--reference-ratio {r}`.\n")),
            None => {}
        }
        if let Some(f) = &self.rule_fit {
            s.push_str(&format!("\n{}\n", f.describe()));
        }
        s
    }
}

/// Share of each verdict, in percent (crops with no nearest class count in none).
fn verdict_rates(verdicts: &[Verdict], d: &[(usize, f64)]) -> BTreeMap<String, f64> {
    let mut m: BTreeMap<String, f64> = Verdict::ALL.iter().map(|v| (v.as_str().to_owned(), 0.0)).collect();
    for (v, &(k, _)) in verdicts.iter().zip(d) {
        if k != usize::MAX {
            *m.get_mut(v.as_str()).expect("all verdicts present") += 100.0 / d.len() as f64;
        }
    }
    m
}

/// The verdict of each crop as odmclassify gives it ([`Scorer::verdict_at`]: thresholds, then the reference rule);
/// `e` row-major embeddings, `d` their (nearest class, distance).
fn verdicts(scorer: &Scorer, e: &[f32], d: &[(usize, f64)]) -> Vec<Verdict> {
    e.chunks_exact(scorer.dim())
        .zip(d)
        .map(|(row, &(k, dist))| if k == usize::MAX { Verdict::Anomaly } else { scorer.verdict_at(row, k, dist) })
        .collect()
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
/// the run's network, or an ONNX file in ONNX Runtime (`eval --onnx`, `bundle --onnx`). The bundle is scored as it
/// is: `eval` gives it the references and the rule `export` would write ([`crate::export::bundle::scoring_bundle`]).
pub fn score_sets(
    method: &str,
    bundle: &Bundle,
    tests: &TestSets,
    embed: &mut dyn FnMut(&Tensor) -> Result<Tensor, TrainError>,
) -> Result<Metrics, TrainError> {
    let scorer = Scorer::new(bundle);
    let (in_t, sets) = (&tests.inside, &tests.sets);
    let in_e = embed(&in_t.x)?;
    let din = distances(&scorer, &in_e);
    let in_e = to_vec(&in_e);
    let in_v = verdicts(&scorer, &in_e, &din);
    let pred: Vec<i64> = din.iter().map(|p| if p.0 == usize::MAX { -1 } else { p.0 as i64 }).collect();
    let ins: Vec<f64> = din.iter().map(|p| p.1).collect();
    let mut m = Metrics {
        method: method.to_owned(),
        in_accuracy: 100.0 * accuracy(&pred, &in_t.y).map_err(|e| TrainError::Config(e.to_string()))?,
        in_count: ins.len(),
        in_verdicts: Some(verdict_rates(&in_v, &din)),
        sets: BTreeMap::new(),
        novelty_vs_anomaly: BTreeMap::new(),
        confusion: None,
        categories: None,
        sizes: None,
        mistakes: None,
        refs: None,
        rule_fit: None,
        reference_rule: None,
    };
    let in_rows: Vec<(i64, usize, f64)> = in_t.y.iter().zip(&din).map(|(&y, &(k, d))| (y, k, d)).collect();
    let mut unseen_rows: Vec<(String, Vec<f32>, usize, f64)> = Vec::new();
    let (mut unseen_d, mut unseen_v): (Vec<(usize, f64)>, Vec<Verdict>) = (Vec::new(), Vec::new());
    let mut confusion = Confusion::default();
    Confusion::add(&mut confusion.known, &in_v);
    let mut novelty: Vec<f64> = Vec::new();
    let mut anomalies: Vec<(String, Vec<f64>)> = Vec::new();
    // Embeddings and (nearest class, distance) of every anomaly crop, for the reference rule.
    let (mut not_sign_e, mut not_sign_d): (Vec<f32>, Vec<(usize, f64)>) = (Vec::new(), Vec::new());
    for (name, kind, x) in sets {
        let e = embed(x)?;
        let d = distances(&scorer, &e);
        let e = to_vec(&e);
        let v = verdicts(&scorer, &e, &d);
        let outs: Vec<f64> = d.iter().map(|p| p.1).collect();
        if *kind == SetKind::Novelty && tests.novelty_classes.len() == d.len() {
            unseen_rows = tests
                .novelty_classes
                .iter()
                .zip(e.chunks_exact(scorer.dim()))
                .zip(&d)
                .map(|((c, row), &(k, dist))| (c.clone(), row.to_vec(), k, dist))
                .collect();
        }
        m.sets.insert(name.clone(), set_row(&ins, &outs, outs.len(), Some(verdict_rates(&v, &d)))?);
        match kind {
            SetKind::Novelty => {
                Confusion::add(&mut confusion.unknown_sign, &v);
                unseen_d = d.clone();
                unseen_v = v;
                novelty = outs;
            }
            SetKind::Anomaly => {
                Confusion::add(&mut confusion.not_a_sign, &v);
                not_sign_e.extend(e);
                not_sign_d.extend_from_slice(&d);
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
    let names: Vec<&str> = bundle.classes.iter().map(|c| c.label.as_str()).collect();
    m.mistakes = mistakes::report(&in_rows, &names);
    let seen_refs: Vec<(odm_core::Category, Vec<f32>)> =
        bundle.category_refs.iter().map(|r| (r.category, r.center.clone())).collect();
    m.categories = categories::report(bundle, &scorer, &in_rows, &unseen_rows, &seen_refs)?;
    let dim = scorer.dim();
    let known: Vec<Crop> =
        in_e.chunks_exact(dim).zip(&in_rows).map(|(e, &(y, k, d))| Crop { e, k, d, label: Some(y) }).collect();
    let unseen: Vec<Crop> = unseen_rows.iter().map(|(_, e, k, d)| Crop { e, k: *k, d: *d, label: None }).collect();
    let not_signs: Vec<Crop> =
        not_sign_e.chunks_exact(dim).zip(&not_sign_d).map(|(e, &(k, d))| Crop { e, k, d, label: None }).collect();
    m.refs = refs::report(&scorer, &known, &unseen, &not_signs)?;
    let is_known = |v: &[Verdict]| -> Vec<bool> { v.iter().map(|v| *v == Verdict::Known).collect() };
    let (in_k, unseen_k) = (is_known(&in_v), is_known(&unseen_v));
    m.sizes = sizes::report(
        sizes::Side { rows: &in_rows, known: &in_k, sizes: &tests.inside_sizes },
        sizes::Side { rows: &unseen_d, known: &unseen_k, sizes: &tests.novelty_sizes },
    )?;
    Ok(m)
}
