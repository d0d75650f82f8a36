// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmclassify's streaming state and how it is made: the bundle read and checked, the scoring it gives, the session
//! (own or shared), and the network it runs, which a hot-reloaded bundle must fit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use odm_core::bundle::{sha256_bytes, sibling_bundle_path, Bundle};
use odm_core::preprocess::CropScratch;

use super::frame::FrameWork;
use super::messages::{self, Obj, CAT};
use super::scoring::{raised_text, Scoring};
use super::settings::{threshold, Settings};
use super::stats::Drift;
use super::track::Tracks;
use crate::engine::batch::{self, Line};
use crate::engine::embedding::{self, Engine, Instance};
use crate::engine::pool::InstanceKey;
use crate::engine::EngineOptions;
use crate::meta::RoiResult;

/// The network the running session was made from, read once at start: what a hot-reloaded bundle must match.
pub(super) struct Network {
    pub(super) path: PathBuf,
    /// SHA-256 of the bytes the session was made from (the file on disk may have changed since).
    pub(super) sha256: String,
    pub(super) input: String,
    pub(super) height: usize,
    pub(super) width: usize,
    pub(super) output: String,
    pub(super) dim: usize,
    /// Floats in one input sample (3 x height x width).
    pub(super) sample_len: usize,
}

/// Streaming state: made in `start()`, dropped in `stop()`.
pub(super) struct State {
    /// The session, this element's own or shared under `model-instance-id`.
    pub(super) engine: Arc<Instance>,
    pub(super) network: Arc<Network>,
    pub(super) scoring: Arc<Scoring>,
    pub(super) info: Option<gst_video::VideoInfo>,
    /// The frame's work (synchronous path), reused across frames so steady-state frames allocate none of it; ROI
    /// ids (scratch).
    pub(super) work: FrameWork,
    pub(super) ids: Vec<i32>,
    pub(super) new_ids: Vec<i32>,
    /// Ids that came more than once in the frame (scratch): never followed.
    pub(super) duplicated: Vec<i32>,
    pub(super) crop_scratch: CropScratch,
    /// The results of the frame being finished (scratch).
    pub(super) results: Vec<RoiResult>,
    pub(super) drift: Drift,
    /// Per tracked ROI id: recent results, for `reclassify-interval` and `vote-window`.
    pub(super) tracks: Tracks,
    /// The bundle generation under which non-finite network outputs were last said on the bus (once per generation).
    pub(super) invalid_warned: Option<u64>,
    /// On a shared `model-instance-id`, the line to the instance's batching service, so that frames of every stream
    /// on it are batched together (synchronous path).
    pub(super) shared: Option<Line<Instance>>,
}

/// The name of the batching service's thread when odmclassify starts it.
pub(super) const INFER_THREAD: &str = "odmclassify-infer";

/// Read a bundle: parsed and validated. Errors are sentences that name the file.
pub(super) fn read_bundle(path: &Path) -> Result<Bundle, (gst::ResourceError, String)> {
    Bundle::load(path).map_err(|e| {
        let kind = match e {
            odm_core::BundleError::Io { .. } => gst::ResourceError::NotFound,
            _ => gst::ResourceError::Settings,
        };
        (kind, format!("bundle refused: {e}"))
    })
}

impl State {
    /// Load bundle, library and session, checking each against the others. The model file is read once: the session
    /// is made from the bytes that were hashed.
    pub(super) fn load(
        settings: &Settings,
        obj: &Obj,
        posts: &mut Vec<gst::Message>,
    ) -> Result<State, gst::ErrorMessage> {
        let (model, bytes) = crate::engine::session::read_model(settings.model.as_deref())?;
        let sha256 = sha256_bytes(&bytes);
        let bundle_path = settings.bundle.clone().unwrap_or_else(|| sibling_bundle_path(&model));
        let bundle = read_bundle(&bundle_path).map_err(|(kind, text)| gst::error_msg!(kind, ("{text}")))?;
        bundle
            .verify_model_sha256(&bundle_path, &model, &sha256)
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("bundle refused: {e}")))?;
        let scoring = Scoring::new(&bundle, &bundle_path, &settings.live)
            .map_err(|text| gst::error_msg!(gst::ResourceError::Settings, ("{text}")))?;

        let (env, lib) = odm_runtime::environment(settings.ort_library.as_deref())
            .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ("{e}")))?;
        gst::info!(CAT, obj = obj, "ONNX Runtime from {}", lib.display());

        let opts = EngineOptions {
            intra_threads: settings.threads as usize,
            provider: settings.provider.into(),
            device_id: settings.device_id,
            fallback: settings.fallback,
            trt_cache: settings.trt_cache.clone(),
            trt_fp16: settings.trt_fp16,
        };
        let key = InstanceKey::new(sha256.clone(), &opts);
        let id = settings.model_instance_id.as_str();
        let (engine, fell_back) =
            embedding::instance(id, key, || Engine::new(&env, &model, &bytes, &bundle, opts.clone()))
                .map_err(|e| e.to_error_message())?;
        if let Some(why) = fell_back {
            posts.push(messages::warning(obj, gst::LibraryError::Init, &why));
        }
        gst::info!(
            CAT,
            obj = obj,
            "model {} ({} classes, dim {}) from {}, on {}",
            bundle.name,
            bundle.classes.len(),
            bundle.dim(),
            bundle_path.display(),
            engine.lock().provider()
        );
        if bundle.novelty_collapsed() && threshold(settings.live.anomaly_threshold).is_none() {
            // Said on the bus, not only in the debug log: a bundle that can never say `novelty` is a surprise.
            let why = format!(
                "bundle {}: its anomaly threshold {} is not above its novelty threshold {}: no crop will be called a \
                 novelty (set anomaly-threshold to separate unknown signs from non-signs)",
                bundle_path.display(),
                bundle.score.anomaly_threshold,
                bundle.score.novelty_threshold
            );
            posts.push(messages::warning(obj, gst::ResourceError::Settings, &why));
        }
        let batch = settings.batch_size as usize;
        if let Some(fixed) = engine.lock().fixed_batch().filter(|&f| f != batch.max(1)) {
            // Said once here, not on every frame: runs are made of exactly the network's batch.
            let text = format!(
                "the network {} has a fixed batch size of {fixed}: batch-size {batch} runs in batches of {fixed} \
                 (the last one padded)",
                model.display()
            );
            posts.push(messages::info(obj, gst::LibraryError::Settings, &text));
        }
        if threshold(settings.live.novelty_threshold).is_some() || threshold(settings.live.anomaly_threshold).is_some()
        {
            if let Some((classes, highest)) = scoring.scorer.raised_anomaly_bands() {
                let what = format!(
                    "novelty-threshold = {}, anomaly-threshold = {} (-1: the bundle's)",
                    settings.live.novelty_threshold, settings.live.anomaly_threshold
                );
                let text = raised_text(&what, classes, highest);
                posts.push(messages::warning(obj, gst::LibraryError::Settings, &text));
            }
        }
        let network = {
            let e = engine.lock();
            let (input, height, width, output, dim) = e.io();
            Arc::new(Network {
                path: model.clone(),
                sha256,
                input: input.to_owned(),
                height,
                width,
                output: output.to_owned(),
                dim,
                sample_len: e.sample_len(),
            })
        };
        // A shared instance was made for another element's bundle: this one must fit the same inputs and outputs.
        network
            .check_io(&bundle_path, &bundle)
            .map_err(|text| gst::error_msg!(gst::ResourceError::Settings, ("bundle refused: {text}")))?;
        if !engine.id.is_empty() {
            gst::info!(CAT, obj = obj, "model instance \"{}\" ({} elements)", engine.id, Arc::strong_count(&engine));
        }
        // The synchronous path's line to a shared instance's batching service (with frames in flight, the in-flight
        // queue's line is that line instead).
        let shared =
            if engine.id.is_empty() || settings.frames_in_flight > 0 {
                None
            } else {
                Some(Line::open(&engine, batch, INFER_THREAD).map_err(|e| {
                    gst::error_msg!(gst::LibraryError::Failed, ("cannot start the inference thread: {e}"))
                })?)
            };
        Ok(State {
            shared,
            work: FrameWork {
                crops: batch::Job {
                    input: vec![0.0; batch * network.sample_len],
                    output: Vec::with_capacity(batch * network.dim),
                    ..batch::Job::default()
                },
                jobs: Vec::with_capacity(64),
                rows: Vec::with_capacity(batch),
                ..FrameWork::default()
            },
            network,
            ids: Vec::with_capacity(64),
            new_ids: Vec::with_capacity(1),
            duplicated: Vec::new(),
            crop_scratch: CropScratch::default(),
            results: Vec::with_capacity(64),
            drift: Drift::default(),
            tracks: Tracks::default(),
            engine,
            scoring: Arc::new(scoring),
            info: None,
            invalid_warned: None,
        })
    }
}

impl Network {
    /// Whether a bundle's input and output fit the network the session runs.
    pub(super) fn check_io(&self, path: &Path, bundle: &Bundle) -> Result<(), String> {
        let spec = &bundle.model;
        if spec.input.name != self.input
            || spec.input.height as usize != self.height
            || spec.input.width as usize != self.width
        {
            return Err(format!(
                "{}: its input \"{}\" of {}x{} does not match the running network's \"{}\" of {}x{}",
                path.display(),
                spec.input.name,
                spec.input.width,
                spec.input.height,
                self.input,
                self.width,
                self.height
            ));
        }
        if spec.output.name != self.output || spec.output.dim != self.dim {
            return Err(format!(
                "{}: its output \"{}\" of dimension {} does not match the running network's \"{}\" of dimension {}",
                path.display(),
                spec.output.name,
                spec.output.dim,
                self.output,
                self.dim
            ));
        }
        Ok(())
    }
}
