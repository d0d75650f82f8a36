// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train`: the command line over the odm-trainer library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use odm_core::Bundle;

/// Print a line; a closed stdout (`odm-train ... | head`) ends the command quietly instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write;
        if writeln!(std::io::stdout(), $($t)*).is_err() {
            std::process::exit(0);
        }
    }};
}

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
    /// Render the synthetic traffic-sign dataset (class-per-folder trees plus anomalies and a manifest).
    Synth {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Sign crops per class in train/.
        #[arg(long, default_value_t = 200)]
        train_per_class: usize,
        /// Sign crops per class in test/.
        #[arg(long, default_value_t = 50)]
        test_per_class: usize,
        /// Background patches (anomalies), shared among the scenes.
        #[arg(long, default_value_t = 2000)]
        background: usize,
        /// Gaussian noise images (anomalies).
        #[arg(long, default_value_t = 500)]
        noise: usize,
        /// Only these classes (comma-separated; default: all).
        #[arg(long, value_delimiter = ',')]
        classes: Vec<String>,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Contact sheet of a dataset: a row of samples per class, in-distribution, novelty and anomaly rows labelled.
    Sheet {
        /// Dataset root (as written by `synth`: train/, background/, noise/).
        #[arg(long)]
        data: PathBuf,
        /// Output PNG.
        #[arg(long)]
        out: PathBuf,
        /// Samples per row.
        #[arg(long, default_value_t = 10)]
        per_class: usize,
        /// Most rows per role (in-distribution, seen-ood, novelty, each anomaly set); default: all.
        #[arg(long, default_value_t = usize::MAX)]
        rows_per_role: usize,
    },
    /// Read a dataset, drop classes with too few images, split its classes (explicit lists or seeded fractions that
    /// keep groups of near-identical classes together) and its samples; print the split as JSON.
    Split {
        /// Dataset root.
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
    },
    /// Train an embedding network (ODM, ML, or a cross-entropy baseline), calibrate, and write the bundle.
    Train(TrainArgs),
    /// Evaluate a run on its test sets: metrics.json and metrics.md (the paper's Table 2 layout).
    Eval {
        /// The run folder written by `train`.
        #[arg(long)]
        run: PathBuf,
        /// Gaussian noise images in the `noise` set.
        #[arg(long, default_value_t = 500)]
        noise: usize,
    },
    /// Convert a dataset (GTSRB, TT100K, IDX, folders) into the train/ + test/ class-per-folder layout `train` reads.
    Import {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_enum)]
        format: odm_trainer::data::Format,
        #[arg(long)]
        out: PathBuf,
        /// Share of each class put in test/ (IDX train-*/t10k-* folders keep their own split).
        #[arg(long, default_value_t = 0.2)]
        test_fraction: f64,
        /// Margin added around annotated boxes, as a fraction of the box.
        #[arg(long, default_value_t = 0.1)]
        margin: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// New centres and thresholds for a trained run from another dataset (data/train/<class>/), without retraining:
    /// how a new class is enrolled. Writes NAME.onnx and NAME.odm.json into --out.
    Centers {
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
    },
    /// PCA figure of the embedding (the paper's Figure 3) and ROC curves: RUN/pca.png and RUN/roc.png.
    Plot {
        #[arg(long)]
        run: PathBuf,
        /// Points per set.
        #[arg(long, default_value_t = 300)]
        per_set: usize,
    },
    /// Training speed on fixed random batches (compare with trainer/bench/torch_ref.py through trainer/bench/run.sh).
    Bench {
        #[arg(long, default_value = "wrn-10-1")]
        arch: String,
        #[arg(long, default_value_t = 32)]
        input: i64,
        #[arg(long, default_value_t = 32)]
        embedding: i64,
        #[arg(long, default_value_t = 64)]
        batch: i64,
        #[arg(long, default_value_t = 30)]
        steps: usize,
        #[arg(long, default_value_t = 2)]
        threads: i32,
    },
    /// Export a run's network (ONNX, BatchNorm folded, dynamic batch) and its bundle into a folder.
    Export {
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Bundle name (default: the run's).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the classes of the synthetic world with their groups.
    Classes,
    /// Validate a bundle (and the SHA-256 of its model) and print a summary.
    Inspect {
        /// The bundle file (NAME.odm.json).
        bundle: PathBuf,
    },
}

/// The class lists of a split; without any, classes are split by fractions (the paper's 50/20/30) keeping groups.
#[derive(clap::Args)]
struct ClassLists {
    /// In-distribution classes (comma-separated).
    #[arg(long = "in", value_delimiter = ',')]
    in_dist: Vec<String>,
    /// Seen out-of-distribution classes (ODM pushes them away from every class in training).
    #[arg(long, value_delimiter = ',')]
    seen_ood: Vec<String>,
    /// Unseen out-of-distribution classes (novelty; evaluation only).
    #[arg(long, value_delimiter = ',')]
    unseen_ood: Vec<String>,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Dataset root holding train/ and test/ class-per-folder trees.
    #[arg(long)]
    data: PathBuf,
    /// Run folder for the weights, config, log and bundle.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    lists: ClassLists,
    /// A class-per-folder tree of anomalies (repeatable), named after its folder.
    #[arg(long = "anomaly-dir")]
    anomaly_dirs: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "odm")]
    method: odm_trainer::train::run::Method,
    /// wrn-D-K (D = 6n+4) or lenet.
    #[arg(long, default_value = "wrn-10-1")]
    arch: String,
    /// Input size (square).
    #[arg(long, default_value_t = 32)]
    input: u32,
    /// Embedding dimension (paper: 32 for signs, 5 for MNIST).
    #[arg(long, default_value_t = 32)]
    embedding: i64,
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Adam learning rate (paper: 1e-4 for 10,000 steps; 1e-3 converges in the short CPU budget).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Contrastive margin m.
    #[arg(long, default_value_t = 10.0)]
    margin: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// cpu or cuda (falls back to the CPU, saying so, when no GPU is visible).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Bundle name.
    #[arg(long, default_value = "odm-model")]
    name: String,
    /// Continue from the run folder's checkpoint.
    #[arg(long)]
    resume: bool,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long)]
    threads: Option<i32>,
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Fixture { out } => {
            let path = odm_trainer::fixture::write(&out)?;
            out!("wrote {}", path.display());
        }
        Command::Synth { out, seed, train_per_class, test_per_class, background, noise, classes, threads } => {
            if let Some(n) = threads {
                rayon::ThreadPoolBuilder::new().num_threads(n).build_global()?;
            }
            let config = odm_trainer::synth::SynthConfig {
                seed,
                train_per_class,
                test_per_class,
                background,
                noise,
                classes,
                ..Default::default()
            };
            let start = std::time::Instant::now();
            let m = odm_trainer::synth::run(&out, &config, std::io::IsTerminal::is_terminal(&std::io::stderr()))?;
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
        }
        Command::Sheet { data, out, per_class, rows_per_role } => {
            let rows = odm_trainer::data::sheet_rows(&data, per_class, rows_per_role)?;
            odm_trainer::sheet::write(&rows, &out)?;
            out!("wrote {} ({} rows)", out.display(), rows.len());
        }
        Command::Split { data, format, lists, fractions, samples, seed, min_per_class } => {
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
        }
        Command::Train(a) => {
            if let Some(n) = a.threads {
                tch::set_num_threads(n);
            }
            let cfg = odm_trainer::train::run::TrainConfig {
                data: a.data,
                in_dist: a.lists.in_dist,
                seen_ood: a.lists.seen_ood,
                unseen_ood: a.lists.unseen_ood,
                anomaly_dirs: a.anomaly_dirs,
                method: a.method,
                arch: a.arch,
                input: a.input,
                embedding: a.embedding,
                steps: a.steps,
                batch: a.batch,
                lr: a.lr,
                margin: a.margin,
                seed: a.seed,
                device: a.device,
                name: a.name,
                ..Default::default()
            };
            let start = std::time::Instant::now();
            let bundle = odm_trainer::train::run::train(
                &cfg,
                &a.out,
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
                a.resume,
            )?;
            out!("wrote {} in {:.1} s", bundle.display(), start.elapsed().as_secs_f64());
        }
        Command::Eval { run, noise } => {
            for m in odm_trainer::train::eval::eval(&run, noise)? {
                out!("{}", m.markdown());
            }
        }
        Command::Import { data, format, out, test_fraction, margin, seed } => {
            let (a, b) = odm_trainer::data::import::import(&data, format, &out, test_fraction, margin, seed)?;
            out!("wrote {a} training and {b} test images to {}", out.display());
        }
        Command::Centers { run, data, in_dist, seen_ood, anomaly_dirs, out } => {
            let b = odm_trainer::train::run::centers(&run, &data, in_dist, seen_ood, anomaly_dirs, &out)?;
            out!("wrote {}", b.display());
        }
        Command::Plot { run, per_set } => {
            for p in odm_trainer::plot::plot_run(&run, per_set)? {
                out!("wrote {}", p.display());
            }
        }
        Command::Bench { arch, input, embedding, batch, steps, threads } => {
            tch::set_num_threads(threads);
            let arch = arch.parse().map_err(odm_trainer::TrainError::Config)?;
            let (ips, sps, mib) = odm_trainer::train::bench::bench(arch, input, embedding, batch, steps, 3)?;
            out!("odm-tch {ips:.1} {sps:.4} {mib:.0}");
        }
        Command::Export { run, out, name } => {
            let b = odm_trainer::train::run::export(&run, &out, name)?;
            out!("wrote {}", b.display());
        }
        Command::Classes => {
            for d in odm_trainer::synth::designs::catalogue() {
                out!("{:<28} {}", d.name, d.group);
            }
        }
        Command::Inspect { bundle } => {
            let b = Bundle::open(&bundle)?;
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
            out!("classes     {}", b.classes.len());
            for c in &b.classes {
                out!("  {:>4}  {}", c.id, c.label);
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
