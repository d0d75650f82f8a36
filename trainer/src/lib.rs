// SPDX-License-Identifier: MIT OR Apache-2.0
//! odm-trainer: everything behind the `odm-train` command, in rooms by job (the command line itself is the
//! binary's `cli/`).
//!
//! * [`synth`] — the synthetic world: the sign designs, the open-set protocol, the camera model, datasets and
//!   dashcam drives.
//! * [`data`] — readers: class-per-folder trees, GTSRB, TT100K, IDX, photographs, footage, ROI lines; the splits.
//! * [`train`] — training on libtorch through tch: config, data of a run, batches, losses, networks, Adam, the
//!   loop, calibration.
//! * [`eval`] — the paper's tables for a run, categories of unknown signs, ONNX files in ONNX Runtime.
//! * [`export`] — ONNX (odm's own writer; fp32, INT8, FP16) and bundles: a run's, `centers`, `bundle --onnx`, the
//!   hand-built test model.
//! * [`report`] — for people: summaries of odmexport results, the HTML report, figures, contact sheets.
//! * [`mine`] — hard negatives from footage.
//! * [`bench`] — training speed.
//! * [`detector`] — the sign detector for odmdetect.

pub mod bench;
pub mod data;
pub mod detector;
pub mod error;
pub mod eval;
pub mod export;
pub mod mine;
pub mod progress;
pub mod report;
pub mod synth;
pub mod train;

pub use error::TrainError;
