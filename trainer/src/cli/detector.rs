// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train detector`: the sign detector for odmdetect (its commands are `detector::cli`).

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: odm_trainer::detector::cli::DetectorCommand,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { command } = self;
        out!("{}", odm_trainer::detector::cli::run(command)?);
        Ok(())
    }
}
