// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train sheet`: a contact sheet of a dataset.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Dataset root (as written by `synth`: train/, background/, noise/).
    #[arg(long)]
    data: PathBuf,
    /// Output PNG.
    #[arg(long)]
    out: PathBuf,
    /// Samples per row.
    #[arg(long, default_value_t = 10)]
    per_class: usize,
    /// Most rows per role (in-distribution, seen-ood, novelty, each anomaly set); default: all.
    #[arg(long)]
    rows_per_role: Option<usize>,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { data, out, per_class, rows_per_role } = self;
        let rows = odm_trainer::report::sheet::sheet_rows(&data, per_class, rows_per_role.unwrap_or(usize::MAX))?;
        odm_trainer::report::sheet::write(&rows, &out)?;
        out!("wrote {} ({} rows)", out.display(), rows.len());
        Ok(())
    }
}
