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
