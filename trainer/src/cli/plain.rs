// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train plain`: a second, plainer rendering of a config's designs, for evaluation only.

use std::path::PathBuf;

use super::shared::DesignsArg;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    out: PathBuf,
    /// The training config whose `in_dist` and `unseen_ood` designs are rendered.
    #[arg(long)]
    config: PathBuf,
    #[arg(long, default_value_t = 10)]
    per_design: usize,
    #[arg(long, default_value_t = 3)]
    seed: u64,
    /// Photographs to cut backgrounds from (the held-out ones: .deps/photos/heldout).
    #[arg(long)]
    photos: Option<PathBuf>,
    #[command(flatten)]
    designs: DesignsArg,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { out, config, per_design, seed, photos, designs } = self;
        let catalogue = odm_trainer::synth::designs::Catalogue::open(designs.designs.as_deref())?;
        let c = odm_trainer::train::config::TrainConfig::load(&config)?;
        let plain = odm_trainer::synth::plain::PlainConfig {
            seed,
            per_design,
            designs: c.in_dist.iter().chain(&c.unseen_ood).cloned().collect(),
            photos,
        };
        let n = odm_trainer::synth::plain::run(&out, &plain, &catalogue)?;
        out!("wrote {n} plain renders of {} designs to {}", plain.designs.len(), out.join("test").display());
        Ok(())
    }
}
