// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train protocol`: the open-set protocol (known / seen / unseen designs) written into a training config.

use std::path::PathBuf;

use super::shared::DesignsArg;

#[derive(clap::Args)]
pub struct Args {
    /// The region whose catalogue is known (eu, us, au, br, ca).
    #[arg(long, default_value = "eu")]
    region: String,
    /// Fraction of the other groups that are seen out-of-distribution (the paper's 20 of 50: 0.4).
    #[arg(long, default_value_t = 0.4)]
    seen_fraction: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The training config to write the lists into (created when missing).
    #[arg(long)]
    config: PathBuf,
    /// Write the validation protocol instead (for choosing networks and recipes): the seen groups split again,
    /// this fraction seen and the rest playing the unseen designs; the test's unseen designs set aside.
    #[arg(long)]
    validation: Option<f64>,
    #[command(flatten)]
    designs: DesignsArg,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { region, seen_fraction, seed, config, validation, designs } = self;
        let catalogue = odm_trainer::synth::designs::Catalogue::open(designs.designs.as_deref())?;
        let mut p = odm_trainer::synth::protocol::build(&catalogue, &region, seen_fraction, seed)?;
        if let Some(f) = validation {
            p = odm_trainer::synth::protocol::validation(&p, f, seed)?;
        }
        let w = odm_trainer::synth::protocol::write_into(&p, &config)?;
        out!(
            "{}: {} known, {} seen OOD, {} unseen, {} aside ({} designs, region {region}, seed {seed})",
            config.display(),
            p.in_dist.len(),
            p.seen_ood.len(),
            p.unseen_ood.len(),
            p.aside.len(),
            w
        );
        Ok(())
    }
}
