// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train synth`: the synthetic traffic-sign dataset.

use std::path::PathBuf;

use super::shared::DesignsArg;

#[derive(clap::Args)]
pub struct Args {
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Sign crops per design in train/.
    #[arg(long, default_value_t = 40)]
    train_per_class: usize,
    /// Sign crops per design in test/.
    #[arg(long, default_value_t = 20)]
    test_per_class: usize,
    /// A training config whose `in_dist` designs get --known-train-per-class and --known-test-per-class crops.
    #[arg(long)]
    known_from: Option<PathBuf>,
    #[arg(long, default_value_t = 200)]
    known_train_per_class: usize,
    #[arg(long, default_value_t = 50)]
    known_test_per_class: usize,
    /// Background patches (anomalies), shared among the scenes.
    #[arg(long, default_value_t = 2000)]
    background: usize,
    /// Gaussian noise images (anomalies).
    #[arg(long, default_value_t = 500)]
    noise: usize,
    /// Only these designs (comma-separated; default: every design of the package).
    #[arg(long, value_delimiter = ',')]
    classes: Vec<String>,
    /// A folder of real photographs used as backgrounds of the sign crops beside the embedded scenes.
    #[arg(long)]
    photos: Option<PathBuf>,
    #[command(flatten)]
    designs: DesignsArg,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args {
            out,
            seed,
            train_per_class,
            test_per_class,
            known_from,
            known_train_per_class,
            known_test_per_class,
            background,
            noise,
            classes,
            photos,
            designs,
            threads,
        } = self;
        if let Some(n) = threads {
            rayon::ThreadPoolBuilder::new().num_threads(n).build_global()?;
        }
        let known = match &known_from {
            Some(p) => odm_trainer::train::config::TrainConfig::load(p)?.in_dist,
            None => Vec::new(),
        };
        let config = odm_trainer::synth::SynthConfig {
            seed,
            train_per_class,
            test_per_class,
            known,
            known_train_per_class,
            known_test_per_class,
            background,
            noise,
            classes,
            photos_dir: photos,
            designs: designs.designs,
            ..Default::default()
        };
        let start = std::time::Instant::now();
        let m = odm_trainer::synth::run(&out, &config, true)?;
        let total = m.classes.iter().map(|c| c.train + c.test).sum::<usize>()
            + m.background.iter().map(|b| b.1).sum::<usize>()
            + m.noise;
        let secs = start.elapsed().as_secs_f64();
        out!(
            "wrote {total} crops ({} classes, {} background, {} noise) to {} in {secs:.1} s ({:.0} crops/s, {} threads)",
            m.classes.len(),
            m.background.iter().map(|b| b.1).sum::<usize>(),
            m.noise,
            out.display(),
            total as f64 / secs,
            rayon::current_num_threads()
        );
        Ok(())
    }
}
