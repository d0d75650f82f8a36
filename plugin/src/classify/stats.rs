// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmclassify's counters: the `stats` property (since the last start) and the `odm-drift` window.

use gst::prelude::*;

/// Verdict slots of the counters: known, novelty, anomaly, skipped.
pub(super) const VERDICTS: [&str; 4] = ["known", "novelty", "anomaly", "skipped"];
/// Recent latencies kept for the p99.
const LATENCY_WINDOW: usize = 1024;
/// Bins of the drift histogram over [0, 2 x anomaly threshold); a last bin holds everything beyond.
pub(super) const DRIFT_BINS: usize = 20;

/// A window of recent latencies in microseconds.
pub(super) struct Window {
    v: Vec<f32>,
    next: usize,
    total: f64,
    count: u64,
}

impl Default for Window {
    fn default() -> Self {
        Window { v: Vec::with_capacity(LATENCY_WINDOW), next: 0, total: 0.0, count: 0 }
    }
}

impl Window {
    pub(super) fn push(&mut self, us: f64) {
        if self.v.len() < LATENCY_WINDOW {
            self.v.push(us as f32);
        } else {
            self.v[self.next] = us as f32;
        }
        self.next = (self.next + 1) % LATENCY_WINDOW;
        self.total += us;
        self.count += 1;
    }

    pub(super) fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total / self.count as f64
        }
    }

    /// The 99th percentile of the window (nearest rank).
    pub(super) fn p99(&self) -> f64 {
        if self.v.is_empty() {
            return 0.0;
        }
        let mut s = self.v.clone();
        s.sort_by(f32::total_cmp);
        s[((s.len() as f64 * 0.99).ceil() as usize).clamp(1, s.len()) - 1] as f64
    }
}

/// Counters of the `stats` property, since the last start.
#[derive(Default)]
pub(super) struct Stats {
    pub(super) frames: u64,
    pub(super) rois: u64,
    pub(super) verdicts: [u64; 4],
    pub(super) inference: Window,
    pub(super) frame: Window,
    pub(super) provider: String,
    /// Results reused from an earlier frame (`reclassify-interval`).
    pub(super) reused: u64,
    /// ROIs that were to reuse a classification still in flight, which then gave no result (skipped, also counted
    /// there).
    pub(super) reuse_failed: u64,
    /// Frames whose crops shared an inference run with another element's (a shared `model-instance-id`).
    pub(super) shared_runs: u64,
    /// Objects remembered by id now (`reclassify-interval`, `vote-window`).
    pub(super) tracked: u64,
    /// The session in use, to count the elements sharing it.
    pub(super) instance: Option<std::sync::Weak<crate::engine::embedding::Instance>>,
}

/// Verdict rates and distances over the current `stats-interval`.
#[derive(Default)]
pub(super) struct Drift {
    pub(super) frames: u32,
    pub(super) verdicts: [u64; 4],
    pub(super) hist: [u64; DRIFT_BINS + 1],
    pub(super) distance_sum: f64,
    pub(super) classified: u64,
}

impl Stats {
    /// The `stats` property's structure.
    pub(super) fn structure(&self) -> gst::Structure {
        let mut b = gst::Structure::builder("odm-stats")
            .field("frames", self.frames)
            .field("rois", self.rois)
            .field("execution-provider", self.provider.as_str());
        let instance = self.instance.as_ref().and_then(|w| w.upgrade());
        b = b
            .field("model-instance-id", instance.as_ref().map_or("", |i| i.id.as_str()))
            // Elements holding the session now (this one included); 0 when stopped.
            .field("instance-users", instance.as_ref().map_or(0, |i| std::sync::Arc::strong_count(i) - 1) as u32);
        for (i, v) in VERDICTS.iter().enumerate() {
            b = b.field(*v, self.verdicts[i]);
        }
        b.field("reused", self.reused)
            .field("reuse-failed", self.reuse_failed)
            .field("shared-runs", self.shared_runs)
            .field("tracked-objects", self.tracked)
            .field("inference-runs", self.inference.count)
            .field("inference-mean-us", self.inference.mean())
            .field("inference-p99-us", self.inference.p99())
            .field("frame-mean-us", self.frame.mean())
            .field("frame-p99-us", self.frame.p99())
            .build()
    }
}

impl Drift {
    /// Count one ROI: its verdict slot and, when classified, its distance (histogram over [0, `span`)).
    pub(super) fn add(&mut self, slot: usize, distance: Option<f64>, span: f64) {
        self.verdicts[slot] += 1;
        if let Some(d) = distance {
            self.distance_sum += d;
            self.classified += 1;
            self.hist[((d / span * DRIFT_BINS as f64) as usize).min(DRIFT_BINS)] += 1;
        }
    }

    /// The `odm-drift` structure of the window, which is emptied.
    pub(super) fn take_structure(&mut self, pts: i64, model: &str, span: f64) -> gst::Structure {
        let d = std::mem::take(self);
        let rois: u64 = d.verdicts.iter().sum();
        let rate = |i: usize| if rois == 0 { 0.0 } else { d.verdicts[i] as f64 / rois as f64 };
        let mut b = gst::Structure::builder("odm-drift")
            .field("frames", d.frames)
            .field("rois", rois)
            .field("pts", pts)
            .field("model", model);
        for (i, v) in VERDICTS.iter().enumerate() {
            b = b.field(format!("{v}-rate"), rate(i));
        }
        b.field("mean-distance", if d.classified == 0 { -1.0 } else { d.distance_sum / d.classified as f64 })
            .field("histogram-max", span)
            .field("histogram", gst::Array::new(d.hist.iter().map(|&c| c.to_send_value())))
            .build()
    }
}

/// The `odm-drift` statistics also travel downstream, in the stream, as a serialized custom event holding the same
/// structure: odmpublish (`drift-topic`) reads them there, whatever bus or bin the application has.
pub(super) fn drift_event(m: &gst::Message) -> Option<gst::Event> {
    let s = m.structure().filter(|s| s.name() == "odm-drift" && m.type_() == gst::MessageType::Element)?;
    Some(gst::event::CustomDownstream::new(s.to_owned()))
}
