// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train compare`: odmexport results against expected ones (regression check).

use std::path::PathBuf;

use super::shared::warn_as;

#[derive(clap::Args)]
pub struct Args {
    expected: PathBuf,
    actual: PathBuf,
    /// Largest distance difference that still agrees (0 or more).
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    tolerance: f64,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { expected, actual, tolerance } = self;
        let tolerance = odm_trainer::report::results::check_tolerance(tolerance)?;
        let e = odm_trainer::data::rois::read_some(&expected)?;
        let a = odm_trainer::data::rois::read_some(&actual)?;
        let diffs = odm_trainer::report::results::compare(&e, &a, tolerance);
        if diffs.is_empty() {
            out!("{} frames agree with {} (distances within {tolerance})", e.len(), expected.display());
        } else {
            for d in diffs.iter().take(30) {
                warn_as("compare", d);
            }
            return Err(format!("{} differences from {}", diffs.len(), expected.display()).into());
        }
        Ok(())
    }
}
