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

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use odm_core::bundle::ColorOrder;
use odm_core::preprocess::{crop_to_tensor, CropSpec, Frame, Normalize, PixelFormat, Plane, Roi, YuvMatrix};

use crate::error::TrainError;
use crate::results::{self, intersection, iou, FrameLine, Rect, RoiLine};

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

fn gst_error(what: &str, clip: &Path, stderr: &str) -> TrainError {
    let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(3)..].join(" / ");
    TrainError::Config(format!("{}: {what}: {tail}", clip.display()))
}

/// `gst-launch-1.0` for a pipeline that decodes a clip with decodebin, with libav's H.264 decoder ranked above every
/// other (`GST_PLUGIN_FEATURE_RANK`, added after the caller's own). decodebin takes the highest-ranked decoder a
/// machine has, and they do not give the same frames: openh264dec decodes the B-frames of `odm-train clip`'s drives
/// otherwise (other boxes from odmproposals), and hardware decoders hand NV12 to videoconvert, whose RGB differs from
/// the one it makes of avdec_h264's I420 (other crops). libav decodes H.264 exactly, whatever its thread count.
pub fn gst_decode() -> Command {
    let mut c = Command::new("gst-launch-1.0");
    let pin = "avdec_h264:MAX";
    let ranks = match std::env::var("GST_PLUGIN_FEATURE_RANK") {
        Ok(r) if !r.trim().is_empty() => format!("{r},{pin}"),
        _ => pin.to_owned(),
    };
    c.env("GST_PLUGIN_FEATURE_RANK", ranks);
    c
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
    results::read(&results)
}

/// Read one binary PPM (`P6 W H 255`, then W*H*3 bytes) from a stream into `data` (reused from frame to frame);
/// its size, or `None` at a clean end of stream.
fn read_ppm(r: &mut impl BufRead, data: &mut Vec<u8>) -> Result<Option<(u32, u32)>, String> {
    let mut fields = Vec::new();
    while fields.len() < 4 {
        let mut tok = Vec::new();
        loop {
            let mut b = [0u8];
            if r.read(&mut b).map_err(|e| e.to_string())? == 0 {
                return if fields.is_empty() && tok.is_empty() { Ok(None) } else { Err("truncated PPM header".into()) };
            }
            if b[0] == b'#' {
                let mut comment = Vec::new();
                r.read_until(b'\n', &mut comment).map_err(|e| e.to_string())?;
                continue;
            }
            if b[0].is_ascii_whitespace() {
                if !tok.is_empty() {
                    break;
                }
                continue;
            }
            tok.push(b[0]);
        }
        fields.push(String::from_utf8_lossy(&tok).into_owned());
    }
    let num = |s: &str| s.parse::<u32>().map_err(|_| format!("bad PPM header field {s:?}"));
    if fields[0] != "P6" || num(&fields[3])? != 255 {
        return Err(format!("not an 8-bit binary PPM ({} ... {})", fields[0], fields[3]));
    }
    let (w, h) = (num(&fields[1])?, num(&fields[2])?);
    data.resize(w as usize * h as usize * 3, 0);
    r.read_exact(data).map_err(|e| format!("truncated PPM frame: {e}"))?;
    Ok(Some((w, h)))
}

/// Crop one box of an RGB frame through odm-core's preprocessing into an RGB image of `spec`'s size.
pub fn crop(frame: &Frame<'_>, r: &RoiLine, spec: &CropSpec, buf: &mut [f32]) -> Option<image::RgbImage> {
    let roi = Roi { x: r.x.round() as i64, y: r.y.round() as i64, w: r.w.round() as i64, h: r.h.round() as i64 };
    crop_to_tensor(frame, roi, spec, buf).ok()?;
    let (w, h) = (spec.width as usize, spec.height as usize);
    let n = &spec.norm;
    let mut img = image::RgbImage::new(spec.width, spec.height);
    for (i, p) in img.pixels_mut().enumerate() {
        let (y, x) = (i / w, i % w);
        *p = image::Rgb(std::array::from_fn(|c| {
            let v = buf[c * w * h + y * w + x] * n.std[c] + n.mean[c];
            (v * 255.0).round().clamp(0.0, 255.0) as u8
        }));
    }
    Some(img)
}

/// Decode `clip` with GStreamer (decodebin as [`gst_decode`] sets it up, RGB) and call `f` with each frame's index and
/// pixels, in order; returns the number of frames. A clip that does not decode (or gives no frame) is an error naming
/// it.
pub fn for_each_frame(
    clip: &Path,
    mut f: impl FnMut(u64, &Frame<'_>) -> Result<(), TrainError>,
) -> Result<u64, TrainError> {
    let mut child = gst_decode()
        .arg("-q")
        .args(["filesrc", &format!("location={}", clip.display()), "!", "decodebin", "!", "videoconvert", "!"])
        .args(["video/x-raw,format=RGB", "!", "pnmenc", "!", "fdsink", "fd=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| TrainError::Asset(format!("cannot start gst-launch-1.0 (run scripts/bootstrap.sh): {e}")))?;
    let mut stdout = BufReader::with_capacity(1 << 20, child.stdout.take().expect("piped"));
    let mut frame_no = 0u64;
    let mut data = Vec::new();
    let mut failed = None;
    let decode_error = loop {
        let (w, h) = match read_ppm(&mut stdout, &mut data) {
            Ok(Some(f)) => f,
            Ok(None) => break None,
            Err(e) => break Some(e),
        };
        let frame =
            Frame::new(PixelFormat::Rgb, w, h, &[Plane { data: &data, stride: 3 * w as usize }], YuvMatrix::Bt601)
                .map_err(|e| TrainError::Config(format!("{}: frame {frame_no}: {e}", clip.display())));
        if let Err(e) = frame.and_then(|frame| f(frame_no, &frame)) {
            failed = Some(e);
            break None;
        }
        frame_no += 1;
    };
    drop(stdout);
    if failed.is_some() {
        // Stopped early by `f`: the rest of the clip is not wanted.
        let _ = child.kill();
    }
    let out = child.wait_with_output().map_err(|e| TrainError::Asset(format!("gst-launch-1.0: {e}")))?;
    if let Some(e) = failed {
        return Err(e);
    }
    if !out.status.success() || frame_no == 0 || decode_error.is_some() {
        let why = decode_error.unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned());
        return Err(gst_error("the clip does not decode", clip, &why));
    }
    Ok(frame_no)
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
        Boxes::File(p) => results::read(p)?,
        Boxes::Proposals => proposals(&cfg.clip, &cfg.out)?,
    };
    let truth = cfg.truth.as_deref().map(results::read).transpose()?;
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
            crate::synth::save_png(&img, &cfg.out.join(&file))?;
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

    #[test]
    fn ppm_stream_reads_frame_after_frame() {
        let mut bytes = b"P6\n2 1\n255\n".to_vec();
        bytes.extend([1, 2, 3, 4, 5, 6]);
        bytes.extend(b"P6 # a comment\n1 1 255\n");
        bytes.extend([7, 8, 9]);
        let mut r = std::io::Cursor::new(bytes);
        let mut data = Vec::new();
        assert_eq!(read_ppm(&mut r, &mut data).unwrap(), Some((2, 1)));
        assert_eq!(data, [1, 2, 3, 4, 5, 6]);
        assert_eq!(read_ppm(&mut r, &mut data).unwrap(), Some((1, 1)));
        assert_eq!(data, [7, 8, 9]);
        assert_eq!(read_ppm(&mut r, &mut data).unwrap(), None);
        let mut short = std::io::Cursor::new(b"P6\n2 2\n255\n\x01\x02".to_vec());
        assert!(read_ppm(&mut short, &mut data).unwrap_err().contains("truncated"));
    }
}
