// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train bundle --onnx`: a bundle for an embedding network odm did not train (PyTorch, pytorch-ood, OpenOOD, a
//! team's own code), from its ONNX file and a class-per-folder dataset. The network runs in ONNX Runtime; crops are
//! made by odm-core's preprocessing with the network's own input spec (size, channel order, normalisation, context);
//! centres, thresholds, validation and the evaluation report are the ones `train` and `eval` make, with odm-core's
//! scorer (the plugin's code).

use std::path::{Path, PathBuf};

use odm_core::bundle::{sha256_bytes, Bundle, ColorOrder, InputSpec, ModelSpec, OutputSpec};

use super::bundle::calibrated;
use crate::error::TrainError;
use crate::eval::metrics::{score_sets, Metrics};
use crate::eval::onnx::open_checked;
use crate::eval::sets::test_sets;
use crate::train::config::{Method, TrainConfig};
use crate::train::embed::{class_centres, to_vec};
use crate::train::rundata::load_run_data;

/// What `bundle --onnx` is given (also the command line of `odm-train bundle`).
#[derive(Debug, Clone, clap::Args)]
pub struct ByoOptions {
    /// The network: one float32 image input [N,3,H,W] (channels first), one float32 embedding output [N,D] (dynamic
    /// axes allowed).
    #[arg(long)]
    pub onnx: PathBuf,
    /// Dataset root: ROOT/train/<class>/ images (and ROOT/test/<class>/ for the report), as `train` reads it.
    #[arg(long)]
    pub data: PathBuf,
    /// Classes to enrol (default: every class folder not named in --seen-ood or --unseen-ood).
    #[arg(long = "in", value_delimiter = ',')]
    pub in_dist: Vec<String>,
    /// Known non-classes that calibrate the anomaly threshold's novelty side.
    #[arg(long, value_delimiter = ',')]
    pub seen_ood: Vec<String>,
    /// Classes kept out of the bundle and of calibration: the report's `novelty` set.
    #[arg(long, value_delimiter = ',')]
    pub unseen_ood: Vec<String>,
    /// Trees of non-signs (class-per-folder): calibration (their calibration part), and the report's anomaly sets.
    #[arg(long = "anomaly-dir")]
    pub anomaly_dirs: Vec<PathBuf>,
    /// The input to feed (default: the network's only input).
    #[arg(long = "input")]
    pub input_name: Option<String>,
    /// The embedding output (default: the network's first output).
    #[arg(long = "output")]
    pub output_name: Option<String>,
    /// WxH (or N for NxN): needed when the network's height and width are dynamic, checked when they are not.
    #[arg(long, value_parser = parse_size)]
    pub input_size: Option<(u32, u32)>,
    /// Channel order of the input tensor: rgb or bgr.
    #[arg(long, value_parser = parse_color, default_value = "rgb")]
    pub color: ColorOrder,
    /// Per-channel mean, in tensor channel order, on the 0..1 scale: (v / 255 - mean) / std.
    #[arg(long, value_parser = parse_triple, default_value = "0.5,0.5,0.5")]
    pub mean: [f32; 3],
    #[arg(long, value_parser = parse_triple, default_value = "0.25,0.25,0.25")]
    pub std: [f32; 3],
    /// Margin added around detector boxes, as a fraction of their size (whole dataset images are used as they are).
    #[arg(long, default_value_t = 0.0)]
    pub context: f32,
    /// Share of validation crops of enrolled classes the novelty threshold keeps.
    #[arg(long, default_value_t = 0.95)]
    pub tpr: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Gaussian-noise images in the report's `noise` set.
    #[arg(long, default_value_t = 500)]
    pub noise: usize,
    /// Bundle name (default: the ONNX file's stem).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub out: PathBuf,
}

/// `WxH` or `N` (square), both positive.
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?} is not WxH or N (pixels, positive)");
    let (w, h) = match s.split_once(['x', 'X']) {
        Some((w, h)) => (w.trim().parse().map_err(|_| bad())?, h.trim().parse().map_err(|_| bad())?),
        None => {
            let n = s.trim().parse().map_err(|_| bad())?;
            (n, n)
        }
    };
    if w == 0 || h == 0 {
        return Err(bad());
    }
    Ok((w, h))
}

/// Three comma-separated numbers.
pub fn parse_triple(s: &str) -> Result<[f32; 3], String> {
    let v: Vec<f32> = s
        .split(',')
        .map(|p| p.trim().parse::<f32>().map_err(|_| format!("{s:?}: {p:?} is not a number")))
        .collect::<Result<_, _>>()?;
    <[f32; 3]>::try_from(v).map_err(|v| format!("{s:?}: three values, one per channel (got {})", v.len()))
}

/// `rgb` or `bgr`.
pub fn parse_color(s: &str) -> Result<ColorOrder, String> {
    match s.to_ascii_lowercase().as_str() {
        "rgb" => Ok(ColorOrder::Rgb),
        "bgr" => Ok(ColorOrder::Bgr),
        _ => Err(format!("{s:?} is not rgb or bgr")),
    }
}

/// What `bundle --onnx` wrote.
#[derive(Debug)]
pub struct Made {
    pub bundle: PathBuf,
    /// The evaluation on `ROOT/test` (None when the dataset has no test folder).
    pub metrics: Option<Metrics>,
}

/// Refuse an embedding that cannot tell crops apart: a value that is not finite (NaN, infinite) or the same vector
/// for every training crop (a constant network). Its bundle would validate and then call everything one class.
fn useful_embedding(onnx: &Path, output: &str, values: &[f32], d: usize) -> Result<(), TrainError> {
    let bad = |why: String| TrainError::Config(format!("{}: output \"{output}\" {why}", onnx.display()));
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!(
            "gives {} (crop {}, dimension {}): the network does not compute a usable embedding on these crops \
             (check --mean, --std, --color and the file)",
            values[i],
            i / d.max(1),
            i % d.max(1)
        )));
    }
    let first = &values[..d.min(values.len())];
    let spread = values
        .chunks_exact(d.max(1))
        .map(|row| row.iter().zip(first).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max));
    if spread.fold(0.0f32, f32::max) <= 1e-6 * first.iter().map(|v| v.abs()).fold(1.0f32, f32::max) {
        return Err(bad(format!(
            "gives the same embedding for all {} training crops: a constant network cannot tell classes apart",
            values.len() / d.max(1)
        )));
    }
    Ok(())
}

/// `odm-train bundle --onnx`: check the network, decode the dataset with its input spec, embed in ONNX Runtime,
/// write `OUT/NAME.onnx` (a copy) and `OUT/NAME.odm.json` (centres, calibrated thresholds), validate the bundle as the
/// plugin does, and evaluate it on `ROOT/test` when there is one (`OUT/metrics.md`, `metrics.json`).
pub fn bundle_onnx(o: &ByoOptions) -> Result<Made, TrainError> {
    let name = match &o.name {
        Some(n) => n.clone(),
        None => o.onnx.file_stem().map_or_else(|| "model".to_owned(), |s| s.to_string_lossy().into_owned()),
    };
    let (io, mut net) = open_checked(&o.onnx, o.input_name.as_deref(), o.output_name.as_deref())?;
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
    // The bundle's own rules, checked before any work (they used to be checked on save, after it all).
    if !(0.0..=2.0).contains(&o.context) {
        return Err(TrainError::Config(format!(
            "--context {}: the margin around a box is a fraction of its size in [0, 2]",
            o.context
        )));
    }
    if !(o.tpr > 0.0 && o.tpr <= 1.0) {
        return Err(TrainError::Config(format!("--tpr {}: a share of crops in (0, 1]", o.tpr)));
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
        name: name.clone(),
        input_spec: Some(spec.clone()),
        ..TrainConfig::default()
    };
    let (data, roles) = load_run_data(&cfg)?;
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
    let values = to_vec(&e);
    useful_embedding(&o.onnx, &io.output, &values, d)?;
    let centres = class_centres(&values, &data.train_in.y, data.classes.len(), d);

    // Everything is computed and checked in memory first: a refusal leaves no file behind.
    let bytes = std::fs::read(&o.onnx).map_err(TrainError::io(&o.onnx))?;
    let onnx_name = format!("{name}.onnx");
    let onnx_path = o.out.join(&onnx_name);
    let model = ModelSpec {
        file: onnx_name,
        sha256: sha256_bytes(&bytes),
        input: spec,
        output: OutputSpec { name: io.output.clone(), dim: d },
        precision: "fp32".into(),
    };
    let training = serde_json::json!({
        "source": "odm-train bundle --onnx",
        "onnx": o.onnx.display().to_string(),
        "config": cfg,
        "split": roles,
        "calib_ood": data.calib_ood,
        "odm_train": env!("CARGO_PKG_VERSION"),
    });
    let mut bundle = calibrated(&cfg, &data, model, centres, training, &mut |x| net.embed(x))?;
    let path = o.out.join(format!("{name}.odm.json"));
    bundle.validate(&path)?;
    let metrics = if o.data.join("test").is_dir() {
        let tests = test_sets(&cfg, &bundle, o.noise, None, &[])?;
        let m = score_sets("onnx", &bundle, &tests, &mut |x| net.embed(x))?;
        bundle.metrics = serde_json::to_value([&m]).expect("metrics serialise");
        Some(m)
    } else {
        None
    };

    let existed = o.out.is_dir();
    let mut written = Vec::new();
    let result = (|| -> Result<(), TrainError> {
        std::fs::create_dir_all(&o.out).map_err(TrainError::io(&o.out))?;
        if onnx_path.canonicalize().ok() != o.onnx.canonicalize().ok() {
            written.push(onnx_path.clone());
            std::fs::write(&onnx_path, &bytes).map_err(TrainError::io(&onnx_path))?;
        }
        if let Some(m) = &metrics {
            for (file, text) in [
                ("metrics.json", serde_json::to_string_pretty(m).expect("metrics serialise") + "\n"),
                ("metrics.md", m.markdown()),
            ] {
                let p = o.out.join(file);
                written.push(p.clone());
                std::fs::write(&p, text).map_err(TrainError::io(&p))?;
            }
        }
        written.push(path.clone());
        bundle.save(&path)?;
        // The plugin's own checks (schema, finite numbers, centre length, the ONNX file's SHA-256).
        Bundle::open(&path)?;
        Ok(())
    })();
    if let Err(e) = result {
        for p in &written {
            let _ = std::fs::remove_file(p);
        }
        if !existed {
            let _ = std::fs::remove_dir(&o.out);
        }
        return Err(e);
    }
    Ok(Made { bundle: path, metrics })
}
