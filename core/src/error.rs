// SPDX-License-Identifier: MIT OR Apache-2.0
//! Typed errors. Every bundle error names the file and, where there is one, the field at fault.

use std::path::PathBuf;

/// Why a model bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: malformed bundle JSON at line {line}, column {column}: {message}")]
    Json { path: PathBuf, line: usize, column: usize, message: String },
    /// A field of the wrong type, missing or unknown: `field` is its path (`model.output.dim`, `classes[2].center`).
    #[error("{path}: field `{field}`: {reason} (line {line}, column {column})")]
    Field { path: PathBuf, field: String, line: usize, column: usize, reason: String },
    #[error("{path}: field `format` is {found:?}; this build reads {expected:?}")]
    Format { path: PathBuf, found: String, expected: &'static str },
    #[error("{path}: field `{field}`: {reason}")]
    Invalid { path: PathBuf, field: String, reason: String },
    #[error("{path}: field `{field}` holds a non-finite number ({value})")]
    NonFinite { path: PathBuf, field: String, value: f64 },
    #[error(
        "{path}: field `model.sha256` is {expected} but the ONNX file {onnx} hashes to {actual}: \
         the bundle was made for another model"
    )]
    Sha256Mismatch { path: PathBuf, onnx: PathBuf, expected: String, actual: String },
    #[error("{path}: cannot read the model file {onnx} named by `model.file`: {source}")]
    ModelIo {
        path: PathBuf,
        onnx: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BundleError {
    /// The field at fault, when the error is about one field.
    pub fn field(&self) -> Option<&str> {
        match self {
            BundleError::Invalid { field, .. }
            | BundleError::NonFinite { field, .. }
            | BundleError::Field { field, .. } => Some(field),
            BundleError::Format { .. } => Some("format"),
            BundleError::Sha256Mismatch { .. } => Some("model.sha256"),
            BundleError::ModelIo { .. } => Some("model.file"),
            _ => None,
        }
    }
}

/// Why a metric could not be computed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    #[error("the {0} score set is empty")]
    Empty(&'static str),
    #[error("the {0} score set holds a non-finite score")]
    NonFinite(&'static str),
    #[error("target true-positive rate {0} is outside (0, 1]")]
    Tpr(f64),
    #[error("predictions ({0}) and labels ({1}) differ in length")]
    Length(usize, usize),
}

/// Why a region could not be turned into a tensor.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PreprocessError {
    #[error("frame buffer holds {got} bytes, {need} needed for {width}x{height} (stride {stride})")]
    ShortBuffer { got: usize, need: usize, width: u32, height: u32, stride: usize },
    #[error("region {x},{y} {w}x{h} lies outside the {width}x{height} frame")]
    Outside { x: i64, y: i64, w: i64, h: i64, width: u32, height: u32 },
    #[error("output tensor holds {got} floats, {need} needed")]
    OutputSize { got: usize, need: usize },
    #[error("invalid model input size {0}x{1}")]
    InputSize(u32, u32),
    #[error("a {width}x{height} crop at {x},{y} does not fit a {into_width}x{into_height} tensor")]
    Place { width: u32, height: u32, x: u32, y: u32, into_width: u32, into_height: u32 },
}

/// A batch whose shape does not fit the scorer.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScoreError {
    #[error("embedding batch holds {len} floats, not a multiple of the dimension {dim}")]
    Shape { len: usize, dim: usize },
    #[error("{rows} embeddings but room for {out} results")]
    Output { rows: usize, out: usize },
    #[error("threshold override {0}: {1}")]
    Threshold(f64, &'static str),
    #[error("reference ratio {0}: {1}")]
    Ratio(f64, &'static str),
    /// A number of category votes out of 1 to the most (the second field).
    #[error("category votes {0}: not a number of design centres from 1 to {1}")]
    Votes(u32, u32),
}
