// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train eval`: a run on its test sets (metrics.json, metrics.md).

use std::path::PathBuf;

use odm_trainer::export::bundle::Rule;

use super::shared::Threads;

#[derive(clap::Args)]
pub struct Args {
    /// The run folder written by `train`.
    #[arg(long)]
    run: PathBuf,
    /// Gaussian noise images in the `noise` set.
    #[arg(long, default_value_t = 500)]
    noise: usize,
    /// An extra anomaly tree evaluated whole, reported as "NAME (unseen)" (repeatable): data that neither
    /// training nor calibration saw, such as held-out real photographs.
    #[arg(long = "anomaly-dir")]
    anomaly_dirs: Vec<PathBuf>,
    /// Embed with this ONNX export of the run in ONNX Runtime (an `export --int8` model, say) instead of the
    /// run's network; the tables go to metrics-onnx-STEM.json and .md. Another run's network is refused: the file
    /// must be the run's own ONNX or an export whose bundle (STEM.odm.json beside it) holds the run's centres. A
    /// run folder without `model.ot` (its weights gone: only `config.json`, the bundle's `training.config`, and
    /// NAME.odm.json) is scored through the ONNX alone, with the bundle's own references and the default rule.
    #[arg(long)]
    onnx: Option<PathBuf>,
    /// Score the known and unknown signs of ROOT/test instead of the run's own test tree (another rendering of
    /// the same designs, such as `odm-train plain`'s); the tables go to metrics-TAG.json and .md.
    #[arg(long)]
    test_data: Option<PathBuf>,
    /// Name of the --test-data tables.
    #[arg(long, default_value = "plain")]
    tag: String,
    /// Score with the reference rule `export --reference-ratio` would write: a ratio, 0 for none, or `calibrate`
    /// (the ratio and the novelty thresholds chosen together on the run's validation data to keep the run's TPR of
    /// known crops; `calibrate:TPR` another share). With another rule than the default the tables go to
    /// metrics[-onnx-STEM][-TAG]-rule-RULE.json and .md and the run's bundle is left alone; refused on a ce run.
    #[arg(long, value_name = "RATIO|calibrate[:TPR]", default_value_t = Rule::default())]
    reference_ratio: Rule,
    #[command(flatten)]
    threads: Threads,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { run, noise, anomaly_dirs, onnx, test_data, tag, reference_ratio, threads } = self;
        threads.apply()?;
        let td = test_data.as_deref().map(|root| odm_trainer::eval::TestData { root, tag: &tag });
        for m in odm_trainer::eval::eval_full(&run, noise, &anomaly_dirs, onnx.as_deref(), td, reference_ratio)? {
            out!("{}", m.markdown());
        }
        Ok(())
    }
}
