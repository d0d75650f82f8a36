// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train sheet`: contact sheets, a grid of samples per row, each row labelled, written as one PNG; the rows of a
//! dataset by role.

use std::path::Path;

use image::{imageops, Rgb, RgbImage};

use crate::data::{folder, split, Dataset};
use crate::error::{DataError, TrainError};
use crate::synth;

/// One labelled row of images.
pub struct Row {
    pub label: String,
    pub images: Vec<RgbImage>,
}

const CELL: u32 = 48;
const PAD: u32 = 2;
const LABEL_W: u32 = 260;

/// Render `text` (black on white) into a `w x h` image with the embedded font.
fn label(text: &str, w: u32, h: u32, db: &std::sync::Arc<resvg::usvg::fontdb::Database>) -> RgbImage {
    let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}"><rect width="{w}" height="{h}" fill="white"/><text x="4" y="{y}" font-family="OSP-DIN" font-size="15" fill="black">{escaped}</text></svg>"#,
        y = h / 2 + 5
    );
    let opt = resvg::usvg::Options { fontdb: db.clone(), ..Default::default() };
    let mut out = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    if let (Ok(tree), Some(mut pixmap)) = (resvg::usvg::Tree::from_str(&svg, &opt), resvg::tiny_skia::Pixmap::new(w, h))
    {
        resvg::render(&tree, resvg::tiny_skia::Transform::identity(), &mut pixmap.as_mut());
        for (dst, src) in out.pixels_mut().zip(pixmap.pixels()) {
            *dst = Rgb([src.red(), src.green(), src.blue()]);
        }
    }
    out
}

/// Write the rows as one PNG: label on the left, samples resized to 48x48 cells.
pub fn write(rows: &[Row], path: &Path) -> Result<(), TrainError> {
    let cols = rows.iter().map(|r| r.images.len()).max().unwrap_or(0) as u32;
    let (w, h) = (LABEL_W + cols * (CELL + PAD) + PAD, rows.len() as u32 * (CELL + PAD) + PAD);
    let mut sheet = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let db = synth::fonts();
    for (r, row) in rows.iter().enumerate() {
        let y = PAD + r as u32 * (CELL + PAD);
        imageops::replace(&mut sheet, &label(&row.label, LABEL_W, CELL, &db), 0, y as i64);
        for (c, img) in row.images.iter().enumerate() {
            let cell = imageops::resize(img, CELL, CELL, imageops::FilterType::Triangle);
            imageops::replace(&mut sheet, &cell, (LABEL_W + PAD + c as u32 * (CELL + PAD)) as i64, y as i64);
        }
    }
    sheet.save(path).map_err(|e| TrainError::Asset(format!("{}: {e}", path.display())))
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
