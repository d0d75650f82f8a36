// SPDX-License-Identifier: MIT OR Apache-2.0
//! What a loaded bundle contributes to scoring: the scorer with the threshold overrides in force, the crop
//! specification, the labels. Swapped whole by a hot reload, and shared with the frames cropped under it. And what
//! is said when threshold overrides cross.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use odm_core::bundle::Bundle;
use odm_core::preprocess::CropSpec;
use odm_core::Scorer;

use super::settings::{reference_ratio, threshold, Live, CATEGORY_VOTES_FROM_BUNDLE};

/// What the loaded bundle contributes to scoring; swapped whole by a hot reload. Shared with the frames cropped under
/// it, so a frame in flight is scored by the bundle it was cropped for, whatever was reloaded meanwhile.
#[derive(Clone)]
pub(super) struct Scoring {
    pub(super) scorer: Scorer,
    pub(super) crop: CropSpec,
    /// Bundle name and class labels, shared by every result (no allocation per result).
    pub(super) name: Arc<str>,
    pub(super) labels: Vec<Arc<str>>,
    pub(super) path: PathBuf,
    /// The bundle's own anomaly threshold (the drift histogram spans twice the one in force).
    pub(super) anomaly_threshold: f64,
    /// The bundle's own reference ratio (`reference-ratio` = -1 restores it).
    pub(super) bundle_reference_ratio: Option<f64>,
    /// The bundle's own number of category votes (`category-votes` = 0 restores it).
    pub(super) bundle_category_votes: u32,
    /// Which load of a bundle this is in the stream (0 at start, one more per reload): per-object memory is kept
    /// per generation.
    pub(super) generation: u64,
}

impl Scoring {
    /// What a checked bundle contributes to scoring, with the threshold overrides in force.
    pub(super) fn new(bundle: &Bundle, path: &Path, live: &Live) -> Result<Scoring, String> {
        let mut scorer = Scorer::new(bundle);
        let bundle_category_votes = scorer.category_votes();
        scorer
            .set_overrides(threshold(live.novelty_threshold), threshold(live.anomaly_threshold))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut scoring = Scoring {
            scorer,
            crop: CropSpec::from_input(&bundle.model.input),
            name: Arc::from(bundle.name.as_str()),
            labels: bundle.classes.iter().map(|c| Arc::from(c.label.as_str())).collect(),
            path: path.to_owned(),
            anomaly_threshold: bundle.score.anomaly_threshold,
            bundle_reference_ratio: bundle.score.reference_ratio,
            bundle_category_votes,
            generation: 0,
        };
        scoring
            .set_reference_ratio(live.reference_ratio)
            .map_err(|e| format!("{}: reference-ratio = {}: {e}", path.display(), live.reference_ratio))?;
        scoring
            .set_category_votes(live.category_votes)
            .map_err(|e| format!("{}: category-votes = {}: {e}", path.display(), live.category_votes))?;
        Ok(scoring)
    }

    /// Put a `reference-ratio` value in force: -1 the bundle's own rule, 0 the thresholds alone, > 0 that ratio
    /// (refused when the bundle has no category references).
    pub(super) fn set_reference_ratio(&mut self, v: f64) -> Result<(), odm_core::ScoreError> {
        self.scorer.set_reference_ratio(reference_ratio(v).unwrap_or(self.bundle_reference_ratio))
    }

    /// Put a `category-votes` value in force: 0 the bundle's own number, else this many nearest designs.
    pub(super) fn set_category_votes(&mut self, v: u32) -> Result<(), odm_core::ScoreError> {
        self.scorer.set_category_votes(if v == CATEGORY_VOTES_FROM_BUNDLE { self.bundle_category_votes } else { v })
    }
}

/// The warning for threshold overrides that cross: what the user set is kept, and what it means.
pub(super) fn raised_text(what: &str, classes: usize, highest: f64) -> String {
    format!(
        "{what}: for {classes} classes the anomaly threshold in force is below the novelty threshold (up to \
         {highest}), so their anomaly band starts at their novelty threshold and none of their crops is called a \
         novelty; each result's anomaly-threshold field gives the one in force"
    )
}
