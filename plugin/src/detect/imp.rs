// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmdetect` implementation: an in-place BaseTransform that runs a whole-frame ONNX detector and adds ROI metas.

use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::VideoRegionOfInterestMeta;

use odm_core::bundle::sha256_bytes;
use odm_core::preprocess::CropScratch;

use super::decode::{self, Detection, Layout};
use super::letterbox::{self, Placement, View};
use super::settings::{param_specs, Live, Settings};
use crate::engine::detector::{self, DetectInstance, Detector, Output};
use crate::engine::pool::InstanceKey;
use crate::engine::EngineOptions;
use crate::runtime;

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| gst::DebugCategory::new("odmdetect", gst::DebugColorFlags::empty(), Some("odm ONNX detector")));

/// The name of the param each detection's ROI meta carries.
pub const PARAM: &str = "odm-detection";

/// Streaming state: made in `start()`, dropped in `stop()`.
struct State {
    instance: Arc<DetectInstance>,
    layout: Layout,
    labels: Vec<String>,
    net: (usize, usize),
    info: Option<gst_video::VideoInfo>,
    /// Scratch reused from frame to frame.
    views: Vec<View>,
    placements: Vec<Placement>,
    input: Vec<f32>,
    outputs: Vec<Output>,
    found: Vec<(Detection, View)>,
    dets: Vec<Detection>,
    crop: CropScratch,
    used: Vec<i32>,
    ids: Vec<i32>,
    /// Inference failures were said on the bus (once per stream).
    failed_said: bool,
}

#[derive(Default)]
pub struct OdmDetect {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for OdmDetect {
    const NAME: &'static str = "GstOdmDetect";
    type Type = super::OdmDetect;
    type ParentType = gst_base::BaseTransform;
}

/// Class names from a labels file: one per line, blank lines skipped. Errors name the file.
fn read_labels(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read(path).map_err(|e| format!("labels file {}: {e}", path.display()))?;
    let text = String::from_utf8(text).map_err(|e| format!("labels file {}: not UTF-8 text: {e}", path.display()))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect())
}

impl State {
    fn load(s: &Settings, obj: &super::OdmDetect, posts: &mut Vec<gst::Message>) -> Result<State, gst::ErrorMessage> {
        let (model, bytes) = crate::engine::session::read_model(s.model.as_deref())?;
        let (env, lib) = runtime::environment(s.ort_library.as_deref())
            .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ("{e}")))?;
        gst::info!(CAT, obj = obj, "ONNX Runtime from {}", lib.display());
        let opts = EngineOptions {
            intra_threads: s.threads as usize,
            provider: s.provider.into(),
            device_id: s.device_id,
            fallback: s.fallback,
            trt_cache: None,
            trt_fp16: false,
        };
        let key = InstanceKey::new(sha256_bytes(&bytes), &opts);
        let side = s.input_size as usize;
        let (instance, fell_back) =
            detector::instance(&s.model_instance_id, key, || Detector::new(&env, &model, &bytes, &opts, (side, side)))
                .map_err(|e| e.to_error_message())?;
        if let Some(why) = fell_back {
            gst::warning!(CAT, obj = obj, "{why}");
            posts.push(gst::message::Warning::builder(gst::LibraryError::Init, &why).src(obj).build());
        }
        // One run on a grey image gives the outputs' shapes: the layout is checked before the first frame.
        let (net, layout, names, outputs) = {
            let mut d = instance.lock();
            let net = d.input_hw();
            let mut outputs = Vec::new();
            d.run(&vec![letterbox::PAD; 3 * net.0 * net.1], 1, &mut outputs).map_err(|e| {
                gst::error_msg!(gst::ResourceError::Settings, ("detector {} cannot run: {e}", model.display()))
            })?;
            let shapes: Vec<&[i64]> = outputs.iter().map(|o| o.shape.as_slice()).collect();
            let layout = decode::layout(s.decoder, &shapes).map_err(|e| {
                gst::error_msg!(gst::ResourceError::Settings, ("detector {} refused: {e}", model.display()))
            })?;
            (net, layout, d.names().map(<[String]>::to_vec), outputs)
        };
        let classes = layout.classes();
        let labels = match &s.labels {
            Some(path) => {
                let l = read_labels(path).map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("{e}")))?;
                if l.len() != classes {
                    return Err(gst::error_msg!(
                        gst::ResourceError::Settings,
                        (
                            "labels file {} has {} names; the detector {} has {classes} classes",
                            path.display(),
                            l.len(),
                            model.display()
                        )
                    ));
                }
                l
            }
            None => match names {
                Some(n) if n.len() == classes => n,
                Some(n) => {
                    let why = format!(
                        "detector {}: its `names` metadata has {} names for {classes} classes: labels are class-N \
                         (set `labels`)",
                        model.display(),
                        n.len()
                    );
                    posts.push(gst::message::Warning::builder(gst::ResourceError::Settings, &why).src(obj).build());
                    (0..classes).map(|i| format!("class-{i}")).collect()
                }
                None => (0..classes).map(|i| format!("class-{i}")).collect(),
            },
        };
        gst::info!(
            CAT,
            obj = obj,
            "detector {} ({} layout, {classes} classes, input {}x{}) on {}",
            model.display(),
            layout.name(),
            net.1,
            net.0,
            instance.lock().provider()
        );
        Ok(State {
            instance,
            layout,
            labels,
            net,
            info: None,
            views: Vec::new(),
            placements: Vec::new(),
            input: Vec::new(),
            outputs,
            found: Vec::new(),
            dets: Vec::new(),
            crop: CropScratch::default(),
            used: Vec::new(),
            ids: Vec::new(),
            failed_said: false,
        })
    }

    /// Detect on one frame: letterbox the views into one batch, run, decode, map to the frame, suppress. The result
    /// is in `self.found`. `Err` is a sentence for the bus: the buffer passes without detections.
    fn detect(&mut self, frame: &odm_core::preprocess::Frame<'_>, live: &Live) -> Result<(), String> {
        self.found.clear();
        letterbox::views(frame.width(), frame.height(), live.tiles, live.tile_overlap, &mut self.views);
        let sample = 3 * self.net.0 * self.net.1;
        self.input.resize(self.views.len() * sample, 0.0);
        self.placements.clear();
        for (i, view) in self.views.iter().enumerate() {
            let slot = &mut self.input[i * sample..(i + 1) * sample];
            let p = letterbox::letterbox(frame, *view, self.net, slot, &mut self.crop)
                .map_err(|e| format!("cannot letterbox {view:?}: {e}"))?;
            self.placements.push(p);
        }
        self.instance.lock().run(&self.input, self.views.len(), &mut self.outputs).map_err(|e| e.to_string())?;
        let threshold = live.score_threshold as f32;
        let mut all: Vec<Detection> = Vec::new();
        for (b, p) in self.placements.iter().enumerate() {
            self.dets.clear();
            decode::decode(&self.layout, &self.outputs, b, threshold, &mut self.dets);
            // In frame pixels, as a Detection again so that suppression runs across views.
            for d in &self.dets {
                if let Some((x, y, w, h)) = letterbox::to_frame(d, p) {
                    let (x, y, w, h) = (x as f32, y as f32, w as f32, h as f32);
                    all.push(Detection { x1: x, y1: y, x2: x + w, y2: y + h, ..*d });
                }
            }
        }
        decode::nms(&mut all, live.iou_threshold as f32, live.max_detections as usize);
        self.found.extend(all.iter().map(|d| {
            let r = (d.x1 as u32, d.y1 as u32, (d.x2 - d.x1) as u32, (d.y2 - d.y1) as u32);
            (*d, r)
        }));
        Ok(())
    }
}

impl OdmDetect {
    fn lock_settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn post_all(&self, posts: Vec<gst::Message>) {
        for m in posts {
            let _ = self.obj().post_message(m);
        }
    }
}

impl ObjectImpl for OdmDetect {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(param_specs);
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if crate::props::settable(&*self.obj(), pspec) {
            self.lock_settings().set(pspec.name(), value);
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        self.lock_settings().get(pspec.name())
    }
}

impl GstObjectImpl for OdmDetect {}

impl ElementImpl for OdmDetect {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "odm ONNX detector",
                "Filter/Analyzer/Video",
                "Runs a whole-frame ONNX detector (YOLOv8/YOLO11, YOLOv5/YOLOX or boxes-and-scores outputs) with \
                 letterboxing, optional tiling and class-aware NMS; adds a ROI meta per detection",
                "odm developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = crate::video::formats_caps();
            crate::video::filter_templates(&caps)
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for OdmDetect {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.lock_settings().clone();
        let mut posts = Vec::new();
        let state = State::load(&settings, &self.obj(), &mut posts);
        self.post_all(posts);
        *self.lock_state() = Some(state?);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.lock_state() = None;
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = crate::video::info_from_caps(*CAT, incaps)?;
        match self.lock_state().as_mut() {
            Some(state) => {
                state.info = Some(info);
                Ok(())
            }
            None => Err(gst::loggable_error!(CAT, "caps before start")),
        }
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let live = self.lock_settings().live.clone();
        let mut guard = self.lock_state();
        let Some(state) = guard.as_mut() else {
            drop(guard);
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("a buffer came before the element started"));
            return Err(gst::FlowError::NotNegotiated);
        };
        let Some(info) = state.info.clone() else {
            drop(guard);
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("a buffer came before caps"));
            return Err(gst::FlowError::NotNegotiated);
        };
        let outcome = match gst_video::VideoFrameRef::from_buffer_ref_readable(buf, &info) {
            Err(_) => Err((
                true,
                format!(
                    "cannot map a buffer of {} bytes as a {}x{} {} frame",
                    buf.size(),
                    info.width(),
                    info.height(),
                    info.format().to_str()
                ),
            )),
            Ok(frame_ref) => match crate::video::core_frame(&frame_ref) {
                Err(text) => Err((true, text)),
                Ok(frame) => state.detect(&frame, &live).map_err(|e| (false, e)),
            },
        };
        match outcome {
            // A frame that cannot be read: an error, as every odm element does.
            Err((true, text)) => {
                drop(guard);
                gst::element_imp_error!(self, gst::StreamError::Format, ("{text}"));
                return Err(gst::FlowError::Error);
            }
            // The network failed on this frame: the buffer passes without detections, said once per stream.
            Err((false, text)) => {
                let first = !std::mem::replace(&mut state.failed_said, true);
                drop(guard);
                gst::warning!(CAT, imp = self, "inference failed: {text}");
                if first {
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Failed,
                        ("inference failed: {text}; frames pass without detections (said once)")
                    );
                }
                return Ok(gst::FlowSuccess::Ok);
            }
            Ok(()) => {}
        }
        let State { found, labels, used, ids, .. } = state;
        // Fresh ids no ROI meta of the buffer has; odmtrack makes them stable across frames.
        crate::meta::new_roi_ids(buf, found.len(), used, ids);
        for (&id, (d, rect)) in ids.iter().zip(found.iter()) {
            let label = labels.get(d.class).map_or("", String::as_str);
            let roi_type = if live.roi_type.is_empty() { label } else { live.roi_type.as_str() };
            let mut m = VideoRegionOfInterestMeta::add(buf, roi_type, *rect);
            m.set_id(id);
            m.add_param(
                gst::Structure::builder(PARAM)
                    .field("score", d.score as f64)
                    .field("class-id", d.class as i32)
                    .field("label", label)
                    .build(),
            );
        }
        gst::log!(CAT, imp = self, "{} detections", found.len());
        Ok(gst::FlowSuccess::Ok)
    }
}
