// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train centers`: new centres and thresholds for a trained network from another dataset, without retraining
//! (how a new sign class is enrolled).

use std::path::{Path, PathBuf};

use odm_core::bundle::{Bundle, ClassEntry};
use tch::Device;

use super::bundle::write_bundle;
use crate::data::{self, Format};
use crate::error::TrainError;
use crate::train::config::TrainConfig;
use crate::train::load::load_net;
use crate::train::rundata::load_run_data;

/// How `centers` treats the classes of the run's bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enrol {
    /// The bundle holds exactly the classes of `--data`: one of the run's classes missing there is refused unless
    /// dropping is allowed (a one-class bundle, hot-reloaded, would call every sign that class).
    Replace { allow_drop: bool },
    /// The run's classes stay (ids, centres, thresholds); the classes of `--data` are added, or re-enrolled where the
    /// label exists. The run's global thresholds stay; new classes get per-class thresholds from their data.
    Add,
}

/// What `centers` wrote.
#[derive(Debug)]
pub struct Enrolled {
    pub bundle: PathBuf,
    pub kept: Vec<String>,
    pub added: Vec<String>,
    pub reenrolled: Vec<String>,
    pub dropped: Vec<String>,
}

/// Up to 5 labels and how many more.
fn some(labels: &[String]) -> String {
    let mut t = labels.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if labels.len() > 5 {
        t.push_str(&format!(" and {} more", labels.len() - 5));
    }
    t
}

/// `odm-train centers`: new centres and thresholds for a trained network from another class-per-folder dataset
/// (`data/train/<class>/`), without retraining — also how a new sign class is enrolled from a few dozen crops
/// ([`Enrol::Add`]). Writes `NAME.onnx` (the same network) and `NAME.odm.json` into `out`.
pub fn centers(
    run: &Path,
    data_root: &Path,
    in_dist: Vec<String>,
    seen_ood: Vec<String>,
    anomaly_dirs: Vec<PathBuf>,
    out: &Path,
    mode: Enrol,
) -> Result<Enrolled, TrainError> {
    let (cfg, _vs, net, old, old_path) = load_net(run)?;
    let same_folder = |a: &Path, b: &Path| a.canonicalize().ok().is_some_and(|a| b.canonicalize().ok() == Some(a));
    if same_folder(out, run) {
        return Err(TrainError::Config(format!(
            "--out {} is the run's own folder: centers would overwrite {}, the bundle the run's eval and export read; \
             choose another --out",
            out.display(),
            old_path.display()
        )));
    }
    let mut in_dist = in_dist;
    if in_dist.is_empty() {
        let d = data::load(&data_root.join("train"), Format::Folder)?;
        in_dist = d.classes.into_iter().filter(|c| !seen_ood.contains(c)).collect();
    }
    let old_labels: Vec<String> = old.classes.iter().map(|c| c.label.clone()).collect();
    let missing: Vec<String> = old_labels.iter().filter(|l| !in_dist.contains(l)).cloned().collect();
    if mode == (Enrol::Replace { allow_drop: false }) && !missing.is_empty() {
        return Err(TrainError::Config(format!(
            "{} has {} of the run's {} classes: the new bundle would drop {} ({}); --mode add enrols its classes \
             beside the run's, --allow-drop writes the bundle without them",
            data_root.display(),
            old_labels.len() - missing.len(),
            old_labels.len(),
            missing.len(),
            some(&missing)
        )));
    }
    // The anomaly side of the calibration is what the caller gives: the run's mined trees are not needed here.
    let cfg2 = TrainConfig {
        data: data_root.to_owned(),
        in_dist,
        seen_ood,
        unseen_ood: Vec::new(),
        anomaly_dirs,
        seen_anomaly_dirs: Vec::new(),
        seen_novelty_dirs: Vec::new(),
        ..cfg
    };
    let (data, roles) = load_run_data(&cfg2)?;
    std::fs::create_dir_all(out).map_err(TrainError::io(out))?;
    let path = write_bundle(&cfg2, &net, &data, &roles, out, Device::Cpu, 0.0)?;
    let new_labels = data.classes.clone();
    if let Enrol::Replace { .. } = mode {
        return Ok(Enrolled {
            bundle: path,
            kept: Vec::new(),
            added: new_labels.iter().filter(|l| !old_labels.contains(l)).cloned().collect(),
            reenrolled: new_labels.iter().filter(|l| old_labels.contains(l)).cloned().collect(),
            dropped: missing,
        });
    }
    // Add: the run's classes first, in their order and with their ids; a label in --data replaces its entry.
    let fresh = Bundle::open(&path)?;
    // The run's score and its references go together (the same network's embeddings of the run's seen designs).
    let mut merged = Bundle {
        classes: Vec::new(),
        score: old.score.clone(),
        category_refs: old.category_refs.clone(),
        ..fresh.clone()
    };
    let mut next_id = old.classes.iter().map(|c| c.id).max().map_or(0, |m| m.saturating_add(1));
    let (mut kept, mut added, mut reenrolled) = (Vec::new(), Vec::new(), Vec::new());
    for c in &old.classes {
        match fresh.classes.iter().find(|n| n.label == c.label) {
            Some(n) => {
                merged.classes.push(ClassEntry { id: c.id, ..n.clone() });
                reenrolled.push(c.label.clone());
            }
            None => {
                merged.classes.push(c.clone());
                kept.push(c.label.clone());
            }
        }
    }
    for n in fresh.classes.iter().filter(|n| !old_labels.contains(&n.label)) {
        // Thresholds calibrated on the new data travel with the class: the global ones stay the run's.
        let (nt, at) = (
            n.novelty_threshold.or(Some(fresh.score.novelty_threshold)),
            n.anomaly_threshold.or(Some(fresh.score.anomaly_threshold)),
        );
        merged.classes.push(ClassEntry { id: next_id, novelty_threshold: nt, anomaly_threshold: at, ..n.clone() });
        next_id = next_id.saturating_add(1);
        added.push(n.label.clone());
    }
    // A design enrolled as a class is no longer a reference: the rule would call its own crops novelties.
    let now_classes: Vec<String> = merged
        .category_refs
        .iter()
        .filter(|r| merged.classes.iter().any(|c| c.label == r.label))
        .map(|r| r.label.clone())
        .collect();
    if !now_classes.is_empty() {
        merged.category_refs.retain(|r| !now_classes.contains(&r.label));
        let rule = if merged.category_refs.is_empty() && merged.score.reference_ratio.is_some() {
            merged.score.reference_ratio = None;
            "; none is left, so the bundle has no reference rule"
        } else {
            ""
        };
        eprintln!(
            "odm-train: {} of the run's category references are now classes and left the references: {}{rule}",
            now_classes.len(),
            some(&now_classes)
        );
    }
    if let Some(t) = merged.training.as_object_mut() {
        t.insert(
            "enrolled".into(),
            serde_json::json!({ "from": old.name, "kept": kept, "added": added, "reenrolled": reenrolled }),
        );
    }
    merged.save(&path)?;
    Ok(Enrolled { bundle: path, kept, added, reenrolled, dropped: Vec::new() })
}
