// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train render`: sign-like unknowns or sign-coloured objects to mine in training.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum)]
    kind: odm_trainer::synth::mined::MinedKind,
    /// Output folder (one sub-folder per family).
    #[arg(long)]
    out: PathBuf,
    /// Images per family.
    #[arg(long, default_value_t = 300)]
    per_family: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { kind, out, per_family, seed } = self;
        let start = std::time::Instant::now();
        let m = odm_trainer::synth::mined::run(&out, kind, per_family, seed)?;
        out!(
            "wrote {} families x {per_family} images to {} in {:.1} s",
            m.families.len(),
            out.display(),
            start.elapsed().as_secs_f64()
        );
        Ok(())
    }
}
