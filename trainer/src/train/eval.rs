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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use odm_core::metrics::{accuracy, OodReport};
use odm_core::preprocess::CropSpec;
use odm_core::{Bundle, Scorer, Verdict};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::bundle::load_net;
use super::config::{Method, TrainConfig};
use super::embed::{distances, embed_all, to_vec};
use super::model::Net;
use super::rundata::{anomaly_split, decode, load_tree, mined_split, set_name, Tensors};
use crate::data::{self, split, Format};
use crate::error::TrainError;

/// One test set's row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetRow {
    pub fpr95: f64,
    pub det_err: f64,
    pub auroc: f64,
    pub aupr_in: f64,
    pub aupr_out: f64,
    pub count: usize,
    /// Share of the set given each verdict by the bundle's thresholds (metric-learning runs), in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdicts: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metrics {
    pub method: String,
    pub in_accuracy: f64,
    pub in_count: usize,
    /// Verdicts on the in-distribution test images (metric-learning runs), in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_verdicts: Option<BTreeMap<String, f64>>,
    pub sets: BTreeMap<String, SetRow>,
    /// AUROC (percent) of the distance at telling unknown signs (`novelty`) from anomalies: per anomaly set, and
    /// `all` pooled over every anomaly set (metric-learning runs with both kinds of test data).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub novelty_vs_anomaly: BTreeMap<String, f64>,
    /// Verdict counts by truth (metric-learning runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confusion: Option<Confusion>,
    /// Categories of the unknown signs and the figures per category (taxonomy labels only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<super::categories::CategoryReport>,
}

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

/// Verdict counts: rows are the truth (known sign, unknown sign, not a sign), columns the verdicts in
/// [`Verdict::ALL`] order (known, novelty, anomaly).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub known: [usize; 3],
    pub unknown_sign: [usize; 3],
    pub not_a_sign: [usize; 3],
}

impl Confusion {
    /// Count verdicts of `(nearest class, distance)` pairs into `row`.
    fn add(row: &mut [usize; 3], scorer: &Scorer, d: &[(usize, f64)]) {
        for &(k, dist) in d {
            let v = if k == usize::MAX { Verdict::Anomaly } else { scorer.verdict(k, dist) };
            if let Some(i) = Verdict::ALL.iter().position(|&w| w == v) {
                row[i] += 1;
            }
        }
    }

    /// The matrix as Markdown, counts and row percentages.
    pub fn markdown(&self) -> String {
        let mut s = String::from("| truth \\ verdict | known | novelty | anomaly |\n|---|---:|---:|---:|\n");
        for (name, row) in
            [("known sign", &self.known), ("unknown sign", &self.unknown_sign), ("not a sign", &self.not_a_sign)]
        {
            let n = row.iter().sum::<usize>().max(1) as f64;
            s.push_str(&format!("| {name} |"));
            for c in row {
                s.push_str(&format!(" {c} ({:.1}%) |", 100.0 * *c as f64 / n));
            }
            s.push('\n');
        }
        s
    }
}

impl Metrics {
    /// The table as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "method `{}` — in-distribution accuracy {:.2}% ({} test images)\n\n| set | n | FPR95 | det. err | AUROC | AUPR-in | AUPR-out |\n|---|---:|---:|---:|---:|---:|---:|\n",
            self.method, self.in_accuracy, self.in_count
        );
        for (name, r) in &self.sets {
            s.push_str(&format!(
                "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                r.count, r.fpr95, r.det_err, r.auroc, r.aupr_in, r.aupr_out
            ));
        }
        if !self.novelty_vs_anomaly.is_empty() {
            s.push_str("\nNovelty vs anomaly (AUROC of the distance, unknown signs against each anomaly set):\n\n");
            s.push_str("| anomaly set | AUROC |\n|---|---:|\n");
            for (name, auroc) in &self.novelty_vs_anomaly {
                s.push_str(&format!("| {name} | {auroc:.2} |\n"));
            }
        }
        if let Some(c) = &self.confusion {
            s.push_str("\nVerdicts under the bundle's thresholds (unknown sign: `novelty`; not a sign: every anomaly set):\n\n");
            s.push_str(&c.markdown());
        }
        if let Some(c) = &self.categories {
            s.push('\n');
            s.push_str(&c.markdown());
        }
        s
    }
}

fn verdict_rates(scorer: &Scorer, d: &[(usize, f64)]) -> BTreeMap<String, f64> {
    let mut m: BTreeMap<String, f64> = Verdict::ALL.iter().map(|v| (v.as_str().to_owned(), 0.0)).collect();
    for &(k, dist) in d {
        if k != usize::MAX {
            *m.get_mut(scorer.verdict(k, dist).as_str()).expect("all verdicts present") += 100.0 / d.len() as f64;
        }
    }
    m
}

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
    /// Training images of the seen out-of-distribution designs with their names (for the category rule that looks
    /// at every design centre, known and seen); only when [`test_sets`] is asked for them.
    pub seen_train: Option<(Vec<String>, Tensor)>,
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
    let in_t = decode(&test, &of(&roles.in_dist, cap.map(|c| c * 4)), &spec, &label_of)?;
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
    for (name, kind, names) in
        [("novelty", SetKind::Novelty, &roles.unseen_ood), ("seen-novelty", SetKind::SeenNovelty, &seen)]
    {
        let idx = of(names, cap);
        if kind == SetKind::Novelty {
            novelty_classes = idx.iter().map(|&i| test.classes[test.samples[i].class].clone()).collect();
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
    Ok(TestSets { inside: in_t, sets, novelty_classes, seen_train: None })
}

/// The training images of a run's seen out-of-distribution designs (those ODM trained on, not the calibration
/// ones), with their design names; None when the run has none or its labels are no taxonomy names.
pub(crate) fn seen_training_images(
    cfg: &TrainConfig,
    bundle: &Bundle,
) -> Result<Option<(Vec<String>, Tensor)>, TrainError> {
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
    eval_full(run, noise, extra_anomaly_dirs, onnx, None)
}

/// Another rendering of the test designs to score a run on (`eval --test-data ROOT --tag NAME`): `ROOT/test/`
/// replaces the run's own test tree for the known and unknown signs; the anomaly sets stay the run's.
pub struct TestData<'a> {
    pub root: &'a Path,
    pub tag: &'a str,
}

/// [`eval_with`], optionally on [`TestData`]: its tables go to `metrics-TAG.json|md`, the bundle is left as it is.
pub fn eval_full(
    run: &Path,
    noise: usize,
    extra_anomaly_dirs: &[PathBuf],
    onnx: Option<&Path>,
    test_data: Option<TestData>,
) -> Result<Vec<Metrics>, TrainError> {
    let (mut cfg, _vs, net, mut bundle, bundle_path) = load_net(run)?;
    // The seen designs' training images stay the run's own, whatever test data is scored.
    let seen_train = seen_training_images(&cfg, &bundle)?;
    if let Some(t) = &test_data {
        if !t.root.join("test").is_dir() {
            return Err(TrainError::Data(crate::error::DataError::MissingFolder { path: t.root.join("test") }));
        }
        cfg.data = t.root.to_owned();
    }
    let mut ort_net = match onnx {
        Some(p) if matches!(cfg.method, Method::Odm | Method::Ml) => {
            check_onnx_is_the_runs(&bundle, &bundle_path, p)?;
            Some(super::onnx_embed::OnnxEmbedder::open(p, &bundle.model.input.name, &bundle.model.output.name)?)
        }
        Some(_) => return Err(TrainError::Config("eval --onnx scores metric-learning runs (odm, ml), not ce".into())),
        None => None,
    };
    let mut embed = |x: &Tensor| -> Result<Tensor, TrainError> {
        match ort_net.as_mut() {
            Some(e) => e.embed(x),
            None => Ok(embed_all(&net, x, Device::Cpu)),
        }
    };
    let mut tests = test_sets(&cfg, &bundle, noise, None, extra_anomaly_dirs)?;
    tests.seen_train = seen_train;
    let (in_t, sets) = (&tests.inside, &tests.sets);
    let mut tables = Vec::new();
    match cfg.method {
        Method::Odm | Method::Ml => {
            tables.push(score_sets(&format!("{:?}", cfg.method).to_lowercase(), &bundle, &tests, &mut embed)?)
        }
        Method::Ce => {
            for (method, odin) in [("ce-msp", None), ("ce-odin", Some((1000.0, 0.0014)))] {
                let (ins, pred) = msp(&net, &in_t.x, odin);
                let mut m = Metrics {
                    method: method.into(),
                    in_accuracy: 100.0 * accuracy(&pred, &in_t.y).map_err(|e| TrainError::Config(e.to_string()))?,
                    in_count: ins.len(),
                    in_verdicts: None,
                    sets: BTreeMap::new(),
                    novelty_vs_anomaly: BTreeMap::new(),
                    confusion: None,
                    categories: None,
                };
                for (name, _, x) in sets {
                    let (outs, _) = msp(&net, x, odin);
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
        let json = run.join(format!("{stem}.json"));
        std::fs::write(&json, serde_json::to_string_pretty(m).expect("metrics serialise") + "\n")
            .map_err(TrainError::io(&json))?;
        let md = run.join(format!("{stem}.md"));
        std::fs::write(&md, m.markdown()).map_err(TrainError::io(&md))?;
    }
    if onnx.is_none() && test_data.is_none() {
        bundle.metrics = serde_json::to_value(&tables).expect("metrics serialise");
        bundle.save(&bundle_path)?;
    }
    Ok(tables)
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

/// One row of the paper's table: in-distribution distances `ins` against one set's `outs`.
fn set_row(ins: &[f64], outs: &[f64], n: usize, verdicts: Option<BTreeMap<String, f64>>) -> Result<SetRow, TrainError> {
    let r = OodReport::compute(ins, outs).map_err(|e| TrainError::Config(format!("metrics: {e}")))?.percent();
    Ok(SetRow {
        fpr95: r.fpr95,
        det_err: r.det_err,
        auroc: r.auroc,
        aupr_in: r.aupr_in,
        aupr_out: r.aupr_out,
        count: n,
        verdicts,
    })
}

/// The paper's table for a metric-learning bundle on its test sets (accuracy, every set against the in-distribution
/// test images, novelty against each anomaly set, the verdict confusion matrix), with `embed` giving the embeddings:
/// the run's network, or an ONNX file in ONNX Runtime (`eval --onnx`, `bundle --onnx`).
pub fn score_sets(
    method: &str,
    bundle: &Bundle,
    tests: &TestSets,
    embed: &mut dyn FnMut(&Tensor) -> Result<Tensor, TrainError>,
) -> Result<Metrics, TrainError> {
    let scorer = Scorer::new(bundle);
    let (in_t, sets) = (&tests.inside, &tests.sets);
    let din = distances(&scorer, &embed(&in_t.x)?);
    let pred: Vec<i64> = din.iter().map(|p| if p.0 == usize::MAX { -1 } else { p.0 as i64 }).collect();
    let ins: Vec<f64> = din.iter().map(|p| p.1).collect();
    let mut m = Metrics {
        method: method.to_owned(),
        in_accuracy: 100.0 * accuracy(&pred, &in_t.y).map_err(|e| TrainError::Config(e.to_string()))?,
        in_count: ins.len(),
        in_verdicts: Some(verdict_rates(&scorer, &din)),
        sets: BTreeMap::new(),
        novelty_vs_anomaly: BTreeMap::new(),
        confusion: None,
        categories: None,
    };
    let in_rows: Vec<(i64, usize, f64)> = in_t.y.iter().zip(&din).map(|(&y, &(k, d))| (y, k, d)).collect();
    let mut unseen_rows: Vec<(String, Vec<f32>, usize, f64)> = Vec::new();
    let mut confusion = Confusion::default();
    Confusion::add(&mut confusion.known, &scorer, &din);
    let mut novelty: Vec<f64> = Vec::new();
    let mut anomalies: Vec<(String, Vec<f64>)> = Vec::new();
    for (name, kind, x) in sets {
        let e = embed(x)?;
        let d = distances(&scorer, &e);
        let outs: Vec<f64> = d.iter().map(|p| p.1).collect();
        if *kind == SetKind::Novelty && tests.novelty_classes.len() == d.len() {
            let v = to_vec(&e);
            unseen_rows = tests
                .novelty_classes
                .iter()
                .zip(v.chunks_exact(scorer.dim()))
                .zip(&d)
                .map(|((c, row), &(k, dist))| (c.clone(), row.to_vec(), k, dist))
                .collect();
        }
        m.sets.insert(name.clone(), set_row(&ins, &outs, outs.len(), Some(verdict_rates(&scorer, &d)))?);
        match kind {
            SetKind::Novelty => {
                Confusion::add(&mut confusion.unknown_sign, &scorer, &d);
                novelty = outs;
            }
            SetKind::Anomaly => {
                Confusion::add(&mut confusion.not_a_sign, &scorer, &d);
                anomalies.push((name.clone(), outs));
            }
            SetKind::SeenNovelty => {}
        }
    }
    if !novelty.is_empty() && !anomalies.is_empty() {
        let auroc = |outs: &[f64]| -> Result<f64, TrainError> {
            Ok(OodReport::compute(&novelty, outs)
                .map_err(|e| TrainError::Config(format!("metrics: {e}")))?
                .percent()
                .auroc)
        };
        let all: Vec<f64> = anomalies.iter().flat_map(|(_, v)| v.iter().copied()).collect();
        m.novelty_vs_anomaly.insert("all".into(), auroc(&all)?);
        for (name, outs) in &anomalies {
            m.novelty_vs_anomaly.insert(name.clone(), auroc(outs)?);
        }
    }
    m.confusion = Some(confusion);
    let seen_refs = match &tests.seen_train {
        Some((names, x)) => super::categories::design_centres(names, &to_vec(&embed(x)?), scorer.dim()),
        None => Vec::new(),
    };
    m.categories = super::categories::report(bundle, &scorer, &in_rows, &unseen_rows, &seen_refs)?;
    Ok(m)
}

pub use super::table::table;
