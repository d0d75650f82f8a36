// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmclassify's per-object memory with frames in flight: a recorded clip gives the same results whatever the timing.
//! With `frames-in-flight`, frame k+1 is prepared before frame k's results are back; which frames are finished at that
//! moment depends on the machine. The memory's decisions must depend on the order of the frames only, so the results
//! are the synchronous path's, frame for frame. Real pipelines (gst_check::Harness), the committed colour model, real
//! ONNX Runtime sessions; every frame pushed before any is pulled, so that frames pile up in flight.

mod common;

use common::*;
use gst::prelude::*;
use gstodm::meta::{self, Outcome, RoiResult};

const W: u32 = 160;
const H: u32 = 96;
const FRAMES: u64 = 24;
const PALETTE: [[u8; 3]; 6] = [RED, GREEN, BLUE, YELLOW, ORANGE, GREY];

/// Object `i`'s box on frame `f`: a slot of an 8 x 4 grid, moving a pixel a frame and back. Object `i` comes on
/// frame `i % 4` (so objects are classified on different frames); objects 0..4 jump to the free slots 28..31 from
/// frame 13 (their ids then name other objects: memory starts afresh); objects 8..11 are away on frames 6..9; object
/// 27 is below min-size (skipped, never remembered).
fn rois(f: u64) -> Vec<(i32, Rect)> {
    (0..28u32)
        .filter(|i| f >= (i % 4) as u64 && (!(8..12).contains(i) || !(6..10).contains(&f)))
        .map(|i| {
            let slot = if i < 4 && f >= 13 { 28 + i } else { i };
            let size = if i == 27 { 3 } else { 16 };
            (i as i32, ((slot % 8) * 20 + (f % 3) as u32, (slot / 8) * 24 + 2, size, size))
        })
        .collect()
}

/// Object `i`'s colour on frame `f`: changes every other frame, so that votes and reused results differ from what
/// the frame itself shows.
fn colour(i: u32, f: u64) -> [u8; 3] {
    // splitmix64 of the object and the pair of frames.
    let mut x = (((i as u64) << 32) | (f / 2)).wrapping_add(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D049BB133111EB);
    PALETTE[((x ^ (x >> 31)) % PALETTE.len() as u64) as usize]
}

fn frame(f: u64) -> gst::Buffer {
    let rois = rois(f);
    let patches: Vec<(Rect, [u8; 3])> = rois.iter().map(|&(id, r)| (r, colour(id as u32, f))).collect();
    buffer_with_rois(rgb_frame(W, H, &patches), &rois, f)
}

/// One result as compared between runs: everything but the distance, which batching may move in the last bits.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    roi_id: i32,
    rect: Rect,
    /// The label, or `skipped: ` and the reason.
    label: String,
    verdict: Option<String>,
    reused: bool,
    /// This frame's own label and verdict (`vote-window`).
    raw: Option<(String, String)>,
}

/// Each frame's pts and results, with their distances.
type Clip = Vec<(u64, Vec<(Row, Option<f64>)>)>;

fn row(r: &RoiResult) -> (Row, Option<f64>) {
    let (verdict, distance) = match &r.outcome {
        Outcome::Classified { verdict, distance, .. } => (Some(verdict.to_string()), Some(*distance)),
        Outcome::Skipped { .. } => (None, None),
    };
    let raw = r.raw.as_ref().map(|raw| (raw.label.to_string(), raw.verdict.to_string()));
    (Row { roi_id: r.roi_id, rect: r.rect, label: label(r), verdict, reused: r.reused, raw }, distance)
}

/// Every frame's results, all frames pushed first, then EOS, then everything pulled; a segment event before frame
/// `segment_at` (it ends the memory: a new segment is another stretch of the stream); the element's stats.
fn run(el: &gst::Element, segment_at: Option<u64>) -> (Clip, gst::Structure) {
    let mut h = gst_check::Harness::with_element(el, Some("sink"), Some("src"));
    h.set_src_caps(rgb_caps(W, H));
    // Made beforehand, so that pushes follow each other faster than the frames' inference runs.
    let buffers: Vec<gst::Buffer> = (0..FRAMES).map(frame).collect();
    for (f, b) in buffers.into_iter().enumerate() {
        if segment_at == Some(f as u64) {
            assert!(h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new())));
        }
        h.push(b).expect("the buffer is taken");
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let mut out = Vec::new();
    while let Some(buf) = h.try_pull() {
        out.push((buf.pts().unwrap().nseconds(), meta::read(&buf).iter().map(row).collect()));
    }
    (out, el.property("stats"))
}

fn assert_same(want: &Clip, got: &Clip, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: every frame comes out");
    for ((fw, w), (fg, g)) in want.iter().zip(got) {
        assert_eq!(fg, fw, "{what}: frames in order");
        let rows = |v: &[(Row, Option<f64>)]| v.iter().map(|r| r.0.clone()).collect::<Vec<_>>();
        assert_eq!(rows(g), rows(w), "{what} (left) against the synchronous path (right): frame {fw}");
        for (a, b) in w.iter().zip(g) {
            let close = match (a.1, b.1) {
                (Some(a), Some(b)) => (a - b).abs() < 1e-4,
                (a, b) => a == b,
            };
            assert!(close, "{what}: frame {fw}, roi {}: distance {:?} against {:?}", a.0.roi_id, a.1, b.1);
        }
    }
}

const MEMORY: [(&str, &str); 2] = [("reclassify-interval", "4"), ("vote-window", "3")];

#[test]
fn frames_in_flight_give_the_synchronous_results_with_memory_in_use() {
    // The issue: with frames in flight, the reuse decision for frame k+1 read memory that frame k's results wrote
    // only if frame k happened to be finished by then; the same clip gave other results from run to run.
    init();
    for segment_at in [None, Some(16)] {
        let (want, stats) = run(&classifier(&MEMORY), segment_at);
        // The clip exercises the memory: results reused, votes that differ from the frame's own result.
        let reused = stats.get::<u64>("reused").unwrap();
        assert!(reused >= 100, "{reused} results reused");
        let voted_away = want.iter().flat_map(|f| &f.1).filter(|(r, _)| {
            r.raw.as_ref().is_some_and(|raw| (Some(&raw.0), Some(&raw.1)) != (Some(&r.label), r.verdict.as_ref()))
        });
        let voted_away = voted_away.count();
        assert!(voted_away >= 10, "{voted_away} votes that differ from the frame's own result");
        for attempt in 0..3 {
            let props = [MEMORY[0], MEMORY[1], ("frames-in-flight", "3")];
            let (got, stats) = run(&classifier(&props), segment_at);
            assert_same(&want, &got, &format!("frames-in-flight=3, segment at {segment_at:?}, run {attempt}"));
            assert_eq!(stats.get::<u64>("reused").unwrap(), reused);
            assert_eq!(stats.get::<u64>("reuse-failed").unwrap(), 0);
        }
    }
}

#[test]
fn a_reload_while_frames_are_in_flight_gives_the_synchronous_results() {
    // The bundle is swapped for one with other labels as frame 6 reaches the element, while frames 3..5 may still be
    // in flight; their reused results were decided under the old bundle and are taken, when they finish, from the
    // old bundle's memory, whether or not the new one cleared it meanwhile. Frames 0..5 name the old bundle, frames
    // 6.. the new one (its memory starts afresh), as on the synchronous path, and the same on every run.
    init();
    let dir = tempfile::tempdir().unwrap();
    let old = model_copy(dir.path(), "colors", "old", |v| v["name"] = "old".into());
    let new = model_copy(dir.path(), "colors", "new", |v| {
        v["name"] = "new".into();
        for c in v["classes"].as_array_mut().unwrap() {
            c["label"] = format!("{}-new", c["label"].as_str().unwrap()).into();
        }
    });
    let element = |in_flight: &str| {
        let el = gst::ElementFactory::make("odmclassify")
            .property("model", dir.path().join("old.onnx").display().to_string())
            .property("bundle", old.display().to_string())
            .build()
            .unwrap();
        for (k, v) in [MEMORY[0], MEMORY[1], ("frames-in-flight", in_flight)] {
            el.set_property_from_str(k, v);
        }
        let (el2, new) = (el.clone(), new.display().to_string());
        el.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if info.buffer().and_then(|b| b.pts()) == Some(gst::ClockTime::from_nseconds(6)) {
                el2.set_property("bundle", &new);
            }
            gst::PadProbeReturn::Ok
        });
        el
    };
    let (want, _) = run(&element("0"), None);
    for (f, rows) in &want {
        for (r, _) in rows.iter().filter(|(r, _)| r.verdict.is_some()) {
            assert_eq!(r.label.ends_with("-new"), *f >= 6, "frame {f}: {}", r.label);
        }
        // Frame 6 starts afresh: nothing reused from the old bundle's memory.
        assert!(*f != 6 || rows.iter().all(|(r, _)| !r.reused), "frame 6");
    }
    for attempt in 0..3 {
        let (got, _) = run(&element("3"), None);
        assert_same(&want, &got, &format!("a reload at frame 6, frames-in-flight=3, run {attempt}"));
    }
}

#[test]
fn a_reuse_of_a_classification_that_failed_in_flight_is_skipped_and_said() {
    // A bundle std of 1e-45 makes every network output non-finite: every classification fails ("invalid model
    // output"). With frames-in-flight=3, frames 1..3 may be prepared before frame 0 is finished: whether they are or
    // not, they reuse its result, which turns out to be none, and are skipped, saying so, and counted; frame 4 finds
    // frame 0 finished without a result and classifies again. On the synchronous path every frame classifies (nothing to reuse), as before.
    init();
    let dir = tempfile::tempdir().unwrap();
    let tiny = model_copy(dir.path(), "colors", "tiny", |v| {
        v["model"]["input"]["std"] = serde_json::json!([1e-45, 1e-45, 1e-45]);
    });
    for in_flight in ["0", "3"] {
        let el = gst::ElementFactory::make("odmclassify")
            .property("model", dir.path().join("tiny.onnx").display().to_string())
            .property("bundle", tiny.display().to_string())
            .build()
            .unwrap();
        for (k, v) in [("reclassify-interval", "4"), ("frames-in-flight", in_flight)] {
            el.set_property_from_str(k, v);
        }
        let mut h = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
        h.set_src_caps(rgb_caps(W, H));
        for f in 0..10u64 {
            h.push(buffer_with_rois(rgb_frame(W, H, &[((0, 0, 20, 20), RED)]), &[(1, (f as u32, 0, 20, 20))], f))
                .unwrap();
        }
        assert!(h.push_event(gst::event::Eos::new()));
        let got: Vec<String> = std::iter::from_fn(|| h.try_pull()).map(|b| label(&meta::read(&b)[0])).collect();
        let want: Vec<String> = (0..10)
            .map(|f| match (in_flight, f % 4) {
                ("0", _) | (_, 0) => "skipped: invalid model output".to_owned(),
                (_, 1) => "skipped: no result to reuse: the object's classification a frame earlier failed".to_owned(),
                (_, n) => format!("skipped: no result to reuse: the object's classification {n} frames earlier failed"),
            })
            .collect();
        assert_eq!(got, want, "frames-in-flight={in_flight}");
        let stats: gst::Structure = el.property("stats");
        let count = |k: &str| stats.get::<u64>(k).unwrap();
        let failed = if in_flight == "0" { 0 } else { 7 };
        assert_eq!((count("reused"), count("reuse-failed"), count("skipped")), (0, failed, 10), "{in_flight}");
    }
}
