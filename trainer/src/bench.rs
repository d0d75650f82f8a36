// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train bench`: training speed of a network on fixed random batches (no data loading), the same work (and the
//! same Adam the training loop uses) the PyTorch reference in `trainer/bench/torch_ref.py` does, so the two can be compared side by side.

use tch::{nn, Device, Kind, Tensor};

use crate::train::adam::Adam;

use crate::error::TrainError;
use crate::train::loss::{pair_loss, PairMean, PairWeights};
use crate::train::model::{Arch, Net};

/// Peak resident memory of this process in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// (images per second, seconds per step, peak MiB) over `steps` timed steps after `warmup` steps.
pub fn bench(
    arch: Arch,
    input: i64,
    dim: i64,
    batch: i64,
    steps: usize,
    warmup: usize,
) -> Result<(f64, f64, f64), TrainError> {
    let vs = nn::VarStore::new(Device::Cpu);
    let (net, x) = crate::train::model::with_torch_rng(Some(0), || {
        (
            Net::new(&vs.root(), arch, input, input, dim, None),
            Tensor::randn([batch, 3, input, input], (Kind::Float, Device::Cpu)),
        )
    });
    let mut opt = Adam::new(&vs);
    let labels: Vec<i64> = (0..batch).map(|i| i / 4).collect();
    let w = PairWeights { same: 0.25, in_out: 0.0, mean: PairMean::All };
    let mut t0 = std::time::Instant::now();
    for s in 0..warmup + steps {
        if s == warmup {
            t0 = std::time::Instant::now();
        }
        let loss = pair_loss(&net.embed_t(&x, true), &labels, 10.0, w);
        opt.backward_step(&loss, 1e-3);
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(((steps as i64 * batch) as f64 / secs, secs / steps as f64, peak_rss_mib().unwrap_or(f64::NAN)))
}
