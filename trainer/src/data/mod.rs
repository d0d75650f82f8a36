// SPDX-License-Identifier: MIT OR Apache-2.0
//! Data readers: datasets (class-per-folder trees, GTSRB, Tsinghua-Tencent 100K, MNIST-style IDX files) and the
//! paper's splits, `import` into the folder layout, anomaly patches cut from photographs ([`patches`]), footage
//! decoded by GStreamer ([`footage`]), and the ROI lines odmexport writes ([`rois`]).
//!
//! A [`Dataset`] is a list of samples (an image file or an IDX record, an optional box, a class) with class names
//! and groups. Images are decoded when used, and turned into model inputs by `odm_core::preprocess` — the same code
//! the plugin runs on video frames — so training sees exactly what the element will see.

pub mod dataset;
pub mod folder;
pub mod footage;
pub mod gtsrb;
pub mod idx;
pub mod import;
pub mod patches;
pub mod rois;
pub mod split;
pub mod tt100k;

use std::path::Path;

pub use dataset::{
    group_of, is_image, read_rgb, save_png, BoxXywh, Dataset, IdxImages, Sample, Source, IMAGE_EXTENSIONS,
};

use crate::error::DataError;

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
