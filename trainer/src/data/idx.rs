// SPDX-License-Identifier: MIT OR Apache-2.0
//! MNIST-style IDX files (images `0x00000803`, labels `0x00000801`), gzip-compressed or plain.
//! A folder holding one `*images*idx3*` and one `*labels*idx1*` file is one dataset; classes are the label values.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Dataset, IdxImages, Sample, Source};
use crate::error::DataError;

/// File bytes, un-gzipped when they start with the gzip magic.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(DataError::io(path))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::Format { path: path.to_owned(), reason: format!("corrupt gzip: {e}") })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parse an IDX header: (dims, data offset). `magic` is the expected type/rank word.
fn header(bytes: &[u8], path: &Path, magic: u32) -> Result<(Vec<usize>, usize), DataError> {
    let bad = |reason: String| DataError::Format { path: path.to_owned(), reason };
    if bytes.len() < 4 {
        return Err(bad("shorter than an IDX header".into()));
    }
    let m = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if m != magic {
        return Err(bad(format!("magic {m:#010x}, expected {magic:#010x}")));
    }
    let rank = (m & 0xff) as usize;
    let off = 4 + 4 * rank;
    if bytes.len() < off {
        return Err(bad("truncated header".into()));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|k| u32::from_be_bytes(bytes[4 + 4 * k..8 + 4 * k].try_into().expect("4 bytes")) as usize)
        .collect();
    let need = off + dims.iter().product::<usize>();
    if bytes.len() < need {
        return Err(bad(format!("truncated: {} bytes, {need} needed for dims {dims:?}", bytes.len())));
    }
    Ok((dims, off))
}

pub fn read_images(path: &Path) -> Result<IdxImages, DataError> {
    let bytes = read_maybe_gz(path)?;
    let (dims, off) = header(&bytes, path, 0x0000_0803)?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    Ok(IdxImages { path: path.to_owned(), count, rows, cols, pixels: bytes[off..off + count * rows * cols].to_vec() })
}

pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = read_maybe_gz(path)?;
    let (dims, off) = header(&bytes, path, 0x0000_0801)?;
    Ok(bytes[off..off + dims[0]].to_vec())
}

/// A dataset from an images file and a labels file.
pub fn load(images: &Path, labels: &Path) -> Result<Dataset, DataError> {
    let imgs = Arc::new(read_images(images)?);
    let labs = read_labels(labels)?;
    if labs.len() != imgs.count {
        return Err(DataError::Format {
            path: labels.to_owned(),
            reason: format!("{} labels for {} images in {}", labs.len(), imgs.count, images.display()),
        });
    }
    let mut values: Vec<u8> = labs.clone();
    values.sort();
    values.dedup();
    let classes: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    let samples = labs
        .iter()
        .enumerate()
        .map(|(i, l)| Sample {
            source: Source::Idx { images: imgs.clone(), index: i },
            roi: None,
            class: values.binary_search(l).expect("label collected above"),
        })
        .collect();
    // Digits have no natural groups: each is its own.
    Ok(Dataset { groups: classes.clone(), classes, samples })
}

/// The one images file and one labels file of a folder.
pub fn load_dir(root: &Path) -> Result<Dataset, DataError> {
    if !root.is_dir() {
        return Err(DataError::MissingFolder { path: root.to_owned() });
    }
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(root).map_err(DataError::io(root))?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    let find =
        |key: &str| files.iter().find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains(key))).cloned();
    let images = find("idx3")
        .ok_or_else(|| DataError::Format { path: root.to_owned(), reason: "no *idx3* images file".into() })?;
    let labels = find("idx1")
        .ok_or_else(|| DataError::Format { path: root.to_owned(), reason: "no *idx1* labels file".into() })?;
    load(&images, &labels)
}
