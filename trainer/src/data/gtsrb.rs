// SPDX-License-Identifier: MIT OR Apache-2.0
//! GTSRB training set: `Final_Training/Images/<class>/GT-<class>.csv` (`;`-separated:
//! `Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId`, corners inclusive) beside the `.ppm` images.
//! `root` may be the dataset folder or its `Final_Training/Images` folder.

use std::path::Path;

use super::{Dataset, Sample, Source};
use crate::error::DataError;

pub fn load(root: &Path) -> Result<Dataset, DataError> {
    let images =
        if root.join("Final_Training/Images").is_dir() { root.join("Final_Training/Images") } else { root.to_owned() };
    if !images.is_dir() {
        return Err(DataError::MissingFolder { path: images });
    }
    let mut dirs: Vec<_> = std::fs::read_dir(&images)
        .map_err(DataError::io(&images))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut d = Dataset::default();
    for dir in dirs {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let csv_path = dir.join(format!("GT-{name}.csv"));
        if !csv_path.is_file() {
            return Err(DataError::Format { path: csv_path, reason: "annotation file missing".into() });
        }
        let class = d.classes.len();
        d.classes.push(name.clone());
        // GTSRB class ids carry no names: each class is its own group.
        d.groups.push(name.clone());
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(b';')
            .from_path(&csv_path)
            .map_err(|e| DataError::Format { path: csv_path.clone(), reason: e.to_string() })?;
        for (i, record) in reader.records().enumerate() {
            let line = i + 2;
            let bad = |reason: String| DataError::Annotation { path: csv_path.clone(), line, reason };
            let r = record.map_err(|e| bad(e.to_string()))?;
            if r.len() < 8 {
                return Err(bad(format!("{} fields, 8 expected", r.len())));
            }
            let num = |k: usize| {
                r[k].trim().parse::<i64>().map_err(|_| bad(format!("field {} is not a number: {:?}", k + 1, &r[k])))
            };
            let (x1, y1, x2, y2) = (num(3)?, num(4)?, num(5)?, num(6)?);
            if x2 < x1 || y2 < y1 || x1 < 0 || y1 < 0 {
                return Err(bad(format!("ROI {x1},{y1}-{x2},{y2} is empty or negative")));
            }
            let file = dir.join(r[0].trim());
            if !file.is_file() {
                return Err(bad(format!("image {} not found", file.display())));
            }
            d.samples.push(Sample { source: Source::File(file), roi: Some((x1, y1, x2 - x1 + 1, y2 - y1 + 1)), class });
        }
    }
    if d.samples.is_empty() {
        return Err(DataError::Empty { root: root.to_owned() });
    }
    Ok(d)
}
