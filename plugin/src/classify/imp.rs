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

use odm_core::bundle::sibling_bundle_path;

use super::frame::FrameWork;
use super::settings::{threshold, Live, Settings};
use super::state::State;
use super::stats::Stats;
use super::worker::Worker;
use super::Mode;
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

    pub(super) fn lock_stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A bus message for an error, logged too. Built while locks are held, posted after they are released.
    pub(super) fn error_message(&self, domain: impl gst::MessageErrorDomain, text: &str) -> gst::Message {
        gst::error!(CAT, imp = self, "{text}");
        gst::message::Error::builder(domain, text).src(&*self.obj()).build()
    }

    /// A bus message for a warning, logged too.
    pub(super) fn warning_message(&self, domain: impl gst::MessageErrorDomain, text: &str) -> gst::Message {
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
        let (mut work, engine, shared) = cropped?;
        let embedded = match shared.as_ref() {
            // A shared instance's service batches this frame with the other streams' waiting ones.
            Some(line) => line.round_trip(std::mem::take(&mut work.crops)).map(|back| work.crops = back).is_some(),
            None => {
                crate::engine::batch::run(&*engine, &mut work.crops, batch);
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
        let crops = rx.lock().unwrap_or_else(|e| e.into_inner()).recv().ok()?;
        self.lock_worker().as_mut()?.pop_with(crops)
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
