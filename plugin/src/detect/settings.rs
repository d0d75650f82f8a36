// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmdetect's properties: what is read at start (model, session), and what each frame reads (thresholds, tiles).

use std::path::PathBuf;

use gst::glib;
use gst::prelude::*;

use super::decode::Decoder;
use crate::engine::ExecutionProvider;

pub(super) const DEFAULT_SCORE: f64 = 0.25;
pub(super) const DEFAULT_IOU: f64 = 0.45;
pub(super) const DEFAULT_MAX_DETECTIONS: u32 = 300;
pub(super) const DEFAULT_INPUT_SIZE: u32 = 640;
pub(super) const DEFAULT_OVERLAP: f64 = 0.2;

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) model: Option<PathBuf>,
    pub(super) labels: Option<PathBuf>,
    pub(super) ort_library: Option<PathBuf>,
    pub(super) model_instance_id: String,
    pub(super) decoder: Decoder,
    pub(super) input_size: u32,
    pub(super) provider: ExecutionProvider,
    pub(super) device_id: i32,
    pub(super) fallback: bool,
    pub(super) threads: u32,
    pub(super) frames_in_flight: u32,
    pub(super) batch_size: u32,
    pub(super) live: Live,
}

/// Read on every frame; all may change while PLAYING.
#[derive(Debug, Clone)]
pub(super) struct Live {
    pub(super) score_threshold: f64,
    pub(super) iou_threshold: f64,
    pub(super) max_detections: u32,
    pub(super) roi_type: String,
    pub(super) tiles: u32,
    pub(super) tile_overlap: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: None,
            labels: None,
            ort_library: None,
            model_instance_id: String::new(),
            decoder: Decoder::Auto,
            input_size: DEFAULT_INPUT_SIZE,
            provider: ExecutionProvider::Cpu,
            device_id: 0,
            fallback: true,
            threads: 1,
            frames_in_flight: 0,
            batch_size: 1,
            live: Live {
                score_threshold: DEFAULT_SCORE,
                iou_threshold: DEFAULT_IOU,
                max_detections: DEFAULT_MAX_DETECTIONS,
                roi_type: String::new(),
                tiles: 0,
                tile_overlap: DEFAULT_OVERLAP,
            },
        }
    }
}

pub(super) fn param_specs() -> Vec<glib::ParamSpec> {
    let mut specs = vec![
        glib::ParamSpecString::builder("model")
            .nick("Model")
            .blurb("ONNX detector: one float32 [N,3,H,W] input (RGB in [0, 1]); outputs in a layout of `decoder`")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("labels")
            .nick("Labels")
            .blurb(
                "Text file with one class name per line, in class order; empty: the model's `names` metadata \
                 (as Ultralytics exports it), else class-N",
            )
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default("decoder", Decoder::Auto)
            .nick("Decoder")
            .blurb("Layout of the detector's outputs; auto reads it from their shapes at start")
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("input-size")
            .nick("Input size")
            .blurb("Square input side for a network whose input height and width are dynamic (fixed ones are used as they are)")
            .minimum(32)
            .maximum(4096)
            .default_value(DEFAULT_INPUT_SIZE)
            .mutable_ready()
            .build(),
        glib::ParamSpecDouble::builder("score-threshold")
            .nick("Score threshold")
            .blurb("Detections scoring below this are dropped")
            .minimum(0.0)
            .maximum(1.0)
            .default_value(DEFAULT_SCORE)
            .mutable_playing()
            .build(),
        glib::ParamSpecDouble::builder("iou-threshold")
            .nick("IoU threshold")
            .blurb("Class-aware non-maximum suppression: a box overlapping a better one of its class by more is dropped")
            .minimum(0.0)
            .maximum(1.0)
            .default_value(DEFAULT_IOU)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("max-detections")
            .nick("Maximum detections")
            .blurb("Most detections per frame (the best kept)")
            .minimum(1)
            .maximum(10_000)
            .default_value(DEFAULT_MAX_DETECTIONS)
            .mutable_playing()
            .build(),
        glib::ParamSpecString::builder("roi-type")
            .nick("ROI type")
            .blurb("Type of the ROI metas added; empty: each detection's class label")
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("tiles")
            .nick("Tiles")
            .blurb(
                "0 or 1: the whole frame only; N >= 2: also N tiles along the frame's longer side (as many across as \
                 keep them near square), run in one batch with the whole frame, for small objects",
            )
            .maximum(16)
            .default_value(0)
            .mutable_playing()
            .build(),
        glib::ParamSpecDouble::builder("tile-overlap")
            .nick("Tile overlap")
            .blurb("Overlap of neighbouring tiles, as a fraction of a tile")
            .minimum(0.0)
            .maximum(0.9)
            .default_value(DEFAULT_OVERLAP)
            .mutable_playing()
            .build(),
        glib::ParamSpecString::builder("model-instance-id")
            .nick("Model instance id")
            .blurb(
                "odmdetect elements with the same id share one ONNX Runtime session (same model bytes, provider, \
                 device and threads, or the start fails); empty: this element's own",
            )
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("frames-in-flight")
            .nick("Frames in flight")
            .blurb(
                "Run the detector on a worker thread while the streaming thread letterboxes the next frames: up to \
                 this many frames wait for their detections (added to the latency query), in order; 0: everything \
                 on the streaming thread",
            )
            .maximum(16)
            .default_value(0)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("batch-size")
            .nick("Batch size")
            .blurb(
                "With frames-in-flight: the most images (frames and their tiles) one inference run holds, at least \
                 the first frame's views; frames waiting together (of this element or of others sharing the \
                 model-instance-id) join a run while they fit; elements sharing an instance use the batch size of \
                 the first of them to start",
            )
            .minimum(1)
            .maximum(64)
            .default_value(1)
            .mutable_ready()
            .build(),
    ];
    specs.extend(crate::engine::session_param_specs(1));
    specs
}

impl Settings {
    pub(super) fn set(&mut self, name: &str, value: &glib::Value) {
        let path =
            |v: &glib::Value| v.get::<Option<String>>().ok().flatten().filter(|s| !s.is_empty()).map(PathBuf::from);
        let text = |v: &glib::Value| v.get::<Option<String>>().ok().flatten().unwrap_or_default();
        match name {
            "model" => self.model = path(value),
            "labels" => self.labels = path(value),
            "ort-library" => self.ort_library = path(value),
            "model-instance-id" => self.model_instance_id = text(value),
            "decoder" => self.decoder = value.get().expect("type checked upstream"),
            "input-size" => self.input_size = value.get().expect("type checked upstream"),
            "execution-provider" => self.provider = value.get().expect("type checked upstream"),
            "device-id" => self.device_id = value.get().expect("type checked upstream"),
            "fallback" => self.fallback = value.get().expect("type checked upstream"),
            "threads" => self.threads = value.get().expect("type checked upstream"),
            "frames-in-flight" => self.frames_in_flight = value.get().expect("type checked upstream"),
            "batch-size" => self.batch_size = value.get().expect("type checked upstream"),
            "score-threshold" => self.live.score_threshold = value.get().expect("type checked upstream"),
            "iou-threshold" => self.live.iou_threshold = value.get().expect("type checked upstream"),
            "max-detections" => self.live.max_detections = value.get().expect("type checked upstream"),
            "roi-type" => self.live.roi_type = text(value),
            "tiles" => self.live.tiles = value.get().expect("type checked upstream"),
            "tile-overlap" => self.live.tile_overlap = value.get().expect("type checked upstream"),
            other => unreachable!("unknown property {other}"),
        }
    }

    pub(super) fn get(&self, name: &str) -> glib::Value {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).to_value();
        match name {
            "model" => path(&self.model),
            "labels" => path(&self.labels),
            "ort-library" => path(&self.ort_library),
            "model-instance-id" => self.model_instance_id.to_value(),
            "decoder" => self.decoder.to_value(),
            "input-size" => self.input_size.to_value(),
            "execution-provider" => self.provider.to_value(),
            "device-id" => self.device_id.to_value(),
            "fallback" => self.fallback.to_value(),
            "threads" => self.threads.to_value(),
            "frames-in-flight" => self.frames_in_flight.to_value(),
            "batch-size" => self.batch_size.to_value(),
            "score-threshold" => self.live.score_threshold.to_value(),
            "iou-threshold" => self.live.iou_threshold.to_value(),
            "max-detections" => self.live.max_detections.to_value(),
            "roi-type" => self.live.roi_type.to_value(),
            "tiles" => self.live.tiles.to_value(),
            "tile-overlap" => self.live.tile_overlap.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}
