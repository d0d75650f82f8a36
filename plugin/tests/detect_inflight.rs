// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmdetect with `frames-in-flight`: the shipped detector (models/detector/detector.onnx) in real pipelines
//! (gst_check::Harness), a real ONNX Runtime session run by the engine's batching service. Frames in flight give
//! the synchronous path's boxes on every frame, in order; EOS and other serialized events come after the frames
//! before them; a flush drops the frames waiting and the stream goes on; the latency query counts them; two
//! elements sharing a model instance share its service and still get their own frames' boxes.

mod common;

use common::*;
use gst::prelude::*;
use gst_video::VideoRegionOfInterestMeta;

const W: u32 = 640;
const H: u32 = 360;

fn detector_model() -> String {
    models().join("detector/detector.onnx").display().to_string()
}

/// odmdetect on the shipped detector at a low threshold (so grey frames with painted plates give boxes), with
/// `props` on top.
fn detect(props: &[(&str, &str)]) -> gst::Element {
    let el = gst::ElementFactory::make("odmdetect")
        .property("model", detector_model())
        .property("score-threshold", 0.02f64)
        .build()
        .expect("odmdetect is registered");
    for (k, v) in props {
        el.set_property_from_str(k, v);
    }
    el
}

fn harness(el: &gst::Element) -> gst_check::Harness {
    let mut h = gst_check::Harness::with_element(el, Some("sink"), Some("src"));
    h.set_src_caps(rgb_caps(W, H));
    h
}

/// Frame `i`: grey with sign-like plates (a red rim round a white face, a blue square) that move from frame to
/// frame, so every frame has its own boxes.
fn frame(i: u32) -> gst::Buffer {
    let x = 40 + 23 * i;
    let patches = [
        ((x, 60, 48, 48), RED),
        ((x + 8, 68, 32, 32), [255, 255, 255]),
        ((500 - 11 * i, 200, 36, 36), BLUE),
        ((200, 250 - 5 * i, 60, 60), YELLOW),
        ((208, 258 - 5 * i, 44, 44), RED),
    ];
    buffer_with_rois(rgb_frame(W, H, &patches), &[], i as u64 * 33_333_333)
}

/// What odmdetect put on a buffer: its pts and each ROI's type, box and score.
type Seen = (u64, Vec<(String, (u32, u32, u32, u32), String)>);

fn seen(buf: &gst::Buffer) -> Seen {
    let rois = buf
        .iter_meta::<VideoRegionOfInterestMeta>()
        .map(|m| {
            let score = m.param("odm-detection").and_then(|p| p.get::<f64>("score").ok()).unwrap_or(f64::NAN);
            (m.roi_type().to_owned(), m.rect(), format!("{score:.6}"))
        })
        .collect();
    (buf.pts().map_or(u64::MAX, |t| t.nseconds()), rois)
}

/// Push frames `frames` and EOS, pull everything that came out.
fn run(h: &mut gst_check::Harness, frames: std::ops::Range<u32>) -> Vec<Seen> {
    for i in frames {
        h.push(frame(i)).expect("the frame is taken");
    }
    assert!(h.push_event(gst::event::Eos::new()));
    std::iter::from_fn(|| h.try_pull()).map(|b| seen(&b)).collect()
}

#[test]
fn frames_in_flight_give_the_synchronous_boxes_on_every_frame_in_order() {
    init();
    let want = run(&mut harness(&detect(&[("tiles", "2")])), 0..6);
    assert_eq!(want.len(), 6);
    let boxes: usize = want.iter().map(|s| s.1.len()).sum();
    assert!(boxes >= 6, "the plates give boxes to compare: {want:?}");
    // A frame's three views (the frame and two tiles): runs of up to 8 rows (frames waiting together may share
    // one), or of 3 (one frame a run). How rows of a run are split back per job: engine/detector.rs's unit test.
    for props in [
        &[("frames-in-flight", "1"), ("batch-size", "8"), ("tiles", "2")][..],
        &[("frames-in-flight", "16"), ("batch-size", "3"), ("tiles", "2")][..],
    ] {
        let got = run(&mut harness(&detect(props)), 0..6);
        assert_eq!(got, want, "{props:?}");
    }
}

#[test]
fn frames_wait_in_flight_and_come_out_in_order_before_eos() {
    init();
    let el = detect(&[("frames-in-flight", "4")]);
    // What leaves the element, in the order it leaves: buffers by pts, and EOS.
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen_order = order.clone();
    el.static_pad("src").unwrap().add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let what = match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => b.pts().map(|t| (t.nseconds() / 33_333_333).to_string()),
                Some(gst::PadProbeData::Event(e)) if e.type_() == gst::EventType::Eos => Some("eos".into()),
                _ => None,
            };
            seen_order.lock().unwrap().extend(what);
            gst::PadProbeReturn::Ok
        },
    );
    let mut h = harness(&el);
    let out = run(&mut h, 0..6);
    let pts: Vec<u64> = out.iter().map(|s| s.0).collect();
    assert_eq!(pts, (0..6u64).map(|i| i * 33_333_333).collect::<Vec<_>>(), "every frame, in order");
    assert_eq!(*order.lock().unwrap(), ["0", "1", "2", "3", "4", "5", "eos"], "EOS after the frames before it");
}

#[test]
fn a_flush_drops_the_frames_in_flight_and_the_stream_goes_on() {
    init();
    let want = run(&mut harness(&detect(&[])), 5..8);
    let mut h = harness(&detect(&[("frames-in-flight", "8")]));
    for i in 0..4 {
        h.push(frame(i)).expect("the frame is taken");
    }
    // Up to three of them may be out already; the fourth cannot: it was sent to the service during the chain call
    // that just returned, which looked for finished frames right after (a run of the network takes far longer).
    let before: Vec<Seen> = std::iter::from_fn(|| h.try_pull()).map(|b| seen(&b)).collect();
    assert!(before.len() < 4, "a frame was in flight at the flush");
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    assert!(h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new())));
    let after = run(&mut h, 5..8);
    assert_eq!(after, want, "after the flush: the new frames only, with their own boxes");
}

#[test]
fn a_drain_query_sends_the_frames_in_flight_downstream() {
    init();
    let mut h = harness(&detect(&[("frames-in-flight", "8")]));
    for i in 0..3 {
        h.push(frame(i)).expect("the frame is taken");
    }
    // An upstream pool or decoder that wants its buffers back asks for a drain: they come out now, not at EOS.
    let mut q = gst::query::Drain::new();
    assert!(h.srcpad().expect("the harness feeds the element").peer_query(&mut q));
    let out: Vec<u64> = std::iter::from_fn(|| h.try_pull()).map(|b| seen(&b).0).collect();
    assert_eq!(out, [0, 33_333_333, 66_666_666]);
}

#[test]
fn the_latency_query_counts_the_frames_in_flight() {
    init();
    for (in_flight, at_least) in [(0u32, 0u64), (3, 3 * 33_333_333)] {
        let mut h = harness(&detect(&[("frames-in-flight", &in_flight.to_string())]));
        h.push(frame(0)).expect("the frame is taken");
        let min = h.query_latency().map_or(0, |t| t.nseconds());
        assert!(min >= at_least, "frames-in-flight={in_flight}: latency {min} ns, at least {at_least}");
        if in_flight == 0 {
            assert!(min < 33_333_333, "no frames in flight add no latency: {min} ns");
        }
    }
}

#[test]
fn two_elements_sharing_an_instance_share_its_service_and_keep_their_own_frames() {
    init();
    let want_a = run(&mut harness(&detect(&[])), 0..4);
    let want_b = run(&mut harness(&detect(&[])), 4..8);
    let shared = [("model-instance-id", "detect-inflight-test"), ("frames-in-flight", "2"), ("batch-size", "4")];
    let (mut a, mut b) = (harness(&detect(&shared)), harness(&detect(&shared)));
    // Interleaved, so jobs of both elements wait on the one service together.
    for i in 0..4 {
        a.push(frame(i)).expect("a takes its frame");
        b.push(frame(i + 4)).expect("b takes its frame");
    }
    let got_a = run(&mut a, 0..0);
    let got_b = run(&mut b, 0..0);
    assert_eq!(got_a, want_a);
    assert_eq!(got_b, want_b);
}
