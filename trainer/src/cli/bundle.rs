// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train bundle`: a bundle for an embedding network odm did not train (`bundle --onnx`).

use super::shared::Threads;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    options: odm_trainer::export::byo::ByoOptions,
    #[command(flatten)]
    threads: Threads,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { options: o, threads } = self;
        threads.apply()?;
        use odm_trainer::export::byo::bundle_onnx;
        let made = bundle_onnx(&o)?;
        let b = odm_core::Bundle::open(&made.bundle)?;
        out!(
            "wrote {} ({} classes, dim {}, novelty threshold {:.4}, anomaly threshold {:.4})",
            made.bundle.display(),
            b.classes.len(),
            b.dim(),
            b.score.novelty_threshold,
            b.score.anomaly_threshold
        );
        match made.metrics {
            Some(m) => out!("\n{}", m.markdown()),
            None => out!("(no {} folder: no evaluation)", o.data.join("test").display()),
        }
        Ok(())
    }
}
