// SPDX-License-Identifier: MIT OR Apache-2.0
//! The test figures by crop size: the longer side, in pixels, of each test image (or of its box, for datasets with
//! boxes). odm's renderer frames a sign the way a detector does, the sign plus 5–25% context on each side, so for its
//! data the size is the crop's. At 12 px a speed limit's numeral is a few pixels; these rows say how much of the
//! accuracy and of the novelty detection is lost to resolution rather than to the model.

use odm_core::metrics::OodReport;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// Lower edges of the size bins (longer side of the crop, pixels); the last bin is open.
pub const EDGES: [u32; 5] = [0, 20, 32, 48, 80];

/// One size bin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SizeRow {
    /// The bin: crops whose longer side is in `[lo, hi)` pixels (`hi` None: no upper edge).
    pub lo: u32,
    pub hi: Option<u32>,
    /// Known-design test crops in the bin, their accuracy and the share called `known` (percent).
    pub known: usize,
    pub accuracy: f64,
    pub known_kept: f64,
    /// Unseen-design test crops in the bin and the share called `known` (percent).
    pub unseen: usize,
    pub unseen_known: f64,
    /// Novelty AUROC of the bin: its unseen-design crops against its known-design crops (None when either is empty).
    pub auroc: Option<f64>,
}

/// The figures by crop size of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SizeReport {
    pub rows: Vec<SizeRow>,
}

fn bin(size: u32) -> usize {
    EDGES.iter().rposition(|&e| size >= e).unwrap_or(0)
}

/// One side of the report: rows, whether each one's verdict is `known` (as odmclassify gives it), and each one's
/// crop's longer side, in the same order.
pub struct Side<'a, R> {
    pub rows: &'a [R],
    pub known: &'a [bool],
    pub sizes: &'a [u32],
}

/// The report from the known test crops (`label`, nearest class, distance) and the unseen-design crops (nearest
/// class, distance). None when the sizes are not known for every crop (a dataset read without them: the caller
/// gives empty sizes).
pub fn report(known: Side<(i64, usize, f64)>, unseen: Side<(usize, f64)>) -> Result<Option<SizeReport>, TrainError> {
    let Side { rows: known, known: known_v, sizes: known_sizes } = known;
    let Side { rows: unseen, known: unseen_v, sizes: unseen_sizes } = unseen;
    if known.is_empty()
        || known.len() != known_sizes.len()
        || unseen.len() != unseen_sizes.len()
        || known.len() != known_v.len()
        || unseen.len() != unseen_v.len()
    {
        return Ok(None);
    }
    // Rows with their verdict: (label, nearest class, distance, known) and (nearest class, distance, known).
    let known: Vec<(i64, usize, f64, bool)> =
        known.iter().zip(known_v).map(|(&(y, k, d), &v)| (y, k, d, v && k != usize::MAX)).collect();
    let unseen: Vec<(usize, f64, bool)> =
        unseen.iter().zip(unseen_v).map(|(&(k, d), &v)| (k, d, v && k != usize::MAX)).collect();
    let pct = |n: usize, of: usize| if of == 0 { 0.0 } else { 100.0 * n as f64 / of as f64 };
    let mut rows = Vec::new();
    for (b, &lo) in EDGES.iter().enumerate() {
        let ks: Vec<&(i64, usize, f64, bool)> =
            known.iter().zip(known_sizes).filter(|(_, &s)| bin(s) == b).map(|(r, _)| r).collect();
        let us: Vec<&(usize, f64, bool)> =
            unseen.iter().zip(unseen_sizes).filter(|(_, &s)| bin(s) == b).map(|(r, _)| r).collect();
        if ks.is_empty() && us.is_empty() {
            continue;
        }
        let auroc = if ks.is_empty() || us.is_empty() {
            None
        } else {
            let ins: Vec<f64> = ks.iter().map(|r| r.2).collect();
            let outs: Vec<f64> = us.iter().map(|r| r.1).collect();
            Some(
                OodReport::compute(&ins, &outs)
                    .map_err(|e| TrainError::Config(format!("metrics: {e}")))?
                    .percent()
                    .auroc,
            )
        };
        rows.push(SizeRow {
            lo,
            hi: EDGES.get(b + 1).copied(),
            known: ks.len(),
            accuracy: pct(ks.iter().filter(|r| r.1 != usize::MAX && r.0 == r.1 as i64).count(), ks.len()),
            known_kept: pct(ks.iter().filter(|r| r.3).count(), ks.len()),
            unseen: us.len(),
            unseen_known: pct(us.iter().filter(|r| r.2).count(), us.len()),
            auroc,
        });
    }
    Ok(Some(SizeReport { rows }))
}

impl SizeReport {
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "By crop size (the test image's longer side in pixels; odm's renders hold the sign and 5–25% context on each \
             side):\n\n\
             | crop side | known crops | accuracy | known kept | unseen crops | unseen → known | novelty AUROC |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.rows {
            let side = match r.hi {
                Some(hi) => format!("{}–{} px", r.lo, hi - 1),
                None => format!("≥ {} px", r.lo),
            };
            let auroc = r.auroc.map_or("—".to_owned(), |a| format!("{a:.2}"));
            s.push_str(&format!(
                "| {side} | {} | {:.2}% | {:.1}% | {} | {:.1}% | {auroc} |\n",
                r.known, r.accuracy, r.known_kept, r.unseen, r.unseen_known
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two bins where the size decides everything: small crops all wrong and all unknowns accepted, large crops all
    /// right and every unknown rejected. A size list out of step with the rows would mix them.
    #[test]
    fn each_crop_is_counted_in_its_own_bin() {
        // (label, nearest class, distance); known under distance 5.
        let known = [(0, 1, 1.0), (1, 0, 1.0), (0, 0, 1.0), (1, 1, 2.0), (2, 2, 9.0)];
        let known_sizes = [12, 15, 90, 120, 200];
        let unseen = [(0, 0.5), (1, 0.8), (0, 8.0), (2, 9.0)];
        let unseen_sizes = [10, 19, 85, 300];
        let kv: Vec<bool> = known.iter().map(|r| r.2 < 5.0).collect();
        let uv: Vec<bool> = unseen.iter().map(|r| r.1 < 5.0).collect();
        let side = |rows, known, sizes| Side { rows, known, sizes };
        let r = report(side(&known, &kv, &known_sizes), Side { rows: &unseen, known: &uv, sizes: &unseen_sizes })
            .unwrap()
            .unwrap();
        assert_eq!(r.rows.len(), 2, "only the bins with crops: {r:?}");
        let (small, large) = (&r.rows[0], &r.rows[1]);
        assert_eq!((small.lo, small.hi, large.lo, large.hi), (0, Some(20), 80, None));
        assert_eq!((small.known, small.unseen, large.known, large.unseen), (2, 2, 3, 2));
        assert_eq!((small.accuracy, small.known_kept, small.unseen_known), (0.0, 100.0, 100.0));
        assert!((large.accuracy - 100.0).abs() < 1e-9 && (large.known_kept - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(large.unseen_known, 0.0);
        // Small: the unknowns sit nearer than the knowns (AUROC 0); large: 8 and 9 against 1, 2 and 9 (9 = 9 a tie):
        // (2 + 2.5) / 6.
        assert_eq!(small.auroc, Some(0.0));
        assert!((large.auroc.unwrap() - 75.0).abs() < 1e-9, "{r:?}");
        // A crop with no nearest class (usize::MAX) is never known nor right.
        let none = report(side(&[(0, usize::MAX, 1.0)], &[true], &[30]), Side { rows: &[], known: &[], sizes: &[] })
            .unwrap()
            .unwrap();
        assert_eq!((none.rows[0].accuracy, none.rows[0].known_kept), (0.0, 0.0));
        // Sizes missing for the rows: no report.
        let u = || Side { rows: &unseen[..], known: &uv[..], sizes: &unseen_sizes[..] };
        assert!(report(side(&known, &kv, &[]), u()).unwrap().is_none());
        // Verdicts out of step with the rows: no report either.
        assert!(report(side(&known, &kv[1..], &known_sizes), u()).unwrap().is_none());
    }

    #[test]
    fn bins_are_half_open() {
        assert_eq!(bin(0), 0);
        assert_eq!(bin(19), 0);
        assert_eq!(bin(20), 1);
        assert_eq!(bin(47), 2);
        assert_eq!(bin(48), 3);
        assert_eq!(bin(80), 4);
        assert_eq!(bin(400), 4);
    }
}
