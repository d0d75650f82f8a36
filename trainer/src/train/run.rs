// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train train`: load the data, train, compute centres and thresholds, export the bundle.
//!
//! Run folder (`--out`): `config.json` (everything needed to reproduce the run), `model.ot` (tch weights),
//! `checkpoint.ot` + `optimizer.ot` + `state.json` while training (resumable: weights, Adam moments, step), `NAME.onnx` + `NAME.odm.json` (the bundle), `log.jsonl`.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use odm_core::bundle::{
    sha256_file, Bundle, Calibration, ClassEntry, ColorOrder, InputSpec, ModelSpec, OutputSpec, ScoreSpec, FORMAT,
    SCORE_KIND,
};
use odm_core::metrics::threshold_at_tpr;
use odm_core::preprocess::{CropSpec, Normalize};
use odm_core::Scorer;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::adam::Adam;
use super::loss::{pair_loss, PairMean, PairWeights, OOD};
use super::model::{Arch, Net};
use crate::data::{self, split, Dataset, Format};
use crate::error::{DataError, TrainError};

/// Training method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Contrastive metric learning with out-of-distribution mining (the paper's ODM).
    Odm,
    /// Contrastive metric learning only (the paper's ML).
    Ml,
    /// Cross-entropy classifier (baselines: maximum softmax probability, ODIN).
    Ce,
}

/// How the learning rate moves over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `--lr` at every step (the paper's Adam).
    Constant,
    /// Half a cosine from `--lr` at the first step down to zero after the last.
    Cosine,
}

impl LrSchedule {
    /// The rate for `step` (counted from 0) of a run of `steps`: a function of the step alone, so a resumed run
    /// follows the same curve as an uninterrupted one.
    pub fn rate(self, lr: f64, step: usize, steps: usize) -> f64 {
        match self {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine => lr * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / steps.max(1) as f64).cos()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Dataset root holding `train/` and `test/` class-per-folder trees.
    pub data: PathBuf,
    pub in_dist: Vec<String>,
    pub seen_ood: Vec<String>,
    pub unseen_ood: Vec<String>,
    /// Seen OOD classes held out of training: the novelty side of the anomaly-threshold calibration. Empty: for
    /// ODM a fifth of the seen OOD classes (at least one) when there are three or more, else none.
    pub calib_ood: Vec<String>,
    /// Class-per-folder trees of anomalies, each one set named after its folder.
    pub anomaly_dirs: Vec<PathBuf>,
    pub method: Method,
    pub arch: String,
    /// Model input size (square).
    pub input: u32,
    pub embedding: i64,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub lr_schedule: LrSchedule,
    pub margin: f64,
    /// Pair weights: same-class pairs, in/out pairs (ODM only).
    pub same_pairs: f64,
    pub in_out_pairs: f64,
    /// What the margin terms are averaged over: all pairs of their kind (the paper), or those inside the margin.
    pub pair_mean: PairMean,
    /// Fraction of each batch taken from the seen out-of-distribution classes (ODM only).
    pub ood_fraction: f64,
    /// Share of those seen OOD slots filled instead with pixel-permuted in-distribution training images (ODM only):
    /// each image's pixels in a random order, its colours kept and its structure gone. Not in the paper; without it
    /// ODM left inputs unlike any training image (noise) near the class centres. 0 gives the paper's ODM.
    pub permuted_ood: f64,
    pub seed: u64,
    pub device: String,
    /// Fraction of each training class (and of each anomaly set) held out for validation and calibration.
    pub val_fraction: f64,
    /// Target TPR of the novelty threshold.
    pub tpr: f64,
    /// Context margin written into the bundle: the plugin grows detector boxes by it. Whole-image training crops
    /// are taken as they are (they are already framed); boxes from annotations are grown by it, like the plugin does.
    pub context: f32,
    pub checkpoint_every: usize,
    pub name: String,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            data: PathBuf::new(),
            in_dist: Vec::new(),
            seen_ood: Vec::new(),
            unseen_ood: Vec::new(),
            calib_ood: Vec::new(),
            anomaly_dirs: Vec::new(),
            method: Method::Odm,
            arch: "wrn-10-1".into(),
            input: 32,
            embedding: 32,
            steps: 2000,
            batch: 64,
            lr: 1e-3,
            lr_schedule: LrSchedule::Constant,
            margin: 10.0,
            same_pairs: 0.25,
            in_out_pairs: 0.25,
            pair_mean: PairMean::All,
            ood_fraction: 0.25,
            permuted_ood: 0.25,
            seed: 1,
            device: "cpu".into(),
            val_fraction: 0.1,
            tpr: 0.95,
            context: 0.1,
            checkpoint_every: 500,
            name: "odm-model".into(),
        }
    }
}

impl TrainConfig {
    /// A config file: JSON with any of the fields (the rest take their defaults); unknown fields are refused.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(TrainError::io(path))?;
        serde_json::from_str(&text).map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))
    }

    pub fn validate(&self) -> Result<Arch, TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        let arch: Arch = self.arch.parse().map_err(TrainError::Config)?;
        if !(self.margin > 0.0 && self.margin.is_finite()) {
            return bad(format!("--margin must be positive, got {}", self.margin));
        }
        if self.batch < 4 {
            return bad(format!("--batch must be at least 4, got {}", self.batch));
        }
        if self.input < 8 || self.embedding < 1 {
            return bad(format!("--input {} and --embedding {} are too small", self.input, self.embedding));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("--lr must be positive, got {}", self.lr));
        }
        if !((0.0..1.0).contains(&self.val_fraction) && self.tpr > 0.0 && self.tpr <= 1.0) {
            return bad("--val-fraction must be in [0, 1) and --tpr in (0, 1]".into());
        }
        if !(0.0..1.0).contains(&self.ood_fraction) || !(0.0..=1.0).contains(&self.permuted_ood) {
            return bad(format!(
                "--ood-fraction ({}) must be in [0, 1) and --permuted-ood ({}) in [0, 1]",
                self.ood_fraction, self.permuted_ood
            ));
        }
        if self.same_pairs < 0.0 || self.in_out_pairs < 0.0 || self.same_pairs + self.in_out_pairs > 1.0 {
            return bad("pair weights must be non-negative and sum to at most 1".into());
        }
        if matches!(arch, Arch::Lenet) && self.input < 16 {
            return bad("lenet needs --input >= 16".into());
        }
        Ok(arch)
    }

    pub fn crop_spec(&self) -> CropSpec {
        CropSpec {
            width: self.input,
            height: self.input,
            context: self.context,
            norm: Normalize { color: ColorOrder::Rgb, mean: [0.5; 3], std: [0.25; 3] },
        }
    }

    pub fn device(&self) -> Device {
        match self.device.as_str() {
            "cuda" if tch::Cuda::is_available() => Device::Cuda(0),
            "cuda" => {
                eprintln!(
                    "odm-train: --device cuda asked, but no CUDA device is visible to libtorch: training on the CPU"
                );
                Device::Cpu
            }
            _ => Device::Cpu,
        }
    }
}

/// Images of one role, decoded into a `[N,3,H,W]` tensor, with their class indices.
pub struct Tensors {
    pub x: Tensor,
    pub y: Vec<i64>,
}

/// Decode a subset of a dataset through odm-core's preprocessing.
pub fn decode(
    d: &Dataset,
    idx: &[usize],
    spec: &CropSpec,
    class_map: &dyn Fn(usize) -> i64,
) -> Result<Tensors, DataError> {
    let n = spec.len();
    let mut buf = vec![0f32; idx.len() * n];
    use rayon::prelude::*;
    buf.par_chunks_mut(n).zip(idx.par_iter()).try_for_each(|(out, &i)| {
        // Whole images are already framed crops: no context; boxes get the bundle's context like the plugin's.
        let s = if d.samples[i].roi.is_some() { *spec } else { CropSpec { context: 0.0, ..*spec } };
        d.tensor(i, &s, out)
    })?;
    let x = Tensor::from_slice(&buf).view([idx.len() as i64, 3, spec.height as i64, spec.width as i64]);
    Ok(Tensors { x, y: idx.iter().map(|&i| class_map(d.samples[i].class)).collect() })
}

/// The data of a run, decoded.
pub struct RunData {
    pub classes: Vec<String>,
    pub train_in: Tensors,
    pub train_ood: Option<Tensors>,
    pub val_in: Tensors,
    /// The novelty side of the anomaly-threshold calibration: every image of the held-out calibration classes,
    /// plus the validation part of the seen OOD classes a method did not train on.
    pub val_ood: Option<Tensors>,
    /// The seen OOD classes held out of training for calibration.
    pub calib_ood: Vec<String>,
    pub val_anomaly: Vec<(String, Tensors)>,
}

/// The class split of a run: explicit lists, or the paper's 50/20/30 by groups when none is given.
pub fn class_split(cfg: &TrainConfig, train: &Dataset) -> Result<split::ClassSplit, TrainError> {
    let s = if cfg.in_dist.is_empty() && cfg.seen_ood.is_empty() && cfg.unseen_ood.is_empty() {
        split::random(&train.classes, &train.groups, split::PAPER_FRACTIONS, cfg.seed)?
    } else {
        split::explicit(&train.classes, &cfg.in_dist, &cfg.seen_ood, &cfg.unseen_ood)?
    };
    Ok(s)
}

/// Indices of `d`'s samples whose class is in `names`, split into (train, validation) per class.
fn pick(d: &Dataset, names: &[String], val_fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>), TrainError> {
    let s = split::per_class(d, [1.0 - val_fraction, val_fraction, 0.0], seed)?;
    let keep = |i: &usize| names.contains(&d.classes[d.samples[*i].class]);
    Ok((s.train.into_iter().filter(keep).collect(), s.val.into_iter().filter(keep).collect()))
}

pub fn load_run_data(cfg: &TrainConfig) -> Result<(RunData, split::ClassSplit), TrainError> {
    let mut train = data::load(&cfg.data.join("train"), Format::Folder)?;
    for (c, n) in train.drop_small_classes(10) {
        eprintln!("odm-train: warning: class {c:?} dropped: {n} images, fewer than 10");
    }
    let roles = class_split(cfg, &train)?;
    let spec = cfg.crop_spec();
    let in_index = |k: usize| roles.in_dist.iter().position(|c| *c == train.classes[k]).map_or(OOD, |p| p as i64);
    let (tr, va) = pick(&train, &roles.in_dist, cfg.val_fraction, cfg.seed)?;
    if tr.is_empty() {
        return Err(DataError::EmptySplit { which: "in", reason: "no in-distribution training image".into() }.into());
    }
    let train_in = decode(&train, &tr, &spec, &in_index)?;
    let val_in = decode(&train, &va, &spec, &in_index)?;
    let calib_ood = calibration_classes(cfg, &roles)?;
    let trained_ood: Vec<String> = roles.seen_ood.iter().filter(|c| !calib_ood.contains(c)).cloned().collect();
    let (tr, va) = pick(&train, &trained_ood, cfg.val_fraction, cfg.seed)?;
    let train_ood = (!tr.is_empty()).then(|| decode(&train, &tr, &spec, &|_| OOD)).transpose()?;
    let mut novel: Vec<usize> =
        (0..train.samples.len()).filter(|&i| calib_ood.contains(&train.classes[train.samples[i].class])).collect();
    if cfg.method != Method::Odm || calib_ood.is_empty() {
        if cfg.method == Method::Odm && !va.is_empty() && !cfg.anomaly_dirs.is_empty() {
            eprintln!(
                "odm-train: warning: no held-out calibration class (--calib-ood): the anomaly threshold is calibrated \
                 on seen OOD classes ODM trained on, which it pushed beyond the margin; it will be too high"
            );
        }
        novel.extend(va);
    }
    let val_ood = (!novel.is_empty()).then(|| decode(&train, &novel, &spec, &|_| OOD)).transpose()?;
    let mut val_anomaly = Vec::new();
    for dir in &cfg.anomaly_dirs {
        let d = data::load(dir, Format::Folder)?;
        let (_, va) = anomaly_split(&d, cfg)?;
        val_anomaly.push((set_name(dir), decode(&d, &va, &spec, &|_| OOD)?));
    }
    Ok((
        RunData { classes: roles.in_dist.clone(), train_in, train_ood, val_in, val_ood, calib_ood, val_anomaly },
        roles,
    ))
}

/// The calibration classes: `--calib-ood` (each must be a seen OOD class), or for ODM with three or more seen OOD
/// classes a seeded fifth of them (at least one); otherwise none.
pub fn calibration_classes(cfg: &TrainConfig, roles: &split::ClassSplit) -> Result<Vec<String>, TrainError> {
    if let Some(c) = cfg.calib_ood.iter().find(|c| !roles.seen_ood.contains(c)) {
        return Err(TrainError::Config(format!(
            "--calib-ood {c:?} is not a seen OOD class (seen: {})",
            roles.seen_ood.join(", ")
        )));
    }
    if !cfg.calib_ood.is_empty() {
        if cfg.calib_ood.len() == roles.seen_ood.len() && cfg.method == Method::Odm {
            return Err(TrainError::Config("--calib-ood takes every seen OOD class: none is left for ODM".into()));
        }
        return Ok(cfg.calib_ood.clone());
    }
    if cfg.method != Method::Odm || roles.seen_ood.len() < 3 {
        return Ok(Vec::new());
    }
    let mut rng = Pcg64::seed_from_u64(cfg.seed ^ 0xca11b);
    let n = (roles.seen_ood.len() / 5).max(1);
    let mut picked: Vec<String> = roles.seen_ood.choose_multiple(&mut rng, n).cloned().collect();
    picked.sort();
    eprintln!("odm-train: calibration classes (held out of ODM training): {}", picked.join(", "));
    Ok(picked)
}

/// An anomaly set split into (evaluation, calibration) samples: calibration takes the validation fraction (at
/// least 5%), evaluation the rest. `train` calibrates on the second part and `eval` scores the first.
pub fn anomaly_split(d: &Dataset, cfg: &TrainConfig) -> Result<(Vec<usize>, Vec<usize>), TrainError> {
    pick(d, &d.classes, cfg.val_fraction.max(0.05), cfg.seed)
}

/// The name of an anomaly set: its folder's name.
pub fn set_name(dir: &Path) -> String {
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string())
}

/// A batch: K images of each of P in-distribution classes, plus seen OOD images for ODM.
fn batch(rng: &mut Pcg64, data: &RunData, by_class: &[Vec<i64>], cfg: &TrainConfig) -> (Tensor, Vec<i64>) {
    let n_ood = match (&data.train_ood, cfg.method) {
        (Some(_), Method::Odm) => ((cfg.batch as f64) * cfg.ood_fraction).round() as usize,
        _ => 0,
    };
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
    let x_in = data.train_in.x.index_select(0, &Tensor::from_slice(&idx));
    if n_ood == 0 {
        return (x_in, labels);
    }
    let n_perm = ((n_ood as f64) * cfg.permuted_ood).round() as usize;
    let ood = data.train_ood.as_ref().expect("checked above");
    let n = ood.y.len() as i64;
    let oi: Vec<i64> = (0..n_ood - n_perm).map(|_| rng.random_range(0..n)).collect();
    labels.extend(std::iter::repeat_n(OOD, n_ood));
    let mut parts = vec![x_in, ood.x.index_select(0, &Tensor::from_slice(&oi))];
    if n_perm > 0 {
        parts.push(permuted(rng, &data.train_in.x, n_perm));
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

#[derive(Debug, Serialize, Deserialize, Default)]
struct State {
    step: usize,
}

/// Train and write the run folder; returns the bundle path.
pub fn train(cfg: &TrainConfig, out: &Path, progress: bool, resume: bool) -> Result<PathBuf, TrainError> {
    let arch = cfg.validate()?;
    std::fs::create_dir_all(out).map_err(TrainError::io(out))?;
    let cfg_path = out.join("config.json");
    std::fs::write(&cfg_path, serde_json::to_string_pretty(cfg).expect("config serialises") + "\n")
        .map_err(TrainError::io(&cfg_path))?;
    let device = cfg.device();
    let (data, roles) = load_run_data(cfg)?;
    if cfg.method == Method::Odm && data.train_ood.is_none() {
        return Err(TrainError::Config(
            "--method odm needs seen out-of-distribution training images (--seen-ood, beyond --calib-ood)".into(),
        ));
    }
    let k = data.classes.len();
    let mut vs = nn::VarStore::new(device);
    let classes = (cfg.method == Method::Ce).then_some(k as i64);
    let net = {
        // libtorch's generator is process-wide: seeding and drawing the initial weights must not interleave with
        // another training in the same process (parallel tests, an application training two models).
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = INIT.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(cfg.seed as i64);
        Net::new(&vs.root(), arch, cfg.input as i64, cfg.input as i64, cfg.embedding, classes)
    };
    let state_path = out.join("state.json");
    let ckpt = out.join("checkpoint.ot");
    let opt_path = out.join("optimizer.ot");
    let mut opt = Adam::new(&vs);
    let mut start = 0;
    if resume && ckpt.is_file() {
        let bad = |p: &Path, e: String| TrainError::Config(format!("--resume: {}: {e}", p.display()));
        let text = std::fs::read_to_string(&state_path).map_err(|e| bad(&state_path, e.to_string()))?;
        let st: State = serde_json::from_str(&text).map_err(|e| bad(&state_path, e.to_string()))?;
        vs.load(&ckpt).map_err(|e| bad(&ckpt, e.to_string()))?;
        opt.load(&opt_path, st.step as i64).map_err(|e| bad(&opt_path, e))?;
        start = st.step;
        eprintln!("odm-train: resuming at step {start} from {} (weights and Adam moments)", ckpt.display());
    }
    let mut by_class = vec![Vec::new(); k];
    for (i, &c) in data.train_in.y.iter().enumerate() {
        by_class[c as usize].push(i as i64);
    }
    let weights = PairWeights {
        same: cfg.same_pairs,
        in_out: if cfg.method == Method::Odm { cfg.in_out_pairs } else { 0.0 },
        mean: cfg.pair_mean,
    };
    let bar = if progress { ProgressBar::new(cfg.steps as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} eta {eta}").expect("template").progress_chars("=> "),
    );
    bar.set_position(start as u64);
    let log_path = out.join("log.jsonl");
    let mut log = String::new();
    let t0 = std::time::Instant::now();
    let mut ema = None::<f64>;
    for step in start..cfg.steps {
        // One generator per step: a resumed run draws the same batches as an uninterrupted one.
        let mut rng = Pcg64::seed_from_u64(cfg.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ step as u64);
        let (x, labels) = batch(&mut rng, &data, &by_class, cfg);
        let x = x.to_device(device);
        let e = net.embed_t(&x, true);
        let loss = match cfg.method {
            Method::Ce => {
                let logits = net.logits(&e).expect("CE net has a classifier");
                logits.cross_entropy_for_logits(&Tensor::from_slice(&labels).to_device(device))
            }
            _ => pair_loss(&e, &labels, cfg.margin, weights),
        };
        opt.backward_step(&loss, cfg.lr_schedule.rate(cfg.lr, step, cfg.steps));
        let l = loss.double_value(&[]);
        if !l.is_finite() {
            return Err(TrainError::Config(format!("the loss became {l} at step {step}: lower --lr")));
        }
        ema = Some(ema.map_or(l, |m| 0.98 * m + 0.02 * l));
        let done = step + 1 - start;
        let ips = (done * cfg.batch) as f64 / t0.elapsed().as_secs_f64();
        bar.set_message(format!("loss {:.3} {ips:.0} img/s", ema.unwrap_or(l)));
        bar.inc(1);
        if step % 50 == 0 || step + 1 == cfg.steps {
            log.push_str(&format!("{{\"step\":{step},\"loss\":{l},\"img_per_s\":{ips:.1}}}\n"));
        }
        if cfg.checkpoint_every > 0 && (step + 1) % cfg.checkpoint_every == 0 {
            vs.save(&ckpt).map_err(|e| TrainError::Config(format!("{}: {e}", ckpt.display())))?;
            opt.save(&opt_path).map_err(|e| TrainError::Config(format!("{}: {e}", opt_path.display())))?;
            std::fs::write(&state_path, format!("{{\"step\":{}}}\n", step + 1)).map_err(TrainError::io(&state_path))?;
        }
    }
    bar.finish_and_clear();
    std::fs::write(&log_path, log).map_err(TrainError::io(&log_path))?;
    let secs = t0.elapsed().as_secs_f64();
    let model = out.join("model.ot");
    vs.save(&model).map_err(|e| TrainError::Config(format!("{}: {e}", model.display())))?;
    vs.freeze();
    let bundle = write_bundle(cfg, &net, &data, &roles, out, device, secs)?;
    Ok(bundle)
}

/// Centres (mean training embedding per class), thresholds from validation, ONNX, bundle.
pub fn write_bundle(
    cfg: &TrainConfig,
    net: &Net,
    data: &RunData,
    roles: &split::ClassSplit,
    out: &Path,
    device: Device,
    train_secs: f64,
) -> Result<PathBuf, TrainError> {
    let k = data.classes.len();
    let e = embed_all(net, &data.train_in.x, device);
    let d = cfg.embedding as usize;
    let v = to_vec(&e);
    let mut centers = vec![vec![0f64; d]; k];
    let mut counts = vec![0usize; k];
    for (row, &c) in v.chunks_exact(d).zip(&data.train_in.y) {
        counts[c as usize] += 1;
        for (a, b) in centers[c as usize].iter_mut().zip(row) {
            *a += *b as f64;
        }
    }
    let centers: Vec<Vec<f32>> =
        centers.iter().zip(&counts).map(|(c, &n)| c.iter().map(|v| (v / n.max(1) as f64) as f32).collect()).collect();

    let onnx_name = format!("{}.onnx", cfg.name);
    let onnx_path = out.join(&onnx_name);
    std::fs::write(&onnx_path, super::export::onnx(net, &cfg.name, "input", "embedding"))
        .map_err(TrainError::io(&onnx_path))?;
    let sha256 = sha256_file(&onnx_path).map_err(TrainError::io(&onnx_path))?;
    let mut bundle = Bundle {
        format: FORMAT.into(),
        name: cfg.name.clone(),
        model: ModelSpec {
            file: onnx_name,
            sha256,
            input: InputSpec {
                name: "input".into(),
                width: cfg.input,
                height: cfg.input,
                color: ColorOrder::Rgb,
                mean: [0.5; 3],
                std: [0.25; 3],
                context: cfg.context,
            },
            output: OutputSpec { name: "embedding".into(), dim: d },
        },
        classes: data
            .classes
            .iter()
            .zip(&centers)
            .enumerate()
            .map(|(i, (label, center))| ClassEntry {
                id: i as i32,
                label: label.clone(),
                center: center.clone(),
                novelty_threshold: None,
                anomaly_threshold: None,
            })
            .collect(),
        score: ScoreSpec {
            kind: SCORE_KIND.into(),
            novelty_threshold: 1.0,
            anomaly_threshold: 1.0,
            calibration: Some(Calibration { set: "validation".into(), tpr: cfg.tpr }),
        },
        training: serde_json::json!({
            "config": cfg,
            "split": roles,
            "calib_ood": data.calib_ood,
            "train_seconds": train_secs,
            "generator": std::fs::read_to_string(cfg.data.join(crate::synth::MANIFEST)).ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|m| m.get("generator").cloned()),
            "odm_train": env!("CARGO_PKG_VERSION"),
        }),
        metrics: serde_json::Value::Null,
    };
    let t = calibrate(cfg, net, data, &Scorer::new(&bundle), device)?;
    bundle.score.novelty_threshold = t.novelty;
    bundle.score.anomaly_threshold = t.anomaly;
    for (class, per) in bundle.classes.iter_mut().zip(&t.per_class) {
        (class.novelty_threshold, class.anomaly_threshold) = (per.map(|p| p.0), per.map(|p| p.1));
    }
    let path = out.join(format!("{}.odm.json", cfg.name));
    bundle.save(&path)?;
    Ok(path)
}

/// Fewest validation crops a class needs for its own novelty threshold; classes with fewer use the global one.
pub const PER_CLASS_MIN: usize = 30;

/// Calibrated thresholds: global, and per class where a class has enough validation crops.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    pub novelty: f64,
    pub anomaly: f64,
    /// Per class (bundle order): (novelty, anomaly), `None` below [`PER_CLASS_MIN`] crops.
    pub per_class: Vec<Option<(f64, f64)>>,
}

/// Novelty threshold: the target TPR of in-distribution validation distances, over all of them and per nearest class.
/// Anomaly threshold: the distance that best separates the calibration novelties (held-out seen OOD classes) from
/// validation anomalies (balanced error), never below the novelty threshold; without anomaly data, the 99th
/// percentile of the novelties. A class's anomaly threshold is the global one, raised to its novelty threshold.
pub fn calibrate(
    cfg: &TrainConfig,
    net: &Net,
    data: &RunData,
    scorer: &Scorer,
    device: Device,
) -> Result<Thresholds, TrainError> {
    let bad = |e: odm_core::MetricsError| TrainError::Config(format!("calibration: {e}"));
    let val = distances(scorer, &embed_all(net, &data.val_in.x, device));
    let val_in: Vec<f64> = val.iter().map(|p| p.1).collect();
    let nov = threshold_at_tpr(&val_in, cfg.tpr).map_err(bad)?;
    let novelties: Vec<f64> = match &data.val_ood {
        Some(t) if !t.y.is_empty() => distances(scorer, &embed_all(net, &t.x, device)).iter().map(|p| p.1).collect(),
        _ => val_in.clone(),
    };
    let anomalies: Vec<f64> = data
        .val_anomaly
        .iter()
        .flat_map(|(_, t)| {
            distances(scorer, &embed_all(net, &t.x, device)).into_iter().map(|p| p.1).collect::<Vec<_>>()
        })
        .collect();
    let median = |v: &[f64]| {
        let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        s.sort_by(f64::total_cmp);
        s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
    };
    if !anomalies.is_empty() && median(&anomalies) < median(&novelties) {
        eprintln!(
            "odm-train: warning: validation anomalies lie closer to the class centres than the calibration novelties \
             (median {:.2} < {:.2}): the distance cannot tell novelties from anomalies here, so the anomaly threshold \
             falls to the novelty threshold and every unknown crop is reported as an anomaly",
            median(&anomalies),
            median(&novelties)
        );
    }
    let ano = if anomalies.is_empty() {
        threshold_at_tpr(&novelties, 0.99).map_err(bad)?
    } else {
        let mut cands: Vec<f64> = novelties.iter().chain(&anomalies).copied().filter(|v| v.is_finite()).collect();
        cands.sort_by(f64::total_cmp);
        let err = |t: f64| {
            0.5 * novelties.iter().filter(|&&v| v > t).count() as f64 / novelties.len() as f64
                + 0.5 * anomalies.iter().filter(|&&v| v <= t).count() as f64 / anomalies.len() as f64
        };
        cands.iter().copied().min_by(|a, b| err(*a).total_cmp(&err(*b))).unwrap_or(nov)
    }
    .max(nov);
    let mut by_class = vec![Vec::new(); scorer.num_classes()];
    for &(k, d) in &val {
        if let Some(v) = by_class.get_mut(k) {
            v.push(d);
        }
    }
    let per_class = by_class
        .iter()
        .map(|d| {
            if d.len() < PER_CLASS_MIN {
                return Ok(None);
            }
            let n = threshold_at_tpr(d, cfg.tpr).map_err(bad)?;
            Ok(Some((n, ano.max(n))))
        })
        .collect::<Result<_, TrainError>>()?;
    Ok(Thresholds { novelty: nov, anomaly: ano, per_class })
}

/// `odm-train centers`: new centres and thresholds for a trained network from another class-per-folder dataset
/// (`data/train/<class>/`), without retraining — also how a new sign class is enrolled from a few dozen crops.
/// Writes `NAME.onnx` (the same network) and `NAME.odm.json` into `out`.
pub fn centers(
    run: &Path,
    data_root: &Path,
    in_dist: Vec<String>,
    seen_ood: Vec<String>,
    anomaly_dirs: Vec<PathBuf>,
    out: &Path,
) -> Result<PathBuf, TrainError> {
    let (cfg, _vs, net, _bundle, _) = super::eval::load_net(run)?;
    let mut in_dist = in_dist;
    if in_dist.is_empty() {
        let d = data::load(&data_root.join("train"), Format::Folder)?;
        in_dist = d.classes.into_iter().filter(|c| !seen_ood.contains(c)).collect();
    }
    let cfg2 =
        TrainConfig { data: data_root.to_owned(), in_dist, seen_ood, unseen_ood: Vec::new(), anomaly_dirs, ..cfg };
    let (data, roles) = load_run_data(&cfg2)?;
    std::fs::create_dir_all(out).map_err(TrainError::io(out))?;
    write_bundle(&cfg2, &net, &data, &roles, out, Device::Cpu, 0.0)
}

/// `odm-train export`: write a run's network as ONNX with its bundle (centres, labels and thresholds of the run's
/// bundle) into `out`, under `name` (default: the run's). The ONNX bytes are deterministic for the same weights.
pub fn export(run: &Path, out: &Path, name: Option<String>) -> Result<PathBuf, TrainError> {
    let (cfg, _vs, net, mut bundle, _) = super::eval::load_net(run)?;
    let name = name.unwrap_or(cfg.name.clone());
    std::fs::create_dir_all(out).map_err(TrainError::io(out))?;
    let onnx_name = format!("{name}.onnx");
    let onnx_path = out.join(&onnx_name);
    std::fs::write(&onnx_path, super::export::onnx(&net, &name, "input", "embedding"))
        .map_err(TrainError::io(&onnx_path))?;
    bundle.name = name.clone();
    bundle.model.file = onnx_name;
    bundle.model.sha256 = sha256_file(&onnx_path).map_err(TrainError::io(&onnx_path))?;
    let path = out.join(format!("{name}.odm.json"));
    bundle.save(&path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_rate_falls_from_lr_to_zero_and_constant_stays() {
        let cos = |step| LrSchedule::Cosine.rate(1e-3, step, 100);
        assert_eq!(cos(0), 1e-3);
        assert!((cos(50) - 5e-4).abs() < 1e-12, "{}", cos(50));
        assert!(cos(99) > 0.0 && cos(99) < 1e-6, "{}", cos(99));
        assert!((0..99).all(|s| cos(s + 1) < cos(s)), "the cosine rate must fall at every step");
        assert!((0..100).all(|s| LrSchedule::Constant.rate(1e-3, s, 100) == 1e-3));
    }

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
