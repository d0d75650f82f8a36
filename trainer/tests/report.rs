// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train report`: the HTML page from odmexport lines, ground truth and the clip (decoded by GStreamer).

use std::path::Path;

use odm_trainer::report::page::{write, ReportOptions};
use odm_trainer::report::results::Match;

fn clip(path: &Path) {
    let ok = std::process::Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "num-buffers=4", "!", "video/x-raw,width=160,height=120,framerate=10/1"])
        .args(["!", "x264enc", "!", "mp4mux", "!", "filesink", &format!("location={}", path.display())])
        .status()
        .unwrap()
        .success();
    assert!(ok, "gst-launch-1.0 renders the test clip");
}

fn roi(id: i32, label: &str, d: f64, verdict: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "type": "sign", "x": 10 + 30 * id, "y": 20, "w": 24, "h": 24, "class_id": 0,
        "label": label, "distance": d, "confidence": 0.5f64.powf((d / 2.0) * (d / 2.0)), "verdict": verdict,
        "novelty_threshold": 2.0, "anomaly_threshold": 5.0, "model": "test"})
}

#[test]
fn the_page_groups_mistakes_worst_first_with_thumbnails_and_histograms() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("clip.mp4");
    clip(&video);
    let results = dir.path().join("results.jsonl");
    let lines = [
        serde_json::json!({"frame": 0, "pts": 0, "rois": [roi(0, "regulatory--stop--g1", 9.0, "anomaly"), roi(1, "regulatory--stop--g1", 1.0, "known")]}),
        serde_json::json!({"frame": 1, "pts": 1, "rois": [roi(0, "regulatory--stop--g1", 12.0, "anomaly"), roi(2, "regulatory--yield--g1", 0.5, "known")]}),
        serde_json::json!({"frame": 2, "pts": 2, "rois": [roi(3, "regulatory--yield--g1", 3.0, "novelty")]}),
    ];
    std::fs::write(&results, lines.iter().map(|l| l.to_string() + "\n").collect::<String>()).unwrap();
    let truth = dir.path().join("truth.jsonl");
    let t = |id: i32, kind: &str, label: &str| serde_json::json!({"id": id, "x": 10 + 30 * id, "y": 20, "w": 24, "h": 24, "kind": kind, "label": label});
    let truth_lines = [
        serde_json::json!({"frame": 0, "rois": [t(0, "known", "regulatory--stop--g1"), t(1, "known", "regulatory--stop--g1")]}),
        serde_json::json!({"frame": 1, "rois": [t(0, "known", "regulatory--stop--g1"), t(2, "distractor", "")]}),
        serde_json::json!({"frame": 2, "rois": [t(3, "unknown", "bridleway")]}),
    ];
    std::fs::write(&truth, truth_lines.iter().map(|l| l.to_string() + "\n").collect::<String>()).unwrap();

    let out = dir.path().join("report");
    let o = ReportOptions {
        results: results.clone(),
        clip: Some(video.clone()),
        truth: Some(truth.clone()),
        matching: Match::Ids,
        per_group: 10,
        out: out.clone(),
    };
    let index = write(&o).unwrap();
    let html = std::fs::read_to_string(&index).unwrap();
    // Verdicts by ground truth, with the right and wrong cells marked.
    assert!(html.contains("<td class=\"k\">known</td><td>3</td>"), "{html}");
    assert!(html.contains("<td class=\"bad\">2 (66.7%)</td>"), "{html}");
    // The mistakes, worst first: the known sign at 12 before the one at 9; the distractor called known.
    let anomaly = html.find("Known signs called anomaly (2)").unwrap();
    let (d12, d9) = (html[anomaly..].find("distance 12.00").unwrap(), html[anomaly..].find("distance 9.00").unwrap());
    assert!(d12 < d9, "worst first");
    assert!(html.contains("Non-signs called known (1)") && html.contains("Right answers (2)"), "{html}");
    // A histogram per class with its thresholds, as inline SVG.
    assert_eq!(html.matches("<svg").count(), 2, "stop and give-way");
    assert!(html.contains("novelty threshold 2.00") && html.contains("anomaly threshold 5.00"), "{html}");
    // Thumbnails cut from the clip, one per ROI shown, and linked from the page.
    let thumbs: Vec<_> = std::fs::read_dir(out.join("thumbs")).unwrap().flatten().collect();
    assert_eq!(thumbs.len(), 5);
    for t in &thumbs {
        let name = t.file_name().to_string_lossy().into_owned();
        assert!(html.contains(&format!("thumbs/{name}")), "{name}");
        assert_eq!(image::open(t.path()).unwrap().width(), 64);
    }

    // Without truth: groups by verdict.
    let html =
        std::fs::read_to_string(write(&ReportOptions { truth: None, clip: None, ..o.clone() }).unwrap()).unwrap();
    assert!(html.contains(">Anomaly (2)</h2>") && html.contains(">Known (2)</h2>"), "{html}");

    // A clip that does not decode, and a results file with a bad line, are named.
    let bad = dir.path().join("bad.mp4");
    std::fs::write(&bad, b"not a video").unwrap();
    let e = write(&ReportOptions { clip: Some(bad), ..o.clone() }).unwrap_err().to_string();
    assert!(e.contains("bad.mp4") && e.contains("does not decode"), "{e}");
    std::fs::write(&results, "{\"frame\": 0, \"rois\": [}\n").unwrap();
    let e = write(&o).unwrap_err().to_string();
    assert!(e.contains("results.jsonl") && e.contains("line 1"), "{e}");
}

#[test]
fn the_page_shows_verdicts_by_sign_category_and_novelties_of_another_category() {
    // Taxonomy labels in the truth: a table by kind and category, how many unknown signs called novelty got their
    // own category, and those that did not as a group of their own (not among the right answers).
    let dir = tempfile::tempdir().unwrap();
    let r = |id: i32, label: &str, d: f64, verdict: &str, category: Option<&str>| {
        let mut v = roi(id, label, d, verdict);
        v["category"] = category.map_or(serde_json::Value::Null, serde_json::Value::from);
        v
    };
    let results = dir.path().join("results.jsonl");
    let lines = [serde_json::json!({"frame": 0, "pts": 0, "rois": [
        r(0, "regulatory--stop--g1", 1.0, "known", Some("regulatory")),
        r(1, "regulatory--stop--g1", 3.0, "novelty", Some("regulatory")),
        r(2, "warning--curve-left--g1", 3.5, "novelty", Some("warning")),
        r(3, "warning--curve-left--g1", 9.0, "anomaly", None)]})];
    std::fs::write(&results, lines.iter().map(|l| l.to_string() + "\n").collect::<String>()).unwrap();
    let truth = dir.path().join("truth.jsonl");
    let t = |id: i32, kind: &str, label: &str| serde_json::json!({"id": id, "x": 10 + 30 * id, "y": 20, "w": 24, "h": 24, "kind": kind, "label": label});
    let truth_line = serde_json::json!({"frame": 0, "rois": [t(0, "known", "regulatory--stop--g1"),
        t(1, "unknown", "warning--deer--g1"), t(2, "unknown", "warning--children--g2"), t(3, "distractor", "")]});
    std::fs::write(&truth, truth_line.to_string() + "\n").unwrap();
    let o = ReportOptions {
        results,
        clip: None,
        truth: Some(truth),
        matching: Match::Ids,
        per_group: 10,
        out: dir.path().join("report"),
    };
    let html = std::fs::read_to_string(write(&o).unwrap()).unwrap();
    assert!(html.contains("<h2>Verdicts by sign category</h2>"), "{html}");
    assert!(
        html.contains(
            "<td class=\"k\">unknown</td><td class=\"k\">warning</td><td>2</td><td>0 (0.0%)</td><td>2 (100.0%)</td>"
        ),
        "{html}"
    );
    assert!(html.contains("Unknown signs called novelty with the category of their sign: 1 of 2 (50.0%)."), "{html}");
    let group = html.find("Unknown signs called novelty with another category (1)").expect("the group");
    let right = html.find("Right answers (3)").expect("known stop, the warning novelty, the distractor");
    assert!(html[group..right].contains("id 1<br><b>regulatory--stop--g1</b> novelty (regulatory)"), "{html}");
    assert!(!html[right..].contains("id 1<br>"), "a novelty of another category is not a right answer");
    assert!(html[right..].contains("<b>warning--curve-left--g1</b> novelty (warning)"), "{html}");
}

#[test]
fn a_missing_short_or_broken_clip_is_said_and_leaves_no_empty_thumbs() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results.jsonl");
    let lines: String = (0..10)
        .map(|f| {
            serde_json::json!({"frame": f, "rois": [roi(0, "regulatory--stop--g1", 1.0, "known")]}).to_string() + "\n"
        })
        .collect();
    std::fs::write(&results, lines).unwrap();
    let options = |clip: &Path, out: &Path| ReportOptions {
        results: results.clone(),
        clip: Some(clip.to_owned()),
        truth: None,
        matching: Match::Ids,
        per_group: 20,
        out: out.to_owned(),
    };
    // A clip that is not there: said so, and nothing written.
    let out = dir.path().join("missing");
    let e = write(&options(&dir.path().join("nope.mp4"), &out)).unwrap_err().to_string();
    assert!(e.contains("nope.mp4") && e.contains("missing"), "{e}");
    assert!(!out.exists(), "a refused report left {}", out.display());
    // A clip that does not decode: its error, and no empty thumbs/ left behind.
    let broken = dir.path().join("broken.mp4");
    std::fs::write(&broken, "not a video").unwrap();
    let out = dir.path().join("broken");
    let e = write(&options(&broken, &out)).unwrap_err().to_string();
    assert!(e.contains("broken.mp4"), "{e}");
    assert!(!out.join("thumbs").exists(), "a failed report left an empty thumbs/");
    // A clip of 4 frames for results of 10: the page says that 6 ROIs have no thumbnail, and why.
    let video = dir.path().join("short.mp4");
    clip(&video);
    let out = dir.path().join("short");
    let html = std::fs::read_to_string(write(&options(&video, &out)).unwrap()).unwrap();
    assert!(
        html.contains("has 4 frames but the results go on to frame 9: 6 ROIs have no thumbnail"),
        "the page does not say the clip is short: {html}"
    );
    assert_eq!(std::fs::read_dir(out.join("thumbs")).unwrap().count(), 4, "a thumbnail per decoded frame");
}
