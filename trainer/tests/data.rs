// SPDX-License-Identifier: MIT OR Apache-2.0
//! Dataset readers on small fixtures the tests write themselves, in each real format, and their bad inputs.

use std::fs;
use std::io::Write;
use std::path::Path;

use image::{GrayImage, Rgb, RgbImage};
use odm_core::bundle::ColorOrder;
use odm_core::preprocess::{CropSpec, Normalize};
use odm_trainer::data::{self, split, Format};
use odm_trainer::error::DataError;

fn spec() -> CropSpec {
    CropSpec {
        width: 8,
        height: 8,
        context: 0.0,
        norm: Normalize { color: ColorOrder::Rgb, mean: [0.0; 3], std: [1.0; 3] },
    }
}

fn solid(w: u32, h: u32, c: [u8; 3]) -> RgbImage {
    RgbImage::from_pixel(w, h, Rgb(c))
}

/// root/<class>/<i>.<ext> with `n` images per class.
fn folder_tree(root: &Path, classes: &[(&str, usize)]) {
    for (k, (class, n)) in classes.iter().enumerate() {
        let dir = root.join(class);
        fs::create_dir_all(&dir).unwrap();
        for i in 0..*n {
            let img = solid(10 + i as u32, 12, [k as u8 * 40, 100, 200]);
            let ext = ["png", "jpg", "ppm"][i % 3];
            img.save(dir.join(format!("{i}.{ext}"))).unwrap();
        }
    }
}

#[test]
fn folder_tree_reads_every_format_and_drops_small_classes() {
    let dir = tempfile::tempdir().unwrap();
    folder_tree(dir.path(), &[("speed-limit-30", 12), ("speed-limit-50", 11), ("stop", 3)]);
    // A grayscale image and a file that is not an image.
    GrayImage::from_pixel(9, 9, image::Luma([77])).save(dir.path().join("stop/grey.png")).unwrap();
    fs::write(dir.path().join("stop/readme.txt"), "not an image").unwrap();
    let mut d = data::load(dir.path(), Format::Folder).unwrap();
    assert_eq!(d.classes, ["speed-limit-30", "speed-limit-50", "stop"]);
    assert_eq!(d.groups, ["speed-limit", "speed-limit", "stop"]);
    assert_eq!(d.counts(), [12, 11, 4]);
    // Grey is replicated to RGB.
    let grey =
        d.samples.iter().position(|s| matches!(&s.source, data::Source::File(p) if p.ends_with("grey.png"))).unwrap();
    let mut t = vec![0.0; spec().len()];
    d.tensor(grey, &spec(), &mut t).unwrap();
    assert!((t[0] - 77.0 / 255.0).abs() < 1e-4 && t[0] == t[64] && t[64] == t[128]);
    let dropped = d.drop_small_classes(10);
    assert_eq!(dropped, [("stop".to_owned(), 4)]);
    assert_eq!(d.classes.len(), 2);
    assert!(d.samples.iter().all(|s| s.class < 2));
}

#[test]
fn truncated_and_missing_inputs_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    folder_tree(dir.path(), &[("a", 2)]);
    let png = dir.path().join("a/0.png");
    let bytes = fs::read(&png).unwrap();
    fs::write(&png, &bytes[..bytes.len() / 2]).unwrap();
    let d = data::load(dir.path(), Format::Folder).unwrap();
    let i = d.samples.iter().position(|s| matches!(&s.source, data::Source::File(p) if p == &png)).unwrap();
    let e = d.image(i).unwrap_err();
    assert!(matches!(e, DataError::Image { .. }) && e.to_string().contains("a/0.png"), "{e}");
    let e = data::load(&dir.path().join("absent"), Format::Folder).unwrap_err();
    assert!(matches!(e, DataError::MissingFolder { .. }) && e.to_string().contains("absent"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    fs::create_dir(empty.path().join("nothing")).unwrap();
    assert!(matches!(data::load(empty.path(), Format::Folder).unwrap_err(), DataError::Empty { .. }));
}

fn gtsrb_fixture(root: &Path, csv_lines: &[&str]) {
    let dir = root.join("Final_Training/Images/00001");
    fs::create_dir_all(&dir).unwrap();
    for i in 0..2 {
        let mut img = solid(30, 30, [0, 0, 0]);
        // The sign (white) sits at 5..25; the ROI must select it.
        for y in 5..25 {
            for x in 5..25 {
                img.put_pixel(x, y, Rgb([255, 255, 255]));
            }
        }
        img.save(dir.join(format!("00000_0000{i}.ppm"))).unwrap();
    }
    let mut f = fs::File::create(dir.join("GT-00001.csv")).unwrap();
    writeln!(f, "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId").unwrap();
    for l in csv_lines {
        writeln!(f, "{l}").unwrap();
    }
}

#[test]
fn gtsrb_reads_rois() {
    let dir = tempfile::tempdir().unwrap();
    gtsrb_fixture(dir.path(), &["00000_00000.ppm;30;30;5;5;24;24;1", "00000_00001.ppm;30;30;5;5;24;24;1"]);
    let d = data::load(dir.path(), Format::Gtsrb).unwrap();
    assert_eq!(d.classes, ["00001"]);
    assert_eq!(d.samples.len(), 2);
    assert_eq!(d.samples[0].roi, Some((5, 5, 20, 20)));
    let mut t = vec![0.0; spec().len()];
    d.tensor(0, &spec(), &mut t).unwrap();
    assert!(t.iter().all(|v| (v - 1.0).abs() < 1e-4), "the crop holds only the white sign");
}

#[test]
fn gtsrb_bad_annotations_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    gtsrb_fixture(dir.path(), &["00000_00000.ppm;30;30;5;5;24;24;1", "00000_00001.ppm;30;30;five;5;24;24;1"]);
    let e = data::load(dir.path(), Format::Gtsrb).unwrap_err();
    assert!(matches!(e, DataError::Annotation { line: 3, .. }) && e.to_string().contains("GT-00001.csv"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    gtsrb_fixture(dir.path(), &["missing.ppm;30;30;5;5;24;24;1"]);
    assert!(data::load(dir.path(), Format::Gtsrb).unwrap_err().to_string().contains("missing.ppm"));
    let dir = tempfile::tempdir().unwrap();
    gtsrb_fixture(dir.path(), &[]);
    fs::remove_file(dir.path().join("Final_Training/Images/00001/GT-00001.csv")).unwrap();
    assert!(data::load(dir.path(), Format::Gtsrb).unwrap_err().to_string().contains("annotation file missing"));
}

#[test]
fn tt100k_crops_objects_by_bbox() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("train")).unwrap();
    solid(64, 48, [10, 20, 30]).save(dir.path().join("train/1.jpg")).unwrap();
    solid(64, 48, [10, 20, 30]).save(dir.path().join("train/2.jpg")).unwrap();
    let ann = serde_json::json!({
        "types": ["pl40", "pl50", "w55"],
        "imgs": {
            "1": {"path": "train/1.jpg", "id": 1, "objects": [
                {"category": "pl40", "bbox": {"xmin": 1.5, "ymin": 2.0, "xmax": 20.0, "ymax": 21.0}},
                {"category": "w55", "bbox": {"xmin": 30, "ymin": 10, "xmax": 50, "ymax": 30}}]},
            "2": {"path": "train/2.jpg", "id": 2, "objects": [
                {"category": "pl50", "bbox": {"xmin": 3, "ymin": 3, "xmax": 13, "ymax": 13}}]},
            "3": {"path": "train/none.jpg", "id": 3, "objects": []}
        }
    });
    fs::write(dir.path().join("annotations.json"), ann.to_string()).unwrap();
    let d = data::load(dir.path(), Format::Tt100k).unwrap();
    assert_eq!(d.classes, ["pl40", "pl50", "w55"]);
    assert_eq!(d.groups, ["pl", "pl", "w"]);
    assert_eq!(d.samples.len(), 3);
    assert!(d.samples.iter().any(|s| s.roi == Some((1, 2, 19, 19))));
    let mut t = vec![0.0; spec().len()];
    for i in 0..3 {
        d.tensor(i, &spec(), &mut t).unwrap();
    }
    fs::write(dir.path().join("annotations.json"), "{\"imgs\": {\"1\": {\"path\": 5}}}").unwrap();
    let e = data::load(dir.path(), Format::Tt100k).unwrap_err();
    assert!(matches!(e, DataError::Annotation { .. }) && e.to_string().contains("annotations.json"), "{e}");
}

fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(data);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn idx_files_plain_and_gzip() {
    let pixels: Vec<u8> = (0..3 * 4 * 5).map(|i| i as u8 * 4).collect();
    let images = idx_bytes(0x803, &[3, 4, 5], &pixels);
    let labels = idx_bytes(0x801, &[3], &[7, 2, 7]);
    for compress in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (i, l) = if compress { (gz(&images), gz(&labels)) } else { (images.clone(), labels.clone()) };
        fs::write(dir.path().join("t10k-images-idx3-ubyte.gz"), i).unwrap();
        fs::write(dir.path().join("t10k-labels-idx1-ubyte.gz"), l).unwrap();
        let d = data::load(dir.path(), Format::Idx).unwrap();
        assert_eq!(d.classes, ["2", "7"]);
        assert_eq!(d.samples.iter().map(|s| s.class).collect::<Vec<_>>(), [1, 0, 1]);
        let (img, _) = d.image(1).unwrap();
        assert_eq!(img.dimensions(), (5, 4));
        assert_eq!(img.get_pixel(0, 0).0, [80, 80, 80]);
    }
}

#[test]
fn idx_bad_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let images = idx_bytes(0x803, &[3, 4, 5], &[0; 59]); // one byte short
    fs::write(dir.path().join("a-images-idx3-ubyte"), images).unwrap();
    fs::write(dir.path().join("a-labels-idx1-ubyte"), idx_bytes(0x801, &[3], &[1, 2, 3])).unwrap();
    let e = data::load(dir.path(), Format::Idx).unwrap_err();
    assert!(e.to_string().contains("truncated") && e.to_string().contains("idx3"), "{e}");
    fs::write(dir.path().join("a-images-idx3-ubyte"), idx_bytes(0x801, &[3], &[0; 3])).unwrap();
    assert!(data::load(dir.path(), Format::Idx).unwrap_err().to_string().contains("magic"));
    fs::write(dir.path().join("a-images-idx3-ubyte"), idx_bytes(0x803, &[2, 1, 1], &[0; 2])).unwrap();
    assert!(data::load(dir.path(), Format::Idx).unwrap_err().to_string().contains("3 labels for 2 images"));
    fs::write(dir.path().join("a-images-idx3-ubyte"), [0x1f, 0x8b, 1, 2, 3]).unwrap();
    assert!(data::load(dir.path(), Format::Idx).unwrap_err().to_string().contains("corrupt gzip"));
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn explicit_split_refuses_unknown_and_duplicate_classes() {
    let classes = names(&["a", "b", "c"]);
    let s = split::explicit(&classes, &names(&["a"]), &names(&["b"]), &names(&["c"])).unwrap();
    assert_eq!(s.unseen_ood, ["c"]);
    let e = split::explicit(&classes, &names(&["a"]), &names(&["z"]), &[]).unwrap_err();
    assert!(matches!(e, DataError::UnknownClass { ref class, .. } if class == "z"), "{e}");
    let e = split::explicit(&classes, &names(&["a", "b"]), &names(&["b"]), &[]).unwrap_err();
    assert!(e.to_string().contains("\"b\" is named in both --in and --seen-ood"), "{e}");
    assert!(matches!(split::explicit(&classes, &[], &names(&["a"]), &[]), Err(DataError::EmptySplit { .. })));
}

#[test]
fn random_split_keeps_groups_together_and_is_seeded() {
    let mut classes = Vec::new();
    let mut groups = Vec::new();
    for v in [20, 30, 50, 60, 80] {
        classes.push(format!("speed-limit-{v}"));
        groups.push("speed-limit".to_owned());
    }
    for g in
        ["stop", "give-way", "dead-end", "no-cars", "no-bicycles", "warning-a", "warning-b", "keep-left", "keep-right"]
    {
        classes.push(g.to_owned());
        groups.push(g.trim_end_matches(char::is_alphabetic).trim_end_matches('-').to_owned() + g);
    }
    let a = split::random(&classes, &groups, split::PAPER_FRACTIONS, 7).unwrap();
    assert_eq!(a, split::random(&classes, &groups, split::PAPER_FRACTIONS, 7).unwrap());
    let total = a.in_dist.len() + a.seen_ood.len() + a.unseen_ood.len();
    assert_eq!(total, classes.len());
    let speed_sides =
        [&a.in_dist, &a.seen_ood, &a.unseen_ood].iter().filter(|p| p.iter().any(|c| c.starts_with("speed"))).count();
    assert_eq!(speed_sides, 1, "all speed limits on one side: {a:?}");
    assert!(!a.in_dist.is_empty() && !a.seen_ood.is_empty() && !a.unseen_ood.is_empty());
    let differs = (0..20).any(|s| split::random(&classes, &groups, split::PAPER_FRACTIONS, s).unwrap() != a);
    assert!(differs, "the seed changes the split");
    assert!(split::random(&classes, &groups, [0.5, 0.5, 0.5], 1).is_err());
    let two = names(&["x", "y"]);
    assert!(matches!(split::random(&two, &two, split::PAPER_FRACTIONS, 1), Err(DataError::EmptySplit { .. })));
}

#[test]
fn per_class_sample_split_is_disjoint_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    folder_tree(dir.path(), &[("a", 12), ("b", 20)]);
    let d = data::load(dir.path(), Format::Folder).unwrap();
    let s = split::per_class(&d, [0.7, 0.1, 0.2], 3).unwrap();
    let mut all: Vec<usize> = s.train.iter().chain(&s.val).chain(&s.test).copied().collect();
    all.sort();
    assert_eq!(all, (0..32).collect::<Vec<_>>());
    for class in 0..2 {
        for part in [&s.train, &s.val, &s.test] {
            assert!(part.iter().any(|&i| d.samples[i].class == class), "class {class} missing from a part");
        }
    }
    assert_eq!(s, split::per_class(&d, [0.7, 0.1, 0.2], 3).unwrap());
}

#[test]
fn plan_refuses_named_classes_that_were_dropped() {
    let dir = tempfile::tempdir().unwrap();
    folder_tree(dir.path(), &[("a", 12), ("b", 12), ("c", 4)]);
    let p = split::plan(
        dir.path(),
        Format::Folder,
        &names(&["a"]),
        &names(&["b"]),
        &[],
        [0.5, 0.2, 0.3],
        [0.8, 0.1, 0.1],
        1,
        10,
    )
    .unwrap();
    assert_eq!(p.dropped, [("c".to_owned(), 4)]);
    assert_eq!(p.samples["a"].0 + p.samples["a"].1 + p.samples["a"].2, 12);
    let e = split::plan(
        dir.path(),
        Format::Folder,
        &names(&["a"]),
        &[],
        &names(&["c"]),
        [0.5, 0.2, 0.3],
        [0.8, 0.1, 0.1],
        1,
        10,
    )
    .unwrap_err();
    assert!(e.to_string().contains("\"c\" has 4 images"), "{e}");
}

#[test]
fn patches_are_cut_from_every_photo_at_detector_sizes() {
    let photos = tempfile::tempdir().unwrap();
    fs::create_dir_all(photos.path().join("street")).unwrap();
    // A 1440x960 photo is brought to 720 px on its shorter side first; a 300x200 one is used as it is.
    let gradient = |w: u32, h: u32| RgbImage::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    gradient(1440, 960).save(photos.path().join("street/Big Photo.jpg")).unwrap();
    gradient(300, 200).save(photos.path().join("small.png")).unwrap();
    fs::write(photos.path().join("notes.txt"), "not a photo").unwrap();
    let out = tempfile::tempdir().unwrap();
    let m = odm_trainer::data::patches::run(&[photos.path().to_owned()], out.path(), 7, 3).unwrap();
    let names: Vec<&str> = m.photos.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["small", "street-big-photo"]);
    let tree = data::load(out.path(), Format::Folder).unwrap();
    assert_eq!(tree.samples.len(), 14, "7 patches per photo");
    for name in names {
        for e in fs::read_dir(out.path().join(name)).unwrap() {
            let img = image::open(e.unwrap().path()).unwrap();
            for side in [img.width(), img.height()] {
                assert!((16..=128).contains(&side), "{name}: a patch of {}x{}", img.width(), img.height());
            }
        }
    }
    assert!(out.path().join("patches.json").is_file());
    // The same seed cuts the same patches.
    let again = tempfile::tempdir().unwrap();
    odm_trainer::data::patches::run(&[photos.path().to_owned()], again.path(), 7, 3).unwrap();
    let a = fs::read(out.path().join("small/00003.png")).unwrap();
    assert_eq!(a, fs::read(again.path().join("small/00003.png")).unwrap());

    // Bad inputs, by name: no folder, a folder without photos, a photo too small for a 128 px patch.
    let e = |roots: &[&Path]| {
        let roots: Vec<_> = roots.iter().map(|p| p.to_path_buf()).collect();
        odm_trainer::data::patches::run(&roots, out.path(), 2, 1).unwrap_err().to_string()
    };
    assert!(e(&[Path::new("/nonexistent/photos")]).contains("no such folder"));
    let empty = tempfile::tempdir().unwrap();
    assert!(e(&[empty.path()]).contains("no JPEG or PNG photo"));
    let tiny = tempfile::tempdir().unwrap();
    gradient(100, 60).save(tiny.path().join("tiny.png")).unwrap();
    let msg = e(&[tiny.path()]);
    assert!(msg.contains("tiny.png") && msg.contains("too small"), "{msg}");
}
