// SPDX-License-Identifier: MIT OR Apache-2.0
//! Class-per-folder trees: `root/<class>/*.png|jpg|jpeg|ppm|pgm|bmp`, any size, grey or colour.
//! Groups come from `manifest.json` beside or above the root when `odm-train synth` wrote it, else from the class
//! name (see [`super::group_of`]).

use std::path::Path;

use super::{group_of, is_image, Dataset, Sample, Source};
use crate::error::DataError;
use crate::synth::{Manifest, MANIFEST};

fn manifest_groups(root: &Path) -> Option<Manifest> {
    [root.join(MANIFEST), root.parent()?.join(MANIFEST)]
        .iter()
        .find(|p| p.is_file())
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
}

pub fn load(root: &Path) -> Result<Dataset, DataError> {
    if !root.is_dir() {
        return Err(DataError::MissingFolder { path: root.to_owned() });
    }
    let mut class_dirs: Vec<_> = std::fs::read_dir(root)
        .map_err(DataError::io(root))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    class_dirs.sort();
    let manifest = manifest_groups(root);
    let mut d = Dataset::default();
    for dir in class_dirs {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map_err(DataError::io(&dir))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file() && is_image(p))
            .collect();
        files.sort();
        let class = d.classes.len();
        let group = manifest
            .as_ref()
            .and_then(|m| m.classes.iter().find(|c| c.name == name).map(|c| c.group.clone()))
            .unwrap_or_else(|| group_of(&name));
        d.classes.push(name);
        d.groups.push(group);
        d.samples.extend(files.into_iter().map(|p| Sample { source: Source::File(p), roi: None, class }));
    }
    if d.samples.is_empty() {
        return Err(DataError::Empty { root: root.to_owned() });
    }
    Ok(d)
}
