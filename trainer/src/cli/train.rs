// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train train`: train an embedding network, calibrate, write the bundle. The flags and their merging with
//! `--config` are the library's (`train::flags`), beside the config they make.

use odm_trainer::train::flags::TrainFlags;
use odm_trainer::train::run::{self, Existing};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    flags: TrainFlags,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long)]
    threads: Option<i32>,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { flags, threads } = self;
        if let Some(n) = threads {
            tch::set_num_threads(n);
        }
        let out = flags.out.clone();
        let existing = match (flags.resume, flags.force) {
            (true, _) => Existing::Resume,
            (_, true) => Existing::Replace,
            _ => Existing::Refuse,
        };
        let cfg = flags.config()?;
        let start = std::time::Instant::now();
        let bundle = run::train(&cfg, &out, true, existing)?;
        out!("wrote {} in {:.1} s", bundle.display(), start.elapsed().as_secs_f64());
        Ok(())
    }
}
