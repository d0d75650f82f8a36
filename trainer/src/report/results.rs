// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmexport` results (JSON lines, read by `data::rois`) summarised: verdict counts (by ground-truth kind and sign
//! category when the truth of `odm-train clip` is given), stability, detection by sign size, and a regression
//! comparison against expected results (classes and verdicts exactly, distances within a tolerance).

use std::collections::BTreeMap;

use crate::data::rois::{iou, FrameLine, RoiLine};
use crate::error::TrainError;

/// Verdict counts, overall, by ground-truth kind and by the truth's sign category, how often known signs got their
/// own label, and how often unknown signs called novelty got their own category.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Summary {
    pub frames: usize,
    pub rois: usize,
    pub verdicts: BTreeMap<String, usize>,
    /// kind -> verdict -> count (with ground truth).
    pub by_kind: BTreeMap<String, BTreeMap<String, usize>>,
    /// kind -> category -> verdict -> count, for truth boxes whose label is a taxonomy name (with ground truth).
    pub by_category: BTreeMap<String, BTreeMap<String, BTreeMap<String, usize>>>,
    /// Known signs classified `known` with the right label, and all known signs.
    pub known_correct: usize,
    pub known_total: usize,
    /// Unknown signs with a taxonomy label called `novelty` whose result's category is the truth label's, and all
    /// of them called `novelty`.
    pub novelty_category_correct: usize,
    pub novelty_category_total: usize,
}

/// How a result box is joined with its ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Match {
    /// By ROI id: the boxes were replayed from the truth file (`odmroireplay`).
    #[default]
    Ids,
    /// By box: the truth box of the same frame with the highest IoU, at least 0.5; a box on no truth box is of kind
    /// `no-object` (a detector's false positive on background). For a live detector (`odmproposals`).
    Boxes,
}

pub fn summarise(results: &[FrameLine], truth: Option<&[FrameLine]>) -> Summary {
    summarise_by(results, truth, Match::Ids)
}

pub fn summarise_by(results: &[FrameLine], truth: Option<&[FrameLine]>, how: Match) -> Summary {
    let mut s = Summary { frames: results.len(), ..Default::default() };
    let by_id: BTreeMap<(u64, i32), &RoiLine> =
        truth.unwrap_or(&[]).iter().flat_map(|f| f.rois.iter().map(move |r| ((f.frame, r.id), r))).collect();
    let by_frame: BTreeMap<u64, &FrameLine> = truth.unwrap_or(&[]).iter().map(|f| (f.frame, f)).collect();
    let no_object = RoiLine { id: -1, kind: Some("no-object".into()), ..Default::default() };
    for f in results {
        for r in &f.rois {
            s.rois += 1;
            let v = r.verdict.clone().unwrap_or_else(|| "none".into());
            *s.verdicts.entry(v.clone()).or_default() += 1;
            let t = match how {
                _ if truth.is_none() => None,
                Match::Ids => by_id.get(&(f.frame, r.id)).copied(),
                Match::Boxes => Some(
                    by_frame
                        .get(&f.frame)
                        .and_then(|tf| {
                            tf.rois
                                .iter()
                                .map(|t| (iou(r.rect(), t.rect()), t))
                                .filter(|(iou, _)| *iou >= DETECTION_IOU)
                                .max_by(|a, b| a.0.total_cmp(&b.0))
                                .map(|p| p.1)
                        })
                        .unwrap_or(&no_object),
                ),
            };
            if let Some(t) = t {
                let kind = t.kind.clone().unwrap_or_else(|| "?".into());
                *s.by_kind.entry(kind.clone()).or_default().entry(v.clone()).or_default() += 1;
                if kind == "known" {
                    s.known_total += 1;
                    if v == "known" && r.label.is_some() && r.label == t.label {
                        s.known_correct += 1;
                    }
                }
                if let Some(category) = t.label_category() {
                    let row = s.by_category.entry(kind.clone()).or_default().entry(category.to_string()).or_default();
                    *row.entry(v.clone()).or_default() += 1;
                    if kind == "unknown" && v == "novelty" {
                        s.novelty_category_total += 1;
                        s.novelty_category_correct += usize::from(r.category.as_deref() == Some(category.as_str()));
                    }
                }
            }
        }
    }
    s
}

impl Summary {
    pub fn markdown(&self) -> String {
        let verdicts = ["known", "novelty", "anomaly", "skipped"];
        let mut t = format!("frames {}, ROIs {}\n\n| ground truth | ROIs |", self.frames, self.rois);
        for v in verdicts {
            t.push_str(&format!(" {v} |"));
        }
        t.push_str("\n|---|---:|---:|---:|---:|---:|\n");
        let row = |name: &str, m: &BTreeMap<String, usize>| {
            let n: usize = m.values().sum();
            let mut r = format!("| {name} | {n} |");
            for v in verdicts {
                let c = m.get(v).copied().unwrap_or(0);
                r.push_str(&format!(" {c} ({:.1}%) |", 100.0 * c as f64 / n.max(1) as f64));
            }
            r + "\n"
        };
        for (k, m) in &self.by_kind {
            t.push_str(&row(k, m));
        }
        t.push_str(&row("all", &self.verdicts));
        if self.known_total > 0 {
            t.push_str(&format!(
                "\nknown signs classified known with the right label: {} of {} ({:.1}%)\n",
                self.known_correct,
                self.known_total,
                100.0 * self.known_correct as f64 / self.known_total as f64
            ));
        }
        if !self.by_category.is_empty() {
            t.push_str("\nBy the sign category of the ground truth (labels of the taxonomy):\n\n");
            t.push_str("| ground truth | category | ROIs |");
            for v in verdicts {
                t.push_str(&format!(" {v} |"));
            }
            t.push_str("\n|---|---|---:|---:|---:|---:|---:|\n");
            for (kind, by) in &self.by_category {
                for (category, m) in by {
                    t.push_str(&row(&format!("{kind} | {category}"), m));
                }
            }
        }
        if self.novelty_category_total > 0 {
            t.push_str(&format!(
                "\nunknown signs called novelty with the category of their sign: {} of {} ({:.1}%)\n",
                self.novelty_category_correct,
                self.novelty_category_total,
                100.0 * self.novelty_category_correct as f64 / self.novelty_category_total as f64
            ));
        }
        t
    }
}

/// How steady the verdicts of tracked objects are: an object is a ROI id (a tracker's, or the truth's when boxes are
/// replayed); a flip is a verdict different from the one the same object had in the frame it was last seen.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct Stability {
    pub objects: usize,
    /// Object-frames: every appearance of every object.
    pub appearances: usize,
    pub verdict_flips: usize,
    /// Changes of the reported label while the verdict stays `known`.
    pub label_flips: usize,
}

impl Stability {
    /// Verdict flips per object per 100 frames it is seen.
    pub fn flips_per_100(&self) -> f64 {
        100.0 * self.verdict_flips as f64 / self.appearances.max(1) as f64
    }

    pub fn markdown(&self) -> String {
        format!(
            "verdict flips per tracked object per 100 frames: {:.2} ({} flips over {} appearances of {} objects; \
             {} label changes among known)\n",
            self.flips_per_100(),
            self.verdict_flips,
            self.appearances,
            self.objects,
            self.label_flips
        )
    }
}

/// [`Stability`] of a results file, objects joined by ROI id, frames in file order.
pub fn stability(results: &[FrameLine]) -> Stability {
    let mut last: BTreeMap<i32, (Option<&str>, Option<&str>)> = BTreeMap::new();
    let mut s = Stability::default();
    for f in results {
        for r in &f.rois {
            s.appearances += 1;
            let now = (r.verdict.as_deref(), r.label.as_deref());
            if let Some(before) = last.insert(r.id, now) {
                if before.0 != now.0 {
                    s.verdict_flips += 1;
                } else if now.0 == Some("known") && before.1 != now.1 {
                    s.label_flips += 1;
                }
            }
        }
    }
    s.objects = last.len();
    s
}

/// Size bands of ground-truth signs (largest side, pixels) for detection recall.
pub const SIZE_BANDS: [(f64, f64); 6] =
    [(0.0, 16.0), (16.0, 24.0), (24.0, 32.0), (32.0, 48.0), (48.0, 96.0), (96.0, f64::INFINITY)];

/// IoU at which a box counts as finding a ground-truth sign.
pub const DETECTION_IOU: f64 = 0.5;

/// How well the boxes of a results file find the ground-truth signs (kinds other than `distractor`): recall per size
/// band and precision, matched per frame at [`DETECTION_IOU`].
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct Detection {
    /// Per band of [`SIZE_BANDS`]: (ground-truth signs, found).
    pub bands: Vec<(usize, usize)>,
    pub boxes: usize,
    /// Boxes on a ground-truth sign.
    pub boxes_on_signs: usize,
}

pub fn detection(results: &[FrameLine], truth: &[FrameLine]) -> Detection {
    let boxes: BTreeMap<u64, Vec<&RoiLine>> = results.iter().map(|f| (f.frame, f.rois.iter().collect())).collect();
    let mut d = Detection { bands: vec![(0, 0); SIZE_BANDS.len()], ..Default::default() };
    let mut signs: BTreeMap<u64, Vec<&RoiLine>> = BTreeMap::new();
    for f in truth {
        let s: Vec<&RoiLine> = f.rois.iter().filter(|r| r.kind.as_deref() != Some("distractor")).collect();
        for t in &s {
            let side = t.w.max(t.h);
            let band = SIZE_BANDS.iter().position(|&(lo, hi)| side >= lo && side < hi).unwrap_or(0);
            d.bands[band].0 += 1;
            let found = boxes.get(&f.frame).is_some_and(|v| v.iter().any(|b| iou(b.rect(), t.rect()) >= DETECTION_IOU));
            d.bands[band].1 += usize::from(found);
        }
        signs.insert(f.frame, s);
    }
    for f in results {
        for b in &f.rois {
            d.boxes += 1;
            let on = signs.get(&f.frame).is_some_and(|v| v.iter().any(|t| iou(b.rect(), t.rect()) >= DETECTION_IOU));
            d.boxes_on_signs += usize::from(on);
        }
    }
    d
}

impl Detection {
    pub fn markdown(&self) -> String {
        let mut t = format!(
            "Detection (boxes against ground-truth signs, IoU >= {DETECTION_IOU}):\n\n| sign size (px) | signs | found | recall |\n|---|---:|---:|---:|\n"
        );
        let mut all = (0, 0);
        for (&(lo, hi), &(n, found)) in SIZE_BANDS.iter().zip(&self.bands) {
            let band = if hi.is_finite() { format!("{lo}-{hi}") } else { format!(">= {lo}") };
            t.push_str(&format!("| {band} | {n} | {found} | {:.1}% |\n", 100.0 * found as f64 / n.max(1) as f64));
            all = (all.0 + n, all.1 + found);
        }
        let big: (usize, usize) = self.bands[1..].iter().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        t.push_str(&format!(
            "| >= 16 | {} | {} | {:.1}% |\n| all | {} | {} | {:.1}% |\n\nprecision: {} of {} boxes on a sign ({:.1}%)\n",
            big.0,
            big.1,
            100.0 * big.1 as f64 / big.0.max(1) as f64,
            all.0,
            all.1,
            100.0 * all.1 as f64 / all.0.max(1) as f64,
            self.boxes_on_signs,
            self.boxes,
            100.0 * self.boxes_on_signs as f64 / self.boxes.max(1) as f64
        ));
        t
    }
}

/// Verdicts odmclassify writes (a ROI without a result has none).
pub const VERDICTS: [&str; 4] = ["known", "novelty", "anomaly", "skipped"];

/// `compare`'s tolerance: a finite distance of 0 or more (a negative one fails every ROI, NaN passes every one).
pub fn check_tolerance(tolerance: f64) -> Result<f64, TrainError> {
    if tolerance.is_finite() && tolerance >= 0.0 {
        Ok(tolerance)
    } else {
        Err(TrainError::Config(format!("--tolerance {tolerance}: give a distance of 0 or more")))
    }
}

/// Verdicts in `results` that odmclassify never writes, with their counts (a typo, a file of another tool): the
/// summary counts them apart, and says so.
pub fn odd_verdicts(results: &[FrameLine]) -> BTreeMap<String, usize> {
    let mut odd = BTreeMap::new();
    for r in results.iter().flat_map(|f| &f.rois) {
        if let Some(v) = r.verdict.as_deref().filter(|v| !VERDICTS.contains(v)) {
            *odd.entry(v.to_owned()).or_default() += 1;
        }
    }
    odd
}

/// Whether `truth` is the ground truth of the clip the results are of: a warning when fewer than half of the
/// result boxes lie on a truth box of their frame (by id and box for replayed ROIs, by IoU for a detector's), or
/// when the two cover different frame ranges. Truth of another clip gives tables that mean nothing.
pub fn truth_mismatch(results: &[FrameLine], truth: &[FrameLine], how: Match) -> Option<String> {
    let by_frame: BTreeMap<u64, &FrameLine> = truth.iter().map(|f| (f.frame, f)).collect();
    let (mut on_truth, mut total) = (0usize, 0usize);
    for f in results {
        for r in &f.rois {
            total += 1;
            let hit = by_frame.get(&f.frame).is_some_and(|tf| {
                tf.rois.iter().any(|t| {
                    let close = iou(r.rect(), t.rect()) >= DETECTION_IOU;
                    match how {
                        // Replayed boxes keep their id and their box; a result file without boxes matches by id.
                        Match::Ids => t.id == r.id && (close || r.rect() == (0.0, 0.0, 0.0, 0.0)),
                        Match::Boxes => close,
                    }
                })
            });
            on_truth += usize::from(hit);
        }
    }
    let last = |frames: &[FrameLine]| frames.iter().map(|f| f.frame).max().unwrap_or(0);
    let (rl, tl) = (last(results), last(truth));
    // Results may stop early (a run cut short); results beyond the truth's last frame are of a longer clip.
    if total > 0 && on_truth * 2 < total {
        let by = match how {
            Match::Ids => "same id and box",
            Match::Boxes => "IoU >= 0.5",
        };
        Some(format!(
            "only {on_truth} of {total} result boxes lie on a truth box of their frame ({by}): is the truth of \
             another clip? (results end at frame {rl}, truth at frame {tl})"
        ))
    } else if rl > tl {
        Some(format!("the results go on to frame {rl} but the truth ends at frame {tl}: is the truth of another clip?"))
    } else {
        None
    }
}

/// Differences between expected and actual results: a missing frame or ROI, another label or verdict, a distance
/// further than `tolerance` (absolute). Empty when they agree.
pub fn compare(expected: &[FrameLine], actual: &[FrameLine], tolerance: f64) -> Vec<String> {
    let mut diffs = Vec::new();
    let actual: BTreeMap<u64, &FrameLine> = actual.iter().map(|f| (f.frame, f)).collect();
    for e in expected {
        let Some(a) = actual.get(&e.frame) else {
            diffs.push(format!("frame {}: missing", e.frame));
            continue;
        };
        if a.rois.len() != e.rois.len() {
            diffs.push(format!("frame {}: {} ROIs, expected {}", e.frame, a.rois.len(), e.rois.len()));
        }
        for er in &e.rois {
            let Some(ar) = a.rois.iter().find(|r| r.id == er.id) else {
                diffs.push(format!("frame {} ROI {}: missing", e.frame, er.id));
                continue;
            };
            let text = |v: &Option<String>| v.as_deref().unwrap_or("none").to_owned();
            if ar.label != er.label || ar.verdict != er.verdict || ar.category != er.category {
                diffs.push(format!(
                    "frame {} ROI {}: {} {} ({}), expected {} {} ({})",
                    e.frame,
                    er.id,
                    text(&ar.label),
                    text(&ar.verdict),
                    text(&ar.category),
                    text(&er.label),
                    text(&er.verdict),
                    text(&er.category)
                ));
            }
            let num = |v: Option<f64>| v.map_or("none".to_owned(), |d| d.to_string());
            match (ar.distance, er.distance) {
                (Some(a), Some(b)) if (a - b).abs() <= tolerance => {}
                (None, None) => {}
                (a, b) => {
                    diffs.push(format!("frame {} ROI {}: distance {}, expected {}", e.frame, er.id, num(a), num(b)))
                }
            }
        }
    }
    if actual.len() > expected.len() {
        diffs.push(format!("{} frames, expected {}", actual.len(), expected.len()));
    }
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64, rois: &[(i32, &str, &str)]) -> FrameLine {
        let rois = rois
            .iter()
            .map(|&(id, verdict, label)| RoiLine {
                id,
                verdict: Some(verdict.into()),
                label: Some(label.into()),
                ..Default::default()
            })
            .collect();
        FrameLine { frame: n, rois }
    }

    #[test]
    fn summary_by_truth_kind_and_category_and_novelties_with_their_category() {
        let roi = |id: i32, verdict: &str, label: &str, category: Option<&str>| RoiLine {
            id,
            verdict: Some(verdict.into()),
            label: Some(label.into()),
            category: category.map(Into::into),
            ..Default::default()
        };
        let results = [FrameLine {
            frame: 0,
            rois: vec![
                roi(1, "known", "regulatory--stop--g1", Some("regulatory")),
                roi(2, "novelty", "regulatory--stop--g1", Some("regulatory")),
                roi(3, "novelty", "warning--curve-left--g1", Some("warning")),
                roi(4, "anomaly", "warning--curve-left--g1", None),
                roi(5, "known", "information--parking--g1", Some("information")),
                roi(6, "novelty", "red", None),
            ],
        }];
        let truth_roi = |id: i32, kind: &str, label: &str| RoiLine {
            id,
            kind: Some(kind.into()),
            label: Some(label.into()),
            ..Default::default()
        };
        let truth = [FrameLine {
            frame: 0,
            rois: vec![
                truth_roi(1, "known", "regulatory--stop--g1"),
                // Unknown warning signs: one said novelty with the regulatory category of its nearest class, one
                // with its own.
                truth_roi(2, "unknown", "warning--deer--g1"),
                truth_roi(3, "unknown", "warning--children--g2"),
                truth_roi(4, "distractor", ""),
                truth_roi(5, "unknown", "information--hospital--g1"),
                // A label that is no taxonomy name: counted by kind only.
                truth_roi(6, "unknown", "bridleway"),
            ],
        }];
        let s = summarise(&results, Some(&truth));
        let counts = |pairs: &[(&str, usize)]| pairs.iter().map(|&(v, n)| (v.to_owned(), n)).collect();
        let mut want: BTreeMap<String, BTreeMap<String, BTreeMap<String, usize>>> = BTreeMap::new();
        want.entry("known".into()).or_default().insert("regulatory".into(), counts(&[("known", 1)]));
        want.entry("unknown".into()).or_default().insert("warning".into(), counts(&[("novelty", 2)]));
        want.entry("unknown".into()).or_default().insert("information".into(), counts(&[("known", 1)]));
        assert_eq!(s.by_category, want);
        assert_eq!(s.by_kind["unknown"], counts(&[("novelty", 3), ("known", 1)]));
        assert_eq!((s.novelty_category_correct, s.novelty_category_total), (1, 2));
        let md = s.markdown();
        assert!(md.contains("| unknown | warning | 2 | 0 (0.0%) | 2 (100.0%) | 0 (0.0%) | 0 (0.0%) |"), "{md}");
        assert!(md.contains("| known | regulatory | 1 | 1 (100.0%) |"), "{md}");
        assert!(md.contains("unknown signs called novelty with the category of their sign: 1 of 2 (50.0%)"), "{md}");
        // The lines programs read are still there, and the JSON has the new counts beside the old ones.
        assert!(
            md.contains("| unknown | 4 |") && md.contains("known signs classified known with the right label: 1 of 1")
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["by_category"]["unknown"]["warning"]["novelty"], 2);
        assert_eq!((json["novelty_category_correct"].as_u64(), json["known_total"].as_u64()), (Some(1), Some(1)));
        // Without taxonomy labels in the truth, no category table.
        let plain = summarise(&results, None);
        assert!(plain.by_category.is_empty() && !plain.markdown().contains("category"));
    }

    #[test]
    fn stability_counts_verdict_flips_per_object_and_label_changes_among_known() {
        let r = [
            frame(0, &[(1, "known", "stop"), (2, "anomaly", "stop")]),
            frame(1, &[(1, "novelty", "stop"), (2, "anomaly", "yield")]),
            frame(2, &[(1, "known", "stop")]),
            frame(3, &[(1, "known", "yield"), (2, "known", "stop")]),
        ];
        let s = stability(&r);
        assert_eq!((s.objects, s.appearances, s.verdict_flips, s.label_flips), (2, 7, 3, 1));
        assert!((s.flips_per_100() - 300.0 / 7.0).abs() < 1e-9);
        assert!(s.markdown().contains("42.86 (3 flips over 7 appearances of 2 objects; 1 label changes among known)"));
    }
}
