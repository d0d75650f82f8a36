// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train mine`: hard negatives from footage.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Any clip GStreamer can decode.
    #[arg(long)]
    clip: PathBuf,
    /// Boxes from a JSON-lines ROI file (odmroireplay's format).
    #[arg(long, conflicts_with = "proposals", required_unless_present = "proposals")]
    rois: Option<PathBuf>,
    /// Boxes from odmproposals run on the clip (the odm plugin must be on GST_PLUGIN_PATH).
    #[arg(long)]
    proposals: bool,
    /// Ground-truth boxes (JSON lines, as `odm-train clip` writes); boxes of kind "distractor" are not signs.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// A box overlapping a ground-truth sign by this IoU or more is left out.
    #[arg(long, default_value_t = 0.3)]
    iou: f64,
    /// Side of the saved crops in pixels.
    #[arg(long, default_value_t = 64)]
    size: u32,
    /// Context margin around each box (the bundle's).
    #[arg(long, default_value_t = 0.1)]
    context: f32,
    #[arg(long)]
    out: PathBuf,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { clip, rois, proposals: _, truth, iou, size, context, out } = self;
        let boxes = match rois {
            Some(p) => odm_trainer::mine::Boxes::File(p),
            None => odm_trainer::mine::Boxes::Proposals,
        };
        let cfg = odm_trainer::mine::MineConfig { clip, boxes, truth, iou, size, context, out };
        let s = odm_trainer::mine::run(&cfg)?;
        out!(
            "{} frames, {} boxes, {} on ground-truth signs: wrote {} negatives to {}",
            s.frames,
            s.boxes,
            s.overlapping,
            s.written,
            cfg.out.display()
        );
        Ok(())
    }
}
