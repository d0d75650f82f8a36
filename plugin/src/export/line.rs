// SPDX-License-Identifier: MIT OR Apache-2.0
//! One frame's results as a JSON object: odmexport's line, and the body of odmpublish's messages (which adds its
//! sequence number and the stream's name around the same fields). docs/results.schema.json describes it.

use odm_core::Category;

use crate::meta::{Outcome, RoiEntry};

/// One ROI of a frame as exported.
#[derive(Debug, serde::Serialize)]
pub struct RoiLine<'a> {
    pub id: i32,
    #[serde(rename = "type")]
    pub roi_type: &'a str,
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    /// The detector's score (odmdetect); absent for ROIs from elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    pub class_id: Option<i32>,
    pub label: Option<&'a str>,
    pub distance: Option<f64>,
    /// In [0, 1], 0.5 at the class's novelty threshold or the crop's reference bound, whichever is lower
    /// (`odm_core::score::confidence`): at least 0.5 exactly when the scorer said `known` (with `vote-window`: when
    /// `raw_verdict` is `known`).
    pub confidence: Option<f64>,
    /// known, novelty, anomaly, skipped, or null when no classifier saw this ROI.
    pub verdict: Option<&'a str>,
    /// regulatory, warning, information or complementary: the class's for known, the nearest class's for novelty;
    /// null for anomaly, for a class without one, and when the ROI was not classified.
    pub category: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<&'a str>,
    /// The thresholds in force for the class (bundle, per class, or the element's overrides).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub novelty_threshold: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomaly_threshold: Option<f64>,
    /// With the bundle's reference rule in force: the ratio times the crop's distance to the nearest category
    /// reference; `known` needs the distance within both it and the novelty threshold. Absent without the rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_bound: Option<f64>,
    /// Reused from an earlier frame (`reclassify-interval`); absent when computed on this frame.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reused: bool,
    /// With `vote-window`: this frame's own label, distance and verdict beside the voted ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_class_id: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_distance: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_verdict: Option<&'a str>,
    /// With `vote-window`: this frame's own category (null when it has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_category: Option<Option<&'static str>>,
    /// With odmclassify `attach-embedding=true`: the crop's embedding (the network's output), computed on this
    /// frame; absent on reused and skipped results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<&'a [f32]>,
}

/// One frame as exported.
#[derive(Debug, serde::Serialize)]
pub struct FrameLine<'a> {
    /// The buffer's number in the order the element received it: a count, which runs on across a seek.
    pub frame: u64,
    pub pts: Option<u64>,
    /// The buffer's position in the stream (its PTS as stream time, what a seek aims at): odmroireplay matches an
    /// export by it, so that replaying an export is exact, also when the export was made across a seek.
    pub stream_time: Option<u64>,
    pub rois: Vec<RoiLine<'a>>,
}

impl RoiLine<'_> {
    /// The line of one ROI of a buffer, joined with its result (`meta::results_by_roi`).
    pub fn new(e: &RoiEntry) -> RoiLine<'_> {
        let result = e.result.as_ref();
        let raw = result.and_then(|r| r.raw.as_ref());
        let (class_id, label, distance, category, reason) = match result.map(|r| &r.outcome) {
            Some(Outcome::Classified { class_id, label, distance, category, .. }) => {
                (Some(*class_id), Some(&**label), Some(*distance), category.map(Category::as_str), None)
            }
            Some(Outcome::Skipped { reason }) => (None, None, None, None, Some(reason.as_str())),
            None => (None, None, None, None, None),
        };
        let (confidence, reference_bound) = match result.map(|r| &r.outcome) {
            Some(Outcome::Classified { confidence, reference_bound, .. }) => (Some(*confidence), *reference_bound),
            _ => (None, None),
        };
        RoiLine {
            id: e.id,
            roi_type: &e.roi_type,
            x: e.rect.0,
            y: e.rect.1,
            w: e.rect.2,
            h: e.rect.3,
            score: e.score,
            class_id,
            label,
            distance,
            confidence,
            verdict: result.map(|r| r.verdict_str()),
            category,
            reason,
            model: result.map(|r| &*r.model),
            novelty_threshold: result.map(|r| r.novelty_threshold),
            anomaly_threshold: result.map(|r| r.anomaly_threshold),
            reference_bound,
            reused: result.is_some_and(|r| r.reused),
            raw_class_id: raw.map(|r| r.class_id),
            raw_label: raw.map(|r| &*r.label),
            raw_distance: raw.map(|r| r.distance),
            raw_verdict: raw.map(|r| r.verdict.as_str()),
            raw_category: raw.map(|r| r.category.map(Category::as_str)),
            embedding: result.and_then(|r| r.embedding.as_deref()),
        }
    }
}

impl<'a> FrameLine<'a> {
    /// The line of a buffer: `entries` are its ROIs with their results, `frame` its number, `segment` the time
    /// segment in force (for `stream_time`).
    pub fn new(
        buffer: &gst::BufferRef,
        entries: &'a [RoiEntry],
        frame: u64,
        segment: &gst::FormattedSegment<gst::ClockTime>,
    ) -> FrameLine<'a> {
        FrameLine {
            frame,
            pts: buffer.pts().map(|t| t.nseconds()),
            stream_time: buffer.pts().and_then(|t| segment.to_stream_time(t)).map(|t| t.nseconds()),
            rois: entries.iter().map(RoiLine::new).collect(),
        }
    }
}
