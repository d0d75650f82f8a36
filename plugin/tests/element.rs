// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmclassify as an ADAS pipeline uses it: odd frame sizes, degenerate ROIs, size limits, statistics and drift
//! messages, hot bundle reload, execution-provider fallback, two instances, flushes and EOS mid-stream. Real
//! pipelines, the committed colour model, real ONNX Runtime sessions.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use gst::prelude::*;
use gstodm::meta::{self, Outcome, RoiResult};
use odm_core::Verdict;

fn verdict(r: &RoiResult) -> Result<(&str, Verdict), &str> {
    match &r.outcome {
        Outcome::Classified { label, verdict, .. } => Ok((&**label, *verdict)),
        Outcome::Skipped { reason } => Err(reason.as_str()),
    }
}

fn by_id(results: &[RoiResult], id: i32) -> &RoiResult {
    results.iter().find(|r| r.roi_id == id).unwrap_or_else(|| panic!("no result for ROI {id}"))
}

/// A harness around `el` with a bus attached, so warnings the element posts can be read.
fn harness_with_bus(el: &gst::Element, caps: gst::Caps) -> (gst_check::Harness, gst::Bus) {
    let bus = gst::Bus::new();
    el.set_bus(Some(&bus));
    let mut h = gst_check::Harness::with_element(el, Some("sink"), Some("src"));
    h.set_src_caps(caps);
    (h, bus)
}

fn warnings(bus: &gst::Bus) -> Vec<String> {
    std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning]))
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(format!("{} {}", w.error(), w.debug().unwrap_or_default())),
            _ => None,
        })
        .collect()
}

/// A copy of the colour model whose bundle is edited by `edit` (same ONNX bytes, so the same network).
fn colour_copy(dir: &Path, stem: &str, edit: impl FnOnce(&mut serde_json::Value)) -> std::path::PathBuf {
    let src = models().join("colors");
    fs::copy(src.join("colors.onnx"), dir.join(format!("{stem}.onnx"))).unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(src.join("colors.odm.json")).unwrap()).unwrap();
    v["model"]["file"] = format!("{stem}.onnx").into();
    edit(&mut v);
    let path = dir.join(format!("{stem}.odm.json"));
    fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    path
}

#[test]
fn five_hundred_rois_in_one_frame_all_get_results() {
    init();
    let (w, h) = (800, 640);
    let colours = [RED, GREEN, BLUE, YELLOW, ORANGE];
    let mut patches = Vec::new();
    let mut rois = Vec::new();
    for i in 0..500u32 {
        let rect = ((i % 25) * 32, (i / 25) * 32, 24, 24);
        patches.push((rect, colours[(i % 5) as usize]));
        rois.push((i as i32, rect));
    }
    let el = classifier(&[("batch-size", "32")]);
    let (mut hn, _bus) = harness_with_bus(&el, rgb_caps(w, h));
    hn.push(buffer_with_rois(rgb_frame(w, h, &patches), &rois, 0)).unwrap();
    let out = hn.pull().unwrap();
    let results = meta::read(&out);
    assert_eq!(results.len(), 500);
    for (i, r) in rois.iter().enumerate() {
        let want = ["red", "green", "blue", "yellow"].get(i % 5).copied();
        match (verdict(by_id(&results, r.0)), want) {
            (Ok((l, Verdict::Known)), Some(w)) => assert_eq!(l, w, "ROI {i}"),
            (Ok((_, Verdict::Novelty)), None) => {}
            (got, want) => panic!("ROI {i}: {got:?}, wanted {want:?}"),
        }
    }
    let stats: gst::Structure = el.property("stats");
    assert_eq!(stats.get::<u64>("rois").unwrap(), 500);
    assert_eq!(stats.get::<u64>("inference-runs").unwrap(), 500u64.div_ceil(32), "as few runs as batch-size allows");
}

#[test]
fn degenerate_and_oversized_rois_are_skipped_with_a_reason() {
    init();
    let el = classifier(&[("max-size", "60")]);
    let (mut h, _bus) = harness_with_bus(&el, rgb_caps(160, 120));
    let rois = [
        (1, (10, 10, 0, 20)),                      // zero width
        (2, (10, 10, 20, 0)),                      // zero height
        (3, (500, 500, 20, 20)),                   // wholly outside
        (4, (150, 110, 30, 30)),                   // partly outside, 10x10 inside
        (5, (0, 0, 100, 100)),                     // larger than max-size
        (6, (20, 20, 20, 20)),                     // a normal red sign
        (7, (30, 30, u32::MAX - 5, u32::MAX - 5)), // a box whose far edge overflows u32 (130x90 inside)
    ];
    h.push(buffer_with_rois(rgb_frame(160, 120, &[((20, 20, 20, 20), RED)]), &rois, 0)).unwrap();
    let out = h.pull().unwrap();
    let results = meta::read(&out);
    assert_eq!(results.len(), 7, "every considered ROI gets a result");
    for (id, why) in
        [(1, "outside"), (2, "outside"), (3, "outside"), (5, "max-size 60: 100x100"), (7, "max-size 60: 130x90")]
    {
        let reason = verdict(by_id(&results, id)).expect_err("skipped");
        assert!(reason.contains(why), "ROI {id}: {reason}");
    }
    assert!(verdict(by_id(&results, 4)).is_ok(), "a partly visible ROI is classified");
    assert_eq!(verdict(by_id(&results, 6)), Ok(("red", Verdict::Known)));
    // max-size changes while PLAYING.
    el.set_property("max-size", 0u32);
    h.push(buffer_with_rois(rgb_frame(160, 120, &[]), &[(5, (0, 0, 100, 100))], 1)).unwrap();
    assert!(verdict(&meta::read(&h.pull().unwrap())[0]).is_ok());
}

#[test]
fn odd_sized_nv12_and_i420_frames_match_rgb() {
    init();
    let model = colors_model();
    let (w, h) = (101, 77);
    let patches = [((9, 7, 25, 23), RED), ((51, 33, 27, 31), BLUE)];
    // Odd positions and sizes: the chroma planes are subsampled with a half pixel left over.
    let rois = [(1, (9, 7, 25, 23)), (2, (51, 33, 27, 31)), (3, (85, 61, 15, 15))];
    let mut answers = Vec::new();
    for format in ["RGB", "NV12", "I420"] {
        let mut hn = gst_check::Harness::new_parse(&format!(
            "videoconvert ! video/x-raw,format={format} ! odmclassify model={model}"
        ));
        hn.set_src_caps(rgb_caps(w, h));
        // GStreamer pads RGB rows to 4 bytes.
        let tight = rgb_frame(w, h, &patches);
        let stride = (w as usize * 3).next_multiple_of(4);
        let mut padded = vec![0u8; stride * h as usize];
        for (row, src) in padded.chunks_exact_mut(stride).zip(tight.chunks_exact(w as usize * 3)) {
            row[..src.len()].copy_from_slice(src);
        }
        hn.push(buffer_with_rois(padded, &rois, 0)).unwrap();
        let out = hn.pull().unwrap();
        let mut r = meta::read(&out);
        r.sort_by_key(|r| r.roi_id);
        let v: Vec<_> = r.iter().map(|r| verdict(r).map(|(l, v)| (l.to_owned(), v)).unwrap()).collect();
        answers.push((format, v));
    }
    for (format, v) in &answers {
        assert_eq!(v[0], ("red".to_owned(), Verdict::Known), "{format}");
        assert_eq!(v[1], ("blue".to_owned(), Verdict::Known), "{format}");
        assert_eq!(v[2].1, Verdict::Anomaly, "{format}: grey background");
    }
}

#[test]
fn stats_and_drift_messages() {
    let model = colors_model();
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc pattern=red num-buffers=7 ! video/x-raw,width=64,height=48 ! \
         odmclassify name=c mode=frame stats-interval=3 model={model} ! fakesink"
    ))
    .unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut drift = Vec::new();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(30)) {
        match msg.view() {
            gst::MessageView::Eos(..) => break,
            gst::MessageView::Error(e) => panic!("{}", e.error()),
            gst::MessageView::Element(e) if e.structure().is_some_and(|s| s.name() == "odm-drift") => {
                drift.push(e.structure().unwrap().to_owned())
            }
            _ => {}
        }
    }
    let el = pipeline.downcast_ref::<gst::Bin>().unwrap().by_name("c").unwrap();
    let stats: gst::Structure = el.property("stats");
    pipeline.set_state(gst::State::Null).unwrap();

    assert_eq!(stats.get::<u64>("frames").unwrap(), 7);
    assert_eq!(stats.get::<u64>("rois").unwrap(), 7);
    assert_eq!(stats.get::<u64>("known").unwrap(), 7, "{stats}");
    assert_eq!(stats.get::<u64>("inference-runs").unwrap(), 7);
    assert_eq!(stats.get::<&str>("execution-provider").unwrap(), "cpu");
    let (mean, p99) = (stats.get::<f64>("inference-mean-us").unwrap(), stats.get::<f64>("inference-p99-us").unwrap());
    assert!(mean > 0.0 && p99 > 0.0, "{stats}");

    // 7 frames at an interval of 3: two messages, each over 3 frames.
    assert_eq!(drift.len(), 2, "{drift:?}");
    for d in &drift {
        assert_eq!(d.get::<u32>("frames").unwrap(), 3);
        assert_eq!(d.get::<u64>("rois").unwrap(), 3);
        assert_eq!(d.get::<f64>("known-rate").unwrap(), 1.0);
        let hist = d.get::<gst::Array>("histogram").unwrap();
        assert_eq!(hist.len(), 21);
        let total: u64 = hist.iter().map(|v| v.get::<u64>().unwrap()).sum();
        assert_eq!(total, 3, "every classified ROI is in the histogram");
        // Red is at distance ~0 from its centre: the first bin.
        assert_eq!(hist.first().unwrap().get::<u64>().unwrap(), 3);
        assert_eq!(d.get::<f64>("histogram-max").unwrap(), 5.0, "twice the bundle's anomaly threshold");
    }
}

#[test]
fn bundle_hot_reload_swaps_between_frames_and_refuses_bad_files() {
    init();
    let dir = tempfile::tempdir().unwrap();
    colour_copy(dir.path(), "colors", |_| {});
    let model = dir.path().join("colors.onnx");
    // An enrolled variant of the same network: other labels, a wider novelty threshold.
    let german = colour_copy(dir.path(), "colors-de", |v| {
        v["name"] = "colors-de".into();
        for (c, de) in v["classes"].as_array_mut().unwrap().iter_mut().zip(["rot", "gruen", "blau", "gelb"]) {
            c["label"] = de.into();
        }
        v["score"]["novelty_threshold"] = 2.4.into();
    });
    fs::copy(model.as_path(), dir.path().join("colors-de.onnx")).unwrap();
    let el = gst::ElementFactory::make("odmclassify").property("model", model.to_str().unwrap()).build().unwrap();
    let (mut h, bus) = harness_with_bus(&el, rgb_caps(64, 48));
    let frame = || rgb_frame(64, 48, &[((0, 0, 20, 20), RED), ((30, 0, 20, 20), ORANGE)]);
    let rois = [(1, (0, 0, 20, 20)), (2, (30, 0, 20, 20))];
    let push = |h: &mut gst_check::Harness, pts| {
        h.push(buffer_with_rois(frame(), &rois, pts)).unwrap();
        meta::read(&h.pull().unwrap())
    };
    let r = push(&mut h, 0);
    assert_eq!(verdict(by_id(&r, 1)), Ok(("red", Verdict::Known)));
    assert_eq!(verdict(by_id(&r, 2)).unwrap().1, Verdict::Novelty);

    el.set_property("bundle", german.to_str().unwrap());
    let r = push(&mut h, 1);
    assert_eq!(verdict(by_id(&r, 1)), Ok(("rot", Verdict::Known)));
    assert_eq!(verdict(by_id(&r, 2)).unwrap().1, Verdict::Known, "orange within the new threshold");
    assert_eq!(&*by_id(&r, 1).model, "colors-de");
    assert!(warnings(&bus).is_empty());

    // Bad files: malformed, another network (hash), missing. Each refused with a warning; the German bundle stays.
    let malformed = dir.path().join("bad.odm.json");
    fs::write(&malformed, "{ not json").unwrap();
    let other_net = colour_copy(dir.path(), "other", |v| v["model"]["sha256"] = "00".repeat(32).into());
    for bad in [malformed.clone(), other_net, dir.path().join("missing.odm.json")] {
        el.set_property("bundle", bad.to_str().unwrap());
        let w = warnings(&bus);
        assert_eq!(w.len(), 1, "{bad:?}: {w:?}");
        assert!(w[0].contains(bad.file_name().unwrap().to_str().unwrap()) && w[0].contains("colors-de.odm.json"));
        let r = push(&mut h, 2);
        assert_eq!(verdict(by_id(&r, 1)), Ok(("rot", Verdict::Known)), "{bad:?}");
        assert_eq!(el.property::<Option<String>>("bundle").as_deref(), german.to_str());
    }
}

#[test]
fn reload_of_a_bundle_for_a_different_input_is_refused() {
    init();
    let dir = tempfile::tempdir().unwrap();
    colour_copy(dir.path(), "colors", |_| {});
    let wider = colour_copy(dir.path(), "wider", |v| {
        v["model"]["input"]["width"] = 64.into();
    });
    let el = gst::ElementFactory::make("odmclassify")
        .property("model", dir.path().join("colors.onnx").to_str().unwrap())
        .build()
        .unwrap();
    let (mut h, bus) = harness_with_bus(&el, rgb_caps(64, 48));
    el.set_property("bundle", wider.to_str().unwrap());
    let w = warnings(&bus);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("wider.odm.json"), "{w:?}");
    h.push(buffer_with_rois(rgb_frame(64, 48, &[((0, 0, 20, 20), BLUE)]), &[(1, (0, 0, 20, 20))], 0)).unwrap();
    assert_eq!(verdict(&meta::read(&h.pull().unwrap())[0]), Ok(("blue", Verdict::Known)));
}

#[test]
fn gpu_providers_fall_back_to_the_cpu_or_fail_when_asked() {
    let model = colors_model();
    for provider in ["cuda", "tensorrt"] {
        let (warns, err, els) = launch_warnings(&format!(
            "videotestsrc pattern=blue num-buffers=2 ! video/x-raw,width=32,height=32 ! \
             odmclassify name=c mode=frame execution-provider={provider} tensorrt-fp16=true \
             tensorrt-cache=/tmp/odm-trt-cache model={model} ! fakesink"
        ));
        assert!(err.is_none(), "{err:?}");
        let c = els.iter().find(|e| e.name() == "c").unwrap();
        let stats: gst::Structure = c.property("stats");
        let used = stats.get::<&str>("execution-provider").unwrap().to_owned();
        // On a machine whose ONNX Runtime has the provider and a GPU, it runs there; elsewhere (CI: the CPU wheel)
        // the element says why on the bus and runs on the CPU.
        if used == "cpu" {
            assert!(
                warns.iter().any(|w| w.contains(provider) && w.contains("running on the CPU")),
                "{provider}: {warns:?}"
            );
        } else {
            assert_eq!(used, provider);
            assert!(warns.is_empty(), "{warns:?}");
        }
        assert_eq!(stats.get::<u64>("frames").unwrap(), 2);

        if used == "cpu" {
            let (_, err, _) = launch_warnings(&format!(
                "videotestsrc num-buffers=2 ! video/x-raw,width=32,height=32 ! \
                 odmclassify mode=frame execution-provider={provider} fallback=false model={model} ! fakesink"
            ));
            let err = err.expect("fallback=false turns the missing provider into an error");
            assert!(err.contains(provider) && err.contains("fallback=false") && err.contains("colors.onnx"), "{err}");
        }
    }
}

#[test]
fn two_instances_with_different_models_in_one_pipeline() {
    init();
    let dir = tempfile::tempdir().unwrap();
    colour_copy(dir.path(), "signs", |v| v["name"] = "signs".into());
    colour_copy(dir.path(), "lights", |v| {
        v["name"] = "lights".into();
        for (c, l) in v["classes"].as_array_mut().unwrap().iter_mut().zip(["stop-light", "go-light", "b", "amber"]) {
            c["label"] = l.into();
        }
    });
    let (a, b) = (dir.path().join("signs.onnx"), dir.path().join("lights.onnx"));
    let mut h = gst_check::Harness::new_parse(&format!(
        "odmclassify roi-type=sign model={} ! odmclassify roi-type=light model={}",
        a.display(),
        b.display()
    ));
    h.set_src_caps(rgb_caps(64, 48));
    let mut buf = buffer_with_rois(rgb_frame(64, 48, &[((0, 0, 20, 20), RED), ((30, 0, 20, 20), GREEN)]), &[], 0);
    {
        let b = buf.get_mut().unwrap();
        gst_video::VideoRegionOfInterestMeta::add(b, "sign", (0, 0, 20, 20)).set_id(1);
        gst_video::VideoRegionOfInterestMeta::add(b, "light", (30, 0, 20, 20)).set_id(2);
    }
    h.push(buf).unwrap();
    let out = h.pull().unwrap();
    let r = meta::read(&out);
    assert_eq!(r.len(), 2, "both instances' results on the buffer");
    assert_eq!((verdict(by_id(&r, 1)), &*by_id(&r, 1).model), (Ok(("red", Verdict::Known)), "signs"));
    assert_eq!((verdict(by_id(&r, 2)), &*by_id(&r, 2).model), (Ok(("go-light", Verdict::Known)), "lights"));
}

#[test]
fn flush_and_eos_mid_stream_lose_no_buffer() {
    // On the synchronous path and with frames in flight: 4 buffers then EOS: all 4 are out, with results, by the time
    // EOS has passed (the frames in flight are drained before it); a flush then clears the EOS and 6 more buffers
    // and a second EOS follow: all 6 are out too. 10 in, 10 out, in order, each classified.
    init();
    for in_flight in ["0", "2"] {
        let el = classifier(&[("frames-in-flight", in_flight)]);
        let (mut h, bus) = harness_with_bus(&el, rgb_caps(64, 48));
        let frame = rgb_frame(64, 48, &[((0, 0, 20, 20), YELLOW)]);
        let rois = [(1, (0, 0, 20, 20))];
        let mut out = Vec::new();
        let mut take = |h: &mut gst_check::Harness, want: usize, when: &str| {
            assert_eq!(h.buffers_in_queue() as usize, want, "frames-in-flight {in_flight}: {when}");
            while let Some(b) = h.try_pull() {
                assert_eq!(verdict(&meta::read(&b)[0]), Ok(("yellow", Verdict::Known)));
                out.push(b.pts().unwrap().nseconds());
            }
        };
        for pts in 0..4u64 {
            h.push(buffer_with_rois(frame.clone(), &rois, pts)).unwrap();
        }
        assert!(h.push_event(gst::event::Eos::new()));
        take(&mut h, 4, "at the first EOS");
        assert!(h.push_event(gst::event::FlushStart::new()));
        assert!(h.push_event(gst::event::FlushStop::new(true)));
        // After a flushing stop the segment must be sent again.
        assert!(h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new())));
        for pts in 4..10u64 {
            h.push(buffer_with_rois(frame.clone(), &rois, pts)).unwrap();
        }
        assert!(h.push_event(gst::event::Eos::new()));
        take(&mut h, 6, "at the second EOS");
        assert_eq!(out, (0..10).collect::<Vec<u64>>(), "frames-in-flight {in_flight}");
        let stats: gst::Structure = el.property("stats");
        assert_eq!(stats.get::<u64>("frames").unwrap(), 10);
        assert!(warnings(&bus).is_empty());
    }
}

#[test]
fn a_bundle_that_never_says_novelty_is_warned_about_on_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(models().join("colors/colors.onnx"), dir.path().join("colors.onnx")).unwrap();
    std::fs::copy(models().join("colors/colors.odm.json"), dir.path().join("colors.odm.json")).unwrap();
    let mut b = odm_core::Bundle::load(&dir.path().join("colors.odm.json")).unwrap();
    let model = dir.path().join("colors.onnx");
    let line = |extra: &str| {
        format!(
            "videotestsrc num-buffers=1 ! video/x-raw,width=32,height=32 ! odmclassify mode=frame model={} {extra} ! \
             fakesink",
            model.display()
        )
    };
    let collapse = |w: &[String]| w.iter().any(|w| w.contains("no crop will be called a novelty"));
    let (warns, err, _) = launch_warnings(&line(""));
    assert!(err.is_none() && !collapse(&warns), "{warns:?} {err:?}");
    b.score.anomaly_threshold = b.score.novelty_threshold;
    b.save(&dir.path().join("colors.odm.json")).unwrap();
    let (warns, err, _) = launch_warnings(&line(""));
    assert!(err.is_none(), "{err:?}");
    assert!(collapse(&warns) && warns.iter().any(|w| w.contains("colors.odm.json")), "{warns:?}");
    // An anomaly-threshold set on the element gives the novelty band back: no warning.
    let (warns, _, _) = launch_warnings(&line("anomaly-threshold=2.5"));
    assert!(!collapse(&warns), "{warns:?}");
}

fn infos(bus: &gst::Bus) -> Vec<String> {
    std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Info]))
        .filter_map(|m| match m.view() {
            gst::MessageView::Info(i) => Some(i.error().to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn reload_checks_the_bundle_against_the_running_network_not_the_file_on_disk() {
    // The network and its bundle are overwritten in place by another pair (another network: other bytes, another
    // hash; a bundle made for it, other labels). Setting `bundle` must not pair the running network with the new
    // centres: the session still runs the bytes it loaded at start.
    init();
    let dir = tempfile::tempdir().unwrap();
    let bundle = colour_copy(dir.path(), "colors", |_| {});
    let model = dir.path().join("colors.onnx");
    let el = gst::ElementFactory::make("odmclassify").property("model", model.to_str().unwrap()).build().unwrap();
    let (mut h, bus) = harness_with_bus(&el, rgb_caps(64, 48));
    let mut push = |pts| {
        h.push(buffer_with_rois(rgb_frame(64, 48, &[((0, 0, 20, 20), RED)]), &[(1, (0, 0, 20, 20))], pts)).unwrap();
        meta::read(&h.pull().unwrap())
    };
    assert_eq!(verdict(&push(0)[0]), Ok(("red", Verdict::Known)));

    let bytes = fs::read(&model).unwrap();
    let at = bytes.windows(16).position(|w| w == b"fixed linear map").expect("the fixture's doc string");
    let mut other = bytes.clone();
    other[at..at + 16].copy_from_slice(b"FIXED LINEAR MAP");
    fs::write(&model, &other).unwrap();
    let sha = odm_core::bundle::sha256_file(&model).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&bundle).unwrap()).unwrap();
    v["model"]["sha256"] = sha.into();
    v["classes"][0]["label"] = "rot".into();
    fs::write(&bundle, v.to_string()).unwrap();

    el.set_property("bundle", bundle.to_str().unwrap());
    let w = warnings(&bus);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("made for another network") && w[0].contains(&model.display().to_string()), "{w:?}");
    assert!(infos(&bus).is_empty());
    assert_eq!(verdict(&push(1)[0]), Ok(("red", Verdict::Known)), "the loaded bundle stays");
}

#[test]
fn a_successful_reload_says_which_bundle_is_live_and_warnings_are_sentences() {
    init();
    let dir = tempfile::tempdir().unwrap();
    colour_copy(dir.path(), "colors", |_| {});
    let renamed = colour_copy(dir.path(), "renamed", |v| v["name"] = "colors-v2".into());
    let el = gst::ElementFactory::make("odmclassify")
        .property("model", dir.path().join("colors.onnx").to_str().unwrap())
        .build()
        .unwrap();
    let (_h, bus) = harness_with_bus(&el, rgb_caps(64, 48));
    el.set_property("bundle", renamed.to_str().unwrap());
    let i = infos(&bus);
    assert_eq!(i.len(), 1, "{i:?}");
    assert!(i[0].contains("renamed.odm.json (colors-v2, 4 classes) is live in place of"), "{i:?}");
    // A refused file: the warning is a sentence, without Rust or GStreamer debug text.
    el.set_property("bundle", dir.path().join("missing.odm.json").to_str().unwrap());
    let w = warnings(&bus);
    assert_eq!(w.len(), 1);
    for debris in ["Some(", "None", "Error {", "ErrorMessage", " at plugin/"] {
        assert!(!w[0].contains(debris), "{debris:?} in {w:?}");
    }
    assert!(
        w[0].starts_with("bundle ") && w[0].contains("missing.odm.json refused, ") && w[0].contains("stays"),
        "{w:?}"
    );
}

#[test]
fn a_sync_bus_handler_may_set_properties_from_the_elements_messages() {
    // Applications react to `odm-drift` and `odm-results` in a sync handler, which runs in the streaming thread:
    // setting a threshold or a bundle there must not deadlock (the element posts with no lock held).
    init();
    let dir = tempfile::tempdir().unwrap();
    colour_copy(dir.path(), "colors", |_| {});
    let same = colour_copy(dir.path(), "same", |_| {});
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc pattern=red num-buffers=30 ! video/x-raw,width=64,height=48 ! odmclassify name=c mode=frame \
         stats-interval=5 emit-messages=true model={} ! fakesink",
        dir.path().join("colors.onnx").display()
    ))
    .unwrap();
    let c = pipeline.downcast_ref::<gst::Bin>().unwrap().by_name("c").unwrap();
    let weak = c.downgrade();
    let seen = std::sync::Arc::new(std::sync::Mutex::new((0u32, 0u32)));
    let seen2 = seen.clone();
    let bus = pipeline.bus().unwrap();
    bus.set_sync_handler(move |_, msg| {
        let (Some(c), Some(s)) = (weak.upgrade(), msg.structure()) else { return gst::BusSyncReply::Pass };
        match s.name().as_str() {
            "odm-drift" => {
                c.set_property("novelty-threshold", 1.0f64);
                let _: gst::Structure = c.property("stats");
                seen2.lock().unwrap().0 += 1;
            }
            "odm-results" if seen2.lock().unwrap().1 < 3 => {
                c.set_property("bundle", same.to_str().unwrap());
                seen2.lock().unwrap().1 += 1;
            }
            _ => {}
        }
        gst::BusSyncReply::Pass
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    let end =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(60), &[gst::MessageType::Eos, gst::MessageType::Error]);
    assert!(matches!(end.as_ref().map(|m| m.view()), Some(gst::MessageView::Eos(..))), "no EOS (deadlock?): {end:?}");
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(*seen.lock().unwrap(), (6, 3));
    assert_eq!(c.property::<f64>("novelty-threshold"), 1.0);
}

#[test]
fn roi_ids_next_to_i32_max_get_distinct_fresh_ids() {
    // Upstream ids of i32::MAX: the frame ROI of mode=frame, the ids given to colliding metas and odmproposals' ids
    // are all distinct, with no overflow (`max() + 1` panicked in a debug build).
    init();
    let ids_of = |b: &gst::BufferRef| -> Vec<i32> {
        b.iter_meta::<gst_video::VideoRegionOfInterestMeta>().map(|m| m.id()).collect()
    };
    let distinct = |ids: &[i32]| {
        let mut s = ids.to_vec();
        s.sort_unstable();
        s.dedup();
        s.len() == ids.len()
    };
    let rois = [(i32::MAX, (0, 0, 20, 20)), (i32::MAX, (30, 0, 20, 20)), (i32::MAX - 1, (0, 24, 20, 20))];
    for mode in ["frame", "roi"] {
        let el = classifier(&[("mode", mode)]);
        let (mut h, _bus) = harness_with_bus(&el, rgb_caps(64, 48));
        h.push(buffer_with_rois(rgb_frame(64, 48, &[((0, 0, 64, 48), RED)]), &rois, 0)).unwrap();
        let out = h.pull().unwrap();
        let ids = ids_of(&out);
        assert_eq!(ids.len(), if mode == "frame" { 4 } else { 3 });
        assert!(distinct(&ids), "{mode}: {ids:?}");
        let results = meta::read(&out);
        assert_eq!(results.len(), if mode == "frame" { 1 } else { 3 });
        assert!(results.iter().all(|r| ids.contains(&r.roi_id)), "{mode}");
    }
    let mut h = gst_check::Harness::new_parse("odmproposals");
    h.set_src_caps(rgb_caps(160, 120));
    let frame = rgb_frame(160, 120, &[((0, 0, 160, 120), GREY), ((20, 20, 30, 30), RED), ((90, 40, 30, 30), BLUE)]);
    h.push(buffer_with_rois(frame, &rois[..2], 0)).unwrap();
    let ids = ids_of(&h.pull().unwrap());
    assert!(ids.len() > 2 && distinct(&ids[1..]), "{ids:?}");
}

#[test]
fn a_bottom_up_frame_with_a_negative_stride_is_refused_with_a_sentence() {
    // A video meta describing rows bottom-up (negative stride): GStreamer maps it, and odm refuses it by name instead
    // of reading the stride as a huge unsigned number.
    init();
    let (w, h) = (32u32, 24u32);
    let row = (w * 3) as i32;
    let el = classifier(&[]);
    let (mut hn, bus) = harness_with_bus(&el, rgb_caps(w, h));
    let mut buf = buffer_with_rois(rgb_frame(w, h, &[]), &[(1, (2, 2, 10, 10))], 0);
    gst_video::VideoMeta::add_full(
        buf.get_mut().unwrap(),
        gst_video::VideoFrameFlags::empty(),
        gst_video::VideoFormat::Rgb,
        w,
        h,
        &[(row * (h as i32 - 1)) as usize],
        &[-row],
    )
    .unwrap();
    assert_eq!(hn.push(buf), Err(gst::FlowError::Error));
    let msg = bus.pop_filtered(&[gst::MessageType::Error]).expect("an error on the bus");
    let gst::MessageView::Error(e) = msg.view() else { unreachable!() };
    let text = e.error().to_string();
    assert!(text.contains("plane 0 has a negative stride (-96): bottom-up frames are not supported"), "{text}");
}

#[test]
fn elements_with_one_model_instance_id_share_a_session() {
    init();
    let dir = tempfile::tempdir().unwrap();
    colour_copy(dir.path(), "colors", |_| {});
    let model = dir.path().join("colors.onnx");
    let id = "shared-colors";
    let make = || {
        gst::ElementFactory::make("odmclassify")
            .property("model", model.to_str().unwrap())
            .property("model-instance-id", id)
            .build()
            .unwrap()
    };
    let users = |el: &gst::Element| el.property::<gst::Structure>("stats").get::<u32>("instance-users").unwrap();
    let (a, b) = (make(), make());
    let (mut ha, _ba) = harness_with_bus(&a, rgb_caps(64, 48));
    let (mut hb, _bb) = harness_with_bus(&b, rgb_caps(64, 48));
    assert_eq!((users(&a), users(&b)), (2, 2), "one session, two elements");
    let stats = a.property::<gst::Structure>("stats");
    assert_eq!(stats.get::<&str>("model-instance-id").unwrap(), id);
    let check = |h: &mut gst_check::Harness, colour, label| {
        h.push(buffer_with_rois(rgb_frame(64, 48, &[((0, 0, 20, 20), colour)]), &[(1, (0, 0, 20, 20))], 0)).unwrap();
        assert_eq!(verdict(&meta::read(&h.pull().unwrap())[0]), Ok((label, Verdict::Known)));
    };
    check(&mut ha, RED, "red");
    check(&mut hb, BLUE, "blue");
    check(&mut ha, GREEN, "green");
    // One stream stops; the other keeps running on the session.
    drop(ha);
    a.set_state(gst::State::Null).unwrap();
    assert_eq!(users(&b), 1);
    hb.push(buffer_with_rois(rgb_frame(64, 48, &[((0, 0, 20, 20), YELLOW)]), &[(1, (0, 0, 20, 20))], 1)).unwrap();
    assert_eq!(verdict(&meta::read(&hb.pull().unwrap())[0]), Ok(("yellow", Verdict::Known)));

    // Another model under the same id is refused, naming the id; so is a bundle that does not fit the shared network.
    let err = run_launch(&format!(
        "videotestsrc num-buffers=1 ! odmclassify mode=frame model-instance-id={id} model={} ! fakesink",
        models().join("signs/signs.onnx").display()
    ))
    .unwrap_err();
    assert!(err.contains(&format!("model-instance-id \"{id}\" is already running the network with sha256")), "{err}");
    let wider = colour_copy(dir.path(), "wider", |v| v["model"]["input"]["width"] = 64.into());
    let err = run_launch(&format!(
        "videotestsrc num-buffers=1 ! odmclassify mode=frame model-instance-id={id} model={} bundle={} ! fakesink",
        model.display(),
        wider.display()
    ))
    .unwrap_err();
    assert!(err.contains("wider.odm.json") && err.contains("does not match the running network"), "{err}");
}

#[test]
fn two_pipelines_on_one_shared_instance_run_at_the_same_time() {
    // Two streaming threads on one shared session: frames of both go into common inference runs (the instance's one
    // thread batches what is waiting, whichever stream it came from), and every frame of both still gets its own,
    // right answer.
    init();
    let line = |pattern: &str| {
        format!(
            "videotestsrc pattern={pattern} num-buffers=1500 ! video/x-raw,width=48,height=32 ! odmclassify \
             mode=frame model-instance-id=concurrent emit-messages=true model={} ! fakesink",
            colors_model()
        )
    };
    let go = std::sync::Arc::new(std::sync::Barrier::new(2));
    let threads: Vec<_> = [("red", "red"), ("blue", "blue")]
        .into_iter()
        .map(|(pattern, label)| {
            let (l, go) = (line(pattern), go.clone());
            std::thread::spawn(move || {
                go.wait();
                let run = launch_line(&l);
                assert_eq!(run.error, None);
                let labels: Vec<String> = run
                    .messages
                    .iter()
                    .filter(|s| s.name() == "odm-results")
                    .map(|s| {
                        let r = s.get::<gst::Array>("results").unwrap();
                        r.first().unwrap().get::<gst::Structure>().unwrap().get::<String>("label").unwrap()
                    })
                    .collect();
                let classify = run.elements.iter().find(|e| e.name().starts_with("odmclassify")).unwrap();
                let stats = classify.property::<gst::Structure>("stats");
                (label, labels, stats.get::<u64>("shared-runs").unwrap(), stats.get::<u64>("frames").unwrap())
            })
        })
        .collect();
    let mut shared = 0;
    for t in threads {
        let (label, labels, shared_runs, frames) = t.join().unwrap();
        assert_eq!((labels.len(), frames), (1500, 1500));
        assert!(labels.iter().all(|l| l == label), "{label}: {labels:?}");
        shared += shared_runs;
    }
    assert!(shared > 0, "no inference run carried frames of both streams");
}

#[test]
fn reclassify_interval_reuses_a_tracked_rois_result_by_id() {
    // One tracked object (id 5) over 7 frames, interval 3: computed on frames 0, 3, 6, reused between; a second
    // object (id 6) that appears on frame 1 gets its own first result. Reused results say so and cost no inference.
    init();
    let el = classifier(&[("reclassify-interval", "3")]);
    let (mut h, _bus) = harness_with_bus(&el, rgb_caps(64, 48));
    let mut flags = Vec::new();
    for f in 0..7u64 {
        let mut rois = vec![(5, (0, 0, 20, 20))];
        if f >= 1 {
            rois.push((6, (30, 0, 20, 20)));
        }
        h.push(buffer_with_rois(rgb_frame(64, 48, &[((0, 0, 20, 20), RED), ((30, 0, 20, 20), BLUE)]), &rois, f))
            .unwrap();
        let r = meta::read(&h.pull().unwrap());
        assert_eq!(verdict(by_id(&r, 5)), Ok(("red", Verdict::Known)));
        flags.push((by_id(&r, 5).reused, r.iter().find(|r| r.roi_id == 6).map(|r| r.reused)));
        // The reuse is visible in the ROI param as well.
        assert!(by_id(&r, 5).to_structure().get::<bool>("reused").is_ok());
    }
    assert_eq!(
        flags,
        [
            (false, None),
            (true, Some(false)),
            (true, Some(true)),
            (false, Some(true)),
            (true, Some(false)),
            (true, Some(true)),
            (false, Some(true)),
        ]
    );
    let stats: gst::Structure = el.property("stats");
    assert_eq!(stats.get::<u64>("reused").unwrap(), 8, "4 of each object");
    assert_eq!(stats.get::<u64>("rois").unwrap(), 13);
}

#[test]
fn vote_window_reports_the_majority_and_keeps_the_raw_result() {
    // Object 9 is red (known) on frames 0, 1, 3 and orange (a novelty) on frame 2: with a window of 3 the orange
    // frame is still reported known red, with raw-verdict novelty beside it. Without a window it flips.
    init();
    let colours = [RED, RED, ORANGE, RED];
    for (window, want) in
        [("3", [Verdict::Known; 4]), ("0", [Verdict::Known, Verdict::Known, Verdict::Novelty, Verdict::Known])]
    {
        let el = classifier(&[("vote-window", window)]);
        let (mut h, _bus) = harness_with_bus(&el, rgb_caps(64, 48));
        for (f, c) in colours.iter().enumerate() {
            h.push(buffer_with_rois(rgb_frame(64, 48, &[((0, 0, 20, 20), *c)]), &[(9, (0, 0, 20, 20))], f as u64))
                .unwrap();
            let r = meta::read(&h.pull().unwrap());
            let r = by_id(&r, 9);
            match &r.outcome {
                Outcome::Classified { verdict, .. } => assert_eq!(*verdict, want[f], "window {window}, frame {f}"),
                other => panic!("{other:?}"),
            }
            match (window, &r.raw) {
                ("3", Some(raw)) => {
                    let own = if *c == ORANGE { Verdict::Novelty } else { Verdict::Known };
                    assert_eq!(raw.verdict, own, "frame {f}: the raw result is this frame's");
                }
                ("0", None) => {}
                other => panic!("window {window}: {other:?}"),
            }
        }
    }
}

/// Run `videotestsrc pattern=ball num-buffers=N ! 64x48 ! odmroireplay (one ROI on the ball's path) ! odmclassify
/// {props} ! appsink` to EOS: each buffer's pts and its result (label, distance).
fn through_appsink(props: &str, frames: u32) -> Vec<(u64, String, f64)> {
    init();
    let dir = tempfile::tempdir().unwrap();
    let rois = dir.path().join("rois.jsonl");
    let text: String = (0..frames)
        .map(|f| {
            format!(
                "{{\"frame\": {f}, \"rois\": [{{\"x\": {}, \"y\": 8, \"w\": 24, \"h\": 24, \"id\": 1}}]}}\n",
                f % 40
            )
        })
        .collect();
    fs::write(&rois, text).unwrap();
    let p = gst::parse::launch(&format!(
        "videotestsrc pattern=ball num-buffers={frames} ! video/x-raw,width=64,height=48,framerate=30/1 ! \
         odmroireplay location={} ! odmclassify model={} {props} ! appsink name=sink sync=false",
        rois.display(),
        colors_model()
    ))
    .unwrap();
    let sink = p.downcast_ref::<gst::Bin>().unwrap().by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let mut out = Vec::new();
    while let Ok(s) = sink.pull_sample() {
        let b = s.buffer().unwrap();
        let r = meta::read(b);
        assert_eq!(r.len(), 1, "one result per buffer");
        match &r[0].outcome {
            Outcome::Classified { label, distance, .. } => {
                out.push((b.pts().unwrap().nseconds(), label.to_string(), *distance))
            }
            other => panic!("{other:?}"),
        }
    }
    p.set_state(gst::State::Null).unwrap();
    out
}

#[test]
fn frames_in_flight_give_the_same_results_in_order_and_drain_at_eos() {
    // Inference on the worker thread, with frames batched together: every frame comes out, in order, with the
    // result the synchronous path gives it.
    let sync = through_appsink("", 50);
    assert_eq!(sync.len(), 50);
    for props in ["frames-in-flight=1", "frames-in-flight=2 batch-size=8", "frames-in-flight=6 batch-size=4"] {
        let got = through_appsink(props, 50);
        assert_eq!(got.len(), 50, "{props}: every frame out, the last ones drained at EOS");
        for (a, b) in sync.iter().zip(&got) {
            assert_eq!((a.0, &a.1), (b.0, &b.1), "{props}: order and label");
            assert!((a.2 - b.2).abs() < 1e-4, "{props}: distance {} against {}", a.2, b.2);
        }
    }
}

#[test]
fn frames_in_flight_add_their_latency_and_survive_a_flushing_seek() {
    init();
    let p = gst::parse::launch(&format!(
        "videotestsrc pattern=red ! video/x-raw,width=32,height=32,framerate=25/1 ! odmclassify name=c mode=frame \
         frames-in-flight=3 model={} ! appsink name=sink sync=true max-buffers=2",
        colors_model()
    ))
    .unwrap();
    let bin = p.downcast_ref::<gst::Bin>().unwrap();
    let sink = bin.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    for _ in 0..5 {
        sink.pull_sample().unwrap();
    }
    let mut q = gst::query::Latency::new();
    // Asked as the sink asks it: through odmclassify's src pad, which adds its frames in flight to upstream's answer.
    assert!(sink.static_pad("sink").unwrap().peer_query(&mut q));
    let (_, min, _) = q.result();
    assert!(min >= gst::ClockTime::from_mseconds(120), "3 frames at 25 fps: {min}");
    // A flushing seek drops what is in flight; frames flow again, each with its result.
    assert!(p.seek_simple(gst::SeekFlags::FLUSH, gst::ClockTime::from_seconds(10)).is_ok());
    for _ in 0..5 {
        let s = sink.pull_sample().unwrap();
        let r = meta::read(s.buffer().unwrap());
        assert_eq!(verdict(&r[0]), Ok(("red", Verdict::Known)));
    }
    p.set_state(gst::State::Null).unwrap();
}

#[test]
fn frames_in_flight_are_drained_before_a_caps_change() {
    // RGB 64x48 red frames, then 32x32 blue frames after new caps: everything in flight before the
    // caps event comes out first, each frame with the answer for its own size and colour.
    init();
    let src = gst_app::AppSrc::builder().caps(&rgb_caps(64, 48)).format(gst::Format::Time).build();
    let el = classifier(&[("frames-in-flight", "3"), ("mode", "frame")]);
    let sink = gst_app::AppSink::builder().sync(false).build();
    let p = gst::Pipeline::new();
    p.add_many([src.upcast_ref(), &el, sink.upcast_ref()]).unwrap();
    gst::Element::link_many([src.upcast_ref(), &el, sink.upcast_ref()]).unwrap();
    p.set_state(gst::State::Playing).unwrap();
    for i in 0..4u64 {
        src.push_buffer(buffer_with_rois(rgb_frame(64, 48, &[((0, 0, 64, 48), RED)]), &[], i)).unwrap();
    }
    src.set_caps(Some(&rgb_caps(32, 32)));
    for i in 4..8u64 {
        src.push_buffer(buffer_with_rois(rgb_frame(32, 32, &[((0, 0, 32, 32), BLUE)]), &[], i)).unwrap();
    }
    src.end_of_stream().unwrap();
    let mut got = Vec::new();
    while let Ok(s) = sink.pull_sample() {
        let b = s.buffer().unwrap();
        let r = meta::read(b);
        // The caps the buffer arrived under are its own: the caps event did not pass buffers in flight.
        let caps_width = gst_video::VideoInfo::from_caps(s.caps().unwrap()).unwrap().width();
        assert_eq!(caps_width, r[0].rect.2, "buffer {:?} arrived under other caps", b.pts());
        got.push((b.pts().unwrap().nseconds(), r[0].rect.2, verdict(&r[0]).unwrap().0.to_owned()));
    }
    p.set_state(gst::State::Null).unwrap();
    let want: Vec<(u64, u32, String)> =
        (0..8).map(|i| (i, if i < 4 { 64 } else { 32 }, if i < 4 { "red" } else { "blue" }.to_owned())).collect();
    assert_eq!(got, want);
}

#[test]
fn a_hot_reload_with_frames_in_flight_goes_live_between_frames() {
    // Red frames through frames-in-flight=2; the bundle is swapped for one with German labels after some frames:
    // every frame has one whole answer (red or rot, never a mix or a skip), and the later ones are rot.
    init();
    let dir = tempfile::tempdir().unwrap();
    colour_copy(dir.path(), "colors", |_| {});
    let german = colour_copy(dir.path(), "colors-de", |v| {
        for (c, de) in v["classes"].as_array_mut().unwrap().iter_mut().zip(["rot", "gruen", "blau", "gelb"]) {
            c["label"] = de.into();
        }
    });
    let p = gst::parse::launch(&format!(
        "videotestsrc pattern=red num-buffers=60 ! video/x-raw,width=32,height=32,framerate=30/1 ! odmclassify name=c \
         mode=frame frames-in-flight=2 model={} ! appsink name=sink sync=false max-buffers=1",
        dir.path().join("colors.onnx").display()
    ))
    .unwrap();
    let bin = p.downcast_ref::<gst::Bin>().unwrap();
    let sink = bin.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    let c = bin.by_name("c").unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let mut labels = Vec::new();
    while let Ok(s) = sink.pull_sample() {
        if labels.len() == 20 {
            c.set_property("bundle", german.to_str().unwrap());
        }
        let r = meta::read(s.buffer().unwrap());
        labels.push(verdict(&r[0]).unwrap().0.to_owned());
    }
    p.set_state(gst::State::Null).unwrap();
    assert_eq!(labels.len(), 60);
    assert!(labels.iter().all(|l| l == "red" || l == "rot"), "{labels:?}");
    let first_rot = labels.iter().position(|l| l == "rot").expect("the new bundle went live");
    assert!(labels[first_rot..].iter().all(|l| l == "rot"), "{labels:?}");
}

#[test]
fn max_batch_latency_pushes_a_frame_that_waits_for_later_ones_too_long() {
    // One frame into frames-in-flight=4, then nothing: without a bound it waits for later frames (or EOS); with
    // max-batch-latency=30 it comes out on its own, with its result.
    init();
    for (latency, comes) in [(0u32, false), (30, true)] {
        let src = gst_app::AppSrc::builder().caps(&rgb_caps(32, 32)).format(gst::Format::Time).build();
        let el = classifier(&[("frames-in-flight", "4"), ("mode", "frame")]);
        el.set_property("max-batch-latency", latency);
        let sink = gst_app::AppSink::builder().sync(false).build();
        let p = gst::Pipeline::new();
        p.add_many([src.upcast_ref(), &el, sink.upcast_ref()]).unwrap();
        gst::Element::link_many([src.upcast_ref(), &el, sink.upcast_ref()]).unwrap();
        p.set_state(gst::State::Playing).unwrap();
        src.push_buffer(buffer_with_rois(rgb_frame(32, 32, &[((0, 0, 32, 32), BLUE)]), &[], 0)).unwrap();
        let early = sink.try_pull_sample(gst::ClockTime::from_mseconds(if comes { 5000 } else { 300 }));
        assert_eq!(early.is_some(), comes, "max-batch-latency={latency}");
        if let Some(s) = early {
            assert_eq!(verdict(&meta::read(s.buffer().unwrap())[0]), Ok(("blue", Verdict::Known)));
        } else {
            // EOS still drains it.
            src.end_of_stream().unwrap();
            let s = sink.pull_sample().unwrap();
            assert_eq!(verdict(&meta::read(s.buffer().unwrap())[0]), Ok(("blue", Verdict::Known)));
        }
        p.set_state(gst::State::Null).unwrap();
    }
}
