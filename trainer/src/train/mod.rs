// SPDX-License-Identifier: MIT OR Apache-2.0
//! Training on libtorch through tch: networks, losses, the training loop, centres and calibration.

pub mod adam;
pub mod bench;
pub mod eval;
pub mod export;
pub mod loss;
pub mod model;
pub mod run;
