// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmclassify's per-object memory (`reclassify-interval`, `vote-window`) is safe by construction: a remembered
//! result is used only for a box that overlaps the id's last box, under the bundle that made it; ids duplicated in a
//! frame share nothing; flushes, caps changes and reloads clear it; it stays bounded over any number of ids. And a
//! frame in flight is scored by the bundle it was cropped for. Real pipelines (gst_check::Harness), the committed
//! colour and sign models, real ONNX Runtime sessions.

mod common;

use std::fs;

use common::*;
use gst::prelude::*;
use gstodm::meta::{self, Outcome, RoiResult};

fn harness(el: &gst::Element, caps: gst::Caps) -> (gst_check::Harness, gst::Bus) {
    let bus = gst::Bus::new();
    el.set_bus(Some(&bus));
    let mut h = gst_check::Harness::with_element(el, Some("sink"), Some("src"));
    h.set_src_caps(caps);
    (h, bus)
}

fn messages(bus: &gst::Bus, kind: gst::MessageType) -> Vec<String> {
    std::iter::from_fn(|| bus.pop_filtered(&[kind]))
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(format!("{} {}", w.error(), w.debug().unwrap_or_default())),
            gst::MessageView::Info(i) => Some(format!("{} {}", i.error(), i.debug().unwrap_or_default())),
            gst::MessageView::Error(e) => Some(format!("{} {}", e.error(), e.debug().unwrap_or_default())),
            _ => None,
        })
        .collect()
}

/// The results of one buffer pushed through `h`, by box (the ROI metas' order on the buffer).
fn push(h: &mut gst_check::Harness, patches: &[(Rect, [u8; 3])], rois: &[(i32, Rect)], pts: u64) -> Vec<RoiResult> {
    h.push(buffer_with_rois(rgb_frame(96, 48, patches), rois, pts)).expect("the buffer is taken");
    let out = h.pull().expect("every buffer comes out");
    let results = meta::read(&out);
    assert_eq!(results.len(), rois.len(), "one result per ROI");
    results
}

const LEFT: Rect = (0, 0, 20, 20);
const RIGHT: Rect = (60, 0, 20, 20);

#[test]
fn duplicate_ids_whose_order_changes_never_share_memory() {
    // A red and a blue box both come with id 7, in alternating order: today the second in order got a fresh id, so
    // the reused result of one box landed on the other. Each box must keep its own colour on every frame.
    init();
    for props in [[("reclassify-interval", "5")], [("vote-window", "5")]] {
        let el = classifier(&props);
        let (mut h, _bus) = harness(&el, rgb_caps(96, 48));
        for f in 0..12u64 {
            let rois = if f % 2 == 0 { [(7, LEFT), (7, RIGHT)] } else { [(7, RIGHT), (7, LEFT)] };
            let results = push(&mut h, &[(LEFT, RED), (RIGHT, BLUE)], &rois, f);
            for r in &results {
                let want = if r.rect == LEFT { "red" } else { "blue" };
                assert_eq!(label(r), want, "{props:?}, frame {f}, box {:?}", r.rect);
            }
        }
    }
}

#[test]
fn ids_that_are_per_frame_ranks_do_not_carry_results_to_other_boxes() {
    // As odmproposals' ids without a tracker: id 0 is the first box found, whichever it is. The boxes swap ranks
    // every frame; results reused or voted by id would swap colours.
    init();
    for props in [[("reclassify-interval", "3")], [("vote-window", "5")]] {
        let el = classifier(&props);
        let (mut h, _bus) = harness(&el, rgb_caps(96, 48));
        for f in 0..12u64 {
            let rois = if f % 2 == 0 { [(0, LEFT), (1, RIGHT)] } else { [(0, RIGHT), (1, LEFT)] };
            for r in push(&mut h, &[(LEFT, RED), (RIGHT, BLUE)], &rois, f) {
                let want = if r.rect == LEFT { "red" } else { "blue" };
                assert_eq!(label(&r), want, "{props:?}, frame {f}, box {:?}", r.rect);
            }
        }
        // The boxes were never the same object twice: nothing was reused.
        let stats: gst::Structure = el.property("stats");
        assert_eq!(stats.get::<u64>("reused").unwrap(), 0, "{props:?}");
    }
}

#[test]
fn a_box_that_moves_a_little_keeps_its_memory() {
    // The other side of the overlap rule: a sign that moves 2 px a frame is the same object, its result is reused.
    init();
    let el = classifier(&[("reclassify-interval", "4")]);
    let (mut h, _bus) = harness(&el, rgb_caps(96, 48));
    let mut reused = Vec::new();
    for f in 0..8u32 {
        let b = (2 * f, 0, 20, 20);
        let r = push(&mut h, &[(b, RED)], &[(3, b)], f as u64);
        assert_eq!(label(&r[0]), "red");
        reused.push(r[0].reused);
    }
    assert_eq!(reused, [false, true, true, true, false, true, true, true]);
}

#[test]
fn a_flush_and_a_caps_change_clear_the_memory() {
    // The same id at the same place, but a blue sign after a flush (a seek) or new caps: not the red one's result.
    init();
    for event in ["flush", "caps"] {
        let el = classifier(&[("reclassify-interval", "50"), ("vote-window", "9")]);
        let (mut h, _bus) = harness(&el, rgb_caps(96, 48));
        for f in 0..3 {
            assert_eq!(label(&push(&mut h, &[(LEFT, RED)], &[(1, LEFT)], f)[0]), "red");
        }
        match event {
            "flush" => {
                assert!(h.push_event(gst::event::FlushStart::new()));
                assert!(h.push_event(gst::event::FlushStop::new(true)));
                assert!(h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new())));
                h.push(buffer_with_rois(rgb_frame(96, 48, &[(LEFT, BLUE)]), &[(1, LEFT)], 3)).unwrap();
            }
            _ => {
                h.set_src_caps(rgb_caps(96, 40));
                h.push(buffer_with_rois(rgb_frame(96, 40, &[(LEFT, BLUE)]), &[(1, LEFT)], 3)).unwrap();
            }
        }
        // Drop events the flush sent downstream; take the buffer.
        let out = h.pull().expect("the buffer comes out");
        let r = meta::read(&out);
        assert_eq!((label(&r[0]), r[0].reused), ("blue".to_owned(), false), "after a {event}");
    }
}

/// A frame of coloured noise blocks (deterministic), so that the sign model's crops fall near many classes.
fn noisy_frame(w: u32, h: u32, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut data = vec![0u8; (w * h * 3) as usize];
    for by in (0..h).step_by(8) {
        for bx in (0..w).step_by(8) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let c = [(x >> 24) as u8, (x >> 32) as u8, (x >> 40) as u8];
            for y in by..(by + 8).min(h) {
                for xx in bx..(bx + 8).min(w) {
                    let i = ((y * w + xx) * 3) as usize;
                    data[i..i + 3].copy_from_slice(&c);
                }
            }
        }
    }
    data
}

#[test]
fn a_reload_to_fewer_classes_with_memory_in_use_neither_panics_nor_mislabels() {
    // The panic: vote-window=5 reclassify-interval=3 on the sign model, then at frame 60 a bundle with only
    // the first 5 classes, on a frame where remembered results are due for reuse. They named class indices the new
    // bundle does not have ("index out of bounds: the len is 5 but the index is 6"). Memory of the old bundle must be
    // forgotten, and every result after the reload must name one of the 5 classes and the new bundle.
    init();
    let dir = tempfile::tempdir().unwrap();
    let full = model_copy(dir.path(), "signs", "full", |_| {});
    let five = model_copy(dir.path(), "signs", "five", |v| {
        v["name"] = "five".into();
        v["classes"].as_array_mut().unwrap().truncate(5);
    });
    let five_labels: Vec<String> = {
        let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&five).unwrap()).unwrap();
        v["classes"].as_array().unwrap().iter().map(|c| c["label"].as_str().unwrap().to_owned()).collect()
    };
    let el = gst::ElementFactory::make("odmclassify")
        .property("model", dir.path().join("full.onnx").display().to_string())
        .property("bundle", full.display().to_string())
        .property("vote-window", 5u32)
        .property("reclassify-interval", 3u32)
        .build()
        .unwrap();
    let (mut h, bus) = harness(&el, rgb_caps(160, 96));
    let rois: Vec<(i32, Rect)> = (0..8).map(|i| (i, ((i as u32 % 4) * 40, (i as u32 / 4) * 48, 40, 40))).collect();
    let mut outside_five_before = 0;
    for f in 0..90u64 {
        // Frame 61: objects were classified on frame 60 and their results are due for reuse.
        if f == 61 {
            el.set_property("bundle", five.display().to_string());
            let infos = messages(&bus, gst::MessageType::Info);
            assert!(infos.iter().any(|m| m.contains("is live")), "the reload went live: {infos:?}");
        }
        h.push(buffer_with_rois(noisy_frame(160, 96, f / 10), &rois, f)).expect("no panic, the buffer is taken");
        let results = meta::read(&h.pull().expect("every buffer comes out"));
        assert_eq!(results.len(), rois.len());
        for r in &results {
            let Outcome::Classified { label, .. } = &r.outcome else { panic!("frame {f}: {:?}", r.outcome) };
            if f < 61 {
                outside_five_before += !five_labels.iter().any(|l| **l == **label) as usize;
            } else {
                assert!(five_labels.iter().any(|l| **l == **label), "frame {f}: {label} is not in the new bundle");
                assert_eq!(&*r.model, "five", "frame {f}");
                if let Some(raw) = &r.raw {
                    assert!(five_labels.iter().any(|l| **l == *raw.label), "frame {f}: raw {}", raw.label);
                }
            }
        }
    }
    assert!(outside_five_before > 0, "the memory before the reload held classes the new bundle lacks");
    assert!(messages(&bus, gst::MessageType::Error).is_empty());
}

#[test]
fn frames_in_flight_are_scored_by_the_bundle_they_were_cropped_for() {
    // frames-in-flight=3: frames 0..5 are cropped under bundle "old"; the reload lands as frame 6 reaches the
    // element, while earlier frames are still waiting for their embeddings. Each frame's results must name the bundle
    // in force when it was cropped: "old" up to frame 5, "new" from frame 6 (the new bundle crops with another
    // normalisation, so scoring an old crop under it would be wrong).
    init();
    let dir = tempfile::tempdir().unwrap();
    let old = model_copy(dir.path(), "colors", "old", |v| v["name"] = "old".into());
    let new = model_copy(dir.path(), "colors", "new", |v| {
        v["name"] = "new".into();
        v["model"]["input"]["mean"] = serde_json::json!([0.5, 0.5, 0.5]);
    });
    let el = gst::ElementFactory::make("odmclassify")
        .property("model", dir.path().join("old.onnx").display().to_string())
        .property("bundle", old.display().to_string())
        .property("frames-in-flight", 3u32)
        .build()
        .unwrap();
    let (mut h, bus) = harness(&el, rgb_caps(160, 96));
    let sink = el.static_pad("sink").unwrap();
    let (el2, new2) = (el.clone(), new.display().to_string());
    sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if info.buffer().and_then(|b| b.pts()) == Some(gst::ClockTime::from_nseconds(6)) {
            el2.set_property("bundle", &new2);
        }
        gst::PadProbeReturn::Ok
    });
    // 300 ROIs a frame, so that each frame's inference outlasts the step to the next push (the old bundle's frames are
    // still in flight when the reload lands; the results must not depend on it either way). Buffers made beforehand.
    let rois: Vec<(i32, Rect)> = (0..300).map(|i| (i, ((i as u32 % 20) * 8, (i as u32 / 20) * 6, 12, 12))).collect();
    let buffers: Vec<gst::Buffer> =
        (0..12u64).map(|f| buffer_with_rois(rgb_frame(160, 96, &[(LEFT, RED)]), &rois, f)).collect();
    for b in buffers {
        h.push(b).unwrap();
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let mut names = Vec::new();
    while let Some(buf) = h.try_pull() {
        let r = meta::read(&buf);
        let models: std::collections::BTreeSet<String> = r.iter().map(|r| r.model.to_string()).collect();
        assert_eq!(models.len(), 1, "one bundle per frame");
        names.push((buf.pts().unwrap().nseconds(), r[0].model.to_string()));
    }
    let want: Vec<(u64, String)> = (0..12).map(|f| (f, if f < 6 { "old" } else { "new" }.to_owned())).collect();
    assert_eq!(names, want);
    assert!(messages(&bus, gst::MessageType::Error).is_empty());
}

#[test]
fn memory_stays_bounded_over_many_distinct_ids() {
    // 4 new ids a frame for 600 frames (2,400 objects): objects unseen for a while are forgotten.
    init();
    let el = classifier(&[("vote-window", "5")]);
    let (mut h, _bus) = harness(&el, rgb_caps(96, 48));
    let mut most = 0;
    for f in 0..600u64 {
        let rois: Vec<(i32, Rect)> = (0..4).map(|i| ((f * 4 + i) as i32, ((i as u32) * 22, 0, 20, 20))).collect();
        push(&mut h, &[(LEFT, RED)], &rois, f);
        let stats: gst::Structure = el.property("stats");
        most = most.max(stats.get::<u64>("tracked-objects").unwrap());
    }
    // Kept 2 * (0 + 5) + 30 = 40 frames, forgotten every 64: at most (40 + 64) frames of 4 ids.
    assert!(most > 0 && most <= 416, "{most} objects remembered at most");
}

#[test]
fn the_memory_properties_have_maximums() {
    init();
    let el = classifier(&[]);
    for (name, max) in [("vote-window", 64u32), ("reclassify-interval", 1000)] {
        let spec = el.find_property(name).unwrap();
        let spec = spec.downcast_ref::<gst::glib::ParamSpecUInt>().unwrap();
        assert_eq!(spec.maximum(), max, "{name}");
    }
    let iou = el.find_property("memory-iou").unwrap();
    let iou = iou.downcast_ref::<gst::glib::ParamSpecDouble>().unwrap();
    assert_eq!((iou.minimum(), iou.maximum(), iou.default_value()), (0.0, 1.0, 0.3));
}

#[test]
fn an_anomaly_threshold_below_the_novelty_threshold_is_said_on_the_bus() {
    // Kept as set (the property reads back what was set) but said: for those classes nothing is a novelty.
    init();
    let el = classifier(&[]);
    let (mut h, bus) = harness(&el, rgb_caps(96, 48));
    push(&mut h, &[(LEFT, RED)], &[(1, LEFT)], 0);
    el.set_property("anomaly-threshold", 0.001f64);
    assert_eq!(el.property::<f64>("anomaly-threshold"), 0.001);
    let w = messages(&bus, gst::MessageType::Warning);
    assert!(
        w.iter().any(|m| m.contains("anomaly-threshold = 0.001") && m.contains("below the novelty threshold")),
        "{w:?}"
    );
    let r = push(&mut h, &[(LEFT, ORANGE)], &[(1, LEFT)], 1);
    assert!(r[0].anomaly_threshold >= r[0].novelty_threshold, "the threshold in force is in the result");
}

#[test]
fn a_network_whose_output_is_not_finite_is_said_on_the_bus_once() {
    // A bundle std of 1e-45 scales the crop to infinities: the network's outputs are not finite. Every ROI is
    // skipped with a reason, and the bus says why (once, not every frame).
    init();
    let dir = tempfile::tempdir().unwrap();
    let tiny = model_copy(dir.path(), "colors", "tiny", |v| {
        v["model"]["input"]["std"] = serde_json::json!([1e-45, 1e-45, 1e-45]);
    });
    let el = gst::ElementFactory::make("odmclassify")
        .property("model", dir.path().join("tiny.onnx").display().to_string())
        .property("bundle", tiny.display().to_string())
        .build()
        .unwrap();
    let (mut h, bus) = harness(&el, rgb_caps(96, 48));
    for f in 0..3 {
        let r = push(&mut h, &[(LEFT, RED)], &[(1, LEFT)], f);
        assert_eq!(label(&r[0]), "skipped: invalid model output");
    }
    let w = messages(&bus, gst::MessageType::Warning);
    let said: Vec<_> = w.iter().filter(|m| m.contains("non-finite embedding")).collect();
    assert_eq!(said.len(), 1, "{w:?}");
    assert!(said[0].contains("tiny.odm.json"), "names the bundle: {}", said[0]);
}

#[test]
fn the_latency_of_frames_in_flight_on_absurd_frame_rates_saturates() {
    // 1 frame per 68 years, 64 frames in flight: 64 frame durations do not fit a clock time. The latency query
    // answers (saturated) rather than overflow.
    init();
    let el = classifier(&[("frames-in-flight", "64")]);
    let (mut h, _bus) = harness(&el, rgb_caps(96, 48));
    let caps = gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::Rgb)
        .width(96)
        .height(48)
        .framerate(gst::Fraction::new(1, i32::MAX))
        .build();
    h.set_src_caps(caps);
    h.push(buffer_with_rois(rgb_frame(96, 48, &[(LEFT, RED)]), &[(1, LEFT)], 0)).unwrap();
    let mut q = gst::query::Latency::new();
    assert!(el.static_pad("src").unwrap().query(&mut q), "the latency query is answered");
    let (_, min, _) = q.result();
    assert!(min >= gst::ClockTime::from_seconds(3600), "64 frame durations of 68 years: {min}");
}
