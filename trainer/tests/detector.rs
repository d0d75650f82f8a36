// SPDX-License-Identifier: MIT OR Apache-2.0
//! The sign detector end to end inside the trainer: a few rendered scenes, a short training whose loss falls, and
//! an export that ONNX Runtime loads with the YOLOv8 layout, the `names` metadata and tch's numbers.

use odm_trainer::detector::data::{self, DataConfig};
use odm_trainer::detector::export;
use odm_trainer::detector::fit::{self, FitConfig};
use odm_trainer::detector::scene::Crowd;
use ort::session::Session;
use ort::value::TensorRef;
use tch::{Kind, Tensor};

/// Two small photographs for backgrounds: scenes embedded in the trainer (coffee, chelsea), written as PNG, so the
/// test decodes a few small files rather than the wallpapers of .deps/photos.
fn photos(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("photos");
    std::fs::create_dir_all(&p).unwrap();
    for (name, scene) in odm_trainer::synth::scenes().unwrap() {
        if name == "coffee" || name == "chelsea" {
            scene.to_image().save(p.join(format!("{name}.png"))).unwrap();
        }
    }
    assert_eq!(std::fs::read_dir(&p).unwrap().count(), 2);
    p
}

#[test]
fn a_short_training_learns_and_exports_a_yolov8_layout_detector() {
    tch::set_num_threads(2);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let cfg = DataConfig {
        seed: 5,
        photos: photos(dir.path()),
        designs: None,
        design_count: 12,
        scenes: 16,
        width: 96,
        height: 96,
        crowd: Crowd { signs: (1, 3), distractors: (0, 1), min_size: 14.0, max_size: 40.0 },
        drives: Vec::new(),
        drive_seconds: 1.0,
        drive_every: 1,
        windows_per_frame: 1,
    };
    assert_eq!(data::render(&data_dir, &cfg).unwrap(), 16);
    let truth = odm_trainer::data::rois::read(&data_dir.join("truth.jsonl")).unwrap();
    assert_eq!(truth.len(), 16);
    let signs = truth.iter().flat_map(|f| &f.rois).filter(|r| r.kind.as_deref() == Some("sign")).count();
    assert!(signs >= 16, "at least one sign per scene: {signs}");

    let run = dir.path().join("run");
    let fc = FitConfig { data: data_dir.clone(), steps: 60, batch: 8, lr: 4e-3, seed: 2, log_every: 10 };
    let (_vs, net, summary) = fit::fit(&run, &fc, false).unwrap();
    assert!(run.join("weights.ot").is_file() && run.join("config.json").is_file());
    let (first, last) = (summary.log[0], *summary.log.last().unwrap());
    assert!(last.1 < 0.8 * first.1, "the loss falls: {first:?} -> {last:?}");
    assert!(last.2 < first.2, "the heatmap loss falls: {first:?} -> {last:?}");

    // Export at a small input for the test (the shipped one is 1280 x 736), run it in ONNX Runtime.
    let (h, w) = (96i64, 160i64);
    let bytes = export::onnx(&net, (h, w), "test");
    let env = odm_trainer::eval::onnx::environment().expect("ONNX Runtime (run scripts/bootstrap.sh)");
    let mut session = Session::builder(&env).unwrap().commit_from_memory(&bytes).unwrap();
    let names = session.metadata().unwrap().custom("names");
    assert_eq!(names.as_deref(), Some("{0: 'traffic-sign'}"));
    let x = Tensor::rand([2, 3, h, w], (Kind::Float, tch::Device::Cpu));
    let want = export::reference(&net, &x);
    let xs = Vec::<f32>::try_from(&x.contiguous().view([-1])).unwrap();
    let input = ndarray::Array4::from_shape_vec((2, 3, h as usize, w as usize), xs).unwrap();
    let out = session.run(ort::inputs!["images" => TensorRef::from_array_view(&input).unwrap()]).unwrap();
    let (shape, got) = out["output0"].try_extract_tensor::<f32>().unwrap();
    let cells = (h / 4) * (w / 4);
    assert_eq!(shape.iter().copied().collect::<Vec<_>>(), [2, 5, cells], "[N, 4 + 1 class, cells]");
    let want = Vec::<f32>::try_from(&want.contiguous().view([-1])).unwrap();
    for (k, (a, b)) in got.iter().zip(&want).enumerate() {
        let row = (k / cells as usize) % 5;
        let tol = if row == 4 { 1e-4 } else { 1e-3 * b.abs().max(1.0) };
        // A peak test can flip on a near tie between neighbours; everything else agrees within float error.
        let tie = row == 4 && (a.abs() < 1e-6 || b.abs() < 1e-6);
        assert!((a - b).abs() <= tol || tie, "value {k} (row {row}): ONNX {a} against tch {b}");
    }
    let scores: Vec<f32> = got.chunks(cells as usize).skip(4).step_by(5).flatten().copied().collect();
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)), "scores are probabilities");
    let peaks = scores.iter().filter(|&&s| s > 0.0).count();
    assert!(peaks < scores.len() / 4, "only heatmap peaks keep a score: {peaks} of {}", scores.len());
    // INT8: calibrated on eight of the training images, it gives the float graph's boxes and peak scores on all
    // sixteen, within quantization error.
    let calib = data::calibration(&data_dir, 8).unwrap();
    let images = data::calibration(&data_dir, 16).unwrap();
    assert_eq!(images.size(), [16, 3, 96, 96]);
    let (float, int8) = (export::onnx(&net, (96, 96), "test"), export::onnx_int8(&net, (96, 96), "test", &calib));
    assert!(int8.len() < float.len(), "int8 weights: {} bytes against {}", int8.len(), float.len());
    let run = |bytes: &[u8]| -> Vec<f32> {
        let mut s = Session::builder(&env).unwrap().commit_from_memory(bytes).unwrap();
        let xs = Vec::<f32>::try_from(&images.contiguous().view([-1])).unwrap();
        let input = ndarray::Array4::from_shape_vec((16, 3, 96, 96), xs).unwrap();
        let out = s.run(ort::inputs!["images" => TensorRef::from_array_view(&input).unwrap()]).unwrap();
        out["output0"].try_extract_tensor::<f32>().unwrap().1.to_vec()
    };
    let (f, q) = (run(&float), run(&int8));
    let cells = 24 * 24;
    let mut centre = 0f64;
    let mut size = 0f64;
    for n in 0..16 {
        let row = |v: &[f32], r: usize| v[(n * 5 + r) * cells..(n * 5 + r + 1) * cells].to_vec();
        for r in 0..2 {
            centre += row(&f, r).iter().zip(row(&q, r)).map(|(a, b)| (a - b).abs() as f64).sum::<f64>();
        }
        for r in 2..4 {
            size += row(&f, r).iter().zip(row(&q, r)).map(|(a, b)| ((a - b) / a.max(1e-3)).abs() as f64).sum::<f64>();
        }
        let peak = |v: &[f32]| row(v, 4).iter().fold(0f32, |m, s| m.max(*s));
        assert!((peak(&f) - peak(&q)).abs() < 0.1, "image {n}: best score {} float, {} int8", peak(&f), peak(&q));
    }
    let (centre, size) = (centre / (16.0 * 2.0 * cells as f64), size / (16.0 * 2.0 * cells as f64));
    assert!(centre < 1.5, "int8 box centres are {centre:.2} px off the float ones on average");
    assert!(size < 0.1, "int8 box sizes are {:.1}% off the float ones on average", 100.0 * size);
}

#[test]
fn a_dataset_with_a_bad_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DataConfig {
        seed: 1,
        photos: photos(dir.path()),
        designs: None,
        design_count: 1,
        scenes: 1,
        width: 64,
        height: 64,
        crowd: Crowd { signs: (3, 1), distractors: (0, 0), min_size: 12.0, max_size: 20.0 },
        drives: Vec::new(),
        drive_seconds: 1.0,
        drive_every: 1,
        windows_per_frame: 1,
    };
    let e = data::render(dir.path(), &cfg).unwrap_err().to_string();
    assert!(e.contains("low end"), "{e}");
}
