// SPDX-License-Identifier: MIT OR Apache-2.0
//! Training end to end on a tiny synthetic set: bad configurations are refused clearly; a short run writes a bundle
//! odm-core accepts, with centres that are the mean training embeddings and thresholds that keep the target share of
//! validation crops; evaluation writes the metrics file.

use std::path::Path;

use odm_core::metrics::rate_at_or_below;
use odm_core::{Bundle, Scorer};
use odm_trainer::synth::{self, SynthConfig};
use odm_trainer::train::eval;
use odm_trainer::train::run::{self, Method, TrainConfig};

fn tiny_data(dir: &Path) {
    let c = SynthConfig {
        seed: 2,
        train_per_class: 24,
        test_per_class: 8,
        background: 40,
        noise: 0,
        classes: ["speed-limit-30", "stop", "give-way", "keep-left", "warning-danger", "no-cars"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    };
    synth::run(dir, &c, false).unwrap();
}

fn cfg(dir: &Path, method: Method) -> TrainConfig {
    TrainConfig {
        data: dir.to_owned(),
        in_dist: ["speed-limit-30", "stop", "give-way"].map(String::from).to_vec(),
        seen_ood: vec!["warning-danger".into()],
        unseen_ood: ["keep-left", "no-cars"].map(String::from).to_vec(),
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
        let e = run::train(&c, out.path(), false, false).unwrap_err().to_string();
        assert!(e.contains(part), "error {e:?} lacks {part:?}");
    };
    expect(TrainConfig { margin: 0.0, ..cfg(data.path(), Method::Odm) }, "--margin must be positive");
    expect(TrainConfig { margin: -1.0, ..cfg(data.path(), Method::Odm) }, "--margin must be positive");
    expect(TrainConfig { arch: "wrn-11-1".into(), ..cfg(data.path(), Method::Odm) }, "6n+4");
    expect(TrainConfig { in_dist: vec!["speed-limit-31".into()], ..cfg(data.path(), Method::Odm) }, "speed-limit-31");
    expect(
        TrainConfig { seen_ood: vec!["stop".into()], ..cfg(data.path(), Method::Odm) },
        "named in both --in and --seen-ood",
    );
    expect(TrainConfig { in_dist: vec![], ..cfg(data.path(), Method::Odm) }, "split in is empty");
    expect(
        TrainConfig { seen_ood: vec![], ..cfg(data.path(), Method::Odm) },
        "--method odm needs seen out-of-distribution",
    );
    expect(TrainConfig { data: data.path().join("nowhere"), ..cfg(data.path(), Method::Odm) }, "nowhere");
}

#[test]
fn short_odm_run_writes_a_valid_calibrated_bundle() {
    let data = tempfile::tempdir().unwrap();
    tiny_data(data.path());
    let out = tempfile::tempdir().unwrap();
    let c = cfg(data.path(), Method::Odm);
    let data_dir = data.path().to_owned();
    let bundle_path = run::train(&c, out.path(), false, false).unwrap();
    let b = Bundle::open(&bundle_path).unwrap();
    assert_eq!(b.classes.iter().map(|c| c.label.as_str()).collect::<Vec<_>>(), ["speed-limit-30", "stop", "give-way"]);
    assert_eq!(b.dim(), 8);
    assert!(b.score.anomaly_threshold >= b.score.novelty_threshold);
    assert!(out.path().join("checkpoint.ot").is_file() && out.path().join("config.json").is_file());

    // Centres are the mean training embeddings; the novelty threshold keeps >= 95% of validation crops.
    let (cfg2, _vs, net, bundle, _) = eval::load_net(out.path()).unwrap();
    let (rd, _) = run::load_run_data(&cfg2).unwrap();
    let e = run::embed_all(&net, &rd.train_in.x, tch::Device::Cpu);
    let v = run::to_vec(&e);
    for (k, class) in bundle.classes.iter().enumerate() {
        let rows: Vec<&[f32]> =
            v.chunks_exact(8).zip(&rd.train_in.y).filter(|(_, &y)| y == k as i64).map(|(r, _)| r).collect();
        for j in 0..8 {
            let mean = rows.iter().map(|r| r[j] as f64).sum::<f64>() / rows.len() as f64;
            assert!((mean - class.center[j] as f64).abs() < 1e-3, "class {k} dim {j}");
        }
    }
    let scorer = Scorer::new(&bundle);
    let val: Vec<f64> =
        run::distances(&scorer, &run::embed_all(&net, &rd.val_in.x, tch::Device::Cpu)).iter().map(|p| p.1).collect();
    assert!(rate_at_or_below(&val, bundle.score.novelty_threshold) >= 0.95);

    let tables = eval::eval(out.path(), 20).unwrap();
    assert_eq!(tables[0].method, "odm");
    for set in ["novelty", "seen-novelty", "background", "noise"] {
        assert!(tables[0].sets.contains_key(set), "{set} missing");
    }
    assert!(out.path().join("metrics.json").is_file());
    // Evaluation wrote its table into the bundle, which still validates against its model.
    assert!(Bundle::open(&bundle_path).unwrap().metrics.is_array());

    // The figures: PCA of the embedding and ROC curves, real PNG files.
    let figures = odm_trainer::plot::plot_run(out.path(), 20).unwrap();
    for f in figures {
        let img = image::open(&f).unwrap();
        assert!(img.width() >= 600, "{}", f.display());
    }

    // Enrol a class the network never saw as in-distribution, without retraining.
    let enrol = tempfile::tempdir().unwrap();
    for class in ["stop", "no-cars"] {
        let dst = enrol.path().join("train").join(class);
        std::fs::create_dir_all(&dst).unwrap();
        for e in std::fs::read_dir(data_dir.join("train").join(class)).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
        }
    }
    let new_dir = tempfile::tempdir().unwrap();
    let nb = run::centers(out.path(), enrol.path(), vec![], vec![], vec![], new_dir.path()).unwrap();
    let nb = Bundle::open(&nb).unwrap();
    assert_eq!(nb.classes.iter().map(|c| c.label.as_str()).collect::<Vec<_>>(), ["no-cars", "stop"]);
    assert_eq!(nb.model.sha256, b.model.sha256, "same network, same ONNX bytes");

    // Export: the same network and bundle again gives the same ONNX bytes; under another name, a valid bundle.
    let exported = tempfile::tempdir().unwrap();
    let same = Bundle::open(&run::export(out.path(), exported.path(), None).unwrap()).unwrap();
    assert_eq!(same.model.sha256, b.model.sha256);
    let eb = Bundle::open(&run::export(out.path(), exported.path(), Some("renamed".into())).unwrap()).unwrap();
    assert_eq!((eb.name.as_str(), eb.model.file.as_str()), ("renamed", "renamed.onnx"));
    assert_eq!(eb.classes, b.classes);

    // Resuming from the checkpoint continues to the configured number of steps.
    let more = TrainConfig { steps: 40, ..c };
    run::train(&more, out.path(), false, true).unwrap();
}

#[test]
fn cross_entropy_baseline_gives_msp_and_odin_tables() {
    let data = tempfile::tempdir().unwrap();
    tiny_data(data.path());
    let out = tempfile::tempdir().unwrap();
    run::train(&cfg(data.path(), Method::Ce), out.path(), false, false).unwrap();
    let tables = eval::eval(out.path(), 10).unwrap();
    assert_eq!(tables.iter().map(|t| t.method.as_str()).collect::<Vec<_>>(), ["ce-msp", "ce-odin"]);
    assert!(out.path().join("metrics-odin.json").is_file());
}

#[test]
fn pca_finds_the_axis_of_largest_spread() {
    // Points along (1, 2, 0) with small noise in the other directions.
    let mut pts = Vec::new();
    for i in 0..50 {
        let t = i as f32 - 25.0;
        pts.extend([t, 2.0 * t + 0.01 * (i % 3) as f32, 0.02 * (i % 5) as f32]);
    }
    let (axes, _) = odm_trainer::plot::pca2(&pts, 3);
    let n = (1.0f64 + 4.0).sqrt();
    let cos = (axes[0][0] + 2.0 * axes[0][1]).abs() / n;
    assert!(cos > 0.999, "first axis {:?}", axes[0]);
    let ortho: f64 = axes[0].iter().zip(&axes[1]).map(|(a, b)| a * b).sum();
    assert!(ortho.abs() < 1e-6);
}
