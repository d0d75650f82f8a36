// SPDX-License-Identifier: MIT OR Apache-2.0
//! The losses of Masana et al. (BMVC 2018), over all pairs of a mini-batch formed after the embedding (section 3.2).
//!
//! * Contrastive (Eq. 1): a same-class pair costs `d^2 / 2`; a different-class pair `max(0, m - d)^2 / 2`.
//! * Out-of-distribution mining (Eq. 2): a pair of one in-distribution and one seen out-of-distribution image costs
//!   `max(0, m - d)^2 / 2` — every class is pushed at least the margin away from the seen OOD images. Pairs of two
//!   out-of-distribution images carry no loss (they are not one class).
//!
//! The three kinds of pair are averaged separately and mixed with fixed weights, so the ratio of same-class pairs and
//! of in/out pairs is what the configuration says (paper: 25%) whatever the batch holds. A margin term is averaged over
//! all pairs of its kind (the paper), or, with [`PairMean::Active`], over those still inside the margin: as training
//! separates the easy pairs, the few hard ones (two speed limits, say) keep their full weight instead of being diluted
//! by the many pairs that already cost nothing.

use tch::{Kind, Tensor};

/// Label of a seen out-of-distribution sample in a batch.
pub const OOD: i64 = -1;

/// Label of a mined sign-like unknown when it has a margin of its own (`--novelty-margin`): out-of-distribution like
/// [`OOD`] (no pair with another OOD image), its in/out pairs pushed beyond the novelty margin instead.
pub const OOD_NOVEL: i64 = -2;

fn is_ood(label: i64) -> bool {
    label < 0
}

/// What a margin term (different-class and in/out pairs) is averaged over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PairMean {
    /// Every pair of the kind in the batch (the paper).
    #[default]
    All,
    /// Only the pairs closer than the margin, which are the ones with a loss and a gradient.
    Active,
}

/// Weights of the pair kinds: same-class, in/out (ODM); different-class pairs take the rest.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PairWeights {
    pub same: f64,
    pub in_out: f64,
    pub mean: PairMean,
}

impl PairWeights {
    pub fn different(&self) -> f64 {
        1.0 - self.same - self.in_out
    }
}

/// Pair masks (upper triangle, `i < j`) for a batch's labels: (same, different, in/out), as `[B, B]` floats.
pub fn pair_masks(labels: &[i64]) -> (Tensor, Tensor, Tensor) {
    let b = labels.len();
    let (mut same, mut diff, mut io) = (vec![0f32; b * b], vec![0f32; b * b], vec![0f32; b * b]);
    for i in 0..b {
        for j in i + 1..b {
            let (a, c) = (labels[i], labels[j]);
            let k = i * b + j;
            match (is_ood(a), is_ood(c)) {
                (false, false) if a == c => same[k] = 1.0,
                (false, false) => diff[k] = 1.0,
                (true, true) => {}
                _ => io[k] = 1.0,
            }
        }
    }
    let t = |v: Vec<f32>| Tensor::from_slice(&v).view([b as i64, b as i64]);
    (t(same), t(diff), t(io))
}

/// Squared pairwise Euclidean distances `[B, B]` of `[B, D]` embeddings.
pub fn pairwise_sq(e: &Tensor) -> Tensor {
    (e.unsqueeze(1) - e.unsqueeze(0)).pow_tensor_scalar(2).sum_dim_intlist(-1, false, Kind::Float)
}

/// The loss of one batch. `labels[i]` is the class index of sample `i`, or [`OOD`] for a seen
/// out-of-distribution sample (those pairs count only when `weights.in_out > 0`).
pub fn pair_loss(e: &Tensor, labels: &[i64], margin: f64, weights: PairWeights) -> Tensor {
    pair_loss_margins(e, labels, margin, margin, weights)
}

/// [`pair_loss`] where the in/out pairs of an [`OOD_NOVEL`] sample are pushed beyond `novelty_margin` instead of
/// `margin`; they stay one kind of pair with the other in/out pairs (one average, one weight).
pub fn pair_loss_margins(e: &Tensor, labels: &[i64], margin: f64, novelty_margin: f64, weights: PairWeights) -> Tensor {
    let d2 = pairwise_sq(e);
    // The small epsilon keeps the gradient of sqrt finite for identical embeddings.
    let d = (&d2 + 1e-9).sqrt();
    let hinge = if labels.contains(&OOD_NOVEL) && novelty_margin != margin {
        let b = labels.len();
        let m: Vec<f32> = (0..b * b)
            .map(|k| {
                let novel = labels[k / b] == OOD_NOVEL || labels[k % b] == OOD_NOVEL;
                (if novel { novelty_margin } else { margin }) as f32
            })
            .collect();
        let m = Tensor::from_slice(&m).view([b as i64, b as i64]).to_device(e.device());
        (m - &d).clamp_min(0.0).pow_tensor_scalar(2) * 0.5
    } else {
        (margin - &d).clamp_min(0.0).pow_tensor_scalar(2) * 0.5
    };
    let pull = &d2 * 0.5;
    let (same, diff, io) = pair_masks(labels);
    let device = e.device();
    let mut total = Tensor::zeros([], (Kind::Float, device));
    let mut weight_sum = 0.0;
    // Which pairs are inside the margin: needed only to average over them.
    let inside = (weights.mean == PairMean::Active).then(|| hinge.gt(0.0).to_kind(Kind::Float));
    for (mask, term, w, margin_term) in [
        (same, &pull, weights.same, false),
        (diff, &hinge, weights.different(), true),
        (io, &hinge, weights.in_out, true),
    ] {
        let pairs = mask.sum(Kind::Float).double_value(&[]);
        if pairs == 0.0 || w <= 0.0 {
            continue;
        }
        let mask = mask.to_device(device);
        // The kind still counts in the mix when none of its pairs is inside the margin (it costs 0 then).
        let n = match &inside {
            Some(inside) if margin_term => (&mask * inside).sum(Kind::Float).double_value(&[]).max(1.0),
            _ => pairs,
        };
        total += (term * &mask).sum(Kind::Float) * (w / n);
        weight_sum += w;
    }
    if weight_sum > 0.0 {
        total / weight_sum
    } else {
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss(points: &[[f32; 2]], labels: &[i64], w: PairWeights) -> f64 {
        let flat: Vec<f32> = points.iter().flatten().copied().collect();
        let e = Tensor::from_slice(&flat).view([points.len() as i64, 2]);
        pair_loss(&e, labels, 10.0, w).double_value(&[])
    }

    // Points: p0 (0,0) and p1 (3,4) class 0, p2 (0,1) class 1, p3 (10,0) seen OOD.
    const P: [[f32; 2]; 4] = [[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [10.0, 0.0]];

    #[test]
    fn same_class_pair_costs_half_the_squared_distance() {
        let l = loss(&P[..2], &[0, 0], PairWeights { same: 1.0, in_out: 0.0, mean: PairMean::All });
        assert!((l - 12.5).abs() < 1e-4, "{l}");
    }

    #[test]
    fn different_pairs_within_and_beyond_the_margin() {
        // d = 1 within the margin: (10 - 1)^2 / 2 = 40.5; beyond the margin: 0.
        let l = loss(&[[0.0, 0.0], [0.0, 1.0]], &[0, 1], PairWeights { same: 0.0, in_out: 0.0, mean: PairMean::All });
        assert!((l - 40.5).abs() < 1e-3, "{l}");
        let l = loss(&[[0.0, 0.0], [0.0, 12.0]], &[0, 1], PairWeights { same: 0.0, in_out: 0.0, mean: PairMean::All });
        assert!(l.abs() < 1e-6, "{l}");
    }

    #[test]
    fn mixed_batch_with_odm_pairs() {
        // same: (0,1) d=5 -> 12.5. different: (0,2) d=1 -> 40.5, (1,2) d=sqrt(18) -> (10-4.2426)^2/2 = 16.5736.
        // in/out: (0,3) d=10 -> 0, (1,3) d=sqrt(65) -> (10-8.0623)^2/2 = 1.8774, (2,3) d=sqrt(101) -> 0.
        let w = PairWeights { same: 0.25, in_out: 0.25, mean: PairMean::All };
        let same = 12.5;
        let diff = (40.5 + 0.5 * (10.0 - 18f64.sqrt()).powi(2)) / 2.0;
        let io = 0.5 * (10.0 - 65f64.sqrt()).powi(2) / 3.0;
        let want = 0.25 * same + 0.5 * diff + 0.25 * io;
        let l = loss(&P, &[0, 0, 1, OOD], w);
        assert!((l - want).abs() < 1e-3, "{l} vs {want}");
        // Without ODM the OOD sample carries nothing.
        let ml = loss(&P, &[0, 0, 1, OOD], PairWeights { same: 0.25, in_out: 0.0, mean: PairMean::All });
        let want_ml = (0.25 * same + 0.75 * diff) / 1.0;
        assert!((ml - want_ml).abs() < 1e-3, "{ml} vs {want_ml}");
    }

    #[test]
    fn active_mean_averages_margin_terms_over_the_pairs_inside_the_margin() {
        // Same batch as above. different: only (0,2) and (1,2) exist, both inside: the same as All.
        // in/out: only (1,3) of the three is inside the margin, so it is averaged over 1 pair, not 3.
        let w = PairWeights { same: 0.25, in_out: 0.25, mean: PairMean::Active };
        let same = 12.5;
        let diff = (40.5 + 0.5 * (10.0 - 18f64.sqrt()).powi(2)) / 2.0;
        let io = 0.5 * (10.0 - 65f64.sqrt()).powi(2);
        let want = 0.25 * same + 0.5 * diff + 0.25 * io;
        let l = loss(&P, &[0, 0, 1, OOD], w);
        assert!((l - want).abs() < 1e-3, "{l} vs {want}");
        // A different pair beyond the margin: nothing inside, the kind costs 0 (no division by zero).
        let l = loss(&[[0.0, 0.0], [0.0, 12.0]], &[0, 1], PairWeights { same: 0.0, in_out: 0.0, ..w });
        assert!(l.abs() < 1e-6, "{l}");
    }

    #[test]
    fn out_vs_out_pairs_are_excluded() {
        let w = PairWeights { same: 0.25, in_out: 0.25, mean: PairMean::All };
        let base = loss(&P, &[0, 0, 1, OOD], w);
        // A second OOD sample right next to the first (a hinge pair of 40-ish if it counted), and far from the rest.
        let mut q = P.to_vec();
        q.push([10.0, 0.5]);
        let more = loss(&q, &[0, 0, 1, OOD, OOD], w);
        // Only in/out pairs change (three more, each 0 or small); out/out would add ~45.
        // In/out pairs now: (1,3) d=sqrt(65) and (1,4) d=sqrt(61.25) within the margin, the other four beyond it.
        let io_new = (0.5 * (10.0 - 65f64.sqrt()).powi(2) + 0.5 * (10.0 - 61.25f64.sqrt()).powi(2)) / 6.0;
        let same = 12.5;
        let diff = (40.5 + 0.5 * (10.0 - 18f64.sqrt()).powi(2)) / 2.0;
        let want = 0.25 * same + 0.5 * diff + 0.25 * io_new;
        assert!((more - want).abs() < 1e-3, "{more} vs {want} (base {base})");
    }

    #[test]
    fn mined_novelties_take_their_own_margin_and_form_no_pair_with_other_ood_images() {
        // p0 (0,0) class 0; p1 (6,0) a mined novelty; p2 (0,7) a seen anomaly; p3 (6,0.5) another novelty.
        let pts: [[f32; 2]; 4] = [[0.0, 0.0], [6.0, 0.0], [0.0, 7.0], [6.0, 0.5]];
        let flat: Vec<f32> = pts.iter().flatten().copied().collect();
        let e = Tensor::from_slice(&flat).view([4, 2]);
        let w = PairWeights { same: 0.0, in_out: 1.0, mean: PairMean::All };
        let labels = [0, OOD_NOVEL, OOD, OOD_NOVEL];
        // In/out pairs: (0,1) d=6 against the novelty margin 5 -> 0; (0,2) d=7 against 10 -> 4.5;
        // (0,3) d=sqrt(36.25) against 5 -> 0. OOD-OOD pairs (1,2), (1,3), (2,3) carry nothing. Mean over 3 pairs.
        let l = pair_loss_margins(&e, &labels, 10.0, 5.0, w).double_value(&[]);
        assert!((l - 4.5 / 3.0).abs() < 1e-4, "{l}");
        // With one margin for all, the novelties are pushed too: (10-6)^2/2 = 8 and (10-6.0208)^2/2.
        let one = pair_loss_margins(&e, &labels, 10.0, 10.0, w).double_value(&[]);
        let want = (8.0 + 4.5 + 0.5 * (10.0 - 36.25f64.sqrt()).powi(2)) / 3.0;
        assert!((one - want).abs() < 1e-3, "{one} vs {want}");
    }

    #[test]
    fn gradient_is_finite_for_identical_embeddings() {
        let e = Tensor::zeros([3, 4], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let l = pair_loss(&e, &[0, 1, OOD], 10.0, PairWeights { same: 0.25, in_out: 0.25, mean: PairMean::All });
        l.backward();
        let g = e.grad();
        assert!(g.isfinite().all().int64_value(&[]) == 1);
    }
}
