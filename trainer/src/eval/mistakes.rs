// SPDX-License-Identifier: MIT OR Apache-2.0
//! Where the known signs' accuracy goes: every known test crop given another design's label, sorted by how the
//! design it was taken for relates to its own — another variant of the same sign (the taxonomy's group: the name
//! without `--gN`), another sign of the same category, a sign of another category — with the accuracy when a variant
//! of the same sign counts as right, and the pairs confused most often. Runs whose labels are not taxonomy names
//! get none.

use odm_core::taxonomy::SignName;
use serde::{Deserialize, Serialize};

/// How many confused pairs the report lists.
pub const TOP_PAIRS: usize = 12;

/// One (truth, taken for) pair.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MistakePair {
    pub truth: String,
    pub predicted: String,
    /// Crops of `truth` given `predicted`'s label, and their share of `truth`'s test crops (percent).
    pub count: usize,
    pub share: f64,
}

/// The mistakes on the known test crops.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MistakeReport {
    /// Known test crops, and those whose nearest class is not their own.
    pub known: usize,
    pub wrong: usize,
    /// The wrong ones by relation: another variant of the same sign, another sign of the same category, a sign of
    /// another category.
    pub same_sign: usize,
    pub same_category: usize,
    pub other_category: usize,
    /// Accuracy (percent) when a variant of the same sign counts as right.
    pub sign_accuracy: f64,
    /// The most frequent pairs, most first (ties by name).
    pub pairs: Vec<MistakePair>,
}

/// The report from the known test crops' (label, nearest class, distance) rows, as the other reports of `eval` take
/// them (the distance is not used), and the classes' names; None when a name is not a taxonomy name, or without
/// crops. A crop with no nearest class (`usize::MAX`) counts as wrong, in no relation.
pub fn report(rows: &[(i64, usize, f64)], classes: &[&str]) -> Option<MistakeReport> {
    let names: Vec<SignName> = classes.iter().map(|c| SignName::parse(c).ok()).collect::<Option<_>>()?;
    if rows.is_empty() {
        return None;
    }
    let mut per_class = vec![0usize; classes.len()];
    let mut pairs = std::collections::BTreeMap::<(usize, usize), usize>::new();
    let (mut wrong, mut same_sign, mut same_category, mut other_category) = (0, 0, 0, 0);
    for &(y, k, _) in rows {
        let y = usize::try_from(y).ok().filter(|&y| y < classes.len())?;
        per_class[y] += 1;
        if k == y {
            continue;
        }
        wrong += 1;
        let Some(p) = names.get(k) else { continue };
        if p.group == names[y].group {
            same_sign += 1;
        } else if p.category == names[y].category {
            same_category += 1;
        } else {
            other_category += 1;
        }
        *pairs.entry((y, k)).or_default() += 1;
    }
    let mut pairs: Vec<MistakePair> = pairs
        .into_iter()
        .map(|((y, k), count)| MistakePair {
            truth: classes[y].to_owned(),
            predicted: classes[k].to_owned(),
            count,
            share: 100.0 * count as f64 / per_class[y] as f64,
        })
        .collect();
    pairs.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| (&a.truth, &a.predicted).cmp(&(&b.truth, &b.predicted))));
    pairs.truncate(TOP_PAIRS);
    let known = rows.len();
    Some(MistakeReport {
        known,
        wrong,
        same_sign,
        same_category,
        other_category,
        sign_accuracy: 100.0 * (known - wrong + same_sign) as f64 / known as f64,
        pairs,
    })
}

impl MistakeReport {
    pub fn markdown(&self) -> String {
        let pct = |n: usize| 100.0 * n as f64 / self.wrong.max(1) as f64;
        let mut s = format!(
            "Mistakes on known signs: {} of the {} known test images ({:.2}%) are taken for another design: {} \
             ({:.1}%) for another variant of the same sign (`--gN`), {} ({:.1}%) for another sign of the same \
             category, {} ({:.1}%) for a sign of another category. Counting a variant of the same sign as right, \
             the accuracy is {:.2}%.\n\n",
            self.wrong,
            self.known,
            100.0 * self.wrong as f64 / self.known.max(1) as f64,
            self.same_sign,
            pct(self.same_sign),
            self.same_category,
            pct(self.same_category),
            self.other_category,
            pct(self.other_category),
            self.sign_accuracy,
        );
        if !self.pairs.is_empty() {
            s.push_str("| known design | taken for | images | of its test images |\n|---|---|---:|---:|\n");
            for p in &self.pairs {
                s.push_str(&format!("| {} | {} | {} | {:.1}% |\n", p.truth, p.predicted, p.count, p.share));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASSES: [&str; 4] =
        ["regulatory--stop--g1", "regulatory--no-entry--g1", "regulatory--no-entry--g2", "warning--curve-left--g1"];

    #[test]
    fn mistakes_are_sorted_by_how_the_designs_relate() {
        // no-entry g1 taken twice for its g2 variant, once for stop; stop once for a warning; one crop with no class.
        let rows =
            [(0, 0), (0, 3), (1, 2), (1, 2), (1, 0), (1, 1), (2, 2), (3, 3), (3, usize::MAX)].map(|(y, k)| (y, k, 1.0));
        let r = report(&rows, &CLASSES).expect("taxonomy names");
        assert_eq!((r.known, r.wrong), (9, 5));
        assert_eq!((r.same_sign, r.same_category, r.other_category), (2, 1, 1));
        assert!((r.sign_accuracy - 100.0 * 6.0 / 9.0).abs() < 1e-9);
        assert_eq!(r.pairs[0].truth, "regulatory--no-entry--g1");
        assert_eq!(r.pairs[0].predicted, "regulatory--no-entry--g2");
        assert_eq!(r.pairs[0].count, 2);
        assert!((r.pairs[0].share - 50.0).abs() < 1e-9);
        assert_eq!(r.pairs.len(), 3);
        let md = r.markdown();
        assert!(md.contains("5 of the 9 known test images"), "{md}");
        assert!(md.contains("| regulatory--no-entry--g1 | regulatory--no-entry--g2 | 2 | 50.0% |"), "{md}");
    }

    #[test]
    fn no_report_for_other_labels_or_no_crops() {
        assert!(report(&[(0, 0, 1.0)], &["cat", "dog"]).is_none());
        assert!(report(&[], &CLASSES).is_none());
        assert!(report(&[(7, 0, 1.0)], &CLASSES).is_none(), "a label outside the classes");
    }
}
