// SPDX-License-Identifier: MIT OR Apache-2.0
//! The tracker behind `odmtrack`: SORT-like (Bewley et al., 2016) association of each frame's boxes with the tracks
//! of earlier frames by IoU against a constant-velocity prediction. Pure logic, no GStreamer.
//!
//! Why not a crate: `similari` 0.26 (the SORT/IoU trackers of the Rust ecosystem) depends unconditionally on `pyo3`
//! with `extension-module`, `rayon`, `crossbeam`, `nalgebra`, `geo` and `env_logger`, far more than a GStreamer
//! plugin should link for a few hundred lines of logic, and its tracks live in its own store behind worker threads.
//! `pathfinding`'s Hungarian method (`kuhn_munkres`) wants integer weights on a dense matrix, O(n³) for the hundreds
//! of boxes a proposal detector gives. So this file holds the whole tracker:
//! - motion: an alpha-beta filter per box coordinate (centre x, centre y, width, height), the steady state of the
//!   constant-velocity Kalman filter SORT uses, with the velocity taken from the first two measurements;
//! - association: greedy on IoU, best pairs first, over the sparse set of overlapping (track, box) pairs of the same
//!   ROI type: O(P log P) for P overlapping pairs. It differs from the Hungarian optimum only where boxes of several
//!   tracks overlap each other heavily, which signs along a road rarely do.
//!
//! Ids: a track's id (≥ 0) is published once it has been matched in `min-hits` frames. Before that its
//! boxes carry a provisional id (< 0), unique to that would-be track; a box that cannot be tracked (zero width or
//! height) gets a provisional id of its own. Both counters only go forward: an id is never given twice until its
//! counter has gone through all 2³¹ values of its sign, after which it wraps, skipping ids still in use.

/// Most tracks kept at once; beyond it the tracks lost longest are forgotten first (memory and time stay bounded
/// with hundreds of boxes per frame and a long `max-age`).
pub const MAX_TRACKS: usize = 4096;

/// Weight of a measurement in the filtered position and size (the rest is the prediction).
const ALPHA: f64 = 0.75;
/// Weight of a measurement's residual in the filtered velocity.
const BETA: f64 = 0.3;
/// Smallest predicted width or height, in pixels (a shrinking prediction never turns inside out).
const MIN_SIDE: f64 = 0.5;

/// What the tracker is told each frame (the element's properties).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// A box continues a track when the IoU of the box and the track's predicted box is at least this (and above 0).
    pub iou_threshold: f64,
    /// Frames a track (published or not) is kept without a matching box before it is forgotten.
    pub max_age: u32,
    /// Frames a track must be matched in (not necessarily in a row) before its id is published (1: at once).
    pub min_hits: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params { iou_threshold: 0.3, max_age: 15, min_hits: 3 }
    }
}

/// One box of a frame: its rectangle `(x, y, w, h)` in pixels and its kind (the ROI type). Boxes of different kinds
/// never continue each other's tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    pub rect: (u32, u32, u32, u32),
    pub kind: u32,
}

/// What a box of the frame becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label {
    /// The track id (≥ 0) when `tracked`, else a provisional id (< 0).
    pub id: i32,
    /// The id is a published track id.
    pub tracked: bool,
    /// Frames the track has been matched in, this one included (0 for a box that cannot be tracked).
    pub hits: u32,
}

/// Centre, size.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Shape([f64; 4]);

impl Shape {
    fn of(rect: (u32, u32, u32, u32)) -> Shape {
        let (x, y, w, h) = (rect.0 as f64, rect.1 as f64, rect.2 as f64, rect.3 as f64);
        Shape([x + w / 2.0, y + h / 2.0, w, h])
    }

    fn iou(&self, o: &Shape) -> f64 {
        let [ax, ay, aw, ah] = self.0;
        let [bx, by, bw, bh] = o.0;
        let ix = ((ax + aw / 2.0).min(bx + bw / 2.0) - (ax - aw / 2.0).max(bx - bw / 2.0)).max(0.0);
        let iy = ((ay + ah / 2.0).min(by + bh / 2.0) - (ay - ah / 2.0).max(by - bh / 2.0)).max(0.0);
        let inter = ix * iy;
        let union = aw * ah + bw * bh - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }
}

#[derive(Debug, Clone)]
struct Track {
    kind: u32,
    pos: Shape,
    vel: [f64; 4],
    /// Frames matched so far.
    measured: u32,
    /// Frames since the last measurement.
    since: u32,
    /// The published id, once confirmed.
    id: Option<i32>,
    /// The provisional id (< 0) of a track born unpublished; 0 for one published on its first frame.
    provisional: i32,
}

impl Track {
    fn predict(&mut self) {
        for (p, v) in self.pos.0.iter_mut().zip(self.vel) {
            *p += v;
        }
        self.pos.0[2] = self.pos.0[2].max(MIN_SIDE);
        self.pos.0[3] = self.pos.0[3].max(MIN_SIDE);
        self.since = self.since.saturating_add(1);
    }

    fn update(&mut self, z: Shape) {
        let k = self.since.max(1) as f64;
        for i in 0..4 {
            let r = z.0[i] - self.pos.0[i];
            if self.measured == 1 {
                // The second measurement: the velocity is the step from the first one.
                self.vel[i] = r / k;
                self.pos.0[i] = z.0[i];
            } else {
                self.pos.0[i] += ALPHA * r;
                self.vel[i] += BETA * r / k;
            }
        }
        self.measured = self.measured.saturating_add(1);
        self.since = 0;
    }

    fn label(&self) -> Label {
        Label { id: self.id.unwrap_or(self.provisional), tracked: self.id.is_some(), hits: self.measured }
    }
}

/// The tracks of one stream.
#[derive(Debug, Default)]
pub struct Tracker {
    tracks: Vec<Track>,
    /// Next published id, 0..=i32::MAX.
    next_id: i32,
    /// Next provisional id, -1 down to i32::MIN.
    next_provisional: i32,
    /// A counter has wrapped: new ids must skip the ones in use.
    wrapped: bool,
    /// Scratch, kept so that a steady stream allocates nothing.
    pairs: Vec<(f64, usize, usize)>,
    det_track: Vec<Option<usize>>,
    track_taken: Vec<bool>,
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker { next_provisional: -1, ..Default::default() }
    }

    /// Forget every track (flush, seek, new segment, new frame size). Ids keep counting, so an id given before is
    /// never given again in this stream.
    pub fn reset(&mut self) {
        self.tracks.clear();
    }

    /// Tracks alive, published or not.
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    fn in_use(&self, id: i32) -> bool {
        self.tracks.iter().any(|t| t.id == Some(id) || (id < 0 && t.provisional == id))
    }

    fn new_id(&mut self) -> i32 {
        loop {
            let id = self.next_id;
            self.next_id = id.checked_add(1).unwrap_or_else(|| {
                self.wrapped = true;
                0
            });
            if !self.wrapped || !self.in_use(id) {
                return id;
            }
        }
    }

    fn new_provisional(&mut self) -> i32 {
        loop {
            let id = self.next_provisional;
            self.next_provisional = id.checked_sub(1).unwrap_or_else(|| {
                self.wrapped = true;
                -1
            });
            if !self.wrapped || !self.in_use(id) {
                return id;
            }
        }
    }

    /// Start the id counters at these values (tests of what happens after 2³¹ ids).
    #[cfg(test)]
    fn with_next_ids(next_id: i32, next_provisional: i32) -> Tracker {
        Tracker { next_id: next_id.max(0), next_provisional: next_provisional.min(-1), ..Tracker::new() }
    }

    /// Take one frame's boxes; `out` gets one label per box, in order.
    pub fn update(&mut self, dets: &[Detection], p: &Params, out: &mut Vec<Label>) {
        out.clear();
        for t in &mut self.tracks {
            t.predict();
        }

        // Overlapping pairs of the same kind, best first; ties in track, then box order (deterministic).
        self.pairs.clear();
        let shapes = dets.iter().map(|d| Shape::of(d.rect));
        for (di, (d, s)) in dets.iter().zip(shapes).enumerate() {
            if !trackable(d) {
                continue;
            }
            for (ti, t) in self.tracks.iter().enumerate() {
                if t.kind == d.kind {
                    let iou = t.pos.iou(&s);
                    if iou > 0.0 && iou >= p.iou_threshold {
                        self.pairs.push((iou, ti, di));
                    }
                }
            }
        }
        self.pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        self.det_track.clear();
        self.det_track.resize(dets.len(), None);
        self.track_taken.clear();
        self.track_taken.resize(self.tracks.len(), false);
        for &(_, ti, di) in &self.pairs {
            if !self.track_taken[ti] && self.det_track[di].is_none() {
                self.track_taken[ti] = true;
                self.det_track[di] = Some(ti);
            }
        }

        let min_hits = p.min_hits.max(1);
        for (di, &d) in dets.iter().enumerate() {
            let label = match self.det_track[di] {
                Some(ti) => {
                    self.tracks[ti].update(Shape::of(d.rect));
                    if self.tracks[ti].id.is_none() && self.tracks[ti].measured >= min_hits {
                        let id = self.new_id();
                        self.tracks[ti].id = Some(id);
                    }
                    self.tracks[ti].label()
                }
                None if trackable(&d) => {
                    let (id, provisional) =
                        if min_hits <= 1 { (Some(self.new_id()), 0) } else { (None, self.new_provisional()) };
                    let t = Track {
                        kind: d.kind,
                        pos: Shape::of(d.rect),
                        vel: [0.0; 4],
                        measured: 1,
                        since: 0,
                        id,
                        provisional,
                    };
                    let label = t.label();
                    self.tracks.push(t);
                    label
                }
                None => Label { id: self.new_provisional(), tracked: false, hits: 0 },
            };
            out.push(label);
        }

        // Published or not, a track is forgotten after `max-age` missed frames (SORT's rule; a small far sign that the
        // detector finds every other frame keeps its provisional id until it is published).
        self.tracks.retain(|t| t.since <= p.max_age);
        if self.tracks.len() > MAX_TRACKS {
            self.tracks.sort_by_key(|t| t.since);
            self.tracks.truncate(MAX_TRACKS);
        }
    }
}

/// A box with no area cannot overlap anything: it is labelled, never tracked.
fn trackable(d: &Detection) -> bool {
    d.rect.2 > 0 && d.rect.3 > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: u32, y: u32, w: u32, h: u32) -> Detection {
        Detection { rect: (x, y, w, h), kind: 0 }
    }

    fn run(t: &mut Tracker, p: &Params, dets: &[Detection]) -> Vec<Label> {
        let mut out = Vec::new();
        t.update(dets, p, &mut out);
        out
    }

    #[test]
    fn iou_of_known_boxes() {
        let a = Shape::of((0, 0, 10, 10));
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&Shape::of((10, 0, 10, 10))), 0.0, "touching boxes do not overlap");
        assert!((a.iou(&Shape::of((5, 0, 10, 10))) - 50.0 / 150.0).abs() < 1e-12);
        assert_eq!(Shape::of((0, 0, 0, 0)).iou(&Shape::of((0, 0, 0, 0))), 0.0, "no NaN for empty boxes");
        let far = Shape::of((u32::MAX - 10, u32::MAX - 10, 10, 10));
        assert_eq!(far.iou(&far), 1.0, "boxes at the end of the u32 range");
    }

    #[test]
    fn an_id_is_published_after_min_hits_and_provisional_ids_are_negative_and_distinct() {
        let p = Params { min_hits: 3, ..Params::default() };
        let mut t = Tracker::new();
        let a = run(&mut t, &p, &[det(0, 0, 20, 20), det(100, 0, 20, 20)]);
        assert_eq!(a, [Label { id: -1, tracked: false, hits: 1 }, Label { id: -2, tracked: false, hits: 1 }]);
        let b = run(&mut t, &p, &[det(2, 0, 20, 20), det(102, 0, 20, 20)]);
        assert_eq!(b, [Label { id: -1, tracked: false, hits: 2 }, Label { id: -2, tracked: false, hits: 2 }]);
        let c = run(&mut t, &p, &[det(4, 0, 20, 20), det(104, 0, 20, 20)]);
        assert_eq!(c, [Label { id: 0, tracked: true, hits: 3 }, Label { id: 1, tracked: true, hits: 3 }]);
    }

    #[test]
    fn constant_velocity_carries_a_track_through_frames_without_its_box() {
        // 8 px per frame with a 20 px box, unseen for 4 frames: it comes back 40 px from where it was last seen,
        // with no overlap at all with that box; only the prediction meets it.
        let p = Params { min_hits: 1, max_age: 10, ..Params::default() };
        let mut t = Tracker::new();
        let ids: Vec<i32> = (0..5u32).map(|f| run(&mut t, &p, &[det(f * 8, 50, 20, 20)])[0].id).collect();
        for _ in 0..4 {
            run(&mut t, &p, &[]);
        }
        let back = run(&mut t, &p, &[det(9 * 8, 50, 20, 20)])[0];
        assert!(ids.iter().all(|&i| i == ids[0]), "{ids:?}");
        assert_eq!(back.id, ids[0], "{back:?}");
        // The same without motion: a still track never meets the box that moved away.
        let mut t = Tracker::new();
        let still = run(&mut t, &p, &[det(32, 50, 20, 20)])[0].id;
        for _ in 0..4 {
            run(&mut t, &p, &[]);
        }
        assert_ne!(run(&mut t, &p, &[det(72, 50, 20, 20)])[0].id, still);
    }

    #[test]
    fn a_lost_track_lives_max_age_frames_then_its_box_gets_a_new_id() {
        let p = Params { min_hits: 1, max_age: 2, ..Params::default() };
        let mut t = Tracker::new();
        let id = run(&mut t, &p, &[det(0, 0, 20, 20)])[0].id;
        run(&mut t, &p, &[]);
        run(&mut t, &p, &[]);
        assert_eq!(run(&mut t, &p, &[det(0, 0, 20, 20)])[0].id, id, "missed 2 frames = max-age: kept");
        for _ in 0..3 {
            run(&mut t, &p, &[]);
        }
        assert!(t.is_empty());
        let again = run(&mut t, &p, &[det(0, 0, 20, 20)])[0];
        assert!(again.tracked && again.id > id, "{again:?} after {id}");
    }

    #[test]
    fn a_track_not_yet_published_lives_max_age_frames_too_and_counts_every_hit() {
        let p = Params { min_hits: 3, max_age: 2, ..Params::default() };
        let mut t = Tracker::new();
        let a = run(&mut t, &p, &[det(0, 0, 20, 20)])[0];
        run(&mut t, &p, &[]);
        let b = run(&mut t, &p, &[det(0, 0, 20, 20)])[0];
        assert_eq!((b.id, b.tracked, b.hits), (a.id, false, 2), "a miss keeps the provisional id");
        let c = run(&mut t, &p, &[det(0, 0, 20, 20)])[0];
        assert_eq!((c.id, c.tracked, c.hits), (0, true, 3), "the third hit publishes it");
        // A new box, unseen for 3 frames (> max-age) before it comes back: a provisional id of its own again.
        let d = run(&mut t, &p, &[det(200, 0, 20, 20)])[0];
        for _ in 0..3 {
            run(&mut t, &p, &[]);
        }
        let e = run(&mut t, &p, &[det(200, 0, 20, 20)])[0];
        assert!(!e.tracked && e.hits == 1 && e.id < d.id, "{d:?} then {e:?}");
    }

    #[test]
    fn a_published_track_that_misses_a_frame_keeps_its_id() {
        let p = Params { min_hits: 2, max_age: 5, ..Params::default() };
        let mut t = Tracker::new();
        run(&mut t, &p, &[det(0, 0, 20, 20)]);
        let a = run(&mut t, &p, &[det(0, 0, 20, 20)])[0];
        run(&mut t, &p, &[]);
        let b = run(&mut t, &p, &[det(0, 0, 20, 20)])[0];
        assert_eq!((b.id, b.tracked, b.hits), (a.id, true, 3));
    }

    #[test]
    fn kinds_never_share_a_track_and_empty_boxes_are_labelled_untracked() {
        let p = Params { min_hits: 1, ..Params::default() };
        let mut t = Tracker::new();
        let a = run(&mut t, &p, &[det(0, 0, 20, 20)]);
        let b = run(&mut t, &p, &[Detection { rect: (0, 0, 20, 20), kind: 1 }, det(0, 0, 0, 20), det(0, 0, 20, 0)]);
        assert!(b[0].tracked && b[0].id != a[0].id);
        assert_eq!(&b[1..], [Label { id: -1, tracked: false, hits: 0 }, Label { id: -2, tracked: false, hits: 0 }]);
        assert_eq!(t.len(), 2, "the kind-0 track is kept (lost), the kind-1 track added, empty boxes not tracked");
    }

    #[test]
    fn ids_wrap_after_two_to_the_31_skipping_ids_in_use() {
        let p = Params { min_hits: 1, max_age: 100, ..Params::default() };
        let mut t = Tracker::with_next_ids(i32::MAX, i32::MIN);
        let first = run(&mut t, &p, &[det(0, 0, 20, 20), det(100, 0, 20, 20)]);
        assert_eq!((first[0].id, first[1].id), (i32::MAX, 0));
        // A third object: 0 is in use, so it gets 1.
        let next = run(&mut t, &p, &[det(0, 0, 20, 20), det(100, 0, 20, 20), det(300, 0, 20, 20)]);
        assert_eq!(next.iter().map(|l| l.id).collect::<Vec<_>>(), [i32::MAX, 0, 1]);
        let mut t = Tracker::with_next_ids(0, i32::MIN);
        let prov = run(&mut t, &Params::default(), &[det(0, 0, 20, 20), det(100, 0, 20, 20)]);
        assert_eq!((prov[0].id, prov[1].id), (i32::MIN, -1));
    }

    #[test]
    fn hundreds_of_boxes_keep_their_ids_and_tracks_stay_bounded() {
        let p = Params { min_hits: 1, max_age: 1000, ..Params::default() };
        let mut t = Tracker::new();
        let grid = |dx: u32| -> Vec<Detection> {
            (0..20u32).flat_map(|r| (0..20u32).map(move |c| det(c * 40 + dx, r * 40, 30, 30))).collect()
        };
        let a = run(&mut t, &p, &grid(0));
        let b = run(&mut t, &p, &grid(3));
        assert_eq!(a.len(), 400);
        assert_eq!(a, b.iter().map(|l| Label { hits: 1, ..*l }).collect::<Vec<_>>());
        // Fresh boxes far away every frame: the tracker never holds more than MAX_TRACKS.
        for f in 0..30u32 {
            let dets: Vec<_> = (0..400u32).map(|i| det(100_000 + f * 20_000 + i * 40, 0, 30, 30)).collect();
            run(&mut t, &p, &dets);
        }
        assert_eq!(t.len(), MAX_TRACKS);
    }
}
