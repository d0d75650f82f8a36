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
//!
//! And it does not depend on timing. With frames in flight, frame k+1 is prepared before frame k is finished, and
//! which earlier frames are finished by then is up to the machine. So whether an ROI is classified or reuses a result
//! is decided when its frame is prepared, from what earlier preparations decided (when each object was last sent to
//! the network, and its last box), never from results that finishing frames wrote; a reuse carries a [`Link`] that
//! takes the result when its frame is finished, once every earlier frame is (frames finish in order). Votes are
//! recorded in frame order as frames finish. On the synchronous path every earlier frame is finished when a frame is
//! prepared, and the decisions are those of reusing the last result recorded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

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

/// What the frames' second halves wrote for one object, in frame order: its last real results and what was reported.
/// Shared by the object's entry and by the links of the frames prepared for it, so that a frame finished after the
/// entry was dropped (a reload, a new segment, a box that jumped elsewhere) still reaches the results of the frame it
/// follows, and never another object's or another bundle's.
#[derive(Debug)]
struct Memory {
    /// The bundle generation its results were scored under.
    generation: u64,
    /// The frame of the last real result, and what was reported for it (after voting).
    reported: Option<(u64, ScoreResult)>,
    /// The last real results, newest last, at most `vote-window` of them.
    history: VecDeque<ScoreResult>,
}

/// One object as the first halves of frames see it: what they decided, never what later halves wrote.
#[derive(Debug)]
struct Track {
    last_seen: u64,
    /// Its box when last seen.
    rect: Rect,
    /// Frame on which it was last sent to the network (a real classification, whatever its outcome).
    sent_at: Option<u64>,
    memory: Arc<Mutex<Memory>>,
}

/// A frame's tie to one object's memory, made when the frame is prepared and used when it is finished: a real
/// classification records its result through it ([`Link::record`]), a reuse takes the result reported for the frame
/// it follows ([`Link::resolve`]).
#[derive(Debug)]
pub(super) struct Link {
    memory: Arc<Mutex<Memory>>,
    /// The frame it was made on.
    frame: u64,
    /// The frame whose result it records (a real classification: `frame`) or takes (a reuse).
    source: u64,
}

fn lock(memory: &Mutex<Memory>) -> std::sync::MutexGuard<'_, Memory> {
    memory.lock().unwrap_or_else(|e| e.into_inner())
}

impl Link {
    /// Record `raw`, this frame's real result (scored under bundle `generation`), and return what to report: with
    /// `window` > 1, the majority verdict of the object's last `window` results (ties go to the most recent), and for
    /// `known` the majority class among those known; the distance is this frame's. `category` gives the category of
    /// a class index and verdict ([`odm_core::Scorer::category`]): a voted result reports the one of its voted class
    /// and verdict. A result of another generation than the memory's is not recorded (none: report it as it is).
    pub(super) fn record(
        &self,
        generation: u64,
        raw: ScoreResult,
        window: u32,
        category: impl Fn(usize, Verdict) -> Option<Category>,
    ) -> Option<ScoreResult> {
        let mut m = lock(&self.memory);
        if m.generation != generation {
            return None;
        }
        m.history.push_back(raw);
        while m.history.len() > window.clamp(1, MAX_WINDOW) as usize {
            m.history.pop_front();
        }
        let reported = if window > 1 { vote(&m.history, raw, category) } else { raw };
        m.reported = Some((self.frame, reported));
        Some(reported)
    }

    /// For a reuse, once the frames before this one are finished: the result reported for the frame it follows.
    /// `Err(frames)` when that frame gave none (its classification failed), `frames` before this one, or when the
    /// memory is of another generation than `generation` (never, as frames are prepared).
    pub(super) fn resolve(&self, generation: u64) -> Result<ScoreResult, u64> {
        let m = lock(&self.memory);
        match m.reported {
            Some((frame, r)) if frame == self.source && m.generation == generation => Ok(r),
            _ => Err(self.frame.saturating_sub(self.source)),
        }
    }
}

/// Tracks of one stream, for one bundle generation. Every decision is taken when a frame is prepared, from what
/// earlier frames' preparation decided: frames in flight (prepared before the earlier ones are finished) take the
/// same decisions as the synchronous path, whatever the timing.
#[derive(Debug, Default)]
pub(super) struct Tracks {
    frame: u64,
    /// The bundle generation the memory belongs to.
    generation: u64,
    map: HashMap<i32, Track>,
}

impl Tracks {
    /// Forget everything (flush, caps change); the frame count goes on. Frames prepared before keep their links.
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

    /// `id` seen at `rect` this frame: its entry, a new one when it had none or when its last box does not overlap
    /// `rect` enough (another object under the same id starts afresh).
    fn follow(&mut self, id: i32, rect: Rect, min_iou: f64) -> &mut Track {
        let (frame, generation) = (self.frame, self.generation);
        let fresh = || Track {
            last_seen: frame,
            rect,
            sent_at: None,
            memory: Arc::new(Mutex::new(Memory { generation, reported: None, history: VecDeque::new() })),
        };
        let t = self.map.entry(id).and_modify(|t| {
            if iou(t.rect, rect) < min_iou {
                *t = fresh();
            }
        });
        let t = t.or_insert_with(fresh);
        t.last_seen = frame;
        t.rect = rect;
        t
    }

    /// Whether `id` at `rect` reuses a result this frame, and the link to take it through once the frames before
    /// are finished: the object was classified within the last `interval` frames and its box still overlaps. The
    /// classification is the last one sent when it may still be in flight (sent within the last `in_flight` frames:
    /// its result is taken as it comes, and if it gives none this frame gets none either); older ones are finished,
    /// and the last one that gave a result counts. With `in_flight` 0 (the synchronous path, where every earlier
    /// frame is finished) this is the reuse of the last result recorded.
    pub(super) fn reuse(&mut self, id: i32, rect: Rect, interval: u32, min_iou: f64, in_flight: u64) -> Option<Link> {
        let frame = self.frame;
        let t = self.follow(id, rect, min_iou);
        let source = match t.sent_at? {
            sent if sent.saturating_add(in_flight) >= frame => sent,
            // Every frame up to `sent` is finished: what they recorded is settled.
            _ => lock(&t.memory).reported?.0,
        };
        (frame.saturating_sub(source) < interval as u64).then(|| Link { memory: t.memory.clone(), frame, source })
    }

    /// `id` at `rect` is sent to the network this frame: the link its result is recorded through.
    pub(super) fn send(&mut self, id: i32, rect: Rect, min_iou: f64) -> Link {
        let frame = self.frame;
        let t = self.follow(id, rect, min_iou);
        t.sent_at = Some(frame);
        Link { memory: t.memory.clone(), frame, source: frame }
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
    // This frame's distance, reference bound and confidence (every field but the voted ones is this frame's).
    ScoreResult { class_index: class.0, class_id: class.1, verdict, category, ..raw }
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
        // A bound and a confidence of its own per distance, to tell which result a vote reports them from.
        let (reference_bound, confidence) = (Some(distance + 0.5), 0.5 / distance as f64);
        let category = cat(class, verdict);
        ScoreResult {
            class_index: class,
            class_id: class as i32,
            distance,
            verdict,
            category,
            reference_bound,
            confidence,
        }
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

    /// A real classification of `id` on the current frame, finished at once (the synchronous path).
    fn classify(t: &mut Tracks, id: i32, rect: Rect, raw: ScoreResult, window: u32) -> ScoreResult {
        t.send(id, rect, IOU).record(t.generation, raw, window, cat).expect("the memory's generation")
    }

    #[test]
    fn votes_take_the_majority_and_break_ties_by_recency() {
        let mut t = Tracks::default();
        t.next_frame(100);
        assert_eq!(classify(&mut t, 7, BOX, r(1, Verdict::Known, 1.0), 3).verdict, Verdict::Known);
        t.next_frame(100);
        // One known, one novelty: a tie, which the most recent (novelty) wins, with this frame's distance.
        let v = classify(&mut t, 7, BOX, r(1, Verdict::Novelty, 2.5), 3);
        assert_eq!((v.verdict, v.class_index, v.distance), (Verdict::Novelty, 1, 2.5), "1-1 tie: the most recent");
        t.next_frame(100);
        let v = classify(&mut t, 7, BOX, r(2, Verdict::Known, 1.2), 3);
        assert_eq!((v.verdict, v.class_index), (Verdict::Known, 2), "2 known of 3; classes 1 and 2 tie: the newest");
        assert_eq!(v.category, Some(Category::Regulatory));
        t.next_frame(100);
        let v = classify(&mut t, 7, BOX, r(1, Verdict::Known, 1.1), 3);
        assert_eq!((v.verdict, v.class_index), (Verdict::Known, 1), "window of 3: novelty, known 2, known 1");
        assert_eq!(v.category, Some(Category::Warning), "the voted class's category");
        // Without a window the raw result is reported.
        assert_eq!(classify(&mut t, 8, BOX, r(3, Verdict::Anomaly, 9.0), 0), r(3, Verdict::Anomaly, 9.0));
    }

    #[test]
    fn a_voted_result_reports_the_category_of_its_voted_class_and_verdict() {
        let mut t = Tracks::default();
        t.next_frame(100);
        classify(&mut t, 5, BOX, r(1, Verdict::Novelty, 3.0), 3);
        t.next_frame(100);
        classify(&mut t, 5, BOX, r(1, Verdict::Novelty, 3.2), 3);
        t.next_frame(100);
        // This frame says anomaly (no category), the vote says novelty: the nearest class's category; the distance,
        // the bound and the confidence stay this frame's.
        let raw = r(1, Verdict::Anomaly, 9.0);
        let v = classify(&mut t, 5, BOX, raw, 3);
        assert_eq!((v.verdict, v.category), (Verdict::Novelty, Some(Category::Warning)));
        assert_eq!((v.distance, v.reference_bound, v.confidence), (raw.distance, raw.reference_bound, raw.confidence));
        t.next_frame(100);
        classify(&mut t, 5, BOX, r(1, Verdict::Anomaly, 9.5), 3);
        t.next_frame(100);
        // Two anomalies of three: none, though this frame's novelty has one.
        let v = classify(&mut t, 5, BOX, r(0, Verdict::Novelty, 3.0), 3);
        assert_eq!((v.verdict, v.category), (Verdict::Anomaly, None));
    }

    /// The result `id` at `rect` reuses on the current frame, resolved at once (the synchronous path).
    fn reused(t: &mut Tracks, id: i32, rect: Rect, interval: u32) -> Option<ScoreResult> {
        let link = t.reuse(id, rect, interval, IOU, 0)?;
        Some(link.resolve(t.generation).expect("a settled result resolves"))
    }

    #[test]
    fn results_are_reused_within_the_interval_only() {
        let mut t = Tracks::default();
        t.next_frame(100);
        assert_eq!(reused(&mut t, 1, BOX, 3), None, "never classified");
        classify(&mut t, 1, BOX, r(0, Verdict::Known, 0.5), 1);
        for _ in 0..2 {
            t.next_frame(100);
            assert_eq!(reused(&mut t, 1, BOX, 3), Some(r(0, Verdict::Known, 0.5)));
        }
        t.next_frame(100);
        assert_eq!(reused(&mut t, 1, BOX, 3), None, "3 frames on: classify again");
        assert_eq!(reused(&mut t, 2, BOX, 3), None, "another id");
    }

    #[test]
    fn an_id_whose_box_moved_elsewhere_starts_afresh() {
        let mut t = Tracks::default();
        t.next_frame(100);
        classify(&mut t, 1, BOX, r(0, Verdict::Known, 0.5), 3);
        t.next_frame(100);
        assert_eq!(reused(&mut t, 1, ELSEWHERE, 5), None, "same id, another object: not reused");
        // Its history is gone too: the vote starts from this frame's result alone.
        let v = classify(&mut t, 1, ELSEWHERE, r(3, Verdict::Anomaly, 9.0), 3);
        assert_eq!(v.verdict, Verdict::Anomaly);
        t.next_frame(100);
        // A box that moved a little still follows (IoU 0.6 here).
        let moved = (ELSEWHERE.0 + 5, ELSEWHERE.1, ELSEWHERE.2, ELSEWHERE.3);
        assert_eq!(reused(&mut t, 1, moved, 5), Some(r(3, Verdict::Anomaly, 9.0)));
    }

    #[test]
    fn a_failed_classification_is_classified_again_on_the_synchronous_path() {
        // Sent on frame 1, no result (invalid network output): frame 2 classifies again, as nothing was recorded;
        // a result recorded before still serves within the interval.
        let mut t = Tracks::default();
        t.next_frame(100);
        let _ = t.send(1, BOX, IOU);
        t.next_frame(100);
        assert!(t.reuse(1, BOX, 4, IOU, 0).is_none(), "nothing recorded: classify again");
        classify(&mut t, 1, BOX, r(2, Verdict::Known, 0.5), 1);
        t.next_frame(100);
        let _ = t.send(1, BOX, IOU);
        t.next_frame(100);
        assert_eq!(reused(&mut t, 1, BOX, 4), Some(r(2, Verdict::Known, 0.5)), "frame 2's, two frames old");
    }

    #[test]
    fn frames_in_flight_decide_from_what_was_sent_and_resolve_when_finished() {
        // Two frames in flight: frames 1, 2 and 3 are prepared before frame 1 is finished. Frame 1 sends the object,
        // frames 2 and 3 reuse frame 1's result whatever it turns out to be, and take it once it is recorded.
        let mut t = Tracks::default();
        t.next_frame(100);
        let sent = t.send(1, BOX, IOU);
        t.next_frame(100);
        let second = t.reuse(1, BOX, 4, IOU, 2).expect("sent on the frame before: reused");
        t.next_frame(100);
        let third = t.reuse(1, BOX, 4, IOU, 2).expect("sent two frames before: reused");
        assert_eq!(sent.record(0, r(3, Verdict::Novelty, 2.0), 1, cat), Some(r(3, Verdict::Novelty, 2.0)));
        assert_eq!(second.resolve(0), Ok(r(3, Verdict::Novelty, 2.0)));
        assert_eq!(third.resolve(0), Ok(r(3, Verdict::Novelty, 2.0)));

        // Sent again on frame 5 (4 frames on); its classification fails (nothing recorded): frames 6 and 7 reused it
        // before that was known, and get no result, said as how many frames back it was. Frame 8 finds frame 5
        // settled (more than 2 frames back) and without a result: it classifies again.
        t.next_frame(100);
        assert!(t.reuse(1, BOX, 4, IOU, 2).is_some(), "frame 4 reuses frame 1's");
        t.next_frame(100);
        assert!(t.reuse(1, BOX, 4, IOU, 2).is_none(), "frame 5: 4 frames on");
        let _failed = t.send(1, BOX, IOU);
        t.next_frame(100);
        let sixth = t.reuse(1, BOX, 4, IOU, 2).expect("frame 5's, in flight");
        t.next_frame(100);
        let seventh = t.reuse(1, BOX, 4, IOU, 2).expect("frame 5's, in flight");
        assert_eq!((sixth.resolve(0), seventh.resolve(0)), (Err(1), Err(2)));
        t.next_frame(100);
        assert!(t.reuse(1, BOX, 4, IOU, 2).is_none(), "frame 5 gave nothing: classify again");
    }

    #[test]
    fn a_frame_in_flight_keeps_its_link_when_the_memory_is_cleared() {
        // Frame 2 reuses frame 1's result; a reload (new generation) or a flush clears the memory before either is
        // finished. Frame 1 records into the memory it was prepared with, frame 2 takes it from there; frame 3, under
        // the new generation, starts afresh.
        for clear in [Tracks::clear as fn(&mut Tracks), |t: &mut Tracks| t.set_generation(1)] {
            let mut t = Tracks::default();
            t.next_frame(100);
            let sent = t.send(1, BOX, IOU);
            t.next_frame(100);
            let reuse = t.reuse(1, BOX, 4, IOU, 3).unwrap();
            clear(&mut t);
            assert_eq!(t.len(), 0);
            t.next_frame(100);
            assert!(t.reuse(1, BOX, 4, IOU, 3).is_none(), "forgotten");
            assert_eq!(sent.record(0, r(6, Verdict::Known, 0.5), 1, cat), Some(r(6, Verdict::Known, 0.5)));
            assert_eq!(reuse.resolve(0), Ok(r(6, Verdict::Known, 0.5)));
            assert_eq!(sent.record(1, r(6, Verdict::Known, 0.5), 1, cat), None, "another generation's result");
            assert_eq!(reuse.resolve(1), Err(1), "never given to a frame of another generation");
        }
    }

    #[test]
    fn a_new_generation_forgets_and_clear_forgets() {
        let mut t = Tracks::default();
        t.next_frame(100);
        classify(&mut t, 1, BOX, r(6, Verdict::Known, 0.5), 3);
        t.set_generation(0);
        assert_eq!(t.len(), 1, "the same generation keeps its memory");
        t.set_generation(1);
        assert_eq!((t.len(), t.generation), (0, 1));
        classify(&mut t, 1, BOX, r(0, Verdict::Known, 0.5), 3);
        t.clear();
        assert_eq!(reused(&mut t, 1, BOX, 5), None);
    }

    #[test]
    fn objects_unseen_for_long_are_forgotten() {
        let mut t = Tracks::default();
        t.next_frame(10);
        classify(&mut t, 1, BOX, r(0, Verdict::Known, 0.5), 1);
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
            classify(&mut t, id, BOX, r(0, Verdict::Known, 0.5), 5);
            most = most.max(t.map.capacity());
        }
        // 100 new ids a frame, kept for at most 10 + 64 frames: a few thousand entries at most, ever.
        assert!(t.len() <= 7_400, "{} remembered", t.len());
        assert!(most <= 32_768, "capacity grew to {most}");
    }
}
