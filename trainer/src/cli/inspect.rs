// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train inspect`: validate a bundle against its network and print a summary.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The bundle file (NAME.odm.json).
    bundle: PathBuf,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { bundle } = self;
        let b = odm_core::Bundle::open(&bundle)?;
        // The network as ONNX Runtime sees it must be the one the bundle describes (input, output, dimension).
        odm_trainer::eval::onnx::check_network(&b, &bundle)?;
        let i = &b.model.input;
        out!("bundle      {} ({})", b.name, bundle.display());
        out!("model       {} sha256 {}", b.model_path(&bundle).display(), b.model.sha256);
        out!(
            "input       {} [N,3,{},{}] {:?} mean {:?} std {:?} context {}",
            i.name,
            i.height,
            i.width,
            i.color,
            i.mean,
            i.std,
            i.context
        );
        out!("output      {} [N,{}]", b.model.output.name, b.model.output.dim);
        out!("thresholds  novelty {} anomaly {}", b.score.novelty_threshold, b.score.anomaly_threshold);
        match b.score.reference_ratio {
            Some(r) => out!(
                "references  {} (known only when nearer the class than {r} x the nearest reference)",
                b.category_refs.len()
            ),
            None if !b.category_refs.is_empty() => {
                out!("references  {} (categories only; no reference rule)", b.category_refs.len())
            }
            None => {}
        }
        if !b.category_refs.is_empty() || b.classes.iter().any(|c| c.effective_category().is_some()) {
            match b.score.category_votes.filter(|&v| v > 1) {
                Some(v) => {
                    out!("categories  a novelty's: the vote of the {v} nearest designs (weighted by 1/distance)")
                }
                None => out!("categories  a novelty's: the nearest design's"),
            }
        }
        if b.novelty_collapsed() {
            out!("WARNING     {}", odm_trainer::train::calibrate::COLLAPSE_WARNING);
        }
        out!("classes     {}", b.classes.len());
        for c in &b.classes {
            out!("  {:>4}  {}", c.id, c.label);
        }
        Ok(())
    }
}
