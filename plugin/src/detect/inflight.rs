// SPDX-License-Identifier: MIT OR Apache-2.0
//! Frames in flight (`frames-in-flight`): the streaming thread letterboxes a frame into a job for the detector
//! instance's batching service (`engine/batch.rs`) and goes on with the next frame while the service runs it; the
//! buffer waits here, in order, with where its views landed, and goes downstream with its ROI metas once its outputs
//! are back. At most `frames-in-flight` frames wait. Serialized events (caps, segment, EOS, ...) go after the frames
//! that came before them; a flush drops the frames waiting.
//!
//! Locking: frames leave the queue only on the streaming thread (the chain function and serialized events, both
//! under the sink pad's stream lock); there is no timer thread. The queue's lock is never held while waiting for
//! the service, pushing a buffer or posting a message: the wait for a job holds only the line's returns.

use std::sync::{Arc, Mutex, MutexGuard};

use super::letterbox::Placement;
use crate::engine::batch::{next_in_order, InOrder, Job, Line};
use crate::engine::detector::{DetectInstance, Output};

/// The name of the batching service's thread.
const THREAD: &str = "odmdetect-infer";

/// A frame's job for the service: its views as rows, the detector's outputs back.
pub(super) type DetectJob = Job<Vec<Output>>;

/// A frame waiting for its outputs: its buffer and where its views landed in the network input.
pub(super) struct Waiting {
    pub(super) buffer: gst::Buffer,
    pub(super) placements: Vec<Placement>,
}

/// The frames in flight (none until the first frame opens the line to the service), and jobs and placement lists to
/// reuse (once the first `frames-in-flight` frames have come back, a frame's job and placements need no new memory).
#[derive(Default)]
pub(super) struct InFlight {
    queue: Mutex<Option<InOrder<DetectInstance, Waiting>>>,
    spare: Mutex<Vec<(DetectJob, Vec<Placement>)>>,
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, Option<InOrder<DetectInstance, Waiting>>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An empty job to fill with a frame's views and an empty list for where they land (ones that came back before,
    /// with their room, when there are).
    pub(super) fn job(&self) -> (DetectJob, Vec<Placement>) {
        let (mut job, mut placements) = self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
        job.clear();
        placements.clear();
        (job, placements)
    }

    /// A job whose outputs were read and its placement list, to reuse.
    pub(super) fn give_back(&self, job: DetectJob, placements: Vec<Placement>) {
        self.spare.lock().unwrap_or_else(|e| e.into_inner()).push((job, placements));
    }

    /// Hand a frame's job to the service of `instance` (the line opened, with `batch` rows per run at most, on the
    /// first frame); its buffer waits here. A sentence for the bus when the service cannot take it.
    pub(super) fn send(
        &self,
        instance: &Arc<DetectInstance>,
        batch: usize,
        job: DetectJob,
        waiting: Waiting,
    ) -> Result<(), String> {
        let mut guard = self.lock();
        let queue = match guard.as_mut() {
            Some(q) => q,
            None => {
                let line = Line::open(instance, batch, THREAD)
                    .map_err(|e| format!("cannot start the inference thread: {e}"))?;
                guard.insert(InOrder::new(line))
            }
        };
        queue.send(job, waiting).map_err(|_| "the inference thread stopped".to_owned())
    }

    /// Frames waiting.
    pub(super) fn len(&self) -> usize {
        self.lock().as_ref().map_or(0, InOrder::len)
    }

    /// The oldest frame and its job, once back: waiting for it (`block`) or only if it is back already. `None` when
    /// no frame waits (or the service is gone).
    pub(super) fn next(&self, block: bool) -> Option<(Waiting, DetectJob)> {
        next_in_order(|| self.lock(), |q| q.as_mut(), block)
    }

    /// After a flush: the jobs sent come back (in order) and their frames are dropped with the flushed stream.
    pub(super) fn flush(&self) {
        // Jobs not run yet come back without running.
        if let Some(q) = self.lock().as_ref() {
            q.line().give_up();
        }
        while let Some((waiting, job)) = self.next(true) {
            self.give_back(job, waiting.placements);
        }
        if let Some(q) = self.lock().as_mut() {
            // Frames whose jobs did not come back (a service that ended) go too.
            q.clear();
            q.line().resume();
        }
    }

    /// At `stop`: the line closes (its jobs not run yet are given up; the service's thread ends once no element uses
    /// it); frames still waiting are dropped with the stream, and the spare jobs' memory is freed.
    pub(super) fn stop(&self) {
        *self.lock() = None;
        self.spare.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
