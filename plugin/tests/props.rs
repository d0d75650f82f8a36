// SPDX-License-Identifier: MIT OR Apache-2.0
//! Property-based tests: generated ROI metas (any u32 box, any id), frame sizes and formats, caps sequences, recorded
//! JSON lines and bundle mutations go into the real elements (real ONNX Runtime sessions on the committed colour
//! model). No element panics, and every ROI comes out with a result or a skip with a reason.
//!
//! Cases per property: `ODM_PROPTEST_CASES` (default 256, about a second each in CI); `scripts/props.sh` runs a long round.

mod common;

use std::fs;

use common::*;
use gst::prelude::*;
use gst_video::{VideoFormat, VideoRegionOfInterestMeta};
use gstodm::meta::{self, Outcome};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

fn config() -> Config {
    let cases = std::env::var("ODM_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// Every format the elements accept.
const FORMATS: &[VideoFormat] = gstodm::video::FORMATS;

fn caps(format: VideoFormat, w: u32, h: u32) -> gst::Caps {
    gst_video::VideoCapsBuilder::new().format(format).width(w as i32).height(h as i32).framerate((30, 1).into()).build()
}

/// A frame of `format` filled with bytes from `seed` (every byte pattern is a valid frame of any format).
fn frame_bytes(format: VideoFormat, w: u32, h: u32, seed: u64) -> Vec<u8> {
    let size = gst_video::VideoInfo::builder(format, w, h).build().unwrap().size();
    let mut x = seed | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Boxes from the frame's scale up to any u32, with the edges that overflow naive arithmetic.
fn any_rect() -> impl Strategy<Value = (u32, u32, u32, u32)> {
    let edge = prop_oneof![Just(0u32), Just(1), Just(i32::MAX as u32), Just(u32::MAX - 5), Just(u32::MAX)];
    prop_oneof![
        4 => (0u32..80, 0u32..80, 0u32..80, 0u32..80),
        2 => (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()),
        1 => (edge.clone(), edge.clone(), edge.clone(), edge),
    ]
}

fn any_id() -> impl Strategy<Value = i32> {
    prop_oneof![3 => 0i32..4, 1 => Just(i32::MAX), 1 => Just(i32::MIN), 2 => any::<i32>()]
}

/// An error a panicking element posted (gstreamer-rs turns a panic in a virtual method into one).
fn panicked(bus: &gst::Bus) -> Option<String> {
    std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Error])).find_map(|m| match m.view() {
        gst::MessageView::Error(e) if format!("{} {:?}", e.error(), e.debug()).contains("anicked") => {
            Some(e.error().to_string())
        }
        _ => None,
    })
}

/// Push `buffers` through `appsrc ! el ! appsink` to EOS: the buffers out, or the first error's text (a start that
/// fails, with the state change refused, is an error too — a harness would abort the process).
fn through(el: &gst::Element, caps: &gst::Caps, buffers: Vec<gst::Buffer>) -> Result<Vec<gst::Buffer>, String> {
    let pipeline = gst::Pipeline::new();
    let src = gst_app::AppSrc::builder().caps(caps).format(gst::Format::Time).build();
    let sink = gst_app::AppSink::builder().sync(false).build();
    pipeline.add_many([src.upcast_ref(), el, sink.upcast_ref()]).unwrap();
    gst::Element::link_many([src.upcast_ref(), el, sink.upcast_ref()]).unwrap();
    let bus = pipeline.bus().unwrap();
    let started = pipeline.set_state(gst::State::Playing);
    for b in buffers {
        if src.push_buffer(b).is_err() {
            break;
        }
    }
    let _ = src.end_of_stream();
    let mut out = Vec::new();
    let mut error = None;
    if started.is_ok() {
        while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(30)) {
            out.extend(sample.buffer_owned());
        }
    }
    // Errors are posted before the stream ends (or during the refused state change): no need to wait for one.
    if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = m.view() {
            error = Some(format!("{} ({})", e.error(), e.debug().unwrap_or_default()));
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    match (error, started) {
        (Some(e), _) => Err(e),
        (None, Err(_)) => Err("the state change failed without an error message".into()),
        (None, Ok(_)) => Ok(out),
    }
}

/// Every ROI meta has exactly one result, classified (finite distance) or skipped with a reason; ids are distinct.
fn check_results(out: &gst::BufferRef, n_rois: usize) -> Result<(), TestCaseError> {
    let mut ids: Vec<i32> = out.iter_meta::<VideoRegionOfInterestMeta>().map(|m| m.id()).collect();
    prop_assert_eq!(ids.len(), n_rois, "ROI metas kept");
    ids.sort_unstable();
    ids.dedup();
    prop_assert_eq!(ids.len(), n_rois, "ROI ids made distinct");
    let results = meta::read(out);
    prop_assert_eq!(results.len(), n_rois, "one result per ROI");
    for r in &results {
        prop_assert!(ids.binary_search(&r.roi_id).is_ok(), "result for an unknown ROI {}", r.roi_id);
        match &r.outcome {
            Outcome::Classified { distance, .. } => prop_assert!(distance.is_finite() && *distance >= 0.0),
            Outcome::Skipped { reason } => prop_assert!(!reason.is_empty()),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_rois_on_any_frame_get_a_result_or_a_reason(
        format in prop::sample::select(FORMATS.to_vec()),
        w in 1u32..72,
        h in 1u32..72,
        seed in any::<u64>(),
        rois in prop::collection::vec((any_id(), any_rect()), 0..24),
        batch in 1u32..9,
        min_size in 0u32..10,
        max_size in prop_oneof![Just(0u32), 1u32..64],
    ) {
        init();
        let el = classifier(&[]);
        el.set_property("batch-size", batch);
        el.set_property("min-size", min_size);
        el.set_property("max-size", max_size);
        let bus = gst::Bus::new();
        el.set_bus(Some(&bus));
        let mut hn = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
        hn.set_src_caps(caps(format, w, h));
        // Through odmoverlay too: it draws every box it gets, clipped.
        let flow = hn.push(buffer_with_rois(frame_bytes(format, w, h, seed), &rois, 0));
        prop_assert_eq!(flow, Ok(gst::FlowSuccess::Ok));
        let out = hn.pull().unwrap();
        prop_assert_eq!(out.size(), frame_bytes(format, w, h, seed).len());
        check_results(&out, rois.len())?;
        let mut ov = gst_check::Harness::new_parse("odmoverlay");
        ov.set_src_caps(caps(format, w, h));
        prop_assert_eq!(ov.push(out), Ok(gst::FlowSuccess::Ok));
        prop_assert_eq!(ov.pull().unwrap().size(), frame_bytes(format, w, h, seed).len());
        prop_assert_eq!(panicked(&bus), None);
        // Messages left on the bus hold the element: drop them, or every case keeps its element (and fds) alive.
        bus.set_flushing(true);
    }

    #[test]
    fn caps_that_change_between_buffers_are_followed(
        steps in prop::collection::vec(
            (prop::sample::select(FORMATS.to_vec()), 1u32..48, 1u32..48, prop::collection::vec((any_id(), any_rect()), 0..6)),
            1..6,
        ),
        seed in any::<u64>(),
    ) {
        init();
        let el = classifier(&[("mode", "roi")]);
        let bus = gst::Bus::new();
        el.set_bus(Some(&bus));
        let mut hn = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
        for (i, (format, w, h, rois)) in steps.iter().enumerate() {
            hn.set_src_caps(caps(*format, *w, *h));
            let flow = hn.push(buffer_with_rois(frame_bytes(*format, *w, *h, seed ^ i as u64), rois, i as u64));
            prop_assert_eq!(flow, Ok(gst::FlowSuccess::Ok));
            let out = hn.pull().unwrap();
            check_results(&out, rois.len())?;
        }
        prop_assert_eq!(panicked(&bus), None);
        // Messages left on the bus hold the element: drop them, or every case keeps its element (and fds) alive.
        bus.set_flushing(true);
    }

    #[test]
    fn recorded_lines_replay_or_are_refused_with_the_line(
        lines in prop::collection::vec(replay_line(), 0..12),
        strict in any::<bool>(),
        frames in 1u64..6,
    ) {
        init();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rois.jsonl");
        fs::write(&path, lines.join("\n")).unwrap();
        let el = gst::ElementFactory::make("odmroireplay")
            .property("location", path.to_str().unwrap())
            .property("strict", strict)
            .build()
            .unwrap();
        let buffers = (0..frames).map(|f| buffer_with_rois(rgb_frame(32, 24, &[]), &[], f * 33_333_333)).collect();
        match through(&el, &rgb_caps(32, 24), buffers) {
            Ok(out) => {
                prop_assert_eq!(out.len() as u64, frames, "no buffer lost");
                for b in &out {
                    for m in b.iter_meta::<VideoRegionOfInterestMeta>() {
                        let (x, y, w, h) = m.rect();
                        prop_assert!(x as u64 + w as u64 <= 32 && y as u64 + h as u64 <= 24, "not clipped: {:?}", m.rect());
                    }
                }
            }
            Err(e) => {
                prop_assert!(!e.contains("anicked"), "{}", e);
                prop_assert!(strict, "strict=false skips bad lines: {}", e);
                prop_assert!(e.contains("rois.jsonl") && e.contains("line"), "an error names file and line: {}", e);
            }
        }
    }

    #[test]
    fn mutated_bundles_load_or_are_refused_with_a_sentence(
        mutations in prop::collection::vec((0usize..64, json_value()), 1..4),
        delete in prop::collection::vec(0usize..64, 0..2),
    ) {
        init();
        let dir = tempfile::tempdir().unwrap();
        fs::copy(models().join("colors/colors.onnx"), dir.path().join("colors.onnx")).unwrap();
        let text = fs::read_to_string(models().join("colors/colors.odm.json")).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for (at, value) in mutations {
            mutate(&mut v, at, Some(value));
        }
        for at in delete {
            mutate(&mut v, at, None);
        }
        fs::write(dir.path().join("colors.odm.json"), v.to_string()).unwrap();
        let el = gst::ElementFactory::make("odmclassify")
            .property("model", dir.path().join("colors.onnx").to_str().unwrap())
            .build()
            .unwrap();
        let rois = [(1, (2, 2, 12, 12)), (2, (40, 0, 5, 5))];
        let buffers = vec![buffer_with_rois(rgb_frame(32, 24, &[((2, 2, 12, 12), RED)]), &rois, 0)];
        match through(&el, &rgb_caps(32, 24), buffers) {
            Ok(out) => {
                prop_assert_eq!(out.len(), 1);
                check_results(&out[0], 2)?;
            }
            Err(e) => {
                prop_assert!(!e.contains("anicked"), "{}", e);
                prop_assert!(e.contains("colors.odm.json") || e.contains("colors.onnx"), "{}", e);
            }
        }
    }
}

/// One step of a stream with per-object memory on: a frame, a reload of one of the bundles, a flush (a seek), new
/// frame size.
#[derive(Debug, Clone)]
enum Step {
    Frame(Vec<(i32, (u32, u32, u32, u32))>),
    Reload(usize),
    Flush,
    Caps(u32, u32),
}

fn any_step() -> impl Strategy<Value = Step> {
    let small_id = prop_oneof![4 => 0i32..6, 1 => any_id()];
    prop_oneof![
        6 => prop::collection::vec((small_id, any_rect()), 0..8).prop_map(Step::Frame),
        1 => (0usize..3).prop_map(Step::Reload),
        1 => Just(Step::Flush),
        1 => (8u32..72, 8u32..72).prop_map(|(w, h)| Step::Caps(w, h)),
    ]
}

/// Three bundles for the colour network: as committed, only its first two classes, and every label renamed. The
/// labels each may give.
fn memory_bundles(dir: &std::path::Path) -> Vec<(String, Vec<String>)> {
    fs::copy(models().join("colors/colors.onnx"), dir.join("colors.onnx")).unwrap();
    let text = fs::read_to_string(models().join("colors/colors.odm.json")).unwrap();
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit); 3] = [
        ("full", |_| {}),
        ("two", |v| v["classes"].as_array_mut().unwrap().truncate(2)),
        ("renamed", |v| {
            for c in v["classes"].as_array_mut().unwrap() {
                c["label"] = format!("x-{}", c["label"].as_str().unwrap()).into();
            }
        }),
    ];
    edits
        .iter()
        .map(|(name, edit)| {
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v["name"] = (*name).into();
            edit(&mut v);
            let labels = v["classes"].as_array().unwrap().iter().map(|c| c["label"].as_str().unwrap().to_owned());
            let path = dir.join(format!("{name}.odm.json"));
            fs::write(&path, v.to_string()).unwrap();
            (path.display().to_string(), labels.collect())
        })
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn reloads_flushes_and_caps_changes_with_memory_on_never_panic_nor_mislabel(
        steps in prop::collection::vec(any_step(), 1..24),
        vote in 0u32..7,
        interval in 0u32..6,
        in_flight in prop_oneof![3 => Just(0u32), 1 => 1u32..3],
        seed in any::<u64>(),
    ) {
        init();
        let dir = tempfile::tempdir().unwrap();
        let bundles = memory_bundles(dir.path());
        let el = gst::ElementFactory::make("odmclassify")
            .property("model", dir.path().join("colors.onnx").to_str().unwrap())
            .property("bundle", &bundles[0].0)
            .property("vote-window", vote)
            .property("reclassify-interval", interval)
            .property("frames-in-flight", in_flight)
            .build()
            .unwrap();
        let bus = gst::Bus::new();
        el.set_bus(Some(&bus));
        let mut hn = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
        let (mut w, mut h) = (48u32, 32u32);
        hn.set_src_caps(caps(VideoFormat::Rgb, w, h));
        // Per frame pushed (its pts): its ROI count and the bundle in force when it was cropped; frames pushed since
        // the last flush must all come out (a flush may drop frames in flight, as it drops the stream).
        let mut pushed = std::collections::BTreeMap::new();
        let (mut live, mut since_flush) = (0usize, Vec::new());
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Frame(rois) => {
                    let pts = i as u64;
                    let flow = hn.push(buffer_with_rois(frame_bytes(VideoFormat::Rgb, w, h, seed ^ pts), rois, pts));
                    prop_assert_eq!(flow, Ok(gst::FlowSuccess::Ok), "step {}", i);
                    pushed.insert(pts, (rois.len(), live));
                    since_flush.push(pts);
                }
                Step::Reload(k) => {
                    el.set_property("bundle", &bundles[*k].0);
                    let now: Option<String> = el.property("bundle");
                    prop_assert_eq!(now.as_deref(), Some(bundles[*k].0.as_str()), "step {}: the reload went live", i);
                    live = *k;
                }
                Step::Flush => {
                    prop_assert!(hn.push_event(gst::event::FlushStart::new()));
                    prop_assert!(hn.push_event(gst::event::FlushStop::new(true)));
                    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
                    prop_assert!(hn.push_event(gst::event::Segment::new(&segment)));
                    since_flush.clear();
                }
                Step::Caps(nw, nh) => {
                    (w, h) = (*nw, *nh);
                    hn.set_src_caps(caps(VideoFormat::Rgb, w, h));
                }
            }
        }
        prop_assert!(hn.push_event(gst::event::Eos::new()));
        let mut out = Vec::new();
        while let Some(b) = hn.try_pull() {
            let pts = b.pts().unwrap().nseconds();
            let (n, bundle) = pushed[&pts];
            check_results(&b, n)?;
            for r in meta::read(&b) {
                if let Outcome::Classified { label, .. } = &r.outcome {
                    prop_assert!(bundles[bundle].1.iter().any(|l| **l == **label),
                        "frame {}: {} is not a label of {}", pts, label, bundles[bundle].0);
                }
            }
            out.push(pts);
        }
        for pts in since_flush {
            prop_assert!(out.contains(&pts), "frame {} pushed after the last flush did not come out", pts);
        }
        prop_assert_eq!(panicked(&bus), None);
        bus.set_flushing(true);
    }
}

/// A recorded line: well-formed with odd numbers, or broken JSON, or JSON of the wrong shape.
fn replay_line() -> impl Strategy<Value = String> {
    let num = prop_oneof![-1e12f64..1e12, Just(f64::MAX), Just(-0.0), Just(1e300), (0u32..64).prop_map(f64::from),];
    let roi = (num.clone(), num.clone(), num.clone(), num, prop::option::of(any_id()), prop::option::of("[a-z]{0,6}"))
        .prop_map(|(x, y, w, h, id, label)| {
            let mut r = serde_json::json!({"x": x, "y": y, "w": w, "h": h});
            if let Some(id) = id {
                r["id"] = id.into();
            }
            if let Some(l) = label {
                r["label"] = l.into();
            }
            r
        });
    prop_oneof![
        6 => (0u64..8, prop::collection::vec(roi, 0..5))
            .prop_map(|(f, rois)| serde_json::json!({"frame": f, "rois": rois}).to_string()),
        1 => "[ -~]{0,40}",
        1 => json_value().prop_map(|v| v.to_string()),
        1 => Just(String::new()),
    ]
}

/// Any JSON value, nested a little.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
        "[ -~]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replace (or, with `None`, delete) the `at`-th node of `v` in depth-first order, counted modulo the node count.
fn mutate(v: &mut serde_json::Value, at: usize, with: Option<serde_json::Value>) {
    fn count(v: &serde_json::Value) -> usize {
        1 + match v {
            serde_json::Value::Array(a) => a.iter().map(count).sum(),
            serde_json::Value::Object(o) => o.values().map(count).sum(),
            _ => 0,
        }
    }
    fn walk(v: &mut serde_json::Value, at: &mut usize, with: &mut Option<Option<serde_json::Value>>) {
        let children: Vec<String> = match v {
            serde_json::Value::Object(o) => o.keys().cloned().collect(),
            serde_json::Value::Array(a) => (0..a.len()).map(|i| i.to_string()).collect(),
            _ => Vec::new(),
        };
        for key in children {
            if with.is_none() {
                return;
            }
            if *at == 0 {
                let w = with.take().flatten();
                match (v, w) {
                    (serde_json::Value::Object(o), Some(w)) => {
                        o.insert(key, w);
                    }
                    (serde_json::Value::Object(o), None) => {
                        o.remove(&key);
                    }
                    (serde_json::Value::Array(a), Some(w)) => a[key.parse::<usize>().unwrap()] = w,
                    (serde_json::Value::Array(a), None) => {
                        a.remove(key.parse::<usize>().unwrap());
                    }
                    _ => {}
                }
                return;
            }
            *at -= 1;
            let child = match v {
                serde_json::Value::Object(o) => o.get_mut(&key),
                serde_json::Value::Array(a) => a.get_mut(key.parse::<usize>().unwrap()),
                _ => None,
            };
            if let Some(c) = child {
                walk(c, at, with);
            }
        }
    }
    let n = count(v).saturating_sub(1).max(1);
    let mut at = at % n;
    walk(v, &mut at, &mut Some(with));
}
