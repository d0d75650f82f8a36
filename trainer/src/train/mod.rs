// SPDX-License-Identifier: MIT OR Apache-2.0
//! Training on libtorch through tch: the run's config (and the flags that make it), its data, batches, losses,
//! networks, Adam, the loop, calibration; a trained run read back.

pub mod adam;
pub mod calibrate;
pub mod config;
pub mod embed;
pub mod flags;
pub mod load;
pub mod loss;
pub mod model;
pub mod run;
pub mod rundata;
pub mod sampling;

pub use config::{LrSchedule, Method, TrainConfig};
