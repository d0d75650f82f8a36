// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train plot`: the PCA figure and ROC curves of a run.

use std::path::PathBuf;

use super::shared::Threads;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    run: PathBuf,
    /// Points per set.
    #[arg(long, default_value_t = 300)]
    per_set: usize,
    #[command(flatten)]
    threads: Threads,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { run, per_set, threads } = self;
        threads.apply()?;
        let p = odm_trainer::report::plot::plot_run(&run, per_set)?;
        out!("wrote {} and {}", p.pca.display(), p.roc.display());
        Ok(())
    }
}
