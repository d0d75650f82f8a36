// SPDX-License-Identifier: MIT OR Apache-2.0
//! What leaves the trainer: ONNX files written by odm's own writer and the bundles beside them.

pub mod bundle;
pub mod byo;
pub mod centers;
pub mod fixture;
pub mod net;
pub mod onnx;
