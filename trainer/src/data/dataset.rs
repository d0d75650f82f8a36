// SPDX-License-Identifier: MIT OR Apache-2.0
//! A dataset in memory: classes, their groups, and samples (an image file or an IDX record, an optional box, a
//! class), decoded when used into model inputs by `odm_core::preprocess`; reading and writing image files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;
use odm_core::preprocess::{crop_to_tensor, CropSpec, Frame, PixelFormat, Plane, Roi, YuvMatrix};

use crate::error::{DataError, TrainError};

/// Where a sample's pixels come from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Idx { images: Arc<IdxImages>, index: usize },
}

/// Grey images of one IDX file.
#[derive(Debug)]
pub struct IdxImages {
    pub path: PathBuf,
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// Record `i` as RGB (grey replicated).
    pub fn rgb(&self, i: usize) -> RgbImage {
        let n = self.rows * self.cols;
        let grey = &self.pixels[i * n..(i + 1) * n];
        RgbImage::from_fn(self.cols as u32, self.rows as u32, |x, y| {
            let v = grey[y as usize * self.cols + x as usize];
            image::Rgb([v, v, v])
        })
    }
}

/// A box inside an image: x, y, w, h in pixels.
pub type BoxXywh = (i64, i64, i64, i64);

#[derive(Debug, Clone)]
pub struct Sample {
    pub source: Source,
    /// Box inside the image; the whole image when absent.
    pub roi: Option<BoxXywh>,
    pub class: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub classes: Vec<String>,
    /// Group of each class (near-identical classes share one and stay on one side of a split).
    pub groups: Vec<String>,
    pub samples: Vec<Sample>,
}

/// The group of a class name when nothing better is known: the name without trailing digits and separators
/// (`speed-limit-60` -> `speed-limit`, `pl40` -> `pl`), or the name itself when that leaves nothing (`00012`).
/// A design name of the traffic-sign taxonomy is grouped by the taxonomy: its name without the graphic variant
/// (`regulatory--stop--g2` -> `regulatory--stop`), so numbered signs stay apart (`...-speed-limit-30` is its own).
pub fn group_of(name: &str) -> String {
    if let Ok(n) = odm_core::taxonomy::SignName::parse(name) {
        return n.group.to_owned();
    }
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit()).trim_end_matches(['-', '_', ' ', '.']);
    if stem.is_empty() {
        name.to_owned()
    } else {
        stem.to_owned()
    }
}

/// The image file extensions read (any case).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "ppm", "pgm", "pnm", "bmp"];

pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Decode an image file as RGB (grey is replicated), naming the file on failure.
pub fn read_rgb(path: &Path) -> Result<RgbImage, DataError> {
    let bytes = std::fs::read(path).map_err(DataError::io(path))?;
    image::load_from_memory(&bytes)
        .map(|i| i.to_rgb8())
        .map_err(|e| DataError::Image { path: path.to_owned(), reason: e.to_string() })
}

/// Write an RGB image as a PNG file, naming the file on failure.
pub fn save_png(img: &image::RgbImage, path: &Path) -> Result<(), TrainError> {
    use image::ImageEncoder;
    let mut bytes = Vec::with_capacity(img.as_raw().len() / 2);
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .map_err(|e| TrainError::Asset(format!("{}: PNG encoding failed: {e}", path.display())))?;
    std::fs::write(path, bytes).map_err(TrainError::io(path))
}

impl Dataset {
    /// Samples per class.
    pub fn counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes.len()];
        for s in &self.samples {
            c[s.class] += 1;
        }
        c
    }

    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.classes.iter().position(|c| c == name)
    }

    /// A short description of a sample, for errors and logs.
    pub fn describe(&self, i: usize) -> String {
        match &self.samples[i].source {
            Source::File(p) => p.display().to_string(),
            Source::Idx { images, index } => format!("{} record {index}", images.path.display()),
        }
    }

    /// The sample's pixels as RGB, and its box.
    pub fn image(&self, i: usize) -> Result<(RgbImage, Option<BoxXywh>), DataError> {
        let s = &self.samples[i];
        let img = match &s.source {
            Source::File(p) => read_rgb(p)?,
            Source::Idx { images, index } => images.rgb(*index),
        };
        Ok((img, s.roi))
    }

    /// The longer side, in pixels, of the sample's box (the whole image when it has none; the box as annotated,
    /// before any context the crop adds), read from the file's header, whose format is told by its bytes as when
    /// decoding (a JPEG named `.png` is read as a JPEG).
    pub fn longer_side(&self, i: usize) -> Result<u32, DataError> {
        let s = &self.samples[i];
        if let Some((_, _, w, h)) = s.roi {
            return Ok(w.max(h).max(0) as u32);
        }
        match &s.source {
            Source::File(p) => image::ImageReader::open(p)
                .and_then(|r| r.with_guessed_format())
                .map_err(|e| DataError::Image { path: p.clone(), reason: e.to_string() })?
                .into_dimensions()
                .map(|(w, h)| w.max(h))
                .map_err(|e| DataError::Image { path: p.clone(), reason: e.to_string() }),
            Source::Idx { images, .. } => Ok(images.rows.max(images.cols) as u32),
        }
    }

    /// The sample as a model input (CHW floats), through odm-core's crop/resize/normalise.
    pub fn tensor(&self, i: usize, spec: &CropSpec, out: &mut [f32]) -> Result<(), DataError> {
        let (img, roi) = self.image(i)?;
        let (w, h) = img.dimensions();
        let frame = Frame::new(
            PixelFormat::Rgb,
            w,
            h,
            &[Plane { data: img.as_raw(), stride: 3 * w as usize }],
            YuvMatrix::Bt601,
        )
        .map_err(|e| DataError::Image { path: self.describe(i).into(), reason: e.to_string() })?;
        let (x, y, rw, rh) = roi.unwrap_or((0, 0, w as i64, h as i64));
        crop_to_tensor(&frame, Roi { x, y, w: rw, h: rh }, spec, out).map_err(|_| DataError::Roi {
            path: self.describe(i).into(),
            roi: (x, y, rw, rh),
            width: w,
            height: h,
        })
    }

    /// Drop classes with fewer than `min` samples (paper section 4.2); returns the names dropped.
    pub fn drop_small_classes(&mut self, min: usize) -> Vec<(String, usize)> {
        let counts = self.counts();
        let keep: Vec<bool> = counts.iter().map(|&n| n >= min).collect();
        let dropped =
            self.classes.iter().zip(&counts).filter(|(_, &n)| n < min).map(|(c, &n)| (c.clone(), n)).collect();
        let mut remap = vec![usize::MAX; self.classes.len()];
        let mut classes = Vec::new();
        let mut groups = Vec::new();
        for (k, keep) in keep.iter().enumerate() {
            if *keep {
                remap[k] = classes.len();
                classes.push(self.classes[k].clone());
                groups.push(self.groups[k].clone());
            }
        }
        self.samples.retain(|s| keep[s.class]);
        for s in &mut self.samples {
            s.class = remap[s.class];
        }
        self.classes = classes;
        self.groups = groups;
        dropped
    }
}
