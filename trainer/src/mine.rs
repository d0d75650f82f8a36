// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train mine`: hard negatives from footage. A detector's false positives on a team's own drives are exactly
//! what the model must learn to reject; this turns them into an anomaly tree for `train --seen-anomaly-dir`.
//!
//! The clip is decoded by GStreamer (`decodebin`, so any clip it can read; H.264 always by libav: [`gst_decode`]),
//! frame by frame as binary PPM through a pipe. The boxes are a recorded ROI file (JSON lines as `odmroireplay` reads
//! them) or the proposals of `odmproposals` run on the same clip (GStreamer must find the odm plugin:
//! `GST_PLUGIN_PATH`). Every box that overlaps no ground-truth *sign* ([`overlaps`]: IoU below `--iou`, and neither
//! box half inside the other; truth boxes of kind `distractor` are not signs) is cropped with
//! odm-core's preprocessing — the plugin's code: the same context margin, the same area sampling — and saved as a PNG.
//!
//! Layout: `OUT/<clip stem>/00000.png ...` (a class-per-folder tree) and `OUT/mined.jsonl`, one line per image:
//! `{"file", "clip", "frame", "x", "y", "w", "h"}`.

use std::io::Write;
use std::path::{Path, PathBuf};

use odm_core::bundle::ColorOrder;
use odm_core::preprocess::{CropSpec, Normalize};

use crate::data::footage::{crop, for_each_frame, gst_decode, gst_error};
use crate::data::rois::{self, intersection, iou, FrameLine, Rect, RoiLine};
use crate::error::TrainError;

/// Where the boxes come from.
pub enum Boxes {
    /// A JSON-lines ROI file (`odmroireplay`'s format, `odm-train clip`'s `drive.rois.jsonl`, `odmexport` output).
    File(PathBuf),
    /// `odmproposals` run on the clip.
    Proposals,
}

pub struct MineConfig {
    pub clip: PathBuf,
    pub boxes: Boxes,
    pub truth: Option<PathBuf>,
    /// A box overlapping a ground-truth sign by at least this IoU is a sign, not a negative.
    pub iou: f64,
    /// Side of the saved crops, in pixels.
    pub size: u32,
    /// Context margin added around each box (as the bundle's `context`).
    pub context: f32,
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MineStats {
    pub frames: usize,
    pub boxes: usize,
    /// Boxes left out because they overlap a ground-truth sign.
    pub overlapping: usize,
    pub written: usize,
}

/// Whether a box shows a ground-truth sign: IoU at least `threshold`, or half of either box inside the other (a box
/// around a sign with much context, or a box on part of a sign — a detector's loose boxes, not negatives).
pub fn overlaps(a: Rect, sign: Rect, threshold: f64) -> bool {
    let inter = intersection(a, sign);
    iou(a, sign) >= threshold || inter >= 0.5 * sign.2 * sign.3 || inter >= 0.5 * a.2 * a.3
}

/// Is a ground-truth box a sign? Every truth box is, unless its `kind` says `distractor`.
fn is_sign(r: &RoiLine) -> bool {
    r.kind.as_deref() != Some("distractor")
}

/// The boxes of `frames` that overlap no sign of `truth` (same frame) by `iou` or more; also how many did.
pub fn negatives<'a>(
    frames: &'a [FrameLine],
    truth: Option<&[FrameLine]>,
    threshold: f64,
) -> (Vec<(u64, &'a RoiLine)>, usize) {
    let mut signs: std::collections::HashMap<u64, Vec<&RoiLine>> = Default::default();
    for f in truth.unwrap_or(&[]) {
        signs.entry(f.frame).or_default().extend(f.rois.iter().filter(|r| is_sign(r)));
    }
    let mut out = Vec::new();
    let mut overlapping = 0;
    for f in frames {
        for r in &f.rois {
            let hit = signs.get(&f.frame).is_some_and(|v| v.iter().any(|t| overlaps(r.rect(), t.rect(), threshold)));
            if hit {
                overlapping += 1;
            } else {
                out.push((f.frame, r));
            }
        }
    }
    (out, overlapping)
}

/// Run `odmproposals` over the clip and read its boxes back (through `odmexport`, into a scratch folder inside
/// `out` that is removed whatever happens).
fn proposals(clip: &Path, out: &Path) -> Result<Vec<FrameLine>, TrainError> {
    std::fs::create_dir_all(out).map_err(TrainError::io(out))?;
    let tmp = tempfile::Builder::new().prefix(".mine-").tempdir_in(out).map_err(TrainError::io(out))?;
    let results = tmp.path().join("proposals.jsonl");
    let out = gst_decode()
        .arg("-q")
        .args(["filesrc", &format!("location={}", clip.display()), "!", "decodebin", "!", "videoconvert", "!"])
        .args(["video/x-raw,format=NV12", "!", "odmproposals", "!", "odmexport"])
        .arg(format!("location={}", results.display()))
        .args(["!", "fakesink"])
        .output()
        .map_err(|e| TrainError::Asset(format!("cannot start gst-launch-1.0 (run scripts/bootstrap.sh): {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("no element \"odmproposals\"") {
        return Err(TrainError::Config(
            "--proposals: GStreamer does not find odmproposals: build the plugin (cargo build --release -p \
             gst-plugin-odm) and set GST_PLUGIN_PATH to its folder (target/release)"
                .into(),
        ));
    }
    if !out.status.success() {
        return Err(gst_error("running odmproposals failed", clip, &stderr));
    }
    rois::read(&results)
}

/// Mine a clip; see the module documentation.
pub fn run(cfg: &MineConfig) -> Result<MineStats, TrainError> {
    if let (Boxes::File(rois), None) = (&cfg.boxes, &cfg.truth) {
        // A ROI file holds the signs too (a clip's truth, a detector's recorded boxes): without the truth to leave
        // them out, every known sign would be mined as a negative.
        return Err(TrainError::Config(format!(
            "--rois {} needs --truth: without the ground truth every box is mined as a negative, the signs too \
             (give the clip's truth, such as the drive.rois.jsonl of `odm-train clip`; the same file works when the \
             ROIs are the truth)",
            rois.display()
        )));
    }
    if !cfg.clip.is_file() {
        return Err(TrainError::Config(format!("--clip {}: no such file", cfg.clip.display())));
    }
    if !(cfg.iou > 0.0 && cfg.iou <= 1.0) {
        return Err(TrainError::Config(format!("--iou must be in (0, 1], got {}", cfg.iou)));
    }
    if cfg.size < 8 {
        return Err(TrainError::Config(format!("--size must be at least 8, got {}", cfg.size)));
    }
    let boxes = match &cfg.boxes {
        Boxes::File(p) => rois::read(p)?,
        Boxes::Proposals => proposals(&cfg.clip, &cfg.out)?,
    };
    let truth = cfg.truth.as_deref().map(rois::read).transpose()?;
    let (keep, overlapping) = negatives(&boxes, truth.as_deref(), cfg.iou);
    let mut by_frame: std::collections::BTreeMap<u64, Vec<&RoiLine>> = Default::default();
    for (f, r) in &keep {
        by_frame.entry(*f).or_default().push(r);
    }
    let stem = cfg.clip.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "clip".into());
    let dir = cfg.out.join(&stem);
    std::fs::create_dir_all(&dir).map_err(TrainError::io(&dir))?;

    let spec = CropSpec {
        width: cfg.size,
        height: cfg.size,
        context: cfg.context,
        norm: Normalize { color: ColorOrder::Rgb, mean: [0.0; 3], std: [1.0; 3] },
    };
    let mut buf = vec![0f32; spec.len()];
    let mut stats = MineStats { boxes: boxes.iter().map(|f| f.rois.len()).sum(), overlapping, ..Default::default() };
    let manifest_path = cfg.out.join("mined.jsonl");
    let mut manifest = std::fs::File::create(&manifest_path).map_err(TrainError::io(&manifest_path))?;
    let frames = for_each_frame(&cfg.clip, |frame_no, frame| {
        let Some(rois) = by_frame.get(&frame_no) else { return Ok(()) };
        for r in rois {
            // Boxes outside the frame are what odmclassify skips too.
            let Some(img) = crop(frame, r, &spec, &mut buf) else { continue };
            let file = format!("{stem}/{:05}.png", stats.written);
            crate::data::save_png(&img, &cfg.out.join(&file))?;
            let line = serde_json::json!({
                "file": file, "clip": cfg.clip.display().to_string(), "frame": frame_no,
                "x": r.x, "y": r.y, "w": r.w, "h": r.h,
            });
            writeln!(manifest, "{line}").map_err(TrainError::io(&manifest_path))?;
            stats.written += 1;
        }
        Ok(())
    })?;
    stats.frames = frames as usize;
    if stats.written == 0 {
        return Err(TrainError::Config(format!(
            "{}: nothing to mine: {} boxes, {} of them on ground-truth signs, none left inside the frames",
            cfg.clip.display(),
            stats.boxes,
            stats.overlapping
        )));
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_boxes() {
        assert_eq!(iou((0.0, 0.0, 10.0, 10.0), (0.0, 0.0, 10.0, 10.0)), 1.0);
        assert_eq!(iou((0.0, 0.0, 10.0, 10.0), (10.0, 0.0, 10.0, 10.0)), 0.0);
        // Half overlap: 50 / 150.
        assert!((iou((0.0, 0.0, 10.0, 10.0), (5.0, 0.0, 10.0, 10.0)) - 1.0 / 3.0).abs() < 1e-12);
        // A loose box around a sign (IoU 0.25) and a box on a part of a sign both show the sign.
        assert!(overlaps((0.0, 0.0, 20.0, 20.0), (5.0, 5.0, 10.0, 10.0), 0.3));
        assert!(overlaps((0.0, 0.0, 4.0, 4.0), (0.0, 0.0, 10.0, 10.0), 0.3));
        assert!(!overlaps((0.0, 0.0, 10.0, 10.0), (8.0, 8.0, 10.0, 10.0), 0.3));
    }
}
