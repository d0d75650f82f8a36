// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train table`: the paper's Table 2 for several runs side by side.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// metrics.json files (e.g. runs/odm/metrics.json runs/ce/metrics-odin.json).
    files: Vec<PathBuf>,
    /// One row of mean ± standard deviation per method and run folder, over folders that differ only by a
    /// trailing `-s<SEED>` (runs/odm-s1, runs/odm-s2, ...).
    #[arg(long)]
    mean: bool,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { files, mean } = self;
        out!("{}", odm_trainer::eval::table(&files, mean)?);
        Ok(())
    }
}
