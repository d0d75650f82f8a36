// SPDX-License-Identifier: MIT OR Apache-2.0
//! Training end to end on a tiny synthetic set: bad configurations are refused clearly; a short run writes a bundle
//! odm-core accepts, with centres that are the mean training embeddings and thresholds that keep the target share of
//! validation crops; evaluation writes the metrics file.

mod common;

use std::path::{Path, PathBuf};

use odm_core::metrics::rate_at_or_below;
use odm_core::{Bundle, Scorer, Verdict};
use odm_trainer::eval;
use odm_trainer::export::bundle::{self, Precision, Rule};
use odm_trainer::export::centers::{self, Enrol};
use odm_trainer::synth::{self, SynthConfig};
use odm_trainer::train::calibrate::RuleFit;
use odm_trainer::train::load::load_net;
use odm_trainer::train::{calibrate, embed, run, rundata, Method, TrainConfig};

fn tiny_data(dir: &Path) {
    common::six_classes(dir, 2, 24, 8);
}

fn cfg(dir: &Path, method: Method) -> TrainConfig {
    TrainConfig {
        data: dir.to_owned(),
        in_dist: ["regulatory--maximum-speed-limit-30--g1", "regulatory--stop--g1", "regulatory--yield--g1"]
            .map(String::from)
            .to_vec(),
        seen_ood: vec!["warning--other-danger--g1".into()],
        unseen_ood: ["regulatory--keep-left--g1", "regulatory--no-motor-vehicles--g1"].map(String::from).to_vec(),
        anomaly_dirs: vec![dir.join("background")],
        method,
        arch: "wrn-10-1".into(),
        input: 16,
        embedding: 8,
        steps: 30,
        batch: 16,
        checkpoint_every: 10,
        name: "tiny".into(),
        ..Default::default()
    }
}

#[test]
fn bad_configurations_are_refused() {
    let data = tempfile::tempdir().unwrap();
    tiny_data(data.path());
    let out = tempfile::tempdir().unwrap();
    let expect = |c: TrainConfig, part: &str| {
        let e = run::train(&c, out.path(), false, run::Existing::Refuse).unwrap_err().to_string();
        assert!(e.contains(part), "error {e:?} lacks {part:?}");
    };
    expect(TrainConfig { margin: 0.0, ..cfg(data.path(), Method::Odm) }, "--margin must be positive");
    expect(TrainConfig { margin: -1.0, ..cfg(data.path(), Method::Odm) }, "--margin must be positive");
    expect(TrainConfig { arch: "wrn-11-1".into(), ..cfg(data.path(), Method::Odm) }, "6n+4");
    expect(
        TrainConfig { in_dist: vec!["regulatory--maximum-speed-limit-31--g1".into()], ..cfg(data.path(), Method::Odm) },
        "regulatory--maximum-speed-limit-31--g1",
    );
    expect(
        TrainConfig { seen_ood: vec!["regulatory--stop--g1".into()], ..cfg(data.path(), Method::Odm) },
        "named in both --in and --seen-ood",
    );
    expect(TrainConfig { in_dist: vec![], ..cfg(data.path(), Method::Odm) }, "split in is empty");
    expect(
        TrainConfig { seen_ood: vec![], ..cfg(data.path(), Method::Odm) },
        "--method odm needs seen out-of-distribution",
    );
    expect(TrainConfig { data: data.path().join("nowhere"), ..cfg(data.path(), Method::Odm) }, "nowhere");
    expect(TrainConfig { permuted_ood: 1.5, ..cfg(data.path(), Method::Odm) }, "--permuted-ood (1.5) in [0, 1]");
    expect(TrainConfig { ood_fraction: 1.0, ..cfg(data.path(), Method::Odm) }, "--ood-fraction (1) must be in [0, 1)");
    // A typo is refused rather than read as the CPU.
    expect(
        TrainConfig { device: "gpu".into(), ..cfg(data.path(), Method::Odm) },
        "--device must be cpu or cuda, got \"gpu\"",
    );
}

#[test]
fn a_run_folder_that_holds_a_run_is_refused_unless_resumed_or_replaced() {
    let data = tempfile::tempdir().unwrap();
    tiny_data(data.path());
    let out = tempfile::tempdir().unwrap();
    let c = TrainConfig { steps: 2, ..cfg(data.path(), Method::Odm) };
    run::train(&c, out.path(), false, run::Existing::Refuse).unwrap();
    let e = run::train(&c, out.path(), false, run::Existing::Refuse).unwrap_err().to_string();
    assert!(e.contains("already holds a run") && e.contains("--resume") && e.contains("--force"), "{e}");
    // --force: the earlier run's files go (a stale metrics table, a bundle of another name), other files stay.
    std::fs::write(out.path().join("metrics.md"), "stale").unwrap();
    std::fs::write(out.path().join("old-name.odm.json"), "{}").unwrap();
    std::fs::write(out.path().join("notes.txt"), "mine").unwrap();
    run::train(&TrainConfig { name: "second".into(), ..c }, out.path(), false, run::Existing::Replace).unwrap();
    assert!(!out.path().join("metrics.md").exists() && !out.path().join("old-name.odm.json").exists());
    assert!(out.path().join("notes.txt").is_file() && out.path().join("second.odm.json").is_file());
    let bundles: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".odm.json"))
        .collect();
    assert_eq!(bundles, ["second.odm.json"], "the first run's bundle is gone");
}

/// A fresh tiny ODM run of [`cfg`]: its data, its folder and its bundle.
struct Run {
    data: tempfile::TempDir,
    out: tempfile::TempDir,
    bundle: PathBuf,
}

fn odm_run() -> Run {
    let data = tempfile::tempdir().unwrap();
    tiny_data(data.path());
    let out = tempfile::tempdir().unwrap();
    let bundle = run::train(&cfg(data.path(), Method::Odm), out.path(), false, run::Existing::Refuse)
        .expect("the tiny ODM run trains");
    Run { data, out, bundle }
}

const KNOWN: [&str; 3] = ["regulatory--maximum-speed-limit-30--g1", "regulatory--stop--g1", "regulatory--yield--g1"];

#[test]
fn short_odm_run_writes_a_bundle_odm_core_accepts() {
    let r = odm_run();
    let b = Bundle::open(&r.bundle).expect("odm-core accepts the run's bundle and its ONNX file's SHA-256");
    let labels: Vec<&str> = b.classes.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels, KNOWN, "the bundle's classes are --in, in order");
    assert_eq!(b.dim(), 8, "model.output.dim is --embedding");
    assert!(
        b.score.anomaly_threshold >= b.score.novelty_threshold,
        "anomaly threshold {} below novelty threshold {}",
        b.score.anomaly_threshold,
        b.score.novelty_threshold
    );
    for f in ["checkpoint.ot", "optimizer.ot", "state.json", "config.json", "model.ot", "log.jsonl", "tiny.onnx"] {
        assert!(r.out.path().join(f).is_file(), "the run folder lacks {f}");
    }
    // The seen design's centre as a reference and the rule at the default ratio, as `export` writes them: the run's
    // own bundle scores as its export.
    let refs: Vec<&str> = b.category_refs.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(refs, ["warning--other-danger--g1"]);
    assert_eq!(b.score.reference_ratio, Some(bundle::REFERENCE_RATIO));
    let exported = tempfile::tempdir().unwrap();
    let e = Bundle::open(&bundle::export(r.out.path(), exported.path(), None, Precision::Fp32).unwrap()).unwrap();
    assert_eq!((&e.category_refs, &e.score), (&b.category_refs, &b.score), "the export's references and score");
}

#[test]
fn centres_are_mean_training_embeddings_and_the_novelty_threshold_keeps_the_target_share() {
    let r = odm_run();
    let (cfg2, _vs, net, bundle, _) = load_net(r.out.path()).unwrap();
    let (rd, _) = rundata::load_run_data(&cfg2).unwrap();
    let v = embed::to_vec(&embed::embed_all(&net, &rd.train_in.x, tch::Device::Cpu));
    for (k, class) in bundle.classes.iter().enumerate() {
        let rows: Vec<&[f32]> =
            v.chunks_exact(8).zip(&rd.train_in.y).filter(|(_, &y)| y == k as i64).map(|(r, _)| r).collect();
        assert!(!rows.is_empty(), "class {k} has no training crop");
        for j in 0..8 {
            let mean = rows.iter().map(|r| r[j] as f64).sum::<f64>() / rows.len() as f64;
            assert!(
                (mean - class.center[j] as f64).abs() < 1e-3,
                "class {k} ({}) dim {j}: centre {} but mean training embedding {mean}",
                class.label,
                class.center[j]
            );
        }
    }
    let scorer = Scorer::new(&bundle);
    let val: Vec<f64> = embed::distances(&scorer, &embed::embed_all(&net, &rd.val_in.x, tch::Device::Cpu))
        .iter()
        .map(|p| p.1)
        .collect();
    let kept = rate_at_or_below(&val, bundle.score.novelty_threshold);
    assert!(kept >= 0.95, "the novelty threshold keeps {kept} of {} validation crops, not >= 0.95", val.len());
}

#[test]
fn eval_writes_every_test_set_and_its_table_into_the_bundle_and_the_figures_agree() {
    let r = odm_run();
    let tables = eval::eval(r.out.path(), 20, &[]).unwrap();
    assert_eq!(tables[0].method, "odm");
    for set in ["novelty", "seen-novelty", "background (unseen)", "noise"] {
        assert!(tables[0].sets.contains_key(set), "set {set:?} missing from {:?}", tables[0].sets.keys());
    }
    assert!(r.out.path().join("metrics.json").is_file(), "eval wrote no metrics.json");
    let b = Bundle::open(&r.bundle).expect("the bundle eval rewrote still validates against its model");
    assert!(b.metrics.is_array(), "eval did not write its table into the bundle: {}", b.metrics);

    // The figures: PCA of the embedding and ROC curves, real PNG files.
    let figures = odm_trainer::report::plot::plot_run(r.out.path(), 20).unwrap();
    for f in [&figures.pca, &figures.roc] {
        let img = image::open(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(img.width() >= 600, "{} is {} px wide", f.display(), img.width());
    }
    // Each ROC legend's AUROC is the report's (same sets, same noise count, same code), not a subsample's.
    assert_eq!(figures.roc_aurocs.len(), tables[0].sets.len(), "one ROC curve per test set");
    for (set, auroc) in &figures.roc_aurocs {
        assert_eq!(format!("{auroc:.2}"), format!("{:.2}", tables[0].sets[set].auroc), "AUROC of {set}");
    }
}

/// A dataset of the run's stop images and of no-motor-vehicles, a class the run never had in distribution.
fn enrol_data(run: &Run) -> tempfile::TempDir {
    enrol_classes(run, &["regulatory--stop--g1", "regulatory--no-motor-vehicles--g1"])
}

/// A `centers --data` tree with these classes of the run's data.
fn enrol_classes(run: &Run, classes: &[&str]) -> tempfile::TempDir {
    let enrol = tempfile::tempdir().unwrap();
    for class in classes {
        let dst = enrol.path().join("train").join(class);
        std::fs::create_dir_all(&dst).unwrap();
        for e in std::fs::read_dir(run.data.path().join("train").join(class)).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
        }
    }
    enrol
}

#[test]
fn centers_replace_refuses_to_drop_the_runs_classes_unless_allowed() {
    let r = odm_run();
    let b = Bundle::open(&r.bundle).unwrap();
    let enrol = enrol_data(&r);
    let new_dir = tempfile::tempdir().unwrap();
    let enrol_with = |mode| centers::centers(r.out.path(), enrol.path(), vec![], vec![], vec![], new_dir.path(), mode);
    let e = enrol_with(Enrol::Replace { allow_drop: false }).unwrap_err().to_string();
    for part in [
        "has 1 of the run's 3 classes",
        "would drop 2 (regulatory--maximum-speed-limit-30--g1, regulatory--yield--g1)",
        "--mode add",
        "--allow-drop",
    ] {
        assert!(e.contains(part), "{part:?} missing from: {e}");
    }
    let d = enrol_with(Enrol::Replace { allow_drop: true }).unwrap();
    assert_eq!(d.dropped, ["regulatory--maximum-speed-limit-30--g1", "regulatory--yield--g1"]);
    let nb = Bundle::open(&d.bundle).unwrap();
    let labels: Vec<&str> = nb.classes.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels, ["regulatory--no-motor-vehicles--g1", "regulatory--stop--g1"], "the classes of --data");
    assert_eq!(nb.model.sha256, b.model.sha256, "same network, same ONNX bytes");
}

#[test]
fn centers_add_keeps_the_runs_classes_and_appends_the_new_ones() {
    let r = odm_run();
    let b = Bundle::open(&r.bundle).unwrap();
    let enrol = enrol_data(&r);
    let replaced = tempfile::tempdir().unwrap();
    let nb = Bundle::open(
        &centers::centers(
            r.out.path(),
            enrol.path(),
            vec![],
            vec![],
            vec![],
            replaced.path(),
            Enrol::Replace { allow_drop: true },
        )
        .unwrap()
        .bundle,
    )
    .unwrap();
    let added = tempfile::tempdir().unwrap();
    let a = centers::centers(r.out.path(), enrol.path(), vec![], vec![], vec![], added.path(), Enrol::Add).unwrap();
    assert_eq!(a.kept.len(), 2, "kept: {:?}", a.kept);
    assert_eq!(a.added, ["regulatory--no-motor-vehicles--g1"]);
    assert_eq!(a.reenrolled, ["regulatory--stop--g1"]);
    let ab = Bundle::open(&a.bundle).unwrap();
    let ids: Vec<(i32, &str)> = ab.classes.iter().map(|c| (c.id, c.label.as_str())).collect();
    assert_eq!(ids, [(0, KNOWN[0]), (1, KNOWN[1]), (2, KNOWN[2]), (3, "regulatory--no-motor-vehicles--g1")]);
    assert_eq!(ab.classes[0], b.classes[0], "a kept class is unchanged");
    assert_eq!(ab.classes[1].center, nb.classes[1].center, "stop has its new centre");
    assert_eq!(
        (ab.score.novelty_threshold, ab.score.anomaly_threshold),
        (b.score.novelty_threshold, b.score.anomaly_threshold),
        "the global thresholds stay the run's"
    );
    assert_eq!(
        (&ab.category_refs, ab.score.reference_ratio),
        (&b.category_refs, b.score.reference_ratio),
        "and its rule"
    );
    assert!(ab.classes[3].novelty_threshold.is_some(), "the added class carries thresholds from its own data");
    assert_eq!(ab.training["enrolled"]["added"][0], "regulatory--no-motor-vehicles--g1");
}

#[test]
fn centers_add_of_a_seen_design_takes_it_out_of_the_references() {
    let r = odm_run();
    let b = Bundle::open(&r.bundle).unwrap();
    let design = "warning--other-danger--g1";
    assert_eq!(b.category_refs.iter().map(|c| c.label.as_str()).collect::<Vec<_>>(), [design]);
    let enrol = enrol_classes(&r, &[design]);
    let out = tempfile::tempdir().unwrap();
    let a = centers::centers(r.out.path(), enrol.path(), vec![], vec![], vec![], out.path(), Enrol::Add).unwrap();
    assert_eq!(a.added, [design]);
    // The bundle validates (a design is a class or a reference, never both), and the rule, with no reference left,
    // is gone: the new class's own crops are not called novelties for being near their own design.
    let ab = Bundle::open(&a.bundle).unwrap();
    assert!(ab.category_refs.is_empty() && ab.score.reference_ratio.is_none(), "{:?}", ab.category_refs);
    let (cfg, _vs, net, _, _) = load_net(r.out.path()).unwrap();
    let enrol_cfg = TrainConfig {
        data: enrol.path().to_owned(),
        in_dist: vec![design.into()],
        seen_ood: vec![],
        unseen_ood: vec![],
        anomaly_dirs: vec![],
        seen_anomaly_dirs: vec![],
        seen_novelty_dirs: vec![],
        ..cfg
    };
    // With no reference left, a rule is refused by name (and the default and none leave the bundle without one).
    for rule in [Rule::Ratio(1.5), Rule::Calibrate(None)] {
        let e = bundle::scoring_bundle(&enrol_cfg, &ab, rule, &mut |x| Ok(embed::embed_all(&net, x, tch::Device::Cpu)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no category references") && e.contains(&format!("{:?}", ab.name)), "{rule}: {e}");
    }
    for rule in [Rule::Off, Rule::default()] {
        let (s, fit) =
            bundle::scoring_bundle(&enrol_cfg, &ab, rule, &mut |x| Ok(embed::embed_all(&net, x, tch::Device::Cpu)))
                .unwrap();
        assert!(s.category_refs.is_empty() && s.score.reference_ratio.is_none() && fit.is_none(), "{rule}");
    }
    let x = rundata::load_validation_data(&enrol_cfg).unwrap().val_in.x;
    let scorer = Scorer::new(&ab);
    let e = embed::to_vec(&embed::embed_all(&net, &x, tch::Device::Cpu));
    let verdicts: Vec<(String, Verdict)> = e
        .chunks_exact(ab.dim())
        .map(|row| scorer.score(row).unwrap())
        .map(|s| (scorer.label(s.class_index).to_owned(), s.verdict))
        .collect();
    let own_known = verdicts.iter().filter(|(l, v)| l == design && *v == Verdict::Known).count();
    assert!(own_known > 0, "the enrolled design's crops reach their class: {verdicts:?}");
}

#[test]
fn a_fit_scales_every_novelty_threshold_and_keeps_each_anomaly_band_valid() {
    let r = odm_run();
    let mut b = Bundle::open(&r.bundle).unwrap();
    // An open global band to start from (the tiny run's calibration may have closed its own).
    let (gn, ga) = (b.score.novelty_threshold, b.score.novelty_threshold * 2.0);
    b.score.anomaly_threshold = ga;
    // Class 0: an anomaly threshold of its own and the global novelty threshold. Class 1: a band calibration
    // closed (its anomaly threshold raised to its novelty threshold, above the global anomaly threshold). Class 2:
    // the global thresholds.
    (b.classes[0].novelty_threshold, b.classes[0].anomaly_threshold) = (None, Some(gn * 1.5));
    (b.classes[1].novelty_threshold, b.classes[1].anomaly_threshold) = (Some(ga * 1.2), Some(ga * 1.2));
    (b.classes[2].novelty_threshold, b.classes[2].anomaly_threshold) = (None, None);
    let fit = |scale| RuleFit {
        ratio: Some(1.25),
        scale,
        tpr: 0.9,
        kept: 0.9,
        novelty_known: 0.1,
        anomaly_known: None,
        crops: [10, 10, 0],
    };
    let mut down = b.clone();
    bundle::apply_fit(&mut down, &fit(0.5));
    assert_eq!(down.score.novelty_threshold, gn * 0.5);
    assert_eq!(down.classes[0].novelty_threshold, Some(gn * 0.5), "the global one it used, scaled");
    assert_eq!(down.classes[0].anomaly_threshold, Some(gn * 1.5), "its own anomaly threshold stays");
    assert_eq!(down.classes[1].novelty_threshold, Some(ga * 0.6));
    assert_eq!(down.classes[1].anomaly_threshold, Some(ga), "the raised band falls back to the global one");
    assert_eq!((down.classes[2].novelty_threshold, down.classes[2].anomaly_threshold), (None, None));
    assert_eq!((down.score.reference_ratio, down.score.calibration.as_ref().map(|c| c.tpr)), (Some(1.25), Some(0.9)));
    // Scaled up past the anomaly thresholds: every band at least closed, never inverted, and the bundle valid.
    let mut up = b.clone();
    bundle::apply_fit(&mut up, &fit(4.0));
    assert_eq!(up.score.anomaly_threshold, up.score.novelty_threshold.max(ga));
    for c in &up.classes {
        if let (Some(n), Some(a)) = (c.novelty_threshold, c.anomaly_threshold) {
            assert!(a >= n, "{}: {n} {a}", c.label);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(r.out.path().join(&b.model.file), dir.path().join(&b.model.file)).unwrap();
    for (name, x) in [("down", &down), ("up", &up)] {
        let p = dir.path().join(format!("{name}.odm.json"));
        x.save(&p).unwrap();
        assert_eq!(&Bundle::open(&p).unwrap(), x, "{name}");
    }
}

#[test]
fn export_is_deterministic_renames_and_writes_int8_and_fp16_bundles() {
    let r = odm_run();
    let b = Bundle::open(&r.bundle).unwrap();
    let exported = tempfile::tempdir().unwrap();
    let export = |name: Option<&str>, p| {
        let path = bundle::export(r.out.path(), exported.path(), name.map(String::from), p).unwrap();
        Bundle::open(&path).unwrap_or_else(|e| panic!("the {name:?} export does not validate: {e}"))
    };
    let same = export(None, Precision::Fp32);
    assert_eq!(same.model.sha256, b.model.sha256, "the same weights give the same ONNX bytes");
    // The seen out-of-distribution designs trained on (not those held out for calibration) become category
    // references, one each, with the category of their names, and the dimension of the classes.
    let seen: Vec<String> = serde_json::from_value(b.training["split"]["seen_ood"].clone()).unwrap();
    let calib: Vec<String> = serde_json::from_value(b.training["calib_ood"].clone()).unwrap_or_default();
    let want: Vec<&String> = seen.iter().filter(|c| !calib.contains(c)).collect();
    let got: Vec<&String> = same.category_refs.iter().map(|r| &r.label).collect();
    assert!(!want.is_empty(), "the tiny run trains on a seen design: {seen:?}, calibration {calib:?}");
    assert_eq!(got, want, "category references");
    for r in &same.category_refs {
        assert_eq!(Some(r.category), odm_core::taxonomy::category_of(&r.label));
        assert_eq!(r.center.len(), b.dim());
    }
    // With references, the reference rule at the default ratio; another ratio or none on request; a ratio that is
    // not finite and positive is refused before anything is written.
    assert_eq!(same.score.reference_ratio, Some(bundle::REFERENCE_RATIO));
    let other = tempfile::tempdir().unwrap();
    let with = |rule| {
        let p = bundle::export_with(r.out.path(), other.path(), Some("r".into()), Precision::Fp32, rule, None).unwrap();
        Bundle::open(&p).unwrap().score.reference_ratio
    };
    assert_eq!(with(Rule::Ratio(1.5)), Some(1.5));
    assert_eq!(with(Rule::Off), None);
    for bad in [0.0, -1.0, f64::NAN] {
        let e = bundle::export_with(
            r.out.path(),
            other.path(),
            Some("bad".into()),
            Precision::Fp32,
            Rule::Ratio(bad),
            None,
        );
        assert!(e.unwrap_err().to_string().contains("reference ratio"), "{bad}");
        assert!(!other.path().join("bad.odm.json").exists() && !other.path().join("bad.onnx").exists());
    }
    // A novelty's category: the vote of the default number of designs with references; another number on request,
    // and then no metrics (the run's tables were scored with the default); a number out of 1-32 refused before
    // anything is written.
    assert_eq!(same.score.category_votes, Some(bundle::CATEGORY_VOTES));
    // The run's tables (a stand-in: this run was not evaluated), which an export carries when they fit it.
    let mut run_bundle = Bundle::open(&r.bundle).unwrap();
    run_bundle.metrics = serde_json::json!([{ "method": "odm", "stand-in": true }]);
    run_bundle.save(&r.bundle).unwrap();
    let voting = |votes| {
        let p =
            bundle::export_with(r.out.path(), other.path(), Some("v".into()), Precision::Fp32, Rule::default(), votes)
                .unwrap();
        Bundle::open(&p).unwrap()
    };
    assert_eq!(voting(Some(bundle::CATEGORY_VOTES)).metrics, run_bundle.metrics, "the default number keeps the tables");
    assert_eq!(voting(None).metrics, run_bundle.metrics);
    for v in [1, 3, 32] {
        let vb = voting(Some(v));
        assert_eq!((vb.score.category_votes, vb.metrics.is_null()), (Some(v), true), "{v}");
        assert_eq!(vb.classes, same.classes);
    }
    for bad in [0, 33] {
        let e = bundle::export_with(
            r.out.path(),
            other.path(),
            Some("bad".into()),
            Precision::Fp32,
            Rule::default(),
            Some(bad),
        );
        let e = e.unwrap_err().to_string();
        assert!(e.contains("--category-votes") && e.contains(&bad.to_string()), "{e}");
        assert!(!other.path().join("bad.odm.json").exists() && !other.path().join("bad.onnx").exists());
    }
    let eb = export(Some("renamed"), Precision::Fp32);
    assert_eq!((eb.name.as_str(), eb.model.file.as_str()), ("renamed", "renamed.onnx"));
    assert_eq!(eb.classes, b.classes, "an export keeps the run's classes and centres");
    let q = export(Some("int8"), Precision::Int8(64));
    assert_eq!((q.model.precision.as_str(), q.classes.len()), ("int8", b.classes.len()));
    assert_ne!(q.model.sha256, b.model.sha256, "the int8 model is another file");
    let h = export(Some("fp16"), Precision::Fp16);
    assert_eq!((h.model.precision.as_str(), h.classes.len()), ("fp16", b.classes.len()));
    let size = |f: &str| std::fs::metadata(exported.path().join(f)).unwrap().len();
    assert!(size("fp16.onnx") < size("renamed.onnx") * 6 / 10, "{} vs {}", size("fp16.onnx"), size("renamed.onnx"));
}

#[test]
fn eval_onnx_scores_an_export_of_the_run_in_its_own_files() {
    let r = odm_run();
    let exported = tempfile::tempdir().unwrap();
    bundle::export(r.out.path(), exported.path(), Some("int8".into()), Precision::Int8(64)).unwrap();
    let before = std::fs::read(&r.bundle).unwrap();
    let t = eval::eval_with(r.out.path(), 10, &[], Some(&exported.path().join("int8.onnx"))).unwrap();
    assert!(t[0].sets.contains_key("novelty"), "no novelty set: {:?}", t[0].sets.keys());
    assert!(t[0].in_accuracy > 0.0, "in-distribution accuracy {}", t[0].in_accuracy);
    assert!(r.out.path().join("metrics-onnx-int8.md").is_file(), "no metrics-onnx-int8.md");
    assert_eq!(std::fs::read(&r.bundle).unwrap(), before, "the run's bundle keeps its float network's tables");
    // The run's own ONNX file (or a copy) is the run's too.
    let copy = exported.path().join("copy.onnx");
    std::fs::copy(r.out.path().join("tiny.onnx"), &copy).unwrap();
    eval::eval_with(r.out.path(), 10, &[], Some(&copy)).expect("a copy of the run's own ONNX file is the run's");
}

#[test]
fn eval_onnx_scores_a_run_whose_weights_are_gone_through_its_export_alone() {
    let r = odm_run();
    let whole = eval::eval_with(r.out.path(), 10, &[], Some(&r.out.path().join("tiny.onnx"))).unwrap().remove(0);
    // What a user has when only the export is left: the run's config.json beside the exported bundle and network.
    let gone = tempfile::tempdir().unwrap();
    let b = Bundle::open(&bundle::export(r.out.path(), gone.path(), None, Precision::Fp32).unwrap()).unwrap();
    assert!(!b.category_refs.is_empty(), "the tiny run's export carries its seen design's centre");
    assert_eq!(b.score.category_votes, Some(bundle::CATEGORY_VOTES), "an export with references votes");
    std::fs::copy(r.out.path().join("config.json"), gone.path().join("config.json")).unwrap();
    assert!(!gone.path().join("model.ot").exists());
    let alone = eval::eval_with(gone.path(), 10, &[], Some(&gone.path().join("tiny.onnx"))).unwrap().remove(0);
    assert_eq!(
        serde_json::to_value(&alone).unwrap(),
        serde_json::to_value(&whole).unwrap(),
        "the same tables as the run with its weights scored through the same network"
    );
    let cats = alone.categories.as_ref().expect("taxonomy labels give a category report");
    assert_eq!(cats.design_votes, Some(bundle::CATEGORY_VOTES));
    assert!(cats.novelty_right_design_vote.is_some() && cats.unseen_right_design_vote.is_some());
    // Without --onnx the missing weights are named; a calibrated rule, which needs the float network, is refused.
    let e = eval::eval(gone.path(), 10, &[]).unwrap_err().to_string();
    assert!(e.contains("model.ot"), "{e}");
    let e = eval::eval_full(gone.path(), 10, &[], Some(&gone.path().join("tiny.onnx")), None, Rule::Calibrate(None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.ot") && e.contains("calibrate"), "{e}");
    assert!(!gone.path().join("metrics-onnx-tiny-rule-calibrate.json").exists(), "a refused eval wrote its table");
}

#[test]
fn eval_onnx_refuses_another_runs_network() {
    let r = odm_run();
    // Another run of the same shape (another seed): it would score without an error, under this run's name.
    let other = tempfile::tempdir().unwrap();
    let c = TrainConfig { seed: 9, steps: 2, ..cfg(r.data.path(), Method::Odm) };
    run::train(&c, other.path(), false, run::Existing::Refuse).unwrap();
    let theirs = other.path().join("tiny.onnx");
    let e = eval::eval_with(r.out.path(), 10, &[], Some(&theirs)).expect_err("another run's network is refused");
    let e = e.to_string();
    assert!(e.contains("eval --onnx") && e.contains(&theirs.display().to_string()), "{e}");
    assert!(e.contains("not this run's network"), "{e}");
    assert!(!r.out.path().join("metrics-onnx-tiny.md").exists(), "a refused eval wrote its table");
    // Alone, without the bundle beside it, the other run's file is refused too.
    let alone = tempfile::tempdir().unwrap();
    std::fs::copy(&theirs, alone.path().join("net.onnx")).unwrap();
    let e = eval::eval_with(r.out.path(), 10, &[], Some(&alone.path().join("net.onnx"))).unwrap_err().to_string();
    assert!(e.contains("no net.odm.json beside it"), "{e}");
}

#[test]
fn eval_reports_how_often_unseen_designs_get_their_category() {
    let r = odm_run();
    let own = eval::eval(r.out.path(), 10, &[]).unwrap();
    let cats = own[0].categories.as_ref().expect("taxonomy labels give a category report");
    // The two unseen designs (keep-left, no-motor-vehicles) are both regulatory, as every known class.
    assert_eq!(cats.per_category.keys().collect::<Vec<_>>(), ["regulatory"]);
    assert_eq!(cats.per_category["regulatory"].count, 16, "2 unseen designs x 8 test crops");
    assert_eq!(cats.unseen_right_nearest_class, 100.0, "every known class is regulatory: the nearest is right");
    // The seen design (warning--other-danger) takes part in the rule over every design centre.
    let d = cats.unseen_right_nearest_design;
    assert!(d.is_some_and(|p| (0.0..=100.0).contains(&p)), "unseen_right_nearest_design {d:?}");
}

#[test]
fn eval_reports_accuracy_and_novelty_by_crop_size_of_the_test_files() {
    let r = odm_run();
    let m = eval::eval(r.out.path(), 10, &[]).unwrap().remove(0);
    let sizes = m.sizes.as_ref().expect("image folders give the rows by crop size");
    // Count the crops per bin from the PNG headers of the test folders, as a user would.
    let count = |classes: &[&str]| -> Vec<usize> {
        let mut n = vec![0; eval::sizes::EDGES.len()];
        for c in classes {
            for f in std::fs::read_dir(r.data.path().join("test").join(c)).unwrap() {
                let (w, h) = image::image_dimensions(f.unwrap().path()).unwrap();
                n[eval::sizes::EDGES.iter().rposition(|&e| w.max(h) >= e).unwrap()] += 1;
            }
        }
        n
    };
    let known = count(&KNOWN);
    let unseen = count(&["regulatory--keep-left--g1", "regulatory--no-motor-vehicles--g1"]);
    for row in &sizes.rows {
        let b = eval::sizes::EDGES.iter().position(|&e| e == row.lo).unwrap();
        assert_eq!((row.known, row.unseen), (known[b], unseen[b]), "bin from {} px", row.lo);
        assert!((0.0..=100.0).contains(&row.accuracy) && (0.0..=100.0).contains(&row.unseen_known), "{row:?}");
        assert_eq!(row.auroc.is_some(), row.known > 0 && row.unseen > 0, "{row:?}");
    }
    assert_eq!(sizes.rows.iter().map(|r| r.known).sum::<usize>(), m.in_count);
    assert_eq!(sizes.rows.iter().map(|r| r.unseen).sum::<usize>(), 16, "2 unseen designs x 8 test crops");
    assert!(sizes.rows.len() >= 2, "the renderer's 12-96 px signs fall in more than one bin: {sizes:?}");
    // Weighted by the bins' counts, the accuracy is the table's.
    let acc = sizes.rows.iter().map(|r| r.accuracy * r.known as f64).sum::<f64>() / m.in_count as f64;
    assert!((acc - m.in_accuracy).abs() < 1e-6, "{acc} against {}", m.in_accuracy);
    let md = std::fs::read_to_string(r.out.path().join("metrics.md")).unwrap();
    assert!(md.contains("| crop side | known crops |"), "metrics.md lacks the rows by size:\n{md}");
}

#[test]
fn eval_says_what_the_known_signs_are_taken_for() {
    let r = odm_run();
    let m = eval::eval(r.out.path(), 10, &[]).unwrap().remove(0);
    let w = m.mistakes.as_ref().expect("taxonomy labels give the mistakes on known signs");
    assert!(w.wrong > 0, "the tiny run takes some known crops for another design: {w:?}");
    assert_eq!(w.known, m.in_count);
    let right = m.in_count - w.wrong;
    assert!((100.0 * right as f64 / m.in_count as f64 - m.in_accuracy).abs() < 1e-6, "{w:?} against {}", m.in_accuracy);
    // The three known designs are three signs of one category: no variant of a sign, no other category.
    assert_eq!((w.same_sign, w.other_category), (0, 0), "{w:?}");
    assert_eq!(w.same_category, w.wrong, "{w:?}");
    assert_eq!(w.sign_accuracy, m.in_accuracy);
    // The category report's share of known crops given their own category is the same figure counted the other way.
    let c = m.categories.as_ref().expect("taxonomy labels give the category report");
    let own_category = 100.0 * (w.known - w.other_category) as f64 / w.known as f64;
    assert!((c.known_right - own_category).abs() < 1e-9, "{} against {own_category}", c.known_right);
    // Three designs make at most six pairs, all listed: together they are every mistake.
    assert_eq!(w.pairs.iter().map(|p| p.count).sum::<usize>(), w.wrong, "{w:?}");
    for p in &w.pairs {
        assert!(KNOWN.contains(&p.truth.as_str()) && KNOWN.contains(&p.predicted.as_str()) && p.truth != p.predicted);
    }
    let md = std::fs::read_to_string(r.out.path().join("metrics.md")).unwrap();
    assert!(md.contains(&format!("Mistakes on known signs: {} of the {}", w.wrong, m.in_count)), "{md}");
}

#[test]
fn plain_renders_are_deterministic_and_scored_by_eval_test_data() {
    let r = odm_run();
    let b = Bundle::open(&r.bundle).unwrap();
    let catalogue = odm_trainer::synth::designs::Catalogue::open(None).unwrap();
    let plain_dir = tempfile::tempdir().unwrap();
    let names: Vec<String> =
        b.classes.iter().map(|c| c.label.clone()).chain(cfg(r.data.path(), Method::Odm).unseen_ood).collect();
    let pc = odm_trainer::synth::plain::PlainConfig { seed: 3, per_design: 4, designs: names.clone(), photos: None };
    assert_eq!(odm_trainer::synth::plain::run(plain_dir.path(), &pc, &catalogue).unwrap(), 4 * names.len());
    let again = tempfile::tempdir().unwrap();
    odm_trainer::synth::plain::run(again.path(), &pc, &catalogue).unwrap();
    let f = "test/regulatory--stop--g1/00003.png";
    assert_eq!(
        std::fs::read(plain_dir.path().join(f)).unwrap(),
        std::fs::read(again.path().join(f)).unwrap(),
        "{f} differs between two renders of the same seed"
    );
    assert!(plain_dir.path().join(odm_trainer::synth::plain::DONE).is_file(), "plain.json is written last");
    let before = std::fs::read(&r.bundle).unwrap();
    let td = eval::TestData { root: plain_dir.path(), tag: "plain" };
    let p = eval::eval_full(r.out.path(), 10, &[], None, Some(td), Rule::default()).unwrap();
    assert_eq!(p[0].in_count, 4 * b.classes.len(), "known crops scored");
    assert_eq!(p[0].sets["novelty"].count, 8, "unseen crops scored");
    assert!(r.out.path().join("metrics-plain.md").is_file(), "no metrics-plain.md");
    // The seen design's training images come from the run's own data, not from the plain tree (which has none).
    assert!(p[0].categories.as_ref().is_some_and(|c| c.unseen_right_nearest_design.is_some()));
    assert_eq!(std::fs::read(&r.bundle).unwrap(), before, "eval --test-data left the run's bundle alone");
    // A test root without test/ is refused by name.
    let td = eval::TestData { root: Path::new("/nonexistent-plain"), tag: "plain" };
    let e = eval::eval_full(r.out.path(), 10, &[], None, Some(td), Rule::default()).unwrap_err().to_string();
    assert!(e.contains("/nonexistent-plain/test"), "{e}");
}

#[test]
fn export_and_eval_calibrate_the_reference_rule_with_the_thresholds_on_validation_data() {
    let data = tempfile::tempdir().unwrap();
    tiny_data(data.path());
    let out = tempfile::tempdir().unwrap();
    // Two seen designs: one trained on (the reference), one held out to judge the rule on.
    let c = TrainConfig {
        seen_ood: ["warning--other-danger--g1", "regulatory--keep-left--g1"].map(String::from).to_vec(),
        unseen_ood: vec!["regulatory--no-motor-vehicles--g1".into()],
        calib_ood: vec!["regulatory--keep-left--g1".into()],
        ..cfg(data.path(), Method::Odm)
    };
    let plain = Bundle::open(&run::train(&c, out.path(), false, run::Existing::Refuse).unwrap()).unwrap();
    let exported = tempfile::tempdir().unwrap();
    let export = |name: &str, rule| {
        let p =
            bundle::export_with(out.path(), exported.path(), Some(name.into()), Precision::Fp32, rule, None).unwrap();
        let b = Bundle::open(&p).unwrap();
        let fit: RuleFit = serde_json::from_value(b.training["reference_rule"].clone()).expect("the fit is recorded");
        (b, fit)
    };
    let (b, fit) = export("cal", Rule::Calibrate(None));
    let refs: Vec<&str> = b.category_refs.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(refs, ["warning--other-danger--g1"], "the held-out design is no reference");
    assert_eq!(b.score.reference_ratio, fit.ratio, "the bundle carries the fitted ratio");
    assert_eq!(fit.tpr, plain.score.calibration.as_ref().unwrap().tpr, "the run's own TPR by default");
    // Every novelty threshold scaled; each class's anomaly threshold the global one raised to its novelty one.
    assert_eq!(b.score.novelty_threshold, plain.score.novelty_threshold * fit.scale);
    for (c, p) in b.classes.iter().zip(&plain.classes) {
        assert_eq!(c.novelty_threshold, p.novelty_threshold.map(|n| n * fit.scale), "{}", c.label);
        if let Some(n) = c.novelty_threshold {
            assert_eq!(c.anomaly_threshold, Some(b.score.anomaly_threshold.max(n)), "{}", c.label);
        }
    }
    assert_eq!(
        b.classes.iter().map(|c| &c.center).collect::<Vec<_>>(),
        plain.classes.iter().map(|c| &c.center).collect::<Vec<_>>()
    );
    // The validation crops, loaded alone, are train's; odm-core's scorer with the exported bundle keeps at least
    // the asked share of them `known` (the fit's arithmetic and the scorer's agree).
    let (cfg2, _vs, net, _, _) = load_net(out.path()).unwrap();
    let val = rundata::load_validation_data(&cfg2).unwrap();
    let (full, _) = rundata::load_run_data(&cfg2).unwrap();
    assert_eq!(val.val_in.y, full.val_in.y);
    assert!(val.val_in.x.equal(&full.val_in.x), "the same validation crops");
    assert!(val.val_ood.as_ref().unwrap().x.equal(&full.val_ood.as_ref().unwrap().x), "the same calibration novelties");
    assert_eq!(val.train_in.y.len(), 0, "no training crop decoded");
    let kept = |b: &Bundle| {
        let scorer = Scorer::new(b);
        let e = embed::to_vec(&embed::embed_all(&net, &val.val_in.x, tch::Device::Cpu));
        let n = e.chunks_exact(b.dim()).filter(|row| scorer.score(row).unwrap().verdict == Verdict::Known).count();
        n as f64 / val.val_in.y.len() as f64
    };
    // Exactly: the fit decides as the scorer does, bit for bit.
    assert!(kept(&b) >= fit.tpr && kept(&b) == fit.kept, "{} against {fit:?}", kept(&b));
    assert!(b.metrics.is_null(), "the run's tables were scored with another rule: the export carries none");
    // Another TPR on request, recorded as the calibration's.
    let (b5, fit5) = export("half", Rule::Calibrate(Some(0.5)));
    assert_eq!((fit5.tpr, b5.score.calibration.as_ref().unwrap().tpr), (0.5, 0.5));
    assert!(kept(&b5) >= 0.5 && kept(&b5) == fit5.kept, "{} against {fit5:?}", kept(&b5));
    // The calibration novelties are the held-out designs only: for ODM all of val_ood; for a run that did not
    // train on its seen designs (ml), their validation crops follow and are left out of the fit.
    let held = val.val_ood.as_ref().unwrap().y.len();
    assert_eq!(val.val_ood_held_out, held);
    let ml = rundata::load_validation_data(&TrainConfig { method: Method::Ml, ..cfg2.clone() }).unwrap();
    assert_eq!(ml.val_ood_held_out, held);
    assert!(ml.val_ood.as_ref().unwrap().y.len() > held, "ml calibrates its anomaly threshold on more novelties");
    assert_eq!(fit.crops, [val.val_in.y.len(), held, fit.crops[2]]);
    let ml_out = tempfile::tempdir().unwrap();
    run::train(&TrainConfig { method: Method::Ml, ..c.clone() }, ml_out.path(), false, run::Existing::Refuse).unwrap();
    let p = bundle::export_with(
        ml_out.path(),
        exported.path(),
        Some("ml".into()),
        Precision::Fp32,
        Rule::Calibrate(None),
        None,
    )
    .unwrap();
    let ml_fit: RuleFit = serde_json::from_value(Bundle::open(&p).unwrap().training["reference_rule"].clone()).unwrap();
    assert_eq!(ml_fit.crops[1], held, "the ml fit is judged on the held-out design alone, not on its references");
    // eval --reference-ratio calibrate scores the bundle export writes, says so, and files its tables apart: the
    // default rule's tables and the run's bundle are left alone.
    let (metrics, run_bundle) = (out.path().join("metrics.json"), out.path().join("tiny.odm.json"));
    let before = (std::fs::read(&metrics).ok(), std::fs::read(&run_bundle).unwrap());
    let m = eval::eval_full(out.path(), 10, &[], None, None, Rule::Calibrate(None)).unwrap().remove(0);
    assert_eq!(m.rule_fit, Some(fit));
    assert_eq!(m.reference_rule.as_deref(), Some("calibrate"));
    let md = m.markdown();
    assert!(md.contains("chosen together on validation data") && md.contains("--reference-ratio calibrate"), "{md}");
    assert_eq!((std::fs::read(&metrics).ok(), std::fs::read(&run_bundle).unwrap()), before);
    let filed: eval::Metrics =
        serde_json::from_slice(&std::fs::read(out.path().join("metrics-rule-calibrate.json")).unwrap()).unwrap();
    assert_eq!(filed.rule_fit, Some(fit));
    eval::eval_full(out.path(), 10, &[], None, None, Rule::Calibrate(Some(0.5))).unwrap();
    assert!(out.path().join("metrics-rule-calibrate-0.5.md").is_file());
    // A run with no held-out seen design has nothing to judge the rule on: refused, nothing written.
    let r = odm_run();
    let none = tempfile::tempdir().unwrap();
    let e =
        bundle::export_with(r.out.path(), none.path(), Some("x".into()), Precision::Fp32, Rule::Calibrate(None), None);
    assert!(e.unwrap_err().to_string().contains("--calib-ood"));
    assert!(!none.path().join("x.onnx").exists() && !none.path().join("x.odm.json").exists());
}

#[test]
fn the_reference_rule_is_parsed_as_the_flags_take_it() {
    use std::str::FromStr;
    assert_eq!(Rule::from_str("calibrate"), Ok(Rule::Calibrate(None)));
    assert_eq!(Rule::from_str("calibrate:0.9"), Ok(Rule::Calibrate(Some(0.9))));
    assert_eq!(Rule::from_str("0"), Ok(Rule::Off));
    assert_eq!(Rule::from_str("1.25"), Ok(Rule::Ratio(1.25)));
    for bad in ["", "-1", "nan", "inf", "calibrate:0", "calibrate:1.5", "calibrate:x", "calib"] {
        let e = Rule::from_str(bad).unwrap_err();
        assert!(e.contains(&format!("{:?}", bad.trim_start_matches("calibrate:"))), "{bad}: {e}");
    }
    for r in [Rule::Off, Rule::Ratio(1.5), Rule::Calibrate(None), Rule::Calibrate(Some(0.9))] {
        assert_eq!(Rule::from_str(&r.to_string()), Ok(r), "{r}");
    }
    assert_eq!(Rule::default(), Rule::Ratio(bundle::REFERENCE_RATIO));
}

/// The weights of a run folder's `model.ot`, by name.
fn weights(run: &Path) -> Vec<(String, tch::Tensor)> {
    let mut w = tch::Tensor::load_multi(run.join("model.ot")).unwrap();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

#[test]
fn resume_continues_the_same_optimisation() {
    let data = tempfile::tempdir().unwrap();
    tiny_data(data.path());
    let c = TrainConfig { steps: 20, checkpoint_every: 10, ..cfg(data.path(), Method::Odm) };
    let straight = tempfile::tempdir().unwrap();
    run::train(&c, straight.path(), false, run::Existing::Refuse).unwrap();
    // Stop at step 10, then resume to 20: the same batches, weights and Adam moments as the straight run.
    let split = tempfile::tempdir().unwrap();
    run::train(&TrainConfig { steps: 10, ..c.clone() }, split.path(), false, run::Existing::Refuse).unwrap();
    assert!(split.path().join("optimizer.ot").is_file());
    let ten = weights(split.path());
    run::train(&c, split.path(), false, run::Existing::Resume).unwrap();
    let (a, b) = (weights(straight.path()), weights(split.path()));
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        let diff = (ta - tb).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{na} differs by {diff} after resuming");
    }
    // Steps 10 to 20 moved the weights: equal weights above mean the same optimisation, not a run that stopped.
    let moved =
        ten.iter().zip(&a).map(|((_, t10), (_, t20))| (t10 - t20).abs().max().double_value(&[])).fold(0.0, f64::max);
    assert!(moved > 1e-4, "steps 10..20 changed nothing ({moved})");

    // Without the optimiser state a resume is refused, naming the file, instead of silently restarting Adam.
    std::fs::remove_file(split.path().join("optimizer.ot")).unwrap();
    let e = run::train(&TrainConfig { steps: 30, ..c }, split.path(), false, run::Existing::Resume)
        .unwrap_err()
        .to_string();
    assert!(e.contains("optimizer.ot"), "{e}");
}

/// The steps of a run folder's `log.jsonl`, in order.
fn logged_steps(run: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap()).collect()
}

#[test]
fn resume_keeps_the_log_of_the_steps_before_it() {
    let data = tempfile::tempdir().unwrap();
    tiny_data(data.path());
    let out = tempfile::tempdir().unwrap();
    let c = TrainConfig { steps: 20, checkpoint_every: 10, ..cfg(data.path(), Method::Odm) };
    run::train(&TrainConfig { steps: 10, ..c.clone() }, out.path(), false, run::Existing::Refuse).unwrap();
    assert_eq!(logged_steps(out.path()), [0, 9], "the first part logs its first and last step");
    run::train(&c, out.path(), false, run::Existing::Resume).unwrap();
    assert_eq!(logged_steps(out.path()), [0, 9, 19], "a resume appends its steps to the earlier ones");
    // A resume with nothing left to do leaves the log as it was (it used to empty it).
    run::train(&c, out.path(), false, run::Existing::Resume).unwrap();
    assert_eq!(logged_steps(out.path()), [0, 9, 19], "a no-op resume keeps the log");
}

#[test]
fn resume_is_refused_by_name_when_it_cannot_continue() {
    let data = tempfile::tempdir().unwrap();
    tiny_data(data.path());
    let c = TrainConfig { steps: 10, checkpoint_every: 10, ..cfg(data.path(), Method::Odm) };
    let refused = |c: &TrainConfig, out: &Path| {
        run::train(c, out, false, run::Existing::Resume).expect_err("the resume must be refused").to_string()
    };
    // An empty folder: nothing to continue (it used to start from step 0 without a word).
    let empty = tempfile::tempdir().unwrap();
    let e = refused(&c, empty.path());
    assert!(e.contains("--resume") && e.contains("holds no run to continue"), "{e}");
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0, "a refused resume writes nothing");

    let out = tempfile::tempdir().unwrap();
    run::train(&c, out.path(), false, run::Existing::Refuse).unwrap();
    // Another network: each differing flag is named with the run's value and this one's.
    let e = refused(&TrainConfig { arch: "wrn-16-1".into(), embedding: 4, steps: 20, ..c.clone() }, out.path());
    assert!(e.contains("--arch wrn-10-1 (this run: wrn-16-1)"), "{e}");
    assert!(e.contains("--embedding 8 (this run: 4)"), "{e}");
    // Another name would write a second bundle beside the run's.
    let e = refused(&TrainConfig { name: "other".into(), steps: 20, ..c.clone() }, out.path());
    assert!(e.contains("--name tiny (this run: other)"), "{e}");
    assert!(!out.path().join("other.odm.json").exists());
    // A run that saved no checkpoint cannot be continued.
    let none = tempfile::tempdir().unwrap();
    let c0 = TrainConfig { checkpoint_every: 0, steps: 2, ..c.clone() };
    run::train(&c0, none.path(), false, run::Existing::Refuse).unwrap();
    let e = refused(&TrainConfig { steps: 4, ..c0 }, none.path());
    assert!(e.contains("no checkpoint.ot") && e.contains("--checkpoint-every 0"), "{e}");
}

#[test]
fn calibration_holds_out_classes_and_sets_per_class_thresholds() {
    let data = tempfile::tempdir().unwrap();
    let sc = SynthConfig {
        seed: 3,
        train_per_class: 64,
        test_per_class: 8,
        background: 60,
        noise: 0,
        classes: [
            "regulatory--maximum-speed-limit-30--g1",
            "regulatory--stop--g1",
            "regulatory--yield--g1",
            "regulatory--keep-left--g1",
            "warning--other-danger--g1",
            "regulatory--no-motor-vehicles--g1",
            "regulatory--no-buses--g1",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    };
    synth::run(data.path(), &sc, false).unwrap();
    let base = TrainConfig {
        seen_ood: ["warning--other-danger--g1", "regulatory--no-motor-vehicles--g1", "regulatory--keep-left--g1"]
            .map(String::from)
            .to_vec(),
        unseen_ood: vec!["regulatory--no-buses--g1".into()],
        val_fraction: 0.5,
        ..cfg(data.path(), Method::Odm)
    };
    let out = tempfile::tempdir().unwrap();
    let b = Bundle::open(&run::train(&base, out.path(), false, run::Existing::Refuse).unwrap()).unwrap();
    // Three seen OOD classes: ODM holds one out of training, for the anomaly threshold only.
    let calib: Vec<String> = serde_json::from_value(b.training["calib_ood"].clone()).unwrap();
    assert_eq!(calib.len(), 1);
    assert!(base.seen_ood.contains(&calib[0]));
    let tables = eval::eval(out.path(), 0, &[]).unwrap();
    assert_eq!(tables[0].sets["seen-novelty"].count, 2 * 8, "the calibration class is in no test set");

    // Per-class thresholds for classes with enough validation crops, each keeping the target share of them.
    let (cfg2, _vs, net, bundle, _) = load_net(out.path()).unwrap();
    let (rd, _) = rundata::load_run_data(&cfg2).unwrap();
    let scorer = Scorer::new(&bundle);
    let val = embed::distances(&scorer, &embed::embed_all(&net, &rd.val_in.x, tch::Device::Cpu));
    let mut with_own = 0;
    for (k, class) in bundle.classes.iter().enumerate() {
        let d: Vec<f64> = val.iter().filter(|p| p.0 == k).map(|p| p.1).collect();
        match (class.novelty_threshold, class.anomaly_threshold) {
            (Some(n), Some(a)) => {
                assert!(d.len() >= calibrate::PER_CLASS_MIN, "class {k}: {} crops", d.len());
                assert!(rate_at_or_below(&d, n) >= 0.95 && a >= n, "class {k}");
                with_own += 1;
            }
            (None, None) => {
                assert!(d.len() < calibrate::PER_CLASS_MIN, "class {k} has {} crops but no threshold", d.len())
            }
            other => panic!("class {k}: {other:?}"),
        }
    }
    assert!(with_own > 0, "no class reached {} validation crops", calibrate::PER_CLASS_MIN);

    // Explicit calibration classes must be seen OOD classes, and ODM must keep some to train on.
    let expect = |c: TrainConfig, part: &str| {
        let e = run::train(&c, out.path(), false, run::Existing::Refuse).unwrap_err().to_string();
        assert!(e.contains(part), "error {e:?} lacks {part:?}");
    };
    expect(
        TrainConfig { calib_ood: vec!["regulatory--stop--g1".into()], ..base.clone() },
        "\"regulatory--stop--g1\" is not a seen OOD class",
    );
    expect(TrainConfig { calib_ood: base.seen_ood.clone(), ..base.clone() }, "none is left for ODM");
}

#[test]
fn config_files_fill_in_defaults_and_refuse_unknown_fields() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.json");
    std::fs::write(&p, r#"{"data": "/d", "in_dist": ["a"], "steps": 7}"#).unwrap();
    let c = TrainConfig::load(&p).unwrap();
    assert_eq!((c.steps, c.in_dist.as_slice(), c.margin), (7, ["a".to_owned()].as_slice(), 10.0));
    std::fs::write(&p, r#"{"data": "/d", "stepz": 7}"#).unwrap();
    let e = TrainConfig::load(&p).unwrap_err().to_string();
    assert!(e.contains("c.json") && e.contains("stepz"), "{e}");
    std::fs::write(&p, "{").unwrap();
    assert!(TrainConfig::load(&p).unwrap_err().to_string().contains("c.json"));
}

#[test]
fn cross_entropy_baseline_gives_msp_and_odin_tables() {
    let data = tempfile::tempdir().unwrap();
    tiny_data(data.path());
    let out = tempfile::tempdir().unwrap();
    run::train(&cfg(data.path(), Method::Ce), out.path(), false, run::Existing::Refuse).unwrap();
    let tables = eval::eval(out.path(), 10, &[]).unwrap();
    assert_eq!(tables.iter().map(|t| t.method.as_str()).collect::<Vec<_>>(), ["ce-msp", "ce-odin"]);
    // A softmax run has no reference rule to score with: asking for one is refused, not ignored.
    for rule in [Rule::Calibrate(None), Rule::Ratio(1.5), Rule::Off] {
        let e = eval::eval_full(out.path(), 10, &[], None, None, rule).unwrap_err().to_string();
        assert!(e.contains("softmax (ce) run"), "{rule}: {e}");
        let none = tempfile::tempdir().unwrap();
        let e = bundle::export_with(out.path(), none.path(), Some("x".into()), Precision::Fp32, rule, None);
        assert!(e.unwrap_err().to_string().contains("export --reference-ratio"), "{rule}");
        assert!(!none.path().join("x.odm.json").exists());
    }

    // The MSP table's values, recomputed here from the network's softmax on the same test sets: accuracy of the
    // arg-max, and each set's AUROC with 1 - max probability as the out-of-distribution score.
    let (c, _vs, net, bundle, _) = load_net(out.path()).unwrap();
    let tests = eval::test_sets(&c, &bundle, 10, None, &[]).unwrap();
    let softmax = |x: &tch::Tensor| -> (Vec<f64>, Vec<i64>) {
        let p = tch::no_grad(|| net.logits(&net.embed_t(x, false)).unwrap().softmax(-1, tch::Kind::Float));
        let (top, arg) = p.max_dim(-1, false);
        let top: Vec<f32> = Vec::try_from(&top).unwrap();
        (top.iter().map(|&v| 1.0 - v as f64).collect(), Vec::try_from(&arg).unwrap())
    };
    let (ins, pred) = softmax(&tests.inside.x);
    let right = pred.iter().zip(&tests.inside.y).filter(|(p, y)| p == y).count();
    let msp = &tables[0];
    assert_eq!(msp.in_count, 3 * 8, "in-distribution test crops: 3 classes x 8");
    let acc = 100.0 * right as f64 / pred.len() as f64;
    assert!((msp.in_accuracy - acc).abs() < 1e-9, "MSP accuracy {} but the arg-max is right {acc}%", msp.in_accuracy);
    let mut names: Vec<&String> = tests.sets.iter().map(|s| &s.0).collect();
    names.sort();
    assert_eq!(msp.sets.keys().collect::<Vec<_>>(), names, "one row per test set");
    for (name, _, x) in &tests.sets {
        let (outs, _) = softmax(x);
        let want = odm_core::metrics::OodReport::compute(&ins, &outs).unwrap().percent();
        let row = &msp.sets[name];
        assert_eq!(row.count, outs.len(), "{name}: count");
        assert!((row.auroc - want.auroc).abs() < 1e-6, "{name}: MSP AUROC {} but recomputed {}", row.auroc, want.auroc);
        assert!((row.fpr95 - want.fpr95).abs() < 1e-6, "{name}: MSP FPR95 {} but recomputed {}", row.fpr95, want.fpr95);
    }

    // ODIN scores the same crops (same counts), with values in range, and is filed in metrics-odin.json.
    let odin = &tables[1];
    assert_eq!(odin.in_count, msp.in_count);
    for (name, row) in &odin.sets {
        assert_eq!(row.count, msp.sets[name].count, "{name}: ODIN and MSP score the same crops");
        assert!((0.0..=100.0).contains(&row.auroc) && (0.0..=100.0).contains(&row.fpr95), "{name}: {row:?}");
    }
    assert!((0.0..=100.0).contains(&odin.in_accuracy), "ODIN accuracy {}", odin.in_accuracy);
    // The files hold these tables (to the printed precision: serde_json may round the last digit).
    for (file, table) in [("metrics.json", msp), ("metrics-odin.json", odin)] {
        let filed: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.path().join(file)).unwrap()).unwrap();
        assert_eq!(filed["method"], table.method.as_str(), "{file}");
        for (name, row) in &table.sets {
            let v = filed["sets"][name]["auroc"].as_f64().unwrap_or(f64::NAN);
            assert!((v - row.auroc).abs() < 1e-9, "{file}: {name} AUROC {v} but the table says {}", row.auroc);
        }
    }
}

#[test]
fn pca_finds_the_axis_of_largest_spread() {
    // Points along (1, 2, 0) with small noise in the other directions.
    let mut pts = Vec::new();
    for i in 0..50 {
        let t = i as f32 - 25.0;
        pts.extend([t, 2.0 * t + 0.01 * (i % 3) as f32, 0.02 * (i % 5) as f32]);
    }
    let (axes, _) = odm_trainer::report::plot::pca2(&pts, 3);
    let n = (1.0f64 + 4.0).sqrt();
    let cos = (axes[0][0] + 2.0 * axes[0][1]).abs() / n;
    assert!(cos > 0.999, "first axis {:?}", axes[0]);
    let ortho: f64 = axes[0].iter().zip(&axes[1]).map(|(a, b)| a * b).sum();
    assert!(ortho.abs() < 1e-6);
}
