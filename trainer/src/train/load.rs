// SPDX-License-Identifier: MIT OR Apache-2.0
//! A trained run read back from its folder: its config, its network with the trained weights, its bundle.

use std::path::{Path, PathBuf};

use odm_core::Bundle;
use tch::{nn, Device};

use super::config::TrainConfig;
use super::model::{Arch, Net};
use crate::error::TrainError;

fn load_cfg(run: &Path) -> Result<TrainConfig, TrainError> {
    let p = run.join("config.json");
    let text = std::fs::read_to_string(&p).map_err(TrainError::io(&p))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Config(format!("{}: {e}", p.display())))
}

/// A run's config and bundle without its network: for scoring an export of a run whose weights are gone
/// (`eval --onnx` on a folder without `model.ot`).
pub fn load_run_bundle(run: &Path) -> Result<(TrainConfig, Bundle, PathBuf), TrainError> {
    let (cfg, _, bundle, bundle_path) = load_parts(run)?;
    Ok((cfg, bundle, bundle_path))
}

/// The config (checked, with the network it names) and the bundle of a run folder.
fn load_parts(run: &Path) -> Result<(TrainConfig, Arch, Bundle, PathBuf), TrainError> {
    let cfg = load_cfg(run)?;
    let arch = cfg.validate()?;
    let bundle_path = run.join(format!("{}.odm.json", cfg.name));
    let bundle = Bundle::open(&bundle_path)?;
    Ok((cfg, arch, bundle, bundle_path))
}

/// Rebuild a run's network with its trained weights.
pub fn load_net(run: &Path) -> Result<(TrainConfig, nn::VarStore, Net, Bundle, PathBuf), TrainError> {
    let (cfg, arch, bundle, bundle_path) = load_parts(run)?;
    let mut vs = nn::VarStore::new(Device::Cpu);
    let classes = cfg.has_classifier().then_some(bundle.classes.len() as i64);
    // Its initial weights are overwritten, but drawing them moves the shared generator: not while a run is seeded.
    let net = super::model::with_torch_rng(None, || {
        Net::new(&vs.root(), arch, cfg.input as i64, cfg.input as i64, cfg.embedding, classes)
    });
    let model = run.join("model.ot");
    vs.load(&model).map_err(|e| TrainError::Config(format!("{}: {e}", model.display())))?;
    Ok((cfg, vs, net, bundle, bundle_path))
}
