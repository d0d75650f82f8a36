// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train report`: a static HTML page about a run on a clip.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// odmexport's JSON lines.
    results: PathBuf,
    /// The clip the results are of (for the thumbnails).
    #[arg(long)]
    clip: Option<PathBuf>,
    /// Ground truth ROIs (as written by `odm-train clip`: kind and label per box).
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Join results with the truth by ROI id (replayed boxes) or by box overlap (a live detector's boxes).
    #[arg(long = "match", value_enum, default_value = "ids")]
    how: odm_trainer::report::results::Match,
    /// Thumbnails per group.
    #[arg(long, default_value_t = 48)]
    per_group: usize,
    #[arg(long)]
    out: PathBuf,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { results, clip, truth, how, per_group, out } = self;
        let o = odm_trainer::report::page::ReportOptions { results, clip, truth, matching: how, per_group, out };
        let index = odm_trainer::report::page::write(&o)?;
        out!("wrote {}", index.display());
        Ok(())
    }
}
