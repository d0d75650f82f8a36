// SPDX-License-Identifier: MIT OR Apache-2.0
//! odm-trainer: everything behind the `odm-train` command.
//!
//! * [`onnx`] — odm's own ONNX writer (prost messages, graph builder).
//! * [`fixture`] — the hand-built colour model used by tests and the first demo.
//! * [`data`] — dataset readers (folders, GTSRB, TT100K, IDX) and the paper's splits.
//! * [`train`] — networks, losses (contrastive, ODM), training on libtorch through tch.
//! * [`synth`] — the synthetic traffic-sign world (`odm-train synth`).

pub mod assets;
pub mod clip;
pub mod data;
pub mod detector;
pub mod error;
pub mod fixture;
pub mod mine;
pub mod onnx;
pub mod plot;
pub mod progress;
pub mod report;
pub mod results;
pub mod sheet;
pub mod synth;
pub mod train;

pub use error::TrainError;
