// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmclassify's settings (the properties), apart from its streaming state.

use std::path::PathBuf;
use std::sync::Arc;

use gst::glib;
use gst::prelude::*;

use super::{ExecutionProvider, Mode};

pub(super) const DEFAULT_MODE: Mode = Mode::Roi;
pub(super) const DEFAULT_BATCH_SIZE: u32 = 16;
pub(super) const DEFAULT_THREADS: u32 = 1;
pub(super) const DEFAULT_MIN_SIZE: u32 = 4;
/// Threshold properties at this value use the bundle's calibrated thresholds.
pub(super) const THRESHOLD_FROM_BUNDLE: f64 = -1.0;
/// `category-votes` at this value uses the bundle's `score.category_votes`.
pub(super) const CATEGORY_VOTES_FROM_BUNDLE: u32 = 0;

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
    /// The reference rule's ratio: -1 the bundle's, 0 off, else this ratio.
    pub(super) reference_ratio: f64,
    /// How many nearest designs a novelty's category is the vote of: 0 the bundle's, else this many.
    pub(super) category_votes: u32,
    pub(super) emit_messages: bool,
    pub(super) stats_interval: u32,
    /// Add each crop's embedding to its result (`embedding`).
    pub(super) attach_embedding: bool,
    /// Reuse a tracked ROI's result for this many frames (0 or 1: classify every frame).
    pub(super) reclassify_interval: u32,
    /// Report the majority of a tracked ROI's last this many results (0 or 1: off).
    pub(super) vote_window: u32,
    /// Least IoU between an id's box and its last one for its memory to be used.
    pub(super) memory_iou: f64,
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
                reference_ratio: THRESHOLD_FROM_BUNDLE,
                category_votes: CATEGORY_VOTES_FROM_BUNDLE,
                emit_messages: false,
                stats_interval: 0,
                attach_embedding: false,
                reclassify_interval: 0,
                vote_window: 0,
                memory_iou: DEFAULT_MEMORY_IOU,
            },
        }
    }
}

/// Default `memory-iou`: boxes of one sign in consecutive frames of a moving camera overlap far more; boxes of two
/// signs that swapped ids overlap far less.
pub(super) const DEFAULT_MEMORY_IOU: f64 = 0.3;

/// A threshold property's value as an override: `None` for -1 (the bundle's own).
pub(super) fn threshold(v: f64) -> Option<f64> {
    (v >= 0.0).then_some(v)
}

/// The `reference-ratio` property as the scorer's setting: `None` for -1 (the bundle's own), `Some(None)` for 0
/// (the rule off), `Some(Some(r))` for a ratio.
pub(super) fn reference_ratio(v: f64) -> Option<Option<f64>> {
    if v < 0.0 {
        None
    } else {
        Some((v > 0.0).then_some(v))
    }
}

/// odmclassify's properties (their names, ranges, defaults and when they may change).
pub(super) fn param_specs() -> Vec<glib::ParamSpec> {
    let mut specs = vec![
        glib::ParamSpecString::builder("model")
            .nick("Model")
            .blurb("Path of the embedding network (ONNX)")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("bundle")
            .nick("Bundle")
            .blurb(
                "Path of the model bundle (NAME.odm.json); default: beside the model. Set while PLAYING, the \
                 new centres, labels and thresholds go live between two frames (same network; a bad file is \
                 refused with a warning and the old bundle stays)",
            )
            .mutable_playing()
            .build(),
        glib::ParamSpecEnum::builder_with_default("mode", DEFAULT_MODE)
            .nick("Mode")
            .blurb("Classify each ROI meta, or the whole frame as one crop")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("model-instance-id")
            .nick("Model instance id")
            .blurb(
                "Elements with the same id (in any pipeline of the process) share one ONNX Runtime session: \
                 same model file bytes, execution provider, device and threads, or the start fails; empty: \
                 this element's own session",
            )
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("frames-in-flight")
            .nick("Frames in flight")
            .blurb(
                "Run inference on a worker thread while the streaming thread crops the next frames: up to this \
                 many frames wait for their results (added to the latency query), in order; frames waiting \
                 together whose crops fit one batch share one inference run; 0: everything on the streaming \
                 thread",
            )
            .maximum(64)
            .default_value(0)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("max-batch-latency")
            .nick("Maximum batch latency")
            .blurb(
                "With frames-in-flight: the longest (ms) a frame waits for later frames before it is pushed \
                 anyway, for sparse or stalled streams; 0: until later frames come or the stream ends",
            )
            .default_value(0)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("roi-type")
            .nick("ROI type")
            .blurb("Classify only ROI metas of this type (empty: all)")
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("batch-size")
            .nick("Batch size")
            .blurb("Most crops per inference run")
            .minimum(1)
            .maximum(1024)
            .default_value(DEFAULT_BATCH_SIZE)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("tensorrt-cache")
            .nick("TensorRT engine cache")
            .blurb(
                "With execution-provider=tensorrt: the folder TensorRT keeps its built engines in, so a restart \
                 does not rebuild them (minutes); empty: no cache",
            )
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder("tensorrt-fp16")
            .nick("TensorRT FP16")
            .blurb("With execution-provider=tensorrt: build FP16 engines")
            .default_value(false)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("min-size")
            .nick("Minimum size")
            .blurb("ROIs narrower or shorter than this (pixels inside the frame) are skipped")
            .default_value(DEFAULT_MIN_SIZE)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("max-size")
            .nick("Maximum size")
            .blurb("ROIs wider or taller than this (pixels inside the frame) are skipped; 0: no limit")
            .default_value(0)
            .mutable_playing()
            .build(),
        glib::ParamSpecDouble::builder("novelty-threshold")
            .nick("Novelty threshold")
            .blurb("Distances above are not known; -1: the bundle's calibrated value")
            .minimum(-1.0)
            .maximum(f64::MAX)
            .default_value(THRESHOLD_FROM_BUNDLE)
            .mutable_playing()
            .build(),
        glib::ParamSpecDouble::builder("anomaly-threshold")
            .nick("Anomaly threshold")
            .blurb("Distances above are anomalies; -1: the bundle's calibrated value")
            .minimum(-1.0)
            .maximum(f64::MAX)
            .default_value(THRESHOLD_FROM_BUNDLE)
            .mutable_playing()
            .build(),
        glib::ParamSpecDouble::builder("reference-ratio")
            .nick("Reference ratio")
            .blurb(
                "A crop within the novelty threshold is known only when its nearest class is no further than this \
                 times the nearest of the bundle's category references (designs it has seen that are no class), else \
                 a novelty; -1: the bundle's score.reference_ratio; 0: off, the thresholds alone",
            )
            .minimum(-1.0)
            .maximum(f64::MAX)
            .default_value(THRESHOLD_FROM_BUNDLE)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("category-votes")
            .nick("Category votes")
            .blurb(
                "A novelty's category is the vote of this many nearest design centres (the classes and the bundle's \
                 category references), each weighted by the inverse of its distance, the nearest's category breaking \
                 a tie; 1: the nearest design's category; 0: the bundle's score.category_votes",
            )
            .maximum(odm_core::bundle::MAX_CATEGORY_VOTES)
            .default_value(CATEGORY_VOTES_FROM_BUNDLE)
            .mutable_playing()
            .build(),
        glib::ParamSpecBoolean::builder("emit-messages")
            .nick("Emit messages")
            .blurb("Post an element message `odm-results` on the bus for every frame with ROIs")
            .default_value(false)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("stats-interval")
            .nick("Drift statistics interval")
            .blurb(
                "Every this many frames, post an element message `odm-drift` with the verdict rates and a \
                 histogram of distances over those frames; 0: off",
            )
            .default_value(0)
            .mutable_playing()
            .build(),
        glib::ParamSpecBoolean::builder("attach-embedding")
            .nick("Attach embedding")
            .blurb(
                "Add each crop's embedding (the network's output, a float array) to its result as `embedding`: \
                 in the odm structures of the ROI param and OdmResultsMeta, hence in odmexport's and odmpublish's \
                 JSON; computed on this frame only (a reused or skipped result has none)",
            )
            .default_value(false)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("reclassify-interval")
            .nick("Reclassify interval")
            .blurb(
                "Classify a tracked ROI (same ROI id: a tracker's object id, e.g. odmtrack's) at most every this \
                 many frames, reusing its last result in between (marked reused=true) while its box overlaps its \
                 last one (memory-iou); 0 or 1: every frame",
            )
            .maximum(super::track::MAX_INTERVAL)
            .default_value(0)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("vote-window")
            .nick("Vote window")
            .blurb(
                "Report a tracked ROI's verdict and label as the majority of its last this many results \
                 (ties: the most recent), with this frame's own result beside it as raw-label, raw-verdict, \
                 raw-distance; an id whose box jumps (IoU below memory-iou) starts a new history; 0 or 1: off",
            )
            .maximum(super::track::MAX_WINDOW)
            .default_value(0)
            .mutable_playing()
            .build(),
        glib::ParamSpecDouble::builder("memory-iou")
            .nick("Memory IoU")
            .blurb(
                "reclassify-interval and vote-window use an ROI id's remembered results only while its box \
                 overlaps the id's last box by at least this intersection over union; below it the id is taken \
                 for another object and starts afresh (ids that are per-frame ranks or reused by a detector)",
            )
            .minimum(0.0)
            .maximum(1.0)
            .default_value(DEFAULT_MEMORY_IOU)
            .mutable_playing()
            .build(),
        glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
            .nick("Statistics")
            .blurb(
                "Since the last start: frames, rois, known/novelty/anomaly/skipped counts, inference runs, \
                 mean and p99 latency of inference runs and of whole frames (microseconds, p99 over the last \
                 1024), execution provider in use, results reused, reuses that found no result (reuse-failed: the \
                 classification they followed, still in flight, failed), shared runs, objects remembered by id \
                 (tracked-objects)",
            )
            .read_only()
            .build(),
    ];
    specs.extend(crate::engine::session_param_specs(DEFAULT_THREADS));
    specs
}

impl Settings {
    /// Set a property's value (of the type its spec declares; GObject checked it). `bundle` and the thresholds, whose
    /// setting does more, are set by the element.
    pub(super) fn set(&mut self, name: &str, value: &glib::Value) {
        let path =
            |v: &glib::Value| v.get::<Option<String>>().ok().flatten().filter(|s| !s.is_empty()).map(PathBuf::from);
        match name {
            "model" => self.model = path(value),
            "ort-library" => self.ort_library = path(value),
            "model-instance-id" => {
                self.model_instance_id = value.get::<Option<String>>().ok().flatten().unwrap_or_default()
            }
            "mode" => self.mode = value.get().expect("type checked upstream"),
            "roi-type" => {
                self.live.roi_type = Arc::from(value.get::<Option<String>>().ok().flatten().unwrap_or_default())
            }
            "batch-size" => self.batch_size = value.get().expect("type checked upstream"),
            "frames-in-flight" => self.frames_in_flight = value.get().expect("type checked upstream"),
            "max-batch-latency" => self.max_batch_latency = value.get().expect("type checked upstream"),
            "execution-provider" => self.provider = value.get().expect("type checked upstream"),
            "device-id" => self.device_id = value.get().expect("type checked upstream"),
            "fallback" => self.fallback = value.get().expect("type checked upstream"),
            "tensorrt-cache" => self.trt_cache = path(value),
            "tensorrt-fp16" => self.trt_fp16 = value.get().expect("type checked upstream"),
            "threads" => self.threads = value.get().expect("type checked upstream"),
            "min-size" => self.live.min_size = value.get().expect("type checked upstream"),
            "max-size" => self.live.max_size = value.get().expect("type checked upstream"),
            "emit-messages" => self.live.emit_messages = value.get().expect("type checked upstream"),
            "stats-interval" => self.live.stats_interval = value.get().expect("type checked upstream"),
            "attach-embedding" => self.live.attach_embedding = value.get().expect("type checked upstream"),
            "reclassify-interval" => self.live.reclassify_interval = value.get().expect("type checked upstream"),
            "vote-window" => self.live.vote_window = value.get().expect("type checked upstream"),
            "memory-iou" => self.live.memory_iou = value.get().expect("type checked upstream"),
            _ => unreachable!("unknown property {name}"),
        }
    }

    /// A property's value (`stats` is the element's).
    pub(super) fn get(&self, name: &str) -> glib::Value {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).to_value();
        match name {
            "model" => path(&self.model),
            "bundle" => path(&self.bundle),
            "ort-library" => path(&self.ort_library),
            "model-instance-id" => self.model_instance_id.to_value(),
            "mode" => self.mode.to_value(),
            "roi-type" => self.live.roi_type.to_value(),
            "batch-size" => self.batch_size.to_value(),
            "frames-in-flight" => self.frames_in_flight.to_value(),
            "max-batch-latency" => self.max_batch_latency.to_value(),
            "execution-provider" => self.provider.to_value(),
            "device-id" => self.device_id.to_value(),
            "fallback" => self.fallback.to_value(),
            "tensorrt-cache" => path(&self.trt_cache),
            "tensorrt-fp16" => self.trt_fp16.to_value(),
            "threads" => self.threads.to_value(),
            "min-size" => self.live.min_size.to_value(),
            "max-size" => self.live.max_size.to_value(),
            "novelty-threshold" => self.live.novelty_threshold.to_value(),
            "anomaly-threshold" => self.live.anomaly_threshold.to_value(),
            "reference-ratio" => self.live.reference_ratio.to_value(),
            "category-votes" => self.live.category_votes.to_value(),
            "emit-messages" => self.live.emit_messages.to_value(),
            "stats-interval" => self.live.stats_interval.to_value(),
            "attach-embedding" => self.live.attach_embedding.to_value(),
            "reclassify-interval" => self.live.reclassify_interval.to_value(),
            "vote-window" => self.live.vote_window.to_value(),
            "memory-iou" => self.live.memory_iou.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}
