// SPDX-License-Identifier: MIT OR Apache-2.0
//! The synthetic world: the sign designs ([`designs`]), the open-set protocol over them ([`protocol`]), the camera
//! model ([`render`]), sign-like unknowns and objects ([`mined`]), a plainer second rendering ([`plain`]), dashcam
//! drives ([`clip`]), the embedded scenes ([`assets`]); and here `odm-train synth`: a synthetic traffic-sign dataset,
//! reproducible byte for byte from its seed.
//!
//! Layout written (class-per-folder trees, as every loader of odm reads them):
//! ```text
//! OUT/train/<design>/00000.png ...    signs, per design of the Mapillary taxonomy (`regulatory--stop--g1`)
//! OUT/test/<design>/00000.png ...
//! OUT/background/<scene>/00000.png    anomalies: patches of the same scenes, some with red/blue non-sign objects
//! OUT/noise/gaussian/00000.png        anomalies: Gaussian noise
//! OUT/manifest.json                   classes, groups, counts, seed, generator version, configuration
//! ```
//! Each sample has its own random stream, derived from (seed, part, class, index), so the output does not depend on
//! the number of threads.

pub mod assets;
pub mod clip;
pub mod designs;
pub mod mined;
pub mod mp4;
pub mod plain;
pub mod protocol;
pub mod render;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::save_png;
use crate::error::TrainError;
use render::{Rgb, Template};

/// Version of the generator; changes whenever the same seed would give different pixels.
pub const GENERATOR: &str = "odm-synth/2";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SynthConfig {
    pub seed: u64,
    /// Crops per design in train/ and test/.
    pub train_per_class: usize,
    pub test_per_class: usize,
    /// Designs a model will know (a train config's `in_dist`): they get `known_*_per_class` crops instead.
    #[serde(default)]
    pub known: Vec<String>,
    pub known_train_per_class: usize,
    pub known_test_per_class: usize,
    pub background: usize,
    pub noise: usize,
    /// Sign size range in pixels.
    pub min_size: f32,
    pub max_size: f32,
    /// Probability that part of a sign is hidden.
    pub occlusion: f64,
    /// Probability that a background patch holds a red, blue, yellow or white non-sign object.
    pub distractors: f64,
    /// Only these designs (empty: every design of the package).
    #[serde(default)]
    pub classes: Vec<String>,
    /// Real photographs used as backgrounds beside the embedded scenes (names only, for the record).
    #[serde(default)]
    pub photos: Vec<String>,
    /// The folder of those photographs (not recorded: the names are).
    #[serde(skip)]
    pub photos_dir: Option<PathBuf>,
    /// The sign designs folder (None: [`designs::Catalogue::locate`]'s default; not recorded: the package is).
    #[serde(skip)]
    pub designs: Option<PathBuf>,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 1,
            train_per_class: 40,
            test_per_class: 20,
            known: Vec::new(),
            known_train_per_class: 200,
            known_test_per_class: 50,
            background: 2000,
            noise: 500,
            min_size: 12.0,
            max_size: 96.0,
            occlusion: 0.2,
            distractors: 0.35,
            classes: Vec::new(),
            photos: Vec::new(),
            photos_dir: None,
            designs: None,
        }
    }
}

impl SynthConfig {
    /// Crops per split (train, test) of a design.
    pub fn counts(&self, name: &str) -> (usize, usize) {
        if self.known.iter().any(|k| k == name) {
            (self.known_train_per_class, self.known_test_per_class)
        } else {
            (self.train_per_class, self.test_per_class)
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClassInfo {
    pub name: String,
    pub group: String,
    pub category: String,
    pub train: usize,
    pub test: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub generator: String,
    /// The design package (`mapillary_sprite_source@1.8.0`).
    pub designs: String,
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

/// The font database with odm's one font ([`odm_core::font`]).
pub fn fonts() -> Arc<resvg::usvg::fontdb::Database> {
    let mut db = resvg::usvg::fontdb::Database::new();
    db.load_font_data(odm_core::font::OSP_DIN.to_vec());
    Arc::new(db)
}

/// Real photographs (JPEG/PNG/PNM files of `dir` and its subfolders, sorted by path) as background scenes, scaled down to at most 1024 px.
pub fn photo_scenes(dir: &Path) -> Result<Vec<(String, Rgb)>, TrainError> {
    let files = crate::data::patches::photos_in(dir)?;
    if files.is_empty() {
        return Err(TrainError::Designs { path: dir.to_owned(), reason: "holds no JPEG or PNG photograph".into() });
    }
    files
        .par_iter()
        .map(|p| {
            let img = image::open(p)
                .map_err(|e| TrainError::Designs { path: p.clone(), reason: format!("cannot decode photo: {e}") })?;
            let img = if img.width().max(img.height()) > 1024 {
                img.resize(1024, 1024, image::imageops::FilterType::Triangle)
            } else {
                img
            };
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("photo").to_owned();
            Ok((stem, Rgb::from_image(&img.to_rgb8())))
        })
        .collect()
}

/// Rasterise the chosen designs of the catalogue. A design whose SVG cannot be rendered is refused with its file.
pub fn templates(
    config: &SynthConfig,
    catalogue: &designs::Catalogue,
) -> Result<Vec<(designs::Design, Template)>, TrainError> {
    let chosen: Vec<designs::Design> = if config.classes.is_empty() {
        catalogue.designs.clone()
    } else {
        catalogue.select(&config.classes)?.into_iter().cloned().collect()
    };
    catalogue.select(&config.known)?;
    let db = fonts();
    chosen
        .into_par_iter()
        .map(|d| {
            let t = Template::rasterise(&d.svg()?, &db).map_err(|e| TrainError::Designs {
                path: d.path.clone(),
                reason: format!("cannot render the design: {e}"),
            })?;
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

/// One file to render.
enum Job {
    Sign { part: u64, class: usize, index: usize, path: PathBuf },
    Background { scene: usize, index: usize, path: PathBuf },
    Noise { index: usize, path: PathBuf },
}

/// Render the whole dataset into `out`. Returns the manifest (also written to `out/manifest.json`).
/// `config.photos_dir` adds real photographs as backgrounds of the sign crops (the background patches of
/// `OUT/background/` stay the embedded scenes, so that the mined and held-out scene sets keep their meaning).
pub fn run(out: &Path, config: &SynthConfig, progress: bool) -> Result<Manifest, TrainError> {
    if config.min_size < 4.0 || config.max_size < config.min_size {
        return Err(TrainError::Config(format!(
            "sign sizes {}..{} are not a valid range",
            config.min_size, config.max_size
        )));
    }
    let catalogue = designs::Catalogue::open(config.designs.as_deref())?;
    let templates = templates(config, &catalogue)?;
    let scenes = scenes()?;
    let mut sign_scenes = scenes.clone();
    let mut config = config.clone();
    if let Some(dir) = &config.photos_dir {
        let p = photo_scenes(dir)?;
        config.photos = p.iter().map(|(n, _)| n.clone()).collect();
        sign_scenes.extend(p);
    }
    let config = &config;
    let mut jobs = Vec::new();
    for (part, split) in ["train", "test"].into_iter().enumerate() {
        for (class, (d, _)) in templates.iter().enumerate() {
            let counts = config.counts(&d.name);
            let per_class = if part == 0 { counts.0 } else { counts.1 };
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
                (render_sign(&templates[*class].1, &sign_scenes, config, &mut rng), path)
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
        designs: designs::PACKAGE.into(),
        config: config.clone(),
        classes: templates
            .iter()
            .map(|(d, _)| {
                let (train, test) = config.counts(&d.name);
                ClassInfo {
                    name: d.name.clone(),
                    group: d.group.clone(),
                    category: d.category.as_str().into(),
                    train,
                    test,
                }
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
