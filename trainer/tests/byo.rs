// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train bundle --onnx`: a bundle for a network odm's trainer did not train (written here with the ONNX writer,
//! with another input name, size, channel order and normalisation than odm's), and the errors for networks and
//! inputs it cannot use. The plugin side (the bundle in odmclassify) is `tests/tests/byo.rs`.

use std::path::{Path, PathBuf};

use odm_core::bundle::ColorOrder;
use odm_core::Bundle;
use odm_trainer::eval::onnx::inspect;
use odm_trainer::export::byo::{bundle_onnx, ByoOptions};
use odm_trainer::export::fixture::{colour_dataset as colour_data, foreign_onnx as colour_net, grey_tree};
use odm_trainer::export::onnx::{Attr, Dim, GraphBuilder};

fn options(onnx: PathBuf, data: &Path, anomaly: PathBuf, out: PathBuf) -> ByoOptions {
    ByoOptions {
        onnx,
        data: data.to_owned(),
        in_dist: ["red", "green", "blue", "yellow"].map(String::from).to_vec(),
        seen_ood: vec!["magenta".into()],
        unseen_ood: vec!["cyan".into()],
        anomaly_dirs: vec![anomaly],
        input_name: None,
        output_name: None,
        input_size: Some((24, 20)),
        color: ColorOrder::Bgr,
        mean: [0.4, 0.45, 0.5],
        std: [0.2, 0.22, 0.24],
        context: 0.0,
        tpr: 0.95,
        seed: 1,
        noise: 50,
        name: Some("colour-net".into()),
        out,
    }
}

#[test]
fn a_network_odm_did_not_train_gets_a_checked_bundle_and_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("colour-net.onnx");
    std::fs::write(&onnx, colour_net(None)).unwrap();
    let data = dir.path().join("data");
    colour_data(&data, 40, 12).unwrap();
    grey_tree(&dir.path().join("grey"), 60).unwrap();
    let out = dir.path().join("bundle");
    let made = bundle_onnx(&options(onnx.clone(), &data, dir.path().join("grey"), out.clone())).unwrap();

    // The plugin's checks pass (Bundle::open verifies the copied network's SHA-256), with the network's own spec.
    let b = Bundle::open(&made.bundle).unwrap();
    assert_eq!(b.model.file, "colour-net.onnx");
    assert_eq!(std::fs::read(out.join("colour-net.onnx")).unwrap(), std::fs::read(&onnx).unwrap());
    let i = &b.model.input;
    assert_eq!((i.name.as_str(), i.width, i.height, i.color), ("pixels", 24, 20, ColorOrder::Bgr));
    assert_eq!((i.mean, i.std), ([0.4, 0.45, 0.5], [0.2, 0.22, 0.24]));
    assert_eq!((b.model.output.name.as_str(), b.dim()), ("features", 5));
    let labels: Vec<&str> = b.classes.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels, ["red", "green", "blue", "yellow"]);
    assert!(b.score.novelty_threshold > 0.0 && b.score.anomaly_threshold >= b.score.novelty_threshold);
    assert_eq!(b.training["source"], "odm-train bundle --onnx");

    // The same report `eval` writes: every known colour right, the unknown colour and the grey set apart.
    let m = made.metrics.expect("data/test exists, so there is a report");
    assert_eq!(m.in_accuracy, 100.0);
    assert!(m.sets["novelty"].auroc > 99.0, "{}", m.markdown());
    assert!(m.sets["grey (unseen)"].auroc > 99.0, "{}", m.markdown());
    assert!(out.join("metrics.md").is_file() && out.join("metrics.json").is_file());
    assert!(b.metrics.is_array());

    // A centre is the mean embedding of its class's training crops: red's is the mixed, normalised BGR mean.
    let red = &b.classes[0].center;
    let norm = |c: usize, v: f32| (v / 255.0 - i.mean[c]) / i.std[c];
    // BGR tensor order: channel 0 is blue (30), 1 green (30), 2 red (220); noise averages out to within 0.05.
    let x = [norm(0, 30.0), norm(1, 30.0), norm(2, 220.0)];
    assert!((red[0] - (x[0] + 0.1)).abs() < 0.05 && (red[2] - (x[2] + 0.3)).abs() < 0.05, "{red:?} vs {x:?}");
}

#[test]
fn networks_and_inputs_it_cannot_use_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    colour_data(&data, 12, 0).unwrap();
    grey_tree(&dir.path().join("grey"), 20).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let err = |o: ByoOptions| bundle_onnx(&o).unwrap_err().to_string();
    let opts = |onnx: PathBuf| options(onnx, &data, dir.path().join("grey"), dir.path().join("out"));

    // ONNX Runtime cannot load it.
    let junk = write("junk.onnx", b"not a protobuf at all");
    let e = err(opts(junk));
    assert!(e.contains("junk.onnx") && e.contains("ONNX Runtime cannot load it"), "{e}");

    // The output is not [N,D].
    let mut g = GraphBuilder::new("map");
    let x = g.input("pixels", &[Dim::Named("N"), Dim::Fixed(3), Dim::Fixed(8), Dim::Fixed(8)]);
    g.node("Relu", &[&x], vec![], Some("map"));
    g.output("map", &[Dim::Named("N"), Dim::Fixed(3), Dim::Fixed(8), Dim::Fixed(8)]);
    let e = err(opts(write("map.onnx", &g.finish("a feature map"))));
    assert!(e.contains("map.onnx") && e.contains("output \"map\" is float32 [?,3,8,8]") && e.contains("[N,D]"), "{e}");

    // The input is not an image tensor.
    let mut g = GraphBuilder::new("flat");
    let x = g.input("vector", &[Dim::Named("N"), Dim::Fixed(12)]);
    g.node("Relu", &[&x], vec![], Some("out"));
    g.output("out", &[Dim::Named("N"), Dim::Fixed(12)]);
    let e = err(opts(write("flat.onnx", &g.finish("a vector network"))));
    assert!(e.contains("flat.onnx") && e.contains("input \"vector\" is float32 [?,12]: not an image tensor"), "{e}");

    // An input size that is not the network's.
    let fixed = write("fixed.onnx", &colour_net(Some((16, 16))));
    let e = err(ByoOptions { input_size: Some((24, 20)), ..opts(fixed.clone()) });
    assert!(e.contains("fixed.onnx") && e.contains("is 16x16") && e.contains("--input-size says 24x20"), "{e}");
    // A fixed network needs no --input-size; a dynamic one does.
    let io = inspect(&fixed, None, None).unwrap();
    assert_eq!(
        (io.input.as_str(), io.size, io.output.as_str(), io.dim),
        ("pixels", Some((16, 16)), "features", Some(5))
    );
    let dynamic = write("dynamic.onnx", &colour_net(None));
    let e = err(ByoOptions { input_size: None, ..opts(dynamic.clone()) });
    assert!(e.contains("dynamic.onnx") && e.contains("give --input-size"), "{e}");

    // Names that are not in the network, and classes that are not in the data.
    let e = err(ByoOptions { input_name: Some("image".into()), ..opts(dynamic.clone()) });
    assert!(e.contains("no input named \"image\" (its inputs: pixels)"), "{e}");
    let e = err(ByoOptions { in_dist: vec!["red".into(), "purple".into()], ..opts(dynamic.clone()) });
    assert!(e.contains("purple"), "{e}");
    // A std of zero.
    let e = err(ByoOptions { std: [0.2, 0.0, 0.2], ..opts(dynamic) });
    assert!(e.contains("every std must be positive"), "{e}");
}

/// The colour network's shape with a chosen batch axis and mixing weights (NaN, zeros: networks that cannot embed).
fn mixing_net(batch: Option<i64>, mix: [f32; 15]) -> Vec<u8> {
    let axis = || batch.map_or(Dim::Named("N"), Dim::Fixed);
    let mut g = GraphBuilder::new("mixing");
    let x = g.input("pixels", &[axis(), Dim::Fixed(3), Dim::Named("H"), Dim::Named("W")]);
    let p = g.node("GlobalAveragePool", &[&x], vec![], None);
    let f = g.node("Flatten", &[&p], vec![Attr::Int("axis", 1)], None);
    let wn = g.weight("mix", &[5, 3], &mix);
    let bn = g.weight("bias", &[5], &[0.1, -0.2, 0.3, 0.0, 0.05]);
    g.node("Gemm", &[&f, &wn, &bn], vec![Attr::Int("transB", 1)], Some("features"));
    g.output("features", &[axis(), Dim::Fixed(5)]);
    g.finish("a mixing network for refusals")
}

#[test]
fn networks_that_cannot_embed_are_refused_up_front_and_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    colour_data(&data, 12, 4).unwrap();
    grey_tree(&dir.path().join("grey"), 20).unwrap();
    let good = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.0, 0.0, 0.5, 0.5f32];
    let cases = [
        // A fixed batch of 1: ONNX Runtime's own text at the first batch of two, before.
        ("batch1", mixing_net(Some(1), good), vec!["input \"pixels\" is float32 [1,3,?,?]", "fixed batch of 1"]),
        ("nan", mixing_net(None, [f32::NAN; 15]), vec!["output \"features\" gives NaN"]),
        ("constant", mixing_net(None, [0.0; 15]), vec!["gives the same embedding for all", "constant"]),
    ];
    for (name, bytes, parts) in cases {
        let onnx = dir.path().join(format!("{name}.onnx"));
        std::fs::write(&onnx, bytes).unwrap();
        let out = dir.path().join(format!("out-{name}"));
        let e = bundle_onnx(&options(onnx, &data, dir.path().join("grey"), out.clone()))
            .expect_err("the network must be refused")
            .to_string();
        assert!(e.contains(&format!("{name}.onnx")), "{name}: the error does not name the file: {e}");
        for p in parts {
            assert!(e.contains(p), "{name}: {p:?} missing from: {e}");
        }
        assert!(!out.exists(), "{name}: the refusal left {}", out.display());
    }
    // A --context the bundle cannot hold is refused before any work (no dataset is even read).
    let onnx = dir.path().join("good.onnx");
    std::fs::write(&onnx, mixing_net(None, good)).unwrap();
    let out = dir.path().join("out-context");
    let o = ByoOptions {
        context: 5.0,
        data: dir.path().join("no-such-data"),
        ..options(onnx, &data, dir.path().join("grey"), out.clone())
    };
    let e = bundle_onnx(&o).unwrap_err().to_string();
    assert!(e.contains("--context 5") && e.contains("[0, 2]"), "{e}");
    assert!(!out.exists(), "the refusal left {}", out.display());
}
