// SPDX-License-Identifier: MIT OR Apache-2.0
//! Detector output layouts and their decoding into boxes, and class-aware non-maximum suppression. Pure logic: the
//! element reads the outputs, this turns them into detections in network-input pixels.
//!
//! Layouts (B the batch, N candidates, C classes):
//! - `yolov8`: one output `[B, 4+C, N]`: rows cx, cy, w, h, then C class scores (YOLOv8, YOLO11, odm's detector);
//! - `yolov5`: one output `[B, N, 5+C]`: cx, cy, w, h, objectness, then C class scores; score = objectness x class
//!   score (YOLOv5, YOLOv7, YOLOX exported with decoding);
//! - `boxes-scores`: two outputs, boxes `[B, N, 4]` as x1, y1, x2, y2 and scores `[B, N, C]` (SSD-style, RetinaNet
//!   and DETR-style exports after their own box decoding).
//!
//! Coordinates are network-input pixels.

use gst::glib;

use crate::engine::detector::Output;

/// Which layout the outputs have (the `decoder` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstOdmDetectDecoder")]
pub enum Decoder {
    #[enum_value(name = "Read from the outputs' shapes", nick = "auto")]
    Auto,
    #[enum_value(name = "YOLOv8/YOLO11: one output [1, 4+C, N]", nick = "yolov8")]
    Yolov8,
    #[enum_value(name = "YOLOv5/YOLOX: one output [1, N, 5+C]", nick = "yolov5")]
    Yolov5,
    #[enum_value(name = "Boxes [1, N, 4] (x1, y1, x2, y2) and scores [1, N, C]", nick = "boxes-scores")]
    BoxesScores,
}

/// A layout checked against the outputs: where boxes and scores are, and how many classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Yolov8 { classes: usize, candidates: usize },
    Yolov5 { classes: usize, candidates: usize },
    BoxesScores { boxes: usize, scores: usize, classes: usize, candidates: usize },
}

impl Layout {
    pub fn classes(&self) -> usize {
        match *self {
            Layout::Yolov8 { classes, .. } | Layout::Yolov5 { classes, .. } | Layout::BoxesScores { classes, .. } => {
                classes
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Layout::Yolov8 { .. } => "yolov8",
            Layout::Yolov5 { .. } => "yolov5",
            Layout::BoxesScores { .. } => "boxes-scores",
        }
    }
}

fn dims(shape: &[i64]) -> String {
    format!("[{}]", shape.iter().map(i64::to_string).collect::<Vec<_>>().join(", "))
}

/// The layout of outputs with these shapes (batch axis first), as asked or read from the shapes (`auto`: one
/// rank-3 output is YOLOv8's when its second axis is the shorter, else YOLOv5's; two outputs are boxes and scores).
/// An error is a sentence naming the shapes.
pub fn layout(asked: Decoder, shapes: &[&[i64]]) -> Result<Layout, String> {
    let all = shapes.iter().map(|s| dims(s)).collect::<Vec<_>>().join(" and ");
    let one = |want: &str| -> Result<&[i64], String> {
        match shapes {
            [s] if s.len() == 3 => Ok(s),
            _ => Err(format!("the {want} layout is one output of rank 3; the network gives {all}")),
        }
    };
    let n = |d: i64| usize::try_from(d).unwrap_or(0);
    let decoder = match asked {
        // The candidates are the long axis; when that reading leaves no class (or more classes than candidates),
        // the other reading is taken if it is a plausible one.
        Decoder::Auto => match shapes {
            [s] if s.len() == 3 => {
                let v8 = s[1] > 4 && s[2] >= s[1] - 4;
                let v5 = s[2] > 5 && s[1] >= s[2] - 5;
                match (s[1] < s[2], v8, v5) {
                    (true, true, _) | (false, true, false) => Decoder::Yolov8,
                    (false, _, true) | (true, false, true) => Decoder::Yolov5,
                    (true, false, false) => Decoder::Yolov8,
                    (false, false, false) => Decoder::Yolov5,
                }
            }
            [_, _] => Decoder::BoxesScores,
            _ => {
                return Err(format!(
                    "cannot tell the layout of outputs {all}: set decoder (yolov8: [1, 4+C, N]; yolov5: [1, N, 5+C]; \
                     boxes-scores: [1, N, 4] and [1, N, C])"
                ))
            }
        },
        d => d,
    };
    match decoder {
        Decoder::Yolov8 => {
            let s = one("yolov8")?;
            if s[1] <= 4 {
                return Err(format!("yolov8 output {}: zero classes ({} rows; 4 are the box)", dims(s), s[1]));
            }
            Ok(Layout::Yolov8 { classes: n(s[1] - 4), candidates: n(s[2]) })
        }
        Decoder::Yolov5 => {
            let s = one("yolov5")?;
            if s[2] <= 5 {
                return Err(format!(
                    "yolov5 output {}: zero classes ({} columns; 5 are the box and objectness)",
                    dims(s),
                    s[2]
                ));
            }
            Ok(Layout::Yolov5 { classes: n(s[2] - 5), candidates: n(s[1]) })
        }
        Decoder::BoxesScores | Decoder::Auto => {
            let [a, b] = shapes else {
                return Err(format!("the boxes-scores layout is two outputs; the network gives {all}"));
            };
            let (boxes, scores) = match (a.last(), b.last()) {
                (Some(4), _) if a.len() == 3 => (0, 1),
                (_, Some(4)) if b.len() == 3 => (1, 0),
                _ => return Err(format!("boxes-scores: no output of shape [1, N, 4] among {all}")),
            };
            let (bs, ss) = (shapes[boxes], shapes[scores]);
            if ss.len() != 3 || ss[1] != bs[1] {
                return Err(format!("boxes-scores: scores {} do not match boxes {} ([1, N, C])", dims(ss), dims(bs)));
            }
            if ss[2] <= 0 {
                return Err(format!("boxes-scores: scores {}: zero classes", dims(ss)));
            }
            Ok(Layout::BoxesScores { boxes, scores, classes: n(ss[2]), candidates: n(bs[1]) })
        }
    }
}

/// One detection: a box in network-input pixels (x1, y1, x2, y2), its score and class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    pub score: f32,
    pub class: usize,
}

impl Detection {
    fn area(&self) -> f32 {
        (self.x2 - self.x1).max(0.0) * (self.y2 - self.y1).max(0.0)
    }

    pub fn iou(&self, o: &Detection) -> f32 {
        let iw = (self.x2.min(o.x2) - self.x1.max(o.x1)).max(0.0);
        let ih = (self.y2.min(o.y2) - self.y1.max(o.y1)).max(0.0);
        let inter = iw * ih;
        let union = self.area() + o.area() - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }
}

/// How far a score may stray outside [0, 1] by float rounding before the network's scores are taken for what they
/// then are, logits or garbage.
const SCORE_SLACK: f32 = 1e-3;

/// A score the network gave outside [0, 1]: its scores are not probabilities (a model exported without its sigmoid),
/// and no threshold on them means anything.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NotAProbability(pub f32);

impl std::fmt::Display for NotAProbability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the network gave a score of {}, outside [0, 1]: odmdetect reads probabilities, and these look like \
             logits (export the model with its sigmoid)",
            self.0
        )
    }
}

/// `s` as a probability: clamped to [0, 1] when within rounding of it; NaN passes (its candidate is dropped).
fn probability(s: f32) -> Result<f32, NotAProbability> {
    if s.is_nan() || (-SCORE_SLACK..=1.0 + SCORE_SLACK).contains(&s) {
        Ok(s.clamp(0.0, 1.0))
    } else {
        Err(NotAProbability(s))
    }
}

/// The best class of `scores` (the first on ties) and its score; a class whose score is not a number is skipped.
fn best(scores: impl Iterator<Item = f32>) -> Option<(usize, f32)> {
    scores.enumerate().filter(|(_, s)| !s.is_nan()).fold(None, |b, (i, s)| match b {
        Some((_, bs)) if bs >= s => b,
        _ => Some((i, s)),
    })
}

fn centre_box(cx: f32, cy: f32, w: f32, h: f32, score: f32, class: usize) -> Detection {
    Detection { x1: cx - w / 2.0, y1: cy - h / 2.0, x2: cx + w / 2.0, y2: cy + h / 2.0, score, class }
}

/// Decode sample `b` of the outputs: every candidate whose score is at least `threshold` and whose box is finite and
/// not empty, appended to `out`. `Err` when a candidate's best score (or a YOLOv5 objectness) is outside [0, 1]: the
/// sample's candidates appended so far stay in `out`, and the caller drops the frame's detections.
pub fn decode(
    layout: &Layout,
    outputs: &[Output],
    b: usize,
    threshold: f32,
    out: &mut Vec<Detection>,
) -> Result<(), NotAProbability> {
    let keep = |d: Detection, out: &mut Vec<Detection>| -> Result<(), NotAProbability> {
        let d = Detection { score: probability(d.score)?, ..d };
        let finite = [d.x1, d.y1, d.x2, d.y2, d.score].iter().all(|v| v.is_finite());
        if finite && d.score >= threshold && d.x2 > d.x1 && d.y2 > d.y1 {
            out.push(d);
        }
        Ok(())
    };
    match *layout {
        Layout::Yolov8 { classes, candidates: n } => {
            let rows = 4 + classes;
            let Some(x) = outputs[0].data.get(b * rows * n..(b + 1) * rows * n) else { return Ok(()) };
            for i in 0..n {
                let at = |r: usize| x[r * n + i];
                if let Some((class, score)) = best((0..classes).map(|c| at(4 + c))) {
                    keep(centre_box(at(0), at(1), at(2), at(3), score, class), out)?;
                }
            }
        }
        Layout::Yolov5 { classes, candidates: n } => {
            let cols = 5 + classes;
            let Some(x) = outputs[0].data.get(b * cols * n..(b + 1) * cols * n) else { return Ok(()) };
            for row in x.chunks_exact(cols) {
                if let Some((class, score)) = best(row[5..].iter().copied()) {
                    // Each factor a probability, so that their product is one for the right reason.
                    let objectness = probability(row[4])?;
                    keep(centre_box(row[0], row[1], row[2], row[3], objectness * probability(score)?, class), out)?;
                }
            }
        }
        Layout::BoxesScores { boxes, scores, classes, candidates: n } => {
            let bx = outputs[boxes].data.get(b * n * 4..(b + 1) * n * 4);
            let sc = outputs[scores].data.get(b * n * classes..(b + 1) * n * classes);
            let (Some(bx), Some(sc)) = (bx, sc) else { return Ok(()) };
            for (r, s) in bx.chunks_exact(4).zip(sc.chunks_exact(classes)) {
                if let Some((class, score)) = best(s.iter().copied()) {
                    keep(Detection { x1: r[0], y1: r[1], x2: r[2], y2: r[3], score, class }, out)?;
                }
            }
        }
    }
    Ok(())
}

/// Class-aware non-maximum suppression: highest score first, a box is dropped when it overlaps a kept box of its
/// class by more than `iou`; at most `max` kept (the best). Ties keep their order (stable).
pub fn nms(dets: &mut Vec<Detection>, iou: f32, max: usize) {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    // In place: the kept boxes gather at the front, in score order.
    let mut kept = 0;
    for i in 0..dets.len() {
        if kept >= max {
            break;
        }
        let d = dets[i];
        if !dets[..kept].iter().any(|k| k.class == d.class && k.iou(&d) > iou) {
            dets[kept] = d;
            kept += 1;
        }
    }
    dets.truncate(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(shape: &[i64], data: Vec<f32>) -> Output {
        Output { shape: shape.to_vec(), data }
    }

    #[test]
    fn auto_reads_the_layout_from_the_shapes() {
        assert_eq!(layout(Decoder::Auto, &[&[1, 6, 8400]]), Ok(Layout::Yolov8 { classes: 2, candidates: 8400 }));
        assert_eq!(layout(Decoder::Auto, &[&[1, 25200, 85]]), Ok(Layout::Yolov5 { classes: 80, candidates: 25200 }));
        assert_eq!(
            layout(Decoder::Auto, &[&[1, 6, 4]]),
            Ok(Layout::Yolov8 { classes: 2, candidates: 4 }),
            "fewer candidates than rows: read as yolov8, the only reading with classes"
        );
        assert_eq!(
            layout(Decoder::Auto, &[&[1, 100, 3], &[1, 100, 4]]),
            Ok(Layout::BoxesScores { boxes: 1, scores: 0, classes: 3, candidates: 100 })
        );
    }

    #[test]
    fn bad_layouts_are_refused_with_their_shapes() {
        // Four rows and no class (not 4 YOLOv5 candidates of 8,395 classes).
        let e = layout(Decoder::Auto, &[&[1, 4, 8400]]).unwrap_err();
        assert!(e.contains("zero classes") && e.contains("[1, 4, 8400]"), "{e}");
        let e = layout(Decoder::Auto, &[&[1, 4, 5]]).unwrap_err();
        assert!(e.contains("zero classes"), "{e}");
        let e = layout(Decoder::Yolov5, &[&[1, 100, 5]]).unwrap_err();
        assert!(e.contains("zero classes"), "{e}");
        let e = layout(Decoder::Auto, &[&[1, 84]]).unwrap_err();
        assert!(e.contains("cannot tell") && e.contains("[1, 84]"), "{e}");
        let e = layout(Decoder::Yolov8, &[&[1, 84, 10], &[1, 10, 4]]).unwrap_err();
        assert!(e.contains("one output of rank 3"), "{e}");
        let e = layout(Decoder::BoxesScores, &[&[1, 10, 3], &[1, 12, 4]]).unwrap_err();
        assert!(e.contains("do not match"), "{e}");
    }

    #[test]
    fn yolov8_candidates_are_columns() {
        // 2 classes, 3 candidates: columns are candidates.
        let l = Layout::Yolov8 { classes: 2, candidates: 3 };
        #[rustfmt::skip]
        let data = vec![
            10.0, 30.0, 50.0, // cx
            10.0, 30.0, 50.0, // cy
            4.0, 8.0, 2.0,    // w
            6.0, 8.0, 2.0,    // h
            0.9, 0.1, 0.2,    // class 0
            0.05, 0.7, 0.1,   // class 1
        ];
        let mut d = Vec::new();
        decode(&l, &[out(&[1, 6, 3], data)], 0, 0.25, &mut d).unwrap();
        assert_eq!(d.len(), 2, "the third is below the threshold");
        assert_eq!(d[0], Detection { x1: 8.0, y1: 7.0, x2: 12.0, y2: 13.0, score: 0.9, class: 0 });
        assert_eq!((d[1].class, d[1].score, d[1].x1, d[1].y2), (1, 0.7, 26.0, 34.0));
    }

    #[test]
    fn yolov5_scores_are_objectness_times_class() {
        let l = Layout::Yolov5 { classes: 2, candidates: 2 };
        let data = vec![20.0, 20.0, 10.0, 10.0, 0.5, 0.2, 0.8, 5.0, 5.0, 2.0, 2.0, 0.1, 0.9, 0.1];
        let mut d = Vec::new();
        decode(&l, &[out(&[1, 2, 7], data)], 0, 0.3, &mut d).unwrap();
        assert_eq!(d, [Detection { x1: 15.0, y1: 15.0, x2: 25.0, y2: 25.0, score: 0.4, class: 1 }]);
    }

    #[test]
    fn boxes_scores_read_corners_and_the_second_sample() {
        let l = Layout::BoxesScores { boxes: 0, scores: 1, classes: 1, candidates: 1 };
        let boxes = out(&[2, 1, 4], vec![0.0, 0.0, 1.0, 1.0, 2.0, 3.0, 12.0, 13.0]);
        let scores = out(&[2, 1, 1], vec![0.1, 0.6]);
        let mut d = Vec::new();
        decode(&l, &[boxes, scores], 1, 0.5, &mut d).unwrap();
        assert_eq!(d, [Detection { x1: 2.0, y1: 3.0, x2: 12.0, y2: 13.0, score: 0.6, class: 0 }]);
    }

    #[test]
    fn nan_and_empty_boxes_are_dropped() {
        let l = Layout::Yolov5 { classes: 1, candidates: 2 };
        let data = vec![f32::NAN, 1.0, 1.0, 1.0, 0.9, 1.0, 5.0, 5.0, 0.0, 3.0, 0.9, 1.0];
        let mut d = Vec::new();
        decode(&l, &[out(&[1, 2, 6], data)], 0, 0.1, &mut d).unwrap();
        assert!(d.is_empty(), "{d:?}");
        // A class score that is not a number does not win the candidate: the other class, 0.8, does.
        let l = Layout::Yolov8 { classes: 2, candidates: 1 };
        decode(&l, &[out(&[1, 6, 1], vec![8.0, 8.0, 4.0, 4.0, f32::NAN, 0.8])], 0, 0.1, &mut d).unwrap();
        assert_eq!(d, [Detection { x1: 6.0, y1: 6.0, x2: 10.0, y2: 10.0, score: 0.8, class: 1 }]);
    }

    #[test]
    fn scores_outside_zero_to_one_are_refused_and_rounding_is_clamped() {
        let l = Layout::Yolov8 { classes: 1, candidates: 2 };
        let mut d = Vec::new();
        // Logits: a negative score, whatever the threshold.
        let e = decode(&l, &[out(&[1, 5, 2], vec![8.0, 8.0, 8.0, 8.0, 4.0, 4.0, 4.0, 4.0, 0.5, -2.5])], 0, 0.9, &mut d);
        assert_eq!(e, Err(NotAProbability(-2.5)));
        assert!(e.unwrap_err().to_string().contains("-2.5, outside [0, 1]"));
        // One above 1 in a YOLOv5 objectness, and in a boxes-scores score.
        let l5 = Layout::Yolov5 { classes: 1, candidates: 1 };
        let e = decode(&l5, &[out(&[1, 1, 6], vec![8.0, 8.0, 4.0, 4.0, 3.0, 0.5])], 0, 0.1, &mut d);
        assert_eq!(e, Err(NotAProbability(3.0)));
        let lb = Layout::BoxesScores { boxes: 0, scores: 1, classes: 1, candidates: 1 };
        let (bx, sc) = (out(&[1, 1, 4], vec![0.0, 0.0, 4.0, 4.0]), out(&[1, 1, 1], vec![1.7]));
        assert_eq!(decode(&lb, &[bx, sc], 0, 0.1, &mut d), Err(NotAProbability(1.7)));
        // Rounding past 1 is clamped: the detection says 1.
        d.clear();
        let data = vec![8.0, 8.0, 8.0, 8.0, 4.0, 4.0, 4.0, 4.0, 1.0004, 0.0];
        decode(&l, &[out(&[1, 5, 2], data)], 0, 0.5, &mut d).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].score, 1.0);
    }

    #[test]
    fn nms_is_per_class_and_keeps_the_best() {
        let b = |x: f32, score: f32, class: usize| Detection { x1: x, y1: 0.0, x2: x + 10.0, y2: 10.0, score, class };
        let mut d = vec![b(0.0, 0.5, 0), b(1.0, 0.9, 0), b(1.0, 0.8, 1), b(50.0, 0.3, 0)];
        nms(&mut d, 0.45, 10);
        assert_eq!(d, [b(1.0, 0.9, 0), b(1.0, 0.8, 1), b(50.0, 0.3, 0)]);
        nms(&mut d, 0.45, 2);
        assert_eq!(d.len(), 2);
    }
}
