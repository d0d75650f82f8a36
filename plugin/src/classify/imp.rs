// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmclassify` implementation: an in-place BaseTransform that only adds metadata.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_transform::GenerateOutputSuccess;
use gst_base::subclass::prelude::*;
use gst_video::VideoRegionOfInterestMeta;

use odm_core::bundle::sibling_bundle_path;
use odm_core::preprocess::{check_roi, crop_to_tensor_with, CropSpec, Roi};

use super::frame::{FrameWork, Job, Skip};
use super::settings::{threshold, Live, Settings};
use super::state::State;
use super::stats::Stats;
use super::worker::Worker;
use super::Mode;
use crate::meta::{self, Outcome, RawResult, RoiResult};
use crate::video::pixel_format;

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("odmclassify", gst::DebugColorFlags::empty(), Some("odm open-set sign classifier"))
});

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
    /// set properties). `odm-drift` also goes downstream as an event (only `finish` makes it: on the streaming thread
    /// or under the stream lock).
    fn post_all(&self, posts: Vec<gst::Message>) {
        for m in posts {
            if let Some(drift) = super::stats::drift_event(&m) {
                let _ = self.obj().src_pad().push_event(drift);
            }
            let _ = self.obj().post_message(m);
        }
    }

    /// Give ROI metas distinct ids where they collide (ROI metas are created with id 0 unless the producer sets
    /// one), so results can be joined back by id after copies. New ids are ones no meta has (never an overflow, even
    /// next to i32::MAX). `ids` is scratch; `duplicated` gets the ids that came more than once and the fresh ids
    /// given in their place: which box is which among them is not known, so none of them is followed by id.
    fn ensure_unique_ids(buffer: &mut gst::BufferRef, ids: &mut Vec<i32>, duplicated: &mut Vec<i32>) {
        ids.clear();
        duplicated.clear();
        ids.extend(buffer.iter_meta::<VideoRegionOfInterestMeta>().map(|m| m.id()));
        ids.sort_unstable();
        for w in ids.windows(2) {
            if w[0] == w[1] && duplicated.last() != Some(&w[0]) {
                duplicated.push(w[0]);
            }
        }
        if duplicated.is_empty() {
            return;
        }
        // Ids no meta has, enough for every duplicate; then `ids` holds the ids seen so far.
        let total = ids.len();
        ids.dedup();
        let mut fresh: Vec<i32> = meta::fresh_ids(ids).take(total - ids.len()).collect();
        duplicated.extend_from_slice(&fresh);
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

    /// One frame on the streaming thread: crop under the state lock, embed with no element lock held (so that no
    /// property setter or getter waits for an inference run), then score and write the results under the lock again.
    fn classify(
        &self,
        mode: Mode,
        batch: usize,
        live: &Live,
        buffer: &mut gst::BufferRef,
        posts: &mut Vec<gst::Message>,
    ) -> Result<(), gst::FlowError> {
        let cropped = match self.lock_state().as_mut() {
            Some(state) => {
                let mut work = std::mem::take(&mut state.work);
                match self.prepare(state, &mut work, mode, live, buffer, posts) {
                    Ok(()) => Ok((work, state.engine.clone(), state.shared.take())),
                    Err(e) => {
                        state.work = work;
                        Err(e)
                    }
                }
            }
            None => {
                posts.push(self.error_message(gst::CoreError::Negotiation, "a buffer came before the element started"));
                Err(gst::FlowError::NotNegotiated)
            }
        };
        let (mut work, engine, mut shared) = cropped?;
        let embedded = match shared.as_mut() {
            // A shared instance's thread batches this frame with the other streams' waiting ones.
            Some(w) => w.round_trip(std::mem::take(&mut work)).map(|back| work = back).is_some(),
            None => {
                work.embed(&engine, batch);
                true
            }
        };
        drop(engine);
        let mut guard = self.lock_state();
        // Stopped meanwhile: the buffer goes with the stream.
        let Some(state) = guard.as_mut() else { return Err(gst::FlowError::Flushing) };
        if state.shared.is_none() {
            state.shared = shared;
        }
        if !embedded {
            posts.push(self.error_message(gst::LibraryError::Failed, "the inference thread stopped"));
            return Err(gst::FlowError::Error);
        }
        let r = self.finish(state, &mut work, live, buffer, posts);
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
        let State { network, scoring, info, ids, new_ids, duplicated, crop_scratch, tracks, .. } = state;
        work.scoring = Some(scoring.clone());
        // Objects are followed by ROI id in roi mode (a frame ROI gets a new id each frame).
        let tracking = mode == Mode::Roi && (live.reclassify_interval > 1 || live.vote_window > 1);
        work.tracking = tracking;
        if tracking {
            // Memory of another bundle is forgotten (a reload may change the classes a result's index names).
            tracks.set_generation(scoring.generation);
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
        Self::ensure_unique_ids(buffer, ids, duplicated);

        let wanted = |t: &str| match mode {
            Mode::Frame => t == meta::FRAME_ROI_TYPE,
            Mode::Roi => live.roi_type.is_empty() || *live.roi_type == *t,
        };
        work.jobs.extend(buffer.iter_meta::<VideoRegionOfInterestMeta>().filter(|m| wanted(m.roi_type())).map(|m| {
            Job {
                id: m.id(),
                rect: m.rect(),
                outcome: Err(Skip::Pending),
                reused: false,
                raw: None,
                tracked: tracking && !duplicated.contains(&m.id()),
            }
        }));
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
            if work.jobs[j].tracked && live.reclassify_interval > 1 {
                let (id, rect) = (work.jobs[j].id, work.jobs[j].rect);
                if let Some(r) = tracks.reusable(id, rect, live.reclassify_interval, live.memory_iou) {
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
        // Scored by the bundle the frame was cropped for (a frame in flight may outlive a reload).
        let scoring = work.scoring.take().unwrap_or_else(|| state.scoring.clone());
        let State { network, drift, tracks, results, invalid_warned, .. } = state;
        work.score(&scoring.scorer, network.dim);
        if let Some(e) = &work.error {
            posts.push(self.warning_message(gst::StreamError::Failed, &e.to_string()));
        }
        if work.invalid > 0 && *invalid_warned != Some(scoring.generation) {
            *invalid_warned = Some(scoring.generation);
            let text = format!(
                "the network {} gave a non-finite embedding (NaN or infinite) for {} of {} crops: they are skipped \
                 as \"invalid model output\" (said once per bundle); check the network, and the input \
                 normalisation of bundle {} (mean, std)",
                network.path.display(),
                work.invalid,
                work.rows.len(),
                scoring.path.display()
            );
            posts.push(self.warning_message(gst::StreamError::Decode, &text));
        }
        // Memory is written only under the bundle it belongs to.
        if work.tracking && tracks.generation() == scoring.generation {
            let category = |k: usize, v: odm_core::Verdict| scoring.scorer.category(k, v);
            for job in work.jobs.iter_mut().filter(|j| !j.reused && j.tracked) {
                if let Ok(raw) = job.outcome {
                    job.outcome = Ok(tracks.record(job.id, job.rect, raw, live.vote_window, live.memory_iou, category));
                    job.raw = (live.vote_window > 1).then_some(raw);
                }
            }
        }
        let jobs = &work.jobs;
        if !jobs.is_empty() {
            let scorer = &scoring.scorer;
            results.clear();
            let label = |k: usize| scoring.labels.get(k).cloned();
            results.extend(jobs.iter().enumerate().map(|(j, job)| {
                let (outcome, k) = match &job.outcome {
                    // A class index always names a class of `scoring` (memory is kept per bundle generation); an
                    // index outside it is refused, never written with another class's label.
                    Ok(r) if label(r.class_index).is_none() => {
                        (Outcome::Skipped { reason: "internal: a result of another bundle".into() }, 0)
                    }
                    Ok(r) => (
                        Outcome::Classified {
                            class_id: r.class_id,
                            label: label(r.class_index).unwrap_or_default(),
                            distance: r.distance as f64,
                            verdict: r.verdict,
                            category: r.category,
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
                        label: label(r.class_index).unwrap_or_default(),
                        distance: r.distance as f64,
                        verdict: r.verdict,
                        category: r.category,
                    }),
                    embedding: (live.attach_embedding && !job.reused)
                        .then(|| work.embedding_of(j, network.dim))
                        .flatten(),
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
            st.tracked = tracks.len() as u64;
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

    /// The oldest frame in flight, once embedded: waiting for it (`block`) or only if it is ready. The wait holds no
    /// lock of the element (a flush-start, a stop or the latency timer's check never wait for an inference run
    /// behind it). Every caller holds the sink pad's stream lock (the streaming thread, events on it, the latency
    /// timer, which takes it first), so no other caller pops between the wait and the pop.
    fn next_ready(&self, block: bool) -> Option<(gst::Buffer, FrameWork)> {
        let rx = {
            let mut guard = self.lock_worker();
            let w = guard.as_mut()?;
            if !block {
                return w.try_next();
            }
            w.receiver()?
        };
        let work = rx.lock().unwrap_or_else(|e| e.into_inner()).recv().ok()?;
        self.lock_worker().as_mut()?.pop_with(work)
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
                    let next = imp.next_ready(true);
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
            let next = self.next_ready(true);
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
        let prepared = network.prepare_reload(&path, &live);
        let message = {
            let mut s = self.lock_settings();
            let mut guard = self.lock_state();
            match (prepared, guard.as_mut()) {
                (Ok((mut scoring, classes)), Some(state)) if Arc::ptr_eq(&state.network, &network) => {
                    // A new generation: per-object memory of the old bundle is forgotten before its next frame.
                    scoring.generation = state.scoring.generation + 1;
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
                            state.scoring = Arc::new(scoring);
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

    /// `novelty-threshold` or `anomaly-threshold`: applied to the scorer between two frames (frames already cropped
    /// keep the thresholds they were cropped under), or refused with a warning and the old values kept. Overrides
    /// that cross a class's other threshold are kept, and said on the bus.
    fn set_threshold(&self, name: &str, v: f64) {
        let (refused, raised) = {
            let mut s = self.lock_settings();
            let (n, a) =
                if name == "novelty-threshold" { (v, s.live.anomaly_threshold) } else { (s.live.novelty_threshold, v) };
            let (refused, raised) = match self.lock_state().as_mut() {
                Some(state) => {
                    let scoring = Arc::make_mut(&mut state.scoring);
                    match scoring.scorer.set_overrides(threshold(n), threshold(a)) {
                        Ok(()) => (None, scoring.scorer.raised_anomaly_bands()),
                        Err(e) => (Some(e), None),
                    }
                }
                None => (None, None),
            };
            if refused.is_none() {
                s.live.novelty_threshold = n;
                s.live.anomaly_threshold = a;
            }
            (refused, raised)
        };
        let mut posts = Vec::new();
        if let Some(e) = refused {
            posts.push(self.warning_message(gst::LibraryError::Settings, &format!("{name} = {v} refused: {e}")));
        }
        if let Some((classes, highest)) = raised {
            posts.push(self.warning_message(
                gst::LibraryError::Settings,
                &raised_text(&format!("{name} = {v}"), classes, highest),
            ));
        }
        self.post_all(posts);
    }
}

/// The warning for threshold overrides that cross: what the user set is kept, and what it means.
pub(super) fn raised_text(what: &str, classes: usize, highest: f64) -> String {
    format!(
        "{what}: for {classes} classes the anomaly threshold in force is below the novelty threshold (up to \
         {highest}), so their anomaly band starts at their novelty threshold and none of their crops is called a \
         novelty; each result's anomaly-threshold field gives the one in force"
    )
}

impl ObjectImpl for OdmClassify {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(super::settings::param_specs);
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
        self.lock_settings().set(name, value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.lock_stats().structure().to_value();
        }
        self.lock_settings().get(pspec.name())
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
        let state = State::load(&settings, &self.obj(), &mut posts);
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
        // Per-object memory belongs to the stream as it was: a flush, a new segment (seek) or a new stream ends it.
        if let gst::EventView::FlushStop(_) | gst::EventView::Segment(_) | gst::EventView::StreamStart(_) = event.view()
        {
            if let Some(state) = self.lock_state().as_mut() {
                state.tracks.clear();
            }
        }
        if self.lock_worker().is_some() {
            match event.view() {
                // Buffers in flight belong to the flushed stream: dropped.
                gst::EventView::FlushStop(_) => {
                    while let Some((_, work)) = self.next_ready(true) {
                        if let Some(w) = self.lock_worker().as_mut() {
                            w.spare.push(work);
                        }
                    }
                    if let Some(w) = self.lock_worker().as_mut() {
                        w.queue.clear();
                        w.arrived.clear();
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
                    // Checked: caps may carry any fraction (1/2147483647 fps is a frame of 68 years).
                    let frame = gst::ClockTime::SECOND.mul_div_floor(fps.denom() as u64, fps.numer() as u64);
                    let add = frame
                        .and_then(|f| f.nseconds().checked_mul(in_flight))
                        .map_or(gst::ClockTime::MAX, gst::ClockTime::from_nseconds);
                    let (live, min, max) = q.result();
                    let min = min.nseconds().saturating_add(add.nseconds()).min(gst::ClockTime::MAX.nseconds());
                    let max =
                        max.map(|m| m.nseconds().saturating_add(add.nseconds()).min(gst::ClockTime::MAX.nseconds()));
                    q.set(live, gst::ClockTime::from_nseconds(min), max.map(gst::ClockTime::from_nseconds));
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
        let block = self.lock_worker().as_ref().is_some_and(|w| w.queue.len() > in_flight);
        let ready = self.next_ready(block);
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
                // Boxes of other caps are not the same objects' boxes: per-object memory ends.
                state.tracks.clear();
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
        let result = self.classify(mode, batch, &live, buf, &mut posts);
        self.post_all(posts);
        result.map(|()| gst::FlowSuccess::Ok)
    }
}
