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
}

impl TrainError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.into();
        move |source| TrainError::Io { path, source }
    }
}
