// SPDX-License-Identifier: MIT OR Apache-2.0
//! The test sets of a run, decoded from the split its bundle stores: in-distribution test images, `novelty`,
//! `seen-novelty`, the held-out parts of the mined and anomaly trees, `noise`.

use std::path::PathBuf;

use odm_core::preprocess::CropSpec;
use odm_core::Bundle;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rand_pcg::Pcg64;
use tch::Tensor;

use crate::data::{self, split, Format};
use crate::error::TrainError;
use crate::train::config::{Method, TrainConfig};
use crate::train::rundata::{anomaly_split, decode, load_tree, mined_split, set_name, Tensors};

/// What a test set holds, for the confusion matrix and the novelty-vs-anomaly AUROC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// Unknown signs never trained on (`novelty`).
    Novelty,
    /// Signs of a kind ODM was shown as OOD (seen OOD classes, mined sign-like unknowns).
    SeenNovelty,
    /// Not a sign: background, photos, noise, mined or not.
    Anomaly,
}

/// Gaussian noise inputs of `spec`'s size (pixels N(0.5, 0.2), the same in the three channels when `gray`),
/// normalised like every input.
pub fn noise_images(n: usize, spec: &CropSpec, seed: u64, gray: bool) -> Tensor {
    let mut rng = Pcg64::seed_from_u64(seed ^ 0x6e6f697365);
    let dist = Normal::new(0.5f32, 0.2).expect("valid normal");
    let planes = if gray { 1 } else { 3 };
    let (h, w) = (spec.height as i64, spec.width as i64);
    let v: Vec<f32> = (0..n * planes * (h * w) as usize).map(|_| dist.sample(&mut rng).clamp(0.0, 1.0)).collect();
    let x = Tensor::from_slice(&v).view([n as i64, planes as i64, h, w]).expand([n as i64, 3, h, w], false);
    let norm = spec.norm;
    let mean = Tensor::from_slice(&norm.mean).view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&norm.std).view([1, 3, 1, 1]);
    ((x - mean) / std).contiguous()
}

/// The test data of a run: in-distribution test images (labelled by bundle class) and every out-of-distribution set
/// by name: `novelty` (unseen classes), `seen-novelty` (seen OOD classes ODM trained on), each anomaly folder (the
/// part calibration did not use) and `noise`.
pub struct TestSets {
    pub inside: Tensors,
    pub sets: Vec<(String, SetKind, Tensor)>,
    /// The design (class folder) of each image of the `novelty` set, in its order.
    pub novelty_classes: Vec<String>,
    /// The longer side of each in-distribution and each `novelty` test crop, in their orders (for the rows by size).
    pub inside_sizes: Vec<u32>,
    pub novelty_sizes: Vec<u32>,
}

/// Build a run's [`TestSets`] from the split stored in its bundle; `cap` keeps about that many images of each
/// out-of-distribution set (four times as many in-distribution), evenly spaced (for figures).
pub fn test_sets(
    cfg: &TrainConfig,
    bundle: &Bundle,
    noise: usize,
    cap: Option<usize>,
    extra_anomaly_dirs: &[PathBuf],
) -> Result<TestSets, TrainError> {
    let spec = cfg.crop_spec();
    let test = data::load(&cfg.data.join("test"), Format::Folder)?;
    let roles: split::ClassSplit = serde_json::from_value(bundle.training["split"].clone())
        .map_err(|e| TrainError::Config(format!("bundle {:?}: training.split: {e}", bundle.name)))?;
    let thin = |v: Vec<usize>, n: Option<usize>| match n {
        Some(n) => {
            let step = v.len().div_ceil(n.max(1)).max(1);
            v.into_iter().step_by(step).collect()
        }
        None => v,
    };
    let of = |names: &[String], n: Option<usize>| -> Vec<usize> {
        thin((0..test.samples.len()).filter(|&i| names.contains(&test.classes[test.samples[i].class])).collect(), n)
    };
    let label_of = |k: usize| roles.in_dist.iter().position(|c| *c == test.classes[k]).map_or(-1, |p| p as i64);
    let sides = |idx: &[usize]| -> Result<Vec<u32>, TrainError> {
        idx.iter().map(|&i| test.longer_side(i).map_err(TrainError::from)).collect()
    };
    let in_idx = of(&roles.in_dist, cap.map(|c| c * 4));
    let inside_sizes = sides(&in_idx)?;
    let in_t = decode(&test, &in_idx, &spec, &label_of)?;
    if in_t.y.is_empty() {
        return Err(TrainError::Config(format!(
            "{}: no test image of an in-distribution class",
            cfg.data.join("test").display()
        )));
    }
    // Calibration classes were held out of training and tuned the anomaly threshold: in no test set.
    let calib: Vec<String> = serde_json::from_value(bundle.training["calib_ood"].clone()).unwrap_or_default();
    let seen: Vec<String> = roles.seen_ood.iter().filter(|c| !calib.contains(c)).cloned().collect();
    let mut sets: Vec<(String, SetKind, Tensor)> = Vec::new();
    let mut novelty_classes = Vec::new();
    let mut novelty_sizes = Vec::new();
    for (name, kind, names) in
        [("novelty", SetKind::Novelty, &roles.unseen_ood), ("seen-novelty", SetKind::SeenNovelty, &seen)]
    {
        let idx = of(names, cap);
        if kind == SetKind::Novelty {
            novelty_classes = idx.iter().map(|&i| test.classes[test.samples[i].class].clone()).collect();
            novelty_sizes = sides(&idx)?;
        }
        if !idx.is_empty() {
            sets.push((name.to_owned(), kind, decode(&test, &idx, &spec, &|_| -1)?.x));
        }
    }
    // Mined trees: their held-out test part. "Seen" only where training saw them (ODM).
    let tag = if cfg.method == Method::Odm { "seen" } else { "unseen" };
    for (dirs, flag, kind) in [
        (&cfg.seen_anomaly_dirs, "--seen-anomaly-dir", SetKind::Anomaly),
        (&cfg.seen_novelty_dirs, "--seen-novelty-dir", SetKind::SeenNovelty),
    ] {
        for dir in dirs {
            let d = load_tree(dir, flag)?;
            let idx = mined_split(&d, cfg)?.test;
            sets.push((format!("{} ({tag})", set_name(dir)), kind, decode(&d, &thin(idx, cap), &spec, &|_| -1)?.x));
        }
    }
    for dir in &cfg.anomaly_dirs {
        let d = load_tree(dir, "--anomaly-dir")?;
        // The part calibration did not see.
        let (idx, _) = anomaly_split(&d, cfg)?;
        sets.push((
            format!("{} (unseen)", set_name(dir)),
            SetKind::Anomaly,
            decode(&d, &thin(idx, cap), &spec, &|_| -1)?.x,
        ));
    }
    for dir in extra_anomaly_dirs {
        // Evaluation only: neither training nor calibration saw any of it.
        let d = load_tree(dir, "eval --anomaly-dir")?;
        let idx: Vec<usize> = (0..d.samples.len()).collect();
        sets.push((
            format!("{} (unseen)", set_name(dir)),
            SetKind::Anomaly,
            decode(&d, &thin(idx, cap), &spec, &|_| -1)?.x,
        ));
    }
    if noise > 0 {
        // Noise in the data's own form: grey when every test image is grey (the paper's MNIST noise), else colour.
        let x = &in_t.x;
        let gray = (x.select(1, 0) - x.select(1, 1)).abs().max().double_value(&[]) == 0.0
            && (x.select(1, 1) - x.select(1, 2)).abs().max().double_value(&[]) == 0.0;
        sets.push(("noise".into(), SetKind::Anomaly, noise_images(noise, &spec, cfg.seed, gray)));
    }
    Ok(TestSets { inside: in_t, sets, novelty_classes, inside_sizes, novelty_sizes })
}

/// The training images of a run's seen out-of-distribution designs (those ODM trained on, not the calibration
/// ones), with their design names; None when the run has none or its labels are no taxonomy names.
pub fn seen_training_images(cfg: &TrainConfig, bundle: &Bundle) -> Result<Option<(Vec<String>, Tensor)>, TrainError> {
    let roles: split::ClassSplit = match serde_json::from_value(bundle.training["split"].clone()) {
        Ok(r) => r,
        Err(_) => return Ok(None),
    };
    let calib: Vec<String> = serde_json::from_value(bundle.training["calib_ood"].clone()).unwrap_or_default();
    let seen: Vec<&String> =
        roles.seen_ood.iter().filter(|c| !calib.contains(c) && odm_core::taxonomy::category_of(c).is_some()).collect();
    let root = cfg.data.join("train");
    if seen.is_empty() || !root.is_dir() {
        return Ok(None);
    }
    let train = data::load(&root, Format::Folder)?;
    let idx: Vec<usize> =
        (0..train.samples.len()).filter(|&i| seen.contains(&&train.classes[train.samples[i].class])).collect();
    if idx.is_empty() {
        return Ok(None);
    }
    let names = idx.iter().map(|&i| train.classes[train.samples[i].class].clone()).collect();
    Ok(Some((names, decode(&train, &idx, &cfg.crop_spec(), &|_| -1)?.x)))
}
