// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train`: the command line over the odm-trainer library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use odm_core::Bundle;

#[derive(Parser)]
#[command(name = "odm-train", version, about = "Train, evaluate and export odm open-set sign classifiers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the hand-built `colors` test model (colors.onnx + colors.odm.json) into a folder.
    Fixture {
        /// Output folder.
        #[arg(long, default_value = "models/colors")]
        out: PathBuf,
    },
    /// Validate a bundle (and the SHA-256 of its model) and print a summary.
    Inspect {
        /// The bundle file (NAME.odm.json).
        bundle: PathBuf,
    },
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Fixture { out } => {
            let path = odm_trainer::fixture::write(&out)?;
            println!("wrote {}", path.display());
        }
        Command::Inspect { bundle } => {
            let b = Bundle::open(&bundle)?;
            let i = &b.model.input;
            println!("bundle      {} ({})", b.name, bundle.display());
            println!("model       {} sha256 {}", b.model_path(&bundle).display(), b.model.sha256);
            println!(
                "input       {} [N,3,{},{}] {:?} mean {:?} std {:?} context {}",
                i.name, i.height, i.width, i.color, i.mean, i.std, i.context
            );
            println!("output      {} [N,{}]", b.model.output.name, b.model.output.dim);
            println!("thresholds  novelty {} anomaly {}", b.score.novelty_threshold, b.score.anomaly_threshold);
            println!("classes     {}", b.classes.len());
            for c in &b.classes {
                println!("  {:>4}  {}", c.id, c.label);
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("odm-train: {e}");
            ExitCode::FAILURE
        }
    }
}
