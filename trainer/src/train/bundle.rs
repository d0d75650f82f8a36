// SPDX-License-Identifier: MIT OR Apache-2.0
//! The bundle a run writes (centres, thresholds, ONNX), and the commands that rewrite one for a trained network:
//! `centers` (new classes or data) and `export`.

use std::path::{Path, PathBuf};

use odm_core::bundle::{
    sha256_file, Bundle, Calibration, ClassEntry, ColorOrder, InputSpec, ModelSpec, OutputSpec, ScoreSpec, FORMAT,
    SCORE_KIND,
};
use odm_core::Scorer;
use tch::{nn, Device};

use super::calibrate::calibrate;
use super::config::TrainConfig;
use super::embed::{class_centres, embed_all, to_vec};
use super::model::Net;
use super::rundata::{load_run_data, RunData};
use crate::data::{self, split, Format};
use crate::error::TrainError;

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
    let centers = class_centres(&to_vec(&e), &data.train_in.y, k, d);

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
            precision: "fp32".into(),
        },
        classes: class_entries(&data.classes, centers),
        category_refs: Vec::new(),
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
    let t = calibrate(cfg, &mut |x| Ok(embed_all(net, x, device)), data, &Scorer::new(&bundle))?;
    bundle.score.novelty_threshold = t.novelty;
    bundle.score.anomaly_threshold = t.anomaly;
    for (class, per) in bundle.classes.iter_mut().zip(&t.per_class) {
        (class.novelty_threshold, class.anomaly_threshold) = (per.map(|p| p.0), per.map(|p| p.1));
    }
    let path = out.join(format!("{}.odm.json", cfg.name));
    bundle.save(&path)?;
    Ok(path)
}

/// Bundle classes with ids 0.. in order, one per label and centre, with no thresholds of their own yet.
pub fn class_entries(labels: &[String], centres: Vec<Vec<f32>>) -> Vec<ClassEntry> {
    labels
        .iter()
        .zip(centres)
        .enumerate()
        .map(|(i, (label, center))| ClassEntry {
            id: i as i32,
            label: label.clone(),
            center,
            novelty_threshold: None,
            anomaly_threshold: None,
            category: None,
        })
        .collect()
}

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
    let mut merged = Bundle { classes: Vec::new(), score: old.score.clone(), ..fresh.clone() };
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
    if let Some(t) = merged.training.as_object_mut() {
        t.insert(
            "enrolled".into(),
            serde_json::json!({ "from": old.name, "kept": kept, "added": added, "reenrolled": reenrolled }),
        );
    }
    merged.save(&path)?;
    Ok(Enrolled { bundle: path, kept, added, reenrolled, dropped: Vec::new() })
}

/// What an export computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Fp32,
    /// INT8 QDQ, activation ranges calibrated on this many of the run's training crops.
    Int8(usize),
    /// Float16 weights and computation, float32 input and output (for GPUs).
    Fp16,
}

/// `odm-train export`: write a run's network as ONNX with its bundle (centres, labels and thresholds of the run's
/// bundle) into `out`, under `name` (default: the run's). The ONNX bytes are deterministic for the same weights.
/// With [`Precision::Int8`] = N, the network is written as an INT8 QDQ model whose activation ranges are calibrated
/// on N of the run's training crops; with [`Precision::Fp16`], with float16 weights; the bundle says which
/// (`model.precision`; centres and thresholds stay the float network's). The bundle gains the seen
/// out-of-distribution designs' centres as category references when the run has them.
pub fn export(run: &Path, out: &Path, name: Option<String>, precision: Precision) -> Result<PathBuf, TrainError> {
    let (cfg, _vs, net, mut bundle, _) = load_net(run)?;
    let name = name.unwrap_or(cfg.name.clone());
    std::fs::create_dir_all(out).map_err(TrainError::io(out))?;
    let onnx_name = format!("{name}.onnx");
    let onnx_path = out.join(&onnx_name);
    let bytes = match precision {
        Precision::Fp32 => super::export::onnx(&net, &name, "input", "embedding"),
        Precision::Fp16 => {
            bundle.model.precision = "fp16".into();
            super::export::onnx_fp16(&net, &name, "input", "embedding")
        }
        Precision::Int8(n) => {
            let (data, _) = load_run_data(&cfg)?;
            let x = &data.train_in.x;
            let total = x.size()[0];
            if total == 0 || n == 0 {
                return Err(TrainError::Config(
                    "--int8 needs training crops to calibrate on (the run's data has none, or N is 0)".into(),
                ));
            }
            // Evenly spread over the training set (classes are stored in order).
            let step = (total / n as i64).max(1);
            let idx = tch::Tensor::arange_start_step(0, total, step, (tch::Kind::Int64, tch::Device::Cpu));
            let calib = x.index_select(0, &idx);
            bundle.model.precision = "int8".into();
            super::export::onnx_int8(&net, &name, "input", "embedding", &calib).map_err(TrainError::Config)?
        }
    };
    std::fs::write(&onnx_path, bytes).map_err(TrainError::io(&onnx_path))?;
    // The seen out-of-distribution designs' centres, so that odmclassify gives an unknown sign the category of the
    // nearest design it knows of, not only of the nearest class (tables: `eval`'s category figures).
    if bundle.category_refs.is_empty() {
        if let Some((names, x)) = super::eval::seen_training_images(&cfg, &bundle)? {
            let e = to_vec(&embed_all(&net, &x, Device::Cpu));
            bundle.category_refs = super::categories::design_refs(&names, &e, bundle.dim());
        }
    }
    bundle.name = name.clone();
    bundle.model.file = onnx_name;
    bundle.model.sha256 = sha256_file(&onnx_path).map_err(TrainError::io(&onnx_path))?;
    let path = out.join(format!("{name}.odm.json"));
    bundle.save(&path)?;
    Ok(path)
}

fn load_cfg(run: &Path) -> Result<TrainConfig, TrainError> {
    let p = run.join("config.json");
    let text = std::fs::read_to_string(&p).map_err(TrainError::io(&p))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Config(format!("{}: {e}", p.display())))
}

/// Rebuild a run's network with its trained weights.
pub fn load_net(run: &Path) -> Result<(TrainConfig, nn::VarStore, Net, Bundle, PathBuf), TrainError> {
    let cfg = load_cfg(run)?;
    let arch = cfg.validate()?;
    let bundle_path = run.join(format!("{}.odm.json", cfg.name));
    let bundle = Bundle::open(&bundle_path)?;
    let mut vs = nn::VarStore::new(Device::Cpu);
    let classes = cfg.has_classifier().then_some(bundle.classes.len() as i64);
    let net = Net::new(&vs.root(), arch, cfg.input as i64, cfg.input as i64, cfg.embedding, classes);
    let model = run.join("model.ot");
    vs.load(&model).map_err(|e| TrainError::Config(format!("{}: {e}", model.display())))?;
    Ok((cfg, vs, net, bundle, bundle_path))
}
