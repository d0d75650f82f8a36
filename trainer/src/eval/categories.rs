// SPDX-License-Identifier: MIT OR Apache-2.0
//! Categories on the test sets: how often an unknown sign is given its own category (regulatory, warning,
//! information, complementary), by two rules measured side by side — the category of the nearest known class (what
//! odmclassify attaches) and the nearest category centre (the mean of a category's class centres) — and the paper's
//! figures per category of the unseen designs.

use std::collections::BTreeMap;

use odm_core::metrics::OodReport;
use odm_core::taxonomy::{category_of, Category};
use odm_core::{Bundle, Scorer, Verdict};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// One category of unseen designs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CategoryRow {
    /// Test images of unseen designs of this category.
    pub count: usize,
    /// Unseen designs of this category against every in-distribution test image.
    pub auroc: f64,
    pub fpr95: f64,
    /// Verdicts on them, in percent.
    pub verdicts: BTreeMap<String, f64>,
    /// Those called `novelty` whose nearest class has this category, in percent of those called `novelty`.
    pub category_right: f64,
}

/// The category figures of a run (metric-learning runs whose labels are taxonomy names).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CategoryReport {
    /// Unseen-design images called `novelty`, and the share of them whose category is right by the nearest class
    /// (what the element attaches), in percent.
    pub novelty_count: usize,
    pub novelty_right_nearest_class: f64,
    /// The same images by the nearest category centre.
    pub novelty_right_category_centre: f64,
    /// The same images by the nearest design centre among the known classes and the seen out-of-distribution
    /// designs (centres of their training images; each named, so each has a category). None without seen designs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub novelty_right_nearest_design: Option<f64>,
    /// Every unseen-design image, whatever its verdict, by either rule.
    pub unseen_right_nearest_class: f64,
    pub unseen_right_category_centre: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseen_right_nearest_design: Option<f64>,
    /// With the bundle's `score.category_votes` above 1 (what odmclassify attaches then): that many nearest design
    /// centres, known or seen, vote, each weighted by the inverse of its distance. The number of votes, and the
    /// shares of the unseen-design images called `novelty` and of every unseen-design image it gives their category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub design_votes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub novelty_right_design_vote: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseen_right_design_vote: Option<f64>,
    /// Known test images whose predicted class has their category (a misclassification within a category still
    /// gives the right category); the complement of the mistakes report's `other_category` share of the known test
    /// images (`eval_says_what_the_known_signs_are_taken_for` checks that the two agree).
    pub known_right: f64,
    pub per_category: BTreeMap<String, CategoryRow>,
}

impl CategoryReport {
    /// The share of the unseen-design images called `novelty` given their own category by the rule odmclassify
    /// attaches for the bundle (the vote when it has one, else the nearest design); none without seen designs.
    pub fn novelty_right_attached(&self) -> Option<f64> {
        self.novelty_right_design_vote.or(self.novelty_right_nearest_design)
    }

    pub fn markdown(&self) -> String {
        let mut s = format!(
            "Categories of unknown signs: of the {} unseen-design test images called `novelty`, {:.2}% get their own \
             category from the nearest known class (what odmclassify attaches for a bundle without category references) and {:.2}% from the nearest category \
             centre; over every unseen-design image {:.2}% / {:.2}%. Known test images: {:.2}% in the right \
             category.\n\n",
            self.novelty_count,
            self.novelty_right_nearest_class,
            self.novelty_right_category_centre,
            self.unseen_right_nearest_class,
            self.unseen_right_category_centre,
            self.known_right
        );
        let votes = self.design_votes.filter(|v| *v > 1);
        if let (Some(n), Some(u)) = (self.novelty_right_nearest_design, self.unseen_right_nearest_design) {
            let attached = if votes.is_some() { "" } else { " (what odmclassify attaches for this bundle)" };
            s.push_str(&format!(
                "By the nearest design centre, known or seen out-of-distribution{attached}: {n:.2}% of those called \
                 `novelty`, {u:.2}% of every unseen-design image.\n\n"
            ));
        }
        if let (Some(v), Some(n), Some(u)) = (votes, self.novelty_right_design_vote, self.unseen_right_design_vote) {
            s.push_str(&format!(
                "By the vote of the {v} nearest design centres, each weighted by the inverse of its distance (the \
                 bundle's `score.category_votes`: what odmclassify attaches for this bundle): {n:.2}% of those called \
                 `novelty`, {u:.2}% of every unseen-design image.\n\n"
            ));
        }
        s.push_str(
            "| unseen designs of | n | FPR95 | AUROC | → known | → novelty | → anomaly | category right (of novelty) |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for (c, r) in &self.per_category {
            let v = |k: &str| r.verdicts.get(k).copied().unwrap_or(0.0);
            s.push_str(&format!(
                "| {c} | {} | {:.2} | {:.2} | {:.1}% | {:.1}% | {:.1}% | {:.1}% |\n",
                r.count,
                r.fpr95,
                r.auroc,
                v("known"),
                v("novelty"),
                v("anomaly"),
                r.category_right
            ));
        }
        s
    }
}

fn pct(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        100.0 * n as f64 / of as f64
    }
}

/// The nearest category centre of an embedding; `centres` holds one (category, mean of its class centres).
fn nearest_centre(e: &[f32], centres: &[(Category, Vec<f32>)]) -> Option<Category> {
    centres
        .iter()
        .map(|(c, m)| (c, m.iter().zip(e).map(|(a, b)| (a - b) * (a - b)).sum::<f32>()))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| *c)
}

/// Centres (mean embeddings) of named designs from `e` (row-major, `dim` wide, one row per name), with their
/// categories; designs whose names are no taxonomy names are left out.
pub fn design_centres(names: &[String], e: &[f32], dim: usize) -> Vec<(Category, Vec<f32>)> {
    design_refs(names, e, dim).into_iter().map(|r| (r.category, r.center)).collect()
}

/// [`design_centres`] as a bundle's category references (named), in name order.
pub fn design_refs(names: &[String], e: &[f32], dim: usize) -> Vec<odm_core::bundle::CategoryRef> {
    let mut sums: BTreeMap<&str, (Vec<f64>, usize)> = BTreeMap::new();
    for (name, row) in names.iter().zip(e.chunks_exact(dim)) {
        let (sum, n) = sums.entry(name.as_str()).or_insert_with(|| (vec![0.0; dim], 0));
        *n += 1;
        for (a, b) in sum.iter_mut().zip(row) {
            *a += *b as f64;
        }
    }
    sums.into_iter()
        .filter_map(|(name, (sum, n))| {
            category_of(name).map(|category| odm_core::bundle::CategoryRef {
                label: name.to_owned(),
                category,
                center: sum.iter().map(|v| (v / n as f64) as f32).collect(),
            })
        })
        .collect()
}

/// The report, or None when the bundle's labels or the unseen designs carry no categories.
///
/// `ins`: (true class index, nearest class, distance) of the in-distribution test images; `unseen`: (design name,
/// embedding, nearest class, distance) of the unseen-design test images; `seen`: centres of the seen
/// out-of-distribution designs ([`design_centres`]), empty when there are none.
pub fn report(
    bundle: &Bundle,
    scorer: &Scorer,
    ins: &[(i64, usize, f64)],
    unseen: &[(String, Vec<f32>, usize, f64)],
    seen: &[(Category, Vec<f32>)],
) -> Result<Option<CategoryReport>, TrainError> {
    // The categories the scorer (and so odmclassify) gives each class: explicit in the bundle, or from the label.
    let class_cat: Vec<Option<Category>> = (0..bundle.classes.len()).map(|k| scorer.class_category(k)).collect();
    if class_cat.iter().all(Option::is_none) || unseen.is_empty() {
        return Ok(None);
    }
    let d = bundle.dim();
    let mut centres: Vec<(Category, Vec<f32>)> = Vec::new();
    for cat in Category::ALL {
        let members: Vec<&Vec<f32>> =
            bundle.classes.iter().zip(&class_cat).filter(|(_, c)| **c == Some(cat)).map(|(k, _)| &k.center).collect();
        if !members.is_empty() {
            let mean = (0..d).map(|j| members.iter().map(|m| m[j]).sum::<f32>() / members.len() as f32).collect();
            centres.push((cat, mean));
        }
    }
    let cat_of_class = |k: usize| class_cat.get(k).copied().flatten();
    // Every design centre with a category: the known classes and the seen designs.
    let mut designs: Vec<(Category, Vec<f32>)> =
        bundle.classes.iter().zip(&class_cat).filter_map(|(k, c)| c.map(|c| (c, k.center.clone()))).collect();
    designs.extend(seen.iter().cloned());
    let (mut nov_nd, mut all_nd) = (0usize, 0usize);
    // What the scorer attaches to a novelty when the bundle asks for a vote.
    let votes = bundle.score.category_votes.filter(|v| *v > 1);
    let (mut nov_vote, mut all_vote) = (0usize, 0usize);
    let known_right = ins.iter().filter(|(y, k, _)| *y >= 0 && cat_of_class(*y as usize) == cat_of_class(*k)).count();
    let in_dist: Vec<f64> = ins.iter().map(|p| p.2).collect();
    let (mut nov, mut nov_nc, mut nov_cc, mut all_nc, mut all_cc, mut counted) = (0, 0, 0, 0, 0, 0);
    let mut per: BTreeMap<Category, Vec<(f64, Verdict, bool)>> = BTreeMap::new();
    for (name, e, k, dist) in unseen {
        let Some(truth) = category_of(name) else { continue };
        counted += 1;
        let verdict = if *k == usize::MAX { Verdict::Anomaly } else { scorer.verdict_at(e, *k, *dist) };
        let nc = cat_of_class(*k) == Some(truth);
        let cc = nearest_centre(e, &centres) == Some(truth);
        let nd = !seen.is_empty() && nearest_centre(e, &designs) == Some(truth);
        all_nc += usize::from(nc);
        all_cc += usize::from(cc);
        all_nd += usize::from(nd);
        let vote = votes.is_some() && *k != usize::MAX && scorer.novelty_category(e, *k) == Some(truth);
        all_vote += usize::from(vote);
        if verdict == Verdict::Novelty {
            nov_vote += usize::from(vote);
            nov += 1;
            nov_nc += usize::from(nc);
            nov_cc += usize::from(cc);
            nov_nd += usize::from(nd);
        }
        per.entry(truth).or_default().push((*dist, verdict, nc));
    }
    let mut per_category = BTreeMap::new();
    for (cat, rows) in per {
        let outs: Vec<f64> = rows.iter().map(|r| r.0).collect();
        let r = OodReport::compute(&in_dist, &outs).map_err(|e| TrainError::Config(format!("metrics: {e}")))?.percent();
        let mut verdicts = BTreeMap::new();
        for v in Verdict::ALL {
            verdicts.insert(v.as_str().to_owned(), pct(rows.iter().filter(|r| r.1 == v).count(), rows.len()));
        }
        let novel = rows.iter().filter(|r| r.1 == Verdict::Novelty).count();
        let right = rows.iter().filter(|r| r.1 == Verdict::Novelty && r.2).count();
        per_category.insert(
            cat.as_str().to_owned(),
            CategoryRow {
                count: rows.len(),
                auroc: r.auroc,
                fpr95: r.fpr95,
                verdicts,
                category_right: pct(right, novel),
            },
        );
    }
    Ok(Some(CategoryReport {
        novelty_count: nov,
        novelty_right_nearest_class: pct(nov_nc, nov),
        novelty_right_category_centre: pct(nov_cc, nov),
        novelty_right_nearest_design: (!seen.is_empty()).then(|| pct(nov_nd, nov)),
        unseen_right_nearest_class: pct(all_nc, counted),
        unseen_right_category_centre: pct(all_cc, counted),
        unseen_right_nearest_design: (!seen.is_empty()).then(|| pct(all_nd, counted)),
        design_votes: votes,
        novelty_right_design_vote: votes.map(|_| pct(nov_vote, nov)),
        unseen_right_design_vote: votes.map(|_| pct(all_vote, counted)),
        known_right: pct(known_right, ins.len()),
        per_category,
    }))
}
