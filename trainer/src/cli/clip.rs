// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train clip`: a synthetic dashcam drive with ground-truth ROIs.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 12.0)]
    seconds: f32,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[arg(long, default_value_t = 1280)]
    width: u32,
    #[arg(long, default_value_t = 720)]
    height: u32,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Take the known classes from this bundle's labels (default: ten classes of the shipped model).
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Unknown sign classes (comma-separated; default: six the shipped model never learnt).
    #[arg(long, value_delimiter = ',')]
    unknown: Vec<String>,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { out, seconds, seed, width, height, fps, bundle, unknown } = self;
        let base = match bundle {
            Some(b) => odm_trainer::synth::clip::ClipConfig::for_bundle(&odm_core::Bundle::load(&b)?),
            None => Default::default(),
        };
        let mut cfg = odm_trainer::synth::clip::ClipConfig { seconds, seed, width, height, fps, ..base };
        if !unknown.is_empty() {
            cfg.unknown = unknown;
        }
        std::fs::create_dir_all(&out)?;
        let s = odm_trainer::synth::clip::run(&out.join("drive.mp4"), &out.join("drive.rois.jsonl"), &cfg)?;
        out!(
            "wrote {} and {} ({} frames, {} objects, {} boxes) in {:.1} s",
            s.video.display(),
            s.rois.display(),
            s.frames,
            s.objects,
            s.boxes,
            s.seconds
        );
        Ok(())
    }
}
