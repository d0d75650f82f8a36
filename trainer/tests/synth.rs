// SPDX-License-Identifier: MIT OR Apache-2.0
//! The synthetic generator: reproducible byte for byte, every class renders, the layout loaders read.

use std::collections::BTreeMap;
use std::path::Path;

use odm_trainer::data::{self, Format};
use odm_trainer::synth::{self, designs, SynthConfig};

fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn small(seed: u64) -> SynthConfig {
    SynthConfig {
        seed,
        train_per_class: 3,
        test_per_class: 1,
        background: 16,
        noise: 2,
        classes: vec![
            "speed-limit-60".into(),
            "speed-limit-80".into(),
            "stop".into(),
            "keep-left".into(),
            "warning-cyclists".into(),
        ],
        ..Default::default()
    }
}

#[test]
fn same_seed_same_bytes_whatever_the_threads() {
    let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    synth::run(a.path(), &small(5), false).unwrap();
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| synth::run(b.path(), &small(5), false).unwrap());
    synth::run(c.path(), &small(6), false).unwrap();
    let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
    assert_eq!(fa.len(), 5 * 4 + 16 + 2 + 1);
    assert!(fa == fb, "one thread and many give the same files");
    assert!(fa.iter().any(|(k, v)| fc.get(k) != Some(v)), "another seed gives other pixels");
}

#[test]
fn layout_manifest_and_loaders_agree() {
    let dir = tempfile::tempdir().unwrap();
    let m = synth::run(dir.path(), &small(1), false).unwrap();
    assert_eq!(m.generator, synth::GENERATOR);
    let train = data::load(&dir.path().join("train"), Format::Folder).unwrap();
    assert_eq!(train.classes, ["keep-left", "speed-limit-60", "speed-limit-80", "stop", "warning-cyclists"]);
    assert_eq!(train.groups[1], "speed-limit", "groups come from the manifest");
    assert_eq!(train.counts(), [3; 5]);
    let bg = data::load(&dir.path().join("background"), Format::Folder).unwrap();
    assert_eq!(bg.samples.len(), 16);
    assert_eq!(bg.classes.len(), synth::scenes().unwrap().len());
    for (i, s) in train.samples.iter().enumerate() {
        let (img, _) = train.image(i).unwrap();
        let (w, h) = img.dimensions();
        assert!((8..=150).contains(&w) && (8..=150).contains(&h), "{s:?}: {w}x{h}");
    }
}

#[test]
fn every_design_renders_something_visible() {
    let config = SynthConfig::default();
    let templates = synth::templates(&config).unwrap();
    assert!(templates.len() >= 40, "at least 40 classes, got {}", templates.len());
    let mut names = std::collections::HashSet::new();
    for (d, t) in &templates {
        assert!(names.insert(d.name.clone()), "duplicate class {}", d.name);
        let big = t.levels.last().unwrap();
        let covered = big.px.iter().filter(|p| p[3] > 0.5).count() as f32 / big.px.len() as f32;
        assert!(covered > 0.3, "{} covers only {covered} of its square", d.name);
        // Not one flat colour: the pictogram or the numerals are there.
        let lum: Vec<f32> = big.px.iter().filter(|p| p[3] > 0.9).map(|p| (p[0] + p[1] + p[2]) / p[3]).collect();
        let (lo, hi) = lum.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(hi - lo > 0.8, "{} looks flat", d.name);
    }
    // Near twins exist, and the speed-limit family is complete.
    for v in designs::SPEED_LIMITS {
        assert!(names.contains(&format!("speed-limit-{v}")));
    }
    assert!(names.contains("turn-left-ahead") && names.contains("turn-right-ahead"));
}

#[test]
fn unknown_class_and_bad_sizes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small(1);
    c.classes.push("speed-limit-65".into());
    let e = synth::run(dir.path(), &c, false).unwrap_err();
    assert!(e.to_string().contains("speed-limit-65"), "{e}");
    let c = SynthConfig { min_size: 50.0, max_size: 20.0, ..small(1) };
    assert!(synth::run(dir.path(), &c, false).is_err());
}
