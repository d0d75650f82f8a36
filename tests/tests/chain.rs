// SPDX-License-Identifier: MIT OR Apache-2.0
//! The whole chain: the trainer renders data, trains a small ODM model and writes a bundle; the built plugin
//! (libgstodm.so, loaded from the cargo target folder) classifies the same test crops as PNG files decoded by
//! GStreamer; both sides must give the same classes, verdicts and distances. The plugin runs the exported bundle, so
//! the seen design's centre is a category reference and the reference rule is in force on both sides.

use std::path::Path;

use gst::prelude::*;
use odm_core::{Bundle, Scorer};
use odm_trainer::data::{self, Format};
use odm_trainer::export::bundle::{self, Precision};
use odm_trainer::synth::{self, SynthConfig};
use odm_trainer::train::{embed, run, rundata, Method, TrainConfig};

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The plugin's answers for every PNG of `dir` (00000.png, 00001.png...), in order: (label, verdict, distance).
fn plugin_answers(dir: &Path, count: usize, model: &Path) -> Vec<(String, String, f64)> {
    gst::init().unwrap();
    let registry = gst::Registry::get();
    assert!(registry.scan_path(odm_e2e::plugin_dir()) || registry.find_plugin("odm").is_some());
    let line = format!(
        "multifilesrc location={}/%05d.png index=0 stop-index={} caps=image/png ! pngdec ! videoconvert ! \
         odmclassify mode=frame emit-messages=true model={} ! fakesink",
        dir.display(),
        count - 1,
        model.display()
    );
    let pipeline = gst::parse::launch(&line).unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut out = Vec::new();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(..) => break,
            gst::MessageView::Error(e) => panic!("{} {:?}", e.error(), e.debug()),
            gst::MessageView::Element(e) => {
                let s = e.structure().unwrap();
                if s.name() == "odm-results" {
                    let arr = s.get::<gst::Array>("results").unwrap();
                    let r = arr.first().unwrap().get::<gst::Structure>().unwrap();
                    out.push((
                        r.get::<String>("label").unwrap(),
                        r.get::<String>("verdict").unwrap(),
                        r.get::<f64>("distance").unwrap(),
                    ));
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

#[test]
fn trainer_and_plugin_agree_on_every_crop() {
    let data = tempfile::tempdir().unwrap();
    let classes = [
        "regulatory--maximum-speed-limit-30--g1",
        "regulatory--stop--g1",
        "regulatory--yield--g1",
        "warning--other-danger--g1",
        "regulatory--keep-left--g1",
        "regulatory--no-motor-vehicles--g1",
    ];
    let sc = SynthConfig {
        seed: 4,
        train_per_class: 24,
        test_per_class: 6,
        background: 24,
        noise: 0,
        classes: names(&classes),
        ..Default::default()
    };
    synth::run(data.path(), &sc, false).unwrap();
    let run_dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        data: data.path().to_owned(),
        in_dist: names(&classes[..3]),
        seen_ood: names(&classes[3..4]),
        unseen_ood: names(&classes[4..]),
        anomaly_dirs: vec![data.path().join("background")],
        method: Method::Odm,
        input: 16,
        embedding: 8,
        steps: 60,
        batch: 16,
        name: "chain".into(),
        ..Default::default()
    };
    run::train(&cfg, run_dir.path(), false, run::Existing::Refuse).unwrap();
    let exported = tempfile::tempdir().unwrap();
    let bundle_path = bundle::export(run_dir.path(), exported.path(), None, Precision::Fp32).unwrap();
    let bundle = Bundle::open(&bundle_path).unwrap();
    let labels: Vec<&str> = bundle.category_refs.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, [classes[3]], "the seen design is the one reference");
    assert_eq!(bundle.score.reference_ratio, Some(bundle::REFERENCE_RATIO));
    let scorer = Scorer::new(&bundle);
    let model = exported.path().join("chain.onnx");

    // Every test crop of every class, copied in order as NNNNN.png.
    let test = data::load(&data.path().join("test"), Format::Folder).unwrap();
    let crops = tempfile::tempdir().unwrap();
    for (i, s) in test.samples.iter().enumerate() {
        let data::Source::File(p) = &s.source else { unreachable!("folders hold files") };
        std::fs::copy(p, crops.path().join(format!("{i:05}.png"))).unwrap();
    }
    let got = plugin_answers(crops.path(), test.samples.len(), &model);
    assert_eq!(got.len(), test.samples.len(), "one result per crop");

    // The trainer's own answers for the same files, through odm-core's preprocessing and scorer.
    let (_, _vs, net, _, _) = odm_trainer::train::load::load_net(run_dir.path()).unwrap();
    let idx: Vec<usize> = (0..test.samples.len()).collect();
    let t = rundata::decode(&test, &idx, &cfg.crop_spec(), &|_| 0).unwrap();
    let e = embed::embed_all(&net, &t.x, tch::Device::Cpu);
    let want = embed::distances(&scorer, &e);
    let rows = embed::to_vec(&e);
    for (i, ((label, verdict, dist), (k, d))) in got.iter().zip(&want).enumerate() {
        assert_eq!(label, scorer.label(*k), "crop {i}");
        let row = &rows[i * scorer.dim()..(i + 1) * scorer.dim()];
        assert_eq!(verdict, scorer.verdict_at(row, *k, *d).as_str(), "crop {i}");
        assert!((dist - d).abs() < 1e-3 * d.max(1.0), "crop {i}: plugin {dist} trainer {d}");
    }
}
