// SPDX-License-Identifier: MIT OR Apache-2.0
//! ROI lines: the JSON lines `odmexport` writes and `odmroireplay` reads (results of a run, ground truth of
//! `odm-train clip`, a detector's boxes), read with errors that name the file and line; box overlap.

use std::path::Path;

use odm_core::taxonomy::{self, Category};
use serde::Deserialize;

use crate::error::TrainError;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RoiLine {
    pub id: i32,
    /// The box in pixels (absent in old files: 0).
    #[serde(default)]
    pub x: f64,
    #[serde(default)]
    pub y: f64,
    #[serde(default)]
    pub w: f64,
    #[serde(default)]
    pub h: f64,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub distance: Option<f64>,
    #[serde(default)]
    pub verdict: Option<String>,
    /// The result's sign category (regulatory, warning, information, complementary; null for anomaly, and absent in
    /// files of older odm versions).
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub confidence: Option<f64>,
    /// The thresholds in force for the class (odmexport writes them).
    #[serde(default)]
    pub novelty_threshold: Option<f64>,
    #[serde(default)]
    pub anomaly_threshold: Option<f64>,
    #[serde(default)]
    pub model: Option<String>,
    /// Ground truth (clip files): known, unknown or distractor.
    #[serde(default)]
    pub kind: Option<String>,
}

/// A box `(x, y, w, h)` in pixels.
pub type Rect = (f64, f64, f64, f64);

impl RoiLine {
    pub fn rect(&self) -> Rect {
        (self.x, self.y, self.w, self.h)
    }

    /// The sign category of the label when it is a taxonomy name (`warning--curve-left--g1`): of a truth box, the
    /// category of the sign that is there.
    pub fn label_category(&self) -> Option<Category> {
        self.label.as_deref().and_then(taxonomy::category_of)
    }
}

/// Area of the intersection of two boxes.
pub fn intersection(a: Rect, b: Rect) -> f64 {
    let ix = (a.0 + a.2).min(b.0 + b.2) - a.0.max(b.0);
    let iy = (a.1 + a.3).min(b.1 + b.3) - a.1.max(b.1);
    if ix <= 0.0 || iy <= 0.0 {
        0.0
    } else {
        ix * iy
    }
}

/// Intersection over union of two boxes.
pub fn iou(a: Rect, b: Rect) -> f64 {
    let inter = intersection(a, b);
    let union = a.2 * a.3 + b.2 * b.3 - inter;
    if inter <= 0.0 || union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct FrameLine {
    pub frame: u64,
    #[serde(default)]
    pub rois: Vec<RoiLine>,
}

/// Read a JSON-lines file; errors name the file and line.
pub fn read(path: &Path) -> Result<Vec<FrameLine>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(TrainError::io(path))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| TrainError::Config(format!("{}:{}: {e}", path.display(), i + 1)))
        })
        .collect()
}

/// [`read`], refusing a file that holds no frame: an empty results file is a run that wrote nothing, never a
/// result to compare with or summarise.
pub fn read_some(path: &Path) -> Result<Vec<FrameLine>, TrainError> {
    let frames = read(path)?;
    if frames.is_empty() {
        return Err(TrainError::Config(format!(
            "{}: holds no frame (an empty results file: the run that wrote it wrote nothing)",
            path.display()
        )));
    }
    Ok(frames)
}
