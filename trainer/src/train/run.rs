// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train train`: load the data, train, compute centres and thresholds, export the bundle.
//!
//! Run folder (`--out`): `config.json` (everything needed to reproduce the run), `model.ot` (tch weights),
//! `checkpoint.ot` + `optimizer.ot` + `state.json` while training (resumable: weights, Adam moments, step),
//! `NAME.onnx` + `NAME.odm.json` (the bundle), `log.jsonl`.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::adam::Adam;
use super::config::{Method, TrainConfig};
use super::loss::{pair_loss_margins, PairWeights};
use super::model::Net;
use super::rundata::load_run_data;
use super::sampling::batch;
use crate::error::TrainError;
use crate::export::bundle::write_bundle;
use crate::progress::Progress;

#[derive(Debug, Serialize, Deserialize, Default)]
struct State {
    step: usize,
}

/// What `train` does with a run folder that already holds a run (its `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse: the folder would mix two runs (the default).
    Refuse,
    /// Continue it from its checkpoint (`--resume`).
    Resume,
    /// Remove the earlier run's files first (`--force`).
    Replace,
}

/// Files a run writes beside its bundle (`NAME.onnx`, `NAME.odm.json`) and its metrics (`metrics*.json|md`).
const RUN_FILES: &[&str] =
    &["config.json", "state.json", "checkpoint.ot", "optimizer.ot", "log.jsonl", "model.ot", "pca.png", "roc.png"];

/// Whether a file name is one a run writes.
fn is_run_file(name: &str) -> bool {
    RUN_FILES.contains(&name)
        || name.ends_with(".onnx")
        || name.ends_with(".odm.json")
        || (name.starts_with("metrics") && (name.ends_with(".json") || name.ends_with(".md")))
}

/// Make `out` ready for a run: created if missing; an earlier run there is refused, resumed or replaced.
fn prepare_out(out: &Path, existing: Existing) -> Result<(), TrainError> {
    if out.join("config.json").is_file() {
        match existing {
            Existing::Refuse => {
                return Err(TrainError::Config(format!(
                    "{} already holds a run (config.json): --resume continues it, --force replaces it, or choose \
                     another --out (training into it would mix two runs)",
                    out.display()
                )))
            }
            Existing::Resume => {}
            Existing::Replace => {
                let entries = std::fs::read_dir(out).map_err(TrainError::io(out))?;
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if e.path().is_file() && is_run_file(&name) {
                        std::fs::remove_file(e.path()).map_err(TrainError::io(&e.path()))?;
                    }
                }
                eprintln!("odm-train: --force: removed the earlier run's files from {}", out.display());
            }
        }
    }
    std::fs::create_dir_all(out).map_err(TrainError::io(out))
}

/// `--resume`: the run already in `out` (its `config.json`), refused by name when there is none to continue, when it
/// saved no checkpoint, or when `cfg` would build another network or write another bundle than it did.
fn check_resume(cfg: &TrainConfig, out: &Path) -> Result<(), TrainError> {
    let saved_path = out.join("config.json");
    if !saved_path.is_file() {
        return Err(TrainError::Config(format!(
            "--resume: {} holds no run to continue (no config.json): leave out --resume to start one there",
            out.display()
        )));
    }
    let saved = TrainConfig::load(&saved_path)?;
    let mut differ = Vec::new();
    let mut same = |flag: &str, was: String, now: String| {
        if was != now {
            differ.push(format!("{flag} {was} (this run: {now})"));
        }
    };
    // What shapes the weights (a checkpoint of another network cannot be loaded) and what names the files.
    same("--arch", saved.arch.clone(), cfg.arch.clone());
    same("--input", saved.input.to_string(), cfg.input.to_string());
    same("--embedding", saved.embedding.to_string(), cfg.embedding.to_string());
    same("--method", format!("{:?}", saved.method).to_lowercase(), format!("{:?}", cfg.method).to_lowercase());
    same("classification head (--ce-weight > 0)", saved.has_classifier().to_string(), cfg.has_classifier().to_string());
    if saved.has_classifier() {
        same("--in (classes of the head)", saved.in_dist.len().to_string(), cfg.in_dist.len().to_string());
    }
    same("--name", saved.name.clone(), cfg.name.clone());
    if !differ.is_empty() {
        return Err(TrainError::Config(format!(
            "--resume: the run in {} was trained with {}: a resumed run keeps its network and its name (leave these              flags out, or use --force to start another run there)",
            out.display(),
            differ.join(", ")
        )));
    }
    if !out.join("checkpoint.ot").is_file() {
        return Err(TrainError::Config(format!(
            "--resume: {} holds no checkpoint.ot (the run saved none: --checkpoint-every {}): nothing to continue              from; --force starts it again",
            out.display(),
            saved.checkpoint_every
        )));
    }
    Ok(())
}

/// The lines of an earlier `log.jsonl` for the steps before `start` (a resumed run logs the steps it runs again).
fn earlier_log(path: &Path, start: usize) -> Result<String, TrainError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(TrainError::io(path)(e)),
    };
    let mut kept = String::new();
    for line in text.lines() {
        let step = serde_json::from_str::<serde_json::Value>(line).ok().and_then(|v| v["step"].as_u64());
        if step.is_some_and(|s| (s as usize) < start) {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    Ok(kept)
}

/// Train and write the run folder; returns the bundle path.
pub fn train(cfg: &TrainConfig, out: &Path, progress: bool, existing: Existing) -> Result<PathBuf, TrainError> {
    let arch = cfg.validate()?;
    let resume = existing == Existing::Resume;
    if resume {
        check_resume(cfg, out)?;
    }
    let device = cfg.device();
    let (data, roles) = load_run_data(cfg)?;
    if cfg.method == Method::Odm
        && data.train_ood.is_none()
        && data.train_anomaly.is_none()
        && data.train_novelty.is_none()
    {
        return Err(TrainError::Config(
            "--method odm needs seen out-of-distribution training images (--seen-ood beyond --calib-ood, \
             --seen-anomaly-dir or --seen-novelty-dir)"
                .into(),
        ));
    }
    // The folder is touched only once the configuration and the data are good: a refused run leaves nothing.
    prepare_out(out, existing)?;
    let cfg_path = out.join("config.json");
    std::fs::write(&cfg_path, serde_json::to_string_pretty(cfg).expect("config serialises") + "\n")
        .map_err(TrainError::io(&cfg_path))?;
    let k = data.classes.len();
    let mut vs = nn::VarStore::new(device);
    let classes = cfg.has_classifier().then_some(k as i64);
    let net = super::model::with_torch_rng(Some(cfg.seed as i64), || {
        Net::new(&vs.root(), arch, cfg.input as i64, cfg.input as i64, cfg.embedding, classes)
    });
    let state_path = out.join("state.json");
    let ckpt = out.join("checkpoint.ot");
    let opt_path = out.join("optimizer.ot");
    let mut opt = Adam::new(&vs);
    let mut start = 0;
    if resume {
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
    let bar = Progress::new(progress, "train", cfg.steps as u64, "{msg} [{bar:30}] {pos}/{len} eta {eta}");
    bar.set_position(start as u64);
    let log_path = out.join("log.jsonl");
    let mut log = if resume { earlier_log(&log_path, start)? } else { String::new() };
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
            _ => {
                let novelty_margin = if cfg.novelty_margin > 0.0 { cfg.novelty_margin } else { cfg.margin };
                let metric = pair_loss_margins(&e, &labels, cfg.margin, novelty_margin, weights);
                if cfg.ce_weight > 0.0 {
                    // The classification head sees the in-distribution samples of the batch (they come first).
                    let n_in = labels.iter().take_while(|&&l| l >= 0).count() as i64;
                    let logits = net.logits(&e.narrow(0, 0, n_in)).expect("two-headed net has a classifier");
                    let y = Tensor::from_slice(&labels[..n_in as usize]).to_device(device);
                    metric + logits.cross_entropy_for_logits(&y) * cfg.ce_weight
                } else {
                    metric
                }
            }
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
        bar.inc();
        if step % 50 == 0 || step + 1 == cfg.steps {
            log.push_str(&format!("{{\"step\":{step},\"loss\":{l},\"img_per_s\":{ips:.1}}}\n"));
        }
        if cfg.checkpoint_every > 0 && (step + 1) % cfg.checkpoint_every == 0 {
            vs.save(&ckpt).map_err(|e| TrainError::Config(format!("{}: {e}", ckpt.display())))?;
            opt.save(&opt_path).map_err(|e| TrainError::Config(format!("{}: {e}", opt_path.display())))?;
            std::fs::write(&state_path, format!("{{\"step\":{}}}\n", step + 1)).map_err(TrainError::io(&state_path))?;
        }
    }
    bar.finish();
    std::fs::write(&log_path, log).map_err(TrainError::io(&log_path))?;
    let secs = t0.elapsed().as_secs_f64();
    let model = out.join("model.ot");
    vs.save(&model).map_err(|e| TrainError::Config(format!("{}: {e}", model.display())))?;
    vs.freeze();
    let bundle = write_bundle(cfg, &net, &data, &roles, out, device, secs)?;
    Ok(bundle)
}
