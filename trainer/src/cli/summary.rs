// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train summary`: verdict counts (and detection by size with --truth) of odmexport results.

use std::path::PathBuf;

use super::shared::warn;

#[derive(clap::Args)]
pub struct Args {
    results: PathBuf,
    /// Ground truth ROIs (as written by `odm-train clip`); also prints detection recall by sign size and
    /// precision.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Join results with the truth by ROI id (replayed boxes) or by box overlap (a live detector's boxes).
    #[arg(long = "match", value_enum, default_value = "ids")]
    how: odm_trainer::report::results::Match,
    /// Print the verdict counts as one JSON object (frames, rois, verdicts, by_kind, by_category, known_correct,
    /// known_total, novelty_category_correct, novelty_category_total) instead of the tables, for programs
    /// (odm-fleet).
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { results, truth, how, json } = self;
        use odm_trainer::data::rois::read_some;
        use odm_trainer::report::results as res;
        let r = read_some(&results)?;
        let t = truth.as_deref().map(read_some).transpose()?;
        for (v, n) in res::odd_verdicts(&r) {
            warn(&format!("{}: {n} ROIs have verdict {v:?}, which odmclassify never writes", results.display()));
        }
        if let Some(why) = t.as_deref().and_then(|t| res::truth_mismatch(&r, t, how)) {
            warn(&format!("--truth {}: {why}", truth.as_deref().unwrap_or(&results).display()));
        }
        let summary = res::summarise_by(&r, t.as_deref(), how);
        if json {
            out!("{}", serde_json::to_string(&summary)?);
            return Ok(());
        }
        out!("{}", summary.markdown());
        out!("{}", res::stability(&r).markdown());
        if let Some(t) = &t {
            out!("{}", res::detection(&r, t).markdown());
        }
        Ok(())
    }
}
