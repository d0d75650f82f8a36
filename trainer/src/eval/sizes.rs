// SPDX-License-Identifier: MIT OR Apache-2.0
//! The test figures by crop size: a crop's longer side in pixels, as the detector (or the renderer, which frames a
//! sign the way a detector does: the sign plus 5–25% context on each side) cut it from the frame. At 12 px a speed
//! limit's numeral is a few pixels; these rows say how much of the accuracy and of the novelty detection is lost to
//! resolution rather than to the model.

use odm_core::metrics::OodReport;
use odm_core::{Scorer, Verdict};
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

/// The report from the known test crops (`label`, nearest class, distance) and the unseen-design crops (nearest
/// class, distance), each with its crop's longer side. None when the sizes are not known for every crop.
pub fn report(
    scorer: &Scorer,
    known: &[(i64, usize, f64)],
    known_sizes: &[u32],
    unseen: &[(usize, f64)],
    unseen_sizes: &[u32],
) -> Result<Option<SizeReport>, TrainError> {
    if known.is_empty() || known.len() != known_sizes.len() || unseen.len() != unseen_sizes.len() {
        return Ok(None);
    }
    let is_known = |k: usize, d: f64| k != usize::MAX && scorer.verdict(k, d) == Verdict::Known;
    let pct = |n: usize, of: usize| if of == 0 { 0.0 } else { 100.0 * n as f64 / of as f64 };
    let mut rows = Vec::new();
    for (b, &lo) in EDGES.iter().enumerate() {
        let ks: Vec<&(i64, usize, f64)> =
            known.iter().zip(known_sizes).filter(|(_, &s)| bin(s) == b).map(|(r, _)| r).collect();
        let us: Vec<&(usize, f64)> =
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
            known_kept: pct(ks.iter().filter(|r| is_known(r.1, r.2)).count(), ks.len()),
            unseen: us.len(),
            unseen_known: pct(us.iter().filter(|r| is_known(r.0, r.1)).count(), us.len()),
            auroc,
        });
    }
    Ok(Some(SizeReport { rows }))
}

impl SizeReport {
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "By crop size (the crop's longer side in pixels; a crop holds the sign and 5–25% context on each side):\n\n\
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
