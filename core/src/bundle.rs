// SPDX-License-Identifier: MIT OR Apache-2.0
//! The model bundle: `NAME.odm.json`, written by the trainer and read by the plugin.
//!
//! A bundle names its ONNX file (relative to the bundle's folder) and that file's SHA-256, describes the network's
//! input (size, colour order, normalisation, context margin) and output (embedding dimension), and carries the class
//! centres and the calibrated thresholds. Every number is checked on load: a bundle that does not fit its model is
//! refused with an error naming the file and the field, never used to attach silently wrong classes.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::BundleError;
use crate::taxonomy::{self, Category, SignName};

/// The only format this build reads and writes.
pub const FORMAT: &str = "odm-bundle/1";
/// The only score kind this build implements.
pub const SCORE_KIND: &str = "nearest-center-euclidean";
/// Suffix of a bundle file beside its model: `NAME.onnx` -> `NAME.odm.json`.
pub const BUNDLE_SUFFIX: &str = ".odm.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    pub name: String,
    pub model: ModelSpec,
    pub classes: Vec<ClassEntry>,
    /// Centres of designs that are not classes (the seen out-of-distribution designs of training), each with its
    /// category: the category of an unknown sign (`novelty`) is that of the nearest centre among the classes and
    /// these. Optional; without them a novelty gets the category of its nearest class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub category_refs: Vec<CategoryRef>,
    pub score: ScoreSpec,
    /// Training configuration and provenance (free form; written by `odm-train`).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub training: serde_json::Value,
    /// The evaluation table (free form; written by `odm-train eval`).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub metrics: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// ONNX file name, relative to the bundle's folder.
    pub file: String,
    /// Lower-case hex SHA-256 of the ONNX file.
    pub sha256: String,
    pub input: InputSpec,
    pub output: OutputSpec,
    /// What the network computes in: `fp32` (the default, not written), `int8` (a QDQ model from
    /// `odm-train export --int8`) or `fp16` (`odm-train export --fp16`). Input and output are float32 in every case.
    #[serde(default = "fp32", skip_serializing_if = "is_fp32")]
    pub precision: String,
}

/// Precisions a bundle may name.
pub const PRECISIONS: [&str; 3] = ["fp32", "int8", "fp16"];

fn fp32() -> String {
    "fp32".to_owned()
}

fn is_fp32(p: &String) -> bool {
    p == "fp32"
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColorOrder {
    #[serde(rename = "RGB")]
    Rgb,
    #[serde(rename = "BGR")]
    Bgr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Input tensor name in the ONNX graph; the tensor is `[N, 3, height, width]` float32.
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Channel order of the input tensor.
    pub color: ColorOrder,
    /// Per-channel mean and standard deviation applied to pixel values scaled to [0, 1], in tensor channel order.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Context margin: each side of a detector box is grown by this fraction of the box size before cropping.
    pub context: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Output tensor name; the tensor is `[N, dim]` float32.
    pub name: String,
    pub dim: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassEntry {
    pub id: i32,
    pub label: String,
    pub center: Vec<f32>,
    /// Optional per-class thresholds; the global ones in `score` apply where absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub novelty_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly_threshold: Option<f64>,
    /// Optional sign category (`regulatory`, `warning`, `information`, `complementary`). A label that is a taxonomy
    /// name (`warning--curve-left--g1`) gives its category without it; written, it must agree with such a label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
}

/// A design centre that is not a class, with its category ([`Bundle::category_refs`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryRef {
    /// The design's name (informative).
    pub label: String,
    pub category: Category,
    pub center: Vec<f32>,
}

impl ClassEntry {
    /// The class's category: the explicit one, else the first part of a taxonomy label, else `None` (labels such as
    /// `red` of networks trained elsewhere).
    pub fn effective_category(&self) -> Option<Category> {
        self.category.or_else(|| taxonomy::category_of(&self.label))
    }
}

/// The most design centres a novelty's category may be the vote of ([`ScoreSpec::category_votes`]).
pub const MAX_CATEGORY_VOTES: u32 = 32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreSpec {
    pub kind: String,
    /// Distances at or below are `known` (unless the reference rule, [`ScoreSpec::reference_ratio`], says `novelty`).
    pub novelty_threshold: f64,
    /// Distances above are `anomaly`; in between, `novelty`.
    pub anomaly_threshold: f64,
    /// The reference rule: a crop within the novelty threshold is `known` only when its nearest class is also nearer
    /// than this times the nearest `category_refs` centre; otherwise `novelty` (a crop nearer a design the model knows
    /// is no class than to its nearest class is not that class). Absent: the thresholds alone decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_ratio: Option<f64>,
    /// A `novelty`'s category is the vote of this many nearest design centres (the classes that have a category and
    /// the `category_refs`), each weighted by the inverse of its distance, the nearest's category breaking a tie.
    /// Absent or 1: the nearest design's category. At most [`MAX_CATEGORY_VOTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_votes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Which data the thresholds were calibrated on (for example `validation`).
    pub set: String,
    /// Fraction of in-distribution crops the novelty threshold keeps.
    pub tpr: f64,
}

/// Parse JSON text into `T`, naming the field at fault: a value of the wrong type or a missing or unknown field is
/// a [`BundleError::Field`] with its path (`model.output.dim`, `classes[2].center[5]`) and the expected kind said in
/// words; text that is not JSON is a [`BundleError::Json`] with its position. `path` is used in errors only.
pub fn parse_json<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, BundleError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let syntax = |e: serde_json::Error| BundleError::Json {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    };
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let mut field = e.path().to_string();
        let inner = e.into_inner();
        // A missing field is reported at the object that lacks it: name the field itself.
        if let Some(name) = inner.to_string().strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
            field = if field == "." { name.to_owned() } else { format!("{field}.{name}") };
        }
        let (line, column) = (inner.line(), inner.column());
        if inner.classify() == serde_json::error::Category::Data && field != "." {
            BundleError::Field { path: path.to_owned(), field, line, column, reason: plain_words(&inner) }
        } else {
            syntax(inner)
        }
    })?;
    // Trailing text after the object is refused, as serde_json::from_str refuses it.
    de.end().map_err(syntax)?;
    Ok(value)
}

/// serde's message without its position and with the Rust type it expected said in words (`expected usize` ->
/// `expected a whole number >= 0`), for people who write JSON, not Rust.
fn plain_words(e: &serde_json::Error) -> String {
    let mut m = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    if let Some(stripped) = m.strip_suffix(&suffix) {
        m = stripped.to_owned();
    }
    let words = [
        ("expected usize", "expected a whole number >= 0"),
        ("expected u64", "expected a whole number >= 0"),
        ("expected u32", "expected a whole number >= 0"),
        ("expected u16", "expected a whole number >= 0"),
        ("expected u8", "expected a whole number >= 0"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected a sequence", "expected an array"),
        ("expected a boolean", "expected true or false"),
    ];
    for (rust, plain) in words {
        if let Some(rest) = m.strip_suffix(rust) {
            return format!("{rest}{plain}");
        }
    }
    // `expected struct InputSpec` / `expected struct ClassEntry`: every struct of the format is a JSON object.
    if let Some(at) = m.find("expected struct ") {
        m.truncate(at);
        m.push_str("expected an object");
    }
    m
}

/// The bundle path beside a model: `dir/NAME.onnx` -> `dir/NAME.odm.json`.
pub fn sibling_bundle_path(model: &Path) -> PathBuf {
    let stem = model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    model.with_file_name(format!("{stem}{BUNDLE_SUFFIX}"))
}

/// Lower-case hex SHA-256 of bytes in memory (a model read once, hashed and loaded from the same bytes).
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lower-case hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

impl Bundle {
    /// Parse and validate a bundle file. Does not read the model file: see [`Bundle::verify_model`].
    pub fn load(path: &Path) -> Result<Bundle, BundleError> {
        let text = fs::read_to_string(path).map_err(|source| BundleError::Io { path: path.to_owned(), source })?;
        Self::from_json(&text, path)
    }

    /// Parse and validate bundle text; `path` is used in errors only.
    pub fn from_json(text: &str, path: &Path) -> Result<Bundle, BundleError> {
        // Read the format first so that a bundle of another version gets that error, not a field error. A class's
        // category is read as one of the four by serde, whose error would name neither the class nor the field:
        // check the values here too, so that the refusal says which class.
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) {
            if let Some(found) = map.get("format").and_then(|f| f.as_str()) {
                if found != FORMAT {
                    return Err(BundleError::Format {
                        path: path.to_owned(),
                        found: found.to_owned(),
                        expected: FORMAT,
                    });
                }
            }
            let classes = map.get("classes").and_then(|c| c.as_array()).map_or(&[][..], Vec::as_slice);
            for (k, class) in classes.iter().enumerate() {
                let Some(found) = class.get("category") else { continue };
                if found.is_null() || found.as_str().is_some_and(|c| c.parse::<Category>().is_ok()) {
                    continue;
                }
                let label = class.get("label").and_then(|l| l.as_str()).unwrap_or("?");
                return Err(BundleError::Invalid {
                    path: path.to_owned(),
                    field: format!("classes[{k}].category"),
                    reason: format!(
                        "class {label:?} has category {found}, which is not one of regulatory, warning, information, \
                         complementary"
                    ),
                });
            }
        }
        let bundle: Bundle = parse_json(text, path)?;
        bundle.validate(path)?;
        Ok(bundle)
    }

    /// Parse, validate, and check the SHA-256 of the model file the bundle names.
    pub fn open(path: &Path) -> Result<Bundle, BundleError> {
        let bundle = Self::load(path)?;
        let onnx = bundle.model_path(path);
        bundle.verify_model(path, &onnx)?;
        Ok(bundle)
    }

    /// Whether calibration collapsed: the anomaly threshold is not above the novelty threshold, so no distance falls
    /// between them and the bundle never says `novelty` (every crop it does not accept is an `anomaly`).
    pub fn novelty_collapsed(&self) -> bool {
        self.score.anomaly_threshold <= self.score.novelty_threshold
    }

    /// The model file named by the bundle, resolved against the bundle's folder.
    pub fn model_path(&self, bundle_path: &Path) -> PathBuf {
        let dir = bundle_path.parent().unwrap_or_else(|| Path::new("."));
        dir.join(&self.model.file)
    }

    /// Check that `onnx` is the model this bundle was made for (by SHA-256).
    pub fn verify_model(&self, bundle_path: &Path, onnx: &Path) -> Result<(), BundleError> {
        let actual = sha256_file(onnx).map_err(|source| BundleError::ModelIo {
            path: bundle_path.to_owned(),
            onnx: onnx.to_owned(),
            source,
        })?;
        self.verify_model_sha256(bundle_path, onnx, &actual)
    }

    /// Check the bundle against a model whose SHA-256 is already known (`actual`: the bytes a session was made
    /// from, which may no longer be what `onnx` holds on disk).
    pub fn verify_model_sha256(&self, bundle_path: &Path, onnx: &Path, actual: &str) -> Result<(), BundleError> {
        if actual != self.model.sha256 {
            return Err(BundleError::Sha256Mismatch {
                path: bundle_path.to_owned(),
                onnx: onnx.to_owned(),
                expected: self.model.sha256.clone(),
                actual: actual.to_owned(),
            });
        }
        Ok(())
    }

    /// Validate and write the bundle as pretty JSON (through a temporary file, so a reader never sees half a file).
    pub fn save(&self, path: &Path) -> Result<(), BundleError> {
        self.validate(path)?;
        let mut text = serde_json::to_string_pretty(self).map_err(|e| BundleError::Invalid {
            path: path.to_owned(),
            field: "(bundle)".into(),
            reason: e.to_string(),
        })?;
        text.push('\n');
        let tmp = path.with_extension("json.tmp");
        let write = |p: &Path| fs::write(p, text.as_bytes());
        write(&tmp)
            .and_then(|_| fs::rename(&tmp, path))
            .map_err(|source| BundleError::Write { path: path.to_owned(), source })
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.model.output.dim
    }

    /// Check every rule of the format; `path` is used in errors only.
    pub fn validate(&self, path: &Path) -> Result<(), BundleError> {
        let invalid = |field: &str, reason: String| BundleError::Invalid {
            path: path.to_owned(),
            field: field.to_owned(),
            reason,
        };
        let finite = |field: String, value: f64| {
            if value.is_finite() {
                Ok(())
            } else {
                Err(BundleError::NonFinite { path: path.to_owned(), field, value })
            }
        };

        if self.format != FORMAT {
            return Err(BundleError::Format { path: path.to_owned(), found: self.format.clone(), expected: FORMAT });
        }
        if self.name.trim().is_empty() {
            return Err(invalid("name", "is empty".into()));
        }

        let m = &self.model;
        if m.file.trim().is_empty() {
            return Err(invalid("model.file", "is empty".into()));
        }
        if m.sha256.len() != 64 || !m.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(invalid("model.sha256", format!("{:?} is not 64 lower-case hex digits", m.sha256)));
        }
        if !PRECISIONS.contains(&m.precision.as_str()) {
            return Err(invalid(
                "model.precision",
                format!("\"{}\" is not one of {}", m.precision, PRECISIONS.join(", ")),
            ));
        }
        let i = &m.input;
        if i.name.is_empty() {
            return Err(invalid("model.input.name", "is empty".into()));
        }
        if i.width == 0 || i.height == 0 || i.width > 4096 || i.height > 4096 {
            return Err(invalid(
                "model.input.width",
                format!("input size {}x{} is not in 1..=4096", i.width, i.height),
            ));
        }
        for c in 0..3 {
            finite(format!("model.input.mean[{c}]"), i.mean[c] as f64)?;
            finite(format!("model.input.std[{c}]"), i.std[c] as f64)?;
            if i.std[c] <= 0.0 {
                return Err(invalid(&format!("model.input.std[{c}]"), format!("{} is not positive", i.std[c])));
            }
        }
        finite("model.input.context".into(), i.context as f64)?;
        if !(0.0..=2.0).contains(&i.context) {
            return Err(invalid("model.input.context", format!("{} is not in [0, 2]", i.context)));
        }
        if m.output.name.is_empty() {
            return Err(invalid("model.output.name", "is empty".into()));
        }
        if m.output.dim == 0 {
            return Err(invalid("model.output.dim", "is zero".into()));
        }

        if self.classes.is_empty() {
            return Err(invalid("classes", "is empty: a bundle needs at least one class".into()));
        }
        let mut ids = HashSet::new();
        let mut labels = HashSet::new();
        for (k, class) in self.classes.iter().enumerate() {
            if class.id < 0 {
                return Err(invalid(&format!("classes[{k}].id"), format!("{} is negative", class.id)));
            }
            if !ids.insert(class.id) {
                return Err(invalid(&format!("classes[{k}].id"), format!("id {} appears twice", class.id)));
            }
            if class.label.trim().is_empty() {
                return Err(invalid(&format!("classes[{k}].label"), "is empty".into()));
            }
            if !labels.insert(class.label.as_str()) {
                return Err(invalid(&format!("classes[{k}].label"), format!("label {:?} appears twice", class.label)));
            }
            if class.center.len() != m.output.dim {
                return Err(invalid(
                    &format!("classes[{k}].center"),
                    format!("has {} values but model.output.dim is {}", class.center.len(), m.output.dim),
                ));
            }
            for (j, v) in class.center.iter().enumerate() {
                finite(format!("classes[{k}].center[{j}]"), *v as f64)?;
            }
            if let (Some(given), Ok(t)) = (class.category, SignName::parse(&class.label)) {
                if given != t.category {
                    return Err(invalid(
                        &format!("classes[{k}].category"),
                        format!(
                            "class {:?} has category {:?} but its label says {:?}",
                            class.label,
                            given.as_str(),
                            t.category.as_str()
                        ),
                    ));
                }
            }
            let nov = class.novelty_threshold.unwrap_or(self.score.novelty_threshold);
            let ano = class.anomaly_threshold.unwrap_or(self.score.anomaly_threshold);
            for (field, t) in
                [("novelty_threshold", class.novelty_threshold), ("anomaly_threshold", class.anomaly_threshold)]
            {
                if let Some(t) = t {
                    finite(format!("classes[{k}].{field}"), t)?;
                    if t < 0.0 {
                        return Err(invalid(&format!("classes[{k}].{field}"), format!("{t} is negative")));
                    }
                }
            }
            let own = class.novelty_threshold.is_some() || class.anomaly_threshold.is_some();
            if own && nov.is_finite() && ano.is_finite() && ano < nov {
                return Err(invalid(
                    &format!("classes[{k}].anomaly_threshold"),
                    format!("anomaly threshold {ano} is below the novelty threshold {nov}"),
                ));
            }
        }

        for (k, r) in self.category_refs.iter().enumerate() {
            if r.center.len() != m.output.dim {
                return Err(invalid(
                    &format!("category_refs[{k}].center"),
                    format!("has {} values but model.output.dim is {}", r.center.len(), m.output.dim),
                ));
            }
            for (j, v) in r.center.iter().enumerate() {
                finite(format!("category_refs[{k}].center[{j}]"), *v as f64)?;
            }
            if self.classes.iter().any(|c| c.label == r.label) {
                return Err(invalid(
                    &format!("category_refs[{k}].label"),
                    format!(
                        "{:?} is also a class: a design is a class or a reference, never both (the reference rule \
                         would call the class's own crops novelties); remove it from category_refs (odm-train centers \
                         --mode add does, for bundles it writes)",
                        r.label
                    ),
                ));
            }
        }

        let s = &self.score;
        if s.kind != SCORE_KIND {
            return Err(invalid("score.kind", format!("{:?} is not {SCORE_KIND:?}", s.kind)));
        }
        finite("score.novelty_threshold".into(), s.novelty_threshold)?;
        finite("score.anomaly_threshold".into(), s.anomaly_threshold)?;
        if s.novelty_threshold < 0.0 {
            return Err(invalid("score.novelty_threshold", format!("{} is negative", s.novelty_threshold)));
        }
        if s.anomaly_threshold < s.novelty_threshold {
            return Err(invalid(
                "score.anomaly_threshold",
                format!(
                    "anomaly threshold {} is below the novelty threshold {}",
                    s.anomaly_threshold, s.novelty_threshold
                ),
            ));
        }
        if let Some(r) = s.reference_ratio {
            if !(r.is_finite() && r > 0.0) {
                return Err(invalid("score.reference_ratio", format!("{r} is not a finite positive number")));
            }
            if self.category_refs.is_empty() {
                return Err(invalid(
                    "score.reference_ratio",
                    "needs category_refs to compare with (there are none)".into(),
                ));
            }
        }
        if let Some(v) = s.category_votes {
            if !(1..=MAX_CATEGORY_VOTES).contains(&v) {
                return Err(invalid(
                    "score.category_votes",
                    format!("{v} is not a number of design centres from 1 to {MAX_CATEGORY_VOTES}"),
                ));
            }
        }
        if let Some(c) = &s.calibration {
            if !(c.tpr > 0.0 && c.tpr <= 1.0) {
                return Err(invalid("score.calibration.tpr", format!("{} is not in (0, 1]", c.tpr)));
            }
        }
        Ok(())
    }
}
