// SPDX-License-Identifier: MIT OR Apache-2.0
//! The inference thread: with `frames-in-flight`, it embeds frames' crops while the streaming thread crops the next
//! frames; on a shared `model-instance-id`, one thread serves every element on the instance. Each element's frames
//! come back in the order they went; frames waiting together (of one stream, or of several on a shared instance)
//! whose crops fit one batch are embedded in one inference run.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::frame::FrameWork;
use crate::engine::embedding::Instance;

/// A frame's work, where to send it back, and which element's line it came on.
struct Request {
    work: FrameWork,
    reply: mpsc::Sender<FrameWork>,
    line: u64,
}

/// Numbers the elements' lines to batchers, so a run knows whether it mixed streams.
static LINES: AtomicU64 = AtomicU64::new(0);

/// The thread that runs a session's inference: one per element, or one per `model-instance-id` shared by every
/// element on it, so crops of several streams go into one run. Requests are served in arrival order.
pub(crate) struct Batcher {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Batcher {
    /// The batcher of `instance`: the one its first element started (kept in the instance, so every element on a
    /// shared `model-instance-id` finds the same thread), or a new one.
    pub(super) fn of(instance: &Arc<Instance>, batch: usize) -> std::io::Result<Arc<Batcher>> {
        let mut slot = instance.batcher.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = slot.upgrade() {
            return Ok(b);
        }
        let b = Arc::new(Batcher::spawn(instance, batch)?);
        *slot = Arc::downgrade(&b);
        Ok(b)
    }

    fn spawn(instance: &Arc<Instance>, batch: usize) -> std::io::Result<Batcher> {
        // The thread does not keep the instance alive (its users are the elements holding it).
        let instance = Arc::downgrade(instance);
        let (tx, rx) = mpsc::channel::<Request>();
        let handle = std::thread::Builder::new().name("odmclassify-infer".into()).spawn(move || {
            let (mut input, mut output) = (Vec::new(), Vec::new());
            let mut group: Vec<Request> = Vec::new();
            let flush = |group: &mut Vec<Request>, input: &mut Vec<f32>, output: &mut Vec<f32>| {
                // Elements send requests while they hold the instance, so it is alive here.
                if let Some(instance) = instance.upgrade() {
                    embed_group(&instance, batch, group, input, output);
                }
                for r in group.drain(..) {
                    // An element that went away no longer waits for its frame.
                    let _ = r.reply.send(r.work);
                }
            };
            while let Ok(first) = rx.recv() {
                let mut rows = first.work.rows.len();
                group.push(first);
                // Frames already waiting (of this stream or, shared, of others) join this run while they fit.
                while rows < batch {
                    match rx.try_recv() {
                        Ok(r) if rows + r.work.rows.len() <= batch => {
                            rows += r.work.rows.len();
                            group.push(r);
                        }
                        Ok(r) => {
                            flush(&mut group, &mut input, &mut output);
                            rows = r.work.rows.len();
                            group.push(r);
                        }
                        Err(_) => break,
                    }
                }
                flush(&mut group, &mut input, &mut output);
            }
        })?;
        Ok(Batcher { tx: Mutex::new(Some(tx)), handle: Mutex::new(Some(handle)) })
    }

    fn send(&self, r: Request) -> bool {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|tx| tx.send(r).is_ok())
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        // Closing the channel ends the thread once its current run is done.
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }
}

/// One element's line to its batcher: frames go out and come back, in order, on its own channel.
pub(super) struct Worker {
    batcher: Arc<Batcher>,
    line: u64,
    reply: mpsc::Sender<FrameWork>,
    /// Frames back from the batcher, in the order they went. Behind its own lock, so that waiting for one never holds
    /// the element's lock on the worker.
    rx: Arc<Mutex<mpsc::Receiver<FrameWork>>>,
    /// Buffers waiting for their frame's embeddings, oldest first (`frames-in-flight`), and when each came.
    pub(super) queue: VecDeque<gst::Buffer>,
    pub(super) arrived: VecDeque<Instant>,
    /// Works back from finished frames, to reuse.
    pub(super) spare: Vec<FrameWork>,
}

impl Worker {
    pub(super) fn spawn(instance: Arc<Instance>, batch: usize) -> std::io::Result<Worker> {
        let batcher = Batcher::of(&instance, batch)?;
        let (reply, rx) = mpsc::channel();
        let line = LINES.fetch_add(1, Ordering::Relaxed);
        let rx = Arc::new(Mutex::new(rx));
        Ok(Worker { batcher, line, reply, rx, queue: VecDeque::new(), arrived: VecDeque::new(), spare: Vec::new() })
    }

    /// Hand a frame to the batcher; its buffer waits in the queue.
    pub(super) fn send(&mut self, buffer: gst::Buffer, work: FrameWork) -> Result<(), gst::Buffer> {
        if !self.batcher.send(Request { work, reply: self.reply.clone(), line: self.line }) {
            return Err(buffer);
        }
        self.queue.push_back(buffer);
        self.arrived.push_back(Instant::now());
        Ok(())
    }

    /// Embed one frame and wait for it: the synchronous path on a shared instance, so that the crops of the other
    /// streams on it share the run. `None` if the batcher is gone.
    pub(super) fn round_trip(&mut self, work: FrameWork) -> Option<FrameWork> {
        if !self.batcher.send(Request { work, reply: self.reply.clone(), line: self.line }) {
            return None;
        }
        self.rx.lock().unwrap_or_else(|e| e.into_inner()).recv().ok()
    }

    /// The oldest frame if it is embedded already. `None` when nothing is in flight or it is not ready.
    pub(super) fn try_next(&mut self) -> Option<(gst::Buffer, FrameWork)> {
        if self.queue.is_empty() {
            return None;
        }
        let work = self.rx.lock().unwrap_or_else(|e| e.into_inner()).try_recv().ok()?;
        self.pop_with(work)
    }

    /// Where the oldest frame comes back, to wait on with no lock on the worker held; `None` when nothing is in
    /// flight. Then [`Worker::pop_with`] pairs what came back with its buffer.
    pub(super) fn receiver(&self) -> Option<Arc<Mutex<mpsc::Receiver<FrameWork>>>> {
        (!self.queue.is_empty()).then(|| self.rx.clone())
    }

    /// The oldest buffer, with its frame's work that came back.
    pub(super) fn pop_with(&mut self, work: FrameWork) -> Option<(gst::Buffer, FrameWork)> {
        self.arrived.pop_front();
        self.queue.pop_front().map(|b| (b, work))
    }
}

/// Embed a group of frames: one frame as it is; several in one run over their crops copied together.
fn embed_group(instance: &Instance, batch: usize, group: &mut [Request], input: &mut Vec<f32>, output: &mut Vec<f32>) {
    if let [one] = group {
        one.work.embed(instance, batch);
        return;
    }
    let mut engine = instance.lock();
    let (sample, dim) = (engine.sample_len(), engine.dim());
    input.clear();
    for r in group.iter() {
        input.extend_from_slice(&r.work.input[..r.work.rows.len() * sample]);
    }
    let n = input.len() / sample;
    if n == 0 {
        return;
    }
    output.clear();
    let t0 = Instant::now();
    let run = engine.embed(input, n, output);
    let took = t0.elapsed();
    drop(engine);
    // Crops of more than one element in this run: each frame of it says so (counted as `shared-runs`).
    let first_line = group[0].line;
    let mixed = group.iter().any(|r| r.line != first_line && !r.work.rows.is_empty());
    let mut at = 0;
    for (i, r) in group.iter_mut().enumerate() {
        let w = &mut r.work;
        let k = w.rows.len();
        w.embeddings.clear();
        w.shared_run = mixed && k > 0;
        match &run {
            Ok(()) => w.embeddings.extend_from_slice(&output[at * dim..(at + k) * dim]),
            // The same failure for every frame of the run (EngineError is not Clone: its text travels).
            Err(crate::engine::EngineError::Run(m)) => w.error = Some(crate::engine::EngineError::Run(m.clone())),
            Err(e) => w.error = Some(crate::engine::EngineError::Run(e.to_string())),
        }
        // The run is counted once, with the first frame of the group.
        if i == 0 {
            w.runs.push(took);
        }
        at += k;
    }
}
