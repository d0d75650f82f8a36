// SPDX-License-Identifier: MIT OR Apache-2.0
//! One element's frames in flight (`frames-in-flight`): its line to the instance's batching service (engine/batch.rs),
//! which embeds frames' crops while the streaming thread crops the next frames, and the buffers waiting for them.
//! Each frame's crops go to the service; its buffer and the rest of its work wait here, in order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::frame::FrameWork;
use crate::engine::batch::{Job, Line, Returns};
use crate::engine::embedding::Instance;

/// The name of the batching service's thread when odmclassify starts it.
pub(super) const INFER_THREAD: &str = "odmclassify-infer";

/// One element's line to its instance's service, and the frames waiting on it.
pub(super) struct Worker {
    line: Line<Instance>,
    /// Buffers waiting for their frame's embeddings, each with the rest of its frame's work, oldest first
    /// (`frames-in-flight`), and when each came.
    pub(super) queue: VecDeque<(gst::Buffer, FrameWork)>,
    pub(super) arrived: VecDeque<Instant>,
    /// Works back from finished frames, to reuse.
    pub(super) spare: Vec<FrameWork>,
}

impl Worker {
    pub(super) fn spawn(instance: Arc<Instance>, batch: usize) -> std::io::Result<Worker> {
        let line = Line::open(&instance, batch, INFER_THREAD)?;
        Ok(Worker { line, queue: VecDeque::new(), arrived: VecDeque::new(), spare: Vec::new() })
    }

    /// Hand a frame's crops to the service; its buffer waits in the queue.
    pub(super) fn send(&mut self, buffer: gst::Buffer, mut work: FrameWork) -> Result<(), gst::Buffer> {
        let crops = std::mem::take(&mut work.crops);
        if self.line.send(crops).is_err() {
            return Err(buffer);
        }
        self.queue.push_back((buffer, work));
        self.arrived.push_back(Instant::now());
        Ok(())
    }

    /// The oldest frame if it is embedded already. `None` when nothing is in flight or it is not ready.
    pub(super) fn try_next(&mut self) -> Option<(gst::Buffer, FrameWork)> {
        if self.queue.is_empty() {
            return None;
        }
        let crops = self.line.try_recv()?;
        self.pop_with(crops)
    }

    /// Where the oldest frame's crops come back, to wait on with no lock on the worker held; `None` when nothing is
    /// in flight. Then [`Worker::pop_with`] pairs what came back with its buffer.
    pub(super) fn receiver(&self) -> Option<Returns<Instance>> {
        (!self.queue.is_empty()).then(|| self.line.returns())
    }

    /// The oldest buffer, with its frame's work and the crops that came back.
    pub(super) fn pop_with(&mut self, crops: Job<Vec<f32>>) -> Option<(gst::Buffer, FrameWork)> {
        self.arrived.pop_front();
        self.queue.pop_front().map(|(b, mut work)| {
            work.crops = crops;
            (b, work)
        })
    }
}
