// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmtrack in real GStreamer: buffers carrying ROI metas pushed through a harness (and a real pipeline), ids read
//! back from the metas the element wrote. Every test states the ids it expects; a tracker that ranks boxes per frame,
//! forgets nothing, or gives an id twice fails them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Once;

use gst::prelude::*;
use gst_video::VideoRegionOfInterestMeta;

type Rect = (u32, u32, u32, u32);

const W: u32 = 640;
const H: u32 = 360;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("GStreamer initialises");
        gstodm::plugin_register_static().expect("plugin registers");
    });
}

/// One ROI as the tracker left it.
#[derive(Debug, Clone, PartialEq)]
struct Out {
    id: i32,
    rect: Rect,
    roi_type: String,
    detector_id: i32,
    tracked: bool,
    hits: u32,
}

fn caps(width: u32, height: u32) -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::Gray8)
        .width(width as i32)
        .height(height as i32)
        .framerate(gst::Fraction::new(30, 1))
        .build()
}

/// An odmtrack harness with these properties (strings, as on a launch line), caps `W`x`H`.
fn tracker(props: &[(&str, &str)]) -> gst_check::Harness {
    init();
    let el = gst::ElementFactory::make("odmtrack").build().expect("odmtrack exists");
    for (k, v) in props {
        el.set_property_from_str(k, v);
    }
    let mut h = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
    h.set_src_caps(caps(W, H));
    h
}

/// A grey frame with ROI metas `(detector id, rect)` of type `sign`.
fn frame(rois: &[(i32, Rect)], n: u64) -> gst::Buffer {
    frame_typed(&rois.iter().map(|&(id, r)| (id, r, "sign")).collect::<Vec<_>>(), n)
}

fn frame_typed(rois: &[(i32, Rect, &str)], n: u64) -> gst::Buffer {
    let mut buf = gst::Buffer::from_mut_slice(vec![128u8; (W * H) as usize]);
    {
        let b = buf.get_mut().expect("new buffer is writable");
        b.set_pts(gst::ClockTime::from_nseconds(n * 33_333_333));
        for (id, rect, kind) in rois {
            VideoRegionOfInterestMeta::add(b, kind, *rect).set_id(*id);
        }
    }
    buf
}

fn read(buf: &gst::BufferRef) -> Vec<Out> {
    buf.iter_meta::<VideoRegionOfInterestMeta>()
        .map(|m| {
            let p = m.param(gstodm::track::PARAM).unwrap_or_else(|| panic!("ROI {} has no odm-track param", m.id()));
            Out {
                id: m.id(),
                rect: m.rect(),
                roi_type: m.roi_type().to_owned(),
                detector_id: p.get("detector-id").expect("detector-id"),
                tracked: p.get("tracked").expect("tracked"),
                hits: p.get("hits").expect("hits"),
            }
        })
        .collect()
}

/// Push one frame and read what came out; no ROI is ever dropped.
fn step(h: &mut gst_check::Harness, rois: &[(i32, Rect)], n: u64) -> Vec<Out> {
    h.push(frame(rois, n)).expect("pushed");
    let out = read(&h.pull().expect("a buffer comes out"));
    assert_eq!(out.len(), rois.len(), "frame {n}: every ROI comes out");
    for (o, (_, r)) in out.iter().zip(rois) {
        assert_eq!(o.rect, *r, "frame {n}: rectangles untouched, order kept");
    }
    out
}

fn ids(out: &[Out]) -> Vec<i32> {
    out.iter().map(|o| o.id).collect()
}

#[test]
fn properties_have_their_ranges_and_defaults() {
    init();
    let el = gst::ElementFactory::make("odmtrack").build().unwrap();
    let range = |name: &str| {
        let p = el.find_property(name).unwrap();
        assert!(p.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING), "{name} is settable while PLAYING");
        p
    };
    let iou = range("iou-threshold");
    let iou = iou.downcast_ref::<glib::ParamSpecDouble>().unwrap();
    assert_eq!((iou.minimum(), iou.maximum(), iou.default_value()), (0.0, 1.0, 0.3));
    let age = range("max-age");
    let age = age.downcast_ref::<glib::ParamSpecUInt>().unwrap();
    assert_eq!((age.minimum(), age.maximum(), age.default_value()), (0, 1000, 15));
    let hits = range("min-hits");
    let hits = hits.downcast_ref::<glib::ParamSpecUInt>().unwrap();
    assert_eq!((hits.minimum(), hits.maximum(), hits.default_value()), (1, 100, 3));
    el.set_property("min-hits", 7u32);
    assert_eq!(el.property::<u32>("min-hits"), 7);
}

use gst::glib;

#[test]
fn two_signs_crossing_paths_keep_their_ids() {
    let mut h = tracker(&[("min-hits", "1")]);
    // A goes right, B goes left, 10 px a frame, 20 px apart vertically: their boxes overlap for several frames.
    // The order of the metas changes every other frame, so an id follows the box, not the position in the list.
    let mut seen: BTreeMap<char, BTreeSet<i32>> = BTreeMap::new();
    for f in 0..40u32 {
        let a = (100 + f * 10, 100, 40, 40);
        let b = (490 - f * 10, 120, 40, 40);
        let (rois, names) = if f % 2 == 0 { ([(1, a), (2, b)], ['A', 'B']) } else { ([(1, b), (2, a)], ['B', 'A']) };
        let out = step(&mut h, &rois, f as u64);
        for (name, o) in names.iter().zip(&out) {
            assert!(o.tracked);
            seen.entry(*name).or_default().insert(o.id);
        }
    }
    assert_eq!(seen[&'A'].len(), 1, "{seen:?}");
    assert_eq!(seen[&'B'].len(), 1, "{seen:?}");
    assert_ne!(seen[&'A'], seen[&'B']);
}

#[test]
fn an_occluded_sign_keeps_its_id_within_max_age_and_gets_a_new_one_after() {
    let mut h = tracker(&[("min-hits", "1"), ("max-age", "5")]);
    let at = |f: u32| (50 + f * 6, 150, 30, 30);
    let first = ids(&step(&mut h, &[(0, at(0))], 0))[0];
    for f in 1..10 {
        assert_eq!(ids(&step(&mut h, &[(0, at(f))], f as u64)), [first], "frame {f}");
    }
    // Hidden for 5 frames (= max-age), back where its motion puts it, 30 px from where it was last seen.
    for f in 10..15 {
        assert!(step(&mut h, &[], f as u64).is_empty());
    }
    assert_eq!(ids(&step(&mut h, &[(0, at(15))], 15)), [first], "back after 5 frames");
    assert_eq!(ids(&step(&mut h, &[(0, at(16))], 16)), [first]);
    // Hidden for 6 frames (> max-age): the track is gone, the box starts a new one.
    for f in 17..23 {
        step(&mut h, &[], f as u64);
    }
    let after = step(&mut h, &[(0, at(23))], 23);
    assert!(after[0].tracked && after[0].id > first, "{after:?} after {first}");
}

/// A small deterministic generator (no dependency, same sequence everywhere).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u32) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as u32
    }
}

#[test]
fn ids_are_never_reused_and_each_belongs_to_one_object() {
    let mut h = tracker(&[("min-hits", "2"), ("max-age", "3")]);
    // Eight lanes; in each, objects come and go at random, a new one where the last one vanished once the lane has
    // been empty for more than max-age frames (before that, no tracker could tell the two apart).
    let mut rng = Lcg(7);
    let mut lanes: Vec<Option<(u32, u32)>> = vec![None; 8]; // (object number, frames alive)
    let mut empty_for = [0u32; 8];
    let mut objects = 0u32;
    let mut owner: BTreeMap<i32, u32> = BTreeMap::new();
    for f in 0..300u32 {
        for (lane, empty) in lanes.iter_mut().zip(empty_for.iter_mut()) {
            *lane = match *lane {
                Some((o, age)) if rng.next(12) != 0 => Some((o, age + 1)),
                Some(_) => None,
                None if *empty > 4 && rng.next(3) == 0 => {
                    objects += 1;
                    Some((objects, 0))
                }
                None => None,
            };
            *empty = if lane.is_some() { 0 } else { *empty + 1 };
        }
        let rois: Vec<(i32, Rect)> = lanes
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.map(|(_, age)| (i as i32, (10 + age % 40, 10 + 42 * i as u32, 30, 30))))
            .collect();
        let out = step(&mut h, &rois, f as u64);
        for ((lane, _), o) in rois.iter().zip(&out) {
            let object = lanes[*lane as usize].unwrap().0;
            let was = *owner.entry(o.id).or_insert(object);
            assert_eq!(was, object, "frame {f}: id {} given to object {object}, it was object {was}'s", o.id);
        }
    }
    assert!(objects > 100, "{objects} objects");
    assert!(owner.keys().filter(|&&id| id >= 0).count() > 50, "{} published ids", owner.len());
}

#[test]
fn min_hits_withholds_the_id_and_a_change_while_playing_takes_effect_on_the_next_frame() {
    let mut h = tracker(&[("min-hits", "4")]);
    let r = (100, 100, 40, 40);
    let early: Vec<Out> = (0..3).map(|f| step(&mut h, &[(9, r)], f)[0].clone()).collect();
    let provisional = early[0].id;
    assert!(provisional < 0, "{early:?}");
    for (i, o) in early.iter().enumerate() {
        assert_eq!((o.id, o.tracked, o.hits), (provisional, false, i as u32 + 1), "frame {i}");
    }
    let fourth = step(&mut h, &[(9, r)], 3)[0].clone();
    assert_eq!((fourth.id, fourth.tracked, fourth.hits), (0, true, 4), "published on the 4th frame");
    // Lowered while playing: a new object is published on its first frame.
    h.element().unwrap().set_property("min-hits", 1u32);
    let both = step(&mut h, &[(9, r), (10, (400, 100, 40, 40))], 4);
    assert_eq!(ids(&both), [0, 1]);
    assert!(both[1].tracked);
}

#[test]
fn the_detector_id_is_kept_in_a_param_through_two_trackers() {
    init();
    let mut h = gst_check::Harness::new_parse("odmtrack min-hits=1 ! odmtrack min-hits=1");
    h.set_src_caps(caps(W, H));
    h.push(frame(&[(77, (10, 10, 30, 30)), (-5, (200, 10, 30, 30))], 0)).unwrap();
    let out = read(&h.pull().unwrap());
    assert_eq!(out.iter().map(|o| o.detector_id).collect::<Vec<_>>(), [77, -5]);
    assert_eq!(ids(&out), [0, 1]);
    // One param per ROI, not one per tracker.
    h.push(frame(&[(78, (10, 10, 30, 30))], 1)).unwrap();
    let b = h.pull().unwrap();
    let m = b.iter_meta::<VideoRegionOfInterestMeta>().next().unwrap();
    assert_eq!(m.params().filter(|p| p.name() == gstodm::track::PARAM).count(), 1);
    assert_eq!(read(&b)[0].detector_id, 78);
}

#[test]
fn a_flush_forgets_the_tracks_and_ids_go_on() {
    let mut h = tracker(&[("min-hits", "2")]);
    let r = (100, 100, 40, 40);
    step(&mut h, &[(0, r)], 0);
    let before = step(&mut h, &[(0, r)], 1)[0].clone();
    assert!(before.tracked);
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(false)));
    let after: Vec<Out> = (2..4).map(|f| step(&mut h, &[(0, r)], f)[0].clone()).collect();
    assert!(!after[0].tracked && after[0].hits == 1, "the same box starts over after a flush: {after:?}");
    assert!(after[1].tracked && after[1].id > before.id, "a new id, not {}: {after:?}", before.id);
}

#[test]
fn a_new_segment_forgets_the_tracks() {
    let mut h = tracker(&[("min-hits", "1")]);
    let r = (100, 100, 40, 40);
    let before = step(&mut h, &[(0, r)], 0)[0].id;
    assert_eq!(step(&mut h, &[(0, r)], 1)[0].id, before);
    let mut seg = gst::FormattedSegment::<gst::ClockTime>::new();
    seg.set_start(gst::ClockTime::from_seconds(10));
    assert!(h.push_event(gst::event::Segment::new(&seg)));
    assert_eq!(step(&mut h, &[(0, r)], 300)[0].id, before + 1);
}

#[test]
fn a_new_frame_size_forgets_the_tracks_and_a_restart_counts_from_zero() {
    let mut h = tracker(&[("min-hits", "1")]);
    let r = (100, 100, 40, 40);
    assert_eq!(step(&mut h, &[(0, r)], 0)[0].id, 0);
    // A caps event alone (no new segment): the boxes are in another frame now.
    assert!(h.push_event(gst::event::Caps::new(&caps(W / 2, H / 2))));
    assert_eq!(step(&mut h, &[(0, r)], 1)[0].id, 1);
    let el = h.element().unwrap();
    el.set_state(gst::State::Null).unwrap();
    el.set_state(gst::State::Playing).unwrap();
    h.set_src_caps(caps(W, H));
    assert!(h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new())));
    assert_eq!(step(&mut h, &[(0, r)], 0)[0].id, 0, "a new stream");
}

#[test]
fn frames_without_rois_and_frames_with_hundreds() {
    let mut h = tracker(&[("min-hits", "2")]);
    assert!(step(&mut h, &[], 0).is_empty());
    let grid = |dx: u32| -> Vec<(i32, Rect)> {
        (0..20u32).flat_map(|r| (0..25u32).map(move |c| ((r * 25 + c) as i32, (c * 25 + dx, r * 18, 20, 15)))).collect()
    };
    let first = step(&mut h, &grid(0), 1);
    assert_eq!(first.len(), 500);
    assert!(first.iter().all(|o| !o.tracked && o.id < 0));
    let published = step(&mut h, &grid(1), 2);
    assert!(published.iter().all(|o| o.tracked));
    assert_eq!(ids(&published).into_iter().collect::<BTreeSet<_>>().len(), 500, "500 distinct ids");
    for f in 3..8u32 {
        // Shuffled detector ids: they are not what the tracker follows.
        let moved: Vec<_> = grid(f).into_iter().map(|(id, r)| (499 - id, r)).collect();
        assert_eq!(ids(&step(&mut h, &moved, f as u64)), ids(&published), "frame {f}");
    }
    assert!(step(&mut h, &[], 8).is_empty());
}

#[test]
fn boxes_outside_the_frame_and_boxes_with_no_area() {
    let mut h = tracker(&[("min-hits", "1")]);
    let rois = [
        (1, (10_000, 10_000, 50, 50)),
        (2, (u32::MAX - 40, u32::MAX - 40, 40, 40)),
        (3, (600, 330, 200, 200)),
        (4, (5, 5, 0, 0)),
        (5, (5, 5, 10, 0)),
    ];
    let a = step(&mut h, &rois, 0);
    let b = step(&mut h, &rois, 1);
    for (x, y) in a.iter().zip(&b).take(3) {
        assert!(x.tracked && x.id >= 0 && x.id == y.id, "{x:?} {y:?}");
    }
    for o in a[3..].iter().chain(&b[3..]) {
        assert!(!o.tracked && o.id < 0 && o.hits == 0, "{o:?}");
    }
    let empty: BTreeSet<i32> = a[3..].iter().chain(&b[3..]).map(|o| o.id).collect();
    assert_eq!(empty.len(), 4, "every box with no area gets an id of its own: {empty:?}");
}

#[test]
fn roi_types_never_share_a_track() {
    let mut h = tracker(&[("min-hits", "1")]);
    let r = (100, 100, 40, 40);
    h.push(frame_typed(&[(0, r, "sign")], 0)).unwrap();
    let a = read(&h.pull().unwrap());
    h.push(frame_typed(&[(0, r, "face")], 1)).unwrap();
    let b = read(&h.pull().unwrap());
    assert_eq!(b[0].roi_type, "face");
    assert_ne!(a[0].id, b[0].id);
}

#[test]
fn proposals_on_a_still_picture_keep_their_ids_in_a_real_pipeline() {
    init();
    // SMPTE bars do not move: whatever odmproposals finds in frame 0 it finds again, so every box keeps its id.
    let pipeline = gst::parse::launch(
        "videotestsrc num-buffers=12 pattern=smpte ! video/x-raw,format=RGB,width=320,height=240 ! odmproposals ! \
         odmtrack min-hits=2 ! appsink name=sink sync=false",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut frames = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        frames.push(read(sample.buffer().unwrap()));
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(frames.len(), 12);
    assert!(!frames[0].is_empty(), "odmproposals finds the bars");
    assert!(frames[0].iter().all(|o| !o.tracked));
    for (f, out) in frames.iter().enumerate().skip(2) {
        assert!(out.iter().all(|o| o.tracked), "frame {f}");
        assert_eq!(ids(out), ids(&frames[1]), "frame {f}");
    }
}
