// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `colors` model: a hand-built embedding network whose answer can be worked out by hand.
//!
//! `input [N,3,16,16]` -> GlobalAveragePool -> Flatten -> Gemm(W, b, transB=1) -> `embedding [N,4]`.
//! The embedding is a fixed linear map of the crop's mean normalised colour, so a pure red crop lands exactly on
//! the `red` centre, an orange one between red and yellow (a novelty), a grey or white one far from every centre
//! (an anomaly). Tests use it to check crop, normalisation, batching, ONNX Runtime and scoring end to end with
//! expected answers, and it is small (under 1 KB) so it is committed. `W` is not symmetric so that a transposed
//! weight layout would be caught.

use std::fs;
use std::path::{Path, PathBuf};

use odm_core::bundle::{
    sha256_file, Bundle, Calibration, ClassEntry, ColorOrder, InputSpec, ModelSpec, OutputSpec, ScoreSpec, FORMAT,
    SCORE_KIND,
};

use super::onnx::{Attr, Dim, GraphBuilder};
use crate::error::TrainError;

pub const NAME: &str = "colors";
pub const SIZE: u32 = 16;
const MEAN: f32 = 0.5;
const STD: f32 = 0.25;
/// `[out=4, in=3]`, as Gemm with `transB=1` expects (and as tch/PyTorch store Linear weights).
pub const W: [[f32; 3]; 4] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, -0.5, 0.0]];
pub const B: [f32; 4] = [0.0, 0.0, 0.0, 0.0];
pub const CLASSES: [(&str, [u8; 3]); 4] =
    [("red", [255, 0, 0]), ("green", [0, 255, 0]), ("blue", [0, 0, 255]), ("yellow", [255, 255, 0])];
pub const NOVELTY_THRESHOLD: f64 = 1.0;
pub const ANOMALY_THRESHOLD: f64 = 2.5;

/// The embedding the model gives a crop of one uniform colour.
pub fn embed_color(rgb: [u8; 3]) -> [f32; 4] {
    let x: [f32; 3] = std::array::from_fn(|c| (rgb[c] as f32 / 255.0 - MEAN) / STD);
    std::array::from_fn(|o| W[o].iter().zip(&x).map(|(w, v)| w * v).sum::<f32>() + B[o])
}

/// The ONNX bytes.
pub fn onnx_bytes() -> Vec<u8> {
    let mut g = GraphBuilder::new(NAME);
    let x = g.input("input", &[Dim::Named("N"), Dim::Fixed(3), Dim::Fixed(SIZE as i64), Dim::Fixed(SIZE as i64)]);
    let w: Vec<f32> = W.iter().flatten().copied().collect();
    let w = g.weight("fc.weight", &[4, 3], &w);
    let b = g.weight("fc.bias", &[4], &B);
    let pooled = g.node("GlobalAveragePool", &[&x], vec![], None);
    let flat = g.node("Flatten", &[&pooled], vec![Attr::Int("axis", 1)], None);
    g.node(
        "Gemm",
        &[&flat, &w, &b],
        vec![Attr::Float("alpha", 1.0), Attr::Float("beta", 1.0), Attr::Int("transB", 1)],
        Some("embedding"),
    );
    g.output("embedding", &[Dim::Named("N"), Dim::Fixed(4)]);
    g.finish("odm test fixture: mean colour -> fixed linear map (see odm-trainer src/fixture.rs)")
}

/// Write `DIR/colors.onnx` and `DIR/colors.odm.json`; returns the bundle path.
pub fn write(dir: &Path) -> Result<PathBuf, TrainError> {
    fs::create_dir_all(dir).map_err(TrainError::io(dir))?;
    let onnx = dir.join(format!("{NAME}.onnx"));
    fs::write(&onnx, onnx_bytes()).map_err(TrainError::io(&onnx))?;
    let sha256 = sha256_file(&onnx).map_err(TrainError::io(&onnx))?;
    let bundle = Bundle {
        category_refs: Vec::new(),
        format: FORMAT.into(),
        name: NAME.into(),
        model: ModelSpec {
            file: format!("{NAME}.onnx"),
            sha256,
            input: InputSpec {
                name: "input".into(),
                width: SIZE,
                height: SIZE,
                color: ColorOrder::Rgb,
                mean: [MEAN; 3],
                std: [STD; 3],
                context: 0.0,
            },
            output: OutputSpec { name: "embedding".into(), dim: 4 },
            precision: "fp32".into(),
        },
        classes: CLASSES
            .iter()
            .enumerate()
            .map(|(i, (label, rgb))| ClassEntry {
                id: i as i32,
                label: (*label).into(),
                center: embed_color(*rgb).to_vec(),
                novelty_threshold: None,
                anomaly_threshold: None,
                category: None,
            })
            .collect(),
        score: ScoreSpec {
            kind: SCORE_KIND.into(),
            novelty_threshold: NOVELTY_THRESHOLD,
            anomaly_threshold: ANOMALY_THRESHOLD,
            calibration: Some(Calibration { set: "by construction".into(), tpr: 1.0 }),
            reference_ratio: None,
            category_votes: None,
        },
        training: serde_json::json!({
            "command": "odm-train fixture --out DIR",
            "note": "hand-built weights, no training",
        }),
        metrics: serde_json::Value::Null,
    };
    let path = dir.join(format!("{NAME}.odm.json"));
    bundle.save(&path)?;
    Ok(path)
}

/// Solid colours of the test world (RGB).
pub const FOREIGN_COLOURS: [(&str, [u8; 3]); 6] = [
    ("red", [220, 30, 30]),
    ("green", [30, 200, 40]),
    ("blue", [30, 40, 220]),
    ("yellow", [230, 220, 30]),
    ("magenta", [210, 30, 200]),
    ("cyan", [30, 210, 220]),
];

/// A network as another framework would export it, for `odm-train bundle --onnx` (no bundle, nothing of odm's
/// conventions): the mean of each input channel (GlobalAveragePool), mixed by a fixed 5x3 matrix with a bias.
/// Input `pixels` `[N,3,H,W]` with dynamic height and width unless `fixed` (height, width), output `features` `[N,5]`.
pub fn foreign_onnx(fixed: Option<(i64, i64)>) -> Vec<u8> {
    let mut g = GraphBuilder::new("colour-net");
    let (h, w) = match fixed {
        Some((h, w)) => (Dim::Fixed(h), Dim::Fixed(w)),
        None => (Dim::Named("H"), Dim::Named("W")),
    };
    let x = g.input("pixels", &[Dim::Named("N"), Dim::Fixed(3), h, w]);
    let p = g.node("GlobalAveragePool", &[&x], vec![], None);
    let f = g.node("Flatten", &[&p], vec![Attr::Int("axis", 1)], None);
    let m = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.0, 0.0, 0.5, 0.5f32];
    let wn = g.weight("mix", &[5, 3], &m);
    let bn = g.weight("bias", &[5], &[0.1, -0.2, 0.3, 0.0, 0.05]);
    g.node("Gemm", &[&f, &wn, &bn], vec![Attr::Int("transB", 1)], Some("features"));
    g.output("features", &[Dim::Named("N"), Dim::Fixed(5)]);
    g.finish("a colour embedding that odm's trainer did not train")
}

/// A class-per-folder dataset for it, `root/{train,test}/<colour>/NNN.png` (`train` and `test` images per class of
/// [`FOREIGN_COLOURS`]): 32x32 solid colours, each image shifted by up to 20 levels per channel, each pixel by 10.
pub fn colour_dataset(root: &Path, train: usize, test: usize) -> Result<(), TrainError> {
    let mut seed = 7u32;
    let mut noise = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 24) as i32 % 21 - 10
    };
    for (split, n) in [("train", train), ("test", test)] {
        for (name, rgb) in FOREIGN_COLOURS {
            let dir = root.join(split).join(name);
            fs::create_dir_all(&dir).map_err(TrainError::io(&dir))?;
            for i in 0..n {
                // Each image a little off its colour (lighting), each pixel a little off the image's (sensor noise).
                let shade = rgb.map(|c| c as i32 + noise() * 2);
                let img = image::RgbImage::from_fn(32, 32, |_, _| {
                    image::Rgb(shade.map(|c| (c + noise()).clamp(0, 255) as u8))
                });
                let p = dir.join(format!("{i:03}.png"));
                img.save(&p).map_err(|e| TrainError::Config(format!("{}: {e}", p.display())))?;
            }
        }
    }
    Ok(())
}

/// Grey and dark textures, `dir/textures/NNN.png`: what is not a sign.
pub fn grey_tree(dir: &Path, n: usize) -> Result<(), TrainError> {
    let dir = dir.join("textures");
    fs::create_dir_all(&dir).map_err(TrainError::io(&dir))?;
    for i in 0..n {
        let base = (i * 37 % 200) as u8 + 20;
        let img = image::RgbImage::from_fn(32, 32, |x, y| {
            let v = base.saturating_add(((x * 7 + y * 13 + i as u32) % 30) as u8);
            image::Rgb([v, v, v])
        });
        let p = dir.join(format!("{i:03}.png"));
        img.save(&p).map_err(|e| TrainError::Config(format!("{}: {e}", p.display())))?;
    }
    Ok(())
}
