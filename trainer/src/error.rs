// SPDX-License-Identifier: MIT OR Apache-2.0
//! Trainer errors: each names the file or the input at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Bundle(#[from] odm_core::BundleError),
    #[error("embedded asset: {0}")]
    Asset(String),
    #[error("unknown class {class:?}; known classes: {}", known.join(", "))]
    UnknownClass { class: String, known: Vec<String> },
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The sign design package is missing, corrupt, or holds a design odm cannot use.
    #[error("{path}: {reason}")]
    Designs { path: PathBuf, reason: String },
    #[error("design {name:?} is not in the sign package at {root}{hint}")]
    UnknownDesign { name: String, root: PathBuf, hint: String },
    #[error(transparent)]
    Data(#[from] DataError),
}

impl TrainError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.into();
        move |source| TrainError::Io { path, source }
    }
}

/// Why `train`'s flags make no training config.
#[derive(Debug, thiserror::Error)]
pub enum FlagsError {
    #[error(transparent)]
    Config(#[from] TrainError),
    #[error("--method {method} mines no out-of-distribution data: {flags} act only with --method odm")]
    MiningWithoutOdm { method: String, flags: String },
    #[error("no dataset: give --data ROOT (or \"data\" in --config)")]
    NoData,
}

/// Why a dataset could not be read or split. Each names the file, folder or class at fault.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: no such folder")]
    MissingFolder { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot decode image: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error("{path}: line {line}: {reason}")]
    Annotation { path: PathBuf, line: usize, reason: String },
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{root}: no class has any image")]
    Empty { root: PathBuf },
    #[error("class {class:?} is not in the dataset (classes: {known})")]
    UnknownClass { class: String, known: String },
    #[error("class {class:?} is named in both --{first} and --{second}")]
    DuplicateClass { class: String, first: &'static str, second: &'static str },
    #[error("split {which} is empty: {reason}")]
    EmptySplit { which: &'static str, reason: String },
    #[error("invalid split: {0}")]
    Split(String),
    #[error("{path}: ROI at ({}, {}) of {}x{} does not fit the {width}x{height} image", roi.0, roi.1, roi.2, roi.3)]
    Roi { path: PathBuf, roi: (i64, i64, i64, i64), width: u32, height: u32 },
}

impl DataError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
        let path = path.into();
        move |source| DataError::Io { path, source }
    }
}
