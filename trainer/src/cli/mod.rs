// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `odm-train` command line over the odm-trainer library: the grammar, one file per command (its clap arguments
//! and its `run`); what several share is in [`shared`]. `out!` prints a line of a command's output.

use clap::{Parser, Subcommand};

/// Print a line; a closed stdout (`odm-train ... | head`) ends the command quietly instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write;
        if writeln!(std::io::stdout(), $($t)*).is_err() {
            std::process::exit(0);
        }
    }};
}

pub mod bench;
pub mod bundle;
pub mod centers;
pub mod classes;
pub mod clip;
pub mod compare;
pub mod detector;
pub mod eval;
pub mod export;
pub mod fixture;
pub mod import;
pub mod inspect;
pub mod mine;
pub mod patches;
pub mod plain;
pub mod plot;
pub mod protocol;
pub mod render;
pub mod report;
pub mod shared;
pub mod sheet;
pub mod split;
pub mod summary;
pub mod synth;
pub mod table;
pub mod train;

#[derive(Parser)]
#[command(name = "odm-train", version, about = "Train, evaluate and export odm open-set sign classifiers")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Write the hand-built `colors` test model (colors.onnx + colors.odm.json) into a folder.
    Fixture(fixture::Args),
    /// The sign detector for odmdetect: render scenes, train, export ONNX (YOLOv8 layout), evaluate boxes.
    Detector(detector::Args),
    /// Render a synthetic dashcam drive (MP4 through GStreamer) with ground-truth ROIs (JSON lines for odmroireplay):
    /// OUT/drive.mp4 and OUT/drive.rois.jsonl.
    Clip(clip::Args),
    /// The paper's Table 2 for several runs side by side, from the metrics*.json files `eval` wrote.
    Table(table::Args),
    /// Summarise odmexport results (JSON lines): verdict counts, and by ground-truth kind (and by kind and sign
    /// category, for truth labels of the taxonomy) when --truth is given.
    Summary(summary::Args),
    /// A static HTML page about a run on a clip, for people: verdicts by ground truth, distance histograms per class
    /// with the thresholds, thumbnails of the ROIs grouped by mistake and worst first. Writes OUT/index.html and
    /// OUT/thumbs/.
    Report(report::Args),
    /// Compare odmexport results with expected ones: labels and verdicts exactly, distances within --tolerance.
    /// Exit code 1 and the differences when they disagree.
    Compare(compare::Args),
    /// Render the synthetic traffic-sign dataset from the real sign designs (class-per-folder trees, one folder per
    /// design, plus anomalies and a manifest).
    Synth(synth::Args),
    /// Render the known and unseen designs of a training config a second, plainer way (resvg at the final size, a
    /// sideways squeeze, pasted over held-out photographs or flat colours, blur, exposure, JPEG; none of synth's
    /// camera model) into OUT/test/<design>/: a renderer-independent check for `eval --test-data OUT`.
    Plain(plain::Args),
    /// Write the open-set protocol over the sign designs into a training config: known = a region's catalogue,
    /// seen and unseen out-of-distribution designs = the other groups split by seed (variants of one sign stay on one
    /// side). The config's other fields are kept.
    Protocol(protocol::Args),
    /// Render a tree of out-of-distribution images to mine in training: `signlike` (sign-like unknowns for
    /// --seen-novelty-dir: numerals no class has, random glyphs and pictograms in sign shapes) or `objects`
    /// (sign-coloured non-signs for --seen-anomaly-dir: cones, clothing, doors, windows, tail lights, mirrors, panels).
    Render(render::Args),
    /// Hard negatives from footage: every box of a clip (recorded ROIs or odmproposals' proposals) that overlaps no
    /// ground-truth sign, cropped with the plugin's preprocessing, as an anomaly tree (OUT/<clip>/*.png) with a
    /// manifest (OUT/mined.jsonl: clip, frame, box) for --seen-anomaly-dir.
    Mine(mine::Args),
    /// Cut anomaly patches (16-128 px windows at dashcam scale) from real photographs: one folder per photo under
    /// --out, for --seen-anomaly-dir (mined) or --anomaly-dir / eval --anomaly-dir (never trained on).
    Patches(patches::Args),
    /// Contact sheet of a dataset: a row of samples per class, in-distribution, novelty and anomaly rows labelled.
    Sheet(sheet::Args),
    /// Read a dataset, drop classes with too few images, split its classes (explicit lists or seeded fractions that
    /// keep groups of near-identical classes together) and its samples; print the split as JSON.
    Split(split::Args),
    /// Train an embedding network (ODM, ML, or a cross-entropy baseline), calibrate, and write the bundle.
    Train(Box<train::Args>),
    /// Evaluate a run on its test sets: metrics.json and metrics.md (the paper's Table 2 layout).
    Eval(eval::Args),
    /// Convert a dataset (GTSRB, TT100K, IDX, folders) into the train/ + test/ class-per-folder layout `train` reads.
    Import(import::Args),
    /// New centres and thresholds for a trained run from another dataset (data/train/<class>/), without retraining:
    /// how a new class is enrolled. Writes NAME.onnx and NAME.odm.json into --out.
    Centers(centers::Args),
    /// PCA figure of the embedding (the paper's Figure 3) and ROC curves: RUN/pca.png and RUN/roc.png.
    Plot(plot::Args),
    /// Training speed on fixed random batches (compare with trainer/bench/torch_ref.py through trainer/bench/run.sh).
    Bench(bench::Args),
    /// A bundle for an embedding network odm did not train: centres and calibrated thresholds computed through ONNX
    /// Runtime with odm's scorer, checked as the plugin checks them, and the evaluation report when ROOT/test exists.
    Bundle(bundle::Args),
    /// Export a run's network (ONNX, BatchNorm folded, dynamic batch) and its bundle into a folder.
    Export(export::Args),
    /// List the sign designs: name, group, category, regions.
    Classes(classes::Args),
    /// Validate a bundle (and the SHA-256 of its model) and print a summary.
    Inspect(inspect::Args),
}

impl Command {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        match self {
            Command::Fixture(a) => a.run(),
            Command::Detector(a) => a.run(),
            Command::Clip(a) => a.run(),
            Command::Table(a) => a.run(),
            Command::Summary(a) => a.run(),
            Command::Report(a) => a.run(),
            Command::Compare(a) => a.run(),
            Command::Synth(a) => a.run(),
            Command::Plain(a) => a.run(),
            Command::Protocol(a) => a.run(),
            Command::Render(a) => a.run(),
            Command::Mine(a) => a.run(),
            Command::Patches(a) => a.run(),
            Command::Sheet(a) => a.run(),
            Command::Split(a) => a.run(),
            Command::Train(a) => a.run(),
            Command::Eval(a) => a.run(),
            Command::Import(a) => a.run(),
            Command::Centers(a) => a.run(),
            Command::Plot(a) => a.run(),
            Command::Bench(a) => a.run(),
            Command::Bundle(a) => a.run(),
            Command::Export(a) => a.run(),
            Command::Classes(a) => a.run(),
            Command::Inspect(a) => a.run(),
        }
    }
}
