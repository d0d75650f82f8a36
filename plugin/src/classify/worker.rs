// SPDX-License-Identifier: MIT OR Apache-2.0
//! The inference worker of `frames-in-flight`: a thread that embeds frames' crops while the streaming thread crops the
//! next frames. Frames go in and come back in the same order; when several are waiting and their crops fit one
//! batch, they are embedded in one inference run (a batch across frames).

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use super::frame::FrameWork;
use crate::engine::pool::Instance;

pub(super) struct Worker {
    tx: Option<mpsc::Sender<FrameWork>>,
    rx: mpsc::Receiver<FrameWork>,
    handle: Option<JoinHandle<()>>,
    /// Buffers waiting for their frame's embeddings, oldest first.
    pub(super) queue: VecDeque<gst::Buffer>,
    /// Works back from finished frames, to reuse.
    pub(super) spare: Vec<FrameWork>,
}

impl Worker {
    pub(super) fn spawn(instance: Arc<Instance>, batch: usize) -> std::io::Result<Worker> {
        let (tx, work_rx) = mpsc::channel::<FrameWork>();
        let (done_tx, rx) = mpsc::channel::<FrameWork>();
        let handle = std::thread::Builder::new().name("odmclassify-infer".into()).spawn(move || {
            let (mut input, mut output) = (Vec::new(), Vec::new());
            let mut group: Vec<FrameWork> = Vec::new();
            while let Ok(first) = work_rx.recv() {
                let mut rows = first.rows.len();
                group.push(first);
                // Frames already waiting join this run while their crops fit one batch.
                while rows < batch {
                    match work_rx.try_recv() {
                        Ok(w) if rows + w.rows.len() <= batch => {
                            rows += w.rows.len();
                            group.push(w);
                        }
                        Ok(w) => {
                            embed_group(&instance, batch, &mut group, &mut input, &mut output);
                            for g in group.drain(..) {
                                if done_tx.send(g).is_err() {
                                    return;
                                }
                            }
                            rows = w.rows.len();
                            group.push(w);
                        }
                        Err(_) => break,
                    }
                }
                embed_group(&instance, batch, &mut group, &mut input, &mut output);
                for g in group.drain(..) {
                    if done_tx.send(g).is_err() {
                        return;
                    }
                }
            }
        })?;
        Ok(Worker { tx: Some(tx), rx, handle: Some(handle), queue: VecDeque::new(), spare: Vec::new() })
    }

    /// Hand a frame to the worker; its buffer waits in the queue.
    pub(super) fn send(&mut self, buffer: gst::Buffer, work: FrameWork) -> Result<(), gst::Buffer> {
        let sent = match self.tx.as_ref() {
            Some(tx) => tx.send(work).is_ok(),
            None => false,
        };
        if !sent {
            return Err(buffer);
        }
        self.queue.push_back(buffer);
        Ok(())
    }

    /// The oldest frame, once embedded: waiting for it (`block`) or only if it is ready. `None` when nothing is in
    /// flight, it is not ready, or the worker is gone.
    pub(super) fn next(&mut self, block: bool) -> Option<(gst::Buffer, FrameWork)> {
        if self.queue.is_empty() {
            return None;
        }
        let work = if block { self.rx.recv().ok()? } else { self.rx.try_recv().ok()? };
        self.queue.pop_front().map(|b| (b, work))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the channel ends the thread once its current run is done.
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Embed a group of frames: one frame as it is; several in one run over their crops copied together.
fn embed_group(
    instance: &Instance,
    batch: usize,
    group: &mut [FrameWork],
    input: &mut Vec<f32>,
    output: &mut Vec<f32>,
) {
    if group.len() == 1 {
        group[0].embed(instance, batch);
        return;
    }
    let mut engine = instance.lock();
    let (sample, dim) = (engine.sample_len(), engine.dim());
    input.clear();
    for w in group.iter() {
        input.extend_from_slice(&w.input[..w.rows.len() * sample]);
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
    let mut at = 0;
    for (i, w) in group.iter_mut().enumerate() {
        let k = w.rows.len();
        w.embeddings.clear();
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
