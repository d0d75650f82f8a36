// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reading `odmexport` JSON lines: a summary table (with ground truth from `odm-train clip` when given), and a
//! regression comparison against expected results (classes and verdicts exactly, distances within a tolerance).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::TrainError;

#[derive(Debug, Clone, Deserialize)]
pub struct RoiLine {
    pub id: i32,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub distance: Option<f64>,
    #[serde(default)]
    pub verdict: Option<String>,
    /// Ground truth (clip files): known, unknown or distractor.
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FrameLine {
    pub frame: u64,
    #[serde(default)]
    pub rois: Vec<RoiLine>,
}

/// Read a JSON-lines file; errors name the file and line.
pub fn read(path: &Path) -> Result<Vec<FrameLine>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(TrainError::io(path))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| TrainError::Config(format!("{}:{}: {e}", path.display(), i + 1)))
        })
        .collect()
}

/// Verdict counts, overall and by ground-truth kind, and how often known signs got their own label.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Summary {
    pub frames: usize,
    pub rois: usize,
    pub verdicts: BTreeMap<String, usize>,
    /// kind -> verdict -> count (with ground truth).
    pub by_kind: BTreeMap<String, BTreeMap<String, usize>>,
    /// Known signs classified `known` with the right label, and all known signs.
    pub known_correct: usize,
    pub known_total: usize,
}

pub fn summarise(results: &[FrameLine], truth: Option<&[FrameLine]>) -> Summary {
    let mut s = Summary { frames: results.len(), ..Default::default() };
    let truth: BTreeMap<(u64, i32), &RoiLine> =
        truth.unwrap_or(&[]).iter().flat_map(|f| f.rois.iter().map(move |r| ((f.frame, r.id), r))).collect();
    for f in results {
        for r in &f.rois {
            s.rois += 1;
            let v = r.verdict.clone().unwrap_or_else(|| "none".into());
            *s.verdicts.entry(v.clone()).or_default() += 1;
            if let Some(t) = truth.get(&(f.frame, r.id)) {
                let kind = t.kind.clone().unwrap_or_else(|| "?".into());
                *s.by_kind.entry(kind.clone()).or_default().entry(v.clone()).or_default() += 1;
                if kind == "known" {
                    s.known_total += 1;
                    if v == "known" && r.label.is_some() && r.label == t.label {
                        s.known_correct += 1;
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
        t
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
            if ar.label != er.label || ar.verdict != er.verdict {
                diffs.push(format!(
                    "frame {} ROI {}: {:?} {:?}, expected {:?} {:?}",
                    e.frame, er.id, ar.label, ar.verdict, er.label, er.verdict
                ));
            }
            match (ar.distance, er.distance) {
                (Some(a), Some(b)) if (a - b).abs() <= tolerance => {}
                (None, None) => {}
                (a, b) => diffs.push(format!("frame {} ROI {}: distance {a:?}, expected {b:?}", e.frame, er.id)),
            }
        }
    }
    if actual.len() > expected.len() {
        diffs.push(format!("{} frames, expected {}", actual.len(), expected.len()));
    }
    diffs
}
