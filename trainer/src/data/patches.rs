// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train patches`: anomaly patches cut from real photographs, the way a sign detector frames its false
//! positives — windows of 16 to 128 pixels on a photo brought to dashcam scale (shorter side 720 pixels).
//!
//! Layout: `OUT/<photo>/00000.png ...` (one folder per photograph, so a split keeps every photo's patches together
//! per class) and `OUT/patches.json` (sources, seed, counts). Patches are saved at the size they were cut; the
//! trainer and the plugin resize them like any crop.

use std::fs;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{DataError, TrainError};

#[derive(Debug, Clone, Serialize)]
pub struct PatchManifest {
    pub seed: u64,
    pub per_photo: usize,
    pub min_size: u32,
    pub max_size: u32,
    /// (folder, source photo) of every photograph.
    pub photos: Vec<(String, String)>,
}

/// Photo files under `dir` (recursively), sorted: JPEG, PNG, PNM.
pub(crate) fn photos_in(dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(TrainError::io(&d))? {
            let p = e.map_err(TrainError::io(&d))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref(),
                Some("jpg" | "jpeg" | "png" | "ppm" | "pnm")
            ) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A folder name for a photo: its path below `root`, with anything but ASCII letters and digits as `-`.
fn folder_name(root: &Path, photo: &Path) -> String {
    let rel = photo.strip_prefix(root).unwrap_or(photo).with_extension("");
    let s: String = rel
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    s.trim_matches('-').to_owned()
}

/// Cut `per_photo` patches from every photo under each of `roots` into `out`.
pub fn run(roots: &[PathBuf], out: &Path, per_photo: usize, seed: u64) -> Result<PatchManifest, TrainError> {
    const MIN: u32 = 16;
    const MAX: u32 = 128;
    const SHORT_SIDE: u32 = 720;
    if per_photo == 0 {
        return Err(TrainError::Config("--per-photo must be at least 1".into()));
    }
    let mut photos = Vec::new();
    for root in roots {
        if !root.is_dir() {
            return Err(TrainError::Config(format!("--photos {}: no such folder", root.display())));
        }
        let found = photos_in(root)?;
        if found.is_empty() {
            return Err(TrainError::Config(format!("--photos {}: no JPEG or PNG photo in it", root.display())));
        }
        photos.extend(found.into_iter().map(|p| (folder_name(root, &p), p)));
    }
    photos.par_iter().enumerate().try_for_each(|(k, (name, path))| -> Result<(), TrainError> {
        let img =
            image::open(path).map_err(|e| DataError::Image { path: path.clone(), reason: e.to_string() })?.to_rgb8();
        let (w, h) = img.dimensions();
        let scale = SHORT_SIDE as f32 / w.min(h) as f32;
        let img = if scale < 1.0 {
            image::imageops::resize(
                &img,
                (w as f32 * scale).round() as u32,
                (h as f32 * scale).round() as u32,
                FilterType::Triangle,
            )
        } else {
            img
        };
        let (w, h) = img.dimensions();
        if w.min(h) < MAX {
            return Err(
                DataError::Image { path: path.clone(), reason: format!("{w}x{h} is too small for patches") }.into()
            );
        }
        let dir = out.join(name);
        fs::create_dir_all(&dir).map_err(TrainError::io(&dir))?;
        let mut rng = Pcg64::seed_from_u64(seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for i in 0..per_photo {
            let size = (rng.random_range((MIN as f32).ln()..(MAX as f32).ln())).exp();
            let pw = (size * rng.random_range(0.85f32..1.15)).round().clamp(MIN as f32, MAX as f32) as u32;
            let ph = (size * rng.random_range(0.85f32..1.15)).round().clamp(MIN as f32, MAX as f32) as u32;
            let (x, y) = (rng.random_range(0..=w - pw), rng.random_range(0..=h - ph));
            let patch = image::imageops::crop_imm(&img, x, y, pw, ph).to_image();
            super::save_png(&patch, &dir.join(format!("{i:05}.png")))?;
        }
        Ok(())
    })?;
    let manifest = PatchManifest {
        seed,
        per_photo,
        min_size: MIN,
        max_size: MAX,
        photos: photos.iter().map(|(n, p)| (n.clone(), p.display().to_string())).collect(),
    };
    let path = out.join("patches.json");
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| TrainError::Asset(e.to_string()))?;
    fs::write(&path, text + "\n").map_err(TrainError::io(&path))?;
    Ok(manifest)
}
