// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train synth`: render a synthetic traffic-sign dataset, reproducible byte for byte from its seed.
//!
//! Layout written (class-per-folder trees, as every loader of odm reads them):
//! ```text
//! OUT/train/<class>/00000.png ...     signs, per class
//! OUT/test/<class>/00000.png ...
//! OUT/background/<scene>/00000.png    anomalies: patches of the same scenes, some with red/blue non-sign objects
//! OUT/noise/gaussian/00000.png        anomalies: Gaussian noise
//! OUT/manifest.json                   classes, groups, counts, seed, generator version, configuration
//! ```
//! Each sample has its own random stream, derived from (seed, part, class, index), so the output does not depend on
//! the number of threads.

pub mod designs;
pub mod mined;
pub mod render;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::ImageEncoder;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::assets;
use crate::error::TrainError;
use render::{Rgb, Template};

/// Version of the generator; changes whenever the same seed would give different pixels.
pub const GENERATOR: &str = "odm-synth/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SynthConfig {
    pub seed: u64,
    pub train_per_class: usize,
    pub test_per_class: usize,
    pub background: usize,
    pub noise: usize,
    /// Sign size range in pixels.
    pub min_size: f32,
    pub max_size: f32,
    /// Probability that part of a sign is hidden.
    pub occlusion: f64,
    /// Probability that a background patch holds a red, blue, yellow or white non-sign object.
    pub distractors: f64,
    /// Only these classes (empty: all).
    #[serde(default)]
    pub classes: Vec<String>,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 1,
            train_per_class: 200,
            test_per_class: 50,
            background: 2000,
            noise: 500,
            min_size: 16.0,
            max_size: 96.0,
            occlusion: 0.2,
            distractors: 0.35,
            classes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClassInfo {
    pub name: String,
    pub group: String,
    pub train: usize,
    pub test: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub generator: String,
    pub config: SynthConfig,
    pub classes: Vec<ClassInfo>,
    /// Background scene name -> number of patches.
    pub background: Vec<(String, usize)>,
    pub noise: usize,
}

pub const MANIFEST: &str = "manifest.json";

/// splitmix64: decorrelates the per-sample seeds.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn rng_for(seed: u64, part: u64, class: u64, index: u64) -> Pcg64 {
    Pcg64::seed_from_u64(mix(mix(mix(seed ^ part.rotate_left(48)) ^ class.rotate_left(24)) ^ index))
}

/// The embedded scenes, decoded.
pub fn scenes() -> Result<Vec<(String, Rgb)>, TrainError> {
    assets::SCENES
        .iter()
        .map(|(name, bytes)| {
            let img =
                image::load_from_memory(bytes).map_err(|e| TrainError::Asset(format!("scene {name}: {e}")))?.to_rgb8();
            let stem = name.rsplit_once('.').map_or(*name, |(s, _)| s).to_owned();
            Ok((stem, Rgb::from_image(&img)))
        })
        .collect()
}

/// The font database with the embedded OSP-DIN font.
pub fn fonts() -> Arc<resvg::usvg::fontdb::Database> {
    let mut db = resvg::usvg::fontdb::Database::new();
    for (_, bytes) in assets::FONTS {
        db.load_font_data(bytes.to_vec());
    }
    Arc::new(db)
}

/// Rasterise the chosen designs.
pub fn templates(config: &SynthConfig) -> Result<Vec<(designs::Design, Template)>, TrainError> {
    let all = designs::catalogue();
    for c in &config.classes {
        if !all.iter().any(|d| &d.name == c) {
            return Err(TrainError::UnknownClass {
                class: c.clone(),
                known: all.iter().map(|d| d.name.clone()).collect(),
            });
        }
    }
    let chosen: Vec<_> =
        all.into_iter().filter(|d| config.classes.is_empty() || config.classes.contains(&d.name)).collect();
    let db = fonts();
    chosen
        .into_par_iter()
        .map(|d| {
            let t =
                Template::rasterise(&d.svg, &db).map_err(|e| TrainError::Asset(format!("design {}: {e}", d.name)))?;
            Ok((d, t))
        })
        .collect()
}

/// Render one sign crop.
pub fn render_sign(t: &Template, scenes: &[(String, Rgb)], config: &SynthConfig, rng: &mut Pcg64) -> image::RgbImage {
    let p = render::place(rng, config.min_size, config.max_size);
    let scene = &scenes[rng.random_range(0..scenes.len())].1;
    let mut img = render::background(scene, p.crop_w, p.crop_h, rng);
    let mask = render::composite(&mut img, t, &p, rng);
    if rng.random_bool(config.occlusion) {
        let other = &scenes[rng.random_range(0..scenes.len())].1;
        render::occlude(&mut img, other, &p, rng);
    }
    render::camera(&mut img, &mask, p.size / 48.0, rng)
}

/// Render one background patch (an anomaly) from a given scene.
pub fn render_background(scene: &Rgb, config: &SynthConfig, rng: &mut Pcg64) -> image::RgbImage {
    let p = render::place(rng, config.min_size, config.max_size);
    let mut img = render::background(scene, p.crop_w, p.crop_h, rng);
    if rng.random_bool(config.distractors) {
        render::distractor(&mut img, rng);
    }
    render::camera(&mut img, &[], p.size / 48.0, rng)
}

pub(crate) fn save_png(img: &image::RgbImage, path: &Path) -> Result<(), TrainError> {
    let mut bytes = Vec::with_capacity(img.as_raw().len() / 2);
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .map_err(|e| TrainError::Asset(format!("{}: PNG encoding failed: {e}", path.display())))?;
    fs::write(path, bytes).map_err(TrainError::io(path))
}

/// One file to render.
enum Job {
    Sign { part: u64, class: usize, index: usize, path: PathBuf },
    Background { scene: usize, index: usize, path: PathBuf },
    Noise { index: usize, path: PathBuf },
}

/// Render the whole dataset into `out`. Returns the manifest (also written to `out/manifest.json`).
pub fn run(out: &Path, config: &SynthConfig, progress: bool) -> Result<Manifest, TrainError> {
    if config.min_size < 4.0 || config.max_size < config.min_size {
        return Err(TrainError::Config(format!(
            "sign sizes {}..{} are not a valid range",
            config.min_size, config.max_size
        )));
    }
    let templates = templates(config)?;
    let scenes = scenes()?;
    let mut jobs = Vec::new();
    for (part, (split, per_class)) in
        [("train", config.train_per_class), ("test", config.test_per_class)].into_iter().enumerate()
    {
        for (class, (d, _)) in templates.iter().enumerate() {
            let dir = out.join(split).join(&d.name);
            fs::create_dir_all(&dir).map_err(TrainError::io(&dir))?;
            for index in 0..per_class {
                jobs.push(Job::Sign { part: part as u64, class, index, path: dir.join(format!("{index:05}.png")) });
            }
        }
    }
    let mut background = Vec::new();
    for (s, (name, _)) in scenes.iter().enumerate() {
        // An even share of the patches per scene; the first scenes take the remainder.
        let n = config.background / scenes.len() + usize::from(s < config.background % scenes.len());
        let dir = out.join("background").join(name);
        fs::create_dir_all(&dir).map_err(TrainError::io(&dir))?;
        for index in 0..n {
            jobs.push(Job::Background { scene: s, index, path: dir.join(format!("{index:05}.png")) });
        }
        background.push((name.clone(), n));
    }
    let noise_dir = out.join("noise").join("gaussian");
    fs::create_dir_all(&noise_dir).map_err(TrainError::io(&noise_dir))?;
    for index in 0..config.noise {
        jobs.push(Job::Noise { index, path: noise_dir.join(format!("{index:05}.png")) });
    }

    let bar = crate::progress::Progress::new(
        progress,
        "rendering",
        jobs.len() as u64,
        "{msg} [{bar:40}] {pos}/{len} {per_sec} eta {eta}",
    );
    jobs.par_iter().try_for_each(|job| {
        let (img, path) = match job {
            Job::Sign { part, class, index, path } => {
                let mut rng = rng_for(config.seed, *part, *class as u64, *index as u64);
                (render_sign(&templates[*class].1, &scenes, config, &mut rng), path)
            }
            Job::Background { scene, index, path } => {
                let mut rng = rng_for(config.seed, 2, *scene as u64, *index as u64);
                (render_background(&scenes[*scene].1, config, &mut rng), path)
            }
            Job::Noise { index, path } => {
                let mut rng = rng_for(config.seed, 3, 0, *index as u64);
                let size = rng.random_range(config.min_size..config.max_size * 1.3) as usize;
                let h = (size as f32 * rng.random_range(0.9f32..1.1)) as usize;
                (render::noise(size, h.max(4), &mut rng), path)
            }
        };
        bar.inc();
        save_png(&img, path)
    })?;
    bar.finish();

    let manifest = Manifest {
        generator: GENERATOR.into(),
        config: config.clone(),
        classes: templates
            .iter()
            .map(|(d, _)| ClassInfo {
                name: d.name.clone(),
                group: d.group.into(),
                train: config.train_per_class,
                test: config.test_per_class,
            })
            .collect(),
        background,
        noise: config.noise,
    };
    let path = out.join(MANIFEST);
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| TrainError::Asset(e.to_string()))?;
    fs::write(&path, text + "\n").map_err(TrainError::io(&path))?;
    Ok(manifest)
}
