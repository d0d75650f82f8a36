// SPDX-License-Identifier: MIT OR Apache-2.0
//! Embeddings of decoded images and their distances to the class centres.

use odm_core::Scorer;
use tch::{Device, Kind, Tensor};

use super::model::Net;

/// Embeddings of a tensor of images in eval mode, in chunks.
pub fn embed_all(net: &Net, x: &Tensor, device: Device) -> Tensor {
    let _g = tch::no_grad_guard();
    let n = x.size()[0];
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let j = (i + 256).min(n);
        out.push(net.embed_t(&x.narrow(0, i, j - i).to_device(device), false).to_device(Device::Cpu));
        i = j;
    }
    if out.is_empty() {
        return Tensor::zeros([0, net.dim], (Kind::Float, Device::Cpu));
    }
    Tensor::cat(&out, 0)
}

pub fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.to_kind(Kind::Float).contiguous().view([-1])).expect("float tensor")
}

/// Distances to the nearest centre, through odm-core's scorer (the code the plugin runs).
pub fn distances(scorer: &Scorer, e: &Tensor) -> Vec<(usize, f64)> {
    let v = to_vec(e);
    v.chunks_exact(scorer.dim())
        .map(|row| scorer.nearest(row).map_or((usize::MAX, f64::INFINITY), |(k, d)| (k, d as f64)))
        .collect()
}

/// Mean embedding per class (`y` in `0..k`).
pub fn class_centres(e: &[f32], y: &[i64], k: usize, d: usize) -> Vec<Vec<f32>> {
    let mut sums = vec![vec![0f64; d]; k];
    let mut counts = vec![0usize; k];
    for (row, &c) in e.chunks_exact(d).zip(y) {
        if let (Some(s), Some(n)) = (sums.get_mut(c as usize), counts.get_mut(c as usize)) {
            *n += 1;
            for (a, b) in s.iter_mut().zip(row) {
                *a += *b as f64;
            }
        }
    }
    sums.iter().zip(&counts).map(|(s, &n)| s.iter().map(|v| (v / n.max(1) as f64) as f32).collect()).collect()
}
