// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train mine` on a rendered drive, through the built command and GStreamer: every recorded box that is not on
//! a ground-truth sign becomes one negative (the rendered distractors), boxes on signs are left out, the proposals of
//! the built odmproposals can be mined too, and bad inputs stop with an error that names them.

use std::path::Path;

use odm_e2e::*;
use odm_trainer::data::rois;
use odm_trainer::synth::clip::{self, ClipConfig};

fn mine(args: &[&str], dir: &Path) -> std::process::Output {
    gst_tool(target_dir().join("odm-train"), &dir.join("registry.bin")).arg("mine").args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn mining_a_drive_keeps_the_boxes_off_the_signs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ClipConfig { width: 640, height: 360, seconds: 2.0, fps: 15, seed: 5, ..Default::default() };
    let c = clip::run(&dir.path().join("drive.mp4"), &dir.path().join("drive.rois.jsonl"), &cfg).unwrap();
    let truth = rois::read(&c.rois).unwrap();
    let kind = |k: &str| truth.iter().flat_map(|f| &f.rois).filter(|r| r.kind.as_deref() == Some(k)).count();
    let distractors = kind("distractor");
    assert!(distractors > 0 && kind("known") > 0, "the drive has signs and distractors");

    // Replayed ground truth as the boxes: the signs are excluded by overlap, the distractors are mined.
    let out = dir.path().join("neg");
    let run = mine(&["--clip", s(&c.video), "--rois", s(&c.rois), "--truth", s(&c.rois), "--out", s(&out)], dir.path());
    assert!(run.status.success(), "{}", text(&run));
    let manifest = std::fs::read_to_string(out.join("mined.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = manifest.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // A distractor's box may overlap a sign's (a light behind a sign); those are left out with the signs.
    assert!(!lines.is_empty() && lines.len() <= distractors, "{} negatives, {distractors} distractors", lines.len());
    for l in &lines {
        let (f, x, y) = (l["frame"].as_u64().unwrap(), l["x"].as_f64().unwrap(), l["y"].as_f64().unwrap());
        let r = truth[f as usize].rois.iter().find(|r| r.x == x && r.y == y).expect("a recorded box");
        assert_eq!(r.kind.as_deref(), Some("distractor"), "frame {f}: a sign was mined");
        let img = image::open(out.join(l["file"].as_str().unwrap())).unwrap();
        assert_eq!((img.width(), img.height()), (64, 64));
    }
    assert!(text(&run).contains(&format!("wrote {} negatives", lines.len())), "{}", text(&run));
    // The tree reads as an anomaly tree.
    let tree = odm_trainer::data::load(&out, odm_trainer::data::Format::Folder).unwrap();
    assert_eq!(tree.samples.len(), lines.len());

    // A live detector's boxes: odmproposals, from the built plugin. Without a truth file every proposal is kept,
    // so the manifest lists as many boxes as the command reports.
    let out = dir.path().join("neg-proposals");
    let run = mine(&["--clip", s(&c.video), "--proposals", "--out", s(&out)], dir.path());
    let t = text(&run);
    assert!(run.status.success(), "{t}");
    let n = std::fs::read_to_string(out.join("mined.jsonl")).unwrap().lines().count();
    assert!(n > 0 && t.contains(&format!("{n} boxes, 0 on ground-truth signs: wrote {n} negatives")), "{t}");
}

#[test]
fn mining_refuses_bad_inputs_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ClipConfig { width: 320, height: 180, seconds: 1.0, fps: 10, seed: 6, ..Default::default() };
    let c = clip::run(&dir.path().join("drive.mp4"), &dir.path().join("drive.rois.jsonl"), &cfg).unwrap();
    let out = dir.path().join("neg");
    let fails = |args: &[&str], parts: &[&str]| {
        let run = mine(args, dir.path());
        let t = text(&run);
        assert!(!run.status.success(), "{t}");
        assert!(!t.contains("panicked"), "{t}");
        for p in parts {
            assert!(t.contains(p), "{t:?} lacks {p:?}");
        }
    };
    // A clip that does not decode.
    let bad = dir.path().join("broken.mp4");
    std::fs::write(&bad, b"this is not a video").unwrap();
    let (rois, truth) = (s(&c.rois), s(&c.rois));
    fails(&["--clip", s(&bad), "--rois", rois, "--truth", truth, "--out", s(&out)], &["broken.mp4", "does not decode"]);
    // A missing clip.
    fails(&["--clip", "/nonexistent/clip.mp4", "--rois", rois, "--truth", truth, "--out", s(&out)], &["no such file"]);
    // Recorded boxes without the truth would mine the signs too.
    fails(&["--clip", s(&c.video), "--rois", rois, "--out", s(&out)], &["needs --truth"]);
    // A truth file with a bad line names the file and the line.
    let bad_truth = dir.path().join("truth.jsonl");
    std::fs::write(&bad_truth, "{\"frame\": 0, \"rois\": []}\nnot json\n").unwrap();
    fails(
        &["--clip", s(&c.video), "--rois", s(&c.rois), "--truth", s(&bad_truth), "--out", s(&out)],
        &["truth.jsonl:2"],
    );
    // Nothing left to mine: every box is on a sign.
    let signs_only = dir.path().join("signs.jsonl");
    let text_only: String = std::fs::read_to_string(&c.rois)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["rois"].as_array_mut().unwrap().retain(|r| r["kind"] != "distractor");
            v.to_string() + "\n"
        })
        .collect();
    std::fs::write(&signs_only, text_only).unwrap();
    fails(
        &["--clip", s(&c.video), "--rois", s(&signs_only), "--truth", s(&signs_only), "--out", s(&out)],
        &["nothing to mine"],
    );
    // Neither --rois nor --proposals.
    fails(&["--clip", s(&c.video), "--out", s(&out)], &["--rois"]);
}
