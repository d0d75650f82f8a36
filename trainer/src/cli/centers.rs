// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train centers`: new centres and thresholds for a trained run, without retraining (enrolling a class).

use std::path::PathBuf;

use super::shared::Threads;

/// `centers --mode`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum EnrolMode {
    Replace,
    Add,
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    run: PathBuf,
    #[arg(long)]
    data: PathBuf,
    /// Classes to enrol (default: every class folder not named in --seen-ood).
    #[arg(long = "in", value_delimiter = ',')]
    in_dist: Vec<String>,
    /// Classes used only to calibrate the anomaly threshold.
    #[arg(long, value_delimiter = ',')]
    seen_ood: Vec<String>,
    #[arg(long = "anomaly-dir")]
    anomaly_dirs: Vec<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// replace: the bundle holds the classes of --data (refused when one of the run's is missing, unless
    /// --allow-drop); add: the run's classes stay and those of --data are added or re-enrolled.
    #[arg(long, value_enum, default_value = "replace")]
    mode: EnrolMode,
    /// With --mode replace: write the bundle even though classes of the run are not in --data.
    #[arg(long)]
    allow_drop: bool,
    #[command(flatten)]
    threads: Threads,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { run, data, in_dist, seen_ood, anomaly_dirs, out, mode, allow_drop, threads } = self;
        threads.apply()?;
        use odm_trainer::export::centers::{centers, Enrol};
        let mode = match mode {
            EnrolMode::Replace => Enrol::Replace { allow_drop },
            EnrolMode::Add if allow_drop => {
                return Err("--allow-drop is for --mode replace: --mode add drops no class".into())
            }
            EnrolMode::Add => Enrol::Add,
        };
        let e = centers(&run, &data, in_dist, seen_ood, anomaly_dirs, &out, mode)?;
        if !e.dropped.is_empty() {
            eprintln!("odm-train: warning: --allow-drop: {} classes of the run are not in the bundle", e.dropped.len());
        }
        out!(
            "wrote {}: {} kept, {} added, {} re-enrolled, {} dropped",
            e.bundle.display(),
            e.kept.len(),
            e.added.len(),
            e.reenrolled.len(),
            e.dropped.len()
        );
        Ok(())
    }
}
