// SPDX-License-Identifier: MIT OR Apache-2.0
//! Memory per tracked object, keyed by ROI id (a tracker's object id, such as odmtrack's, or odmroireplay's `id`):
//! `reclassify-interval` reuses a recent result instead of running the network again, and `vote-window` reports the
//! majority of an object's last results, so a distance near a threshold does not flip the verdict every frame.
//!
//! Memory is safe by construction, not by trust in the ids:
//! - a remembered result is used only when the id's box overlaps its last box (IoU at least `min_iou`): an id that
//!   jumps to another object (per-frame ranks, a detector's reused id) starts afresh;
//! - each memory belongs to one bundle generation: a reload clears it (a result keeps the class index of the bundle
//!   that made it), and a result scored under another generation is never recorded;
//! - ids that came duplicated in one frame are not followed at all (the caller leaves them out);
//! - flush, caps changes and reloads clear it; objects unseen for a while are forgotten and the map's storage
//!   shrinks back, so memory stays flat over any number of distinct ids.

use std::collections::{HashMap, VecDeque};

use odm_core::score::ScoreResult;
use odm_core::{Category, Verdict};

/// Largest `vote-window` and `reclassify-interval` (the property maximums).
pub(super) const MAX_WINDOW: u32 = 64;
pub(super) const MAX_INTERVAL: u32 = 1000;

/// A box `(x, y, w, h)`.
pub(super) type Rect = (u32, u32, u32, u32);

/// Intersection over union of two boxes (0 when either is empty).
pub(super) fn iou(a: Rect, b: Rect) -> f64 {
    let span = |p: u32, l: u32| (p as u64, p as u64 + l as u64);
    let ((ax0, ax1), (ay0, ay1)) = (span(a.0, a.2), span(a.1, a.3));
    let ((bx0, bx1), (by0, by1)) = (span(b.0, b.2), span(b.1, b.3));
    let iw = ax1.min(bx1).saturating_sub(ax0.max(bx0)) as f64;
    let ih = ay1.min(by1).saturating_sub(ay0.max(by0)) as f64;
    let inter = iw * ih;
    let union = a.2 as f64 * a.3 as f64 + b.2 as f64 * b.3 as f64 - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// One object's recent results.
#[derive(Debug, Default)]
struct Track {
    last_seen: u64,
    /// Its box when last seen.
    rect: Rect,
    /// Frame of the last real (not reused) result.
    classified_at: u64,
    /// What was last reported for it (after voting).
    reported: Option<ScoreResult>,
    /// The last real results, newest last, at most `vote-window` of them.
    history: VecDeque<ScoreResult>,
}

/// Tracks of one stream, for one bundle generation.
#[derive(Debug, Default)]
pub(super) struct Tracks {
    frame: u64,
    /// The bundle generation the memory belongs to.
    generation: u64,
    map: HashMap<i32, Track>,
}

impl Tracks {
    /// Forget everything (flush, caps change); the frame count goes on.
    pub(super) fn clear(&mut self) {
        self.map.clear();
        self.map.shrink_to(64);
    }

    /// The bundle generation in force: memory made under another one is forgotten.
    pub(super) fn set_generation(&mut self, generation: u64) {
        if generation != self.generation {
            self.generation = generation;
            self.clear();
        }
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// Objects remembered now.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Start a frame: objects unseen for longer than `keep` frames are forgotten, and the storage of a burst of ids
    /// is given back (bounded memory).
    pub(super) fn next_frame(&mut self, keep: u64) {
        self.frame += 1;
        if self.frame.is_multiple_of(64) {
            let frame = self.frame;
            self.map.retain(|_, t| frame.saturating_sub(t.last_seen) <= keep);
            if self.map.capacity() > 4 * self.map.len().max(64) {
                self.map.shrink_to(2 * self.map.len());
            }
        }
    }

    /// Whether `id`'s memory may serve a box `rect` this frame: its last box overlaps it enough. An id whose box
    /// moved elsewhere (another object under the same id) loses its memory here.
    fn follows(&mut self, id: i32, rect: Rect, min_iou: f64) -> Option<&mut Track> {
        let frame = self.frame;
        let overlaps = self.map.get(&id).map(|t| iou(t.rect, rect) >= min_iou)?;
        if !overlaps {
            self.map.remove(&id);
            return None;
        }
        let t = self.map.get_mut(&id)?;
        t.last_seen = frame;
        t.rect = rect;
        Some(t)
    }

    /// The result to reuse for `id` at `rect`: its last reported one, if it was classified within the last
    /// `interval` frames and its box still overlaps.
    pub(super) fn reusable(&mut self, id: i32, rect: Rect, interval: u32, min_iou: f64) -> Option<ScoreResult> {
        let frame = self.frame;
        let t = self.follows(id, rect, min_iou)?;
        (frame.saturating_sub(t.classified_at) < interval as u64).then_some(t.reported?)
    }

    /// Record a new result for `id` at `rect` and return what to report: with `window` > 1, the majority verdict of
    /// its last `window` results (ties go to the most recent), and for `known` the majority class among those
    /// known; the distance is this frame's. An id whose last box does not overlap `rect` starts a new history.
    /// `category` gives the category of a class index and verdict ([`odm_core::Scorer::category`]): a voted result
    /// reports the one of its voted class and verdict.
    pub(super) fn record(
        &mut self,
        id: i32,
        rect: Rect,
        raw: ScoreResult,
        window: u32,
        min_iou: f64,
        category: impl Fn(usize, Verdict) -> Option<Category>,
    ) -> ScoreResult {
        let frame = self.frame;
        if self.follows(id, rect, min_iou).is_none() {
            self.map.insert(id, Track { last_seen: frame, rect, ..Track::default() });
        }
        let t = self.map.entry(id).or_default();
        t.classified_at = frame;
        t.history.push_back(raw);
        while t.history.len() > window.clamp(1, MAX_WINDOW) as usize {
            t.history.pop_front();
        }
        let reported = if window > 1 { vote(&t.history, raw, category) } else { raw };
        t.reported = Some(reported);
        reported
    }
}

/// The majority over `history` (newest last); `raw` is this frame's result, whose distance is reported.
fn vote(
    history: &VecDeque<ScoreResult>,
    raw: ScoreResult,
    category: impl Fn(usize, Verdict) -> Option<Category>,
) -> ScoreResult {
    // Count per key; ties are broken by the most recent occurrence.
    fn majority<K: PartialEq + Copy>(items: impl Iterator<Item = K>) -> Option<K> {
        let mut counts: Vec<(K, usize, usize)> = Vec::new();
        for (i, k) in items.enumerate() {
            match counts.iter_mut().find(|c| c.0 == k) {
                Some(c) => {
                    c.1 += 1;
                    c.2 = i;
                }
                None => counts.push((k, 1, i)),
            }
        }
        counts.into_iter().max_by_key(|c| (c.1, c.2)).map(|c| c.0)
    }
    let verdict = majority(history.iter().map(|r| r.verdict)).unwrap_or(raw.verdict);
    let class = if verdict == Verdict::Known {
        let known = history.iter().filter(|r| r.verdict == Verdict::Known);
        majority(known.map(|r| (r.class_index, r.class_id))).unwrap_or((raw.class_index, raw.class_id))
    } else {
        (raw.class_index, raw.class_id)
    };
    // A voted novelty that this frame also calls a novelty keeps this frame's category (the scorer's nearest design to
    // this crop); otherwise the voted class's.
    let category = if verdict == Verdict::Novelty && raw.verdict == Verdict::Novelty {
        raw.category
    } else {
        category(class.0, verdict)
    };
    ScoreResult { class_index: class.0, class_id: class.1, distance: raw.distance, verdict, category }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Even classes are regulatory, odd ones warning; anomalies have no category (as `Scorer::category`).
    fn cat(class: usize, verdict: Verdict) -> Option<Category> {
        let c = if class.is_multiple_of(2) { Category::Regulatory } else { Category::Warning };
        (verdict != Verdict::Anomaly).then_some(c)
    }

    fn r(class: usize, verdict: Verdict, distance: f32) -> ScoreResult {
        ScoreResult { class_index: class, class_id: class as i32, distance, verdict, category: cat(class, verdict) }
    }

    const BOX: Rect = (10, 10, 20, 20);
    const ELSEWHERE: Rect = (100, 10, 20, 20);
    const IOU: f64 = 0.3;

    #[test]
    fn iou_of_boxes() {
        assert_eq!(iou(BOX, BOX), 1.0);
        assert_eq!(iou(BOX, ELSEWHERE), 0.0);
        assert!((iou((0, 0, 10, 10), (5, 0, 10, 10)) - 50.0 / 150.0).abs() < 1e-12);
        assert_eq!(iou((0, 0, 0, 0), (0, 0, 0, 0)), 0.0, "empty boxes overlap nothing");
        assert!(iou((u32::MAX - 1, 0, u32::MAX, 5), (u32::MAX - 1, 0, 1, 5)) > 0.0, "no overflow at the edge");
    }

    #[test]
    fn votes_take_the_majority_and_break_ties_by_recency() {
        let mut t = Tracks::default();
        t.next_frame(100);
        assert_eq!(t.record(7, BOX, r(1, Verdict::Known, 1.0), 3, IOU, cat).verdict, Verdict::Known);
        t.next_frame(100);
        // One known, one novelty: a tie, which the most recent (novelty) wins, with this frame's distance.
        let v = t.record(7, BOX, r(1, Verdict::Novelty, 2.5), 3, IOU, cat);
        assert_eq!((v.verdict, v.class_index, v.distance), (Verdict::Novelty, 1, 2.5), "1-1 tie: the most recent");
        t.next_frame(100);
        let v = t.record(7, BOX, r(2, Verdict::Known, 1.2), 3, IOU, cat);
        assert_eq!((v.verdict, v.class_index), (Verdict::Known, 2), "2 known of 3; classes 1 and 2 tie: the newest");
        assert_eq!(v.category, Some(Category::Regulatory));
        t.next_frame(100);
        let v = t.record(7, BOX, r(1, Verdict::Known, 1.1), 3, IOU, cat);
        assert_eq!((v.verdict, v.class_index), (Verdict::Known, 1), "window of 3: novelty, known 2, known 1");
        assert_eq!(v.category, Some(Category::Warning), "the voted class's category");
        // Without a window the raw result is reported.
        assert_eq!(t.record(8, BOX, r(3, Verdict::Anomaly, 9.0), 0, IOU, cat), r(3, Verdict::Anomaly, 9.0));
    }

    #[test]
    fn a_voted_result_reports_the_category_of_its_voted_class_and_verdict() {
        let mut t = Tracks::default();
        t.next_frame(100);
        t.record(5, BOX, r(1, Verdict::Novelty, 3.0), 3, IOU, cat);
        t.next_frame(100);
        t.record(5, BOX, r(1, Verdict::Novelty, 3.2), 3, IOU, cat);
        t.next_frame(100);
        // This frame says anomaly (no category), the vote says novelty: the nearest class's category.
        let v = t.record(5, BOX, r(1, Verdict::Anomaly, 9.0), 3, IOU, cat);
        assert_eq!((v.verdict, v.category), (Verdict::Novelty, Some(Category::Warning)));
        t.next_frame(100);
        t.record(5, BOX, r(1, Verdict::Anomaly, 9.5), 3, IOU, cat);
        t.next_frame(100);
        // Two anomalies of three: none, though this frame's novelty has one.
        let v = t.record(5, BOX, r(0, Verdict::Novelty, 3.0), 3, IOU, cat);
        assert_eq!((v.verdict, v.category), (Verdict::Anomaly, None));
    }

    #[test]
    fn results_are_reused_within_the_interval_only() {
        let mut t = Tracks::default();
        t.next_frame(100);
        assert_eq!(t.reusable(1, BOX, 3, IOU), None, "never classified");
        t.record(1, BOX, r(0, Verdict::Known, 0.5), 1, IOU, cat);
        for _ in 0..2 {
            t.next_frame(100);
            assert_eq!(t.reusable(1, BOX, 3, IOU), Some(r(0, Verdict::Known, 0.5)));
        }
        t.next_frame(100);
        assert_eq!(t.reusable(1, BOX, 3, IOU), None, "3 frames on: classify again");
        assert_eq!(t.reusable(2, BOX, 3, IOU), None, "another id");
    }

    #[test]
    fn an_id_whose_box_moved_elsewhere_starts_afresh() {
        let mut t = Tracks::default();
        t.next_frame(100);
        t.record(1, BOX, r(0, Verdict::Known, 0.5), 3, IOU, cat);
        t.next_frame(100);
        assert_eq!(t.reusable(1, ELSEWHERE, 5, IOU), None, "same id, another object: not reused");
        // Its history is gone too: the vote starts from this frame's result alone.
        let v = t.record(1, ELSEWHERE, r(3, Verdict::Anomaly, 9.0), 3, IOU, cat);
        assert_eq!(v.verdict, Verdict::Anomaly);
        t.next_frame(100);
        // A box that moved a little still follows (IoU 0.6 here).
        let moved = (ELSEWHERE.0 + 5, ELSEWHERE.1, ELSEWHERE.2, ELSEWHERE.3);
        assert_eq!(t.reusable(1, moved, 5, IOU), Some(r(3, Verdict::Anomaly, 9.0)));
    }

    #[test]
    fn a_new_generation_forgets_and_clear_forgets() {
        let mut t = Tracks::default();
        t.next_frame(100);
        t.record(1, BOX, r(6, Verdict::Known, 0.5), 3, IOU, cat);
        t.set_generation(0);
        assert_eq!(t.len(), 1, "the same generation keeps its memory");
        t.set_generation(1);
        assert_eq!((t.len(), t.generation()), (0, 1));
        t.record(1, BOX, r(0, Verdict::Known, 0.5), 3, IOU, cat);
        t.clear();
        assert_eq!(t.reusable(1, BOX, 5, IOU), None);
    }

    #[test]
    fn objects_unseen_for_long_are_forgotten() {
        let mut t = Tracks::default();
        t.next_frame(10);
        t.record(1, BOX, r(0, Verdict::Known, 0.5), 1, IOU, cat);
        for _ in 0..200 {
            t.next_frame(10);
        }
        assert!(t.map.is_empty());
    }

    #[test]
    fn memory_stays_flat_over_a_million_distinct_ids() {
        let mut t = Tracks::default();
        let mut most = 0;
        for id in 0..1_000_000i32 {
            if id % 100 == 0 {
                t.next_frame(10);
            }
            t.record(id, BOX, r(0, Verdict::Known, 0.5), 5, IOU, cat);
            most = most.max(t.map.capacity());
        }
        // 100 new ids a frame, kept for at most 10 + 64 frames: a few thousand entries at most, ever.
        assert!(t.len() <= 7_400, "{} remembered", t.len());
        assert!(most <= 32_768, "capacity grew to {most}");
    }
}
