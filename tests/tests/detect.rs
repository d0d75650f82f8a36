// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmdetect on tiny ONNX detectors written by odm's own ONNX writer, one per output layout, whose outputs are
//! constants (plus 0 x the input, so they follow the batch): the boxes they must give on the frame are worked out by
//! hand through the letterbox (a 128 x 64 frame into a 64 x 64 input: scale 0.5, 16 rows of grey above and below).
//! Real files, real ONNX Runtime, gst-launch-1.0 with odmexport; bad detectors are refused naming the file.

use std::fs;
use std::path::{Path, PathBuf};

use odm_e2e::{gst_tool, text};
use odm_trainer::export::onnx::{Attr, Dim, GraphBuilder};
use serde_json::Value;

const INT64: i32 = 7;

/// A detector `[N,3,64,64] -> outputs`, each output `values` of shape `[1, ...dims]` broadcast over the batch.
fn detector(dir: &Path, name: &str, outputs: &[(&str, Vec<i64>, Vec<f32>)], metadata: &[(&str, &str)]) -> PathBuf {
    let mut g = GraphBuilder::new(name);
    let x = g.input("images", &[Dim::Named("N"), Dim::Fixed(3), Dim::Fixed(64), Dim::Fixed(64)]);
    let mean = g.node("ReduceMean", &[&x], vec![Attr::Ints("axes", vec![1, 2, 3]), Attr::Int("keepdims", 0)], None);
    let zero = g.weight("zero", &[1], &[0.0]);
    for (out, dims, values) in outputs {
        // 0 x the input's mean, shaped [N, 1, ...] to the output's rank.
        let mut ones = vec![-1i64];
        ones.extend(dims.iter().map(|_| 1));
        let bytes = ones.iter().flat_map(|v| v.to_le_bytes()).collect();
        let shape = g.raw(&format!("{out}_shape"), &[ones.len() as i64], INT64, bytes);
        let column = g.node("Reshape", &[&mean, &shape], vec![], None);
        let nothing = g.node("Mul", &[&column, &zero], vec![], None);
        let mut full = vec![1];
        full.extend_from_slice(dims);
        let c = g.weight(&format!("{out}_values"), &full, values);
        g.node("Add", &[&c, &nothing], vec![], Some(out));
        let mut od = vec![Dim::Named("N")];
        od.extend(dims.iter().map(|d| Dim::Fixed(*d)));
        g.output(out, &od);
    }
    let path = dir.join(format!("{name}.onnx"));
    fs::write(&path, g.finish_with("a test detector", metadata)).unwrap();
    path
}

/// `videotestsrc num-buffers=2 ! 128x64 FORMAT ! odmdetect model=MODEL PROPS ! odmexport ! fakesink`: the exported
/// ROIs of the first frame (id, type, x, y, w, h, score), or gst-launch's output on failure.
fn detect(dir: &Path, model: &Path, format: &str, props: &[&str]) -> Result<Vec<Value>, String> {
    let out = dir.join("out.jsonl");
    let _ = fs::remove_file(&out);
    let o = gst_tool("gst-launch-1.0", &dir.join("registry.bin"))
        .args(["videotestsrc", "num-buffers=2", "!", &format!("video/x-raw,width=128,height=64,format={format}")])
        .args(["!", "odmdetect", &format!("model={}", model.display())])
        .args(props)
        .args(["!", "odmexport", &format!("location={}", out.display()), "!", "fakesink"])
        .output()
        .unwrap();
    if !o.status.success() {
        return Err(text(&o));
    }
    let first = fs::read_to_string(&out).unwrap().lines().next().map(|l| serde_json::from_str::<Value>(l).unwrap());
    Ok(first.map(|v| v["rois"].as_array().unwrap().clone()).unwrap_or_default())
}

/// (type, x, y, w, h, score rounded to 3 places), sorted by score.
fn boxes(rois: &[Value]) -> Vec<(String, u64, u64, u64, u64, i64)> {
    let mut b: Vec<_> = rois
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap();
            let score = (r["score"].as_f64().unwrap() * 1000.0).round() as i64;
            (r["type"].as_str().unwrap().to_owned(), n("x"), n("y"), n("w"), n("h"), score)
        })
        .collect();
    b.sort_by_key(|x| -x.5);
    b
}

/// YOLOv8 `[1, 4+2, 4]`: two classes; columns are candidates (cx, cy, w, h, score of class 0, of class 1).
fn yolov8(dir: &Path, metadata: &[(&str, &str)]) -> PathBuf {
    #[rustfmt::skip]
    let v = vec![
        32.0, 32.0, 34.0, 50.0, // cx
        32.0, 32.0, 32.0, 20.0, // cy
        16.0, 16.0, 16.0, 8.0,  // w
        8.0, 8.0, 8.0, 8.0,     // h
        0.9, 0.0, 0.6, 0.0,     // class 0
        0.0, 0.8, 0.0, 0.2,     // class 1
    ];
    detector(dir, "yolov8", &[("output0", vec![6, 4], v)], metadata)
}

#[test]
fn yolov8_boxes_land_through_the_letterbox_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let model = yolov8(dir.path(), &[("names", "{0: 'stop', 1: 'yield'}")]);
    // Candidate 0 (class 0, 0.9) and candidate 1 (the same box, class 1, 0.8) both stay: suppression is per class.
    // Candidate 2 (class 0, 0.6) overlaps candidate 0 by 0.78: suppressed. Candidate 3 (0.2) is under 0.25.
    // (cx 32, cy 32, w 16, h 8) in the input is (24, 28)-(40, 36): in the frame (48, 24)-(80, 40).
    let want = vec![("stop".to_owned(), 48, 24, 32, 16, 900), ("yield".to_owned(), 48, 24, 32, 16, 800)];
    for format in ["RGB", "NV12", "I420", "BGRx"] {
        assert_eq!(boxes(&detect(dir.path(), &model, format, &[]).unwrap()), want, "{format}");
    }
    // Thresholds and limits as properties; roi-type overrides the label.
    let low = detect(dir.path(), &model, "RGB", &["score-threshold=0.1", "iou-threshold=0.9"]).unwrap();
    assert_eq!(low.len(), 4, "nothing suppressed at IoU 0.9, nothing under 0.1: {low:?}");
    let one = detect(dir.path(), &model, "RGB", &["max-detections=1", "roi-type=sign"]).unwrap();
    assert_eq!(boxes(&one), [("sign".to_owned(), 48, 24, 32, 16, 900)]);
    // Fresh, distinct ids.
    let ids: std::collections::BTreeSet<i64> = low.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 4);
}

#[test]
fn labels_come_from_a_file_or_the_metadata_or_are_numbered() {
    let dir = tempfile::tempdir().unwrap();
    let bare = yolov8(dir.path(), &[]);
    let types = |rois: Vec<Value>| -> Vec<String> { boxes(&rois).into_iter().map(|b| b.0).collect() };
    assert_eq!(types(detect(dir.path(), &bare, "RGB", &[]).unwrap()), ["class-0", "class-1"]);
    let labels = dir.path().join("labels.txt");
    fs::write(&labels, "regulatory--stop--g1\n\nwarning--other-danger--g1\n").unwrap();
    let with = detect(dir.path(), &bare, "RGB", &[&format!("labels={}", labels.display())]).unwrap();
    assert_eq!(types(with), ["regulatory--stop--g1", "warning--other-danger--g1"]);
    // A file with the wrong number of names is refused by name.
    fs::write(&labels, "one\n").unwrap();
    let e = detect(dir.path(), &bare, "RGB", &[&format!("labels={}", labels.display())]).unwrap_err();
    assert!(e.contains("labels.txt") && e.contains("1 names") && e.contains("2 classes"), "{e}");
    // Metadata naming 3 classes for a network of 2: not trusted, the classes are numbered.
    let three = yolov8(dir.path(), &[("names", "{0: 'stop', 1: 'yield', 2: 'other'}")]);
    assert_eq!(types(detect(dir.path(), &three, "RGB", &[]).unwrap()), ["class-0", "class-1"]);
}

#[test]
fn tiles_add_the_tiles_detections_at_their_place() {
    // tiles=2 on 128 x 64: the whole frame, then 2 x 1 tiles of 72 x 64 at x 0 and 56. A tile goes into the input at
    // scale 64/72 (57 rows, 3 above): the candidate lands at (27, 28, 18, 9) in the first tile, (83, 28, 18, 9) in
    // the second.
    let dir = tempfile::tempdir().unwrap();
    let model = yolov8(dir.path(), &[]);
    let got = boxes(&detect(dir.path(), &model, "RGB", &["tiles=2"]).unwrap());
    let mut rects: Vec<_> = got.iter().filter(|b| b.0 == "class-0").map(|b| (b.1, b.2, b.3, b.4)).collect();
    rects.sort();
    assert_eq!(rects, [(27, 28, 18, 9), (48, 24, 32, 16), (83, 28, 18, 9)]);
}

#[test]
fn yolov5_and_boxes_scores_layouts() {
    let dir = tempfile::tempdir().unwrap();
    // YOLOv5 [1, 2, 5+1]: score = objectness 0.8 x class 0.9; the second candidate 0.1 x 0.9 is dropped.
    let v5 = detector(
        dir.path(),
        "yolov5",
        &[("output", vec![2, 6], vec![32.0, 32.0, 32.0, 16.0, 0.8, 0.9, 10.0, 30.0, 4.0, 4.0, 0.1, 0.9])],
        &[],
    );
    assert_eq!(boxes(&detect(dir.path(), &v5, "RGB", &[]).unwrap()), [("class-0".to_owned(), 32, 16, 64, 32, 720)]);
    // Boxes [1, 2, 4] (x1, y1, x2, y2) and scores [1, 2, 3]; outputs in either order.
    let b = vec![16.0, 24.0, 48.0, 40.0, 0.0, 16.0, 8.0, 24.0];
    let s = vec![0.1, 0.7, 0.2, 0.05, 0.1, 0.1];
    for order in [[0, 1], [1, 0]] {
        let outs = [("boxes", vec![2, 4], b.clone()), ("scores", vec![2, 3], s.clone())];
        let name = format!("ssd{}", order[0]);
        let m = detector(dir.path(), &name, &[outs[order[0]].clone(), outs[order[1]].clone()], &[]);
        let got = detect(dir.path(), &m, "RGB", &["decoder=boxes-scores"]).unwrap();
        assert_eq!(boxes(&got), [("class-1".to_owned(), 32, 16, 64, 32, 700)], "{name}");
    }
}

#[test]
fn detectors_whose_outputs_fit_no_layout_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("rank2", vec![("out", vec![6], vec![0.0; 6])], "cannot tell the layout"),
        ("noclass", vec![("out", vec![4, 5], vec![0.0; 20])], "zero classes"),
        (
            "three",
            vec![("a", vec![2, 4], vec![0.0; 8]), ("b", vec![2, 3], vec![0.0; 6]), ("c", vec![1], vec![0.0])],
            "cannot tell the layout",
        ),
    ];
    for (name, outputs, why) in cases {
        let m = detector(dir.path(), name, &outputs, &[]);
        let e = detect(dir.path(), &m, "RGB", &[]).unwrap_err();
        assert!(e.contains(&format!("{name}.onnx")) && e.contains(why), "{name}: {e}");
    }
    // yolov8 asked of 4 rows (boxes, no class); yolov5 asked of too few columns.
    let m = detector(dir.path(), "boxonly", &[("out", vec![4, 8], vec![0.0; 32])], &[]);
    let e = detect(dir.path(), &m, "RGB", &["decoder=yolov8"]).unwrap_err();
    assert!(e.contains("boxonly.onnx") && e.contains("zero classes"), "{e}");
    let m = detector(dir.path(), "narrow", &[("out", vec![3, 5], vec![0.0; 15])], &[]);
    let e = detect(dir.path(), &m, "RGB", &["decoder=yolov5"]).unwrap_err();
    assert!(e.contains("narrow.onnx") && e.contains("zero classes"), "{e}");
    // A file that is not a network, and no file.
    let junk = dir.path().join("junk.onnx");
    fs::write(&junk, b"not a network").unwrap();
    let e = detect(dir.path(), &junk, "RGB", &[]).unwrap_err();
    assert!(e.contains("junk.onnx"), "{e}");
    let e = detect(dir.path(), &dir.path().join("missing.onnx"), "RGB", &[]).unwrap_err();
    assert!(e.contains("missing.onnx") && e.contains("not found"), "{e}");
}

#[test]
fn a_detector_that_gives_logits_is_named_and_its_frames_pass_without_boxes() {
    // Scores of -3 and 2.5 (a network exported without its sigmoid): no threshold means anything on them. Every frame
    // still reaches the export, with no box, on the streaming thread and with frames in flight; the warning names
    // the file and the score.
    let dir = tempfile::tempdir().unwrap();
    #[rustfmt::skip]
    let v = vec![
        32.0, 40.0, // cx
        32.0, 20.0, // cy
        16.0, 8.0,  // w
        8.0, 8.0,   // h
        -3.0, 2.5,  // class 0
    ];
    let model = detector(dir.path(), "logits", &[("output0", vec![5, 2], v)], &[]);
    for inflight in ["frames-in-flight=0", "frames-in-flight=2"] {
        let out = dir.path().join("logits.jsonl");
        let o = gst_tool("gst-launch-1.0", &dir.path().join("registry.bin"))
            .args(["videotestsrc", "num-buffers=3", "!", "video/x-raw,width=128,height=64,format=NV12"])
            .args(["!", "odmdetect", &format!("model={}", model.display()), inflight])
            .args(["!", "odmexport", &format!("location={}", out.display()), "!", "fakesink"])
            .output()
            .unwrap();
        let said = text(&o);
        assert!(o.status.success(), "{inflight}: {said}");
        assert!(said.contains(&model.display().to_string()) && said.contains("outside [0, 1]"), "{inflight}: {said}");
        let lines: Vec<Value> =
            fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3, "{inflight}: every frame exported");
        assert!(lines.iter().all(|l| l["rois"].as_array().unwrap().is_empty()), "{inflight}: {lines:?}");
    }
}

#[test]
fn tiny_frames_and_more_tiles_than_pixels_are_handled_and_every_box_is_inside_the_frame() {
    // A 6 x 4 frame (smaller than the 64 x 64 input: scaled up) with 16 columns of tiles (more than its width): the
    // element runs, and every box lies inside the frame.
    let dir = tempfile::tempdir().unwrap();
    let model = yolov8(dir.path(), &[]);
    // A tall strip too: its tiles run down its height (16 of them, not 19,201: the count is held by letterbox.rs's
    // unit test; here every box must still land inside the frame).
    let cases = [
        (6u32, 4u32, "tiles=16"),
        (6, 4, "tiles=0"),
        (1, 1, "tiles=16"),
        (3000, 40, "tiles=16"),
        (40, 3000, "tiles=16"),
    ];
    for (w, h, tiles) in cases {
        let out = dir.path().join("tiny.jsonl");
        let o = gst_tool("gst-launch-1.0", &dir.path().join("registry.bin"))
            .args(["videotestsrc", "num-buffers=2", "!", &format!("video/x-raw,width={w},height={h},format=I420")])
            .args(["!", "odmdetect", &format!("model={}", model.display()), tiles, "score-threshold=0.1"])
            .args(["!", "odmexport", &format!("location={}", out.display()), "!", "fakesink"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{w}x{h} {tiles}: {}", text(&o));
        for line in fs::read_to_string(&out).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            for r in v["rois"].as_array().unwrap() {
                let n = |k: &str| r[k].as_u64().unwrap();
                assert!(n("w") > 0 && n("h") > 0, "{w}x{h} {tiles}: {r}");
                assert!(n("x") + n("w") <= w as u64 && n("y") + n("h") <= h as u64, "{w}x{h} {tiles}: {r} outside");
            }
        }
    }
}
