// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train table`: the paper's Table 2 for several runs side by side, from their `metrics*.json` files.

use std::path::PathBuf;

use super::categories::CategoryReport;
use super::metrics::{Confusion, Metrics, SetRow};
use crate::error::TrainError;

/// The paper's Table 2 for several runs side by side (`odm-train table`), from their `metrics*.json` files.
///
/// A row is named by its method, and also by its run folder when two files share a method. With `mean`, runs that
/// differ only by seed — the same method, and run folders equal once a trailing `-s<N>` is removed — become one row
/// of mean ± standard deviation (`n` is then the number of runs).
pub fn table(files: &[PathBuf], mean: bool) -> Result<String, TrainError> {
    let mut all = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(TrainError::io(f))?;
        let m: Metrics =
            serde_json::from_str(&text).map_err(|e| TrainError::Config(format!("{}: {e}", f.display())))?;
        let folder = f.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy()).unwrap_or_default();
        all.push((m, if mean { strip_seed(&folder).to_owned() } else { folder.into_owned() }));
    }
    // A table scored with another reference rule than the default (`metrics-rule-*`) is its own method.
    let method = |m: &Metrics| match &m.reference_rule {
        Some(r) => format!("{} [rule {r}]", m.method),
        None => m.method.clone(),
    };
    let methods: std::collections::HashSet<String> = all.iter().map(|(m, _)| method(m)).collect();
    let named_by_folder = methods.len() < all.len();
    // Rows in first-seen order: (label, the runs' metrics).
    let mut rows: Vec<(String, Vec<&Metrics>)> = Vec::new();
    for (m, folder) in &all {
        let label = if named_by_folder { format!("{} ({folder})", method(m)) } else { method(m) };
        // Without --mean every file is its own row.
        match rows.iter_mut().find(|(l, _)| mean && *l == label) {
            Some((_, runs)) => runs.push(m),
            None => rows.push((label, vec![m])),
        }
    }
    let cell = |v: &[f64]| {
        let n = v.len() as f64;
        let mu = v.iter().sum::<f64>() / n;
        if v.len() < 2 {
            return format!("{mu:.2}");
        }
        let sd = (v.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        format!("{mu:.2} ± {sd:.2}")
    };
    let mut t = String::from("| method | runs | in-dist. accuracy |\n|---|---:|---:|\n");
    for (label, runs) in &rows {
        let acc: Vec<f64> = runs.iter().map(|m| m.in_accuracy).collect();
        t.push_str(&format!("| {label} | {} | {} |\n", runs.len(), cell(&acc)));
    }
    let sets: std::collections::BTreeSet<&String> = all.iter().flat_map(|(m, _)| m.sets.keys()).collect();
    t.push_str("\n| OOD set | method | n | FPR95 ↓ | det. err ↓ | AUROC ↑ | AUPR-in ↑ | AUPR-out ↑ |\n");
    t.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
    for set in sets {
        for (label, runs) in &rows {
            let got: Vec<&SetRow> = runs.iter().filter_map(|m| m.sets.get(set)).collect();
            if got.is_empty() {
                continue;
            }
            let col = |f: fn(&SetRow) -> f64| cell(&got.iter().map(|r| f(r)).collect::<Vec<_>>());
            let n = if mean && runs.len() > 1 { format!("{} runs", got.len()) } else { got[0].count.to_string() };
            t.push_str(&format!(
                "| {set} | {label} | {n} | {} | {} | {} | {} | {} |\n",
                col(|r| r.fpr95),
                col(|r| r.det_err),
                col(|r| r.auroc),
                col(|r| r.aupr_in),
                col(|r| r.aupr_out)
            ));
        }
    }
    t.push_str(&verdict_table(&rows, &cell));
    Ok(t)
}

/// The verdicts under each run's own thresholds, for rows whose every run has a confusion matrix (metric-learning
/// runs): known signs kept, unknown signs called `known` and `novelty`, not-a-sign called `known`, and the category of
/// the unknown signs called `novelty` by the nearest design (the bundle's rule) where the runs have it. Empty when
/// no row has them.
fn verdict_table(rows: &[(String, Vec<&Metrics>)], cell: &dyn Fn(&[f64]) -> String) -> String {
    let share = |row: &[usize; 3], i: usize| 100.0 * row[i] as f64 / row.iter().sum::<usize>().max(1) as f64;
    let mut t = String::new();
    for (label, runs) in rows {
        let Some(conf) = runs.iter().map(|m| m.confusion.as_ref()).collect::<Option<Vec<_>>>() else { continue };
        if t.is_empty() {
            t.push_str("\n| method | known sign → known | unknown sign → known | unknown sign → novelty | ");
            t.push_str("not a sign → known | category right (novelty, as attached) |\n");
            t.push_str("|---|---:|---:|---:|---:|---:|\n");
        }
        let col = |f: &dyn Fn(&Confusion) -> f64| cell(&conf.iter().map(|c| f(c)).collect::<Vec<_>>());
        let category: Option<Vec<f64>> =
            runs.iter().map(|m| m.categories.as_ref().and_then(CategoryReport::novelty_right_attached)).collect();
        t.push_str(&format!(
            "| {label} | {} | {} | {} | {} | {} |\n",
            col(&|c| share(&c.known, 0)),
            col(&|c| share(&c.unknown_sign, 0)),
            col(&|c| share(&c.unknown_sign, 1)),
            col(&|c| share(&c.not_a_sign, 0)),
            category.map_or_else(|| "—".to_owned(), |v| cell(&v)),
        ));
    }
    t
}

/// A run folder's name without a trailing seed tag `-s<N>` (`odm-s2` → `odm`).
fn strip_seed(folder: &str) -> &str {
    match folder.rsplit_once("-s") {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => folder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn write(dir: &Path, folder: &str, method: &str, acc: f64, auroc: f64) -> PathBuf {
        let row = SetRow {
            fpr95: 100.0 - auroc,
            det_err: 1.0,
            auroc,
            aupr_in: 2.0,
            aupr_out: 3.0,
            count: 40,
            verdicts: None,
        };
        let m = Metrics {
            method: method.into(),
            in_accuracy: acc,
            in_count: 10,
            in_verdicts: None,
            sets: [("novelty".to_string(), row)].into(),
            novelty_vs_anomaly: BTreeMap::new(),
            confusion: None,
            categories: None,
            sizes: None,
            mistakes: None,
            refs: None,
            rule_fit: None,
            reference_rule: None,
        };
        let path = dir.join(folder).join("metrics.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
        path
    }

    #[test]
    fn table_names_rows_by_run_and_averages_seeds() {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            write(dir.path(), "odm-s1", "odm", 90.0, 96.0),
            write(dir.path(), "odm-s2", "odm", 94.0, 98.0),
            write(dir.path(), "odm-paper-s1", "odm", 80.0, 90.0),
            write(dir.path(), "ml-s1", "ml", 85.0, 93.0),
        ];
        let t = table(&files, false).unwrap();
        assert!(t.contains("| novelty | odm (odm-s2) | 40 | 2.00 | 1.00 | 98.00 |"), "{t}");
        // A table of another reference rule in a run's folder is a row of its own, never a seed of the default's.
        let mut ruled: Metrics = serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
        ruled.reference_rule = Some("calibrate".into());
        let ruled_path = files[0].with_file_name("metrics-rule-calibrate.json");
        std::fs::write(&ruled_path, serde_json::to_string(&ruled).unwrap()).unwrap();
        let t2 = table(&[files[0].clone(), files[1].clone(), ruled_path], true).unwrap();
        assert!(t2.contains("| odm [rule calibrate] (odm) | 1 |") && t2.contains("| odm (odm) | 2 |"), "{t2}");
        assert!(t.contains("| novelty | ml (ml-s1) | 40 | 7.00 |"), "{t}");
        let t = table(&files, true).unwrap();
        // Mean and sample standard deviation of the two odm seeds; the paper variant stays apart.
        assert!(t.contains("| odm (odm) | 2 | 92.00 ± 2.83 |"), "{t}");
        assert!(t.contains("| novelty | odm (odm) | 2 runs | 3.00 ± 1.41 | 1.00 ± 0.00 | 97.00 ± 1.41 |"), "{t}");
        assert!(t.contains("| novelty | odm (odm-paper) | 40 | 10.00 |"), "{t}");
        // Distinct methods need no folder names.
        let t = table(&files[2..], false).unwrap();
        assert!(t.contains("| odm | 1 | 80.00 |") && t.contains("| novelty | ml | 40 |"), "{t}");
        // Runs without a confusion matrix (cross-entropy) have no verdict table.
        assert!(!t.contains("unknown sign → known"), "{t}");
        assert_eq!(strip_seed("run-s12"), "run");
        assert_eq!(strip_seed("signs"), "signs");
        assert_eq!(strip_seed("a-s"), "a-s");
    }

    #[test]
    fn table_averages_verdict_shares_over_seeds() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for (seed, unknown) in [(1, [30, 60, 10]), (2, [50, 40, 10])] {
            let path = write(dir.path(), &format!("odm-s{seed}"), "odm", 90.0, 96.0);
            let mut m: Metrics = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            m.confusion = Some(Confusion { known: [95, 5, 0], unknown_sign: unknown, not_a_sign: [1, 9, 90] });
            std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
            files.push(path);
        }
        let t = table(&files, true).unwrap();
        // Unknown signs called known: 30% and 50%, mean 40 and sample standard deviation 14.14; no category report.
        assert!(t.contains("| odm (odm) | 95.00 ± 0.00 | 40.00 ± 14.14 | 50.00 ± 14.14 | 1.00 ± 0.00 | — |"), "{t}");
    }
}
