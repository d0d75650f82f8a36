// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmclassify` implementation: an in-place BaseTransform that only adds metadata.

use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::{VideoFormat, VideoRegionOfInterestMeta};

use odm_core::bundle::{sibling_bundle_path, Bundle};
use odm_core::preprocess::{check_roi, crop_to_tensor, CropSpec, Frame, PixelFormat, Plane, Roi, YuvMatrix};
use odm_core::Scorer;

use super::Mode;
use crate::engine::{Engine, EngineOptions};
use crate::meta::{self, Outcome, RoiResult};
use crate::runtime;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("odmclassify", gst::DebugColorFlags::empty(), Some("odm open-set sign classifier"))
});

const DEFAULT_MODE: Mode = Mode::Roi;
const DEFAULT_BATCH_SIZE: u32 = 16;
const DEFAULT_THREADS: u32 = 1;
const DEFAULT_MIN_SIZE: u32 = 4;
/// Threshold properties at this value use the bundle's calibrated thresholds.
const THRESHOLD_FROM_BUNDLE: f64 = -1.0;

const FORMATS: &[VideoFormat] = &[
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::Nv12,
    VideoFormat::I420,
];

#[derive(Debug, Clone)]
struct Settings {
    model: Option<PathBuf>,
    bundle: Option<PathBuf>,
    ort_library: Option<PathBuf>,
    mode: Mode,
    roi_type: String,
    batch_size: u32,
    threads: u32,
    min_size: u32,
    novelty_threshold: f64,
    anomaly_threshold: f64,
    emit_messages: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: None,
            bundle: None,
            ort_library: None,
            mode: DEFAULT_MODE,
            roi_type: String::new(),
            batch_size: DEFAULT_BATCH_SIZE,
            threads: DEFAULT_THREADS,
            min_size: DEFAULT_MIN_SIZE,
            novelty_threshold: THRESHOLD_FROM_BUNDLE,
            anomaly_threshold: THRESHOLD_FROM_BUNDLE,
            emit_messages: false,
        }
    }
}

/// Streaming state: made in `start()`, dropped in `stop()`.
struct State {
    engine: Engine,
    scorer: Scorer,
    crop: CropSpec,
    model_name: String,
    info: Option<gst_video::VideoInfo>,
    /// Reused across frames: `[batch, 3, H, W]` inputs and `[batch, D]` embeddings.
    input: Vec<f32>,
    embeddings: Vec<f32>,
}

#[derive(Default)]
pub struct OdmClassify {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for OdmClassify {
    const NAME: &'static str = "GstOdmClassify";
    type Type = super::OdmClassify;
    type ParentType = gst_base::BaseTransform;
}

fn threshold(v: f64) -> Option<f64> {
    (v >= 0.0).then_some(v)
}

fn pixel_format(f: VideoFormat) -> Option<PixelFormat> {
    Some(match f {
        VideoFormat::Rgb => PixelFormat::Rgb,
        VideoFormat::Bgr => PixelFormat::Bgr,
        VideoFormat::Rgba => PixelFormat::Rgba,
        VideoFormat::Bgra => PixelFormat::Bgra,
        VideoFormat::Rgbx => PixelFormat::Rgbx,
        VideoFormat::Bgrx => PixelFormat::Bgrx,
        VideoFormat::Nv12 => PixelFormat::Nv12,
        VideoFormat::I420 => PixelFormat::I420,
        _ => return None,
    })
}

/// One ROI to classify this frame.
struct Job {
    id: i32,
    rect: (u32, u32, u32, u32),
    /// Row in the batch, or why it is skipped.
    slot: Result<usize, String>,
}

impl OdmClassify {
    fn lock_settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Load bundle, library and session, checking each against the others.
    fn load(&self, settings: &Settings) -> Result<State, gst::ErrorMessage> {
        let Some(model) = settings.model.clone() else {
            return Err(gst::error_msg!(gst::ResourceError::NotFound, ("no model set: set the `model` property")));
        };
        if !model.is_file() {
            return Err(gst::error_msg!(gst::ResourceError::NotFound, ("model file {} not found", model.display())));
        }
        let bundle_path = settings.bundle.clone().unwrap_or_else(|| sibling_bundle_path(&model));
        let bundle = Bundle::load(&bundle_path).map_err(|e| {
            let kind = match e {
                odm_core::BundleError::Io { .. } => gst::ResourceError::NotFound,
                _ => gst::ResourceError::Settings,
            };
            gst::error_msg!(kind, ("bundle refused: {e}"))
        })?;
        bundle
            .verify_model(&bundle_path, &model)
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("bundle refused: {e}")))?;

        let (env, lib) = runtime::environment(settings.ort_library.as_deref())
            .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ("{e}")))?;
        gst::info!(CAT, imp = self, "ONNX Runtime from {}", lib.display());

        let engine = Engine::new(&env, &model, &bundle, EngineOptions { intra_threads: settings.threads as usize })
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ("{e}")))?;
        let mut scorer = Scorer::new(&bundle);
        scorer
            .set_overrides(threshold(settings.novelty_threshold), threshold(settings.anomaly_threshold))
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("{e}")))?;
        gst::info!(
            CAT,
            imp = self,
            "model {} ({} classes, dim {}) from {}",
            bundle.name,
            bundle.classes.len(),
            bundle.dim(),
            bundle_path.display()
        );
        let batch = settings.batch_size as usize;
        Ok(State {
            input: vec![0.0; batch * engine.sample_len()],
            embeddings: Vec::with_capacity(batch * engine.dim()),
            crop: CropSpec::from_input(&bundle.model.input),
            model_name: bundle.name.clone(),
            engine,
            scorer,
            info: None,
        })
    }

    /// Give ROI metas distinct ids where they collide (ROI metas are created with id 0 unless the producer sets
    /// one), so results can be joined back by id after copies.
    fn ensure_unique_ids(buffer: &mut gst::BufferRef) {
        let ids: Vec<i32> = buffer.iter_meta::<VideoRegionOfInterestMeta>().map(|m| m.id()).collect();
        let mut seen = std::collections::HashSet::new();
        if ids.iter().all(|id| seen.insert(*id)) {
            return;
        }
        let mut next = ids.iter().copied().max().unwrap_or(0).saturating_add(1);
        let mut seen = std::collections::HashSet::new();
        for mut m in buffer.iter_meta_mut::<VideoRegionOfInterestMeta>() {
            if !seen.insert(m.id()) {
                m.set_id(next);
                seen.insert(next);
                next = next.saturating_add(1);
            }
        }
    }

    fn classify(
        &self,
        state: &mut State,
        settings: &Settings,
        buffer: &mut gst::BufferRef,
    ) -> Result<(), gst::FlowError> {
        let Some(info) = state.info.clone() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("buffer before caps"));
            return Err(gst::FlowError::NotNegotiated);
        };
        let (width, height) = (info.width(), info.height());

        if settings.mode == Mode::Frame {
            let next = buffer.iter_meta::<VideoRegionOfInterestMeta>().map(|m| m.id()).max().map_or(0, |m| m + 1);
            let mut m = VideoRegionOfInterestMeta::add(buffer, meta::FRAME_ROI_TYPE, (0, 0, width, height));
            m.set_id(next);
        }
        Self::ensure_unique_ids(buffer);

        let wanted = |t: &str| match settings.mode {
            Mode::Frame => t == meta::FRAME_ROI_TYPE,
            Mode::Roi => settings.roi_type.is_empty() || settings.roi_type == t,
        };
        let mut jobs: Vec<Job> = buffer
            .iter_meta::<VideoRegionOfInterestMeta>()
            .filter(|m| wanted(m.roi_type()))
            .map(|m| Job { id: m.id(), rect: m.rect(), slot: Err(String::new()) })
            .collect();
        if jobs.is_empty() {
            return Ok(());
        }

        let mut results: Vec<Option<Outcome>> = vec![None; jobs.len()];
        // The nearest class's index for each classified ROI: its thresholds go with the result.
        let mut nearest: Vec<Option<usize>> = vec![None; jobs.len()];
        {
            let frame_ref = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).map_err(|_| {
                gst::element_imp_error!(self, gst::StreamError::Failed, ("cannot map the frame for reading"));
                gst::FlowError::Error
            })?;
            let Some(format) = pixel_format(info.format()) else {
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ("unsupported format {:?}", info.format()));
                return Err(gst::FlowError::NotNegotiated);
            };
            let n_planes = frame_ref.n_planes() as usize;
            let mut planes = Vec::with_capacity(n_planes);
            for p in 0..n_planes {
                let data = frame_ref.plane_data(p as u32).map_err(|_| gst::FlowError::Error)?;
                planes.push(Plane { data, stride: frame_ref.plane_stride()[p] as usize });
            }
            let matrix = match info.colorimetry().matrix() {
                gst_video::VideoColorMatrix::Bt709 => YuvMatrix::Bt709,
                _ => YuvMatrix::Bt601,
            };
            let frame = Frame::new(format, width, height, &planes, matrix).map_err(|e| {
                gst::element_imp_error!(self, gst::StreamError::Format, ("frame does not match its caps: {e}"));
                gst::FlowError::Error
            })?;

            let sample = state.crop.len();
            // A buffer that is a crop is already framed: the context margin is for detector boxes only (the trainer
            // takes whole-image samples the same way).
            let crop = match settings.mode {
                Mode::Frame => CropSpec { context: 0.0, ..state.crop },
                Mode::Roi => state.crop,
            };
            let batch = settings.batch_size.max(1) as usize;
            // Crop into batches of at most `batch`, run each, score.
            let mut pending: Vec<usize> = Vec::with_capacity(batch);
            let flush = |state: &mut State,
                         pending: &mut Vec<usize>,
                         results: &mut Vec<Option<Outcome>>,
                         nearest: &mut Vec<Option<usize>>| {
                if pending.is_empty() {
                    return;
                }
                state.embeddings.clear();
                let n = pending.len();
                match state.engine.embed(&state.input[..n * sample], n, &mut state.embeddings) {
                    Ok(()) => {
                        let dim = state.engine.dim();
                        for (row, &j) in pending.iter().enumerate() {
                            let e = &state.embeddings[row * dim..(row + 1) * dim];
                            let scored = state.scorer.score(e);
                            nearest[j] = scored.map(|r| r.class_index);
                            results[j] = Some(match scored {
                                Some(r) => Outcome::Classified {
                                    class_id: r.class_id,
                                    label: state.scorer.label(r.class_index).to_owned(),
                                    distance: r.distance as f64,
                                    verdict: r.verdict,
                                },
                                None => Outcome::Skipped { reason: "invalid model output".into() },
                            });
                        }
                    }
                    Err(e) => {
                        gst::element_imp_warning!(self, gst::StreamError::Failed, ("{e}"));
                        for &j in pending.iter() {
                            results[j] = Some(Outcome::Skipped { reason: format!("inference failed: {e}") });
                        }
                    }
                }
                pending.clear();
            };
            if state.input.len() < batch * sample {
                state.input.resize(batch * sample, 0.0);
            }
            for (j, job) in jobs.iter_mut().enumerate() {
                let (x, y, w, h) = job.rect;
                let roi = Roi { x: x as i64, y: y as i64, w: w as i64, h: h as i64 };
                if let Err(e) = check_roi(roi, width, height) {
                    results[j] = Some(Outcome::Skipped { reason: format!("outside the frame: {e}") });
                    continue;
                }
                // Size that lies inside the frame.
                let (vis_w, vis_h) = ((x + w).min(width) - x, (y + h).min(height) - y);
                if vis_w < settings.min_size || vis_h < settings.min_size {
                    results[j] = Some(Outcome::Skipped {
                        reason: format!("smaller than min-size {}: {vis_w}x{vis_h}", settings.min_size),
                    });
                    continue;
                }
                let row = pending.len();
                if let Err(e) = crop_to_tensor(&frame, roi, &crop, &mut state.input[row * sample..(row + 1) * sample]) {
                    results[j] = Some(Outcome::Skipped { reason: e.to_string() });
                    continue;
                }
                job.slot = Ok(row);
                pending.push(j);
                if pending.len() == batch {
                    flush(state, &mut pending, &mut results, &mut nearest);
                }
            }
            flush(state, &mut pending, &mut results, &mut nearest);
        }

        let results: Vec<RoiResult> = jobs
            .iter()
            .zip(results)
            .zip(nearest)
            .map(|((job, outcome), k)| {
                let outcome = outcome.unwrap_or(Outcome::Skipped { reason: "not classified".into() });
                let (n, a) = state.scorer.thresholds(k.unwrap_or(0));
                RoiResult {
                    roi_id: job.id,
                    rect: job.rect,
                    outcome,
                    novelty_threshold: n,
                    anomaly_threshold: a,
                    model: state.model_name.clone(),
                }
            })
            .collect();

        for mut m in buffer.iter_meta_mut::<VideoRegionOfInterestMeta>() {
            if let Some(r) = results.iter().find(|r| r.roi_id == m.id()) {
                m.add_param(r.to_structure());
            }
        }
        meta::attach(buffer, &results).map_err(|e| {
            gst::element_imp_error!(self, gst::CoreError::Failed, ("cannot attach results meta: {e}"));
            gst::FlowError::Error
        })?;
        gst::log!(CAT, imp = self, "classified {} ROIs", results.len());
        if settings.emit_messages {
            let s = gst::Structure::builder("odm-results")
                .field("pts", buffer.pts().map_or(-1i64, |t| t.nseconds() as i64))
                .field("model", state.model_name.as_str())
                .field("results", gst::Array::new(results.iter().map(RoiResult::to_structure)))
                .build();
            let _ = self.obj().post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
        }
        Ok(())
    }
}

impl ObjectImpl for OdmClassify {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb("Path of the embedding network (ONNX)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("bundle")
                    .nick("Bundle")
                    .blurb("Path of the model bundle (NAME.odm.json); default: beside the model")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("ort-library")
                    .nick("ONNX Runtime library")
                    .blurb(
                        "Path of libonnxruntime.so; default: ORT_DYLIB_PATH, then the bootstrap folder, then the \
                         system loader path",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("mode", DEFAULT_MODE)
                    .nick("Mode")
                    .blurb("Classify each ROI meta, or the whole frame as one crop")
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
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("ONNX Runtime intra-op threads (spinning off)")
                    .minimum(1)
                    .maximum(256)
                    .default_value(DEFAULT_THREADS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("min-size")
                    .nick("Minimum size")
                    .blurb("ROIs narrower or shorter than this (pixels inside the frame) are skipped")
                    .default_value(DEFAULT_MIN_SIZE)
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
                glib::ParamSpecBoolean::builder("emit-messages")
                    .nick("Emit messages")
                    .blurb("Post an element message `odm-results` on the bus for every frame with ROIs")
                    .default_value(false)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let name = pspec.name();
        let ready_only = !pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING);
        if ready_only && self.obj().current_state() > gst::State::Ready {
            gst::element_imp_warning!(
                self,
                gst::CoreError::StateChange,
                ("property {name} can only change in NULL or READY; ignored")
            );
            return;
        }
        let path =
            |v: &glib::Value| v.get::<Option<String>>().ok().flatten().filter(|s| !s.is_empty()).map(PathBuf::from);
        let mut s = self.lock_settings();
        match name {
            "model" => s.model = path(value),
            "bundle" => s.bundle = path(value),
            "ort-library" => s.ort_library = path(value),
            "mode" => s.mode = value.get().expect("type checked upstream"),
            "roi-type" => s.roi_type = value.get::<Option<String>>().ok().flatten().unwrap_or_default(),
            "batch-size" => s.batch_size = value.get().expect("type checked upstream"),
            "threads" => s.threads = value.get().expect("type checked upstream"),
            "min-size" => s.min_size = value.get().expect("type checked upstream"),
            "emit-messages" => s.emit_messages = value.get().expect("type checked upstream"),
            "novelty-threshold" | "anomaly-threshold" => {
                let v: f64 = value.get().expect("type checked upstream");
                let (n, a) =
                    if name == "novelty-threshold" { (v, s.anomaly_threshold) } else { (s.novelty_threshold, v) };
                // Applied to the scorer now (between two frames), or refused with the old values kept.
                if let Some(state) = self.lock_state().as_mut() {
                    if let Err(e) = state.scorer.set_overrides(threshold(n), threshold(a)) {
                        gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{name} = {v} refused: {e}"));
                        return;
                    }
                }
                s.novelty_threshold = n;
                s.anomaly_threshold = a;
            }
            _ => unreachable!("unknown property {name}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.lock_settings();
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).to_value();
        match pspec.name() {
            "model" => path(&s.model),
            "bundle" => path(&s.bundle),
            "ort-library" => path(&s.ort_library),
            "mode" => s.mode.to_value(),
            "roi-type" => s.roi_type.to_value(),
            "batch-size" => s.batch_size.to_value(),
            "threads" => s.threads.to_value(),
            "min-size" => s.min_size.to_value(),
            "novelty-threshold" => s.novelty_threshold.to_value(),
            "anomaly-threshold" => s.anomaly_threshold.to_value(),
            "emit-messages" => s.emit_messages.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for OdmClassify {}

impl ElementImpl for OdmClassify {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "odm open-set classifier",
                "Filter/Analyzer/Video",
                "Classifies region-of-interest crops with a metric-learning embedding; says whether each is a known \
                 sign, a novelty or an anomaly",
                "odm developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new().format_list(FORMATS.iter().copied()).build();
            vec![
                gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &caps)
                    .expect("valid template"),
                gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &caps)
                    .expect("valid template"),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for OdmClassify {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.lock_settings().clone();
        let state = self.load(&settings)?;
        *self.lock_state() = Some(state);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.lock_state() = None;
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "cannot parse caps {incaps}"))?;
        if pixel_format(info.format()).is_none() {
            return Err(gst::loggable_error!(CAT, "unsupported format {:?}", info.format()));
        }
        gst::debug!(CAT, imp = self, "caps {}x{} {:?}", info.width(), info.height(), info.format());
        match self.lock_state().as_mut() {
            Some(state) => {
                state.info = Some(info);
                Ok(())
            }
            None => Err(gst::loggable_error!(CAT, "caps before start")),
        }
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = self.lock_settings().clone();
        let mut guard = self.lock_state();
        let Some(state) = guard.as_mut() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("not started"));
            return Err(gst::FlowError::NotNegotiated);
        };
        self.classify(state, &settings, buf)?;
        Ok(gst::FlowSuccess::Ok)
    }
}
