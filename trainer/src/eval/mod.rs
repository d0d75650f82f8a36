// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train eval`: the paper's Table 2 for a run — in-distribution accuracy, and for every out-of-distribution test
//! set FPR at 95% TPR, detection error, AUROC, AUPR-in, AUPR-out (odm-core's metrics, in percent).
//!
//! Scores (larger = more out-of-distribution): ODM and ML use the distance to the nearest class centre, through
//! odm-core's scorer (the plugin's code); the cross-entropy baseline uses `1 - max softmax` (MSP, Hendrycks & Gimpel)
//! and, in a second table, ODIN (Liang et al.: temperature 1000, input perturbation 0.0014).
//! Sets: `novelty` (unseen classes), `seen-novelty` (seen OOD classes' test images), `NAME (seen)` for the held-out
//! test part of every mined tree (`--seen-anomaly-dir`, `--seen-novelty-dir`; "seen" as in the paper's Table 2),
//! `NAME (unseen)` for every `--anomaly-dir` (the part not used for calibration) and every evaluation-only
//! `eval --anomaly-dir`, and `noise` (Gaussian noise images made with the run's seed).
//!
//! Beyond the paper, for the three-way verdict: `novelty_vs_anomaly` — AUROC of the distance at telling unknown signs
//! (`novelty`, the "in" side) from each anomaly set and from all of them pooled — and a verdict confusion matrix
//! (truth: known sign / unknown sign / not a sign × verdict known / novelty / anomaly) under the bundle's thresholds.

pub mod categories;
pub mod metrics;
pub mod mistakes;
pub mod onnx;
pub mod refs;
pub mod sets;
pub mod sizes;
pub mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use odm_core::metrics::accuracy;
use odm_core::Bundle;
use tch::{Device, Kind, Tensor};

pub use metrics::{score_sets, Confusion, Metrics, SetRow};
pub use sets::{noise_images, test_sets, SetKind, TestSets};
pub use table::table;

use crate::error::TrainError;
use crate::export::bundle::{scoring_bundle, Rule};
use crate::train::config::Method;
use crate::train::embed::{embed_all, to_vec};
use crate::train::load::{load_net, load_run_bundle};
use crate::train::model::Net;
use metrics::set_row;

/// Maximum softmax probability scores `1 - max p` (and predictions) of a CE network, optionally with ODIN.
fn msp(net: &Net, x: &Tensor, odin: Option<(f64, f64)>) -> (Vec<f64>, Vec<i64>) {
    let mut scores = Vec::new();
    let mut preds = Vec::new();
    let n = x.size()[0];
    let mut i = 0;
    while i < n {
        let j = (i + 128).min(n);
        let xb = x.narrow(0, i, j - i);
        let probs = match odin {
            None => tch::no_grad(|| net.logits(&net.embed_t(&xb, false)).expect("CE net").softmax(-1, Kind::Float)),
            Some((t, eps)) => {
                let xg = xb.detach().set_requires_grad(true);
                let logits = net.logits(&net.embed_t(&xg, false)).expect("CE net") / t;
                let top = logits.log_softmax(-1, Kind::Float).max_dim(-1, false).0.sum(Kind::Float);
                let grad = Tensor::run_backward(&[top], &[&xg], false, false).remove(0);
                let xp = (&xg + grad.sign() * eps).detach();
                tch::no_grad(|| (net.logits(&net.embed_t(&xp, false)).expect("CE net") / t).softmax(-1, Kind::Float))
            }
        };
        let (p, arg) = probs.max_dim(-1, false);
        scores.extend(to_vec(&p).into_iter().map(|v| 1.0 - v as f64));
        preds.extend(Vec::<i64>::try_from(&arg).expect("int tensor"));
        i = j;
    }
    (scores, preds)
}

/// Evaluate a run; writes `metrics.json` and `metrics.md` (and `metrics-odin.*` for CE runs); returns the tables.
pub fn eval(run: &Path, noise: usize, extra_anomaly_dirs: &[PathBuf]) -> Result<Vec<Metrics>, TrainError> {
    eval_with(run, noise, extra_anomaly_dirs, None)
}

/// [`eval`], embedding with the ONNX file `onnx` in ONNX Runtime when given (an export of the run, such as an INT8
/// one) instead of the run's tch network. Its tables go to `metrics-onnx-STEM.json|md`; the run's bundle is left
/// as it is.
pub fn eval_with(
    run: &Path,
    noise: usize,
    extra_anomaly_dirs: &[PathBuf],
    onnx: Option<&Path>,
) -> Result<Vec<Metrics>, TrainError> {
    eval_full(run, noise, extra_anomaly_dirs, onnx, None, Rule::default())
}

/// Another rendering of the test designs to score a run on (`eval --test-data ROOT --tag NAME`): `ROOT/test/`
/// replaces the run's own test tree for the known and unknown signs; the anomaly sets stay the run's.
pub struct TestData<'a> {
    pub root: &'a Path,
    pub tag: &'a str,
}

/// [`eval_with`], optionally on [`TestData`]: its tables go to `metrics-TAG.json|md`, the bundle is left as it is.
/// A metric-learning run is scored with the bundle `export` would write with `rule`
/// ([`crate::export::bundle::scoring_bundle`]: the seen designs' centres as references, the rule; with
/// [`Rule::Calibrate`], its fit is in the tables). With a rule other than the default, the tables go to
/// `metrics[-…]-rule-RULE.json|md` (`calibrate:0.9` as `calibrate-0.9`) and say which rule; the bundle is left as it
/// is. A softmax run has no rule: another is refused.
pub fn eval_full(
    run: &Path,
    noise: usize,
    extra_anomaly_dirs: &[PathBuf],
    onnx: Option<&Path>,
    test_data: Option<TestData>,
    rule: Rule,
) -> Result<Vec<Metrics>, TrainError> {
    // A run whose weights are gone (`model.ot` missing) is scored through its ONNX export alone; what needs the float
    // network (references a bundle lacks, a calibrated rule, a ce run) is refused then.
    let (mut cfg, net, mut bundle, bundle_path) = if onnx.is_some() && !run.join("model.ot").exists() {
        let (cfg, bundle, path) = load_run_bundle(run)?;
        (cfg, None, bundle, path)
    } else {
        let (cfg, vs, net, bundle, path) = load_net(run)?;
        (cfg, Some((vs, net)), bundle, path)
    };
    rule.check_method(cfg.method, run, "eval")?;
    if net.is_none() && matches!(rule, Rule::Calibrate(_)) {
        return Err(no_weights(run));
    }
    // The references and the validation data stay the run's own, whatever test data is scored.
    let run_cfg = cfg.clone();
    if let Some(t) = &test_data {
        if !t.root.join("test").is_dir() {
            return Err(TrainError::Data(crate::error::DataError::MissingFolder { path: t.root.join("test") }));
        }
        cfg.data = t.root.to_owned();
    }
    let mut ort_net = match onnx {
        Some(p) if matches!(cfg.method, Method::Odm | Method::Ml) => {
            check_onnx_is_the_runs(&bundle, &bundle_path, p)?;
            Some(onnx::OnnxEmbedder::open(p, &bundle.model.input.name, &bundle.model.output.name)?)
        }
        Some(_) => return Err(TrainError::Config("eval --onnx scores metric-learning runs (odm, ml), not ce".into())),
        None => None,
    };
    let mut embed = |x: &Tensor| -> Result<Tensor, TrainError> {
        match (ort_net.as_mut(), &net) {
            (Some(e), _) => e.embed(x),
            (None, Some((_, net))) => Ok(embed_all(net, x, Device::Cpu)),
            (None, None) => Err(no_weights(run)),
        }
    };
    let tests = test_sets(&cfg, &bundle, noise, None, extra_anomaly_dirs)?;
    let (in_t, sets) = (&tests.inside, &tests.sets);
    let mut tables = Vec::new();
    match cfg.method {
        Method::Odm | Method::Ml => {
            // The bundle export writes: references and a calibrated rule from the float network, whatever network
            // (`--onnx`) the tables are scored with.
            let mut float_net = |x: &Tensor| match &net {
                Some((_, net)) => Ok(embed_all(net, x, Device::Cpu)),
                None => Err(no_weights(run)),
            };
            let (scoring, fit) = scoring_bundle(&run_cfg, &bundle, rule, &mut float_net)?;
            let mut m = score_sets(&format!("{:?}", cfg.method).to_lowercase(), &scoring, &tests, &mut embed)?;
            m.rule_fit = fit;
            m.reference_rule = (rule != Rule::default()).then(|| rule.to_string());
            tables.push(m)
        }
        Method::Ce => {
            let Some((_, net)) = &net else { return Err(no_weights(run)) };
            for (method, odin) in [("ce-msp", None), ("ce-odin", Some((1000.0, 0.0014)))] {
                let (ins, pred) = msp(net, &in_t.x, odin);
                let mut m = Metrics {
                    method: method.into(),
                    in_accuracy: 100.0 * accuracy(&pred, &in_t.y).map_err(|e| TrainError::Config(e.to_string()))?,
                    in_count: ins.len(),
                    in_verdicts: None,
                    sets: BTreeMap::new(),
                    novelty_vs_anomaly: BTreeMap::new(),
                    confusion: None,
                    categories: None,
                    sizes: None,
                    mistakes: None,
                    refs: None,
                    rule_fit: None,
                    reference_rule: None,
                };
                for (name, _, x) in sets {
                    let (outs, _) = msp(net, x, odin);
                    m.sets.insert(name.clone(), set_row(&ins, &outs, outs.len(), None)?);
                }
                tables.push(m);
            }
        }
    }
    for (i, m) in tables.iter().enumerate() {
        let mut stem = match onnx {
            Some(p) => format!("metrics-onnx-{}", p.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default()),
            None if i == 0 => "metrics".to_owned(),
            None => format!("metrics-{}", m.method.trim_start_matches("ce-")),
        };
        if let Some(t) = &test_data {
            stem = format!("{stem}-{}", t.tag);
        }
        if rule != Rule::default() {
            stem = format!("{stem}-rule-{}", rule.to_string().replace(':', "-"));
        }
        let json = run.join(format!("{stem}.json"));
        std::fs::write(&json, serde_json::to_string_pretty(m).expect("metrics serialise") + "\n")
            .map_err(TrainError::io(&json))?;
        let md = run.join(format!("{stem}.md"));
        std::fs::write(&md, m.markdown()).map_err(TrainError::io(&md))?;
    }
    if onnx.is_none() && test_data.is_none() && rule == Rule::default() {
        bundle.metrics = serde_json::to_value(&tables).expect("metrics serialise");
        bundle.save(&bundle_path)?;
    }
    Ok(tables)
}

/// The error for a step that needs the run's float network when `model.ot` is missing.
fn no_weights(run: &Path) -> TrainError {
    TrainError::Config(format!(
        "{}: no model.ot (the run's weights): scored through --onnx alone, which cannot give the bundle category \
         references it lacks or calibrate a reference rule; give a bundle with its references and the default rule",
        run.join("model.ot").display()
    ))
}

/// `eval --onnx FILE`: refuse a network that is not the run's, whose tables would be filed under the run without a
/// word. FILE is the run's when its SHA-256 is the run's bundle's (`NAME.onnx` or a copy), or when the bundle beside
/// it (`export` writes `STEM.odm.json`: the run's classes and centres, the file's SHA-256) holds the run's classes
/// and centres: an `export --int8`/`--fp16` of this run. Anything else (another run's network, an export whose bundle
/// was lost) is refused, saying how to tell.
pub fn check_onnx_is_the_runs(run_bundle: &Bundle, run_bundle_path: &Path, onnx: &Path) -> Result<(), TrainError> {
    let sha = odm_core::bundle::sha256_file(onnx).map_err(TrainError::io(onnx))?;
    if sha == run_bundle.model.sha256 {
        return Ok(());
    }
    let beside = odm_core::bundle::sibling_bundle_path(onnx);
    let why = if !beside.is_file() {
        format!("its SHA-256 is not the run's ({}) and no {} beside it says which run it is", run_bundle.model.file, {
            beside.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        })
    } else {
        match Bundle::load(&beside) {
            Err(e) => format!("the bundle beside it cannot be read: {e}"),
            Ok(b) if b.model.sha256 != sha => {
                format!(
                    "the bundle beside it, {}, was made for another network (its model.sha256 differs)",
                    beside.display()
                )
            }
            Ok(b) if b.classes != run_bundle.classes => format!(
                "the bundle beside it, {}, holds other classes or centres than the run's {}: it is another run's \
                 network",
                beside.display(),
                run_bundle_path.display()
            ),
            Ok(_) => return Ok(()),
        }
    };
    Err(TrainError::Config(format!(
        "eval --onnx {}: not this run's network: {why}; give the run's own export (odm-train export --run RUN) or \
         evaluate the run the file belongs to",
        onnx.display()
    )))
}
