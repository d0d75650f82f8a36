// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train import`: turn any readable dataset into the `train/` + `test/` class-per-folder layout `train` reads.
//! IDX folders holding `train-*` and `t10k-*` files keep their own train/test split; other datasets are split per
//! class by `test_fraction` (seeded). Annotated boxes are cropped with a margin, the way a detector's box plus the
//! bundle's context would frame them.

use std::path::{Path, PathBuf};

use image::ImageEncoder;
use rayon::prelude::*;

use super::{idx, split, Dataset, Format};
use crate::error::DataError;

fn write_png(img: &image::RgbImage, path: &Path) -> Result<(), DataError> {
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .map_err(|e| DataError::Image { path: path.to_owned(), reason: e.to_string() })?;
    std::fs::write(path, bytes).map_err(DataError::io(path))
}

/// Write samples `idx` of `d` under `out/<class>/`.
fn write_part(d: &Dataset, idx: &[usize], out: &Path, margin: f64) -> Result<usize, DataError> {
    for c in &d.classes {
        let dir = out.join(c);
        std::fs::create_dir_all(&dir).map_err(DataError::io(&dir))?;
    }
    idx.par_iter().enumerate().try_for_each(|(n, &i)| {
        let (img, roi) = d.image(i)?;
        let img = match roi {
            None => img,
            Some((x, y, w, h)) => {
                let (gx, gy) = ((w as f64 * margin) as i64, (h as f64 * margin) as i64);
                let (x0, y0) = ((x - gx).max(0) as u32, (y - gy).max(0) as u32);
                let x1 = ((x + w + gx) as u32).min(img.width());
                let y1 = ((y + h + gy) as u32).min(img.height());
                if x1 <= x0 || y1 <= y0 {
                    return Err(DataError::Roi {
                        path: d.describe(i).into(),
                        roi: (x, y, w, h),
                        width: img.width(),
                        height: img.height(),
                    });
                }
                image::imageops::crop_imm(&img, x0, y0, x1 - x0, y1 - y0).to_image()
            }
        };
        let path: PathBuf = out.join(&d.classes[d.samples[i].class]).join(format!("{n:06}.png"));
        write_png(&img, &path)
    })?;
    Ok(idx.len())
}

/// Import `src` (in `format`) into `out/train` and `out/test`; returns (train, test) counts.
pub fn import(
    src: &Path,
    format: Format,
    out: &Path,
    test_fraction: f64,
    margin: f64,
    seed: u64,
) -> Result<(usize, usize), DataError> {
    if format == Format::Idx {
        let pick = |prefix: &str, key: &str| -> Option<PathBuf> {
            std::fs::read_dir(src).ok()?.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with(prefix) && n.contains(key)
                })
            })
        };
        if let (Some(ti), Some(tl), Some(si), Some(sl)) =
            (pick("train", "idx3"), pick("train", "idx1"), pick("t10k", "idx3"), pick("t10k", "idx1"))
        {
            let train = idx::load(&ti, &tl)?;
            let test = idx::load(&si, &sl)?;
            let a = write_part(&train, &(0..train.samples.len()).collect::<Vec<_>>(), &out.join("train"), margin)?;
            let b = write_part(&test, &(0..test.samples.len()).collect::<Vec<_>>(), &out.join("test"), margin)?;
            return Ok((a, b));
        }
    }
    let d = super::load(src, format)?;
    let s = split::per_class(&d, [1.0 - test_fraction, 0.0, test_fraction], seed)?;
    let a = write_part(&d, &s.train, &out.join("train"), margin)?;
    let b = write_part(&d, &s.test, &out.join("test"), margin)?;
    Ok((a, b))
}
