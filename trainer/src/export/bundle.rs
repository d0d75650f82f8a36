// SPDX-License-Identifier: MIT OR Apache-2.0
//! Bundles: made from data in one place ([`calibrated`]: classes at their centres, thresholds calibrated on
//! validation data) for `train`, `centers` and `bundle --onnx`; a trained run's written beside its ONNX file
//! ([`write_bundle`]); and `export`, which writes a run's network (fp32, INT8, FP16) with its bundle.

use std::path::{Path, PathBuf};

use odm_core::bundle::{
    sha256_file, Bundle, Calibration, ClassEntry, ColorOrder, InputSpec, ModelSpec, OutputSpec, ScoreSpec, FORMAT,
    MAX_CATEGORY_VOTES, SCORE_KIND,
};
use odm_core::Scorer;
use tch::{Device, Tensor};

use crate::data::split;
use crate::error::TrainError;
use crate::train::calibrate::{calibrate, fit_rule, rule_crops, rule_ratios, RuleCrop, RuleFit};
use crate::train::config::TrainConfig;
use crate::train::embed::{class_centres, embed_all, to_vec};
use crate::train::load::load_net;
use crate::train::model::Net;
use crate::train::rundata::{load_run_data, load_validation_data, RunData};

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
            category_votes: None,
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
/// training embedding per class), the thresholds of [`calibrated`], and the seen designs' references with the rule
/// at its default ratio as `export` writes them ([`scoring_bundle`]). The end of `train`, and `centers`.
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
    let mut embed = |x: &Tensor| Ok(embed_all(net, x, device));
    let bundle = calibrated(cfg, data, model, centers, training, &mut embed)?;
    // The references and the rule `export` writes by default, so that the run's own bundle scores as its export.
    let (bundle, _) = scoring_bundle(cfg, &bundle, Rule::default(), &mut embed)?;
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

/// How many nearest design centres a novelty's category is the vote of in the bundles `export` writes with
/// references (`score.category_votes`): 5, chosen on the validation protocol (models/signs/REPORT.md, "The category
/// of an unknown sign"), where 3 to 15 all did better than the nearest design alone.
pub const CATEGORY_VOTES: u32 = 5;

/// How `export` sets the reference rule, and `eval` scores (as `export` would write the bundle).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// No rule: the thresholds alone decide.
    Off,
    /// This ratio, with the novelty thresholds `train` calibrated on distances alone.
    Ratio(f64),
    /// The ratio and the novelty thresholds chosen together on the run's validation data ([`fit_rule`]): the
    /// thresholds keep `tpr` (the run's calibration TPR when `None`) of the known classes' validation crops under
    /// the rule, and the ratio is the one that then calls the fewest calibration novelties and anomalies `known`.
    Calibrate(Option<f64>),
}

impl Default for Rule {
    fn default() -> Self {
        Rule::Ratio(REFERENCE_RATIO)
    }
}

impl std::str::FromStr for Rule {
    type Err = String;
    /// `calibrate`, `calibrate:TPR`, `0` (no rule), or a finite positive ratio.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "calibrate" {
            return Ok(Rule::Calibrate(None));
        }
        if let Some(t) = s.strip_prefix("calibrate:") {
            return match t.parse::<f64>() {
                Ok(t) if t > 0.0 && t <= 1.0 => Ok(Rule::Calibrate(Some(t))),
                _ => Err(format!("calibrate:TPR takes a TPR in (0, 1], got {t:?}")),
            };
        }
        match s.parse::<f64>() {
            Ok(0.0) => Ok(Rule::Off),
            Ok(r) if r.is_finite() && r > 0.0 => Ok(Rule::Ratio(r)),
            _ => {
                Err(format!("expected `calibrate`, `calibrate:TPR`, 0 (no rule) or a finite positive ratio, got {s:?}"))
            }
        }
    }
}

impl Rule {
    /// Refuse any rule but the default on a softmax (`ce`) run, for `command` on `run`: the rule and its
    /// calibration are for metric-learning runs (odm, ml).
    pub fn check_method(self, method: crate::train::Method, run: &Path, command: &str) -> Result<(), TrainError> {
        if method == crate::train::Method::Ce && self != Rule::default() {
            return Err(TrainError::Config(format!(
                "{command} --reference-ratio {self}: {} is a softmax (ce) run, scored by its class probabilities; the \
                 reference rule is for metric-learning runs (odm, ml)",
                run.display()
            )));
        }
        Ok(())
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::Off => f.write_str("0"),
            Rule::Ratio(r) => write!(f, "{r}"),
            Rule::Calibrate(None) => f.write_str("calibrate"),
            Rule::Calibrate(Some(t)) => write!(f, "calibrate:{t}"),
        }
    }
}

/// The bundle a run is exported and scored with: the run's `bundle`, plus the seen out-of-distribution designs'
/// centres as category references (when it has none and the run trained on seen designs of the taxonomy: so that
/// odmclassify gives an unknown sign the category of the nearest design it knows of, not only of the nearest class),
/// and the reference rule as `rule` asks; with references, a novelty's category is the vote of the
/// [`CATEGORY_VOTES`] nearest designs unless the bundle sets its own `score.category_votes`. A reference is never one
/// of the bundle's classes (a design enrolled as a class is dropped from the references: the rule would otherwise
/// call its own crops novelties). With [`Rule::Calibrate`], the run's validation data is embedded with `embed`
/// ([`load_validation_data`], from `cfg.data`, the data the bundle's classes were calibrated on) and the novelty
/// thresholds are scaled as [`fit_rule`] chose ([`apply_fit`]), the fit recorded in `training.reference_rule`.
/// Without references, a rule other than the default or none is refused: there is nothing to compare with. Returns
/// the fit, if one was made.
pub fn scoring_bundle(
    cfg: &TrainConfig,
    bundle: &Bundle,
    rule: Rule,
    embed: &mut dyn FnMut(&Tensor) -> Result<Tensor, TrainError>,
) -> Result<(Bundle, Option<RuleFit>), TrainError> {
    if let Rule::Ratio(r) = rule {
        if !(r.is_finite() && r > 0.0) {
            return Err(TrainError::Config(format!("the reference ratio must be finite and positive, got {r}")));
        }
    }
    let mut b = bundle.clone();
    if b.category_refs.is_empty() {
        if let Some((names, x)) = crate::eval::sets::seen_training_images(cfg, bundle)? {
            b.category_refs = crate::eval::categories::design_refs(&names, &to_vec(&embed(&x)?), b.dim());
        }
    }
    b.category_refs.retain(|r| !b.classes.iter().any(|c| c.label == r.label));
    if b.category_refs.is_empty() {
        b.score.reference_ratio = None;
        b.score.category_votes = None;
        return match rule {
            Rule::Off => Ok((b, None)),
            Rule::Ratio(r) if r == REFERENCE_RATIO => Ok((b, None)),
            _ => Err(TrainError::Config(format!(
                "--reference-ratio {rule}: bundle {:?} has no category references to compare with (none in the \
                 bundle, and no seen out-of-distribution design of the sign taxonomy that is not one of its classes in \
                 its training split under {}), so there is no reference rule to set; 0 or 1 (the default) leave it \
                 without one",
                bundle.name,
                cfg.data.join("train").display()
            ))),
        };
    }
    b.score.category_votes.get_or_insert(CATEGORY_VOTES);
    match rule {
        Rule::Off => b.score.reference_ratio = None,
        Rule::Ratio(r) => b.score.reference_ratio = Some(r),
        Rule::Calibrate(tpr) => {
            b.score.reference_ratio = None;
            let fit = fit_bundle_rule(cfg, &b, tpr.unwrap_or(cfg.tpr), embed)?;
            apply_fit(&mut b, &fit);
            return Ok((b, Some(fit)));
        }
    }
    Ok((b, None))
}

/// [`fit_rule`] on the run's validation data for `bundle` (which has category references and no rule): the known
/// classes' validation crops, the held-out calibration designs as novelties (never designs the references hold),
/// and the calibration anomalies.
fn fit_bundle_rule(
    cfg: &TrainConfig,
    bundle: &Bundle,
    tpr: f64,
    embed: &mut dyn FnMut(&Tensor) -> Result<Tensor, TrainError>,
) -> Result<RuleFit, TrainError> {
    let data = load_validation_data(cfg)?;
    // Without held-out seen designs the novelties would be the references' own designs, which the rule stops by
    // construction.
    if data.calib_ood.is_empty() || data.val_ood_held_out == 0 {
        return Err(TrainError::Config(format!(
            "--reference-ratio calibrate: bundle {:?} (data {}) has no seen design held out of training and of the \
             references to judge the rule on; train the run with `odm-train train --calib-ood NAME,...` (an odm run \
             with three or more seen designs holds some out by itself)",
            bundle.name,
            cfg.data.display()
        )));
    }
    let scorer = Scorer::new(bundle);
    let mut crops = |x: &Tensor| -> Result<Vec<RuleCrop>, TrainError> { Ok(rule_crops(&scorer, &embed(x)?)) };
    let known = crops(&data.val_in.x)?;
    let novelties = match &data.val_ood {
        Some(t) => crops(&t.x.narrow(0, 0, data.val_ood_held_out as i64))?,
        None => Vec::new(),
    };
    let mut anomalies = Vec::new();
    for (_, t) in &data.val_anomaly {
        anomalies.extend(crops(&t.x)?);
    }
    fit_rule(&known, &novelties, &anomalies, tpr, &rule_ratios())
}

/// Put a fit into a bundle: the ratio; every novelty threshold (global, and each class's own) times the scale; each
/// anomaly threshold at least its novelty threshold, where one raised to its novelty threshold by calibration (a
/// closed band) falls back to the global one first; the fit's TPR as the calibration's, and the fit under
/// `training.reference_rule`. Warns when a band that was open closes: crops beyond it are called `anomaly`, never
/// `novelty`.
pub fn apply_fit(b: &mut Bundle, fit: &RuleFit) {
    let (gn_old, ga_old) = (b.score.novelty_threshold, b.score.anomaly_threshold);
    // (novelty, anomaly) of a band after the fit, and whether it closed.
    let refit = |n_old: f64, a_old: f64| {
        let n = n_old * fit.scale;
        let base = if a_old <= n_old { ga_old.min(a_old) } else { a_old };
        let a = base.max(n);
        (n, a, a_old > n_old && a <= n)
    };
    b.score.reference_ratio = fit.ratio;
    let (gn, ga, global_closed) = refit(gn_old, ga_old);
    (b.score.novelty_threshold, b.score.anomaly_threshold) = (gn, ga);
    let mut closed = Vec::new();
    let mut global_used = false;
    for c in &mut b.classes {
        if c.novelty_threshold.is_none() && c.anomaly_threshold.is_none() {
            global_used = true;
            continue;
        }
        let (n, a, shut) = refit(c.novelty_threshold.unwrap_or(gn_old), c.anomaly_threshold.unwrap_or(ga_old));
        (c.novelty_threshold, c.anomaly_threshold) = (Some(n), Some(a));
        if shut {
            closed.push(c.label.clone());
        }
    }
    if global_closed && global_used {
        closed.push("(the global thresholds)".into());
    }
    if !closed.is_empty() {
        eprintln!(
            "odm-train: warning: with the novelty thresholds x {:.4}, {} anomaly band(s) closed (the anomaly threshold \
             reached the novelty threshold), so crops beyond them are called `anomaly`, never `novelty`: {}",
            fit.scale,
            closed.len(),
            closed.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if let Some(c) = b.score.calibration.as_mut() {
        c.tpr = fit.tpr;
    }
    if let Some(t) = b.training.as_object_mut() {
        t.insert("reference_rule".into(), serde_json::to_value(fit).expect("a fit serialises"));
    }
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
    export_with(run, out, name, precision, Rule::default(), None)
}

/// [`export`] with the reference rule `rule` ([`scoring_bundle`]: a rule other than the default or none is refused
/// when the bundle has no category references, and on a `ce` run), and with `votes` (1 to [`MAX_CATEGORY_VOTES`]) as
/// the bundle's `score.category_votes` in place of the default ([`CATEGORY_VOTES`] with references). With another
/// rule or another number of votes than the defaults the bundle carries no `metrics` (the run's tables are the
/// defaults').
pub fn export_with(
    run: &Path,
    out: &Path,
    name: Option<String>,
    precision: Precision,
    rule: Rule,
    votes: Option<u32>,
) -> Result<PathBuf, TrainError> {
    if let Some(v) = votes.filter(|v| !(1..=MAX_CATEGORY_VOTES).contains(v)) {
        return Err(TrainError::Config(format!(
            "--category-votes {v}: a novelty's category is the vote of 1 to {MAX_CATEGORY_VOTES} nearest designs"
        )));
    }
    let (cfg, _vs, net, mut bundle, _) = load_net(run)?;
    rule.check_method(cfg.method, run, "export")?;
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
    // The references and the rule (centres and thresholds from the float network whatever the precision).
    let (mut bundle, fit) = scoring_bundle(&cfg, &bundle, rule, &mut |x| Ok(embed_all(&net, x, Device::Cpu)))?;
    if let Some(f) = &fit {
        eprintln!("odm-train: {}", f.describe());
    }
    // The run's tables were scored with the default rule: a bundle with another carries none rather than theirs.
    if rule != Rule::default() && !bundle.category_refs.is_empty() {
        bundle.metrics = serde_json::Value::Null;
    }
    // So were their categories, with the vote scoring_bundle writes: another number carries none of them either.
    if let Some(v) = votes {
        if bundle.score.category_votes.unwrap_or(1) != v {
            bundle.metrics = serde_json::Value::Null;
        }
        bundle.score.category_votes = Some(v);
    }
    std::fs::write(&onnx_path, bytes).map_err(TrainError::io(&onnx_path))?;
    bundle.name = name.clone();
    bundle.model.file = onnx_name;
    bundle.model.sha256 = sha256_file(&onnx_path).map_err(TrainError::io(&onnx_path))?;
    let path = out.join(format!("{name}.odm.json"));
    bundle.save(&path)?;
    Ok(path)
}
