// SPDX-License-Identifier: MIT OR Apache-2.0
//! Datasets: class-per-folder trees, GTSRB, Tsinghua-Tencent 100K, MNIST-style IDX files; the paper's splits.
//!
//! A [`Dataset`] is a list of samples (an image file or an IDX record, an optional box, a class) with class names
//! and groups. Images are decoded when used, and turned into model inputs by `odm_core::preprocess` — the same code
//! the plugin runs on video frames — so training sees exactly what the element will see.

pub mod folder;
pub mod gtsrb;
pub mod idx;
pub mod import;
pub mod patches;
pub mod split;
pub mod tt100k;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;
use odm_core::preprocess::{crop_to_tensor, CropSpec, Frame, PixelFormat, Plane, Roi, YuvMatrix};

use crate::error::DataError;
use crate::sheet::Row;

/// Where a sample's pixels come from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Idx { images: Arc<idx::IdxImages>, index: usize },
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

/// Which reader a dataset root needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `root/<class>/*.png|jpg|ppm`
    Folder,
    /// `root/Final_Training/Images/<class>/GT-<class>.csv`
    Gtsrb,
    /// `root/annotations.json` (Tsinghua-Tencent 100K)
    Tt100k,
    /// `root/*-images-idx3-ubyte[.gz]` and `root/*-labels-idx1-ubyte[.gz]`
    Idx,
}

/// Read a dataset in the given format.
pub fn load(root: &Path, format: Format) -> Result<Dataset, DataError> {
    match format {
        Format::Folder => folder::load(root),
        Format::Gtsrb => gtsrb::load(root),
        Format::Tt100k => tt100k::load(root),
        Format::Idx => idx::load_dir(root),
    }
}

/// Rows for a contact sheet of a synthetic dataset root: every class of `train/` labelled with its role in the
/// default split (in-distribution / seen out-of-distribution / novelty), then every anomaly folder; at most
/// `rows_per_role` rows per role, spread over its classes.
pub fn sheet_rows(root: &Path, per_class: usize, rows_per_role: usize) -> Result<Vec<Row>, DataError> {
    let train = folder::load(&root.join("train"))?;
    // Too few groups for three parts: show every class as a sign, without a role.
    let roles = split::random(&train.classes, &train.groups, split::PAPER_FRACTIONS, 1).unwrap_or_else(|_| {
        split::ClassSplit { in_dist: train.classes.clone(), seen_ood: Vec::new(), unseen_ood: Vec::new() }
    });
    let mut rows = Vec::new();
    let take = |d: &Dataset, class: usize| -> Result<Vec<RgbImage>, DataError> {
        d.samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.class == class)
            .take(per_class)
            .map(|(i, _)| d.image(i).map(|(img, _)| img))
            .collect()
    };
    for (role, names) in [("in", &roles.in_dist), ("seen-ood", &roles.seen_ood), ("novelty", &roles.unseen_ood)] {
        // Spread the rows shown over the role's classes.
        let step = names.len().div_ceil(rows_per_role.max(1)).max(1);
        for name in names.iter().step_by(step) {
            let k = train.class_index(name).expect("split names come from the dataset");
            rows.push(Row { label: format!("{role}: {name}"), images: take(&train, k)? });
        }
    }
    for anomaly in ["background", "noise"] {
        let dir = root.join(anomaly);
        if dir.is_dir() {
            let d = folder::load(&dir)?;
            for (k, name) in d.classes.iter().enumerate().take(rows_per_role.max(1)) {
                rows.push(Row { label: format!("anomaly: {anomaly}/{name}"), images: take(&d, k)? });
            }
        }
    }
    Ok(rows)
}
