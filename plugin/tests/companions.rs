// SPDX-License-Identifier: MIT OR Apache-2.0
//! The companion elements in real pipelines: odmroireplay (recorded ROIs in), odmexport (JSON lines out),
//! odmoverlay (drawing), odmproposals (sign candidates), with odmclassify on the committed colour model.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use gst::prelude::*;
use gst_video::VideoRegionOfInterestMeta;

/// Run a launch line to EOS; (warnings, error).
fn run(line: &str) -> (Vec<String>, Option<String>) {
    let (warns, err, _) = launch_warnings(line);
    (warns, err)
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn replay_by_frame_then_classify_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let rois = dir.path().join("rois.jsonl");
    // videotestsrc pattern=red: every ROI is red. Frame 1 has no line; frame 3 has a box partly outside.
    fs::write(
        &rois,
        r#"{"frame": 0, "rois": [{"x": 4, "y": 4, "w": 20, "h": 20, "type": "sign", "id": 7, "label": "red"}]}
{"frame": 2, "rois": [{"x": 4, "y": 4, "w": 20, "h": 20}, {"x": 30, "y": 10, "w": 10, "h": 10, "id": 3}]}

{"frame": 3, "rois": [{"x": -10, "y": 40, "w": 30, "h": 30, "score": 0.9}]}
"#,
    )
    .unwrap();
    let out = dir.path().join("out.jsonl");
    let (warns, err) = run(&format!(
        "videotestsrc pattern=red num-buffers=5 ! video/x-raw,width=64,height=48 ! odmroireplay location={} ! \
         odmclassify model={} ! odmexport location={} ! fakesink",
        rois.display(),
        colors_model(),
        out.display()
    ));
    assert!(err.is_none() && warns.is_empty(), "{err:?} {warns:?}");
    let l = lines(&out);
    assert_eq!(l.len(), 5, "one line per frame, the last one too");
    assert_eq!(l.iter().map(|f| f["rois"].as_array().unwrap().len()).collect::<Vec<_>>(), [1, 0, 2, 1, 0]);
    let r0 = &l[0]["rois"][0];
    assert_eq!((r0["id"].as_i64(), r0["type"].as_str(), r0["label"].as_str()), (Some(7), Some("sign"), Some("red")));
    assert_eq!(r0["verdict"], "known");
    assert_eq!(l[2]["rois"][0]["type"], "traffic-sign", "the default type");
    // Clipped to the frame: x from 0, 20 wide, 8 high.
    let r3 = &l[3]["rois"][0];
    assert_eq!((r3["x"].as_u64(), r3["w"].as_u64(), r3["h"].as_u64()), (Some(0), Some(20), Some(8)));
    assert_eq!(l[4]["frame"], 4);
    assert!(l[4]["pts"].as_u64().is_some());
}

#[test]
fn replay_by_pts_with_a_tolerance() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let rois = dir.path().join("rois.jsonl");
    // 10 fps: buffers at 0, 100 ms, 200 ms. Lines 2 ms late and 50 ms late (outside the 5 ms tolerance).
    fs::write(
        &rois,
        "{\"pts\": 102000000, \"rois\": [{\"x\": 0, \"y\": 0, \"w\": 8, \"h\": 8}]}\n\
         {\"pts\": 250000000, \"rois\": [{\"x\": 0, \"y\": 0, \"w\": 8, \"h\": 8}]}\n",
    )
    .unwrap();
    let el = gst::ElementFactory::make("odmroireplay")
        .property("location", rois.to_str().unwrap())
        .property_from_str("match", "pts")
        .property("tolerance", 5_000_000u64)
        .build()
        .unwrap();
    let mut h = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
    h.set_src_caps(rgb_caps(16, 16));
    let mut counts = Vec::new();
    for i in 0..3u64 {
        h.push(buffer_with_rois(rgb_frame(16, 16, &[]), &[], i * 100_000_000)).unwrap();
        counts.push(h.pull().unwrap().iter_meta::<VideoRegionOfInterestMeta>().count());
    }
    assert_eq!(counts, [0, 1, 0]);
}

#[test]
fn replay_bad_lines_name_the_line_or_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let rois = dir.path().join("bad.jsonl");
    fs::write(
        &rois,
        "{\"frame\": 0, \"rois\": []}\n{\"frame\": 1, \"rois\": [{\"x\": 1}]}\n{\"frame\": 2, \"rois\": []}\n",
    )
    .unwrap();
    let line = |strict: bool| {
        format!(
            "videotestsrc num-buffers=3 ! video/x-raw,width=32,height=32 ! odmroireplay strict={strict} location={} ! \
             fakesink",
            rois.display()
        )
    };
    let (_, err) = run(&line(true));
    let err = err.expect("strict: an error");
    assert!(err.contains("bad.jsonl:2: rois[0].y: missing"), "{err}");
    let (warns, err) = run(&line(false));
    assert!(err.is_none(), "{err:?}");
    assert!(warns.iter().any(|w| w.contains("1 bad lines skipped") && w.contains("bad.jsonl:2")), "{warns:?}");

    // Missing file; negative size; a frame given twice.
    let (_, err) = run(&line(true).replace(rois.to_str().unwrap(), "/nonexistent/rois.jsonl"));
    assert!(err.unwrap().contains("/nonexistent/rois.jsonl"));
    fs::write(&rois, "{\"frame\": 0, \"rois\": [{\"x\": 1, \"y\": 1, \"w\": -4, \"h\": 2}]}\n").unwrap();
    assert!(run(&line(true)).1.unwrap().contains("w, h >= 0"));
    fs::write(&rois, "{\"frame\": 0, \"rois\": []}\n{\"frame\": 0, \"rois\": []}\n").unwrap();
    assert!(run(&line(true)).1.unwrap().contains("already given on line 1"));
}

#[test]
fn replay_warns_about_frames_that_never_came() {
    let dir = tempfile::tempdir().unwrap();
    let rois = dir.path().join("rois.jsonl");
    fs::write(&rois, "{\"frame\": 1, \"rois\": []}\n{\"frame\": 9, \"rois\": []}\n{\"frame\": 12, \"rois\": []}\n")
        .unwrap();
    let (warns, err) = run(&format!(
        "videotestsrc num-buffers=3 ! video/x-raw,width=32,height=32 ! odmroireplay location={} ! fakesink",
        rois.display()
    ));
    assert!(err.is_none());
    assert!(warns.iter().any(|w| w.contains("2 of 3 frames never came") && w.contains("line 2")), "{warns:?}");
}

#[test]
fn export_refuses_an_unwritable_path_at_start() {
    let (_, err) = run("videotestsrc num-buffers=1 ! odmexport location=/nonexistent/dir/out.jsonl ! fakesink");
    let err = err.expect("an error");
    assert!(err.contains("/nonexistent/dir/out.jsonl") && err.contains("cannot write"), "{err}");
    let (_, err) = run("videotestsrc num-buffers=1 ! odmexport ! fakesink");
    assert!(err.unwrap().contains("no location set"));
}

#[test]
fn export_sees_results_after_converters() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let rois = dir.path().join("rois.jsonl");
    fs::write(&rois, "{\"frame\": 0, \"rois\": [{\"x\": 8, \"y\": 8, \"w\": 16, \"h\": 16, \"id\": 5}]}\n").unwrap();
    let (_, err) = run(&format!(
        "videotestsrc pattern=blue num-buffers=1 ! video/x-raw,width=64,height=48 ! odmroireplay location={} ! \
         odmclassify model={} ! videoconvert ! video/x-raw,format=I420 ! videoscale ! video/x-raw,width=128,height=96 ! \
         odmexport location={} ! fakesink",
        rois.display(),
        colors_model(),
        out.display()
    ));
    assert!(err.is_none(), "{err:?}");
    let r = &lines(&out)[0]["rois"][0];
    assert_eq!((r["id"].as_i64(), r["label"].as_str(), r["verdict"].as_str()), (Some(5), Some("blue"), Some("known")));
    assert_eq!(r["w"], 32, "the box as it is now, scaled");
}

#[test]
fn overlay_draws_boxes_in_verdict_colours_in_rgb_and_nv12() {
    init();
    for format in ["RGB", "NV12"] {
        let mut h = gst_check::Harness::new_parse(&format!(
            "odmclassify model={} ! videoconvert ! capsfilter caps=video/x-raw,format={format} ! odmoverlay thickness=4 ! \
             videoconvert ! capsfilter caps=video/x-raw,format=RGB",
            colors_model()
        ));
        h.set_src_caps(rgb_caps(160, 120));
        // A known blue sign (box drawn green) and grey background (an anomaly: red box).
        let frame = rgb_frame(160, 120, &[((20, 60, 30, 30), BLUE)]);
        h.push(buffer_with_rois(frame, &[(1, (20, 60, 30, 30)), (2, (100, 60, 30, 30))], 0)).unwrap();
        let out = h.pull().unwrap();
        let map = out.map_readable().unwrap();
        let stride = (160 * 3usize).next_multiple_of(4);
        let px = |x: usize, y: usize| {
            let i = y * stride + x * 3;
            [map[i] as i32, map[i + 1] as i32, map[i + 2] as i32]
        };
        let near = |a: [i32; 3], b: [i32; 3]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 40);
        // Left edge of each box, 3 px outside it (the line's middle: NV12 chroma is shared by 2x2 pixels), halfway
        // down; the middle of the boxes is untouched.
        assert!(near(px(17, 80), [40, 200, 60]), "{format}: known box {:?}", px(17, 80));
        assert!(near(px(97, 80), [230, 30, 30]), "{format}: anomaly box {:?}", px(97, 80));
        assert!(near(px(35, 80), [0, 0, 255]), "{format}: inside {:?}", px(35, 80));
        assert!(near(px(115, 80), [128, 128, 128]), "{format}: inside {:?}", px(115, 80));
        // The label tab above the known box holds white text pixels.
        let tab: Vec<[i32; 3]> = (20..70).flat_map(|x| (40..56).map(move |y| (x, y))).map(|(x, y)| px(x, y)).collect();
        assert!(tab.iter().any(|p| p.iter().all(|&c| c > 200)), "{format}: no text drawn");
    }
}

#[test]
fn overlay_leaves_frames_without_rois_untouched() {
    init();
    let mut h = gst_check::Harness::new_parse("odmoverlay");
    h.set_src_caps(rgb_caps(64, 48));
    let frame = rgb_frame(64, 48, &[((0, 0, 10, 10), RED)]);
    h.push(buffer_with_rois(frame.clone(), &[], 0)).unwrap();
    assert_eq!(h.pull().unwrap().map_readable().unwrap().as_slice(), &frame[..]);
}

#[test]
fn overlay_draws_into_padded_rows_of_a_video_meta_and_leaves_the_padding() {
    init();
    let (w, h, stride) = (64u32, 48u32, 256usize);
    let mut hn = gst_check::Harness::new_parse("odmoverlay thickness=1 font-size=10");
    hn.set_src_caps(rgb_caps(w, h));
    // A blue frame in rows of 256 bytes (192 of pixels, 64 of padding marked 0xab), as a decoder with aligned rows
    // hands it over: the layout is in the buffer's video meta, not in the caps.
    let packed = rgb_frame(w, h, &[((0, 0, w, h), BLUE)]);
    let mut data = vec![0xabu8; stride * h as usize];
    for (row, src) in data.chunks_exact_mut(stride).zip(packed.chunks_exact(w as usize * 3)) {
        row[..src.len()].copy_from_slice(src);
    }
    let mut buf = buffer_with_rois(data, &[(1, (20, 30, 16, 10))], 0);
    gst_video::VideoMeta::add_full(
        buf.get_mut().unwrap(),
        gst_video::VideoFrameFlags::empty(),
        gst_video::VideoFormat::Rgb,
        w,
        h,
        &[0],
        &[stride as i32],
    )
    .unwrap();
    hn.push(buf).unwrap();
    let out = hn.pull().unwrap();
    let map = out.map_readable().unwrap();
    let px = |x: usize, y: usize| &map[y * stride + x * 3..y * stride + x * 3 + 3];
    // No result on the ROI: a grey box, its left line one pixel left of the box, read at the meta's stride.
    assert_eq!(px(19, 35), [160, 160, 160], "the box's left line");
    assert_eq!(px(28, 35), BLUE, "inside the box");
    assert!(map.chunks_exact(stride).all(|row| row[w as usize * 3..].iter().all(|&b| b == 0xab)), "padding written");
}

#[test]
fn overlay_refuses_a_buffer_smaller_than_its_caps_with_an_error() {
    init();
    let mut hn = gst_check::Harness::new("odmoverlay");
    let bus = gst::Bus::new();
    hn.element().unwrap().set_bus(Some(&bus));
    hn.set_src_caps(rgb_caps(64, 48));
    // Half a frame, with a ROI to draw: mapping it as 64x48 RGB would read and write past its end.
    let flow = hn.push(buffer_with_rois(vec![7u8; 64 * 24 * 3], &[(1, (2, 40, 10, 6))], 0));
    assert_eq!(flow, Err(gst::FlowError::Error));
    let msg = bus.pop_filtered(&[gst::MessageType::Error]).expect("an error on the bus");
    let gst::MessageView::Error(e) = msg.view() else { unreachable!() };
    let text = e.error().to_string();
    assert!(text.contains("smaller than 64x48 RGB needs"), "{text}");
}

#[test]
fn proposals_find_coloured_sign_shapes_and_nothing_on_grey() {
    init();
    let (w, h) = (320u32, 240u32);
    // A red ring, a blue disc, a yellow diamond-ish square on grey; a long thin red line (not a sign).
    let mut frame =
        rgb_frame(w, h, &[((200, 150, 36, 36), BLUE), ((150, 20, 30, 30), YELLOW), ((10, 220, 300, 3), RED)]);
    for y in 0..h {
        for x in 0..w {
            let d = ((x as f32 - 60.0).powi(2) + (y as f32 - 60.0).powi(2)).sqrt();
            if (14.0..22.0).contains(&d) {
                let i = ((y * w + x) * 3) as usize;
                frame[i..i + 3].copy_from_slice(&[220, 20, 30]);
            }
        }
    }
    let mut hn = gst_check::Harness::new_parse("odmproposals");
    hn.set_src_caps(rgb_caps(w, h));
    hn.push(buffer_with_rois(frame, &[], 0)).unwrap();
    let out = hn.pull().unwrap();
    let found: Vec<(u32, u32, u32, u32)> = out
        .iter_meta::<VideoRegionOfInterestMeta>()
        .inspect(|m| assert_eq!(m.roi_type(), "traffic-sign-candidate"))
        .map(|m| m.rect())
        .collect();
    let covers = |cx: u32, cy: u32| found.iter().any(|&(x, y, w, h)| x <= cx && cx < x + w && y <= cy && cy < y + h);
    assert!(covers(60, 60) && covers(218, 168) && covers(165, 35), "{found:?}");
    assert_eq!(found.len(), 3, "the thin line is not proposed: {found:?}");

    hn.push(buffer_with_rois(rgb_frame(w, h, &[]), &[], 1)).unwrap();
    assert_eq!(hn.pull().unwrap().iter_meta::<VideoRegionOfInterestMeta>().count(), 0);
}

#[test]
fn proposals_then_classify_in_nv12() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    // smpte bars: coloured areas proposed; every proposal gets a result.
    let (_, err) = run(&format!(
        "videotestsrc pattern=smpte num-buffers=3 ! video/x-raw,width=320,height=240,format=NV12 ! \
         odmproposals max-size=320 ! odmclassify model={} ! odmexport location={} ! fakesink",
        colors_model(),
        out.display()
    ));
    assert!(err.is_none(), "{err:?}");
    let l = lines(&out);
    assert_eq!(l.len(), 3, "one line per frame");
    for l in l {
        let rois = l["rois"].as_array().unwrap();
        assert!(!rois.is_empty(), "smpte bars have coloured areas");
        for r in rois {
            assert_eq!(r["type"], "traffic-sign-candidate");
            assert!(r["verdict"].is_string());
        }
    }
}

#[test]
fn file_locations_are_refused_while_playing_with_a_warning() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let rois = dir.path().join("rois.jsonl");
    fs::write(&rois, "{\"frame\":0,\"rois\":[{\"x\":1,\"y\":2,\"w\":8,\"h\":8}]}\n").unwrap();
    let out = dir.path().join("out.jsonl");
    for (factory, path) in [("odmexport", &out), ("odmroireplay", &rois)] {
        let path = path.to_str().unwrap();
        let el = gst::ElementFactory::make(factory).property("location", path).build().unwrap();
        let bus = gst::Bus::new();
        el.set_bus(Some(&bus));
        let mut h = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
        h.set_src_caps(rgb_caps(64, 48));
        h.push(gst::Buffer::from_mut_slice(rgb_frame(64, 48, &[]))).unwrap();
        h.pull().unwrap();
        el.set_property("location", "/elsewhere/other.jsonl");
        assert_eq!(el.property::<Option<String>>("location").as_deref(), Some(path), "{factory} kept its file");
        let warning = bus.pop_filtered(&[gst::MessageType::Warning]).expect("a warning on the bus");
        let gst::MessageView::Warning(w) = warning.view() else { unreachable!() };
        assert!(
            w.error().to_string().contains("property location can only change in NULL or READY"),
            "{factory}: {}",
            w.error()
        );
        // Still working with the old file.
        h.push(gst::Buffer::from_mut_slice(rgb_frame(64, 48, &[]))).unwrap();
        assert!(h.pull().is_ok(), "{factory} still passes buffers");
    }
}

#[test]
fn export_on_a_full_disk_posts_the_error_and_the_pipeline_still_stops() {
    // /dev/full fails every write with ENOSPC. The helper sets the pipeline to NULL and checks it gets there
    // (a failing stop() used to leave it stuck in PAUSED).
    for (buffers, sync) in [(5000, false), (2, false), (2, true)] {
        let (_, err) = run(&format!(
            "videotestsrc num-buffers={buffers} ! video/x-raw,width=64,height=48 ! odmexport location=/dev/full \
             sync={sync} ! fakesink"
        ));
        let err = err.unwrap_or_else(|| panic!("{buffers} buffers, sync={sync}: no error"));
        assert!(err.contains("cannot write /dev/full: No space left on device"), "{err}");
    }
}

#[test]
fn export_sync_writes_everything_by_eos() {
    // Every line must be in the file when EOS reaches the bus, while the pipeline still runs: stop() writes what is
    // left too, so a check made after the pipeline stopped (as this test once did) cannot tell. 7 lines are far
    // below the 64 KiB write chunk: they reach the file at EOS or not at all.
    init();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=7 ! video/x-raw,width=32,height=32,framerate=30/1 ! odmexport sync=true \
         location={} ! fakesink",
        out.display()
    ))
    .unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(60), &[gst::MessageType::Eos, gst::MessageType::Error])
        .expect("EOS or an error");
    assert!(matches!(msg.view(), gst::MessageView::Eos(..)), "{msg:?}");
    let at_eos = fs::read(&out).unwrap();
    assert_eq!(pipeline.state(gst::ClockTime::ZERO).1, gst::State::Playing, "read before the pipeline stopped");
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(fs::read(&out).unwrap(), at_eos, "stopping added nothing: everything was written by EOS");
    let got: Vec<(u64, u64, u64)> = lines(&out)
        .iter()
        .map(|l| (l["frame"].as_u64().unwrap(), l["pts"].as_u64().unwrap(), l["stream_time"].as_u64().unwrap()))
        .collect();
    let want: Vec<(u64, u64, u64)> = (0..7u64)
        .map(|i| {
            let t = gst::ClockTime::SECOND.mul_div_floor(i, 30).unwrap().nseconds();
            (i, t, t)
        })
        .collect();
    assert_eq!(got, want, "every buffer, in order, with its time");
}

#[test]
fn overlay_draws_boxes_of_any_u32_size_clipped_without_overflow() {
    // Upstream metas may carry any u32. Boxes wholly past the frame draw nothing; a box from inside the frame to
    // u32::MAX draws its top-left lines only; nothing wraps to a negative coordinate (a debug build panicked on the
    // i32 arithmetic, a release build drew at x = -6).
    init();
    let mut h = gst_check::Harness::new_parse("odmoverlay thickness=2 font-size=10");
    h.set_src_caps(rgb_caps(64, 48));
    let frame = rgb_frame(64, 48, &[((0, 0, 64, 48), BLUE)]);
    let far = u32::MAX - 5;
    let outside =
        [(1, (far, 10, 20, 20)), (2, (10, far, 20, 20)), (3, (far, far, far, far)), (4, (2_147_483_600, 0, 90, 9))];
    h.push(buffer_with_rois(frame.clone(), &outside, 0)).unwrap();
    assert_eq!(h.pull().unwrap().map_readable().unwrap().as_slice(), &frame[..], "boxes past the frame draw nothing");

    h.push(buffer_with_rois(frame.clone(), &[(5, (20, 30, far, far))], 1)).unwrap();
    let out = h.pull().unwrap();
    let map = out.map_readable().unwrap();
    let px = |x: usize, y: usize| &map[(y * 64 + x) * 3..(y * 64 + x) * 3 + 3];
    assert_eq!(px(19, 40), [160, 160, 160], "the left line");
    assert_eq!(px(40, 29), [160, 160, 160], "the top line");
    assert_eq!(px(40, 40), BLUE, "inside the box");
    assert_eq!(px(5, 40), BLUE, "left of the box");
}

#[test]
fn replay_by_frame_follows_a_seek() {
    // videotestsrc at 10 fps, one recorded line per frame whose ROI id is the frame number. After a flushing seek to
    // 2 s, the next buffer is frame 20 and gets frame 20's ROI (the counter used to run on from where it was).
    init();
    let dir = tempfile::tempdir().unwrap();
    let rois = dir.path().join("rois.jsonl");
    let text: String = (0..50)
        .map(|f| format!("{{\"frame\": {f}, \"rois\": [{{\"x\": 1, \"y\": 1, \"w\": 8, \"h\": 8, \"id\": {f}}}]}}\n"))
        .collect();
    fs::write(&rois, text).unwrap();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=50 ! video/x-raw,width=32,height=32,framerate=10/1 ! odmroireplay location={} ! \
         appsink name=sink sync=false max-buffers=1",
        rois.display()
    ))
    .unwrap();
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let sink = bin.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    let id_of = |s: gst::Sample| {
        let b = s.buffer().unwrap();
        (b.pts().unwrap().mseconds(), b.meta::<VideoRegionOfInterestMeta>().map(|m| m.id()))
    };
    pipeline.set_state(gst::State::Paused).unwrap();
    assert_eq!(id_of(sink.pull_preroll().unwrap()), (0, Some(0)));
    pipeline.set_state(gst::State::Playing).unwrap();
    for _ in 0..4 {
        sink.pull_sample().unwrap();
    }
    pipeline.seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE, gst::ClockTime::from_seconds(2)).unwrap();
    let got: Vec<_> = (0..3).map(|_| id_of(sink.pull_sample().unwrap())).collect();
    assert_eq!(got, [(2000, Some(20)), (2100, Some(21)), (2200, Some(22))]);
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn proposals_read_nv12_with_the_caps_matrix() {
    // A teal-blue square (0, 75, 90) on grey, as RGB and converted by videoconvert to BT.709 NV12 (HD caps' default):
    // read with BT.709 it is blue in both; read with BT.601 (hard-coded before) the NV12 one turned green-cyan and
    // was not proposed.
    init();
    let (w, h) = (160u32, 120u32);
    let frame = rgb_frame(w, h, &[((0, 0, w, h), GREY), ((60, 40, 36, 36), [0, 75, 90])]);
    let found = |line: &str| {
        let mut hn = gst_check::Harness::new_parse(line);
        hn.set_src_caps(rgb_caps(w, h));
        hn.push(buffer_with_rois(frame.clone(), &[], 0)).unwrap();
        hn.pull().unwrap().iter_meta::<VideoRegionOfInterestMeta>().map(|m| m.rect()).collect::<Vec<_>>()
    };
    let rgb = found("odmproposals");
    assert_eq!(rgb.len(), 1, "{rgb:?}");
    for matrix in ["bt709", "bt601"] {
        let nv12 = found(&format!("videoconvert ! video/x-raw,format=NV12,colorimetry={matrix} ! odmproposals"));
        assert_eq!(nv12, rgb, "NV12 with {matrix}");
    }
}

#[test]
fn export_lines_carry_every_buffer_field_under_the_same_name() {
    // One naming rule (docs/results.md): a JSON line has every field of the buffer's `odm` structure, with `_` for
    // `-`, and the same value; the ROI id is `id` (odmroireplay's format). With vote-window the raw fields too. The
    // colour model with a category on red, so that `category` is compared as a string and as NULL / null.
    init();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let src = models().join("colors");
    fs::copy(src.join("colors.onnx"), dir.path().join("colors.onnx")).unwrap();
    let mut bundle: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(src.join("colors.odm.json")).unwrap()).unwrap();
    bundle["classes"][0]["category"] = "regulatory".into();
    fs::write(dir.path().join("colors.odm.json"), bundle.to_string()).unwrap();
    let mut h = gst_check::Harness::new_parse(&format!(
        "odmclassify model={} vote-window=3 ! odmexport location={}",
        dir.path().join("colors.onnx").display(),
        out.display()
    ));
    h.set_src_caps(rgb_caps(64, 48));
    let frame = rgb_frame(64, 48, &[((0, 0, 20, 20), RED), ((30, 0, 20, 20), [128, 128, 128])]);
    h.push(buffer_with_rois(frame, &[(1, (0, 0, 20, 20)), (2, (30, 0, 20, 20)), (3, (100, 100, 5, 5))], 0)).unwrap();
    let buf = h.pull().unwrap();
    h.push_event(gst::event::Eos::new());
    drop(h);
    let meta = gst::meta::CustomMeta::from_buffer(&buf, "OdmResultsMeta").unwrap();
    let results = meta.structure().get::<gst::Array>("results").unwrap();
    let line = &lines(&out)[0];
    let rois = line["rois"].as_array().unwrap();
    assert_eq!((results.len(), rois.len()), (3, 3));
    let mut seen = std::collections::BTreeSet::new();
    for r in results.iter() {
        let s = r.get::<gst::Structure>().unwrap();
        let id = s.get::<i32>("roi-id").unwrap();
        let roi = rois.iter().find(|j| j["id"] == id).unwrap_or_else(|| panic!("no line for roi {id}"));
        for (name, value) in s.iter() {
            if name == "roi-id" {
                continue;
            }
            let key = name.replace('-', "_");
            seen.insert(key.clone());
            let j = &roi[&key];
            let same = if let Ok(v) = value.get::<f64>() {
                // Skipped ROIs write -1 / 0 on buffers and null (or nothing) in JSON.
                j.as_f64().map_or(v == -1.0 || v == 0.0, |x| (x - v).abs() < 1e-9)
            } else if let Ok(v) = value.get::<i32>() {
                j.as_i64().map_or(v == -1, |x| x == v as i64)
            } else if let Ok(v) = value.get::<u32>() {
                j.as_u64() == Some(v as u64)
            } else if let Ok(v) = value.get::<bool>() {
                j.as_bool().unwrap_or(false) == v
            } else if let Ok(v) = value.get::<Option<String>>() {
                // A NULL string (`category` of an anomaly, a skipped ROI, a class without one) is null in JSON.
                match v {
                    Some(v) => j.as_str().map_or(v.is_empty(), |x| x == v),
                    None => j.is_null(),
                }
            } else {
                panic!("{name}: unexpected type {}", value.type_())
            };
            assert!(same, "roi {id}: {name}={value:?} on the buffer, {key}={j} in the line");
        }
    }
    for key in [
        "confidence",
        "novelty_threshold",
        "anomaly_threshold",
        "raw_label",
        "raw_class_id",
        "reason",
        "category",
        "raw_category",
    ] {
        assert!(seen.contains(key), "{key} was not compared");
    }
    let red = rois.iter().find(|j| j["id"] == 1).unwrap();
    assert_eq!((red["label"].as_str(), red["verdict"].as_str()), (Some("red"), Some("known")));
    assert_eq!((red["category"].as_str(), red["raw_category"].as_str()), (Some("regulatory"), Some("regulatory")));
    let grey = rois.iter().find(|j| j["id"] == 2).unwrap();
    assert_eq!((grey["verdict"].as_str(), &grey["category"]), (Some("anomaly"), &serde_json::Value::Null));
    assert!(red["confidence"].as_f64().unwrap() > 0.5);
}

#[test]
fn overlay_draws_yuv_in_the_caps_colour_matrix_and_range() {
    // The same box on NV12 caps that say BT.709, BT.601 and full-range BT.709: the line's Y, U, V are the verdict
    // colour in that matrix and range (videoconvert reads them back as the colour).
    init();
    let (w, h) = (64u32, 48u32);
    // Expected YUV of an RGB colour: (kr, kb) and limited (16 + 219 y) or full (255 y) range.
    let yuv = |c: [u8; 3], kr: f64, kb: f64, full: bool| -> [i32; 3] {
        let (r, g, b) = (c[0] as f64 / 255.0, c[1] as f64 / 255.0, c[2] as f64 / 255.0);
        let y = kr * r + (1.0 - kr - kb) * g + kb * b;
        let (u, v) = ((b - y) / (2.0 * (1.0 - kb)), (r - y) / (2.0 * (1.0 - kr)));
        let (ys, yo, cs) = if full { (255.0, 0.0, 255.0) } else { (219.0, 16.0, 224.0) };
        [(yo + ys * y).round() as i32, (128.0 + cs * u).round() as i32, (128.0 + cs * v).round() as i32]
    };
    let mut seen = Vec::new();
    for (colorimetry, kr, kb, full) in
        [("bt709", 0.2126, 0.0722, false), ("bt601", 0.299, 0.114, false), ("1:3:5:1", 0.2126, 0.0722, true)]
    {
        let mut hn =
            gst_check::Harness::new_parse(&format!("odmclassify model={} ! odmoverlay thickness=2", colors_model()));
        hn.set_src_caps_str(&format!(
            "video/x-raw,format=NV12,width={w},height={h},framerate=30/1,colorimetry={colorimetry}"
        ));
        let mut data = vec![128u8; (w * h * 3 / 2) as usize];
        data[..(w * h) as usize].fill(60);
        hn.push(buffer_with_rois(data, &[(1, (16, 16, 24, 24))], 0)).unwrap();
        let out = hn.pull().unwrap();
        let colour = match &gstodm::meta::read(&out)[0].outcome {
            gstodm::meta::Outcome::Classified { verdict: odm_core::Verdict::Known, .. } => [40, 200, 60],
            gstodm::meta::Outcome::Classified { verdict: odm_core::Verdict::Novelty, .. } => [255, 165, 0],
            gstodm::meta::Outcome::Classified { verdict: odm_core::Verdict::Anomaly, .. } => [230, 30, 30],
            other => panic!("{other:?}"),
        };
        let map = out.map_readable().unwrap();
        // The left line (x 14..16), at (14, 30): luma, and the chroma of its 2x2 block.
        let (x, y) = (14usize, 30usize);
        let c = (w * h) as usize + (y / 2) * w as usize + x;
        let got = [map[y * w as usize + x] as i32, map[c] as i32, map[c + 1] as i32];
        assert_eq!(got, yuv(colour, kr, kb, full), "{colorimetry}");
        seen.push(got);
    }
    assert_ne!(seen[0], seen[1], "BT.709 and BT.601 give other YUV");
    assert_ne!(seen[0], seen[2], "limited and full range give other YUV");
}
