// SPDX-License-Identifier: MIT OR Apache-2.0
//! Mini-batches: K images of each of P in-distribution classes, and for ODM the out-of-distribution slots.

use rand::seq::IndexedRandom;
use rand::Rng;
use rand_pcg::Pcg64;
use tch::Tensor;

use super::config::{Method, TrainConfig};
use super::loss::{OOD, OOD_NOVEL};
use super::rundata::{RunData, Tensors};

/// Where the OOD slots of an ODM batch come from, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OodSource {
    /// Images of the seen OOD classes (the paper's ODM).
    Classes,
    /// Pixel-permuted in-distribution training images.
    Permuted,
    /// Mined anomalies (`--seen-anomaly-dir`).
    Anomalies,
    /// Mined sign-like unknowns (`--seen-novelty-dir`).
    Novelties,
}

/// How many of `n_ood` slots each source present gets: the configured shares (`--permuted-ood`, `--anomaly-share`,
/// `--novelty-share`; the seen OOD classes take the rest), renormalised over the sources a run has, rounded by
/// largest remainder so the counts always add up to `n_ood`.
pub fn ood_slots(cfg: &TrainConfig, data: &RunData, n_ood: usize) -> Vec<(OodSource, usize)> {
    let mined = |d: &Option<_>, share: f64| if d.is_some() { share } else { 0.0 };
    let (a, n) = (mined(&data.train_anomaly, cfg.anomaly_share), mined(&data.train_novelty, cfg.novelty_share));
    let classes = if data.train_ood.is_some() { (1.0 - cfg.permuted_ood - a - n).max(0.0) } else { 0.0 };
    let mut w = vec![
        (OodSource::Classes, classes),
        (OodSource::Permuted, cfg.permuted_ood),
        (OodSource::Anomalies, a),
        (OodSource::Novelties, n),
    ];
    w.retain(|&(_, v)| v > 0.0);
    let total: f64 = w.iter().map(|p| p.1).sum();
    if total <= 0.0 {
        return Vec::new();
    }
    let exact: Vec<f64> = w.iter().map(|p| p.1 / total * n_ood as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..w.len()).collect();
    order.sort_by(|&i, &j| (exact[j] - exact[j].floor()).total_cmp(&(exact[i] - exact[i].floor())).then(i.cmp(&j)));
    let missing = n_ood - counts.iter().sum::<usize>();
    for &i in order.iter().take(missing) {
        counts[i] += 1;
    }
    w.iter().zip(counts).map(|(p, c)| (p.0, c)).collect()
}

/// A batch: K images of each of P in-distribution classes, plus for ODM the OOD slots filled from every source the
/// run has ([`ood_slots`]). Every OOD image is labelled [`OOD`], seen OOD classes and mined sign-like unknowns
/// [`OOD_NOVEL`] when the run has a novelty margin (the loss
/// forms no pair of two OOD images).
pub fn batch(rng: &mut Pcg64, data: &RunData, by_class: &[Vec<i64>], cfg: &TrainConfig) -> (Tensor, Vec<i64>) {
    let any_ood = data.train_ood.is_some() || data.train_anomaly.is_some() || data.train_novelty.is_some();
    let n_ood =
        if any_ood && cfg.method == Method::Odm { ((cfg.batch as f64) * cfg.ood_fraction).round() as usize } else { 0 };
    let n_in = cfg.batch - n_ood;
    let k = 4.min(n_in);
    let mut idx = Vec::with_capacity(n_in);
    let mut labels = Vec::with_capacity(cfg.batch);
    let nonempty: Vec<usize> = (0..by_class.len()).filter(|&c| !by_class[c].is_empty()).collect();
    while idx.len() < n_in {
        let &c = nonempty.choose(rng).expect("training classes are non-empty");
        for _ in 0..k.min(n_in - idx.len()) {
            let &i = by_class[c].choose(rng).expect("class has images");
            idx.push(i);
            labels.push(c as i64);
        }
    }
    let mut parts = vec![data.train_in.x.index_select(0, &Tensor::from_slice(&idx))];
    if n_ood == 0 {
        return (parts.remove(0), labels);
    }
    let draw = |rng: &mut Pcg64, t: &Tensors, n: usize| {
        let count = t.y.len() as i64;
        let i: Vec<i64> = (0..n).map(|_| rng.random_range(0..count)).collect();
        t.x.index_select(0, &Tensor::from_slice(&i))
    };
    let novel_label = if cfg.novelty_margin > 0.0 { OOD_NOVEL } else { OOD };
    for (source, n) in ood_slots(cfg, data, n_ood) {
        if n == 0 {
            continue;
        }
        let (x, label) = match source {
            // Seen OOD classes are unknown signs: with a novelty margin they take the novelty ring like the mined
            // sign-like unknowns, leaving the full margin to what is not a sign.
            OodSource::Classes => (draw(rng, data.train_ood.as_ref().expect("present"), n), novel_label),
            OodSource::Permuted => (permuted(rng, &data.train_in.x, n), OOD),
            OodSource::Anomalies => (draw(rng, data.train_anomaly.as_ref().expect("present"), n), OOD),
            OodSource::Novelties => (draw(rng, data.train_novelty.as_ref().expect("present"), n), novel_label),
        };
        parts.push(x);
        labels.extend(std::iter::repeat_n(label, n));
    }
    (Tensor::cat(&parts, 0), labels)
}

/// `n` random images of `x` (`[N,C,H,W]`), each with its pixels shuffled by its own permutation (the same for every
/// channel, so each pixel keeps its colour).
fn permuted(rng: &mut Pcg64, x: &Tensor, n: usize) -> Tensor {
    use rand::seq::SliceRandom;
    let &[count, c, h, w] = x.size().as_slice() else { unreachable!("images are [N,C,H,W]") };
    let hw = (h * w) as usize;
    let pick: Vec<i64> = (0..n).map(|_| rng.random_range(0..count)).collect();
    let mut order: Vec<i64> = Vec::with_capacity(n * hw);
    for _ in 0..n {
        let start = order.len();
        order.extend(0..hw as i64);
        order[start..].shuffle(rng);
    }
    let n = n as i64;
    let index = Tensor::from_slice(&order).view([n, 1, h * w]).expand([n, c, h * w], false);
    x.index_select(0, &Tensor::from_slice(&pick)).view([n, c, h * w]).gather(2, &index, false).view([n, c, h, w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::embed::to_vec;
    use rand::SeedableRng;

    #[test]
    fn permuted_images_keep_each_pixel_colour_and_lose_the_order() {
        // Two 3x4x5 images with distinct pixel colours: channel c of pixel p is 1000 * image + 100 * c + p.
        let (c, h, w) = (3i64, 4i64, 5i64);
        let v: Vec<f32> = (0..2 * c * h * w)
            .map(|i| {
                let (img, rest) = (i / (c * h * w), i % (c * h * w));
                (1000 * img + 100 * (rest / (h * w)) + rest % (h * w)) as f32
            })
            .collect();
        let x = Tensor::from_slice(&v).view([2, c, h, w]);
        let mut rng = Pcg64::seed_from_u64(7);
        let p = permuted(&mut rng, &x, 6);
        assert_eq!(p.size(), [6, c, h, w]);
        let p = to_vec(&p);
        let mut moved = 0;
        for img in p.chunks_exact((c * h * w) as usize) {
            let source = (img[0] / 1000.0).floor();
            let mut seen = Vec::new();
            for q in 0..(h * w) as usize {
                // Every channel of output pixel q comes from the same source pixel of the same image.
                let pixel = img[q] - 1000.0 * source;
                for ch in 0..c as usize {
                    assert_eq!(img[ch * (h * w) as usize + q], 1000.0 * source + 100.0 * ch as f32 + pixel);
                }
                seen.push(pixel as i64);
                moved += usize::from(pixel as usize != q);
            }
            seen.sort();
            assert_eq!(seen, (0..h * w).collect::<Vec<_>>(), "a permutation of the pixels");
        }
        assert!(moved > 6 * 15, "the order is shuffled ({moved} of 120 pixels moved)");
    }
}
