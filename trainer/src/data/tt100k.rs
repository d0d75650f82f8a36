// SPDX-License-Identifier: MIT OR Apache-2.0
//! Tsinghua-Tencent 100K: `root/annotations.json` with `imgs: {id: {path, objects: [{category, bbox: {xmin, ymin,
//! xmax, ymax}}]}}`; every object is one sample (a crop of its image by the box), categories are classes, and the
//! category prefix (`pl` of `pl40`, `w` of `w55`) is the group.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{group_of, Dataset, Sample, Source};
use crate::error::DataError;

#[derive(Deserialize)]
struct Annotations {
    imgs: BTreeMap<String, Img>,
}

#[derive(Deserialize)]
struct Img {
    path: String,
    #[serde(default)]
    objects: Vec<Object>,
}

#[derive(Deserialize)]
struct Object {
    category: String,
    bbox: BBox,
}

#[derive(Deserialize)]
struct BBox {
    xmin: f64,
    ymin: f64,
    xmax: f64,
    ymax: f64,
}

pub fn load(root: &Path) -> Result<Dataset, DataError> {
    if !root.is_dir() {
        return Err(DataError::MissingFolder { path: root.to_owned() });
    }
    let path = root.join("annotations.json");
    let text = std::fs::read_to_string(&path).map_err(DataError::io(&path))?;
    let ann: Annotations = serde_json::from_str(&text).map_err(|e| DataError::Annotation {
        path: path.clone(),
        line: e.line(),
        reason: e.to_string(),
    })?;
    let mut categories: Vec<String> =
        ann.imgs.values().flat_map(|i| i.objects.iter().map(|o| o.category.clone())).collect();
    categories.sort();
    categories.dedup();
    let mut d =
        Dataset { groups: categories.iter().map(|c| group_of(c)).collect(), classes: categories, samples: Vec::new() };
    for (id, img) in &ann.imgs {
        let file = root.join(&img.path);
        if !img.objects.is_empty() && !file.is_file() {
            return Err(DataError::Format {
                path: path.clone(),
                reason: format!("image {id}: {} not found", file.display()),
            });
        }
        for o in &img.objects {
            let b = &o.bbox;
            if !(b.xmin.is_finite() && b.ymin.is_finite() && b.xmax > b.xmin && b.ymax > b.ymin) {
                return Err(DataError::Format {
                    path: path.clone(),
                    reason: format!("image {id}: empty or invalid bbox for {}", o.category),
                });
            }
            let class = d.class_index(&o.category).expect("categories were collected from these objects");
            let roi = (
                b.xmin.floor() as i64,
                b.ymin.floor() as i64,
                (b.xmax - b.xmin).ceil() as i64,
                (b.ymax - b.ymin).ceil() as i64,
            );
            d.samples.push(Sample { source: Source::File(file.clone()), roi: Some(roi), class });
        }
    }
    if d.samples.is_empty() {
        return Err(DataError::Empty { root: root.to_owned() });
    }
    Ok(d)
}
