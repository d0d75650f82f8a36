// SPDX-License-Identifier: MIT OR Apache-2.0
//! Bundles: made from data in one place ([`calibrated`]: classes at their centres, thresholds calibrated on
//! validation data) for `train`, `centers` and `bundle --onnx`; a trained run's written beside its ONNX file
//! ([`write_bundle`]); and `export`, which writes a run's network (fp32, INT8, FP16) with its bundle.

use std::path::{Path, PathBuf};

use odm_core::bundle::{
    sha256_file, Bundle, Calibration, ClassEntry, ColorOrder, InputSpec, ModelSpec, OutputSpec, ScoreSpec, FORMAT,
    SCORE_KIND,
};
use odm_core::Scorer;
use tch::{Device, Tensor};

use crate::data::split;
use crate::error::TrainError;
use crate::train::calibrate::calibrate;
use crate::train::config::TrainConfig;
use crate::train::embed::{class_centres, embed_all, to_vec};
use crate::train::load::load_net;
use crate::train::model::Net;
use crate::train::rundata::{load_run_data, RunData};

/// The one place a bundle is made from data: one class per label of `data` (ids 0.., in order) at its centre,
/// the novelty and anomaly thresholds (global and per class) calibrated on the run's validation data through
/// `embed` (odm-core's scorer, `cfg.tpr`), named `cfg.name`. `train`, `centers` and `bundle --onnx` all make their
/// bundles here; the caller gives the network's file and tensors (`model`) and the provenance (`training`), and
/// writes the result.
pub fn calibrated(
    cfg: &TrainConfig,
    data: &RunData,
    model: ModelSpec,
    centres: Vec<Vec<f32>>,
    training: serde_json::Value,
    embed: &mut dyn FnMut(&Tensor) -> Result<Tensor, TrainError>,
) -> Result<Bundle, TrainError> {
    let mut bundle = Bundle {
        format: FORMAT.into(),
        name: cfg.name.clone(),
        model,
        classes: class_entries(&data.classes, centres),
        category_refs: Vec::new(),
        score: ScoreSpec {
            kind: SCORE_KIND.into(),
            novelty_threshold: 1.0,
            anomaly_threshold: 1.0,
            calibration: Some(Calibration { set: "validation".into(), tpr: cfg.tpr }),
            reference_ratio: None,
        },
        training,
        metrics: serde_json::Value::Null,
    };
    let t = calibrate(cfg, embed, data, &Scorer::new(&bundle))?;
    bundle.score.novelty_threshold = t.novelty;
    bundle.score.anomaly_threshold = t.anomaly;
    for (class, per) in bundle.classes.iter_mut().zip(&t.per_class) {
        (class.novelty_threshold, class.anomaly_threshold) = (per.map(|p| p.0), per.map(|p| p.1));
    }
    Ok(bundle)
}

/// A trained network's bundle in `out`: `NAME.onnx` (the network, fp32) and `NAME.odm.json` with the centres (mean
/// training embedding per class) and the thresholds of [`calibrated`]. The end of `train`, and `centers`.
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
    std::fs::write(&onnx_path, super::net::onnx(net, &cfg.name, "input", "embedding"))
        .map_err(TrainError::io(&onnx_path))?;
    let sha256 = sha256_file(&onnx_path).map_err(TrainError::io(&onnx_path))?;
    let model = ModelSpec {
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
    };
    let training = serde_json::json!({
        "config": cfg,
        "split": roles,
        "calib_ood": data.calib_ood,
        "train_seconds": train_secs,
        "generator": std::fs::read_to_string(cfg.data.join(crate::synth::MANIFEST)).ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|m| m.get("generator").cloned()),
        "odm_train": env!("CARGO_PKG_VERSION"),
    });
    let bundle = calibrated(cfg, data, model, centers, training, &mut |x| Ok(embed_all(net, x, device)))?;
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

/// The reference rule's ratio `export` writes by default when the bundle has category references
/// ([`odm_core::bundle::ScoreSpec::reference_ratio`]): a crop nearer a seen design than to its nearest class is not
/// that class. Parameter-free (1), not tuned on test data; `eval` scores with it, and its table "The seen designs as
/// a second opinion" shows other ratios.
pub const REFERENCE_RATIO: f64 = 1.0;

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
    export_with(run, out, name, precision, Some(REFERENCE_RATIO))
}

/// [`export`] with the reference rule's ratio (`None`: no rule, the thresholds alone decide); it is written only when
/// the bundle has category references.
pub fn export_with(
    run: &Path,
    out: &Path,
    name: Option<String>,
    precision: Precision,
    reference_ratio: Option<f64>,
) -> Result<PathBuf, TrainError> {
    if let Some(r) = reference_ratio {
        if !(r.is_finite() && r > 0.0) {
            return Err(TrainError::Config(format!(
                "export: the reference ratio must be finite and positive, got {r}"
            )));
        }
    }
    let (cfg, _vs, net, mut bundle, _) = load_net(run)?;
    let name = name.unwrap_or(cfg.name.clone());
    std::fs::create_dir_all(out).map_err(TrainError::io(out))?;
    let onnx_name = format!("{name}.onnx");
    let onnx_path = out.join(&onnx_name);
    let bytes = match precision {
        Precision::Fp32 => super::net::onnx(&net, &name, "input", "embedding"),
        Precision::Fp16 => {
            bundle.model.precision = "fp16".into();
            super::net::onnx_fp16(&net, &name, "input", "embedding")
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
            super::net::onnx_int8(&net, &name, "input", "embedding", &calib).map_err(TrainError::Config)?
        }
    };
    std::fs::write(&onnx_path, bytes).map_err(TrainError::io(&onnx_path))?;
    // The seen out-of-distribution designs' centres, so that odmclassify gives an unknown sign the category of the
    // nearest design it knows of, not only of the nearest class (tables: `eval`'s category figures).
    if bundle.category_refs.is_empty() {
        if let Some((names, x)) = crate::eval::sets::seen_training_images(&cfg, &bundle)? {
            let e = to_vec(&embed_all(&net, &x, Device::Cpu));
            bundle.category_refs = crate::eval::categories::design_refs(&names, &e, bundle.dim());
        }
    }
    bundle.score.reference_ratio = reference_ratio.filter(|_| !bundle.category_refs.is_empty());
    bundle.name = name.clone();
    bundle.model.file = onnx_name;
    bundle.model.sha256 = sha256_file(&onnx_path).map_err(TrainError::io(&onnx_path))?;
    let path = out.join(format!("{name}.odm.json"));
    bundle.save(&path)?;
    Ok(path)
}
