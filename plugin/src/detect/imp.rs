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

use gst_base::prelude::*;
use gst_base::subclass::base_transform::GenerateOutputSuccess;

use super::decode::{self, Detection, Layout};
use super::inflight::{DetectJob, InFlight, Waiting};
use super::letterbox::{self, Placement, View};
use super::settings::{param_specs, Live, Settings};
use crate::engine::batch;
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
    /// The model file, for the messages.
    model: std::path::PathBuf,
    layout: Layout,
    labels: Vec<String>,
    net: (usize, usize),
    info: Option<gst_video::VideoInfo>,
    /// Scratch reused from frame to frame.
    views: Vec<View>,
    placements: Vec<Placement>,
    /// The synchronous path's job (run on the streaming thread).
    job: DetectJob,
    found: Vec<(Detection, View)>,
    dets: Vec<Detection>,
    /// Every view's detections in frame pixels, before suppression (kept to reuse its room).
    merged: Vec<Detection>,
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
    /// With `frames-in-flight`: the frames waiting for the batching service.
    in_flight: InFlight,
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
        let (net, layout, names) = {
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
            (net, layout, d.names().map(<[String]>::to_vec))
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
            model,
            layout,
            labels,
            net,
            info: None,
            views: Vec::new(),
            placements: Vec::new(),
            job: DetectJob::default(),
            found: Vec::new(),
            dets: Vec::new(),
            merged: Vec::new(),
            crop: CropScratch::default(),
            used: Vec::new(),
            ids: Vec::new(),
            failed_said: false,
        })
    }

    /// A frame's first half: its views (the whole frame, and tiles) letterboxed as the rows of `job`; where each
    /// landed in `placements`. `Err` is a sentence for the bus: the buffer passes without detections.
    fn prepare(
        &mut self,
        frame: &odm_core::preprocess::Frame<'_>,
        live: &Live,
        job: &mut DetectJob,
        placements: &mut Vec<Placement>,
    ) -> Result<(), String> {
        letterbox::views(frame.width(), frame.height(), live.tiles, live.tile_overlap, &mut self.views);
        let sample = 3 * self.net.0 * self.net.1;
        job.clear();
        placements.clear();
        for view in &self.views {
            let p = letterbox::letterbox(frame, *view, self.net, job.next_row(sample), &mut self.crop)
                .map_err(|e| format!("cannot letterbox {view:?}: {e}"))?;
            job.push_row();
            placements.push(p);
        }
        Ok(())
    }

    /// A frame's second half: the network's outputs decoded per view, mapped to the frame, suppressed; the result
    /// is in `self.found`. `Err` is a sentence for the bus (scores that are not probabilities): nothing found.
    fn finish(&mut self, outputs: &[Output], placements: &[Placement], live: &Live) -> Result<(), String> {
        self.found.clear();
        let threshold = live.score_threshold as f32;
        self.merged.clear();
        for (b, p) in placements.iter().enumerate() {
            self.dets.clear();
            decode::decode(&self.layout, outputs, b, threshold, &mut self.dets)
                .map_err(|e| format!("detector {}: {e}", self.model.display()))?;
            // In frame pixels, as a Detection again so that suppression runs across views.
            for d in &self.dets {
                if let Some((x, y, w, h)) = letterbox::to_frame(d, p) {
                    let (x, y, w, h) = (x as f32, y as f32, w as f32, h as f32);
                    self.merged.push(Detection { x1: x, y1: y, x2: x + w, y2: y + h, ..*d });
                }
            }
        }
        decode::nms(&mut self.merged, live.iou_threshold as f32, live.max_detections as usize);
        self.found.extend(self.merged.iter().map(|d| {
            let r = (d.x1 as u32, d.y1 as u32, (d.x2 - d.x1) as u32, (d.y2 - d.y1) as u32);
            (*d, r)
        }));
        Ok(())
    }

    /// Detect on one frame on this thread: letterbox the views into one batch, run, decode. The result is in
    /// `self.found`. `Err` is a sentence for the bus: the buffer passes without detections.
    fn detect(&mut self, frame: &odm_core::preprocess::Frame<'_>, live: &Live) -> Result<(), String> {
        self.found.clear();
        let (mut job, mut placements) = (std::mem::take(&mut self.job), std::mem::take(&mut self.placements));
        let r = self.prepare(frame, live, &mut job, &mut placements).and_then(|()| {
            let rows = job.rows.max(1);
            batch::run(&*self.instance, &mut job, rows);
            match job.error.take() {
                Some(e) => Err(e.to_string()),
                None => self.finish(&job.output, &placements, live),
            }
        });
        (self.job, self.placements) = (job, placements);
        r
    }

    /// The detections in `self.found` as ROI metas on `buf`, with fresh ids (odmtrack makes them stable).
    fn attach(&mut self, buf: &mut gst::BufferRef, live: &Live) {
        let State { found, labels, used, ids, .. } = self;
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
    }

    /// An inference failure: the buffer passes without detections; said on the bus once per stream. Whether to
    /// post the warning now.
    fn failed(&mut self) -> bool {
        !std::mem::replace(&mut self.failed_said, true)
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

    /// The state's lock, once a buffer may be streamed: after start and caps; else an error on the bus, posted
    /// after the lock is let go.
    fn lock_streaming(&self) -> Result<std::sync::MutexGuard<'_, Option<State>>, gst::FlowError> {
        let guard = self.lock_state();
        let text = match guard.as_ref() {
            None => "a buffer came before the element started",
            Some(s) if s.info.is_none() => "a buffer came before caps",
            Some(_) => return Ok(guard),
        };
        drop(guard);
        Err(self.not_negotiated(text))
    }

    fn not_negotiated(&self, text: &str) -> gst::FlowError {
        gst::element_imp_error!(self, gst::CoreError::Negotiation, ("{text}"));
        gst::FlowError::NotNegotiated
    }

    /// `buf` mapped as a frame of the caps for `f`. `Err((true, text))`: the buffer cannot be read as the caps say;
    /// `f`'s own errors pass through.
    fn map_frame(
        &self,
        state: &mut State,
        buf: &gst::BufferRef,
        f: impl FnOnce(&mut State, &odm_core::preprocess::Frame<'_>) -> Result<(), (bool, String)>,
    ) -> Result<(), (bool, String)> {
        let Some(info) = state.info.clone() else {
            return Err((true, "a buffer came before caps".into()));
        };
        let frame_ref = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, &info).map_err(|_| {
            let text = format!(
                "cannot map a buffer of {} bytes as a {}x{} {} frame",
                buf.size(),
                info.width(),
                info.height(),
                info.format().to_str()
            );
            (true, text)
        })?;
        let frame = crate::video::core_frame(&frame_ref).map_err(|text| (true, text))?;
        f(state, &frame)
    }

    fn warn_failed(&self, text: &str, first: bool) {
        gst::warning!(CAT, imp = self, "inference failed: {text}");
        if first {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Failed,
                ("inference failed: {text}; frames pass without detections (said once)")
            );
        }
    }

    /// A frame in flight whose outputs came back: decoded, its metas added; the buffer to push.
    fn complete(&self, waiting: Waiting, mut job: DetectJob) -> Result<gst::Buffer, gst::FlowError> {
        let live = self.lock_settings().live.clone();
        let Waiting { mut buffer, placements } = waiting;
        let mut guard = self.lock_state();
        let Some(state) = guard.as_mut() else {
            drop(guard);
            self.in_flight.give_back(job, placements);
            return Err(gst::FlowError::Flushing);
        };
        match job.error.take() {
            Some(e) => {
                let first = state.failed();
                drop(guard);
                self.warn_failed(&e.to_string(), first);
            }
            // A frame that could not be letterboxed came with no rows: it passes without detections.
            None if job.rows == 0 => drop(guard),
            None => match state.finish(&job.output, &placements, &live) {
                Ok(()) => {
                    state.attach(buffer.make_mut(), &live);
                    gst::log!(CAT, imp = self, "{} detections", state.found.len());
                    drop(guard);
                }
                // Scores that are not probabilities: the frame passes without detections, said once.
                Err(text) => {
                    let first = state.failed();
                    drop(guard);
                    self.warn_failed(&text, first);
                }
            },
        }
        self.in_flight.give_back(job, placements);
        Ok(buffer)
    }

    /// Every frame in flight downstream, in order (before a serialized event, or for a DRAIN query). A downstream
    /// error is posted, as the streaming thread's own push would end in one.
    fn drain(&self) {
        while let Some((waiting, job)) = self.in_flight.next(true) {
            let Ok(buf) = self.complete(waiting, job) else { break };
            match self.obj().src_pad().push(buf) {
                Ok(_) | Err(gst::FlowError::Flushing) | Err(gst::FlowError::Eos) => {}
                Err(e) => {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Failed,
                        ("downstream refused a frame that was in flight: {e:?}")
                    );
                    break;
                }
            }
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
        self.in_flight.stop();
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
        let mut guard = self.lock_streaming()?;
        let Some(state) = guard.as_mut() else { return Err(gst::FlowError::NotNegotiated) };
        let outcome = self.map_frame(state, buf, |state, frame| state.detect(frame, &live).map_err(|e| (false, e)));
        match outcome {
            // A frame that cannot be read: an error, as every odm element does.
            Err((true, text)) => {
                drop(guard);
                gst::element_imp_error!(self, gst::StreamError::Format, ("{text}"));
                return Err(gst::FlowError::Error);
            }
            // The network failed on this frame: the buffer passes without detections, said once per stream.
            Err((false, text)) => {
                let first = state.failed();
                drop(guard);
                self.warn_failed(&text, first);
                return Ok(gst::FlowSuccess::Ok);
            }
            Ok(()) => {}
        }
        state.attach(buf, &live);
        gst::log!(CAT, imp = self, "{} detections", state.found.len());
        Ok(gst::FlowSuccess::Ok)
    }

    fn submit_input_buffer(&self, is_discont: bool, inbuf: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (in_flight, batch_size, live) = {
            let s = self.lock_settings();
            (s.frames_in_flight, s.batch_size.max(1) as usize, s.live.clone())
        };
        if in_flight == 0 {
            return self.parent_submit_input_buffer(is_discont, inbuf);
        }
        // BaseTransform's own handling first (renegotiation, QoS): it queues the buffer, or drops it when late.
        self.parent_submit_input_buffer(is_discont, inbuf)?;
        let Some(inbuf) = self.take_queued_buffer() else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let (mut job, mut placements) = self.in_flight.job();
        let mut guard = self.lock_streaming()?;
        let Some(state) = guard.as_mut() else { return Err(gst::FlowError::NotNegotiated) };
        let outcome = self.map_frame(state, &inbuf, |state, frame| {
            state.prepare(frame, &live, &mut job, &mut placements).map_err(|e| (false, e))
        });
        // A frame that cannot be letterboxed goes through the queue with no rows (its order kept) and passes without
        // detections.
        let first_failure = matches!(outcome, Err((false, _))).then(|| state.failed());
        let instance = state.instance.clone();
        drop(guard);
        match outcome {
            Err((true, text)) => {
                gst::element_imp_error!(self, gst::StreamError::Format, ("{text}"));
                return Err(gst::FlowError::Error);
            }
            Err((false, text)) => {
                self.warn_failed(&text, first_failure.unwrap_or(false));
                job.clear();
                placements.clear();
            }
            Ok(()) => {}
        }
        let batch = batch_size.max(job.rows).max(1);
        if let Err(text) = self.in_flight.send(&instance, batch, job, Waiting { buffer: inbuf, placements }) {
            gst::element_imp_error!(self, gst::LibraryError::Failed, ("{text}"));
            return Err(gst::FlowError::Error);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        let in_flight = self.lock_settings().frames_in_flight as usize;
        if in_flight == 0 {
            return self.parent_generate_output();
        }
        match self.in_flight.next(self.in_flight.len() > in_flight) {
            Some((waiting, job)) => self.complete(waiting, job).map(GenerateOutputSuccess::Buffer),
            None => Ok(GenerateOutputSuccess::NoOutput),
        }
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if self.in_flight.len() > 0 {
            match event.view() {
                gst::EventView::FlushStop(_) => self.in_flight.flush(),
                gst::EventView::FlushStart(_) => {}
                // Caps, segment, EOS, ...: after the frames that came before them.
                _ if event.is_serialized() => self.drain(),
                _ => {}
            }
        }
        self.parent_sink_event(event)
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        // DRAIN (an upstream pool or decoder wants its buffers back): the frames in flight go downstream first.
        if let (gst::PadDirection::Sink, gst::QueryViewMut::Drain(_)) = (direction, query.view_mut()) {
            self.drain();
        }
        let ok = BaseTransformImplExt::parent_query(self, direction, query);
        let in_flight = self.lock_settings().frames_in_flight as u64;
        if let (true, gst::PadDirection::Src, gst::QueryViewMut::Latency(q)) = (ok, direction, query.view_mut()) {
            if in_flight > 0 {
                let fps = self.lock_state().as_ref().and_then(|s| s.info.as_ref().map(|i| i.fps()));
                crate::video::add_frames_latency(fps, in_flight, q);
            }
        }
        ok
    }
}
