// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train split`: the class and sample split of a dataset, as JSON.

use std::path::PathBuf;

use odm_trainer::train::flags::ClassLists;

#[derive(clap::Args)]
pub struct Args {
    /// Dataset root, as `train --data` takes it: a class-per-folder dataset is read at ROOT/train (or ROOT itself
    /// when it has no train/ folder); GTSRB, TT100K and IDX roots as `import` takes them.
    #[arg(long)]
    data: PathBuf,
    #[arg(long, value_enum, default_value = "folder")]
    format: odm_trainer::data::Format,
    #[command(flatten)]
    lists: ClassLists,
    /// Class fractions in, seen, unseen (the paper's 50/20/30 by default).
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.2,0.3")]
    fractions: Vec<f64>,
    /// Per-class sample fractions train, validation, test.
    #[arg(long, value_delimiter = ',', default_value = "0.7,0.1,0.2")]
    samples: Vec<f64>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Classes with fewer images are dropped with a warning (paper: 10).
    #[arg(long, default_value_t = 10)]
    min_per_class: usize,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { data, format, lists, fractions, samples, seed, min_per_class } = self;
        let three = |v: &[f64], what: &str| -> Result<[f64; 3], Box<dyn std::error::Error>> {
            <[f64; 3]>::try_from(v).map_err(|_| format!("--{what} takes three comma-separated numbers").into())
        };
        let report = odm_trainer::data::split::plan(
            &data,
            format,
            &lists.in_dist,
            &lists.seen_ood,
            &lists.unseen_ood,
            three(&fractions, "fractions")?,
            three(&samples, "samples")?,
            seed,
            min_per_class,
        )?;
        for (class, n) in &report.dropped {
            eprintln!("odm-train: warning: class {class:?} dropped: {n} images, fewer than {min_per_class}");
        }
        out!("{}", serde_json::to_string_pretty(&report)?);
        Ok(())
    }
}
