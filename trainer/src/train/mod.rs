// SPDX-License-Identifier: MIT OR Apache-2.0
//! Training on libtorch through tch: networks, losses, the training loop, centres and calibration.

pub mod adam;
pub mod bench;
pub mod bundle;
pub mod byo;
pub mod calibrate;
pub mod categories;
pub mod config;
pub mod embed;
pub mod eval;
pub mod export;
pub mod flags;
pub mod loss;
pub mod model;
pub mod onnx_embed;
pub mod run;
pub mod rundata;
pub mod sampling;
pub mod table;

pub use config::{LrSchedule, Method, TrainConfig};
