// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train import`: GTSRB, TT100K, IDX or folders into the class-per-folder layout.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    data: PathBuf,
    #[arg(long, value_enum)]
    format: odm_trainer::data::Format,
    #[arg(long)]
    out: PathBuf,
    /// Share of each class put in test/ (IDX train-*/t10k-* folders keep their own split).
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Margin added around annotated boxes, as a fraction of the box.
    #[arg(long, default_value_t = 0.1)]
    margin: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { data, format, out, test_fraction, margin, seed } = self;
        let (a, b) = odm_trainer::data::import::import(&data, format, &out, test_fraction, margin, seed)?;
        out!("wrote {a} training and {b} test images to {}", out.display());
        Ok(())
    }
}
