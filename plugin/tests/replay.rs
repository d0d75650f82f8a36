// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmroireplay's input: odmexport's own lines replay exactly, also when the export was made across a flushing seek
//! and when the replay seeks; every bad line is named by file, line and field, and `strict=false` skips only it.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use gst::prelude::*;
use gst_video::VideoRegionOfInterestMeta;

/// 10 fps, 32x32: buffer n has PTS n * 100 ms.
const SOURCE: &str = "videotestsrc num-buffers=50 ! video/x-raw,width=32,height=32,framerate=10/1";
const FRAME_NS: u64 = 100_000_000;

/// Run `SOURCE ! MIDDLE ! appsink` to EOS, with a flushing seek to 2 s after the preroll buffer and 4 more when
/// `seek`; every buffer that reached the sink as (PTS in ns, its ROI ids). The pipeline is stopped before returning,
/// so an odmexport in MIDDLE has written its file.
fn through(middle: &str, seek: bool) -> Vec<(u64, Vec<i32>)> {
    init();
    let pipeline =
        gst::parse::launch(&format!("{SOURCE} ! {middle} ! appsink name=sink sync=false max-buffers=1")).unwrap();
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let sink = bin.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    let bus = pipeline.bus().unwrap();
    let seen = |s: gst::Sample| {
        let b = s.buffer().unwrap();
        (b.pts().unwrap().nseconds(), b.iter_meta::<VideoRegionOfInterestMeta>().map(|m| m.id()).collect())
    };
    pipeline.set_state(gst::State::Paused).unwrap();
    let mut got = vec![seen(sink.pull_preroll().expect("a preroll buffer"))];
    pipeline.set_state(gst::State::Playing).unwrap();
    if seek {
        got.extend((0..4).map(|_| seen(sink.pull_sample().unwrap())));
        pipeline
            .seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE, gst::ClockTime::from_seconds(2))
            .unwrap();
    }
    while let Some(s) = sink.try_pull_sample(gst::ClockTime::from_seconds(30)) {
        got.push(seen(s));
    }
    assert!(sink.is_eos(), "{middle}: the stream ended without EOS");
    if let Some(e) = bus.pop_filtered(&[gst::MessageType::Error]) {
        panic!("{middle}: {e:?}");
    }
    pipeline.set_state(gst::State::Null).unwrap();
    // appsink hands the preroll buffer out again as the first sample in PLAYING: one entry per buffer.
    got.dedup_by_key(|(pts, _)| *pts);
    got
}

fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn an_export_made_across_a_seek_replays_onto_the_buffers_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    // Truth by PTS (independent of the frame count): buffer n gets one ROI whose id is n. (videotestsrc counts
    // num-buffers again from a seek: after the seek to 2 s it runs to 6.9 s.)
    let truth = dir.path().join("truth.jsonl");
    let text: String = (0..70u64)
        .map(|f| {
            format!(
                "{{\"pts\": {}, \"rois\": [{{\"x\": 1, \"y\": 2, \"w\": 8, \"h\": 6, \"id\": {f}}}]}}\n",
                f * FRAME_NS
            )
        })
        .collect();
    fs::write(&truth, text).unwrap();
    let export = dir.path().join("export.jsonl");
    let recorded = through(
        &format!("odmroireplay match=pts location={} ! odmexport location={}", truth.display(), export.display()),
        true,
    );
    assert!(recorded.iter().all(|(pts, ids)| *ids == [(pts / FRAME_NS) as i32]), "{recorded:?}");

    // The export: one line per buffer it saw, the frames before the seek then those from 2 s on; `frame` counts on
    // across the seek, `stream_time` is the position.
    let lines = read_lines(&export);
    let exported: Vec<(u64, Vec<i32>)> = lines
        .iter()
        .map(|l| {
            let ids = l["rois"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap() as i32).collect();
            (l["stream_time"].as_u64().expect("every line has its stream time"), ids)
        })
        .collect();
    assert!(exported.iter().any(|(t, _)| *t == 2 * 1_000_000_000), "the seek's target was exported: {exported:?}");
    assert!(exported.iter().any(|(t, _)| *t < 1_000_000_000), "frames before the seek were exported");
    assert!(lines.iter().any(|l| l["frame"].as_u64().unwrap() * FRAME_NS != l["stream_time"].as_u64().unwrap()));
    let want = |pts: u64| exported.iter().find(|(t, _)| *t == pts).map_or_else(Vec::new, |(_, ids)| ids.clone());

    // Replayed as it is (match=auto), without a seek and with the same seek: every buffer the export saw gets its
    // ROIs back, every other buffer none.
    for seek in [false, true] {
        let replayed = through(&format!("odmroireplay location={}", export.display()), seek);
        assert!(replayed.len() >= if seek { 31 } else { 50 }, "{replayed:?}");
        for (pts, ids) in &replayed {
            assert_eq!(*ids, want(*pts), "seek={seek}: the buffer at {} ms", pts / 1_000_000);
        }
    }
}

/// Run `videotestsrc ! odmroireplay strict=STRICT location=ROIS ! odmexport ! fakesink`: (warnings, error, the
/// ROI count of each exported frame).
fn replay(rois: &Path, strict: bool) -> (Vec<String>, Option<String>, Vec<usize>) {
    let out = rois.with_extension("out.jsonl");
    let (warns, err, _) = launch_warnings(&format!(
        "videotestsrc num-buffers=3 ! video/x-raw,width=32,height=32 ! odmroireplay strict={strict} location={} ! \
         odmexport location={} ! fakesink",
        rois.display(),
        out.display()
    ));
    let counts = if err.is_none() {
        read_lines(&out).iter().map(|l| l["rois"].as_array().unwrap().len()).collect()
    } else {
        Vec::new()
    };
    (warns, err, counts)
}

const BOX: &str = "{\"x\": 1, \"y\": 1, \"w\": 4, \"h\": 4}";

#[test]
fn a_byte_that_is_not_utf8_is_a_bad_line_named_by_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let rois = dir.path().join("bad.jsonl");
    let mut bytes = format!("{{\"frame\": 0, \"rois\": [{BOX}]}}\n").into_bytes();
    bytes.extend_from_slice(b"{\"frame\": 1, \"rois\": [], \"note\": \"caf\xe9\"}\n");
    bytes.extend_from_slice(format!("{{\"frame\": 2, \"rois\": [{BOX}, {BOX}]}}\n").as_bytes());
    fs::write(&rois, bytes).unwrap();

    let (_, err, _) = replay(&rois, true);
    let err = err.expect("strict: an error");
    assert!(err.contains("bad.jsonl:2: not UTF-8 text: byte 0xe9 at column 38"), "{err}");

    // strict=false skips that line only, with a warning naming it; the other lines are replayed.
    let (warns, err, counts) = replay(&rois, false);
    assert!(err.is_none(), "{err:?}");
    assert!(
        warns.iter().any(|w| w.contains("1 bad lines skipped") && w.contains("bad.jsonl:2: not UTF-8")),
        "{warns:?}"
    );
    assert_eq!(counts, [1, 0, 2]);
}

#[test]
fn type_errors_name_file_line_and_field_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let rois = dir.path().join("typed.jsonl");
    let cases = [
        (
            "{\"frame\": 0, \"rois\": [{\"x\": 1, \"y\": \"2\", \"w\": 3, \"h\": 4}]}",
            "rois[0].y: expected a number, found the string \"2\"",
        ),
        (
            "{\"frame\": -1, \"rois\": []}",
            "\"frame\": expected a whole number from 0 to 18446744073709551615, found the number -1",
        ),
        (
            &format!(
                "{{\"frame\": 0, \"rois\": [{BOX}, {{\"x\": 1, \"y\": 1, \"w\": 4, \"h\": 4, \"id\": 3000000000}}]}}"
            ),
            "rois[1].id: expected a whole number from -2147483648 to 2147483647, found the number 3000000000",
        ),
        (
            "{\"frame\": 0, \"rois\": [{\"x\": 1, \"y\": 1, \"w\": 4, \"h\": 4, \"label\": 7}]}",
            "rois[0].label: expected a string, found the number 7",
        ),
        ("{\"frame\": 0, \"rois\": {}}", "\"rois\": expected an array of boxes, found an object"),
        ("{\"frame\": 0}", "\"rois\": missing"),
        ("[1, 2]", "expected a JSON object"),
        ("{\"frame\": 0, \"rois\": [}", "not valid JSON: expected value at column 23"),
    ];
    for (line, want) in cases {
        fs::write(&rois, format!("{{\"frame\": 5, \"rois\": []}}\n{line}\n")).unwrap();
        let (_, err, _) = replay(&rois, true);
        let err = err.unwrap_or_else(|| panic!("{line}: no error"));
        assert!(err.contains(&format!("typed.jsonl:2: {want}")), "{line}: {err}");
        for rust in ["usize", "u64", "i32", "f64", "struct", "line 1 column"] {
            assert!(!err.contains(rust), "{line}: {err} names {rust}");
        }
    }
}

#[test]
fn an_empty_replay_file_or_one_whose_lines_are_all_skipped_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let rois = dir.path().join("empty.jsonl");
    for (text, strict, why) in [
        ("", true, "it holds no line"),
        ("\n  \n", true, "it holds no line"),
        ("{\"frame\": \"x\", \"rois\": []}\n", false, "every line was skipped"),
    ] {
        fs::write(&rois, text).unwrap();
        let (warns, err, counts) = replay(&rois, strict);
        assert!(err.is_none(), "{err:?}");
        assert!(
            warns.iter().any(|w| w.contains(&format!("empty.jsonl: no recorded frames ({why})"))),
            "{text:?}: {warns:?}"
        );
        assert_eq!(counts, [0, 0, 0]);
    }
}
