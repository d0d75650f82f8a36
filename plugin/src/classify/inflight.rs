// SPDX-License-Identifier: MIT OR Apache-2.0
//! Frames in flight (`frames-in-flight`): the streaming thread crops a frame and hands its crops to the instance's
//! batching service; the frame's buffer waits here, in order, while the next frames are cropped, and goes downstream
//! once its crops are back and its results written. With `max-batch-latency`, a timer thread pushes the frames that
//! waited that long for later ones.
//!
//! Locking, and why the timer thread may push buffers:
//! - The locks: the sink pad's stream lock (S); this queue's lock (Q); the line's returns (R, where jobs come back
//!   from the service); the element's settings, state and stats (P, taken in that order, see parts.rs).
//! - Whoever takes frames off the queue holds S: the streaming thread (`submit_input_buffer`, `generate_output` and
//!   serialized events run under it) and the timer thread, which takes S before anything else. So no one else pops
//!   between waiting for the oldest frame and popping it.
//! - Under S, Q, R and P are taken one after another, never one inside another except R under Q for a look that
//!   does not wait (`try_recv`), P's own order, and the timer's handle under Q when the timer starts; the wait for
//!   the service holds R alone; no buffer or event is pushed and no message posted with Q, R or P held.
//! - So the timer thread pushes holding S and no other lock. S is what the streaming thread itself holds when it
//!   pushes (a pad's data flow is serialized by its stream lock): downstream sees one pusher at a time, in order, and
//!   the streaming thread waits for S as it would wait behind its own push. A push that blocks downstream (a full
//!   queue, a sink prerolling) is released by a flush, whose flush-start takes no stream lock, or by a state change,
//!   which sets the pads flushing before it takes S; property setters and getters take P only, and `stop` runs once
//!   the sink pad is flushing (no chain call comes) and holds only the timer's handle while it joins the timer. No
//!   thread waits for S while holding Q, R or P: no deadlock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_transform::GenerateOutputSuccess;

use super::frame::FrameWork;
use super::halves::{finish, prepare};
use super::messages::{self, Obj};
use super::parts::Parts;
use super::settings::Live;
use super::state::INFER_THREAD;
use super::Mode;
use crate::engine::batch::{next_in_order, InOrder, Line};
use crate::engine::embedding::Instance;

/// A frame waiting for its crops: its buffer, the rest of its work, and when it came.
type Waiting = (gst::Buffer, FrameWork, Instant);

/// The frames waiting on the line to the batching service, and works of finished frames to reuse.
struct Queue {
    order: InOrder<Instance, Waiting>,
    spare: Vec<FrameWork>,
}

impl Queue {
    /// Hand a frame's crops to the service; its buffer and the rest of its work wait here.
    fn send(&mut self, buffer: gst::Buffer, mut work: FrameWork) -> Result<(), ()> {
        let crops = std::mem::take(&mut work.crops);
        self.order.send(crops, (buffer, work, Instant::now())).map_err(|_| ())
    }
}

/// The queue (none until the first frame), behind Q.
#[derive(Default)]
struct Frames(Mutex<Option<Queue>>);

impl Frames {
    fn lock(&self) -> MutexGuard<'_, Option<Queue>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the oldest frame waited `latency` or more.
    fn overdue(&self, latency: Duration) -> bool {
        self.lock().as_ref().and_then(|q| q.order.front()).is_some_and(|w| w.2.elapsed() >= latency)
    }

    /// The oldest frame, once its crops are back: waiting for them (`block`) or only if they are. The wait holds R
    /// alone (a flush-start, a stop or the latency timer's check never wait for an inference run behind it). Call
    /// with S held.
    fn next_ready(&self, block: bool) -> Option<(gst::Buffer, FrameWork)> {
        next_in_order(|| self.lock(), |q| q.as_mut().map(|q| &mut q.order), block).map(|((b, mut work, _), crops)| {
            work.crops = crops;
            (b, work)
        })
    }

    /// A frame's second half: results on its buffer, its work back to the spares.
    fn complete(
        &self,
        obj: &Obj,
        parts: &Parts,
        mut buf: gst::Buffer,
        mut work: FrameWork,
    ) -> Result<gst::Buffer, gst::FlowError> {
        let live = parts.settings().live.clone();
        let mut posts = Vec::new();
        let r = match parts.state().as_mut() {
            Some(state) => finish(obj, &parts.stats, state, &mut work, &live, buf.make_mut(), &mut posts),
            None => Err(gst::FlowError::Flushing),
        };
        messages::post_all(obj, posts);
        if let Some(q) = self.lock().as_mut() {
            q.spare.push(work);
        }
        r.map(|()| buf)
    }
}

/// The latency timer's thread, and how to stop it.
struct Timer {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

/// An element's frames in flight and their latency timer.
#[derive(Default)]
pub(super) struct InFlight {
    frames: Arc<Frames>,
    timer: Mutex<Option<Timer>>,
}

impl InFlight {
    /// A frame in: cropped on the streaming thread, its crops handed to the service (the line opened, and the timer
    /// started, on the first frame). At most `in_flight` earlier frames are waiting: `generate` pushed the others
    /// after the last frame came in, and the memory's decisions (halves.rs, `prepare`) rest on that bound.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn submit(
        &self,
        obj: &Obj,
        parts: &Arc<Parts>,
        mode: Mode,
        batch: usize,
        live: &Live,
        in_flight: usize,
        max_latency: Option<Duration>,
        inbuf: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut buf = inbuf;
        let spare = {
            let mut guard = self.frames.lock();
            debug_assert!(
                guard.as_ref().is_none_or(|q| q.order.len() <= in_flight),
                "more frames waiting than frames-in-flight"
            );
            guard.as_mut().and_then(|q| q.spare.pop()).unwrap_or_default()
        };
        let mut posts = Vec::new();
        let prepared = match parts.state().as_mut() {
            Some(state) => {
                let mut work = spare;
                prepare(obj, state, &mut work, mode, live, in_flight as u64, buf.make_mut(), &mut posts)
                    .map(|()| (work, state.engine.clone()))
            }
            None => {
                posts.push(messages::error(
                    obj,
                    gst::CoreError::Negotiation,
                    "a buffer came before the element started",
                ));
                Err(gst::FlowError::NotNegotiated)
            }
        };
        messages::post_all(obj, posts);
        let (work, engine) = prepared?;
        let mut guard = self.frames.lock();
        let mut posts = Vec::new();
        if guard.is_none() {
            match Line::open(&engine, batch, INFER_THREAD) {
                Ok(line) => {
                    let q = Queue { order: InOrder::new(line), spare: Vec::new() };
                    *guard = Some(q);
                    if let Some(latency) = max_latency {
                        posts.extend(self.start_timer(obj, parts, latency));
                    }
                }
                Err(e) => {
                    drop(guard);
                    let text = format!("cannot start the inference thread: {e}");
                    messages::post_all(obj, vec![messages::error(obj, gst::LibraryError::Failed, &text)]);
                    return Err(gst::FlowError::Error);
                }
            }
        }
        let sent = guard.as_mut().map(|q| q.send(buf, work));
        drop(guard);
        if !matches!(sent, Some(Ok(()))) {
            posts.push(messages::error(obj, gst::LibraryError::Failed, "the inference thread stopped"));
            messages::post_all(obj, posts);
            return Err(gst::FlowError::Error);
        }
        messages::post_all(obj, posts);
        Ok(gst::FlowSuccess::Ok)
    }

    /// A frame out, if one is due: waiting only when more than `in_flight` frames wait, else the oldest if it is ready.
    pub(super) fn generate(
        &self,
        obj: &Obj,
        parts: &Parts,
        in_flight: usize,
    ) -> Result<GenerateOutputSuccess, gst::FlowError> {
        let block = self.frames.lock().as_ref().is_some_and(|q| q.order.len() > in_flight);
        match self.frames.next_ready(block) {
            Some((buf, work)) => self.frames.complete(obj, parts, buf, work).map(GenerateOutputSuccess::Buffer),
            None => Ok(GenerateOutputSuccess::NoOutput),
        }
    }

    /// Before an event passes the frames in flight: after a flush they are dropped (they belong to the flushed
    /// stream); any other serialized event (caps, segment, EOS, ...) goes after the buffers that came before it.
    pub(super) fn event(&self, obj: &Obj, parts: &Parts, event: &gst::Event) {
        if self.frames.lock().is_none() {
            return;
        }
        match event.view() {
            gst::EventView::FlushStop(_) => {
                // The jobs not run yet come back without running; the frames are dropped with the flushed stream.
                if let Some(q) = self.frames.lock().as_ref() {
                    q.order.line().give_up();
                }
                while let Some((_, work)) = self.frames.next_ready(true) {
                    if let Some(q) = self.frames.lock().as_mut() {
                        q.spare.push(work);
                    }
                }
                if let Some(q) = self.frames.lock().as_mut() {
                    q.order.clear();
                    q.order.line().resume();
                }
            }
            gst::EventView::FlushStart(_) => {}
            _ if event.is_serialized() => self.drain(obj, parts),
            _ => {}
        }
    }

    /// Push every frame in flight downstream, in order (a DRAIN query). Call with S held.
    pub(super) fn drain_all(&self, obj: &Obj, parts: &Parts) {
        if self.frames.lock().is_some() {
            self.drain(obj, parts);
        }
    }

    /// Push every frame in flight downstream, in order. A downstream error is posted, as the streaming thread's own
    /// push would end in one.
    fn drain(&self, obj: &Obj, parts: &Parts) {
        while let Some((buf, work)) = self.frames.next_ready(true) {
            let Ok(buf) = self.frames.complete(obj, parts, buf, work) else { break };
            match obj.src_pad().push(buf) {
                Ok(_) | Err(gst::FlowError::Flushing) | Err(gst::FlowError::Eos) => {}
                Err(e) => {
                    let text = format!("downstream refused a frame that was in flight: {e:?}");
                    messages::post_all(obj, vec![messages::error(obj, gst::StreamError::Failed, &text)]);
                    break;
                }
            }
        }
    }

    /// `max-batch-latency`: a thread that, holding the stream lock as the streaming thread would, pushes the frames
    /// that waited longer than `latency` for later ones (see the locking argument above). A warning to post when it
    /// cannot start.
    fn start_timer(&self, obj: &Obj, parts: &Arc<Parts>, latency: Duration) -> Option<gst::Message> {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, element, weak_parts, frames) =
            (stop.clone(), obj.downgrade(), Arc::downgrade(parts), Arc::downgrade(&self.frames));
        let tick = (latency / 4).clamp(Duration::from_millis(1), Duration::from_millis(10));
        let spawned = std::thread::Builder::new().name("odmclassify-latency".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                let (Some(obj), Some(parts), Some(frames)) =
                    (element.upgrade(), weak_parts.upgrade(), frames.upgrade())
                else {
                    break;
                };
                if !frames.overdue(latency) {
                    continue;
                }
                let sink = obj.sink_pad().clone();
                let _stream = sink.stream_lock();
                // Checked again under the stream lock: the streaming thread may have pushed it meanwhile.
                while frames.overdue(latency) {
                    let Some((buf, work)) = frames.next_ready(true) else { break };
                    match frames.complete(&obj, &parts, buf, work) {
                        Ok(buf) => {
                            let _ = obj.src_pad().push(buf);
                        }
                        Err(_) => break,
                    }
                }
            }
        });
        match spawned {
            Ok(handle) => {
                *self.timer.lock().unwrap_or_else(|e| e.into_inner()) = Some(Timer { stop, handle });
                None
            }
            Err(e) => {
                let text = format!("cannot start the max-batch-latency thread: {e}; frames wait for later ones");
                Some(messages::warning(obj, gst::LibraryError::Failed, &text))
            }
        }
    }

    /// At `stop`: the timer, then the line (its jobs not run yet are given up; the service's thread ends once no element uses it); buffers still
    /// waiting are dropped with the stream.
    pub(super) fn stop(&self) {
        if let Some(t) = self.timer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.stop.store(true, Ordering::Relaxed);
            let _ = t.handle.join();
        }
        *self.frames.lock() = None;
    }
}

/// Up to `frames-in-flight` frames wait for their results: that many frame durations of latency, added to a latency
/// query's answer (at the caps' frame rate; none without one).
pub(super) fn add_latency(parts: &Parts, in_flight: u64, q: &mut gst::query::Latency) {
    let fps = parts.state().as_ref().and_then(|s| s.info.as_ref().map(|i| i.fps()));
    crate::video::add_frames_latency(fps, in_flight, q);
}
