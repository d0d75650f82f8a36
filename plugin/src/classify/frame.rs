// SPDX-License-Identifier: MIT OR Apache-2.0
//! One frame's work between cropping and results: its ROIs, the crops to embed, and what became of each. The
//! element fills it (crops into the engine's job), the engine runs the job (on the streaming thread, or on the
//! instance's batching service), and the element scores it and writes the results.

use std::sync::Arc;
use std::time::Instant;

use odm_core::score::ScoreResult;
use odm_core::{PreprocessError, Scorer, Verdict};

use super::scoring::Scoring;
use super::track::Link;
use crate::engine::batch;

/// Why an ROI was not classified (turned into the result's `reason` text only when results are written).
#[derive(Debug)]
pub(super) enum Skip {
    Outside(PreprocessError),
    Small(u32, u32, u32),
    Large(u32, u32, u32),
    Preprocess(PreprocessError),
    Invalid,
    Inference(Arc<str>),
    /// To reuse the result of the object's classification this many frames earlier, which gave none (it failed while
    /// this frame was in flight behind it).
    Unresolved(u64),
    /// Not cropped yet (never left in a written result).
    Pending,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::Outside(e) => write!(f, "outside the frame: {e}"),
            Skip::Small(w, h, min) => write!(f, "smaller than min-size {min}: {w}x{h}"),
            Skip::Large(w, h, max) => write!(f, "larger than max-size {max}: {w}x{h}"),
            Skip::Preprocess(e) => write!(f, "{e}"),
            Skip::Invalid => f.write_str("invalid model output"),
            Skip::Inference(e) => write!(f, "inference failed: {e}"),
            Skip::Unresolved(1) => {
                f.write_str("no result to reuse: the object's classification a frame earlier failed")
            }
            Skip::Unresolved(n) => {
                write!(f, "no result to reuse: the object's classification {n} frames earlier failed")
            }
            Skip::Pending => f.write_str("not classified"),
        }
    }
}

/// One ROI of a frame and what became of it.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) id: i32,
    pub(super) rect: (u32, u32, u32, u32),
    pub(super) outcome: Result<ScoreResult, Skip>,
    /// The outcome is an earlier frame's (`reclassify-interval`), taken through `link` when the frame is finished.
    pub(super) reused: bool,
    /// This frame's own result when `outcome` is a vote (`vote-window`).
    pub(super) raw: Option<ScoreResult>,
    /// Followed by id: the id came once in the frame (duplicated ids share no memory).
    pub(super) tracked: bool,
    /// A tracked job's tie to its object's memory: where its result is recorded, or where a reused one is taken from.
    pub(super) link: Option<Link>,
}

impl Job {
    /// Slot of the verdict counters: known, novelty, anomaly, skipped.
    pub(super) fn verdict_slot(&self) -> usize {
        match &self.outcome {
            Ok(r) => match r.verdict {
                Verdict::Known => 0,
                Verdict::Novelty => 1,
                Verdict::Anomaly => 2,
            },
            Err(_) => 3,
        }
    }
}

/// A frame's work. Reused from frame to frame, so steady-state frames allocate none of it.
#[derive(Default)]
pub(super) struct FrameWork {
    pub(super) jobs: Vec<Job>,
    /// For each crop (row of `crops`), the index of its job.
    pub(super) rows: Vec<usize>,
    /// The crops as the engine's job: `[rows, 3, H, W]` in, `[rows, D]` embeddings out, the time of each run and
    /// the first failure.
    pub(super) crops: batch::Job<Vec<f32>>,
    /// Crops whose embedding was not finite (NaN or infinite network output).
    pub(super) invalid: usize,
    /// Whether jobs are followed by id (`reclassify-interval`, `vote-window`), and the `vote-window` in force when
    /// the frame was prepared.
    pub(super) tracking: bool,
    pub(super) window: u32,
    /// The bundle the frame was cropped for: it scores the frame, even if another was reloaded meanwhile.
    pub(super) scoring: Option<Arc<Scoring>>,
    pub(super) started: Option<Instant>,
}

impl FrameWork {
    /// Empty it for a new frame.
    pub(super) fn clear(&mut self) {
        self.jobs.clear();
        self.rows.clear();
        self.crops.clear();
        self.crops.output.clear();
        self.invalid = 0;
        self.tracking = false;
        self.window = 0;
        self.scoring = None;
        self.started = Some(Instant::now());
    }

    /// The crop slot of the next row, grown to fit; [`FrameWork::push_row`] adds it for job `job` once written.
    pub(super) fn next_row(&mut self, sample: usize) -> &mut [f32] {
        self.crops.next_row(sample)
    }

    pub(super) fn push_row(&mut self, job: usize) {
        self.rows.push(job);
        self.crops.push_row();
    }

    /// The embedding of job `job` computed on this frame (`attach-embedding`): none when the job had no crop, when
    /// inference failed or when the network's output was not finite (the result is then skipped as invalid).
    pub(super) fn embedding_of(&self, job: usize, dim: usize) -> Option<Vec<f32>> {
        if self.crops.error.is_some() || self.jobs.get(job)?.outcome.is_err() {
            return None;
        }
        // Rows are pushed in job order (prepare walks the jobs in order), so they are sorted.
        let row = self.rows.binary_search(&job).ok()?;
        let e = self.crops.output.get(row * dim..(row + 1) * dim)?;
        e.iter().all(|v| v.is_finite()).then(|| e.to_vec())
    }

    /// Score the embeddings into the jobs' outcomes (or mark them failed when inference failed).
    pub(super) fn score(&mut self, scorer: &Scorer, dim: usize) {
        if let Some(e) = &self.crops.error {
            let reason: Arc<str> = Arc::from(e.to_string());
            for &j in &self.rows {
                self.jobs[j].outcome = Err(Skip::Inference(reason.clone()));
            }
            return;
        }
        for (row, &j) in self.rows.iter().enumerate() {
            let e = self.crops.output.get(row * dim..(row + 1) * dim);
            self.jobs[j].outcome = e.and_then(|e| scorer.score(e)).ok_or(Skip::Invalid);
            self.invalid += self.jobs[j].outcome.is_err() as usize;
        }
    }
}
