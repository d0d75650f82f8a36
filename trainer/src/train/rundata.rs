// SPDX-License-Identifier: MIT OR Apache-2.0
//! The data of a run: class roles, per-class train/validation splits, anomaly and mined sets, decoded into tensors
//! through odm-core's preprocessing (the plugin's code).

use std::path::Path;

use odm_core::preprocess::CropSpec;
use rand::seq::IndexedRandom;
use rand::SeedableRng;
use rand_pcg::Pcg64;
use tch::Tensor;

use super::config::{Method, TrainConfig};
use super::loss::OOD;
use crate::data::{self, split, Dataset, Format};
use crate::error::{DataError, TrainError};

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
    /// Training parts of the mined anomaly trees (`--seen-anomaly-dir`), all together.
    pub train_anomaly: Option<Tensors>,
    /// Training parts of the mined sign-like unknowns (`--seen-novelty-dir`), all together.
    pub train_novelty: Option<Tensors>,
    pub val_in: Tensors,
    /// The novelty side of the anomaly-threshold calibration: every image of the held-out calibration classes,
    /// plus the validation part of the seen OOD classes a method did not train on.
    pub val_ood: Option<Tensors>,
    /// How many of `val_ood`'s first rows are images of the held-out calibration classes (`calib_ood`); the rest,
    /// if any, are validation images of seen OOD classes the method did not train on but the run knows of.
    pub val_ood_held_out: usize,
    /// The seen OOD classes held out of training for calibration.
    pub calib_ood: Vec<String>,
    /// The anomaly side of the calibration: the calibration part of every anomaly tree, mined or not, by set name.
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
    load_parts(cfg, true)
}

/// [`load_run_data`] without decoding what only training needs: `val_in`, `val_ood` and `val_anomaly` as
/// `train` calibrates on them (the same split, seed and calibration classes); `train_in` empty, no other
/// training part. For calibrating an exported bundle again without the whole training set in memory.
pub fn load_validation_data(cfg: &TrainConfig) -> Result<RunData, TrainError> {
    load_parts(cfg, false).map(|(d, _)| d)
}

fn load_parts(cfg: &TrainConfig, training: bool) -> Result<(RunData, split::ClassSplit), TrainError> {
    // Only the indices of the training parts are decoded when `training` is false.
    let keep = |idx: Vec<usize>| if training { idx } else { Vec::new() };
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
    let train_in = decode(&train, &keep(tr), &spec, &in_index)?;
    let val_in = decode(&train, &va, &spec, &in_index)?;
    let calib_ood = calibration_classes(cfg, &roles)?;
    let trained_ood: Vec<String> = roles.seen_ood.iter().filter(|c| !calib_ood.contains(c)).cloned().collect();
    let (tr, va) = pick(&train, &trained_ood, cfg.val_fraction, cfg.seed)?;
    let tr = keep(tr);
    let train_ood = (!tr.is_empty()).then(|| decode(&train, &tr, &spec, &|_| OOD)).transpose()?;
    let mut novel: Vec<usize> =
        (0..train.samples.len()).filter(|&i| calib_ood.contains(&train.classes[train.samples[i].class])).collect();
    let val_ood_held_out = novel.len();
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
        let d = load_tree(dir, "--anomaly-dir")?;
        let (_, va) = anomaly_split(&d, cfg)?;
        val_anomaly.push((set_name(dir), decode(&d, &va, &spec, &|_| OOD)?));
    }
    let mut mined = |dirs: &[std::path::PathBuf], flag: &str, calibrate: bool| -> Result<Option<Tensors>, TrainError> {
        let mut parts = Vec::new();
        for dir in dirs {
            let d = load_tree(dir, flag)?;
            let s = mined_split(&d, cfg)?;
            if s.train.is_empty() {
                return Err(TrainError::Config(format!("{flag} {}: no image left for training", dir.display())));
            }
            if training {
                parts.push(decode(&d, &s.train, &spec, &|_| OOD)?.x);
            }
            if calibrate {
                val_anomaly.push((set_name(dir), decode(&d, &s.val, &spec, &|_| OOD)?));
            }
        }
        Ok((!parts.is_empty()).then(|| {
            let x = Tensor::cat(&parts, 0);
            Tensors { y: vec![OOD; x.size()[0] as usize], x }
        }))
    };
    let train_anomaly = mined(&cfg.seen_anomaly_dirs, "--seen-anomaly-dir", true)?;
    let train_novelty = mined(&cfg.seen_novelty_dirs, "--seen-novelty-dir", false)?;
    Ok((
        RunData {
            classes: roles.in_dist.clone(),
            train_in,
            train_ood,
            train_anomaly,
            train_novelty,
            val_in,
            val_ood,
            val_ood_held_out,
            calib_ood,
            val_anomaly,
        },
        roles,
    ))
}

/// A class-per-folder tree given by `flag`, refused clearly when it is missing or holds no image.
pub fn load_tree(dir: &Path, flag: &str) -> Result<Dataset, TrainError> {
    if !dir.is_dir() {
        return Err(TrainError::Config(format!("{flag} {}: no such folder", dir.display())));
    }
    let d = data::load(dir, Format::Folder).map_err(|e| TrainError::Config(format!("{flag}: {e}")))?;
    if d.samples.is_empty() {
        return Err(TrainError::Config(format!("{flag} {}: the folder holds no image", dir.display())));
    }
    Ok(d)
}

/// A mined tree's share for its test set (`NAME (seen)`), kept out of training and calibration.
pub const MINED_TEST_FRACTION: f64 = 0.2;

/// A mined tree (`--seen-anomaly-dir`, `--seen-novelty-dir`) split per class into training, calibration (the
/// validation fraction, at least 5%) and test ([`MINED_TEST_FRACTION`]) samples.
pub fn mined_split(d: &Dataset, cfg: &TrainConfig) -> Result<split::SampleSplit, TrainError> {
    let v = cfg.val_fraction.max(0.05);
    Ok(split::per_class(d, [1.0 - v - MINED_TEST_FRACTION, v, MINED_TEST_FRACTION], cfg.seed ^ 0x6d696e6564)?)
}

/// The calibration classes: `--calib-ood` (each must be a seen OOD class), or for ODM with three or more seen OOD
/// classes a seeded fifth of them (at least one); otherwise none.
pub fn calibration_classes(cfg: &TrainConfig, roles: &split::ClassSplit) -> Result<Vec<String>, TrainError> {
    if cfg.no_calibration_classes() {
        return Ok(Vec::new());
    }
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
