// SPDX-License-Identifier: MIT OR Apache-2.0
//! The paper's splits: classes into in-distribution, seen out-of-distribution (used by ODM in training) and unseen
//! out-of-distribution (novelty, test only); samples of each class into train, validation and test.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use super::Dataset;
use crate::error::DataError;

/// The paper's 50/20/30 split of the classes (section 4.2).
pub const PAPER_FRACTIONS: [f64; 3] = [0.5, 0.2, 0.3];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassSplit {
    pub in_dist: Vec<String>,
    pub seen_ood: Vec<String>,
    pub unseen_ood: Vec<String>,
}

/// A split from explicit lists. Unknown names, a class in two lists, or an empty in-distribution list are refused.
pub fn explicit(
    classes: &[String],
    in_dist: &[String],
    seen_ood: &[String],
    unseen_ood: &[String],
) -> Result<ClassSplit, DataError> {
    let lists = [("in", in_dist), ("seen-ood", seen_ood), ("unseen-ood", unseen_ood)];
    let mut owner: BTreeMap<&str, &'static str> = BTreeMap::new();
    for (which, list) in lists {
        for c in list {
            if !classes.contains(c) {
                return Err(DataError::UnknownClass { class: c.clone(), known: classes.join(", ") });
            }
            if let Some(first) = owner.insert(c, which) {
                return Err(DataError::DuplicateClass { class: c.clone(), first, second: which });
            }
        }
    }
    if in_dist.is_empty() {
        return Err(DataError::EmptySplit { which: "in", reason: "no in-distribution class given".into() });
    }
    Ok(ClassSplit { in_dist: in_dist.to_vec(), seen_ood: seen_ood.to_vec(), unseen_ood: unseen_ood.to_vec() })
}

/// A seeded random split of the classes by fractions (in, seen, unseen), keeping each group on one side.
/// Groups are dealt in a shuffled order to the part furthest below its target share.
pub fn random(classes: &[String], groups: &[String], fractions: [f64; 3], seed: u64) -> Result<ClassSplit, DataError> {
    let total: f64 = fractions.iter().sum();
    if fractions.iter().any(|f| !f.is_finite() || *f < 0.0) || (total - 1.0).abs() > 1e-6 {
        return Err(DataError::Split(format!("fractions {fractions:?} must be non-negative and sum to 1")));
    }
    let mut by_group: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (k, g) in groups.iter().enumerate() {
        by_group.entry(g.as_str()).or_default().push(k);
    }
    let mut order: Vec<&Vec<usize>> = by_group.values().collect();
    order.shuffle(&mut Pcg64::seed_from_u64(seed));
    let n = classes.len() as f64;
    let mut parts: [Vec<usize>; 3] = Default::default();
    for members in order {
        let deficit = |p: usize, parts: &[Vec<usize>; 3]| fractions[p] * n - parts[p].len() as f64;
        let best = (0..3).filter(|&p| fractions[p] > 0.0).fold(None, |best: Option<usize>, p| match best {
            Some(b) if deficit(b, &parts) >= deficit(p, &parts) => Some(b),
            _ => Some(p),
        });
        parts[best.expect("some fraction is positive")].extend(members);
    }
    let names = ["in", "seen-ood", "unseen-ood"];
    for p in 0..3 {
        if fractions[p] > 0.0 && parts[p].is_empty() {
            return Err(DataError::EmptySplit {
                which: names[p],
                reason: format!("{} groups of classes cannot fill three parts", by_group.len()),
            });
        }
        parts[p].sort();
    }
    let to_names = |v: &Vec<usize>| v.iter().map(|&k| classes[k].clone()).collect();
    Ok(ClassSplit { in_dist: to_names(&parts[0]), seen_ood: to_names(&parts[1]), unseen_ood: to_names(&parts[2]) })
}

/// Sample indices of a dataset split per class into train, validation and test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleSplit {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

/// Split every class's samples by fractions (train, val, test), seeded; each non-zero part of a class gets at least
/// one sample when the class has enough.
pub fn per_class(d: &Dataset, fractions: [f64; 3], seed: u64) -> Result<SampleSplit, DataError> {
    let total: f64 = fractions.iter().sum();
    if fractions.iter().any(|f| !f.is_finite() || *f < 0.0) || (total - 1.0).abs() > 1e-6 {
        return Err(DataError::Split(format!("fractions {fractions:?} must be non-negative and sum to 1")));
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); d.classes.len()];
    for (i, s) in d.samples.iter().enumerate() {
        by_class[s.class].push(i);
    }
    let mut out = SampleSplit::default();
    for (k, mut idx) in by_class.into_iter().enumerate() {
        idx.shuffle(&mut Pcg64::seed_from_u64(seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let n = idx.len();
        let mut n_val = (fractions[1] * n as f64).round() as usize;
        let mut n_test = (fractions[2] * n as f64).round() as usize;
        if fractions[1] > 0.0 && n_val == 0 && n >= 3 {
            n_val = 1;
        }
        if fractions[2] > 0.0 && n_test == 0 && n >= 3 {
            n_test = 1;
        }
        let n_train = n.saturating_sub(n_val + n_test);
        out.train.extend(&idx[..n_train]);
        out.val.extend(&idx[n_train..n_train + n_val.min(n - n_train)]);
        out.test.extend(&idx[(n_train + n_val).min(n)..]);
    }
    Ok(out)
}

/// A whole split of a dataset, as `odm-train split` prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub classes: ClassSplit,
    /// Classes dropped for having too few images, with their counts.
    pub dropped: Vec<(String, usize)>,
    /// Per class: (train, validation, test) sample counts.
    pub samples: BTreeMap<String, (usize, usize, usize)>,
    pub seed: u64,
}

/// Load, drop small classes, split classes and samples.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    root: &std::path::Path,
    format: super::Format,
    in_dist: &[String],
    seen_ood: &[String],
    unseen_ood: &[String],
    fractions: [f64; 3],
    sample_fractions: [f64; 3],
    seed: u64,
    min_per_class: usize,
) -> Result<Plan, DataError> {
    // A class-per-folder dataset root (as `synth` writes it and `train --data` takes it) is read at ROOT/train; a
    // folder of class folders without a train/ inside is read as it is.
    let train = root.join("train");
    let root = if format == super::Format::Folder && train.is_dir() { train.as_path() } else { root };
    let mut d = super::load(root, format)?;
    let dropped = d.drop_small_classes(min_per_class);
    for list in [in_dist, seen_ood, unseen_ood] {
        for c in list {
            if let Some((_, n)) = dropped.iter().find(|(name, _)| name == c) {
                return Err(DataError::EmptySplit {
                    which: "named class",
                    reason: format!("{c:?} has {n} images, fewer than {min_per_class}, and was dropped"),
                });
            }
        }
    }
    if d.classes.is_empty() {
        return Err(DataError::EmptySplit { which: "all", reason: format!("no class has {min_per_class} images") });
    }
    let classes = if in_dist.is_empty() && seen_ood.is_empty() && unseen_ood.is_empty() {
        random(&d.classes, &d.groups, fractions, seed)?
    } else {
        explicit(&d.classes, in_dist, seen_ood, unseen_ood)?
    };
    let s = per_class(&d, sample_fractions, seed)?;
    let mut samples: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for (part, idx) in [(0, &s.train), (1, &s.val), (2, &s.test)] {
        for &i in idx {
            let e = samples.entry(d.classes[d.samples[i].class].clone()).or_default();
            match part {
                0 => e.0 += 1,
                1 => e.1 += 1,
                _ => e.2 += 1,
            }
        }
    }
    Ok(Plan { classes, dropped, samples, seed })
}
