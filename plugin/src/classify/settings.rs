// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmclassify's settings (the properties), apart from its streaming state.

use std::path::PathBuf;
use std::sync::Arc;

use super::{ExecutionProvider, Mode};

pub(super) const DEFAULT_MODE: Mode = Mode::Roi;
pub(super) const DEFAULT_BATCH_SIZE: u32 = 16;
pub(super) const DEFAULT_THREADS: u32 = 1;
pub(super) const DEFAULT_MIN_SIZE: u32 = 4;
/// Threshold properties at this value use the bundle's calibrated thresholds.
pub(super) const THRESHOLD_FROM_BUNDLE: f64 = -1.0;

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) model: Option<PathBuf>,
    pub(super) bundle: Option<PathBuf>,
    pub(super) ort_library: Option<PathBuf>,
    /// Elements with the same non-empty id share one session.
    pub(super) model_instance_id: String,
    /// Frames whose inference may still run while the next ones are cropped (0: all on the streaming thread).
    pub(super) frames_in_flight: u32,
    /// With frames in flight: the longest a frame waits for later ones, in ms (0: until they come or the stream ends).
    pub(super) max_batch_latency: u32,
    pub(super) mode: Mode,
    pub(super) batch_size: u32,
    pub(super) provider: ExecutionProvider,
    pub(super) device_id: i32,
    pub(super) fallback: bool,
    pub(super) trt_cache: Option<PathBuf>,
    pub(super) trt_fp16: bool,
    pub(super) threads: u32,
    pub(super) live: Live,
}

/// The settings read on every frame (all changeable while PLAYING); cloning one allocates nothing.
#[derive(Debug, Clone)]
pub(super) struct Live {
    pub(super) roi_type: Arc<str>,
    pub(super) min_size: u32,
    pub(super) max_size: u32,
    pub(super) novelty_threshold: f64,
    pub(super) anomaly_threshold: f64,
    pub(super) emit_messages: bool,
    pub(super) stats_interval: u32,
    /// Reuse a tracked ROI's result for this many frames (0 or 1: classify every frame).
    pub(super) reclassify_interval: u32,
    /// Report the majority of a tracked ROI's last this many results (0 or 1: off).
    pub(super) vote_window: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: None,
            bundle: None,
            ort_library: None,
            model_instance_id: String::new(),
            frames_in_flight: 0,
            max_batch_latency: 0,
            mode: DEFAULT_MODE,
            batch_size: DEFAULT_BATCH_SIZE,
            provider: ExecutionProvider::Cpu,
            device_id: 0,
            fallback: true,
            trt_cache: None,
            trt_fp16: false,
            threads: DEFAULT_THREADS,
            live: Live {
                roi_type: Arc::from(""),
                min_size: DEFAULT_MIN_SIZE,
                max_size: 0,
                novelty_threshold: THRESHOLD_FROM_BUNDLE,
                anomaly_threshold: THRESHOLD_FROM_BUNDLE,
                emit_messages: false,
                stats_interval: 0,
                reclassify_interval: 0,
                vote_window: 0,
            },
        }
    }
}

/// A threshold property's value as an override: `None` for -1 (the bundle's own).
pub(super) fn threshold(v: f64) -> Option<f64> {
    (v >= 0.0).then_some(v)
}
