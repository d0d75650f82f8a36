// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train export`: a run's network as ONNX (fp32, INT8, FP16) with its bundle.

use std::path::PathBuf;

use odm_trainer::export::bundle::Rule;

use super::shared::Threads;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    run: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// Bundle name (default: the run's).
    #[arg(long)]
    name: Option<String>,
    /// Write an INT8 QDQ model (int8 weights per channel, uint8 activations) calibrated on this many of the run's
    /// training crops (Wide-ResNets; the bundle says precision int8).
    #[arg(long, value_name = "CROPS", num_args = 0..=1, default_missing_value = "512", conflicts_with = "fp16")]
    int8: Option<usize>,
    /// Write float16 weights and float16 computation, float32 input and output (for CUDA and TensorRT; on CPU,
    /// ONNX Runtime casts back to float32 around the nodes it has no float16 kernel for). The bundle says
    /// precision fp16.
    #[arg(long)]
    fp16: bool,
    /// The reference rule, written when the run has seen out-of-distribution designs (their centres become the
    /// bundle's category references): a crop within the novelty threshold is `known` only when its nearest class is
    /// no further than RATIO times the nearest reference, else `novelty`. 0 writes no rule (the thresholds alone);
    /// `calibrate` chooses the ratio and the novelty thresholds together on the run's validation data (the
    /// thresholds keep the run's calibration TPR of known crops under the rule, `calibrate:TPR` another share;
    /// the ratio, 0.5-2.0 or none, is the one that then lets the fewest held-out seen designs and calibration
    /// anomalies through); the fit is recorded in the bundle's `training.reference_rule`. A ratio other than 1, or
    /// `calibrate`, is refused on a run without references and on a ce run; a bundle with another rule than the
    /// default carries no `metrics` (`eval --reference-ratio` with the same value scores it).
    #[arg(long, value_name = "RATIO|calibrate[:TPR]", default_value_t = Rule::default())]
    reference_ratio: Rule,
    /// A novelty's category is the vote of this many nearest designs (classes and category references), each
    /// weighted by the inverse of its distance; 1: the nearest design's. Default: 5 when the bundle has references
    /// (none without). Another number than the default leaves the bundle without `metrics`.
    #[arg(long, value_name = "N")]
    category_votes: Option<u32>,
    #[command(flatten)]
    threads: Threads,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { run, out, name, int8, fp16, reference_ratio, category_votes, threads } = self;
        threads.apply()?;
        use odm_trainer::export::bundle::Precision;
        let precision = match (int8, fp16) {
            (Some(n), _) => Precision::Int8(n),
            (None, true) => Precision::Fp16,
            (None, false) => Precision::Fp32,
        };
        let b = odm_trainer::export::bundle::export_with(&run, &out, name, precision, reference_ratio, category_votes)?;
        out!("wrote {}", b.display());
        Ok(())
    }
}
