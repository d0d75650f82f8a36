// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train bundle --onnx`: a bundle for an embedding network odm did not train (PyTorch, pytorch-ood, OpenOOD, a
//! team's own code), from its ONNX file and a class-per-folder dataset. The network runs in ONNX Runtime; crops are
//! made by odm-core's preprocessing with the network's own input spec (size, channel order, normalisation, context);
//! centres, thresholds, validation and the evaluation report are the ones `train` and `eval` make, with odm-core's
//! scorer (the plugin's code).

use std::path::{Path, PathBuf};

use odm_core::bundle::{
    sha256_bytes, Bundle, Calibration, ClassEntry, ColorOrder, InputSpec, ModelSpec, OutputSpec, ScoreSpec, FORMAT,
    SCORE_KIND,
};
use odm_core::Scorer;
use ort::value::{TensorElementType, ValueType};

use super::calibrate::calibrate;
use super::config::{Method, TrainConfig};
use super::embed::{class_centres, to_vec};
use super::eval::{score_sets, test_sets, Metrics};
use super::onnx_embed::{environment, OnnxEmbedder};
use super::rundata::load_run_data;
use crate::error::TrainError;

/// What `bundle --onnx` is given.
#[derive(Debug, Clone)]
pub struct ByoOptions {
    /// The network: one float32 image input `[N,3,H,W]`, one float32 embedding output `[N,D]` (dynamic axes allowed).
    pub onnx: PathBuf,
    /// The dataset root: `ROOT/train/<class>/` images (and `ROOT/test/<class>/` for the report), as `train` reads it.
    pub data: PathBuf,
    /// Classes to enrol (default: every class folder not named in `seen_ood` or `unseen_ood`).
    pub in_dist: Vec<String>,
    /// Known non-classes: calibrate the anomaly threshold's novelty side.
    pub seen_ood: Vec<String>,
    /// Classes kept out of the bundle and of calibration: the report's `novelty` set.
    pub unseen_ood: Vec<String>,
    /// Trees of non-signs: calibrate the anomaly threshold (their calibration part) and, in the report, the rest.
    pub anomaly_dirs: Vec<PathBuf>,
    /// Input and output names (default: the network's only input and its only output, or the first output).
    pub input_name: Option<String>,
    pub output_name: Option<String>,
    /// Width and height; needed when the network's spatial axes are dynamic, checked when they are not.
    pub input_size: Option<(u32, u32)>,
    pub color: ColorOrder,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub context: f32,
    pub tpr: f64,
    pub seed: u64,
    /// Gaussian-noise images in the report's `noise` set.
    pub noise: usize,
    pub name: String,
    pub out: PathBuf,
}

/// What `bundle --onnx` wrote.
#[derive(Debug)]
pub struct Made {
    pub bundle: PathBuf,
    /// The evaluation on `ROOT/test` (None when the dataset has no test folder).
    pub metrics: Option<Metrics>,
}

/// A tensor outlet as `[N,3,H,W]`-style text, for errors.
fn describe(t: &ValueType) -> String {
    match t {
        ValueType::Tensor { ty, shape, .. } => {
            let axes: Vec<String> = shape.iter().map(|&d| if d < 0 { "?".into() } else { d.to_string() }).collect();
            let ty = match ty {
                TensorElementType::Float32 => "float32".to_owned(),
                TensorElementType::Float16 => "float16".to_owned(),
                TensorElementType::Uint8 => "uint8".to_owned(),
                other => format!("{other:?}").to_lowercase(),
            };
            format!("{ty} [{}]", axes.join(","))
        }
        other => format!("{other}"),
    }
}

/// The network's input and output as odm will feed and read them.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkIo {
    pub input: String,
    /// Height and width when fixed in the file.
    pub size: Option<(u32, u32)>,
    pub output: String,
    /// Embedding dimension when fixed in the file.
    pub dim: Option<usize>,
}

/// Open `path` in ONNX Runtime and check that it is an embedding network odm can run: one float32 image input
/// `[N,3,H,W]` and a float32 `[N,D]` output. Errors name the file and what is wrong.
pub fn inspect(path: &Path, input: Option<&str>, output: Option<&str>) -> Result<NetworkIo, TrainError> {
    let env = environment()?;
    let bad = |why: String| TrainError::Config(format!("{}: {why}", path.display()));
    let session = super::onnx_embed::builder(&env)
        .and_then(|mut b| b.commit_from_file(path))
        .map_err(|e| bad(format!("ONNX Runtime cannot load it: {e}")))?;
    let inputs = session.inputs();
    let input = match input {
        Some(n) => inputs.iter().find(|o| o.name() == n).ok_or_else(|| {
            let names: Vec<&str> = inputs.iter().map(|o| o.name()).collect();
            bad(format!("it has no input named \"{n}\" (its inputs: {})", names.join(", ")))
        })?,
        None if inputs.len() == 1 => &inputs[0],
        None => {
            return Err(bad(format!(
                "it has {} inputs; odm feeds one image tensor [N,3,H,W] (name it with --input if the others are \
                 optional)",
                inputs.len()
            )))
        }
    };
    let size = match input.dtype() {
        ValueType::Tensor { ty: TensorElementType::Float32, shape, .. }
            if shape.len() == 4 && (shape[1] == 3 || shape[1] < 0) =>
        {
            (shape[2] > 0 && shape[3] > 0).then(|| (shape[3] as u32, shape[2] as u32))
        }
        other => {
            return Err(bad(format!(
                "input \"{}\" is {}: not an image tensor; odm feeds float32 [N,3,H,W] (channels first, RGB or BGR)",
                input.name(),
                describe(other)
            )))
        }
    };
    let outputs = session.outputs();
    let output = match output {
        Some(n) => outputs.iter().find(|o| o.name() == n).ok_or_else(|| {
            let names: Vec<&str> = outputs.iter().map(|o| o.name()).collect();
            bad(format!("it has no output named \"{n}\" (its outputs: {})", names.join(", ")))
        })?,
        None => outputs.first().ok_or_else(|| bad("it has no output".into()))?,
    };
    let dim = match output.dtype() {
        ValueType::Tensor { ty: TensorElementType::Float32, shape, .. } if shape.len() == 2 => {
            (shape[1] > 0).then_some(shape[1] as usize)
        }
        other => {
            return Err(bad(format!(
                "output \"{}\" is {}: an embedding is float32 [N,D] (pick another output with --output)",
                output.name(),
                describe(other)
            )))
        }
    };
    Ok(NetworkIo { input: input.name().to_owned(), size, output: output.name().to_owned(), dim })
}

/// `odm-train bundle --onnx`: check the network, decode the dataset with its input spec, embed in ONNX Runtime,
/// write `OUT/NAME.onnx` (a copy) and `OUT/NAME.odm.json` (centres, calibrated thresholds), validate the bundle as the
/// plugin does, and evaluate it on `ROOT/test` when there is one (`OUT/metrics.md`, `metrics.json`).
pub fn bundle_onnx(o: &ByoOptions) -> Result<Made, TrainError> {
    let io = inspect(&o.onnx, o.input_name.as_deref(), o.output_name.as_deref())?;
    let (width, height) = match (io.size, o.input_size) {
        (Some(fixed), Some(asked)) if fixed != asked => {
            return Err(TrainError::Config(format!(
                "{}: its input \"{}\" is {}x{} (width x height); --input-size says {}x{}",
                o.onnx.display(),
                io.input,
                fixed.0,
                fixed.1,
                asked.0,
                asked.1
            )))
        }
        (Some(s), _) | (None, Some(s)) => s,
        (None, None) => {
            return Err(TrainError::Config(format!(
                "{}: its input \"{}\" has dynamic height and width: give --input-size WxH (what the network was \
                 trained on)",
                o.onnx.display(),
                io.input
            )))
        }
    };
    if width == 0 || height == 0 {
        return Err(TrainError::Config(format!("--input-size {width}x{height}: both must be positive")));
    }
    if o.std.iter().any(|s| !s.is_finite() || *s <= 0.0) || o.mean.iter().any(|m| !m.is_finite()) {
        return Err(TrainError::Config(format!(
            "--mean {:?} --std {:?}: every std must be positive and every value finite",
            o.mean, o.std
        )));
    }
    let spec = InputSpec {
        name: io.input.clone(),
        width,
        height,
        color: o.color,
        mean: o.mean,
        std: o.std,
        context: o.context,
    };
    // The run's data handling (split, validation part, anomaly trees) with this network's crops. The network did not
    // train on the seen OOD classes, so they all calibrate (the metric-learning baseline's rule).
    let cfg = TrainConfig {
        data: o.data.clone(),
        in_dist: o.in_dist.clone(),
        seen_ood: o.seen_ood.clone(),
        unseen_ood: o.unseen_ood.clone(),
        anomaly_dirs: o.anomaly_dirs.clone(),
        method: Method::Ml,
        arch: "onnx".into(),
        input: height,
        tpr: o.tpr,
        seed: o.seed,
        context: o.context,
        name: o.name.clone(),
        input_spec: Some(spec.clone()),
        ..TrainConfig::default()
    };
    let (data, roles) = load_run_data(&cfg)?;
    let mut net = OnnxEmbedder::open(&o.onnx, &io.input, &io.output)?;
    let e = net.embed(&data.train_in.x)?;
    let size = e.size();
    let d = size.get(1).copied().unwrap_or(0) as usize;
    if size.len() != 2 || d == 0 || io.dim.is_some_and(|want| want != d) {
        return Err(TrainError::Config(format!(
            "{}: output \"{}\" gave shape {size:?} for {} crops; an embedding is [N,D]",
            o.onnx.display(),
            io.output,
            data.train_in.y.len()
        )));
    }
    let centres = class_centres(&to_vec(&e), &data.train_in.y, data.classes.len(), d);

    std::fs::create_dir_all(&o.out).map_err(TrainError::io(&o.out))?;
    let bytes = std::fs::read(&o.onnx).map_err(TrainError::io(&o.onnx))?;
    let onnx_name = format!("{}.onnx", o.name);
    let onnx_path = o.out.join(&onnx_name);
    if onnx_path.canonicalize().ok() != o.onnx.canonicalize().ok() {
        std::fs::write(&onnx_path, &bytes).map_err(TrainError::io(&onnx_path))?;
    }
    let mut bundle = Bundle {
        format: FORMAT.into(),
        name: o.name.clone(),
        model: ModelSpec {
            file: onnx_name,
            sha256: sha256_bytes(&bytes),
            input: spec,
            output: OutputSpec { name: io.output.clone(), dim: d },
            precision: "fp32".into(),
        },
        classes: data
            .classes
            .iter()
            .zip(centres)
            .enumerate()
            .map(|(i, (label, center))| ClassEntry {
                id: i as i32,
                label: label.clone(),
                center,
                novelty_threshold: None,
                anomaly_threshold: None,
            })
            .collect(),
        score: ScoreSpec {
            kind: SCORE_KIND.into(),
            novelty_threshold: 1.0,
            anomaly_threshold: 1.0,
            calibration: Some(Calibration { set: "validation".into(), tpr: o.tpr }),
        },
        training: serde_json::json!({
            "source": "odm-train bundle --onnx",
            "onnx": o.onnx.display().to_string(),
            "config": cfg,
            "split": roles,
            "calib_ood": data.calib_ood,
            "odm_train": env!("CARGO_PKG_VERSION"),
        }),
        metrics: serde_json::Value::Null,
    };
    let t = calibrate(&cfg, &mut |x| net.embed(x), &data, &Scorer::new(&bundle))?;
    bundle.score.novelty_threshold = t.novelty;
    bundle.score.anomaly_threshold = t.anomaly;
    for (class, per) in bundle.classes.iter_mut().zip(&t.per_class) {
        (class.novelty_threshold, class.anomaly_threshold) = (per.map(|p| p.0), per.map(|p| p.1));
    }
    let path = o.out.join(format!("{}.odm.json", o.name));
    bundle.save(&path)?;
    // The plugin's own checks (schema, finite numbers, centre length, the ONNX file's SHA-256).
    let mut bundle = Bundle::open(&path)?;

    let metrics = if o.data.join("test").is_dir() {
        let tests = test_sets(&cfg, &bundle, o.noise, None, &[])?;
        let m = score_sets("onnx", &bundle, &tests, &mut |x| net.embed(x))?;
        for (file, text) in [
            ("metrics.json", serde_json::to_string_pretty(&m).expect("metrics serialise") + "\n"),
            ("metrics.md", m.markdown()),
        ] {
            let p = o.out.join(file);
            std::fs::write(&p, text).map_err(TrainError::io(&p))?;
        }
        bundle.metrics = serde_json::to_value([&m]).expect("metrics serialise");
        bundle.save(&path)?;
        Some(m)
    } else {
        None
    };
    Ok(Made { bundle: path, metrics })
}
