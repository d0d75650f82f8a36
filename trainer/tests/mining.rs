// SPDX-License-Identifier: MIT OR Apache-2.0
//! Mining out-of-distribution trees in training (issue 13): the OOD slots of a batch are filled from every mined
//! source in its share, no pair of two OOD images is formed, bad mining inputs are refused by name, and evaluation
//! reports the mined sets as "(seen)", the others as "(unseen)", with a novelty-vs-anomaly AUROC and a verdict
//! confusion matrix. Also the collapse warning of `inspect`.

mod common;

use std::path::Path;

use odm_core::Bundle;
use odm_trainer::eval;
use odm_trainer::synth::mined::{self, MinedKind};
use odm_trainer::train::loss::{pair_masks, OOD, OOD_NOVEL};
use odm_trainer::train::sampling::{self, OodSource};
use odm_trainer::train::{run, rundata, Method, TrainConfig};
use rand::SeedableRng;

fn tiny_world(dir: &Path) {
    common::six_classes(dir, 4, 20, 6);
    mined::run(&dir.join("signlike"), MinedKind::Signlike, 10, 5).unwrap();
    mined::run(&dir.join("objects"), MinedKind::Objects, 10, 6).unwrap();
}

fn cfg(dir: &Path) -> TrainConfig {
    TrainConfig {
        data: dir.to_owned(),
        in_dist: ["regulatory--maximum-speed-limit-30--g1", "regulatory--stop--g1", "regulatory--yield--g1"]
            .map(String::from)
            .to_vec(),
        seen_ood: vec!["warning--other-danger--g1".into()],
        unseen_ood: ["regulatory--keep-left--g1", "regulatory--no-motor-vehicles--g1"].map(String::from).to_vec(),
        anomaly_dirs: vec![dir.join("background")],
        seen_anomaly_dirs: vec![dir.join("objects")],
        seen_novelty_dirs: vec![dir.join("signlike")],
        method: Method::Odm,
        input: 16,
        embedding: 8,
        steps: 30,
        batch: 32,
        ood_fraction: 0.5,
        permuted_ood: 0.25,
        anomaly_share: 0.25,
        novelty_share: 0.25,
        novelty_margin: 5.0,
        checkpoint_every: 0,
        name: "mined".into(),
        ..Default::default()
    }
}

#[test]
fn mined_sets_fill_their_share_of_the_ood_slots_and_no_ood_pair_is_formed() {
    let data = tempfile::tempdir().unwrap();
    tiny_world(data.path());
    let c = cfg(data.path());
    let (rd, _) = rundata::load_run_data(&c).unwrap();
    let anomalies = rd.train_anomaly.as_ref().expect("mined anomalies loaded");
    let novelties = rd.train_novelty.as_ref().expect("mined novelties loaded");
    // 8 families x 10 images, 70% of each for training.
    assert_eq!(anomalies.y.len(), 8 * 7);
    assert_eq!(novelties.y.len(), 8 * 7);
    // The calibration part of the mined anomalies joins the unseen anomaly tree's on the anomaly side.
    let names: Vec<&str> = rd.val_anomaly.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["background", "objects"]);

    // 16 OOD slots: a quarter each for the classes, permuted pixels, anomalies and novelties.
    let slots = sampling::ood_slots(&c, &rd, 16);
    assert_eq!(
        slots,
        [(OodSource::Classes, 4), (OodSource::Permuted, 4), (OodSource::Anomalies, 4), (OodSource::Novelties, 4)]
    );
    // Without seen OOD classes their share goes to the other sources, and the counts still add up.
    let no_classes = rundata::RunData { train_ood: None, ..rundata::load_run_data(&c).unwrap().0 };
    let s = sampling::ood_slots(&c, &no_classes, 15);
    assert_eq!(s.iter().map(|p| p.1).sum::<usize>(), 15);
    assert!(s.iter().all(|p| p.0 != OodSource::Classes && p.1 == 5), "{s:?}");

    let mut by_class = vec![Vec::new(); rd.classes.len()];
    for (i, &y) in rd.train_in.y.iter().enumerate() {
        by_class[y as usize].push(i as i64);
    }
    let mut rng = rand_pcg::Pcg64::seed_from_u64(9);
    let (x, labels) = sampling::batch(&mut rng, &rd, &by_class, &c);
    assert_eq!(x.size()[0], 32);
    assert_eq!(labels.iter().filter(|&&l| l >= 0).count(), 16, "in-distribution first, half the batch");
    // With a novelty margin, the seen OOD classes (unknown signs) share the novelty ring with the mined sign-like
    // unknowns: slots 16..20 (classes) and 28..32 (novelties) are OOD_NOVEL, the permuted and anomaly slots OOD.
    assert_eq!(labels.iter().filter(|&&l| l == OOD_NOVEL).count(), 8, "unknown signs take the novelty ring");
    assert!(labels[16..20].iter().chain(&labels[28..32]).all(|&l| l == OOD_NOVEL), "{labels:?}");
    assert_eq!(labels.iter().filter(|&&l| l == OOD).count(), 8);
    // The anomaly slots (after the classes and the permuted images) are images of the mined anomaly tree.
    let flat = |t: &tch::Tensor| t.flatten(1, -1);
    for row in 24..28 {
        let img = flat(&x.narrow(0, row, 1));
        let diff = (flat(&anomalies.x) - img).abs().sum_dim_intlist(1, false, tch::Kind::Float);
        assert_eq!(diff.min().double_value(&[]), 0.0, "slot {row} is not a mined anomaly");
    }
    for row in 28..32 {
        let img = flat(&x.narrow(0, row, 1));
        let diff = (flat(&novelties.x) - img).abs().sum_dim_intlist(1, false, tch::Kind::Float);
        assert_eq!(diff.min().double_value(&[]), 0.0, "slot {row} is not a mined novelty");
    }
    // Pairs: none between two OOD images; in/out pairs are exactly in x out.
    let (same, diff, io) = pair_masks(&labels);
    let b = labels.len();
    let m = |t: &tch::Tensor, i: usize, j: usize| t.double_value(&[i as i64, j as i64]);
    for i in 0..b {
        for j in i + 1..b {
            let (oi, oj) = (labels[i] < 0, labels[j] < 0);
            assert_eq!(m(&io, i, j) == 1.0, oi != oj, "pair {i},{j}");
            if oi || oj {
                assert_eq!(m(&same, i, j) + m(&diff, i, j), 0.0, "pair {i},{j} of an OOD image");
            }
        }
    }
}

#[test]
fn bad_mining_inputs_are_refused_by_name() {
    let data = tempfile::tempdir().unwrap();
    tiny_world(data.path());
    let out = tempfile::tempdir().unwrap();
    let expect = |c: TrainConfig, parts: &[&str]| {
        let e = run::train(&c, out.path(), false, run::Existing::Refuse).unwrap_err().to_string();
        for p in parts {
            assert!(e.contains(p), "error {e:?} lacks {p:?}");
        }
    };
    let missing = data.path().join("no-such-tree");
    expect(
        TrainConfig { seen_anomaly_dirs: vec![missing.clone()], ..cfg(data.path()) },
        &["--seen-anomaly-dir", "no-such-tree", "no such folder"],
    );
    let empty = data.path().join("empty");
    std::fs::create_dir_all(empty.join("nothing")).unwrap();
    expect(
        TrainConfig { seen_novelty_dirs: vec![empty.clone()], ..cfg(data.path()) },
        &["--seen-novelty-dir", "empty", "no class has any image"],
    );
    expect(TrainConfig { anomaly_share: 1.5, ..cfg(data.path()) }, &["--anomaly-share must be in [0, 1]"]);
    expect(TrainConfig { novelty_share: -0.1, ..cfg(data.path()) }, &["--novelty-share must be in [0, 1]"]);
    expect(TrainConfig { anomaly_share: 0.5, novelty_share: 0.5, ..cfg(data.path()) }, &["at most 1"]);
    expect(TrainConfig { novelty_margin: -1.0, ..cfg(data.path()) }, &["--novelty-margin"]);
    // Evaluation-only trees too.
    let c = TrainConfig { steps: 2, ..cfg(data.path()) };
    run::train(&c, out.path(), false, run::Existing::Refuse).unwrap();
    let e = eval::eval(out.path(), 0, &[missing]).unwrap_err().to_string();
    assert!(e.contains("eval --anomaly-dir") && e.contains("no-such-tree"), "{e}");
}

#[test]
fn evaluation_reports_seen_and_unseen_sets_novelty_vs_anomaly_and_a_confusion_matrix() {
    let data = tempfile::tempdir().unwrap();
    tiny_world(data.path());
    let out = tempfile::tempdir().unwrap();
    let c = TrainConfig { ce_weight: 0.5, ..cfg(data.path()) };
    run::train(&c, out.path(), false, run::Existing::Refuse).unwrap();
    // An evaluation-only tree: the rendered objects again, under another name.
    let extra = data.path().join("extra");
    std::os::unix::fs::symlink(data.path().join("objects"), &extra).unwrap();
    let tables = eval::eval(out.path(), 20, &[extra]).unwrap();
    let m = &tables[0];
    for set in ["novelty", "seen-novelty", "objects (seen)", "signlike (seen)", "background (unseen)", "extra (unseen)"]
    {
        assert!(m.sets.contains_key(set), "{set} missing from {:?}", m.sets.keys());
    }
    // The held-out test part of a mined tree: 20% of each family.
    assert_eq!(m.sets["objects (seen)"].count, 8 * 2);
    assert_eq!(m.sets["extra (unseen)"].count, 8 * 10, "evaluation-only trees are scored whole");
    for key in ["all", "objects (seen)", "background (unseen)", "noise"] {
        let a = m.novelty_vs_anomaly.get(key).unwrap_or_else(|| panic!("{key} missing"));
        assert!((0.0..=100.0).contains(a), "{key}: {a}");
    }
    let conf = m.confusion.as_ref().expect("a confusion matrix");
    assert_eq!(conf.known.iter().sum::<usize>(), m.in_count);
    assert_eq!(conf.unknown_sign.iter().sum::<usize>(), m.sets["novelty"].count);
    let anomalies: usize =
        ["objects (seen)", "background (unseen)", "extra (unseen)", "noise"].iter().map(|s| m.sets[*s].count).sum();
    assert_eq!(conf.not_a_sign.iter().sum::<usize>(), anomalies, "sign-like sets are not anomalies");
    let md = m.markdown();
    assert!(md.contains("| truth \\ verdict | known | novelty | anomaly |") && md.contains("| not a sign |"), "{md}");
    assert!(md.contains("Novelty vs anomaly"), "{md}");
}

#[test]
fn inspect_warns_loudly_when_the_calibration_collapsed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/colors");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root.join("colors.onnx"), dir.path().join("colors.onnx")).unwrap();
    let mut b = Bundle::load(&root.join("colors.odm.json")).unwrap();
    let inspect = |b: &Bundle| {
        let path = dir.path().join("colors.odm.json");
        b.save(&path).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_odm-train")).arg("inspect").arg(&path).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    assert!(!b.novelty_collapsed(), "the fixture has distinct thresholds");
    assert!(!inspect(&b).contains("WARNING"));
    b.score.anomaly_threshold = b.score.novelty_threshold;
    assert!(b.novelty_collapsed());
    let text = inspect(&b);
    assert!(text.contains("WARNING") && text.contains("never says `novelty`"), "{text}");
}

#[test]
fn inspect_says_how_a_novelty_is_given_its_category() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/signs");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root.join("signs.onnx"), dir.path().join("signs.onnx")).unwrap();
    let mut b = Bundle::load(&root.join("signs.odm.json")).unwrap();
    let path = dir.path().join("signs.odm.json");
    let inspect = |b: &Bundle| {
        b.save(&path).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_odm-train")).arg("inspect").arg(&path).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(b.score.category_votes, Some(5));
    let text = inspect(&b);
    assert!(text.contains("the vote of the 5 nearest designs"), "{text}");
    b.score.category_votes = None;
    let text = inspect(&b);
    assert!(text.contains("a novelty's: the nearest design's") && !text.contains("vote"), "{text}");
}
