// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train fixture`: the hand-built `colors` test model.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Output folder.
    #[arg(long, default_value = "models/colors")]
    out: PathBuf,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { out } = self;
        let path = odm_trainer::export::fixture::write(&out)?;
        out!("wrote {}", path.display());
        Ok(())
    }
}
