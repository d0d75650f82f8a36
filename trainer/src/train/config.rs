// SPDX-License-Identifier: MIT OR Apache-2.0
//! The configuration of a training run: method, network, data roles, loss and optimiser settings. Saved as the run
//! folder's `config.json`, so every result can be reproduced from it.

use std::path::{Path, PathBuf};

use odm_core::bundle::{ColorOrder, InputSpec};
use odm_core::preprocess::{CropSpec, Normalize};
use serde::{Deserialize, Serialize};
use tch::Device;

use super::loss::PairMean;
use super::model::Arch;
use crate::error::TrainError;

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

/// The part of a [`crate::synth::protocol::Protocol`] that is not the three class lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolInfo {
    pub region: String,
    pub rule: String,
    pub seed: u64,
    pub aside: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Dataset root holding `train/` and `test/` class-per-folder trees.
    pub data: PathBuf,
    pub in_dist: Vec<String>,
    pub seen_ood: Vec<String>,
    pub unseen_ood: Vec<String>,
    /// How the three lists were chosen, when `odm-train protocol` wrote them: region, rule, seed, and the designs
    /// set aside (other variants of known signs, in no role).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ProtocolInfo>,
    /// Seen OOD classes held out of training: the novelty side of the anomaly-threshold calibration. Empty: for
    /// ODM a fifth of the seen OOD classes (at least one) when there are three or more, else none.
    pub calib_ood: Vec<String>,
    /// Class-per-folder trees of anomalies, each one set named after its folder: calibration and evaluation only,
    /// never trained on (reported as `NAME (unseen)`).
    pub anomaly_dirs: Vec<PathBuf>,
    /// Class-per-folder trees of anomalies mined as seen OOD data (ODM, Eq. 2, used without labels): their training
    /// part fills [`TrainConfig::anomaly_share`] of the OOD slots, a calibration part and a held-out test part
    /// (`NAME (seen)`) are kept apart.
    pub seen_anomaly_dirs: Vec<PathBuf>,
    /// Class-per-folder trees of sign-like unknowns (rendered by `synth`: numerals no class has, random pictograms
    /// in sign shapes) mined as seen OOD data like the seen anomalies, filling [`TrainConfig::novelty_share`] of
    /// the OOD slots. Reported as `NAME (seen)` beside the novelty sets.
    pub seen_novelty_dirs: Vec<PathBuf>,
    /// Share of the OOD slots taken from `seen_anomaly_dirs` (when there are any).
    pub anomaly_share: f64,
    /// Share of the OOD slots taken from `seen_novelty_dirs` (when there are any).
    pub novelty_share: f64,
    /// Margin for the in/out pairs of mined sign-like unknowns; 0 means `margin`. Smaller than the margin, it asks
    /// for three rings: known signs near their centres, unknown signs beyond this margin, anomalies beyond `margin`.
    pub novelty_margin: f64,
    /// Weight of a cross-entropy head on the embedding (the paper's two-headed network: shared trunk, contrastive
    /// head, classification head); 0 for none. Metric-learning methods only.
    pub ce_weight: f64,
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
    /// The network's input as its bundle states it, for a network odm did not train (`odm-train bundle --onnx`):
    /// size, channel order, normalisation, context. None: odm's own (`input` x `input`, RGB, mean 0.5, std 0.25,
    /// `context`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_spec: Option<InputSpec>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            data: PathBuf::new(),
            in_dist: Vec::new(),
            seen_ood: Vec::new(),
            unseen_ood: Vec::new(),
            protocol: None,
            calib_ood: Vec::new(),
            anomaly_dirs: Vec::new(),
            seen_anomaly_dirs: Vec::new(),
            seen_novelty_dirs: Vec::new(),
            anomaly_share: 0.25,
            novelty_share: 0.25,
            novelty_margin: 0.0,
            ce_weight: 0.0,
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
            input_spec: None,
        }
    }
}

impl TrainConfig {
    /// A config file: JSON with any of the fields (the rest take their defaults); unknown fields are refused.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(TrainError::io(path))?;
        // Field errors name the field's path and the expected kind in words (`steps`: expected a whole number).
        odm_core::bundle::parse_json(&text, path).map_err(|e| TrainError::Config(e.to_string()))
    }

    pub fn validate(&self) -> Result<Arch, TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        let arch: Arch = self.arch.parse().map_err(TrainError::Config)?;
        if !matches!(self.device.as_str(), "cpu" | "cuda") {
            return bad(format!("--device must be cpu or cuda, got \"{}\"", self.device));
        }
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
        for (flag, v) in [("--anomaly-share", self.anomaly_share), ("--novelty-share", self.novelty_share)] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{flag} must be in [0, 1], got {v}"));
            }
        }
        let shares = self.permuted_ood
            + if self.seen_anomaly_dirs.is_empty() { 0.0 } else { self.anomaly_share }
            + if self.seen_novelty_dirs.is_empty() { 0.0 } else { self.novelty_share };
        if shares > 1.0 + 1e-9 {
            return bad(format!(
                "--permuted-ood ({}), --anomaly-share ({}) and --novelty-share ({}) share the OOD slots: together they \
                 must be at most 1",
                self.permuted_ood, self.anomaly_share, self.novelty_share
            ));
        }
        if !(self.novelty_margin >= 0.0 && self.novelty_margin.is_finite()) {
            return bad(format!("--novelty-margin must be 0 (the margin) or positive, got {}", self.novelty_margin));
        }
        if !(self.ce_weight >= 0.0 && self.ce_weight.is_finite()) {
            return bad(format!("--ce-weight must be non-negative, got {}", self.ce_weight));
        }
        if self.ce_weight > 0.0 && self.method == Method::Ce {
            return bad("--ce-weight adds a cross-entropy head to a metric-learning method; --method ce has one".into());
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
        if let Some(i) = &self.input_spec {
            return CropSpec::from_input(i);
        }
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
            // validate() admits cpu and cuda only.
            _ => Device::Cpu,
        }
    }

    /// Whether the network has a classification head: the CE baseline, or a two-headed metric-learning network.
    pub fn has_classifier(&self) -> bool {
        self.method == Method::Ce || self.ce_weight > 0.0
    }

    /// `--calib-ood none`: no seen OOD class is held out for calibration.
    pub fn no_calibration_classes(&self) -> bool {
        self.calib_ood.len() == 1 && self.calib_ood[0] == "none"
    }
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
}
