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
            "regulatory--maximum-speed-limit-60--g1".into(),
            "regulatory--maximum-speed-limit-80--g1".into(),
            "regulatory--stop--g1".into(),
            "regulatory--keep-left--g1".into(),
            "warning--bicycles-crossing--g1".into(),
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
    assert_eq!(
        train.classes,
        [
            "regulatory--keep-left--g1",
            "regulatory--maximum-speed-limit-60--g1",
            "regulatory--maximum-speed-limit-80--g1",
            "regulatory--stop--g1",
            "warning--bicycles-crossing--g1"
        ]
    );
    assert_eq!(train.groups[1], "regulatory--maximum-speed-limit-60", "groups come from the manifest");
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
    let mut catalogue = designs::Catalogue::open(None).unwrap();
    assert_eq!(catalogue.designs.len(), 1543, "mapillary_sprite_source 1.8.0 holds 1,543 designs");
    // Every design parses as SVG; every tenth is rasterised at the template sizes and looked at (all of them take
    // minutes in a debug build; `odm-train synth` renders every one in every run).
    for d in &catalogue.designs {
        resvg::usvg::Tree::from_str(&d.svg().unwrap(), &resvg::usvg::Options::default())
            .unwrap_or_else(|e| panic!("{}: {e}", d.name));
    }
    catalogue.designs = catalogue.designs.into_iter().step_by(10).collect();
    let templates = synth::templates(&SynthConfig::default(), &catalogue).unwrap();
    assert_eq!(templates.len(), 155);
    let mut flat = Vec::new();
    for (d, t) in &templates {
        let big = t.levels.last().unwrap();
        let covered = big.px.iter().filter(|p| p[3] > 0.5).count() as f32 / big.px.len() as f32;
        // Long plates (complementary arrows, route panels) cover little of their square; nothing is invisible.
        assert!(covered > 0.05, "{} covers only {covered} of its square", d.name);
        let lum: Vec<f32> = big.px.iter().filter(|p| p[3] > 0.9).map(|p| (p[0] + p[1] + p[2]) / p[3]).collect();
        let (lo, hi) = lum.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        if hi - lo < 0.5 {
            flat.push(d.name.clone());
        }
    }
    // A few designs are one colour on purpose (blank plates); a renderer that lost the pictograms would flatten many.
    assert!(flat.len() < 3, "{} designs look flat: {flat:?}", flat.len());
}

#[test]
fn names_groups_categories_and_regions_come_from_the_taxonomy() {
    let catalogue = designs::Catalogue::open(None).unwrap();
    let stop = catalogue.get("regulatory--stop--g1").unwrap();
    assert_eq!(stop.group, "regulatory--stop");
    assert_eq!(stop.category.as_str(), "regulatory");
    assert!(stop.regions.iter().any(|r| r == "eu") && stop.regions.iter().any(|r| r == "us"));
    let variants = catalogue.designs.iter().filter(|d| d.group == "regulatory--stop").count();
    assert!(variants >= 2, "the stop sign has graphic variants");
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &catalogue.designs {
        *per.entry(d.category.as_str()).or_default() += 1;
    }
    assert_eq!(
        per,
        BTreeMap::from([("complementary", 179), ("information", 227), ("regulatory", 607), ("warning", 530)])
    );
    let groups: std::collections::BTreeSet<&str> = catalogue.designs.iter().map(|d| d.group.as_str()).collect();
    assert_eq!(groups.len(), 900);
}

/// A copy of a few designs in a folder of its own, with `mapping.json`.
fn mini_package(dir: &Path, names: &[&str]) {
    let real = designs::Catalogue::open(None).unwrap();
    std::fs::create_dir_all(dir.join("package_signs")).unwrap();
    let mut mapping = serde_json::Map::new();
    for n in names {
        std::fs::copy(&real.get(n).unwrap().path, dir.join("package_signs").join(format!("{n}.svg"))).unwrap();
        mapping.insert((*n).into(), serde_json::json!({"regions": ["eu"]}));
    }
    std::fs::write(dir.join("mapping.json"), serde_json::Value::Object(mapping).to_string()).unwrap();
}

#[test]
fn bad_packages_and_designs_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    // Missing package: the error names the folder and how to get it.
    let e = designs::Catalogue::load(&dir.path().join("nowhere")).unwrap_err().to_string();
    assert!(e.contains("nowhere") && e.contains("scripts/designs.sh"), "{e}");
    // Corrupt mapping.json.
    let pkg = dir.path().join("pkg");
    mini_package(&pkg, &["regulatory--stop--g1", "warning--curve-left--g1"]);
    std::fs::write(pkg.join("mapping.json"), "{ not json").unwrap();
    let e = designs::Catalogue::load(&pkg).unwrap_err().to_string();
    assert!(e.contains("mapping.json") && e.contains("malformed"), "{e}");
    // A file that is not a taxonomy name, and one with a category that is none of the four.
    mini_package(&pkg, &["regulatory--stop--g1"]);
    for bad in ["stop.svg", "advisory--stop--g1.svg"] {
        std::fs::write(pkg.join("package_signs").join(bad), "<svg/>").unwrap();
        let e = designs::Catalogue::load(&pkg).unwrap_err().to_string();
        assert!(e.contains(bad), "{e}");
        std::fs::remove_file(pkg.join("package_signs").join(bad)).unwrap();
    }
    // An SVG that cannot be rendered: refused by file when synth rasterises it, nothing written for it.
    std::fs::write(pkg.join("package_signs/warning--broken--g1.svg"), "<svg><path d=").unwrap();
    let mapping = r#"{"regulatory--stop--g1": {"regions": ["eu"]}, "warning--curve-left--g1": {"regions": ["eu"]},
        "warning--broken--g1": {"regions": ["eu"]}}"#;
    std::fs::write(pkg.join("mapping.json"), mapping).unwrap();
    let catalogue = designs::Catalogue::load(&pkg).unwrap();
    let e = synth::templates(&SynthConfig::default(), &catalogue).err().expect("refused").to_string();
    assert!(e.contains("warning--broken--g1.svg") && e.contains("cannot render"), "{e}");
    std::fs::write(
        pkg.join("package_signs/warning--broken--g1.svg"),
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>"#,
    )
    .unwrap();
    let catalogue = designs::Catalogue::load(&pkg).unwrap();
    let e = synth::templates(&SynthConfig::default(), &catalogue).err().expect("refused").to_string();
    assert!(e.contains("warning--broken--g1.svg") && e.contains("renders to nothing"), "{e}");
    // A design name the package lacks, with the variants it has.
    let e = catalogue.select(&["regulatory--stop--g9".into()]).unwrap_err().to_string();
    assert!(e.contains("regulatory--stop--g9") && e.contains("regulatory--stop--g1"), "{e}");
    let e = catalogue.select(&["regulatory--stop".into()]).unwrap_err().to_string();
    assert!(e.contains("(it has regulatory--stop--g1)"), "a name without its variant gets the variants: {e}");
    // A design mapping.json does not name: the package is incomplete, refused naming mapping.json.
    std::fs::write(pkg.join("package_signs/warning--extra--g1.svg"), "<svg/>").unwrap();
    let e = designs::Catalogue::load(&pkg).unwrap_err().to_string();
    assert!(e.contains("mapping.json") && e.contains("warning--extra--g1"), "{e}");
}

#[test]
fn unknown_class_and_bad_sizes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small(1);
    c.classes.push("regulatory--maximum-speed-limit-65--g9".into());
    let e = synth::run(dir.path(), &c, false).unwrap_err();
    assert!(e.to_string().contains("regulatory--maximum-speed-limit-65--g9"), "{e}");
    let c = SynthConfig { min_size: 50.0, max_size: 20.0, ..small(1) };
    assert!(synth::run(dir.path(), &c, false).is_err());
}
