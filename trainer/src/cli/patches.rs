// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train patches`: anomaly patches cut from real photographs.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A folder of photographs, searched recursively (repeatable).
    #[arg(long = "photos", required = true)]
    photos: Vec<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// Patches per photograph.
    #[arg(long, default_value_t = 100)]
    per_photo: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { photos, out, per_photo, seed } = self;
        let m = odm_trainer::data::patches::run(&photos, &out, per_photo, seed)?;
        out!("wrote {} photos x {per_photo} patches to {}", m.photos.len(), out.display());
        Ok(())
    }
}
