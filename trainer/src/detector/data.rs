// SPDX-License-Identifier: MIT OR Apache-2.0
//! The detector's datasets on disk: `DIR/images/00000.png ...`, `DIR/truth.jsonl` (one line per image in the
//! format `odm-train clip` writes and `odmroireplay` reads: `{"frame": i, "rois": [{"x", "y", "w", "h", "type",
//! "id", "kind"}]}`, kind `sign` or `distractor`), `DIR/data.json` (the config that made it). The same layout holds
//! the training crops and the held-out whole frames, so a held-out set can be played through GStreamer
//! (`multifilesrc location=DIR/images/%05d.png`) and scored against its truth like any clip.

use std::fs;
use std::path::{Path, PathBuf};

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::scene::{self, Crowd, Truth, World};
use super::STRIDE;
use crate::error::TrainError;
use crate::synth::{self, designs, render::Template};

/// What `odm-train detector data` renders.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataConfig {
    pub seed: u64,
    /// Background photographs (a folder, searched recursively).
    pub photos: PathBuf,
    /// Sign designs folder (None: found as `odm-train synth` finds it).
    pub designs: Option<PathBuf>,
    /// Designs drawn at random from the catalogue (0: all of them).
    pub design_count: usize,
    /// Photo scenes, each `width x height`.
    pub scenes: usize,
    pub width: usize,
    pub height: usize,
    pub crowd: Crowd,
    /// Drives rendered by `odm-train clip` (other seeds than the demo's 7), `drive_seconds` long, every
    /// `drive_every`-th frame cut into `windows_per_frame` windows of `width x height`.
    pub drives: Vec<u64>,
    pub drive_seconds: f32,
    pub drive_every: usize,
    pub windows_per_frame: usize,
}

/// One line of `truth.jsonl`.
fn line(frame: usize, truth: &[Truth]) -> String {
    let rois: Vec<serde_json::Value> = truth
        .iter()
        .enumerate()
        .map(|(id, t)| {
            serde_json::json!({
                "x": t.rect.0.round(), "y": t.rect.1.round(), "w": t.rect.2.round(), "h": t.rect.3.round(),
                "type": super::CLASS, "id": id, "kind": if t.sign { "sign" } else { "distractor" },
            })
        })
        .collect();
    serde_json::json!({"frame": frame, "rois": rois}).to_string()
}

/// Rasterise `count` designs drawn at random (all when `count` is 0 or more than the catalogue holds).
fn templates(cfg: &DataConfig) -> Result<Vec<Template>, TrainError> {
    let catalogue = designs::Catalogue::open(cfg.designs.as_deref())?;
    let mut rng = Pcg64::seed_from_u64(cfg.seed ^ 0xde51);
    let chosen: Vec<&designs::Design> = if cfg.design_count == 0 || cfg.design_count >= catalogue.designs.len() {
        catalogue.designs.iter().collect()
    } else {
        catalogue.designs.choose_multiple(&mut rng, cfg.design_count).collect()
    };
    let db = synth::fonts();
    chosen
        .into_par_iter()
        .map(|d| {
            Template::rasterise(&d.svg()?, &db)
                .map_err(|e| TrainError::Designs { path: d.path.clone(), reason: format!("cannot render: {e}") })
        })
        .collect()
}

/// Render the dataset into `out`; returns the number of images.
pub fn render(out: &Path, cfg: &DataConfig) -> Result<usize, TrainError> {
    if cfg.width < 32 || cfg.height < 32 || cfg.crowd.min_size < 4.0 || cfg.crowd.max_size < cfg.crowd.min_size {
        return Err(TrainError::Config("detector data: size at least 32x32 and 4 <= min-size <= max-size".into()));
    }
    if cfg.crowd.signs.0 > cfg.crowd.signs.1 || cfg.crowd.distractors.0 > cfg.crowd.distractors.1 {
        return Err(TrainError::Config("detector data: each range's low end at most its high end".into()));
    }
    let images = out.join("images");
    fs::create_dir_all(&images).map_err(TrainError::io(&images))?;
    let world = World {
        templates: templates(cfg)?,
        photos: synth::photo_scenes(&cfg.photos)?.into_iter().map(|(_, p)| p).collect(),
    };
    let scenes: Vec<(image::RgbImage, Vec<Truth>)> = (0..cfg.scenes)
        .into_par_iter()
        .map(|i| {
            let mut rng = Pcg64::seed_from_u64(cfg.seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
            scene::compose(&world, cfg.width, cfg.height, &cfg.crowd, &mut rng)
        })
        .collect();
    drop(world);
    let mut all = scenes;
    for &seed in &cfg.drives {
        all.extend(drive(out, cfg, seed)?);
    }
    let mut lines = String::new();
    for (i, (img, truth)) in all.iter().enumerate() {
        lines.push_str(&line(i, truth));
        lines.push('\n');
        crate::data::save_png(img, &images.join(format!("{i:05}.png")))?;
    }
    let truth = out.join("truth.jsonl");
    fs::write(&truth, lines).map_err(TrainError::io(&truth))?;
    let meta = out.join("data.json");
    let text = serde_json::to_string_pretty(cfg).map_err(|e| TrainError::Asset(e.to_string()))?;
    fs::write(&meta, text + "\n").map_err(TrainError::io(&meta))?;
    Ok(all.len())
}

/// Windows of one rendered drive (rendered into `out/drives/seed-N/` unless already there).
fn drive(out: &Path, cfg: &DataConfig, seed: u64) -> Result<Vec<(image::RgbImage, Vec<Truth>)>, TrainError> {
    let dir = out.join("drives").join(format!("seed-{seed}"));
    fs::create_dir_all(&dir).map_err(TrainError::io(&dir))?;
    let clip = synth::clip::ClipConfig { seed, seconds: cfg.drive_seconds, ..Default::default() };
    let (video, rois) = (dir.join("drive.mp4"), dir.join("drive.rois.jsonl"));
    if !video.is_file() || !rois.is_file() {
        synth::clip::run(&video, &rois, &clip)?;
    }
    let truth = crate::data::rois::read(&rois)?;
    let mut rng = Pcg64::seed_from_u64(seed ^ 0x000d_715e);
    let mut windows = Vec::new();
    let every = cfg.drive_every.max(1);
    scene::frames(&video, clip.width as usize, clip.height as usize, |f, rgb| {
        if f % every == 0 {
            if let Some(t) = truth.get(f) {
                let side = cfg.width.min(cfg.height);
                let w = scene::drive_windows(
                    rgb,
                    clip.width as usize,
                    clip.height as usize,
                    t,
                    side,
                    cfg.windows_per_frame,
                    &mut rng,
                );
                windows.extend(w);
            }
        }
        Ok(true)
    })?;
    Ok(windows)
}

/// A loaded dataset: images `[N, 3, S, S]` uint8 and the sign boxes of each.
pub struct Dataset {
    pub images: Tensor,
    pub boxes: Vec<Vec<(f32, f32, f32, f32)>>,
    pub side: usize,
}

/// Load a dataset written by [`render`] (square images only: the training crops).
pub fn load(dir: &Path) -> Result<Dataset, TrainError> {
    let truth = crate::data::rois::read(&dir.join("truth.jsonl"))?;
    if truth.is_empty() {
        return Err(TrainError::Config(format!("{}: no image in truth.jsonl", dir.display())));
    }
    let decoded: Vec<(Vec<u8>, usize, usize)> = truth
        .par_iter()
        .map(|f| {
            let p = dir.join("images").join(format!("{:05}.png", f.frame));
            let img = image::open(&p)
                .map_err(|e| TrainError::Designs { path: p.clone(), reason: format!("cannot decode: {e}") })?
                .to_rgb8();
            Ok((img.as_raw().clone(), img.width() as usize, img.height() as usize))
        })
        .collect::<Result<_, TrainError>>()?;
    let side = decoded[0].1;
    if decoded.iter().any(|d| d.1 != side || d.2 != side) || !side.is_multiple_of(32) {
        return Err(TrainError::Config(format!(
            "{}: training images must all be square, of one side, a multiple of 32",
            dir.display()
        )));
    }
    let mut bytes = Vec::with_capacity(decoded.len() * side * side * 3);
    for d in &decoded {
        bytes.extend_from_slice(&d.0);
    }
    let n = decoded.len() as i64;
    let s = side as i64;
    let images = Tensor::from_slice(&bytes).view([n, s, s, 3]).permute([0, 3, 1, 2]).contiguous();
    let boxes = truth
        .iter()
        .map(|f| {
            f.rois
                .iter()
                .filter(|r| r.kind.as_deref() != Some("distractor") && r.w >= 2.0 && r.h >= 2.0)
                .map(|r| (r.x as f32, r.y as f32, r.w as f32, r.h as f32))
                .collect()
        })
        .collect();
    Ok(Dataset { images, boxes, side })
}

/// `n` images of a dataset written by [`render`], evenly spaced over it, as `[n, 3, H, W]` floats in [0, 1] (all
/// of one size): what calibrates an INT8 export.
pub fn calibration(dir: &Path, n: usize) -> Result<Tensor, TrainError> {
    let truth = crate::data::rois::read(&dir.join("truth.jsonl"))?;
    if truth.is_empty() || n == 0 {
        return Err(TrainError::Config(format!("{}: no image to calibrate on", dir.display())));
    }
    let n = n.min(truth.len());
    let images = (0..n)
        .map(|i| &truth[i * truth.len() / n])
        .map(|f| {
            let p = dir.join("images").join(format!("{:05}.png", f.frame));
            let img = image::open(&p)
                .map_err(|e| TrainError::Designs { path: p.clone(), reason: format!("cannot decode: {e}") })?
                .to_rgb8();
            Ok(img)
        })
        .collect::<Result<Vec<_>, TrainError>>()?;
    let (w, h) = images[0].dimensions();
    if images.iter().any(|i| i.dimensions() != (w, h)) {
        return Err(TrainError::Config(format!("{}: calibration images must all be of one size", dir.display())));
    }
    let bytes: Vec<u8> = images.iter().flat_map(|i| i.as_raw().iter().copied()).collect();
    let t = Tensor::from_slice(&bytes).view([images.len() as i64, h as i64, w as i64, 3]);
    Ok(t.permute([0, 3, 1, 2]).to_kind(Kind::Float) / 255.0)
}

/// Targets of one image of `side` pixels: heatmap `[1, G, G]`, regression `[4, G, G]` (offset x, y from the
/// cell's centre in cells; log w, h in cells), regression weight `[1, G, G]`, as flat vectors; G = side / 4.
///
/// The heatmap is 1 at each sign's centre cell and a Gaussian around it (sigma from the box as CenterNet sets it:
/// larger boxes tolerate a peak further off). Regression is learnt on the centre cell and its 8 neighbours (a
/// peak one cell off still gives a good box); where two signs' cells meet, the smaller sign keeps them.
pub fn targets(boxes: &[(f32, f32, f32, f32)], side: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let g = side / STRIDE as usize;
    let s = STRIDE as f32;
    let mut heat = vec![0.0f32; g * g];
    let mut reg = vec![0.0f32; 4 * g * g];
    let mut weight = vec![0.0f32; g * g];
    let mut order: Vec<&(f32, f32, f32, f32)> = boxes.iter().collect();
    order.sort_by(|a, b| (b.2 * b.3).total_cmp(&(a.2 * a.3)));
    for &(x, y, w, h) in order {
        let (cx, cy) = ((x + w / 2.0) / s, (y + h / 2.0) / s);
        let (ix, iy) = (cx.floor() as i64, cy.floor() as i64);
        if ix < 0 || iy < 0 || ix >= g as i64 || iy >= g as i64 {
            continue;
        }
        let radius = (0.2 * w.min(h) / s).floor().max(0.0);
        let sigma = (2.0 * radius + 1.0) / 6.0;
        let r = (3.0 * sigma).ceil().max(1.0) as i64;
        for dy in -r..=r {
            for dx in -r..=r {
                let (px, py) = (ix + dx, iy + dy);
                if px < 0 || py < 0 || px >= g as i64 || py >= g as i64 {
                    continue;
                }
                let v = (-((dx * dx + dy * dy) as f32) / (2.0 * sigma * sigma)).exp();
                let k = py as usize * g + px as usize;
                heat[k] = heat[k].max(v);
                if dx.abs() <= 1 && dy.abs() <= 1 {
                    reg[k] = cx - (px as f32 + 0.5);
                    reg[g * g + k] = cy - (py as f32 + 0.5);
                    reg[2 * g * g + k] = (w / s).ln();
                    reg[3 * g * g + k] = (h / s).ln();
                    weight[k] = if dx == 0 && dy == 0 { 1.0 } else { 0.5 };
                }
            }
        }
        heat[iy as usize * g + ix as usize] = 1.0;
    }
    (heat, reg, weight)
}

/// A training batch: images `[B, 3, S, S]` float in [0, 1] (mirrored at random) and their target tensors.
pub fn batch(data: &Dataset, indices: &[usize], rng: &mut Pcg64) -> (Tensor, Tensor, Tensor, Tensor) {
    let s = data.side;
    let g = (s / STRIDE as usize) as i64;
    let (mut heat, mut reg, mut weight) = (Vec::new(), Vec::new(), Vec::new());
    let mut imgs = Vec::new();
    for &i in indices {
        let flip = rng.random_bool(0.5);
        let img = data.images.get(i as i64);
        let boxes: Vec<_> = if flip {
            imgs.push(img.flip([2]));
            data.boxes[i].iter().map(|&(x, y, w, h)| (s as f32 - x - w, y, w, h)).collect()
        } else {
            imgs.push(img);
            data.boxes[i].clone()
        };
        let (h, r, w) = targets(&boxes, s);
        heat.extend(h);
        reg.extend(r);
        weight.extend(w);
    }
    let b = indices.len() as i64;
    let x = Tensor::stack(&imgs, 0).to_kind(Kind::Float) / 255.0;
    (
        x,
        Tensor::from_slice(&heat).view([b, 1, g, g]),
        Tensor::from_slice(&reg).view([b, 4, g, g]),
        Tensor::from_slice(&weight).view([b, 1, g, g]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_peaks_at_its_centre_cell_with_its_box_to_regress() {
        // A 16 x 12 box at (40, 20): centre (48, 26) = cell (12, 6) + (0.0, 0.5) cells; 64-pixel image, G = 16.
        let (heat, reg, weight) = targets(&[(40.0, 20.0, 16.0, 12.0)], 64);
        let g = 16;
        let k = 6 * g + 12;
        assert_eq!(heat[k], 1.0);
        assert_eq!(heat.iter().filter(|&&v| v == 1.0).count(), 1, "one peak");
        assert!(heat[k + 1] < 1.0 && heat[k + 1] > 0.0, "a Gaussian around it");
        assert!((reg[k] - (-0.5)).abs() < 1e-6, "x offset from the cell centre: {}", reg[k]);
        assert!((reg[g * g + k] - 0.0).abs() < 1e-6);
        assert!((reg[2 * g * g + k] - 4f32.ln()).abs() < 1e-6, "log width in cells");
        assert!((reg[3 * g * g + k] - 3f32.ln()).abs() < 1e-6, "log height in cells");
        assert_eq!(weight[k], 1.0);
        assert_eq!(weight[k + 1], 0.5, "a neighbour regresses too");
        assert_eq!(weight[k + 3], 0.0, "but not further");
        // The neighbour's offset points back at the centre.
        assert!((reg[k + 1] - (-1.5)).abs() < 1e-6);
    }

    #[test]
    fn boxes_outside_are_skipped() {
        let (heat, _, weight) = targets(&[(100.0, 100.0, 20.0, 20.0)], 64);
        assert!(heat.iter().all(|&v| v == 0.0));
        assert!(weight.iter().all(|&v| v == 0.0));
    }
}
