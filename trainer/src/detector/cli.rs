// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train detector ...`: render data, train, export, evaluate.

use std::path::PathBuf;

use super::data::{self, DataConfig};
use super::eval;
use super::fit::{self, FitConfig};
use super::scene::Crowd;
use crate::error::TrainError;

#[derive(Debug, clap::Subcommand)]
pub enum DetectorCommand {
    /// Render a detector dataset: photo scenes (real sign designs on photographs, with distractors) and windows of
    /// rendered drives. Writes OUT/images/NNNNN.png, OUT/truth.jsonl, OUT/data.json.
    Data {
        #[arg(long)]
        out: PathBuf,
        /// Background photographs (e.g. .deps/photos/seen; keep .deps/photos/heldout for evaluation).
        #[arg(long)]
        photos: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 2000)]
        scenes: usize,
        /// Image width and height (training crops: 256 x 256; held-out frames: 1280 x 720).
        #[arg(long, default_value_t = 256)]
        width: usize,
        #[arg(long, default_value_t = 256)]
        height: usize,
        /// Signs per scene: two numbers, low and high (`--signs 2 8`).
        #[arg(long, num_args = 2, default_values_t = [0, 4])]
        signs: Vec<usize>,
        /// Distractors per scene: low and high.
        #[arg(long, num_args = 2, default_values_t = [0, 3])]
        distractors: Vec<usize>,
        #[arg(long, default_value_t = 10.0)]
        min_size: f32,
        #[arg(long, default_value_t = 160.0)]
        max_size: f32,
        /// Designs drawn at random from the catalogue (0: all).
        #[arg(long, default_value_t = 400)]
        design_count: usize,
        #[arg(long)]
        designs: Option<PathBuf>,
        /// Seeds of drives to render with `odm-train clip` and cut into windows (comma-separated; the demo's is 7).
        #[arg(long, value_delimiter = ',')]
        drives: Vec<u64>,
        #[arg(long, default_value_t = 12.0)]
        drive_seconds: f32,
        #[arg(long, default_value_t = 4)]
        drive_every: usize,
        #[arg(long, default_value_t = 3)]
        windows_per_frame: usize,
    },
    /// Train the detector on a dataset of `detector data` and export RUN/detector.onnx.
    Train {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 3000)]
        steps: usize,
        #[arg(long, default_value_t = 16)]
        batch: usize,
        #[arg(long, default_value_t = 2e-3)]
        lr: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 50)]
        log_every: usize,
        /// libtorch threads (default: every core).
        #[arg(long)]
        threads: Option<i32>,
    },
    /// Export a trained run as ONNX (input 1280 x 736 unless --height/--width).
    Export {
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = super::INPUT_HW.0)]
        height: i64,
        #[arg(long, default_value_t = super::INPUT_HW.1)]
        width: i64,
        /// Backbone and top-down path in INT8 (QDQ), activation ranges calibrated on training images.
        #[arg(long)]
        int8: bool,
        /// Images of the training data (evenly spaced) that calibrate --int8.
        #[arg(long, default_value_t = 64, requires = "int8")]
        calib_images: usize,
        /// The dataset that calibrates --int8 (default: the run's training data).
        #[arg(long, requires = "int8")]
        calib_data: Option<PathBuf>,
    },
    /// Score a detector's boxes (odmexport lines of odmdetect) against truth boxes: AP50, recall by sign size,
    /// false boxes per frame.
    Eval {
        /// odmexport's JSON lines (run odmdetect with a low score-threshold, e.g. 0.05, for AP).
        #[arg(long)]
        results: PathBuf,
        /// Truth lines (`odm-train clip`'s drive.rois.jsonl, `detector data`'s truth.jsonl).
        #[arg(long)]
        truth: PathBuf,
        /// Score at which recall and false boxes are counted (odmdetect's default score-threshold).
        #[arg(long, default_value_t = 0.25)]
        threshold: f64,
        /// Signs smaller than this (largest side, px) are "don't care".
        #[arg(long, default_value_t = 12.0)]
        min_size: f64,
        /// Print the evaluation as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn check_hw(height: i64, width: i64) -> Result<(), TrainError> {
    if height < 32 || width < 32 || height % 32 != 0 || width % 32 != 0 {
        return Err(TrainError::Config(format!("input {width}x{height}: width and height must be multiples of 32")));
    }
    Ok(())
}

/// Run one `odm-train detector` command; returns what to print.
pub fn run(cmd: DetectorCommand) -> Result<String, TrainError> {
    match cmd {
        DetectorCommand::Data {
            out,
            photos,
            seed,
            scenes,
            width,
            height,
            signs,
            distractors,
            min_size,
            max_size,
            design_count,
            designs,
            drives,
            drive_seconds,
            drive_every,
            windows_per_frame,
        } => {
            let cfg = DataConfig {
                seed,
                photos,
                designs,
                design_count,
                scenes,
                width,
                height,
                crowd: Crowd {
                    signs: (signs[0], signs[1]),
                    distractors: (distractors[0], distractors[1]),
                    min_size,
                    max_size,
                },
                drives,
                drive_seconds,
                drive_every,
                windows_per_frame,
            };
            let t0 = std::time::Instant::now();
            let n = data::render(&out, &cfg)?;
            Ok(format!(
                "wrote {n} images and their truth into {} in {:.1} s",
                out.display(),
                t0.elapsed().as_secs_f64()
            ))
        }
        DetectorCommand::Train { data, out, steps, batch, lr, seed, log_every, threads } => {
            if let Some(t) = threads {
                if t < 1 {
                    return Err(TrainError::Config("--threads: give at least 1".into()));
                }
                tch::set_num_threads(t);
            }
            let cfg = FitConfig { data, steps, batch, lr, seed, log_every };
            let (_vs, net, s) = fit::fit(&out, &cfg, true)?;
            let onnx = out.join("detector.onnx");
            let bytes = super::export::onnx(&net, super::INPUT_HW, &doc(&cfg));
            std::fs::write(&onnx, bytes).map_err(TrainError::io(&onnx))?;
            let first = s.log.first().map_or(f64::NAN, |l| l.1);
            let last = s.log.last().map_or(f64::NAN, |l| l.1);
            Ok(format!(
                "trained {steps} steps of {batch} on {} images in {:.0} s (loss {first:.3} -> {last:.3}); wrote {}",
                s.images,
                s.seconds,
                onnx.display()
            ))
        }
        DetectorCommand::Export { run, out, height, width, int8, calib_images, calib_data } => {
            check_hw(height, width)?;
            if int8 && calib_images == 0 {
                return Err(TrainError::Config("--calib-images: give at least 1".into()));
            }
            let (_vs, net) = fit::load(&run)?;
            let cfg: FitConfig = std::fs::read_to_string(run.join("config.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| serde_json::from_value(v["fit"].clone()).ok())
                .unwrap_or_default();
            let bytes = if int8 {
                let from = calib_data.unwrap_or_else(|| cfg.data.clone());
                let calib = data::calibration(&from, calib_images)?;
                super::export::onnx_int8(&net, (height, width), &doc(&cfg), &calib)
            } else {
                super::export::onnx(&net, (height, width), &doc(&cfg))
            };
            std::fs::write(&out, &bytes).map_err(TrainError::io(&out))?;
            let precision = if int8 { ", int8" } else { "" };
            Ok(format!("wrote {} ({} bytes, input {width}x{height}{precision})", out.display(), bytes.len()))
        }
        DetectorCommand::Eval { results, truth, threshold, min_size, json } => {
            if !(0.0..=1.0).contains(&threshold) || min_size.is_nan() || min_size < 0.0 {
                return Err(TrainError::Config("--threshold in [0, 1] and --min-size 0 or more".into()));
            }
            let d = eval::read_detections(&results)?;
            let t = crate::data::rois::read_some(&truth)?;
            let e = eval::evaluate(&d, &t, threshold, min_size);
            if json {
                return serde_json::to_string(&e).map_err(|e| TrainError::Asset(e.to_string()));
            }
            Ok(e.markdown())
        }
    }
}

/// The ONNX file's description: what made it, without the folders it was made in, so that `models/detector/make.sh`
/// run in any folder (`OUT=...`) writes the same bytes.
fn doc(cfg: &FitConfig) -> String {
    format!(
        "odm sign detector (CenterNet-style, stride 4, one class traffic-sign), trained by odm-train detector train \
         ({} steps of {}, seed {}) on scenes of odm-train detector data; models/detector/make.sh reproduces it",
        cfg.steps, cfg.batch, cfg.seed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_names_no_folder() {
        let a = FitConfig { data: "out/detector/train".into(), ..Default::default() };
        let b = FitConfig { data: "/somewhere/else/train".into(), ..Default::default() };
        assert_eq!(doc(&a), doc(&b), "the data's folder must not change the file's bytes");
        assert!(!doc(&a).contains("out/detector"), "{}", doc(&a));
        let c = FitConfig { steps: a.steps + 1, ..a.clone() };
        assert_ne!(doc(&a), doc(&c), "the steps are part of the description");
    }
}
