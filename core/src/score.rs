// SPDX-License-Identifier: MIT OR Apache-2.0
//! Open-set scoring: the nearest class centre names the class, the Euclidean distance to it decides the verdict.
//!
//! `d = min_k ||e - c_k||`; `known` if `d <= novelty_threshold`, `anomaly` if `d > anomaly_threshold`, `novelty`
//! in between (docs/bundle.md, `score`). With the bundle's reference rule (`score.reference_ratio`), a `known`
//! crop further from its class than the ratio times the distance to the nearest category reference (its
//! reference bound) is a `novelty` ([`Scorer::verdict_at`]): the bound lowers that crop's novelty threshold. Larger
//! distances mean "further from the training distribution": every score in odm follows that one direction.

use std::fmt;
use std::str::FromStr;

use crate::bundle::{Bundle, MAX_CATEGORY_VOTES};
use crate::error::ScoreError;
use crate::taxonomy::Category;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Close to a known class centre: the class is trusted.
    Known,
    /// Further than the novelty threshold: a sign the model was not trained on.
    Novelty,
    /// Further than the anomaly threshold: probably not a sign at all.
    Anomaly,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [Verdict::Known, Verdict::Novelty, Verdict::Anomaly];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Known => "known",
            Verdict::Novelty => "novelty",
            Verdict::Anomaly => "anomaly",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verdict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| format!("unknown verdict {s:?}"))
    }
}

/// The result for one embedding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreResult {
    /// Index into the bundle's class list.
    pub class_index: usize,
    /// The class's `id` in the bundle.
    pub class_id: i32,
    /// Euclidean distance to the nearest centre.
    pub distance: f32,
    pub verdict: Verdict,
    /// The sign category: for `known`, the class's; for `novelty`, the nearest class's (an unknown sign most likely
    /// belongs to the category of the known design it is closest to); for `anomaly` (not a sign), none. Also none
    /// when the class has no category (see [`crate::bundle::ClassEntry::effective_category`]).
    pub category: Option<Category>,
    /// With the reference rule in force: the ratio times the distance to the nearest category reference. The crop
    /// is `known` only within both its class's novelty threshold and this bound ([`Scorer::reference_bound`]);
    /// none without the rule.
    pub reference_bound: Option<f32>,
    /// [`confidence`] of this result, with the thresholds and the rule it was scored under: at least 0.5 exactly
    /// when [`ScoreResult::verdict`] is `known` as the scorer gave it.
    pub confidence: f64,
}

/// The `confidence` of a result, in [0, 1], from its distance `d` to the nearest centre, the novelty threshold `t`
/// in force for that class (the calibrated one, or the element's override) and the crop's reference bound `b` when
/// the reference rule is in force ([`ScoreResult::reference_bound`]): `2^-(d/t')^2` with `t' = min(t, b)`. It is 1
/// at the centre, exactly 0.5 at `t'` — so `confidence >= 0.5` is the same test as the verdict `known` (before any
/// vote over a track's results) — 0.06 at twice `t'`, and falls towards 0 beyond. For users of DeepStream's
/// `result_prob` or DL Streamer's `confidence`; the distance, the thresholds and the bound stay beside it. With
/// `t' = 0`, 1 at `d = 0` and 0 elsewhere; 0 for a non-finite distance.
pub fn confidence(d: f64, t: f64, reference_bound: Option<f64>) -> f64 {
    let t = reference_bound.map_or(t, |b| t.min(b));
    if !d.is_finite() || d < 0.0 {
        return 0.0;
    }
    if t <= 0.0 {
        return if d == 0.0 { 1.0 } else { 0.0 };
    }
    0.5f64.powf((d / t) * (d / t))
}

/// The reference bound at `ratio` of a crop whose nearest category reference is `nearest` (squared distance, as
/// [`Scorer::nearest_ref`] gives it; infinitely far without one), rounded to `f32` as the distances are, and finite
/// (at most `f32::MAX`, beyond any distance) whatever the ratio.
fn bound_at(ratio: f64, nearest: Option<(f32, Category)>) -> f32 {
    reference_bound_at(ratio, reference_distance(nearest))
}

/// The reference bound at `ratio` of a crop `reference` away from its nearest category reference (infinite without
/// one): `ratio * reference`, rounded to `f32` as the scorer rounds it, and at most `f32::MAX`.
pub fn reference_bound_at(ratio: f64, reference: f64) -> f32 {
    (ratio * reference).min(f32::MAX as f64) as f32
}

/// Whether the reference rule at `ratio` lets a crop `distance` from its nearest class and `reference` from its
/// nearest category reference stay `known`: the scorer's own test ([`Scorer::verdict_at`]), to the last bit, for
/// whoever chooses a ratio or thresholds on the scorer's behalf (the trainer's calibration).
pub fn within_reference_bound(ratio: f64, distance: f64, reference: f64) -> bool {
    within_bound(distance, reference_bound_at(ratio, reference))
}

/// The rule's one comparison: a crop at `distance` from its class stays `known` when at most its reference bound.
fn within_bound(distance: f64, bound: f32) -> bool {
    distance <= bound as f64
}

/// The distance to the nearest category reference (infinite without one).
fn reference_distance(nearest: Option<(f32, Category)>) -> f64 {
    nearest.map_or(f32::INFINITY, |r| r.0).sqrt() as f64
}

/// Squared Euclidean distance between a centre and an embedding of the same length: the one sum every distance of
/// the scorer (classes, category references) is made of.
fn squared_distance(center: &[f32], embedding: &[f32]) -> f32 {
    center.iter().zip(embedding).map(|(c, e)| (e - c) * (e - c)).sum()
}

/// The category of the `votes` (at most [`MAX_CATEGORY_VOTES`]) nearest of `designs` (squared distance, category),
/// each weighted by the inverse of its distance: a design at distance 0 decides alone, and a tie goes to the nearest
/// design's category (the first of equals). `None` without designs. Allocates nothing.
fn category_vote(designs: impl Iterator<Item = (f32, Category)>, votes: usize) -> Option<Category> {
    let votes = votes.clamp(1, MAX_CATEGORY_VOTES as usize);
    // The nearest `votes`, nearest first (insertion into a fixed array; a later equal goes after an earlier one).
    let mut near = [(f32::INFINITY, Category::Regulatory); MAX_CATEGORY_VOTES as usize];
    let mut n = 0;
    for (d, k) in designs {
        if n == votes && d.total_cmp(&near[n - 1].0).is_ge() {
            continue;
        }
        let mut i = n.min(votes - 1);
        while i > 0 && d.total_cmp(&near[i - 1].0).is_lt() {
            near[i] = near[i - 1];
            i -= 1;
        }
        near[i] = (d, k);
        n = (n + 1).min(votes);
    }
    let near = &near[..n];
    let &(d0, first) = near.first()?;
    if d0 <= 0.0 {
        return Some(first);
    }
    let mut weight = [0f64; 4];
    for &(d, k) in near {
        weight[category_index(k)] += 1.0 / (d as f64).sqrt();
    }
    let w = |k: Category| weight[category_index(k)];
    Category::ALL.into_iter().max_by(|a, b| w(*a).total_cmp(&w(*b)).then_with(|| (*a == first).cmp(&(*b == first))))
}

fn category_index(k: Category) -> usize {
    match k {
        Category::Regulatory => 0,
        Category::Warning => 1,
        Category::Information => 2,
        Category::Complementary => 3,
    }
}

/// Nearest-centre scorer built once from a bundle; scoring allocates nothing.
#[derive(Debug, Clone)]
pub struct Scorer {
    dim: usize,
    /// Centres, row-major `[classes, dim]`.
    centers: Vec<f32>,
    ids: Vec<i32>,
    labels: Vec<String>,
    /// Per-class categories (explicit, or from a taxonomy label), resolved once.
    categories: Vec<Option<Category>>,
    /// Per-class thresholds from the bundle (class value, or the global one).
    novelty: Vec<f64>,
    anomaly: Vec<f64>,
    /// Design centres that are not classes, row-major, with their categories ([`Bundle::category_refs`]).
    ref_centers: Vec<f32>,
    ref_categories: Vec<Category>,
    /// The bundle's reference rule ([`crate::bundle::ScoreSpec::reference_ratio`]), or the element's override.
    reference_ratio: Option<f64>,
    /// How many nearest design centres a novelty's category is the vote of
    /// ([`crate::bundle::ScoreSpec::category_votes`]; 1: the nearest's).
    category_votes: usize,
    /// Element-property overrides; when set they apply to every class.
    novelty_override: Option<f64>,
    anomaly_override: Option<f64>,
}

impl Scorer {
    /// Build from a validated bundle.
    pub fn new(bundle: &Bundle) -> Scorer {
        let dim = bundle.dim();
        let mut centers = Vec::with_capacity(bundle.classes.len() * dim);
        for c in &bundle.classes {
            centers.extend_from_slice(&c.center);
        }
        Scorer {
            dim,
            centers,
            ids: bundle.classes.iter().map(|c| c.id).collect(),
            labels: bundle.classes.iter().map(|c| c.label.clone()).collect(),
            categories: bundle.classes.iter().map(|c| c.effective_category()).collect(),
            novelty: bundle
                .classes
                .iter()
                .map(|c| c.novelty_threshold.unwrap_or(bundle.score.novelty_threshold))
                .collect(),
            anomaly: bundle
                .classes
                .iter()
                .map(|c| c.anomaly_threshold.unwrap_or(bundle.score.anomaly_threshold))
                .collect(),
            ref_centers: bundle.category_refs.iter().flat_map(|r| r.center.iter().copied()).collect(),
            ref_categories: bundle.category_refs.iter().map(|r| r.category).collect(),
            reference_ratio: bundle.score.reference_ratio.filter(|_| !bundle.category_refs.is_empty()),
            category_votes: bundle.score.category_votes.map_or(1, |v| v.clamp(1, MAX_CATEGORY_VOTES) as usize),
            novelty_override: None,
            anomaly_override: None,
        }
    }

    /// The category of an unknown sign at `embedding`: that of the nearest design centre among the classes (with a
    /// category) and the bundle's category references, or with `score.category_votes` above 1 the vote of that many
    /// nearest, each weighted by the inverse of its distance (a centre at distance 0 decides alone; the nearest's
    /// category breaks a tie); the nearest class's when the bundle has no references and no vote.
    pub fn novelty_category(&self, embedding: &[f32], nearest_class: usize) -> Option<Category> {
        self.novelty_category_with(embedding, nearest_class, || self.nearest_ref(embedding))
    }

    /// [`Scorer::novelty_category`] with the nearest reference ([`Scorer::nearest_ref`]) from `nearest_ref`, asked
    /// only by the nearest-design rule (the vote walks every reference itself).
    fn novelty_category_with(
        &self,
        embedding: &[f32],
        nearest_class: usize,
        nearest_ref: impl FnOnce() -> Option<(f32, Category)>,
    ) -> Option<Category> {
        let classes = self
            .centers
            .chunks_exact(self.dim)
            .zip(&self.categories)
            .filter_map(|(c, k)| Some((squared_distance(c, embedding), (*k)?)));
        if self.category_votes > 1 {
            let refs = self
                .ref_centers
                .chunks_exact(self.dim)
                .zip(&self.ref_categories)
                .map(|(c, k)| (squared_distance(c, embedding), *k));
            return category_vote(classes.chain(refs), self.category_votes);
        }
        let Some(nearest_ref) = nearest_ref() else { return self.categories[nearest_class] };
        // The first of equals wins, a class before a reference.
        classes.chain([nearest_ref]).min_by(|a, b| a.0.total_cmp(&b.0)).map(|(_, k)| k)
    }

    /// The nearest category reference: its squared distance and category (the first of equals); `None` without
    /// references.
    fn nearest_ref(&self, embedding: &[f32]) -> Option<(f32, Category)> {
        self.ref_centers
            .chunks_exact(self.dim)
            .zip(&self.ref_categories)
            .map(|(c, k)| (squared_distance(c, embedding), *k))
            .min_by(|a, b| a.0.total_cmp(&b.0))
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn num_classes(&self) -> usize {
        self.ids.len()
    }

    pub fn label(&self, class_index: usize) -> &str {
        &self.labels[class_index]
    }

    pub fn class_id(&self, class_index: usize) -> i32 {
        self.ids[class_index]
    }

    /// The category of a class (explicit in the bundle, or from its taxonomy label), whatever the verdict.
    pub fn class_category(&self, class_index: usize) -> Option<Category> {
        self.categories[class_index]
    }

    /// The category a result with this nearest class and verdict reports when its embedding is not at hand (a vote
    /// over earlier results): the class's for `known` and `novelty`, none for `anomaly`. [`Scorer::score`] gives a
    /// novelty the category of the nearest design ([`Scorer::novelty_category`]).
    pub fn category(&self, class_index: usize, verdict: Verdict) -> Option<Category> {
        match verdict {
            Verdict::Known | Verdict::Novelty => self.categories[class_index],
            Verdict::Anomaly => None,
        }
    }

    /// Override the bundle's thresholds for every class (`None` restores the bundle's).
    /// Refused when not finite, negative, or when the anomaly threshold would fall below the novelty one.
    pub fn set_overrides(&mut self, novelty: Option<f64>, anomaly: Option<f64>) -> Result<(), ScoreError> {
        for t in [novelty, anomaly].into_iter().flatten() {
            if !t.is_finite() || t < 0.0 {
                return Err(ScoreError::Threshold(t, "must be finite and non-negative"));
            }
        }
        if let (Some(n), Some(a)) = (novelty, anomaly) {
            if a < n {
                return Err(ScoreError::Threshold(a, "anomaly threshold below the novelty threshold"));
            }
        }
        self.novelty_override = novelty;
        self.anomaly_override = anomaly;
        Ok(())
    }

    /// The thresholds in force for a class: (novelty, anomaly).
    pub fn thresholds(&self, class_index: usize) -> (f64, f64) {
        let n = self.novelty_override.unwrap_or(self.novelty[class_index]);
        let a = self.anomaly_override.unwrap_or(self.anomaly[class_index]);
        // An override of one threshold may cross the other's bundle value: the anomaly band never goes below
        // the novelty band.
        (n, a.max(n))
    }

    /// Classes whose anomaly threshold in force is raised to their novelty threshold, because an override of one
    /// crosses the other's bundle value: how many, and the highest novelty threshold among them. `None` when no
    /// class is affected.
    pub fn raised_anomaly_bands(&self) -> Option<(usize, f64)> {
        let mut hit = (0usize, f64::MIN);
        for k in 0..self.novelty.len() {
            let n = self.novelty_override.unwrap_or(self.novelty[k]);
            let a = self.anomaly_override.unwrap_or(self.anomaly[k]);
            if a < n {
                hit = (hit.0 + 1, hit.1.max(n));
            }
        }
        (hit.0 > 0).then_some(hit)
    }

    /// Confidence in [0, 1] that a crop at `distance` from the given class's centre, with this reference bound, is
    /// that class: see [`confidence`], with the class's novelty threshold in force.
    pub fn confidence(&self, class_index: usize, distance: f64, reference_bound: Option<f64>) -> f64 {
        confidence(distance, self.thresholds(class_index).0, reference_bound)
    }

    /// The reference rule in force: the bundle's ratio, or the one set by [`Scorer::set_reference_ratio`].
    pub fn reference_ratio(&self) -> Option<f64> {
        self.reference_ratio
    }

    /// Set the reference rule's ratio (`None`: the thresholds alone decide). Refused when not finite and positive, or
    /// when the bundle has no category references to compare with.
    pub fn set_reference_ratio(&mut self, ratio: Option<f64>) -> Result<(), ScoreError> {
        if let Some(r) = ratio {
            if !(r.is_finite() && r > 0.0) {
                return Err(ScoreError::Ratio(r, "must be finite and positive"));
            }
            if self.ref_categories.is_empty() {
                return Err(ScoreError::Ratio(r, "the bundle has no category references to compare with"));
            }
        }
        self.reference_ratio = ratio;
        Ok(())
    }

    /// How many nearest design centres a novelty's category is the vote of (1: the nearest design's).
    pub fn category_votes(&self) -> u32 {
        self.category_votes as u32
    }

    /// Set how many nearest design centres a novelty's category is the vote of, in place of the bundle's
    /// `score.category_votes` (1: the nearest design's). Refused outside 1 to [`MAX_CATEGORY_VOTES`].
    pub fn set_category_votes(&mut self, votes: u32) -> Result<(), ScoreError> {
        if !(1..=MAX_CATEGORY_VOTES).contains(&votes) {
            return Err(ScoreError::Votes(votes, MAX_CATEGORY_VOTES));
        }
        self.category_votes = votes as usize;
        Ok(())
    }

    /// How many category references the scorer holds.
    pub fn num_references(&self) -> usize {
        self.ref_categories.len()
    }

    /// Distance from `embedding` to the nearest category reference (infinite without references).
    pub fn nearest_reference(&self, embedding: &[f32]) -> f64 {
        reference_distance(self.nearest_ref(embedding))
    }

    /// The reference bound of `embedding` with the rule in force: the ratio times the distance to the nearest
    /// category reference, rounded to `f32` as the distances are (so that the verdict and the confidence made of
    /// a result's fields agree to the last bit); `None` without the rule.
    pub fn reference_bound(&self, embedding: &[f32]) -> Option<f32> {
        self.reference_ratio.map(|r| bound_at(r, self.nearest_ref(embedding)))
    }

    /// The verdict of `embedding`, whose nearest class and distance to it are given: [`Scorer::verdict`], then the
    /// reference rule — a `known` crop further from its class than its reference bound is a `novelty`. What
    /// [`Scorer::score`] reports.
    pub fn verdict_at(&self, embedding: &[f32], class_index: usize, distance: f64) -> Verdict {
        self.verdict_bounded(class_index, distance, || self.reference_bound(embedding))
    }

    /// [`Scorer::verdict`], then the rule with the crop's reference bound (asked for only when the thresholds say
    /// `known`).
    fn verdict_bounded(
        &self,
        class_index: usize,
        distance: f64,
        reference_bound: impl FnOnce() -> Option<f32>,
    ) -> Verdict {
        match self.verdict(class_index, distance) {
            Verdict::Known if reference_bound().is_some_and(|b| !within_bound(distance, b)) => Verdict::Novelty,
            v => v,
        }
    }

    /// Verdict for a distance to the given class by the thresholds alone (no reference rule: see
    /// [`Scorer::verdict_at`]).
    pub fn verdict(&self, class_index: usize, distance: f64) -> Verdict {
        let (n, a) = self.thresholds(class_index);
        if distance <= n {
            Verdict::Known
        } else if distance > a {
            Verdict::Anomaly
        } else {
            Verdict::Novelty
        }
    }

    /// Nearest centre and distance of one embedding; `None` when the embedding has the wrong length or holds a
    /// non-finite value (a model that produced garbage must not produce a class).
    pub fn nearest(&self, embedding: &[f32]) -> Option<(usize, f32)> {
        if embedding.len() != self.dim || !embedding.iter().all(|v| v.is_finite()) {
            return None;
        }
        let mut best = (0usize, f32::INFINITY);
        for (k, center) in self.centers.chunks_exact(self.dim).enumerate() {
            let d2 = squared_distance(center, embedding);
            if d2 < best.1 {
                best = (k, d2);
            }
        }
        let d = best.1.sqrt();
        d.is_finite().then_some((best.0, d))
    }

    /// Score one embedding.
    pub fn score(&self, embedding: &[f32]) -> Option<ScoreResult> {
        let (k, d) = self.nearest(embedding)?;
        // The references are walked at most once: with the rule, for every crop's bound (the confidence is made of
        // it, not only the verdict of the ones the thresholds call known); and for a novelty's category.
        let walked = self.reference_ratio.map(|_| self.nearest_ref(embedding));
        let reference_bound = self.reference_ratio.zip(walked).map(|(r, nearest)| bound_at(r, nearest));
        let verdict = self.verdict_bounded(k, d as f64, || reference_bound);
        let category = match verdict {
            Verdict::Novelty => {
                self.novelty_category_with(embedding, k, || walked.unwrap_or_else(|| self.nearest_ref(embedding)))
            }
            v => self.category(k, v),
        };
        let confidence = self.confidence(k, d as f64, reference_bound.map(f64::from));
        Some(ScoreResult {
            class_index: k,
            class_id: self.ids[k],
            distance: d,
            verdict,
            category,
            reference_bound,
            confidence,
        })
    }

    /// Score a row-major `[N, dim]` batch into `out[..N]`. Rows that hold non-finite values give `None`.
    pub fn score_batch(&self, embeddings: &[f32], out: &mut [Option<ScoreResult>]) -> Result<usize, ScoreError> {
        if !embeddings.len().is_multiple_of(self.dim) {
            return Err(ScoreError::Shape { len: embeddings.len(), dim: self.dim });
        }
        let rows = embeddings.len() / self.dim;
        if out.len() < rows {
            return Err(ScoreError::Output { rows, out: out.len() });
        }
        for (row, slot) in embeddings.chunks_exact(self.dim).zip(out.iter_mut()) {
            *slot = self.score(row);
        }
        Ok(rows)
    }
}
