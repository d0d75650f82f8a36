// SPDX-License-Identifier: MIT OR Apache-2.0
//! Training the detector: CenterNet's penalty-reduced focal loss on the heatmap, L1 on offsets and log sizes, Adam
//! with a cosine learning rate, mirrored crops. The run folder holds `config.json` (this config, the data's config
//! and the seed), `weights.ot`, `log.jsonl` (loss per logged step) and `detector.onnx`.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

use super::data::{self, Dataset};
use super::net::DetNet;
use crate::error::TrainError;
use crate::train::model::with_torch_rng;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitConfig {
    pub data: PathBuf,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    /// Log (and append to log.jsonl) every this many steps.
    pub log_every: usize,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig { data: PathBuf::new(), steps: 3000, batch: 16, lr: 2e-3, seed: 1, log_every: 50 }
    }
}

/// The losses of one step: (total, heatmap, offset, size).
pub fn loss(out: &Tensor, heat: &Tensor, reg: &Tensor, weight: &Tensor) -> (Tensor, Tensor, Tensor, Tensor) {
    let p = out.narrow(1, 0, 1).sigmoid().clamp(1e-4, 1.0 - 1e-4);
    let pos = heat.eq(1.0).to_kind(Kind::Float);
    let neg: Tensor = 1.0 - &pos;
    let n = pos.sum(Kind::Float).clamp_min(1.0);
    let q: Tensor = 1.0 - &p;
    let pos_loss = (p.log() * q.pow_tensor_scalar(2.0) * &pos).sum(Kind::Float);
    let far: Tensor = 1.0 - heat;
    let neg_loss = (q.log() * p.pow_tensor_scalar(2.0) * far.pow_tensor_scalar(4.0) * neg).sum(Kind::Float);
    let focal = -(pos_loss + neg_loss) / &n;
    let wsum = weight.sum(Kind::Float).clamp_min(1.0);
    let l1 = (out.narrow(1, 1, 4) - reg).abs() * weight;
    let offset = l1.narrow(1, 0, 2).sum(Kind::Float) / &wsum;
    let size = l1.narrow(1, 2, 2).sum(Kind::Float) / &wsum;
    (&focal + &offset + &size, focal, offset, size)
}

/// What a run did: losses per logged step (step, total, heatmap, offset, size) and the seconds it took.
#[derive(Debug, Clone, Serialize)]
pub struct FitSummary {
    pub log: Vec<(usize, f64, f64, f64, f64)>,
    pub seconds: f64,
    pub images: usize,
}

/// Train on the dataset of `cfg.data`; writes the run folder `out` (weights, config, log). Returns the network with
/// its variables and what happened.
pub fn fit(out: &Path, cfg: &FitConfig, progress: bool) -> Result<(nn::VarStore, DetNet, FitSummary), TrainError> {
    if cfg.steps == 0 || cfg.batch == 0 || cfg.lr.is_nan() || cfg.lr <= 0.0 {
        return Err(TrainError::Config("detector train: steps, batch and lr must be positive".into()));
    }
    std::fs::create_dir_all(out).map_err(TrainError::io(out))?;
    let t0 = std::time::Instant::now();
    let data: Dataset = data::load(&cfg.data)?;
    let n = data.boxes.len();
    let vs = nn::VarStore::new(Device::Cpu);
    // Nothing draws from libtorch's generator between the seed and the initial weights (nor after them).
    let net = with_torch_rng(Some(cfg.seed as i64), || DetNet::new(&vs.root()));
    let mut opt = nn::Adam::default().build(&vs, cfg.lr).map_err(|e| TrainError::Config(e.to_string()))?;
    let mut rng = Pcg64::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let mut cursor = 0;
    let log_path = out.join("log.jsonl");
    let mut log_file = std::fs::File::create(&log_path).map_err(TrainError::io(&log_path))?;
    let mut log = Vec::new();
    let mut acc = [0.0f64; 4];
    let mut acc_n = 0;
    let bar = crate::progress::Progress::new(
        progress,
        "training",
        cfg.steps as u64,
        "{msg} [{bar:40}] {pos}/{len} {per_sec} eta {eta}",
    );
    for step in 1..=cfg.steps {
        let mut idx = Vec::with_capacity(cfg.batch);
        while idx.len() < cfg.batch {
            if cursor == n {
                order.shuffle(&mut rng);
                cursor = 0;
            }
            idx.push(order[cursor]);
            cursor += 1;
        }
        let (x, heat, reg, weight) = data::batch(&data, &idx, &mut rng);
        // Cosine decay to 5% of the rate, after a warm-up of a tenth of the steps (at most 100).
        let warm = (step as f64 / (cfg.steps / 10).clamp(1, 100) as f64).min(1.0);
        let t = step as f64 / cfg.steps as f64;
        opt.set_lr(cfg.lr * warm * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())));
        let y = net.forward_t(&x, true);
        let (total, focal, offset, size) = loss(&y, &heat, &reg, &weight);
        opt.backward_step(&total);
        for (a, v) in acc.iter_mut().zip([&total, &focal, &offset, &size]) {
            *a += v.double_value(&[]);
        }
        acc_n += 1;
        bar.inc();
        if step % cfg.log_every.max(1) == 0 || step == cfg.steps {
            let m = acc.map(|a| a / acc_n as f64);
            log.push((step, m[0], m[1], m[2], m[3]));
            let line = serde_json::json!({"step": step, "loss": m[0], "heatmap": m[1], "offset": m[2], "size": m[3],
                "seconds": t0.elapsed().as_secs_f64()});
            writeln!(log_file, "{line}").map_err(TrainError::io(&log_path))?;
            bar.set_message(format!("loss {:.3}", m[0]));
            acc = [0.0; 4];
            acc_n = 0;
        }
    }
    bar.finish();
    let weights = out.join("weights.ot");
    vs.save(&weights).map_err(|e| TrainError::Config(format!("{}: {e}", weights.display())))?;
    let summary = FitSummary { log, seconds: t0.elapsed().as_secs_f64(), images: n };
    let config = out.join("config.json");
    let data_cfg: Option<serde_json::Value> =
        std::fs::read_to_string(cfg.data.join("data.json")).ok().and_then(|t| serde_json::from_str(&t).ok());
    let text = serde_json::to_string_pretty(&serde_json::json!({
        "fit": cfg, "data": data_cfg, "images": n, "seconds": summary.seconds,
        "threads": tch::get_num_threads(),
    }))
    .map_err(|e| TrainError::Asset(e.to_string()))?;
    std::fs::write(&config, text + "\n").map_err(TrainError::io(&config))?;
    Ok((vs, net, summary))
}

/// A trained network from a run folder's `weights.ot`.
pub fn load(run: &Path) -> Result<(nn::VarStore, DetNet), TrainError> {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let net = with_torch_rng(None, || DetNet::new(&vs.root()));
    let w = run.join("weights.ot");
    vs.load(&w).map_err(|e| TrainError::Config(format!("{}: cannot load the weights: {e}", w.display())))?;
    Ok((vs, net))
}
