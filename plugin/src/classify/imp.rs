// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmclassify` implementation: an in-place BaseTransform that only adds metadata.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_transform::GenerateOutputSuccess;
use gst_base::subclass::prelude::*;
use gst_video::VideoRegionOfInterestMeta;

use odm_core::bundle::{sha256_bytes, sibling_bundle_path, Bundle};
use odm_core::preprocess::{check_roi, crop_to_tensor_with, CropScratch, CropSpec, Roi};
use odm_core::Scorer;

use super::frame::{FrameWork, Job, Skip};
use super::settings::{
    threshold, Live, Settings, DEFAULT_BATCH_SIZE, DEFAULT_MIN_SIZE, DEFAULT_MODE, DEFAULT_THREADS,
    THRESHOLD_FROM_BUNDLE,
};
use super::stats::{Drift, Stats};
use super::track::Tracks;
use super::worker::Worker;
use super::{ExecutionProvider, Mode};
use crate::engine::pool::{self, Instance, InstanceKey, PoolError};
use crate::engine::{Engine, EngineError, EngineOptions};
use crate::meta::{self, Outcome, RawResult, RoiResult};
use crate::runtime;
use crate::video::pixel_format;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("odmclassify", gst::DebugColorFlags::empty(), Some("odm open-set sign classifier"))
});

/// What the loaded bundle contributes to scoring; swapped whole by a hot reload.
struct Scoring {
    scorer: Scorer,
    crop: CropSpec,
    /// Bundle name and class labels, shared by every result (no allocation per result).
    name: Arc<str>,
    labels: Vec<Arc<str>>,
    path: PathBuf,
    /// The bundle's own anomaly threshold (the drift histogram spans twice the one in force).
    anomaly_threshold: f64,
}

/// The network the running session was made from, read once at start: what a hot-reloaded bundle must match.
struct Network {
    path: PathBuf,
    /// SHA-256 of the bytes the session was made from (the file on disk may have changed since).
    sha256: String,
    input: String,
    height: usize,
    width: usize,
    output: String,
    dim: usize,
    /// Floats in one input sample (3 x height x width).
    sample_len: usize,
}

/// Streaming state: made in `start()`, dropped in `stop()`.
struct State {
    /// The session, this element's own or shared under `model-instance-id`.
    engine: Arc<Instance>,
    network: Arc<Network>,
    scoring: Scoring,
    info: Option<gst_video::VideoInfo>,
    /// The frame's work (synchronous path), reused across frames so steady-state frames allocate none of it; ROI
    /// ids (scratch).
    work: FrameWork,
    ids: Vec<i32>,
    new_ids: Vec<i32>,
    crop_scratch: CropScratch,
    /// The results of the frame being finished (scratch).
    results: Vec<RoiResult>,
    drift: Drift,
    /// Per tracked ROI id: recent results, for `reclassify-interval` and `vote-window`.
    tracks: Tracks,
    /// On a shared `model-instance-id`, the line to the instance's inference thread, so that frames of every stream
    /// on it are batched together (synchronous path).
    shared: Option<Worker>,
}

#[derive(Default)]
pub struct OdmClassify {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    stats: Mutex<Stats>,
    /// With `frames-in-flight`: the inference thread and the buffers waiting for it. Never held while a buffer is
    /// pushed; taken before `state` only after being released (no nesting).
    worker: Mutex<Option<Worker>>,
    /// With `max-batch-latency`: the thread that pushes frames that waited too long.
    timer: Mutex<Option<(Arc<std::sync::atomic::AtomicBool>, std::thread::JoinHandle<()>)>>,
}

#[glib::object_subclass]
impl ObjectSubclass for OdmClassify {
    const NAME: &'static str = "GstOdmClassify";
    type Type = super::OdmClassify;
    type ParentType = gst_base::BaseTransform;
}

impl OdmClassify {
    fn lock_settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Read a bundle: parsed and validated. Errors are sentences that name the file.
    fn read_bundle(path: &Path) -> Result<Bundle, (gst::ResourceError, String)> {
        Bundle::load(path).map_err(|e| {
            let kind = match e {
                odm_core::BundleError::Io { .. } => gst::ResourceError::NotFound,
                _ => gst::ResourceError::Settings,
            };
            (kind, format!("bundle refused: {e}"))
        })
    }

    /// What a checked bundle contributes to scoring, with the threshold overrides in force.
    fn scoring(bundle: &Bundle, path: &Path, live: &Live) -> Result<Scoring, String> {
        let mut scorer = Scorer::new(bundle);
        scorer
            .set_overrides(threshold(live.novelty_threshold), threshold(live.anomaly_threshold))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Scoring {
            scorer,
            crop: CropSpec::from_input(&bundle.model.input),
            name: Arc::from(bundle.name.as_str()),
            labels: bundle.classes.iter().map(|c| Arc::from(c.label.as_str())).collect(),
            path: path.to_owned(),
            anomaly_threshold: bundle.score.anomaly_threshold,
        })
    }

    /// Load bundle, library and session, checking each against the others. The model file is read once: the session
    /// is made from the bytes that were hashed.
    fn load(&self, settings: &Settings, posts: &mut Vec<gst::Message>) -> Result<State, gst::ErrorMessage> {
        let Some(model) = settings.model.clone() else {
            return Err(gst::error_msg!(gst::ResourceError::NotFound, ("no model set: set the `model` property")));
        };
        if !model.is_file() {
            return Err(gst::error_msg!(gst::ResourceError::NotFound, ("model file {} not found", model.display())));
        }
        let bytes = std::fs::read(&model).map_err(|e| {
            gst::error_msg!(gst::ResourceError::OpenRead, ("cannot read the model file {}: {e}", model.display()))
        })?;
        let sha256 = sha256_bytes(&bytes);
        let bundle_path = settings.bundle.clone().unwrap_or_else(|| sibling_bundle_path(&model));
        let bundle = Self::read_bundle(&bundle_path).map_err(|(kind, text)| gst::error_msg!(kind, ("{text}")))?;
        bundle
            .verify_model_sha256(&bundle_path, &model, &sha256)
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("bundle refused: {e}")))?;
        let scoring = Self::scoring(&bundle, &bundle_path, &settings.live)
            .map_err(|text| gst::error_msg!(gst::ResourceError::Settings, ("{text}")))?;

        let (env, lib) = runtime::environment(settings.ort_library.as_deref())
            .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ("{e}")))?;
        gst::info!(CAT, imp = self, "ONNX Runtime from {}", lib.display());

        let opts = EngineOptions {
            intra_threads: settings.threads as usize,
            provider: settings.provider.into(),
            device_id: settings.device_id,
            fallback: settings.fallback,
            trt_cache: settings.trt_cache.clone(),
            trt_fp16: settings.trt_fp16,
        };
        let key = InstanceKey {
            sha256: sha256.clone(),
            provider: opts.provider,
            device_id: opts.device_id,
            threads: opts.intra_threads,
            trt_cache: opts.trt_cache.clone(),
            trt_fp16: opts.trt_fp16,
        };
        let id = settings.model_instance_id.as_str();
        let (engine, fell_back) = pool::instance(id, key, || Engine::new(&env, &model, &bytes, &bundle, opts.clone()))
            .map_err(|e| match e {
                PoolError::Engine(e @ EngineError::Provider { .. }) => {
                    gst::error_msg!(gst::LibraryError::Init, ("{e}"))
                }
                PoolError::Engine(e) => gst::error_msg!(gst::ResourceError::OpenRead, ("{e}")),
                e @ PoolError::Mismatch { .. } => gst::error_msg!(gst::ResourceError::Settings, ("{e}")),
            })?;
        if let Some(why) = fell_back {
            posts.push(self.warning_message(gst::LibraryError::Init, &why));
        }
        gst::info!(
            CAT,
            imp = self,
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
            posts.push(self.warning_message(gst::ResourceError::Settings, &why));
        }
        let batch = settings.batch_size as usize;
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
        Self::check_io(&network, &bundle_path, &bundle)
            .map_err(|text| gst::error_msg!(gst::ResourceError::Settings, ("bundle refused: {text}")))?;
        if !engine.id.is_empty() {
            gst::info!(CAT, imp = self, "model instance \"{}\" ({} elements)", engine.id, Arc::strong_count(&engine));
        }
        // The synchronous path's line to a shared instance's thread (with frames in flight, the element's worker is
        // that line instead).
        let shared =
            if engine.id.is_empty() || settings.frames_in_flight > 0 {
                None
            } else {
                Some(Worker::spawn(engine.clone(), batch).map_err(|e| {
                    gst::error_msg!(gst::LibraryError::Failed, ("cannot start the inference thread: {e}"))
                })?)
            };
        Ok(State {
            shared,
            work: FrameWork {
                input: vec![0.0; batch * network.sample_len],
                embeddings: Vec::with_capacity(batch * network.dim),
                jobs: Vec::with_capacity(64),
                rows: Vec::with_capacity(batch),
                ..FrameWork::default()
            },
            network,
            ids: Vec::with_capacity(64),
            new_ids: Vec::with_capacity(1),
            crop_scratch: CropScratch::default(),
            results: Vec::with_capacity(64),
            drift: Drift::default(),
            tracks: Tracks::default(),
            engine,
            scoring,
            info: None,
        })
    }

    /// Hot reload, first half, with no lock held: read the bundle at `path` and check it against the running
    /// network (its hash when the session was made, its input and output). The caller swaps it in between two frames.
    fn prepare_reload(network: &Network, path: &Path, live: &Live) -> Result<(Scoring, usize), String> {
        let bundle = Self::read_bundle(path).map_err(|(_, text)| text)?;
        if bundle.model.sha256 != network.sha256 {
            return Err(format!(
                "{}: it was made for another network (model.sha256 {}) than the one running, read from {} at start \
                 (sha256 {})",
                path.display(),
                bundle.model.sha256,
                network.path.display(),
                network.sha256
            ));
        }
        Self::check_io(network, path, &bundle)?;
        Ok((Self::scoring(&bundle, path, live)?, bundle.classes.len()))
    }

    /// Whether a bundle's input and output fit the network the session runs.
    fn check_io(network: &Network, path: &Path, bundle: &Bundle) -> Result<(), String> {
        let spec = &bundle.model;
        if spec.input.name != network.input
            || spec.input.height as usize != network.height
            || spec.input.width as usize != network.width
        {
            return Err(format!(
                "{}: its input \"{}\" of {}x{} does not match the running network's \"{}\" of {}x{}",
                path.display(),
                spec.input.name,
                spec.input.width,
                spec.input.height,
                network.input,
                network.width,
                network.height
            ));
        }
        if spec.output.name != network.output || spec.output.dim != network.dim {
            return Err(format!(
                "{}: its output \"{}\" of dimension {} does not match the running network's \"{}\" of dimension {}",
                path.display(),
                spec.output.name,
                spec.output.dim,
                network.output,
                network.dim
            ));
        }
        Ok(())
    }

    /// A bus message for an error, logged too. Built while locks are held, posted after they are released.
    fn error_message(&self, domain: impl gst::MessageErrorDomain, text: &str) -> gst::Message {
        gst::error!(CAT, imp = self, "{text}");
        gst::message::Error::builder(domain, text).src(&*self.obj()).build()
    }

    /// A bus message for a warning, logged too.
    fn warning_message(&self, domain: impl gst::MessageErrorDomain, text: &str) -> gst::Message {
        gst::warning!(CAT, imp = self, "{text}");
        gst::message::Warning::builder(domain, text).src(&*self.obj()).build()
    }

    /// Post messages gathered under a lock; call with no lock held (a sync bus handler runs in this thread and may
    /// set properties).
    fn post_all(&self, posts: Vec<gst::Message>) {
        for m in posts {
            let _ = self.obj().post_message(m);
        }
    }

    /// Give ROI metas distinct ids where they collide (ROI metas are created with id 0 unless the producer sets
    /// one), so results can be joined back by id after copies. New ids are ones no meta has (never an overflow, even
    /// next to i32::MAX). `ids` is scratch.
    fn ensure_unique_ids(buffer: &mut gst::BufferRef, ids: &mut Vec<i32>) {
        ids.clear();
        ids.extend(buffer.iter_meta::<VideoRegionOfInterestMeta>().map(|m| m.id()));
        ids.sort_unstable();
        if ids.windows(2).all(|w| w[0] != w[1]) {
            return;
        }
        // Ids no meta has, enough for every duplicate; then `ids` holds the ids seen so far.
        let total = ids.len();
        ids.dedup();
        let mut fresh: Vec<i32> = meta::fresh_ids(ids).take(total - ids.len()).collect();
        fresh.reverse();
        ids.clear();
        for mut m in buffer.iter_meta_mut::<VideoRegionOfInterestMeta>() {
            if ids.contains(&m.id()) {
                if let Some(id) = fresh.pop() {
                    m.set_id(id);
                }
            }
            ids.push(m.id());
        }
    }

    /// One frame on the streaming thread: crop, embed, score, write the results.
    fn classify(
        &self,
        state: &mut State,
        mode: Mode,
        batch: usize,
        live: &Live,
        buffer: &mut gst::BufferRef,
        posts: &mut Vec<gst::Message>,
    ) -> Result<(), gst::FlowError> {
        let mut work = std::mem::take(&mut state.work);
        let mut r = self.prepare(state, &mut work, mode, live, buffer, posts);
        if r.is_ok() {
            match state.shared.as_mut() {
                // A shared instance's thread batches this frame with the other streams' waiting ones.
                Some(w) => match w.round_trip(work) {
                    Some(back) => work = back,
                    None => {
                        posts.push(self.error_message(gst::LibraryError::Failed, "the inference thread stopped"));
                        return Err(gst::FlowError::Error);
                    }
                },
                None => work.embed(&state.engine, batch),
            }
            r = self.finish(state, &mut work, live, buffer, posts);
        }
        state.work = work;
        r
    }

    /// The first half of a frame: give ROI metas distinct ids, pick the ROIs to classify, skip those that cannot be
    /// (with the reason) or reuse a tracked one's result, and crop the rest into `work`'s rows.
    fn prepare(
        &self,
        state: &mut State,
        work: &mut FrameWork,
        mode: Mode,
        live: &Live,
        buffer: &mut gst::BufferRef,
        posts: &mut Vec<gst::Message>,
    ) -> Result<(), gst::FlowError> {
        work.clear();
        let State { network, scoring, info, ids, new_ids, crop_scratch, tracks, .. } = state;
        // Objects are followed by ROI id in roi mode (a frame ROI gets a new id each frame).
        let tracking = mode == Mode::Roi && (live.reclassify_interval > 1 || live.vote_window > 1);
        work.tracking = tracking;
        if tracking {
            tracks.next_frame(2 * (live.reclassify_interval as u64 + live.vote_window as u64) + 30);
        }
        let Some(info) = info.as_ref() else {
            posts.push(self.error_message(gst::CoreError::Negotiation, "a buffer came before caps"));
            return Err(gst::FlowError::NotNegotiated);
        };
        let (width, height) = (info.width(), info.height());

        if mode == Mode::Frame {
            meta::new_roi_ids(buffer, 1, ids, new_ids);
            let next = new_ids.first().copied().unwrap_or(0);
            let mut m = VideoRegionOfInterestMeta::add(buffer, meta::FRAME_ROI_TYPE, (0, 0, width, height));
            m.set_id(next);
        }
        Self::ensure_unique_ids(buffer, ids);

        let wanted = |t: &str| match mode {
            Mode::Frame => t == meta::FRAME_ROI_TYPE,
            Mode::Roi => live.roi_type.is_empty() || *live.roi_type == *t,
        };
        work.jobs.extend(
            buffer.iter_meta::<VideoRegionOfInterestMeta>().filter(|m| wanted(m.roi_type())).map(|m| Job {
                id: m.id(),
                rect: m.rect(),
                outcome: Err(Skip::Pending),
                reused: false,
                raw: None,
            }),
        );
        if work.jobs.is_empty() {
            return Ok(());
        }
        let frame_ref = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).map_err(|_| {
            let text = format!(
                "cannot map a buffer of {} bytes as a {}x{} {} frame",
                buffer.size(),
                width,
                height,
                info.format().to_str()
            );
            posts.push(self.error_message(gst::StreamError::Failed, &text));
            gst::FlowError::Error
        })?;
        let frame = crate::video::core_frame(&frame_ref).map_err(|text| {
            posts.push(self.error_message(gst::StreamError::Format, &text));
            gst::FlowError::Error
        })?;
        let sample = network.sample_len;
        // A buffer that is a crop is already framed: the context margin is for detector boxes only (the trainer
        // takes whole-image samples the same way).
        let crop = match mode {
            Mode::Frame => CropSpec { context: 0.0, ..scoring.crop },
            Mode::Roi => scoring.crop,
        };
        for j in 0..work.jobs.len() {
            let (x, y, w, h) = work.jobs[j].rect;
            let roi = Roi { x: x as i64, y: y as i64, w: w as i64, h: h as i64 };
            if let Err(e) = check_roi(roi, width, height) {
                work.jobs[j].outcome = Err(Skip::Outside(e));
                continue;
            }
            // Size that lies inside the frame (check_roi ensured x < width, y < height; the far edge of an upstream
            // box may not fit in u32).
            let (vis_w, vis_h) = (x.saturating_add(w).min(width) - x, y.saturating_add(h).min(height) - y);
            if vis_w < live.min_size || vis_h < live.min_size {
                work.jobs[j].outcome = Err(Skip::Small(vis_w, vis_h, live.min_size));
                continue;
            }
            if live.max_size > 0 && (vis_w > live.max_size || vis_h > live.max_size) {
                work.jobs[j].outcome = Err(Skip::Large(vis_w, vis_h, live.max_size));
                continue;
            }
            if tracking && live.reclassify_interval > 1 {
                if let Some(r) = tracks.reusable(work.jobs[j].id, live.reclassify_interval) {
                    (work.jobs[j].outcome, work.jobs[j].reused) = (Ok(r), true);
                    continue;
                }
            }
            if let Err(e) = crop_to_tensor_with(&frame, roi, &crop, work.next_row(sample), crop_scratch) {
                work.jobs[j].outcome = Err(Skip::Preprocess(e));
                continue;
            }
            work.rows.push(j);
        }
        Ok(())
    }

    /// The second half of a frame, once its rows are embedded: score, vote, write the results on the buffer, post the
    /// messages, count.
    fn finish(
        &self,
        state: &mut State,
        work: &mut FrameWork,
        live: &Live,
        buffer: &mut gst::BufferRef,
        posts: &mut Vec<gst::Message>,
    ) -> Result<(), gst::FlowError> {
        let State { network, scoring, drift, tracks, results, .. } = state;
        work.score(&scoring.scorer, network.dim);
        if let Some(e) = &work.error {
            posts.push(self.warning_message(gst::StreamError::Failed, &e.to_string()));
        }
        if work.tracking {
            for job in work.jobs.iter_mut().filter(|j| !j.reused) {
                if let Ok(raw) = job.outcome {
                    job.outcome = Ok(tracks.record(job.id, raw, live.vote_window));
                    job.raw = (live.vote_window > 1).then_some(raw);
                }
            }
        }
        let jobs = &work.jobs;
        if !jobs.is_empty() {
            let scorer = &scoring.scorer;
            results.clear();
            results.extend(jobs.iter().map(|job| {
                let (outcome, k) = match &job.outcome {
                    Ok(r) => (
                        Outcome::Classified {
                            class_id: r.class_id,
                            label: scoring.labels[r.class_index].clone(),
                            distance: r.distance as f64,
                            verdict: r.verdict,
                        },
                        r.class_index,
                    ),
                    Err(skip) => (Outcome::Skipped { reason: skip.to_string() }, 0),
                };
                let (n, a) = scorer.thresholds(k);
                RoiResult {
                    roi_id: job.id,
                    rect: job.rect,
                    outcome,
                    novelty_threshold: n,
                    anomaly_threshold: a,
                    model: scoring.name.clone(),
                    reused: job.reused,
                    raw: job.raw.map(|r| RawResult {
                        class_id: r.class_id,
                        label: scoring.labels[r.class_index].clone(),
                        distance: r.distance as f64,
                        verdict: r.verdict,
                    }),
                }
            }));
            for mut m in buffer.iter_meta_mut::<VideoRegionOfInterestMeta>() {
                if let Some(r) = results.iter().find(|r| r.roi_id == m.id()) {
                    m.add_param(r.to_structure());
                }
            }
            meta::attach(buffer, results).map_err(|e| {
                posts.push(self.error_message(gst::CoreError::Failed, &format!("cannot attach the results meta: {e}")));
                gst::FlowError::Error
            })?;
            gst::log!(CAT, imp = self, "classified {} ROIs", results.len());
            if live.emit_messages {
                let s = gst::Structure::builder("odm-results")
                    .field("pts", buffer.pts().map_or(-1i64, |t| t.nseconds() as i64))
                    .field("model", &*scoring.name)
                    .field("results", gst::Array::new(results.iter().map(RoiResult::to_structure)))
                    .build();
                posts.push(gst::message::Element::builder(s).src(&*self.obj()).build());
            }
        }

        // Counters: the stats property, and the drift window.
        {
            let mut st = self.lock_stats();
            for took in &work.runs {
                st.inference.push(took.as_secs_f64() * 1e6);
            }
            st.frames += 1;
            st.shared_runs += work.shared_run as u64;
            st.rois += jobs.len() as u64;
            for job in jobs.iter() {
                st.verdicts[job.verdict_slot()] += 1;
                st.reused += job.reused as u64;
            }
            if let Some(t0) = work.started {
                st.frame.push(t0.elapsed().as_secs_f64() * 1e6);
            }
        }
        if live.stats_interval > 0 {
            let span = 2.0 * threshold(live.anomaly_threshold).unwrap_or(scoring.anomaly_threshold).max(1e-9);
            drift.frames += 1;
            for job in jobs.iter() {
                drift.add(job.verdict_slot(), job.outcome.as_ref().ok().map(|r| r.distance as f64), span);
            }
            if drift.frames >= live.stats_interval {
                let pts = buffer.pts().map_or(-1i64, |t| t.nseconds() as i64);
                let s = drift.take_structure(pts, &scoring.name, span);
                posts.push(gst::message::Element::builder(s).src(&*self.obj()).build());
            }
        }
        Ok(())
    }

    fn lock_worker(&self) -> std::sync::MutexGuard<'_, Option<Worker>> {
        self.worker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The second half of a frame that was in flight: results on its buffer, its work back to the spares.
    fn complete(&self, mut buf: gst::Buffer, mut work: FrameWork) -> Result<gst::Buffer, gst::FlowError> {
        let live = self.lock_settings().live.clone();
        let mut posts = Vec::new();
        let r = match self.lock_state().as_mut() {
            Some(state) => self.finish(state, &mut work, &live, buf.make_mut(), &mut posts),
            None => Err(gst::FlowError::Flushing),
        };
        self.post_all(posts);
        if let Some(w) = self.lock_worker().as_mut() {
            w.spare.push(work);
        }
        r.map(|()| buf)
    }

    /// `max-batch-latency`: a thread that, holding the stream lock as the streaming thread would, pushes the frames
    /// that waited longer than `latency` for later ones.
    fn start_timer(&self, latency: std::time::Duration) {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let weak = self.obj().downgrade();
        let flag = stop.clone();
        let tick = (latency / 4).clamp(std::time::Duration::from_millis(1), std::time::Duration::from_millis(10));
        let spawned = std::thread::Builder::new().name("odmclassify-latency".into()).spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(tick);
                let Some(obj) = weak.upgrade() else { break };
                let imp = obj.imp();
                let overdue = |imp: &OdmClassify| {
                    imp.lock_worker()
                        .as_ref()
                        .and_then(|w| w.arrived.front().copied())
                        .is_some_and(|t| t.elapsed() >= latency)
                };
                if !overdue(imp) {
                    continue;
                }
                let sink = obj.sink_pad().clone();
                let _stream = sink.stream_lock();
                // Checked again under the stream lock: the streaming thread may have pushed it meanwhile.
                while overdue(imp) {
                    let next = imp.lock_worker().as_mut().and_then(|w| w.next(true));
                    let Some((buf, work)) = next else { break };
                    match imp.complete(buf, work) {
                        Ok(buf) => {
                            let _ = obj.src_pad().push(buf);
                        }
                        Err(_) => break,
                    }
                }
            }
        });
        match spawned {
            Ok(handle) => *self.timer.lock().unwrap_or_else(|e| e.into_inner()) = Some((stop, handle)),
            Err(e) => {
                let text = format!("cannot start the max-batch-latency thread: {e}; frames wait for later ones");
                self.post_all(vec![self.warning_message(gst::LibraryError::Failed, &text)]);
            }
        }
    }

    /// Push every frame in flight downstream, in order (before a serialized event passes them).
    fn drain(&self) {
        loop {
            let next = self.lock_worker().as_mut().and_then(|w| w.next(true));
            let Some((buf, work)) = next else { break };
            match self.complete(buf, work) {
                Ok(buf) => {
                    if let Err(e) = self.obj().src_pad().push(buf) {
                        gst::debug!(CAT, imp = self, "downstream refused a drained buffer: {e:?}");
                    }
                }
                Err(_) => break,
            }
        }
    }

    /// The `bundle` property. Stopped, it is only stored. Running, the file is read and checked against the running
    /// network with no lock held, then swapped in between two frames; a bad file is refused with a warning and the
    /// old bundle stays. A reload says on the bus which bundle is live.
    fn set_bundle(&self, new: Option<PathBuf>) {
        let live = self.lock_settings().live.clone();
        let network = self.lock_state().as_ref().map(|st| st.network.clone());
        let Some(network) = network else {
            self.lock_settings().bundle = new;
            return;
        };
        let path = new.clone().unwrap_or_else(|| sibling_bundle_path(&network.path));
        let prepared = Self::prepare_reload(&network, &path, &live);
        let message = {
            let mut s = self.lock_settings();
            let mut guard = self.lock_state();
            match (prepared, guard.as_mut()) {
                (Ok((mut scoring, classes)), Some(state)) if Arc::ptr_eq(&state.network, &network) => {
                    // The thresholds in force now (one may have been set while the file was read).
                    match scoring
                        .scorer
                        .set_overrides(threshold(s.live.novelty_threshold), threshold(s.live.anomaly_threshold))
                    {
                        Ok(()) => {
                            let text = format!(
                                "bundle {} ({}, {classes} classes) is live in place of {}",
                                path.display(),
                                scoring.name,
                                state.scoring.path.display()
                            );
                            state.scoring = scoring;
                            s.bundle = new;
                            gst::info!(CAT, imp = self, "{text}");
                            Some(
                                gst::message::Info::builder(gst::ResourceError::Settings, &text)
                                    .src(&*self.obj())
                                    .build(),
                            )
                        }
                        Err(e) => Some(self.warning_message(
                            gst::ResourceError::Settings,
                            &format!(
                                "bundle {} refused, {} stays: the threshold overrides in force do not fit it: {e}",
                                path.display(),
                                state.scoring.path.display()
                            ),
                        )),
                    }
                }
                (Err(e), Some(state)) => Some(self.warning_message(
                    gst::ResourceError::Settings,
                    &format!("bundle {} refused, {} stays: {e}", path.display(), state.scoring.path.display()),
                )),
                (_, Some(_)) => Some(self.warning_message(
                    gst::ResourceError::Settings,
                    &format!(
                        "bundle {} was not loaded: the element restarted while the file was read; set it again",
                        path.display()
                    ),
                )),
                // Stopped while the file was read: stored, and checked at the next start.
                (_, None) => {
                    s.bundle = new;
                    None
                }
            }
        };
        self.post_all(message.into_iter().collect());
    }

    /// `novelty-threshold` or `anomaly-threshold`: applied to the scorer between two frames, or refused with a warning
    /// and the old values kept.
    fn set_threshold(&self, name: &str, v: f64) {
        let refused = {
            let mut s = self.lock_settings();
            let (n, a) =
                if name == "novelty-threshold" { (v, s.live.anomaly_threshold) } else { (s.live.novelty_threshold, v) };
            let refused = match self.lock_state().as_mut() {
                Some(state) => state.scoring.scorer.set_overrides(threshold(n), threshold(a)).err(),
                None => None,
            };
            if refused.is_none() {
                s.live.novelty_threshold = n;
                s.live.anomaly_threshold = a;
            }
            refused
        };
        if let Some(e) = refused {
            let m = self.warning_message(gst::LibraryError::Settings, &format!("{name} = {v} refused: {e}"));
            self.post_all(vec![m]);
        }
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
                    .blurb(
                        "Path of the model bundle (NAME.odm.json); default: beside the model. Set while PLAYING, the \
                         new centres, labels and thresholds go live between two frames (same network; a bad file is \
                         refused with a warning and the old bundle stays)",
                    )
                    .mutable_playing()
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
                glib::ParamSpecEnum::builder_with_default("execution-provider", ExecutionProvider::Cpu)
                    .nick("Execution provider")
                    .blurb("Where ONNX Runtime runs the network (cuda and tensorrt need a GPU build of ONNX Runtime)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("device-id")
                    .nick("Device id")
                    .blurb("GPU index for the cuda and tensorrt providers")
                    .minimum(0)
                    .maximum(1024)
                    .default_value(0)
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
                glib::ParamSpecBoolean::builder("fallback")
                    .nick("Fallback")
                    .blurb("When the execution provider cannot start, run on the CPU with a warning (else fail)")
                    .default_value(true)
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
                glib::ParamSpecUInt::builder("reclassify-interval")
                    .nick("Reclassify interval")
                    .blurb(
                        "Classify a tracked ROI (same ROI id: a tracker's object id) at most every this many frames, \
                         reusing its last result in between (marked reused=true); 0 or 1: every frame",
                    )
                    .default_value(0)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("vote-window")
                    .nick("Vote window")
                    .blurb(
                        "Report a tracked ROI's verdict and label as the majority of its last this many results \
                         (ties: the most recent), with this frame's own result beside it as raw-label, raw-verdict, \
                         raw-distance; 0 or 1: off",
                    )
                    .default_value(0)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "Since the last start: frames, rois, known/novelty/anomaly/skipped counts, inference runs, \
                         mean and p99 latency of inference runs and of whole frames (microseconds, p99 over the last \
                         1024), execution provider in use",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let name = pspec.name();
        if !crate::props::settable(&*self.obj(), pspec) {
            return;
        }
        let path =
            |v: &glib::Value| v.get::<Option<String>>().ok().flatten().filter(|s| !s.is_empty()).map(PathBuf::from);
        match name {
            "bundle" => return self.set_bundle(path(value)),
            "novelty-threshold" | "anomaly-threshold" => {
                return self.set_threshold(name, value.get().expect("type checked upstream"))
            }
            _ => {}
        }
        let mut s = self.lock_settings();
        match name {
            "model" => s.model = path(value),
            "ort-library" => s.ort_library = path(value),
            "model-instance-id" => {
                s.model_instance_id = value.get::<Option<String>>().ok().flatten().unwrap_or_default()
            }
            "mode" => s.mode = value.get().expect("type checked upstream"),
            "roi-type" => s.live.roi_type = Arc::from(value.get::<Option<String>>().ok().flatten().unwrap_or_default()),
            "batch-size" => s.batch_size = value.get().expect("type checked upstream"),
            "frames-in-flight" => s.frames_in_flight = value.get().expect("type checked upstream"),
            "max-batch-latency" => s.max_batch_latency = value.get().expect("type checked upstream"),
            "execution-provider" => s.provider = value.get().expect("type checked upstream"),
            "device-id" => s.device_id = value.get().expect("type checked upstream"),
            "fallback" => s.fallback = value.get().expect("type checked upstream"),
            "tensorrt-cache" => s.trt_cache = path(value),
            "tensorrt-fp16" => s.trt_fp16 = value.get().expect("type checked upstream"),
            "threads" => s.threads = value.get().expect("type checked upstream"),
            "min-size" => s.live.min_size = value.get().expect("type checked upstream"),
            "max-size" => s.live.max_size = value.get().expect("type checked upstream"),
            "emit-messages" => s.live.emit_messages = value.get().expect("type checked upstream"),
            "stats-interval" => s.live.stats_interval = value.get().expect("type checked upstream"),
            "reclassify-interval" => s.live.reclassify_interval = value.get().expect("type checked upstream"),
            "vote-window" => s.live.vote_window = value.get().expect("type checked upstream"),
            _ => unreachable!("unknown property {name}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.lock_stats().structure().to_value();
        }
        let s = self.lock_settings();
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).to_value();
        match pspec.name() {
            "model" => path(&s.model),
            "bundle" => path(&s.bundle),
            "ort-library" => path(&s.ort_library),
            "model-instance-id" => s.model_instance_id.to_value(),
            "mode" => s.mode.to_value(),
            "roi-type" => s.live.roi_type.to_value(),
            "batch-size" => s.batch_size.to_value(),
            "frames-in-flight" => s.frames_in_flight.to_value(),
            "max-batch-latency" => s.max_batch_latency.to_value(),
            "execution-provider" => s.provider.to_value(),
            "device-id" => s.device_id.to_value(),
            "fallback" => s.fallback.to_value(),
            "tensorrt-cache" => path(&s.trt_cache),
            "tensorrt-fp16" => s.trt_fp16.to_value(),
            "threads" => s.threads.to_value(),
            "min-size" => s.live.min_size.to_value(),
            "max-size" => s.live.max_size.to_value(),
            "novelty-threshold" => s.live.novelty_threshold.to_value(),
            "anomaly-threshold" => s.live.anomaly_threshold.to_value(),
            "emit-messages" => s.live.emit_messages.to_value(),
            "stats-interval" => s.live.stats_interval.to_value(),
            "reclassify-interval" => s.live.reclassify_interval.to_value(),
            "vote-window" => s.live.vote_window.to_value(),
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
            let caps = crate::video::formats_caps();
            crate::video::filter_templates(&caps)
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
        let mut posts = Vec::new();
        let state = self.load(&settings, &mut posts);
        self.post_all(posts);
        let state = state?;
        *self.lock_stats() = Stats {
            provider: state.engine.lock().provider().to_string(),
            instance: Some(Arc::downgrade(&state.engine)),
            ..Stats::default()
        };
        *self.lock_state() = Some(state);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // The timer, then the worker (it ends once its current run is done); buffers still waiting are dropped with
        // the stream.
        if let Some((stop, handle)) = self.timer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = handle.join();
        }
        *self.lock_worker() = None;
        *self.lock_state() = None;
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if self.lock_worker().is_some() {
            match event.view() {
                // Buffers in flight belong to the flushed stream: dropped.
                gst::EventView::FlushStop(_) => {
                    if let Some(w) = self.lock_worker().as_mut() {
                        while let Some((_, work)) = w.next(true) {
                            w.spare.push(work);
                        }
                        w.queue.clear();
                    }
                }
                gst::EventView::FlushStart(_) => {}
                // Any other serialized event (caps, segment, EOS, ...) goes after the buffers that came before it.
                _ if event.is_serialized() => self.drain(),
                _ => {}
            }
        }
        self.parent_sink_event(event)
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        let ok = BaseTransformImplExt::parent_query(self, direction, query);
        let in_flight = self.lock_settings().frames_in_flight as u64;
        if let (true, gst::PadDirection::Src, gst::QueryViewMut::Latency(q)) = (ok, direction, query.view_mut()) {
            if in_flight > 0 {
                // Up to `frames-in-flight` frames wait for their results: that many frame durations of latency.
                let fps = self.lock_state().as_ref().and_then(|s| s.info.as_ref().map(|i| i.fps()));
                if let Some(fps) = fps.filter(|f| f.numer() > 0 && f.denom() > 0) {
                    let frame = gst::ClockTime::SECOND.mul_div_floor(fps.denom() as u64, fps.numer() as u64);
                    let add = frame.map(|f| f * in_flight).unwrap_or(gst::ClockTime::ZERO);
                    let (live, min, max) = q.result();
                    q.set(live, min + add, max.map(|m| m + add));
                }
            }
        }
        ok
    }

    fn submit_input_buffer(&self, is_discont: bool, inbuf: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (mode, batch, live, in_flight, max_latency) = {
            let s = self.lock_settings();
            (s.mode, s.batch_size.max(1) as usize, s.live.clone(), s.frames_in_flight, s.max_batch_latency)
        };
        if in_flight == 0 {
            return self.parent_submit_input_buffer(is_discont, inbuf);
        }
        // Crop on the streaming thread; the worker embeds while the next frame is cropped.
        let mut buf = inbuf;
        let spare = self.lock_worker().as_mut().and_then(|w| w.spare.pop()).unwrap_or_default();
        let mut posts = Vec::new();
        let prepared = match self.lock_state().as_mut() {
            Some(state) => {
                let mut work = spare;
                self.prepare(state, &mut work, mode, &live, buf.make_mut(), &mut posts)
                    .map(|()| (work, state.engine.clone()))
            }
            None => {
                posts.push(self.error_message(gst::CoreError::Negotiation, "a buffer came before the element started"));
                Err(gst::FlowError::NotNegotiated)
            }
        };
        self.post_all(posts);
        let (work, engine) = prepared?;
        let mut guard = self.lock_worker();
        if guard.is_none() {
            match Worker::spawn(engine, batch) {
                Ok(w) => {
                    *guard = Some(w);
                    if max_latency > 0 {
                        self.start_timer(std::time::Duration::from_millis(max_latency as u64));
                    }
                }
                Err(e) => {
                    drop(guard);
                    let text = format!("cannot start the inference thread: {e}");
                    self.post_all(vec![self.error_message(gst::LibraryError::Failed, &text)]);
                    return Err(gst::FlowError::Error);
                }
            }
        }
        let sent = guard.as_mut().map(|w| w.send(buf, work));
        if !matches!(sent, Some(Ok(()))) {
            drop(guard);
            self.post_all(vec![self.error_message(gst::LibraryError::Failed, "the inference thread stopped")]);
            return Err(gst::FlowError::Error);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        let in_flight = self.lock_settings().frames_in_flight as usize;
        if in_flight == 0 {
            return self.parent_generate_output();
        }
        // Wait only when more than `frames-in-flight` frames are waiting; else hand on the oldest if it is ready.
        let ready = self.lock_worker().as_mut().and_then(|w| {
            let block = w.queue.len() > in_flight;
            w.next(block)
        });
        match ready {
            Some((buf, work)) => self.complete(buf, work).map(GenerateOutputSuccess::Buffer),
            None => Ok(GenerateOutputSuccess::NoOutput),
        }
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = crate::video::info_from_caps(*CAT, incaps)?;
        if pixel_format(info.format()).is_none() {
            return Err(gst::loggable_error!(CAT, "unsupported format {}", info.format().to_str()));
        }
        gst::debug!(CAT, imp = self, "caps {}x{} {}", info.width(), info.height(), info.format().to_str());
        match self.lock_state().as_mut() {
            Some(state) => {
                state.info = Some(info);
                Ok(())
            }
            None => Err(gst::loggable_error!(CAT, "caps before start")),
        }
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        // Only without frames in flight (submit_input_buffer and generate_output take the buffers otherwise).
        // Settings before state, never the other way round (set_property takes them in this order too).
        let (mode, batch, live) = {
            let s = self.lock_settings();
            (s.mode, s.batch_size.max(1) as usize, s.live.clone())
        };
        // Messages are posted once the state lock is released: a sync bus handler runs in this thread, and may set
        // properties that take the locks (a threshold on `odm-drift`, a bundle on a warning).
        let mut posts = Vec::new();
        let result = match self.lock_state().as_mut() {
            Some(state) => self.classify(state, mode, batch, &live, buf, &mut posts),
            None => {
                posts.push(self.error_message(gst::CoreError::Negotiation, "a buffer came before the element started"));
                Err(gst::FlowError::NotNegotiated)
            }
        };
        self.post_all(posts);
        result.map(|()| gst::FlowSuccess::Ok)
    }
}
