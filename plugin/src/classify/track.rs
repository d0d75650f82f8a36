// SPDX-License-Identifier: MIT OR Apache-2.0
//! Memory per tracked object, keyed by ROI id (a tracker's object id, or odmroireplay's `id`):
//! `reclassify-interval` reuses a recent result instead of running the network again, and `vote-window` reports the
//! majority of an object's last results, so a distance near a threshold does not flip the verdict every frame.

use std::collections::{HashMap, VecDeque};

use odm_core::score::ScoreResult;
use odm_core::{Category, Verdict};

/// One object's recent results.
#[derive(Debug, Default)]
struct Track {
    last_seen: u64,
    /// Frame of the last real (not reused) result.
    classified_at: u64,
    /// What was last reported for it (after voting).
    reported: Option<ScoreResult>,
    /// The last real results, newest last, at most `vote-window` of them.
    history: VecDeque<ScoreResult>,
}

/// Tracks of one stream; cleared at start.
#[derive(Debug, Default)]
pub(super) struct Tracks {
    frame: u64,
    map: HashMap<i32, Track>,
}

impl Tracks {
    /// Start a frame: objects unseen for longer than `keep` frames are forgotten (bounded memory).
    pub(super) fn next_frame(&mut self, keep: u64) {
        self.frame += 1;
        if self.frame.is_multiple_of(64) {
            let frame = self.frame;
            self.map.retain(|_, t| frame.saturating_sub(t.last_seen) <= keep);
        }
    }

    /// The result to reuse for `id`: its last reported one, if it was classified within the last `interval` frames.
    pub(super) fn reusable(&mut self, id: i32, interval: u32) -> Option<ScoreResult> {
        let frame = self.frame;
        let t = self.map.get_mut(&id)?;
        t.last_seen = frame;
        (frame.saturating_sub(t.classified_at) < interval as u64).then_some(t.reported?)
    }

    /// Record a new result for `id` and return what to report: with `window` > 1, the majority verdict of its last
    /// `window` results (ties go to the most recent), and for `known` the majority class among those known; the
    /// distance is this frame's. `category` gives the category of a class index and verdict
    /// ([`odm_core::Scorer::category`]): a voted result reports the one of its voted class and verdict.
    pub(super) fn record(
        &mut self,
        id: i32,
        raw: ScoreResult,
        window: u32,
        category: impl Fn(usize, Verdict) -> Option<Category>,
    ) -> ScoreResult {
        let frame = self.frame;
        let t = self.map.entry(id).or_default();
        t.last_seen = frame;
        t.classified_at = frame;
        t.history.push_back(raw);
        while t.history.len() > window.max(1) as usize {
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
    let category = category(class.0, verdict);
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

    #[test]
    fn votes_take_the_majority_and_break_ties_by_recency() {
        let mut t = Tracks::default();
        t.next_frame(100);
        assert_eq!(t.record(7, r(1, Verdict::Known, 1.0), 3, cat).verdict, Verdict::Known);
        t.next_frame(100);
        // One novelty among knowns: still known, with this frame's distance.
        let v = t.record(7, r(1, Verdict::Novelty, 2.5), 3, cat);
        assert_eq!((v.verdict, v.class_index, v.distance), (Verdict::Novelty, 1, 2.5), "1-1 tie: the most recent");
        t.next_frame(100);
        let v = t.record(7, r(2, Verdict::Known, 1.2), 3, cat);
        assert_eq!((v.verdict, v.class_index), (Verdict::Known, 2), "2 known of 3; classes 1 and 2 tie: the newest");
        assert_eq!(v.category, Some(Category::Regulatory));
        t.next_frame(100);
        let v = t.record(7, r(1, Verdict::Known, 1.1), 3, cat);
        assert_eq!((v.verdict, v.class_index), (Verdict::Known, 1), "window of 3: novelty, known 2, known 1");
        assert_eq!(v.category, Some(Category::Warning), "the voted class's category");
        // Without a window the raw result is reported.
        assert_eq!(t.record(8, r(3, Verdict::Anomaly, 9.0), 0, cat), r(3, Verdict::Anomaly, 9.0));
    }

    #[test]
    fn a_voted_result_reports_the_category_of_its_voted_class_and_verdict() {
        let mut t = Tracks::default();
        t.next_frame(100);
        t.record(5, r(1, Verdict::Novelty, 3.0), 3, cat);
        t.next_frame(100);
        t.record(5, r(1, Verdict::Novelty, 3.2), 3, cat);
        t.next_frame(100);
        // This frame says anomaly (no category), the vote says novelty: the nearest class's category.
        let v = t.record(5, r(1, Verdict::Anomaly, 9.0), 3, cat);
        assert_eq!((v.verdict, v.category), (Verdict::Novelty, Some(Category::Warning)));
        t.next_frame(100);
        t.record(5, r(1, Verdict::Anomaly, 9.5), 3, cat);
        t.next_frame(100);
        // Two anomalies of three: none, though this frame's novelty has one.
        let v = t.record(5, r(0, Verdict::Novelty, 3.0), 3, cat);
        assert_eq!((v.verdict, v.category), (Verdict::Anomaly, None));
    }

    #[test]
    fn results_are_reused_within_the_interval_only() {
        let mut t = Tracks::default();
        t.next_frame(100);
        assert_eq!(t.reusable(1, 3), None, "never classified");
        t.record(1, r(0, Verdict::Known, 0.5), 1, cat);
        for _ in 0..2 {
            t.next_frame(100);
            assert_eq!(t.reusable(1, 3), Some(r(0, Verdict::Known, 0.5)));
        }
        t.next_frame(100);
        assert_eq!(t.reusable(1, 3), None, "3 frames on: classify again");
        assert_eq!(t.reusable(2, 3), None, "another id");
    }

    #[test]
    fn objects_unseen_for_long_are_forgotten() {
        let mut t = Tracks::default();
        t.next_frame(10);
        t.record(1, r(0, Verdict::Known, 0.5), 1, cat);
        for _ in 0..200 {
            t.next_frame(10);
        }
        assert!(t.map.is_empty());
    }
}
