// SPDX-License-Identifier: MIT OR Apache-2.0
//! How well a detector's boxes find the truth's signs: AP50 (all-point interpolated average precision at IoU 0.5,
//! one class), recall by sign size at an operating score threshold, and false boxes per frame — on frames with no
//! sign at all, and over every frame.
//!
//! Detections are odmexport's JSON lines (`{"frame", "rois": [{"x", "y", "w", "h", "score"}]}`, odmdetect's score);
//! truth is `odm-train clip`'s (or `odm-train detector data`'s) lines, where every box whose kind is not
//! `distractor` is a sign. Signs smaller than `min_size` (largest side) are "don't care": a box on one is neither a
//! hit nor a false box, and they do not count as signs to find (the target starts at 12 pixels; the clip
//! writes boxes from 10).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::data::rois::{iou, FrameLine, Rect};
use crate::error::TrainError;

/// Size bands (largest side, pixels) of the recall table: [lo, hi).
pub const BANDS: [(f64, f64); 4] = [(12.0, 16.0), (16.0, 32.0), (32.0, f64::INFINITY), (16.0, f64::INFINITY)];
/// IoU at which a box finds a sign.
pub const IOU: f64 = 0.5;

/// One frame's detections.
#[derive(Debug, Clone, Default)]
pub struct Detections {
    pub frame: u64,
    pub boxes: Vec<(Rect, f64)>,
}

/// Read odmexport lines (a ROI without a score counts as score 1).
pub fn read_detections(path: &Path) -> Result<Vec<Detections>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(TrainError::io(path))?;
    let bad = |i: usize, why: &str| TrainError::Config(format!("{}:{}: {why}", path.display(), i + 1));
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(l).map_err(|e| bad(i, &e.to_string()))?;
        let frame = v.get("frame").and_then(|f| f.as_u64()).ok_or_else(|| bad(i, "no frame number"))?;
        let mut boxes = Vec::new();
        for r in v.get("rois").and_then(|r| r.as_array()).map(Vec::as_slice).unwrap_or(&[]) {
            let num = |k: &str| r.get(k).and_then(|x| x.as_f64()).ok_or_else(|| bad(i, &format!("a ROI without {k}")));
            let score = r.get("score").and_then(|x| x.as_f64()).unwrap_or(1.0);
            boxes.push(((num("x")?, num("y")?, num("w")?, num("h")?), score));
        }
        out.push(Detections { frame, boxes });
    }
    if out.is_empty() {
        return Err(TrainError::Config(format!("{}: holds no frame", path.display())));
    }
    Ok(out)
}

/// The evaluation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DetEval {
    pub threshold: f64,
    pub min_size: f64,
    pub frames: usize,
    pub signs: usize,
    pub ap50: f64,
    /// Per band of [`BANDS`]: (signs, found at the threshold).
    pub bands: Vec<(usize, usize)>,
    /// Boxes at the threshold, and those on no sign (nor on a "don't care" one).
    pub boxes: usize,
    pub false_boxes: usize,
    /// False boxes on a truth distractor (a sign-like thing that is no sign).
    pub on_distractors: usize,
    /// False boxes smaller than `min_size` (where truth files leave signs out: the clip writes none under 10 px).
    pub false_small: usize,
    /// Frames with no sign of any size, and the boxes at the threshold on them.
    pub empty_frames: usize,
    pub boxes_on_empty: usize,
}

impl DetEval {
    pub fn recall(&self, band: usize) -> f64 {
        let (n, f) = self.bands[band];
        f as f64 / n.max(1) as f64
    }

    pub fn markdown(&self) -> String {
        let mut t = format!(
            "{} frames, {} signs of {} px or more; IoU >= {IOU}; recall and boxes at score >= {}\n\n\
             | measure | value |\n|---|---:|\n| AP50 | {:.3} |\n",
            self.frames, self.signs, self.min_size, self.threshold, self.ap50
        );
        for (&(lo, hi), &(n, f)) in BANDS.iter().zip(&self.bands) {
            let band = if hi.is_finite() { format!("{lo}-{hi} px") } else { format!(">= {lo} px") };
            t.push_str(&format!("| recall {band} | {:.1}% ({f} of {n}) |\n", 100.0 * f as f64 / n.max(1) as f64));
        }
        t.push_str(&format!(
            "| false boxes per frame (all {} frames) | {:.3} ({} of {} boxes; {} on distractors, {} under {} px) |\n\
             | boxes per frame on frames with no sign ({}) | {:.3} |\n",
            self.frames,
            self.false_boxes as f64 / self.frames.max(1) as f64,
            self.false_boxes,
            self.boxes,
            self.on_distractors,
            self.false_small,
            self.min_size,
            self.empty_frames,
            self.boxes_on_empty as f64 / self.empty_frames.max(1) as f64
        ));
        t
    }
}

/// Evaluate `detections` against `truth` (frames matched by number; a truth frame with no detection line has no
/// boxes).
pub fn evaluate(detections: &[Detections], truth: &[FrameLine], threshold: f64, min_size: f64) -> DetEval {
    let found: BTreeMap<u64, &Detections> = detections.iter().map(|d| (d.frame, d)).collect();
    let mut e = DetEval {
        threshold,
        min_size,
        frames: truth.len(),
        signs: 0,
        ap50: 0.0,
        bands: vec![(0, 0); BANDS.len()],
        boxes: 0,
        false_boxes: 0,
        on_distractors: 0,
        false_small: 0,
        empty_frames: 0,
        boxes_on_empty: 0,
    };
    // (score, true positive) of every ranked box.
    let mut ranked: Vec<(f64, bool)> = Vec::new();
    for f in truth {
        let signs: Vec<Rect> =
            f.rois.iter().filter(|r| r.kind.as_deref() != Some("distractor")).map(|r| r.rect()).collect();
        let big = |r: &Rect| r.2.max(r.3) >= min_size;
        let (cares, ignored): (Vec<Rect>, Vec<Rect>) = signs.iter().partition(|r| big(r));
        e.signs += cares.len();
        let mut boxes: Vec<(Rect, f64)> = found.get(&f.frame).map(|d| d.boxes.clone()).unwrap_or_default();
        boxes.sort_by(|a, b| b.1.total_cmp(&a.1));
        // Greedy matching, best score first, each sign taken once (as VOC and COCO rank).
        let mut taken = vec![false; cares.len()];
        for (b, score) in &boxes {
            let best = cares
                .iter()
                .enumerate()
                .filter(|(k, _)| !taken[*k])
                .map(|(k, t)| (iou(*b, *t), k))
                .filter(|(o, _)| *o >= IOU)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            match best {
                Some((_, k)) => {
                    taken[k] = true;
                    ranked.push((*score, true));
                }
                None if ignored.iter().any(|t| iou(*b, *t) >= IOU) => {}
                None => ranked.push((*score, false)),
            }
        }
        let kept: Vec<&(Rect, f64)> = boxes.iter().filter(|b| b.1 >= threshold).collect();
        for t in &cares {
            let side = t.2.max(t.3);
            let hit = kept.iter().any(|b| iou(b.0, *t) >= IOU);
            for (k, &(lo, hi)) in BANDS.iter().enumerate() {
                if side >= lo && side < hi {
                    e.bands[k].0 += 1;
                    e.bands[k].1 += usize::from(hit);
                }
            }
        }
        e.boxes += kept.len();
        let distractors: Vec<Rect> =
            f.rois.iter().filter(|r| r.kind.as_deref() == Some("distractor")).map(|r| r.rect()).collect();
        for b in kept.iter().filter(|b| !signs.iter().any(|t| iou(b.0, *t) >= IOU)) {
            e.false_boxes += 1;
            e.on_distractors += usize::from(distractors.iter().any(|t| iou(b.0, *t) >= IOU));
            e.false_small += usize::from(b.0 .2.max(b.0 .3) < min_size);
        }
        if signs.is_empty() {
            e.empty_frames += 1;
            e.boxes_on_empty += kept.len();
        }
    }
    e.ap50 = average_precision(&mut ranked, e.signs);
    e
}

/// All-point interpolated AP of ranked (score, hit) pairs against `positives`.
fn average_precision(ranked: &mut [(f64, bool)], positives: usize) -> f64 {
    if positives == 0 {
        return 0.0;
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut points = Vec::with_capacity(ranked.len());
    for &(_, hit) in ranked.iter() {
        if hit {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        points.push((tp / positives as f64, tp / (tp + fp)));
    }
    // Precision made monotone from the right, then summed over the recall steps.
    let mut ap = 0.0;
    let mut best = 0.0f64;
    for i in (0..points.len()).rev() {
        best = best.max(points[i].1);
        let prev_recall = if i == 0 { 0.0 } else { points[i - 1].0 };
        ap += (points[i].0 - prev_recall) * best;
    }
    ap
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::rois::RoiLine;

    fn sign(x: f64, y: f64, s: f64, kind: &str) -> RoiLine {
        serde_json::from_value(serde_json::json!({"id": 0, "x": x, "y": y, "w": s, "h": s, "kind": kind})).unwrap()
    }

    fn frame(n: u64, rois: Vec<RoiLine>) -> FrameLine {
        serde_json::from_value(serde_json::json!({"frame": n, "rois": rois.iter().map(|r| serde_json::json!({
            "id": r.id, "x": r.x, "y": r.y, "w": r.w, "h": r.h, "kind": r.kind})).collect::<Vec<_>>()}))
        .unwrap()
    }

    #[test]
    fn ap_of_a_perfect_and_of_a_half_ranking() {
        assert_eq!(average_precision(&mut [(0.9, true), (0.8, true)], 2), 1.0);
        // Hit, miss, hit of 2 positives: recall 0.5 at precision 1, then 1.0 at precision 2/3.
        let ap = average_precision(&mut [(0.9, true), (0.8, false), (0.7, true)], 2);
        assert!((ap - (0.5 + 0.5 * 2.0 / 3.0)).abs() < 1e-12, "{ap}");
        // A false box ranked first: precision 1/2 at recall 0.5 and 2/3 at recall 1: monotone 2/3 over both.
        let ap = average_precision(&mut [(0.9, false), (0.8, true), (0.7, true)], 2);
        assert!((ap - 2.0 / 3.0).abs() < 1e-12, "{ap}");
        // A sign never found caps AP at the recall reached.
        assert_eq!(average_precision(&mut [(0.9, true)], 2), 0.5);
    }

    #[test]
    fn recall_by_size_false_boxes_and_dont_care() {
        let truth = vec![
            // A 14 px sign found, a 40 px sign missed (the box is off), a distractor boxed (a false box).
            frame(
                0,
                vec![
                    sign(10.0, 10.0, 14.0, "known"),
                    sign(100.0, 100.0, 40.0, "unknown"),
                    sign(300.0, 10.0, 20.0, "distractor"),
                ],
            ),
            // No sign: one box there.
            frame(1, vec![]),
            // A 10 px sign: don't care; a box on it is no false box.
            frame(2, vec![sign(50.0, 50.0, 10.0, "known")]),
        ];
        let det = vec![
            Detections {
                frame: 0,
                boxes: vec![
                    ((11.0, 10.0, 14.0, 14.0), 0.9),
                    ((130.0, 130.0, 40.0, 40.0), 0.8),
                    ((300.0, 10.0, 20.0, 20.0), 0.7),
                ],
            },
            Detections { frame: 1, boxes: vec![((5.0, 5.0, 20.0, 20.0), 0.6), ((5.0, 50.0, 20.0, 20.0), 0.1)] },
            Detections { frame: 2, boxes: vec![((50.0, 50.0, 10.0, 10.0), 0.95)] },
        ];
        let e = evaluate(&det, &truth, 0.25, 12.0);
        assert_eq!(e.signs, 2);
        assert_eq!(e.bands, vec![(1, 1), (0, 0), (1, 0), (1, 0)]);
        assert_eq!((e.boxes, e.false_boxes), (5, 3), "the distractor's box, frame 1's box, the off box");
        assert_eq!((e.on_distractors, e.false_small), (1, 0));
        assert_eq!((e.empty_frames, e.boxes_on_empty), (1, 1), "the 0.1 box is below the threshold");
        // Ranked: 0.9 hit, 0.8 miss, 0.7 miss, 0.6 miss, 0.1 miss (the 0.95 box is on a don't-care sign): AP 0.5.
        assert!((e.ap50 - 0.5).abs() < 1e-12, "{}", e.ap50);
        assert!(e.markdown().contains("| recall 12-16 px | 100.0% (1 of 1) |"), "{}", e.markdown());
    }

    #[test]
    fn a_sign_is_found_once() {
        let truth = vec![frame(0, vec![sign(10.0, 10.0, 20.0, "known")])];
        let det = vec![Detections {
            frame: 0,
            boxes: vec![((10.0, 10.0, 20.0, 20.0), 0.9), ((11.0, 10.0, 20.0, 20.0), 0.8)],
        }];
        let e = evaluate(&det, &truth, 0.5, 12.0);
        assert_eq!(e.ap50, 1.0, "the duplicate ranks below the hit");
        assert_eq!(e.false_boxes, 0, "but it overlaps a sign, so it is no false box");
    }
}
