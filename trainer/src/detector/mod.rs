// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train detector`: a small one-stage traffic-sign detector for `odmdetect`.
//!
//! One class, `traffic-sign`: the detector only says where a sign is; `odmclassify` says which sign it is (or that
//! it is none it knows). The network is CenterNet-style (Zhou et al., "Objects as Points", 2019): a small
//! convolutional backbone (strides 2 to 32) with a top-down path back to stride 4, and a head that predicts per
//! cell of stride 4 a sign-centre heatmap, the centre's offset within the cell and the box's log width and height.
//! Stride 4 because signs start at 12 pixels: such a sign still covers 3 x 3 cells, so its centre has a cell of
//! its own, and boxes need no anchors. The network is fully convolutional: it trains on 256 x 256 crops of scenes
//! and runs on whole 1280 x 720 frames (letterboxed into 1280 x 736, a multiple of 32).
//!
//! Exported in the YOLOv8 layout `[N, 4 + 1, cells]` (cx, cy, w, h in input pixels, then the sigmoid score) so
//! odmdetect (decoder=auto) and other tools read it; the graph keeps only heatmap peaks (a 3 x 3 max-pool, as
//! CenterNet decodes), so NMS downstream has little left to do.
//!
//! * [`scene`] — training and held-out scenes: real sign designs composited over real photographs, with
//!   distractors; crops of rendered drives (`odm-train clip`).
//! * [`data`] — the dataset on disk (PNG + truth lines), loading, heatmap targets.
//! * [`net`] — the network; [`fit`] — loss and training loop; [`export`] — ONNX.
//! * [`eval`] — AP50, recall by sign size, false boxes per frame, from odmexport lines against truth lines.
//! * [`cli`] — the `odm-train detector` subcommands.

pub mod cli;
pub mod data;
pub mod eval;
pub mod export;
pub mod fit;
pub mod net;
pub mod scene;

/// Output stride of the head.
pub const STRIDE: i64 = 4;
/// Side of the square training crops.
pub const CROP: usize = 256;
/// The exported input: 1280 x 720 frames letterboxed into 1280 x 736 (height, width).
pub const INPUT_HW: (i64, i64) = (736, 1280);
/// The one class.
pub const CLASS: &str = "traffic-sign";
