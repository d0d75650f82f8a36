// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train classes`: the sign designs.

use super::shared::DesignsArg;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    designs: DesignsArg,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { designs } = self;
        let catalogue = odm_trainer::synth::designs::Catalogue::open(designs.designs.as_deref())?;
        for d in &catalogue.designs {
            out!("{:<64} {:<14} {}", d.name, d.category.as_str(), d.regions.join(","));
        }
        Ok(())
    }
}
