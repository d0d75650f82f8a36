// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmclassify in real GStreamer pipelines with the committed colour model and real ONNX Runtime sessions.

mod common;

use common::*;
use gst::prelude::*;
use gst_video::VideoRegionOfInterestMeta;
use gstodm::meta::{self, Outcome, RoiResult};
use odm_core::Verdict;

fn classified(r: &RoiResult) -> (&str, f64, Verdict) {
    match &r.outcome {
        Outcome::Classified { label, distance, verdict, .. } => (&**label, *distance, *verdict),
        Outcome::Skipped { reason } => panic!("ROI {} skipped: {reason}", r.roi_id),
    }
}

fn by_id(results: &[RoiResult], id: i32) -> &RoiResult {
    results.iter().find(|r| r.roi_id == id).unwrap_or_else(|| panic!("no result for ROI {id}"))
}

/// Push one buffer through a Harness around `element`; return the output buffer.
fn classify_one(element: &gst::Element, caps: &gst::Caps, buf: gst::Buffer) -> gst::Buffer {
    let mut h = gst_check::Harness::with_element(element, Some("sink"), Some("src"));
    h.set_src_caps(caps.clone());
    h.push(buf).expect("buffer accepted");
    h.pull().expect("buffer comes out")
}

#[test]
fn known_novelty_anomaly_and_skipped() {
    init();
    let (w, h) = (160, 120);
    let patches = [
        ((10, 10, 20, 20), RED),
        ((40, 10, 20, 20), BLUE),
        ((70, 10, 20, 20), ORANGE),
        ((100, 10, 20, 20), YELLOW),
        ((130, 10, 20, 20), GREEN),
    ];
    let rois = [
        (1, (10, 10, 20, 20)),
        (2, (40, 10, 20, 20)),
        (3, (70, 10, 20, 20)),
        (4, (100, 10, 20, 20)),
        (5, (130, 10, 20, 20)),
        (6, (60, 60, 30, 30)),   // grey background: not a sign
        (7, (150, 100, 40, 40)), // partly outside: still classified (grey)
        (8, (200, 10, 10, 10)),  // wholly outside
        (9, (5, 100, 2, 2)),     // below min-size
    ];
    let out = classify_one(&classifier(&[]), &rgb_caps(w, h), buffer_with_rois(rgb_frame(w, h, &patches), &rois, 0));
    let results = meta::read(&out);
    assert_eq!(results.len(), rois.len(), "every considered ROI gets a result");
    for (id, label) in [(1, "red"), (2, "blue"), (4, "yellow"), (5, "green")] {
        let (l, d, v) = classified(by_id(&results, id));
        assert_eq!((l, v), (label, Verdict::Known), "ROI {id}");
        assert!(d < 0.05, "ROI {id} distance {d}");
    }
    // Orange lies between red and yellow: 2.24 from both, above the novelty threshold (1.0), below anomaly (2.5).
    let (_, d, v) = classified(by_id(&results, 3));
    assert_eq!(v, Verdict::Novelty, "orange distance {d}");
    assert!((d - 2.2).abs() < 0.1, "{d}");
    for id in [6, 7] {
        let (_, d, v) = classified(by_id(&results, id));
        assert_eq!(v, Verdict::Anomaly, "ROI {id} distance {d}");
    }
    for (id, why) in [(8, "outside"), (9, "min-size")] {
        match &by_id(&results, id).outcome {
            Outcome::Skipped { reason } => assert!(reason.contains(why), "{reason}"),
            o => panic!("ROI {id} should be skipped: {o:?}"),
        }
    }
    // The same results as ROI params, on the original buffer (no copy in between).
    for m in out.iter_meta::<VideoRegionOfInterestMeta>() {
        let p = meta::roi_param(&m).expect("odm param on every ROI");
        assert_eq!(&p, by_id(&results, m.id()));
        let s = m.param("odm").unwrap();
        assert_eq!(s.get::<&str>("model").unwrap(), "colors");
        assert_eq!(s.get::<f64>("novelty-threshold").unwrap(), 1.0);
    }
    assert_eq!(by_id(&results, 1).anomaly_threshold, 2.5);
}

#[test]
fn hundreds_of_rois_give_the_same_results_at_any_batch_size() {
    init();
    let (w, h) = (640, 480);
    let colours = [RED, GREEN, BLUE, YELLOW, ORANGE, GREY];
    let mut patches = Vec::new();
    let mut rois = Vec::new();
    for i in 0..300u32 {
        let rect = ((i % 20) * 32, (i / 20) * 32, 24, 24);
        patches.push((rect, colours[(i % 6) as usize]));
        rois.push((i as i32 + 100, rect));
    }
    let frame = rgb_frame(w, h, &patches);
    let mut runs = Vec::new();
    for batch in [1u32, 7, 64] {
        let el = classifier(&[("batch-size", &batch.to_string())]);
        let out = classify_one(&el, &rgb_caps(w, h), buffer_with_rois(frame.clone(), &rois, 0));
        let mut r = meta::read(&out);
        r.sort_by_key(|r| r.roi_id);
        assert_eq!(r.len(), 300);
        runs.push(r);
    }
    for r in &runs[1..] {
        for (a, b) in r.iter().zip(&runs[0]) {
            let ((la, da, va), (lb, db, vb)) = (classified(a), classified(b));
            assert_eq!((la, va), (lb, vb));
            assert!((da - db).abs() < 1e-5);
        }
    }
    let known = runs[0].iter().filter(|r| classified(r).2 == Verdict::Known).count();
    assert_eq!(known, 200, "red, green, blue and yellow patches are known");
}

#[test]
fn zero_rois_leave_the_buffer_untouched() {
    init();
    let frame = rgb_frame(64, 48, &[((0, 0, 10, 10), RED)]);
    let out = classify_one(&classifier(&[]), &rgb_caps(64, 48), buffer_with_rois(frame.clone(), &[], 42));
    assert!(meta::read(&out).is_empty());
    assert_eq!(out.iter_meta::<VideoRegionOfInterestMeta>().count(), 0);
    assert_eq!(out.map_readable().unwrap().as_slice(), &frame[..]);
    assert_eq!(out.pts(), Some(gst::ClockTime::from_nseconds(42)));
}

#[test]
fn duplicate_roi_ids_are_made_unique() {
    init();
    let frame = rgb_frame(64, 48, &[((0, 0, 20, 20), RED), ((30, 0, 20, 20), BLUE)]);
    // Producers that never set ids leave them all 0.
    let out = classify_one(
        &classifier(&[]),
        &rgb_caps(64, 48),
        buffer_with_rois(frame, &[(0, (0, 0, 20, 20)), (0, (30, 0, 20, 20))], 0),
    );
    let ids: Vec<i32> = out.iter_meta::<VideoRegionOfInterestMeta>().map(|m| m.id()).collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    let joined = meta::results_by_roi(&out);
    let labels: Vec<_> = joined.iter().map(|e| classified(e.result.as_ref().unwrap()).0.to_owned()).collect();
    assert_eq!(labels, ["red", "blue"]);
}

#[test]
fn roi_type_filter() {
    init();
    let frame = rgb_frame(64, 48, &[((0, 0, 20, 20), RED)]);
    let mut buf = buffer_with_rois(frame, &[(1, (0, 0, 20, 20))], 0);
    {
        let mut m = VideoRegionOfInterestMeta::add(buf.get_mut().unwrap(), "face", (30, 0, 20, 20));
        m.set_id(2);
    }
    let out = classify_one(&classifier(&[("roi-type", "sign")]), &rgb_caps(64, 48), buf);
    let r = meta::read(&out);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].roi_id, 1);
}

#[test]
fn frame_mode_classifies_the_whole_buffer() {
    init();
    let el = classifier(&[("mode", "frame")]);
    let out =
        classify_one(&el, &rgb_caps(32, 32), buffer_with_rois(rgb_frame(32, 32, &[((0, 0, 32, 32), BLUE)]), &[], 0));
    let rois: Vec<_> =
        out.iter_meta::<VideoRegionOfInterestMeta>().map(|m| (m.roi_type().to_owned(), m.rect())).collect();
    assert_eq!(rois, [(meta::FRAME_ROI_TYPE.to_owned(), (0, 0, 32, 32))]);
    let r = meta::read(&out);
    assert_eq!(classified(&r[0]).0, "blue");
}

#[test]
fn results_survive_videoconvert_and_videoscale() {
    init();
    let model = colors_model();
    let mut h = gst_check::Harness::new_parse(&format!(
        "odmclassify model={model} ! videoconvert ! video/x-raw,format=I420 ! videoscale ! capsfilter caps=video/x-raw,width=320,height=240"
    ));
    h.set_src_caps(rgb_caps(160, 120));
    let frame = rgb_frame(160, 120, &[((10, 10, 20, 20), RED), ((50, 50, 30, 30), GREEN)]);
    h.push(buffer_with_rois(frame, &[(11, (10, 10, 20, 20)), (12, (50, 50, 30, 30))], 0)).unwrap();
    let out = h.pull().unwrap();
    let joined = meta::results_by_roi(&out);
    assert_eq!(joined.len(), 2, "ROI metas survive the converters");
    for meta::RoiEntry { rect, id, result, .. } in &joined {
        let r = result.as_ref().unwrap_or_else(|| panic!("ROI {id} lost its result"));
        let (label, _, verdict) = classified(r);
        let (want_label, want_rect) = if *id == 11 { ("red", (20, 20, 40, 40)) } else { ("green", (100, 100, 60, 60)) };
        assert_eq!((label, verdict), (want_label, Verdict::Known));
        assert_eq!(*rect, want_rect, "the rectangle follows the scale");
        // The custom meta remembers the rectangle the classifier saw.
        assert_eq!(r.rect.2 * 2, rect.2);
    }
    // The README's claim: GStreamer 1.22.0 drops the params when a converter copies the ROI meta, and the custom meta
    // is what carries the results across. Elsewhere the params survive whole or not at all.
    let params = out.iter_meta::<VideoRegionOfInterestMeta>().filter(|m| meta::roi_param(m).is_some()).count();
    if gst::version() == (1, 22, 0, 0) {
        assert_eq!(params, 0, "GStreamer 1.22.0 dropped no ROI param: the README and meta.rs say it does");
    } else {
        assert!(params == 0 || params == 2, "{params} of 2 ROI params survived on {}", gst::version_string());
    }
    assert_eq!(meta::read(&out).len(), 2);
}

#[test]
fn every_input_format_gives_the_same_answers() {
    init();
    let model = colors_model();
    let patches =
        [((8, 8, 24, 24), RED), ((40, 8, 24, 24), BLUE), ((72, 8, 24, 24), ORANGE), ((8, 40, 24, 24), YELLOW)];
    let rois =
        [(1, (8, 8, 24, 24)), (2, (40, 8, 24, 24)), (3, (72, 8, 24, 24)), (4, (8, 40, 24, 24)), (5, (60, 40, 30, 20))];
    let want = [
        ("red", Verdict::Known),
        ("blue", Verdict::Known),
        ("", Verdict::Novelty),
        ("yellow", Verdict::Known),
        ("", Verdict::Anomaly),
    ];
    for format in ["RGB", "BGR", "RGBA", "BGRA", "RGBx", "BGRx", "NV12", "I420"] {
        let mut h = gst_check::Harness::new_parse(&format!(
            "videoconvert ! video/x-raw,format={format} ! odmclassify model={model}"
        ));
        h.set_src_caps(rgb_caps(100, 70));
        h.push(buffer_with_rois(rgb_frame(100, 70, &patches), &rois, 0)).unwrap();
        let out = h.pull().unwrap();
        let results = meta::read(&out);
        assert_eq!(results.len(), 5, "{format}");
        for ((id, _), (label, verdict)) in rois.iter().zip(want) {
            let (l, d, v) = classified(by_id(&results, *id));
            assert_eq!(v, verdict, "{format} ROI {id} distance {d}");
            if !label.is_empty() {
                assert_eq!(l, label, "{format} ROI {id}");
                assert!(d < 0.15, "{format} ROI {id} distance {d}");
            }
        }
    }
}

#[test]
fn caps_change_mid_stream() {
    init();
    let model = colors_model();
    let mut h = gst_check::Harness::new_parse(&format!("capsfilter name=cf ! odmclassify model={model}"));
    h.set_src_caps(rgb_caps(64, 48));
    h.push(buffer_with_rois(rgb_frame(64, 48, &[((0, 0, 20, 20), RED)]), &[(1, (0, 0, 20, 20))], 0)).unwrap();
    let first = h.pull().unwrap();
    h.set_src_caps(rgb_caps(200, 100));
    h.push(buffer_with_rois(rgb_frame(200, 100, &[((150, 60, 30, 30), GREEN)]), &[(1, (150, 60, 30, 30))], 1)).unwrap();
    let second = h.pull().unwrap();
    assert_eq!(classified(&meta::read(&first)[0]).0, "red");
    assert_eq!(classified(&meta::read(&second)[0]).0, "green");
}

#[test]
fn thresholds_change_while_playing() {
    init();
    let el = classifier(&[]);
    let mut h = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
    h.set_src_caps(rgb_caps(64, 48));
    let frame = rgb_frame(64, 48, &[((0, 0, 20, 20), ORANGE)]);
    let rois = [(1, (0, 0, 20, 20))];
    h.push(buffer_with_rois(frame.clone(), &rois, 0)).unwrap();
    assert_eq!(classified(&meta::read(&h.pull().unwrap())[0]).2, Verdict::Novelty);
    el.set_property("novelty-threshold", 3.0f64);
    h.push(buffer_with_rois(frame.clone(), &rois, 1)).unwrap();
    let r = meta::read(&h.pull().unwrap());
    assert_eq!(classified(&r[0]).2, Verdict::Known);
    assert_eq!((r[0].novelty_threshold, r[0].anomaly_threshold), (3.0, 3.0));
    el.set_property("novelty-threshold", 0.5f64);
    el.set_property("anomaly-threshold", 2.0f64);
    h.push(buffer_with_rois(frame.clone(), &rois, 2)).unwrap();
    assert_eq!(classified(&meta::read(&h.pull().unwrap())[0]).2, Verdict::Anomaly);
    // Back to the bundle's values.
    el.set_property("novelty-threshold", -1.0f64);
    el.set_property("anomaly-threshold", -1.0f64);
    h.push(buffer_with_rois(frame, &rois, 3)).unwrap();
    assert_eq!(classified(&meta::read(&h.pull().unwrap())[0]).2, Verdict::Novelty);
}

#[test]
fn model_property_is_refused_while_playing() {
    init();
    let el = classifier(&[]);
    let bus = gst::Bus::new();
    el.set_bus(Some(&bus));
    let mut h = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
    h.set_src_caps(rgb_caps(64, 48));
    let before: Option<String> = el.property("model");
    el.set_property("model", "/elsewhere/other.onnx");
    assert_eq!(el.property::<Option<String>>("model"), before, "model kept while PLAYING");
    // The element says so on the bus, naming the property and the state, and keeps classifying.
    let warnings: Vec<String> = std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning]))
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(format!("{} {}", w.error(), w.debug().unwrap_or_default())),
            _ => None,
        })
        .collect();
    assert!(
        warnings.len() == 1 && warnings[0].contains("model") && warnings[0].contains("PLAYING"),
        "one warning naming the property and the state: {warnings:?}"
    );
    h.push(buffer_with_rois(rgb_frame(64, 48, &[((0, 0, 20, 20), RED)]), &[(1, (0, 0, 20, 20))], 0)).unwrap();
    assert_eq!(classified(&meta::read(&h.pull().unwrap())[0]).0, "red");
}

#[test]
fn emit_messages_posts_results() {
    let model = colors_model();
    let msgs = run_launch(&format!(
        "videotestsrc pattern=blue num-buffers=3 ! video/x-raw,width=64,height=48 ! odmclassify mode=frame emit-messages=true model={model} ! fakesink"
    ))
    .unwrap();
    let results: Vec<_> = msgs.iter().filter(|s| s.name() == "odm-results").collect();
    assert_eq!(results.len(), 3);
    let arr = results[0].get::<gst::Array>("results").unwrap();
    let r = RoiResult::from_structure(&arr.first().unwrap().get::<gst::Structure>().unwrap()).unwrap();
    assert_eq!(classified(&r).0, "blue");
}

#[test]
fn repeated_state_changes() {
    // 100 cycles READY -> PAUSED -> PLAYING -> PAUSED -> READY -> NULL, with frames in flight and the latency timer
    // (threads started and stopped each time): every state change succeeds, every PLAYING phase classifies (a
    // sample reaches the appsink with its result), and nothing is posted as a warning or an error.
    init();
    let model = colors_model();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc pattern=red ! video/x-raw,width=64,height=48 ! odmclassify mode=frame model={model} \
         frames-in-flight=1 max-batch-latency=5 ! appsink name=out sync=false max-buffers=2 drop=true"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline.by_name("out").unwrap().downcast::<gst_app::AppSink>().unwrap();
    let bus = pipeline.bus().unwrap();
    let states = [gst::State::Ready, gst::State::Paused, gst::State::Playing, gst::State::Paused, gst::State::Ready];
    for cycle in 0..100 {
        for state in states {
            pipeline.set_state(state).unwrap_or_else(|e| panic!("cycle {cycle}: {state:?}: {e}"));
            if state == gst::State::Playing {
                let sample = sink
                    .try_pull_sample(gst::ClockTime::from_seconds(30))
                    .unwrap_or_else(|| panic!("cycle {cycle}: no frame came out while PLAYING"));
                let results = meta::read(sample.buffer().unwrap());
                assert_eq!(classified(&results[0]).0, "red", "cycle {cycle}");
            }
        }
        pipeline.set_state(gst::State::Null).unwrap();
        let bad: Vec<_> =
            std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning, gst::MessageType::Error]))
                .map(|m| format!("{m:?}"))
                .collect();
        assert!(bad.is_empty(), "cycle {cycle}: {bad:?}");
    }
}
