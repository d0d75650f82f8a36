// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train`: the command line over the odm-trainer library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use odm_core::Bundle;

/// `--threads` of the commands that embed data (eval, centers, plot, export, bundle).
#[derive(Debug, Clone, Copy, clap::Args)]
struct Threads {
    /// Threads for libtorch, image decoding and ONNX Runtime (default: every core).
    #[arg(long)]
    threads: Option<usize>,
}

impl Threads {
    fn apply(self) -> Result<(), Box<dyn std::error::Error>> {
        if let Some(n) = self.threads {
            if n == 0 {
                return Err("--threads 0: give at least 1".into());
            }
            tch::set_num_threads(n as i32);
            rayon::ThreadPoolBuilder::new().num_threads(n).build_global()?;
            odm_trainer::train::onnx_embed::set_threads(n);
        }
        Ok(())
    }
}

/// Print a line; a closed stdout (`odm-train ... | head`) ends the command quietly instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write;
        if writeln!(std::io::stdout(), $($t)*).is_err() {
            std::process::exit(0);
        }
    }};
}

/// `centers --mode`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum EnrolMode {
    Replace,
    Add,
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
    /// The sign detector for odmdetect: render scenes, train, export ONNX (YOLOv8 layout), evaluate boxes.
    Detector {
        #[command(subcommand)]
        command: odm_trainer::detector::cli::DetectorCommand,
    },
    /// Render a synthetic dashcam drive (MP4 through GStreamer) with ground-truth ROIs (JSON lines for odmroireplay):
    /// OUT/drive.mp4 and OUT/drive.rois.jsonl.
    Clip {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 12.0)]
        seconds: f32,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 1280)]
        width: u32,
        #[arg(long, default_value_t = 720)]
        height: u32,
        #[arg(long, default_value_t = 30)]
        fps: u32,
        /// Take the known classes from this bundle's labels (default: ten classes of the shipped model).
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Unknown sign classes (comma-separated; default: six the shipped model never learnt).
        #[arg(long, value_delimiter = ',')]
        unknown: Vec<String>,
    },
    /// The paper's Table 2 for several runs side by side, from the metrics*.json files `eval` wrote.
    Table {
        /// metrics.json files (e.g. runs/odm/metrics.json runs/ce/metrics-odin.json).
        files: Vec<PathBuf>,
        /// One row of mean ± standard deviation per method and run folder, over folders that differ only by a
        /// trailing `-s<SEED>` (runs/odm-s1, runs/odm-s2, ...).
        #[arg(long)]
        mean: bool,
    },
    /// Summarise odmexport results (JSON lines): verdict counts, and by ground-truth kind (and by kind and sign
    /// category, for truth labels of the taxonomy) when --truth is given.
    Summary {
        results: PathBuf,
        /// Ground truth ROIs (as written by `odm-train clip`); also prints detection recall by sign size and
        /// precision.
        #[arg(long)]
        truth: Option<PathBuf>,
        /// Join results with the truth by ROI id (replayed boxes) or by box overlap (a live detector's boxes).
        #[arg(long = "match", value_enum, default_value = "ids")]
        how: odm_trainer::results::Match,
        /// Print the verdict counts as one JSON object (frames, rois, verdicts, by_kind, by_category, known_correct,
        /// known_total, novelty_category_correct, novelty_category_total) instead of the tables, for programs
        /// (odm-fleet).
        #[arg(long)]
        json: bool,
    },
    /// A static HTML page about a run on a clip, for people: verdicts by ground truth, distance histograms per class
    /// with the thresholds, thumbnails of the ROIs grouped by mistake and worst first. Writes OUT/index.html and
    /// OUT/thumbs/.
    Report {
        /// odmexport's JSON lines.
        results: PathBuf,
        /// The clip the results are of (for the thumbnails).
        #[arg(long)]
        clip: Option<PathBuf>,
        /// Ground truth ROIs (as written by `odm-train clip`: kind and label per box).
        #[arg(long)]
        truth: Option<PathBuf>,
        /// Join results with the truth by ROI id (replayed boxes) or by box overlap (a live detector's boxes).
        #[arg(long = "match", value_enum, default_value = "ids")]
        how: odm_trainer::results::Match,
        /// Thumbnails per group.
        #[arg(long, default_value_t = 48)]
        per_group: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Compare odmexport results with expected ones: labels and verdicts exactly, distances within --tolerance.
    /// Exit code 1 and the differences when they disagree.
    Compare {
        expected: PathBuf,
        actual: PathBuf,
        /// Largest distance difference that still agrees (0 or more).
        #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
        tolerance: f64,
    },
    /// Render the synthetic traffic-sign dataset from the real sign designs (class-per-folder trees, one folder per
    /// design, plus anomalies and a manifest).
    Synth {
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
    },
    /// Render the known and unseen designs of a training config a second, plainer way (resvg at the final size, a
    /// sideways squeeze, pasted over held-out photographs or flat colours, blur, exposure, JPEG; none of synth's
    /// camera model) into OUT/test/<design>/: a renderer-independent check for `eval --test-data OUT`.
    Plain {
        #[arg(long)]
        out: PathBuf,
        /// The training config whose `in_dist` and `unseen_ood` designs are rendered.
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 10)]
        per_design: usize,
        #[arg(long, default_value_t = 3)]
        seed: u64,
        /// Photographs to cut backgrounds from (the held-out ones: .deps/photos/heldout).
        #[arg(long)]
        photos: Option<PathBuf>,
        #[command(flatten)]
        designs: DesignsArg,
    },
    /// Write the open-set protocol over the sign designs into a training config: known = a region's catalogue,
    /// seen and unseen out-of-distribution designs = the other groups split by seed (variants of one sign stay on one
    /// side). The config's other fields are kept.
    Protocol {
        /// The region whose catalogue is known (eu, us, au, br, ca).
        #[arg(long, default_value = "eu")]
        region: String,
        /// Fraction of the other groups that are seen out-of-distribution (the paper's 20 of 50: 0.4).
        #[arg(long, default_value_t = 0.4)]
        seen_fraction: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The training config to write the lists into (created when missing).
        #[arg(long)]
        config: PathBuf,
        /// Write the validation protocol instead (for choosing networks and recipes): the seen groups split again,
        /// this fraction seen and the rest playing the unseen designs; the test's unseen designs set aside.
        #[arg(long)]
        validation: Option<f64>,
        #[command(flatten)]
        designs: DesignsArg,
    },
    /// Render a tree of out-of-distribution images to mine in training: `signlike` (sign-like unknowns for
    /// --seen-novelty-dir: numerals no class has, random glyphs and pictograms in sign shapes) or `objects`
    /// (sign-coloured non-signs for --seen-anomaly-dir: cones, clothing, doors, windows, tail lights, mirrors, panels).
    Render {
        #[arg(long, value_enum)]
        kind: odm_trainer::synth::mined::MinedKind,
        /// Output folder (one sub-folder per family).
        #[arg(long)]
        out: PathBuf,
        /// Images per family.
        #[arg(long, default_value_t = 300)]
        per_family: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Hard negatives from footage: every box of a clip (recorded ROIs or odmproposals' proposals) that overlaps no
    /// ground-truth sign, cropped with the plugin's preprocessing, as an anomaly tree (OUT/<clip>/*.png) with a
    /// manifest (OUT/mined.jsonl: clip, frame, box) for --seen-anomaly-dir.
    Mine {
        /// Any clip GStreamer can decode.
        #[arg(long)]
        clip: PathBuf,
        /// Boxes from a JSON-lines ROI file (odmroireplay's format).
        #[arg(long, conflicts_with = "proposals", required_unless_present = "proposals")]
        rois: Option<PathBuf>,
        /// Boxes from odmproposals run on the clip (the odm plugin must be on GST_PLUGIN_PATH).
        #[arg(long)]
        proposals: bool,
        /// Ground-truth boxes (JSON lines, as `odm-train clip` writes); boxes of kind "distractor" are not signs.
        #[arg(long)]
        truth: Option<PathBuf>,
        /// A box overlapping a ground-truth sign by this IoU or more is left out.
        #[arg(long, default_value_t = 0.3)]
        iou: f64,
        /// Side of the saved crops in pixels.
        #[arg(long, default_value_t = 64)]
        size: u32,
        /// Context margin around each box (the bundle's).
        #[arg(long, default_value_t = 0.1)]
        context: f32,
        #[arg(long)]
        out: PathBuf,
    },
    /// Cut anomaly patches (16-128 px windows at dashcam scale) from real photographs: one folder per photo under
    /// --out, for --seen-anomaly-dir (mined) or --anomaly-dir / eval --anomaly-dir (never trained on).
    Patches {
        /// A folder of photographs, searched recursively (repeatable).
        #[arg(long = "photos", required = true)]
        photos: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Patches per photograph.
        #[arg(long, default_value_t = 100)]
        per_photo: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
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
        #[arg(long)]
        rows_per_role: Option<usize>,
    },
    /// Read a dataset, drop classes with too few images, split its classes (explicit lists or seeded fractions that
    /// keep groups of near-identical classes together) and its samples; print the split as JSON.
    Split {
        /// Dataset root, as `train --data` takes it: a class-per-folder dataset is read at ROOT/train (or ROOT itself
        /// when it has no train/ folder); GTSRB, TT100K and IDX roots as `import` takes them.
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
    Train(Box<TrainArgs>),
    /// Evaluate a run on its test sets: metrics.json and metrics.md (the paper's Table 2 layout).
    Eval {
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
        /// must be the run's own ONNX or an export whose bundle (STEM.odm.json beside it) holds the run's centres.
        #[arg(long)]
        onnx: Option<PathBuf>,
        /// Score the known and unknown signs of ROOT/test instead of the run's own test tree (another rendering of
        /// the same designs, such as `odm-train plain`'s); the tables go to metrics-TAG.json and .md.
        #[arg(long)]
        test_data: Option<PathBuf>,
        /// Name of the --test-data tables.
        #[arg(long, default_value = "plain")]
        tag: String,
        #[command(flatten)]
        threads: Threads,
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
        /// replace: the bundle holds the classes of --data (refused when one of the run's is missing, unless
        /// --allow-drop); add: the run's classes stay and those of --data are added or re-enrolled.
        #[arg(long, value_enum, default_value = "replace")]
        mode: EnrolMode,
        /// With --mode replace: write the bundle even though classes of the run are not in --data.
        #[arg(long)]
        allow_drop: bool,
        #[command(flatten)]
        threads: Threads,
    },
    /// PCA figure of the embedding (the paper's Figure 3) and ROC curves: RUN/pca.png and RUN/roc.png.
    Plot {
        #[arg(long)]
        run: PathBuf,
        /// Points per set.
        #[arg(long, default_value_t = 300)]
        per_set: usize,
        #[command(flatten)]
        threads: Threads,
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
    /// A bundle for an embedding network odm did not train: centres and calibrated thresholds computed through ONNX
    /// Runtime with odm's scorer, checked as the plugin checks them, and the evaluation report when ROOT/test exists.
    Bundle {
        #[command(flatten)]
        options: odm_trainer::train::byo::ByoOptions,
        #[command(flatten)]
        threads: Threads,
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
        /// Write an INT8 QDQ model (int8 weights per channel, uint8 activations) calibrated on this many of the run's
        /// training crops (Wide-ResNets; the bundle says precision int8).
        #[arg(long, value_name = "CROPS", num_args = 0..=1, default_missing_value = "512", conflicts_with = "fp16")]
        int8: Option<usize>,
        /// Write float16 weights and float16 computation, float32 input and output (for CUDA and TensorRT; on CPU,
        /// ONNX Runtime casts back to float32 around the nodes it has no float16 kernel for). The bundle says
        /// precision fp16.
        #[arg(long)]
        fp16: bool,
        #[command(flatten)]
        threads: Threads,
    },
    /// List the sign designs: name, group, category, regions.
    Classes {
        #[command(flatten)]
        designs: DesignsArg,
    },
    /// Validate a bundle (and the SHA-256 of its model) and print a summary.
    Inspect {
        /// The bundle file (NAME.odm.json).
        bundle: PathBuf,
    },
}

/// Where the sign designs are.
#[derive(clap::Args)]
struct DesignsArg {
    /// The folder holding package_signs/ and mapping.json of mapillary_sprite_source (default: $ODM_DESIGNS, else
    /// the checkout's .deps/designs/package written by scripts/designs.sh).
    #[arg(long = "designs")]
    designs: Option<PathBuf>,
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

/// `train` flags. Every setting is optional here: the value comes from the flag, else from `--config FILE`, else
/// from `TrainConfig::default()` (shown in brackets), so one source holds the defaults.
#[derive(clap::Args)]
struct TrainArgs {
    /// A JSON training config (the `config.json` a run writes, or any part of it); flags override its fields.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Dataset root holding train/ and test/ class-per-folder trees.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Run folder for the weights, config, log and bundle.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    lists: ClassLists,
    /// Seen OOD classes held out of training and used only as the novelty side of the anomaly-threshold calibration
    /// (comma-separated), or `none` to hold none out [ODM: a fifth of --seen-ood, at least one, when it has three or
    /// more].
    #[arg(long, value_delimiter = ',')]
    calib_ood: Option<Vec<String>>,
    /// A class-per-folder tree of anomalies (repeatable), named after its folder: calibration and evaluation only.
    #[arg(long = "anomaly-dir")]
    anomaly_dirs: Vec<PathBuf>,
    /// A class-per-folder tree of anomalies mined as seen OOD data in training (repeatable; ODM, Eq. 2, used without
    /// labels); a calibration part and a held-out test part "NAME (seen)" are kept apart.
    #[arg(long = "seen-anomaly-dir")]
    seen_anomaly_dirs: Vec<PathBuf>,
    /// A class-per-folder tree of sign-like unknowns mined as seen OOD data (repeatable; `synth` writes signlike/).
    #[arg(long = "seen-novelty-dir")]
    seen_novelty_dirs: Vec<PathBuf>,
    /// Share of the OOD slots filled from --seen-anomaly-dir [0.25].
    #[arg(long)]
    anomaly_share: Option<f64>,
    /// Share of the OOD slots filled from --seen-novelty-dir [0.25].
    #[arg(long)]
    novelty_share: Option<f64>,
    /// Margin of the in/out pairs of mined sign-like unknowns; 0 means --margin [0].
    #[arg(long)]
    novelty_margin: Option<f64>,
    /// Weight of a cross-entropy head on the embedding (two-headed network), metric-learning methods; 0 for none [0].
    #[arg(long)]
    ce_weight: Option<f64>,
    /// odm, ml or ce [odm].
    #[arg(long, value_enum)]
    method: Option<odm_trainer::train::Method>,
    /// wrn-D-K (D = 6n+4) or lenet [wrn-10-1].
    #[arg(long)]
    arch: Option<String>,
    /// Input size, square [32].
    #[arg(long)]
    input: Option<u32>,
    /// Embedding dimension (paper: 32 for signs, 5 for MNIST) [32].
    #[arg(long)]
    embedding: Option<i64>,
    /// Training steps [2000].
    #[arg(long)]
    steps: Option<usize>,
    /// Mini-batch size [64].
    #[arg(long)]
    batch: Option<usize>,
    /// Adam learning rate (paper: 1e-4 for 10,000 steps; 1e-3 converges in the short CPU budget) [0.001].
    #[arg(long)]
    lr: Option<f64>,
    /// constant, or cosine: half a cosine from --lr down to zero over --steps [constant].
    #[arg(long, value_enum)]
    lr_schedule: Option<odm_trainer::train::LrSchedule>,
    /// Contrastive margin m [10].
    #[arg(long)]
    margin: Option<f64>,
    /// Weight of same-class pairs in the loss (paper: 25%) [0.25].
    #[arg(long)]
    same_pairs: Option<f64>,
    /// Weight of in-vs-out pairs, ODM only (paper: 25%) [0.25].
    #[arg(long)]
    in_out_pairs: Option<f64>,
    /// Average the margin terms over all pairs of their kind (the paper) or only over those inside the margin [all].
    #[arg(long, value_enum)]
    pair_mean: Option<odm_trainer::train::loss::PairMean>,
    /// Share of each batch drawn from the seen OOD classes, ODM only [0.25].
    #[arg(long)]
    ood_fraction: Option<f64>,
    /// Share of those OOD slots filled with pixel-permuted in-distribution images instead, ODM only; 0 is the
    /// paper's ODM [0.25].
    #[arg(long)]
    permuted_ood: Option<f64>,
    /// Share of each training class held out for validation and calibration [0.1].
    #[arg(long)]
    val_fraction: Option<f64>,
    /// Target TPR of the novelty threshold [0.95].
    #[arg(long)]
    tpr: Option<f64>,
    /// Context margin the plugin grows detector boxes by, written into the bundle [0.1].
    #[arg(long)]
    context: Option<f32>,
    /// Save a resumable checkpoint every N steps, 0 for never [500].
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Seed of the split, the batches and the initial weights [1].
    #[arg(long)]
    seed: Option<u64>,
    /// cpu or cuda; cuda falls back to the CPU, saying so, when no GPU is visible [cpu].
    #[arg(long)]
    device: Option<String>,
    /// Bundle name [odm-model].
    #[arg(long)]
    name: Option<String>,
    /// Continue the run in --out from its checkpoint (weights, Adam moments and step); its config.json gives every
    /// setting no flag gives (refused when the flags would change its network or its name).
    #[arg(long, conflicts_with = "force")]
    resume: bool,
    /// Replace a run already in --out (its files are removed first; without this or --resume, it is refused).
    #[arg(long)]
    force: bool,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long)]
    threads: Option<i32>,
}

impl TrainArgs {
    /// The config: `--config FILE` (or the defaults), then every flag given.
    fn config(self: Box<Self>) -> Result<odm_trainer::train::TrainConfig, Box<dyn std::error::Error>> {
        // Destructured without `..`: a flag added to TrainArgs but not applied below is an unused variable, which
        // the lint gate refuses (a flag that parses and then does nothing cannot ship).
        let TrainArgs {
            config,
            data,
            out,
            lists: ClassLists { in_dist, seen_ood, unseen_ood },
            calib_ood,
            anomaly_dirs,
            seen_anomaly_dirs,
            seen_novelty_dirs,
            anomaly_share,
            novelty_share,
            novelty_margin,
            ce_weight,
            method,
            arch,
            input,
            embedding,
            steps,
            batch,
            lr,
            lr_schedule,
            margin,
            same_pairs,
            in_out_pairs,
            pair_mean,
            ood_fraction,
            permuted_ood,
            val_fraction,
            tpr,
            context,
            checkpoint_every,
            seed,
            device,
            name,
            resume,
            force: _,
            threads: _,
        } = *self;
        // --resume without --config continues the run's own config (its name, data and network), flags on top.
        let run_config = out.join("config.json");
        // Flags that only act in ODM's mining, refused beside another --method rather than ignored.
        let mining: Vec<&str> = [
            ("--seen-anomaly-dir", !seen_anomaly_dirs.is_empty()),
            ("--seen-novelty-dir", !seen_novelty_dirs.is_empty()),
            ("--anomaly-share", anomaly_share.is_some()),
            ("--novelty-share", novelty_share.is_some()),
            ("--novelty-margin", novelty_margin.is_some()),
            ("--ood-fraction", ood_fraction.is_some()),
            ("--permuted-ood", permuted_ood.is_some()),
            ("--in-out-pairs", in_out_pairs.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect();
        let mut c = match &config {
            Some(p) => odm_trainer::train::TrainConfig::load(p)?,
            None if resume && run_config.is_file() => odm_trainer::train::TrainConfig::load(&run_config)?,
            None => Default::default(),
        };
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = $f { c.$f = v; } )* };
        }
        set!(data, calib_ood, method, arch, input, embedding, steps, batch, lr, lr_schedule, margin, same_pairs);
        set!(in_out_pairs, pair_mean, ood_fraction, permuted_ood, val_fraction, tpr, context, checkpoint_every);
        set!(seed, device, name, anomaly_share, novelty_share, novelty_margin, ce_weight);
        // Field by field: a list flag replaces that list only; a class it names leaves the other lists that come
        // from the file (so `--seen-ood stop` moves `stop` out of the file's in-distribution list).
        let given = [in_dist, seen_ood, unseen_ood];
        let mut lists =
            [std::mem::take(&mut c.in_dist), std::mem::take(&mut c.seen_ood), std::mem::take(&mut c.unseen_ood)];
        for (i, flag) in given.iter().enumerate() {
            if !flag.is_empty() {
                lists[i] = flag.clone();
            }
        }
        for (j, list) in lists.iter_mut().enumerate() {
            if given[j].is_empty() {
                list.retain(|class| !given.iter().any(|g| g.contains(class)));
            }
        }
        [c.in_dist, c.seen_ood, c.unseen_ood] = lists;
        for (dirs, to) in [
            (anomaly_dirs, &mut c.anomaly_dirs),
            (seen_anomaly_dirs, &mut c.seen_anomaly_dirs),
            (seen_novelty_dirs, &mut c.seen_novelty_dirs),
        ] {
            if !dirs.is_empty() {
                *to = dirs;
            }
        }
        if c.method != odm_trainer::train::Method::Odm && !mining.is_empty() {
            let m = format!("{:?}", c.method).to_lowercase();
            return Err(format!(
                "--method {m} mines no out-of-distribution data: {} act only with --method odm",
                mining.join(", ")
            )
            .into());
        }
        if c.data.as_os_str().is_empty() {
            return Err("no dataset: give --data ROOT (or \"data\" in --config)".into());
        }
        Ok(c)
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Detector { command } => out!("{}", odm_trainer::detector::cli::run(command)?),
        Command::Clip { out, seconds, seed, width, height, fps, bundle, unknown } => {
            let base = match bundle {
                Some(b) => odm_trainer::clip::ClipConfig::for_bundle(&odm_core::Bundle::load(&b)?),
                None => Default::default(),
            };
            let mut cfg = odm_trainer::clip::ClipConfig { seconds, seed, width, height, fps, ..base };
            if !unknown.is_empty() {
                cfg.unknown = unknown;
            }
            std::fs::create_dir_all(&out)?;
            let s = odm_trainer::clip::run(&out.join("drive.mp4"), &out.join("drive.rois.jsonl"), &cfg)?;
            out!(
                "wrote {} and {} ({} frames, {} objects, {} boxes) in {:.1} s",
                s.video.display(),
                s.rois.display(),
                s.frames,
                s.objects,
                s.boxes,
                s.seconds
            );
        }
        Command::Table { files, mean } => {
            out!("{}", odm_trainer::train::eval::table(&files, mean)?);
        }
        Command::Summary { results, truth, how, json } => {
            use odm_trainer::results as res;
            let r = res::read_some(&results)?;
            let t = truth.as_deref().map(res::read_some).transpose()?;
            for (v, n) in res::odd_verdicts(&r) {
                warn(&format!("{}: {n} ROIs have verdict {v:?}, which odmclassify never writes", results.display()));
            }
            if let Some(why) = t.as_deref().and_then(|t| res::truth_mismatch(&r, t, how)) {
                warn(&format!("--truth {}: {why}", truth.as_deref().unwrap_or(&results).display()));
            }
            let summary = odm_trainer::results::summarise_by(&r, t.as_deref(), how);
            if json {
                out!("{}", serde_json::to_string(&summary)?);
                return Ok(());
            }
            out!("{}", summary.markdown());
            out!("{}", odm_trainer::results::stability(&r).markdown());
            if let Some(t) = &t {
                out!("{}", odm_trainer::results::detection(&r, t).markdown());
            }
        }
        Command::Compare { expected, actual, tolerance } => {
            let tolerance = odm_trainer::results::check_tolerance(tolerance)?;
            let e = odm_trainer::results::read_some(&expected)?;
            let a = odm_trainer::results::read_some(&actual)?;
            let diffs = odm_trainer::results::compare(&e, &a, tolerance);
            if diffs.is_empty() {
                out!("{} frames agree with {} (distances within {tolerance})", e.len(), expected.display());
            } else {
                for d in diffs.iter().take(30) {
                    warn_as("compare", d);
                }
                return Err(format!("{} differences from {}", diffs.len(), expected.display()).into());
            }
        }
        Command::Fixture { out } => {
            let path = odm_trainer::fixture::write(&out)?;
            out!("wrote {}", path.display());
        }
        Command::Render { kind, out, per_family, seed } => {
            let start = std::time::Instant::now();
            let m = odm_trainer::synth::mined::run(&out, kind, per_family, seed)?;
            out!(
                "wrote {} families x {per_family} images to {} in {:.1} s",
                m.families.len(),
                out.display(),
                start.elapsed().as_secs_f64()
            );
        }
        Command::Mine { clip, rois, proposals: _, truth, iou, size, context, out } => {
            let boxes = match rois {
                Some(p) => odm_trainer::mine::Boxes::File(p),
                None => odm_trainer::mine::Boxes::Proposals,
            };
            let cfg = odm_trainer::mine::MineConfig { clip, boxes, truth, iou, size, context, out };
            let s = odm_trainer::mine::run(&cfg)?;
            out!(
                "{} frames, {} boxes, {} on ground-truth signs: wrote {} negatives to {}",
                s.frames,
                s.boxes,
                s.overlapping,
                s.written,
                cfg.out.display()
            );
        }
        Command::Patches { photos, out, per_photo, seed } => {
            let m = odm_trainer::data::patches::run(&photos, &out, per_photo, seed)?;
            out!("wrote {} photos x {per_photo} patches to {}", m.photos.len(), out.display());
        }
        Command::Synth {
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
        } => {
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
        }
        Command::Sheet { data, out, per_class, rows_per_role } => {
            let rows = odm_trainer::data::sheet_rows(&data, per_class, rows_per_role.unwrap_or(usize::MAX))?;
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
            use odm_trainer::train::run::Existing;
            let out = a.out.clone();
            let existing = match (a.resume, a.force) {
                (true, _) => Existing::Resume,
                (_, true) => Existing::Replace,
                _ => Existing::Refuse,
            };
            let cfg = a.config()?;
            let start = std::time::Instant::now();
            let bundle = odm_trainer::train::run::train(&cfg, &out, true, existing)?;
            out!("wrote {} in {:.1} s", bundle.display(), start.elapsed().as_secs_f64());
        }
        Command::Eval { run, noise, anomaly_dirs, onnx, test_data, tag, threads } => {
            threads.apply()?;
            let td = test_data.as_deref().map(|root| odm_trainer::train::eval::TestData { root, tag: &tag });
            for m in odm_trainer::train::eval::eval_full(&run, noise, &anomaly_dirs, onnx.as_deref(), td)? {
                out!("{}", m.markdown());
            }
        }
        Command::Import { data, format, out, test_fraction, margin, seed } => {
            let (a, b) = odm_trainer::data::import::import(&data, format, &out, test_fraction, margin, seed)?;
            out!("wrote {a} training and {b} test images to {}", out.display());
        }
        Command::Centers { run, data, in_dist, seen_ood, anomaly_dirs, out, mode, allow_drop, threads } => {
            threads.apply()?;
            use odm_trainer::train::bundle::{centers, Enrol};
            let mode = match mode {
                EnrolMode::Replace => Enrol::Replace { allow_drop },
                EnrolMode::Add if allow_drop => {
                    return Err("--allow-drop is for --mode replace: --mode add drops no class".into())
                }
                EnrolMode::Add => Enrol::Add,
            };
            let e = centers(&run, &data, in_dist, seen_ood, anomaly_dirs, &out, mode)?;
            if !e.dropped.is_empty() {
                eprintln!(
                    "odm-train: warning: --allow-drop: {} classes of the run are not in the bundle",
                    e.dropped.len()
                );
            }
            out!(
                "wrote {}: {} kept, {} added, {} re-enrolled, {} dropped",
                e.bundle.display(),
                e.kept.len(),
                e.added.len(),
                e.reenrolled.len(),
                e.dropped.len()
            );
        }
        Command::Plot { run, per_set, threads } => {
            threads.apply()?;
            let p = odm_trainer::plot::plot_run(&run, per_set)?;
            out!("wrote {} and {}", p.pca.display(), p.roc.display());
        }
        Command::Bench { arch, input, embedding, batch, steps, threads } => {
            tch::set_num_threads(threads);
            let arch = arch.parse().map_err(odm_trainer::TrainError::Config)?;
            let (ips, sps, mib) = odm_trainer::train::bench::bench(arch, input, embedding, batch, steps, 3)?;
            out!("| runtime | network | input | embedding | batch | threads | steps | img/s | s/step | peak RSS MiB |");
            out!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            out!(
                "| odm-tch | {arch} | {input}x{input} | {embedding} | {batch} | {threads} | {steps} | {ips:.1} | {sps:.4} \
                 | {mib:.0} |"
            );
        }
        Command::Export { run, out, name, int8, fp16, threads } => {
            threads.apply()?;
            use odm_trainer::train::bundle::Precision;
            let precision = match (int8, fp16) {
                (Some(n), _) => Precision::Int8(n),
                (None, true) => Precision::Fp16,
                (None, false) => Precision::Fp32,
            };
            let b = odm_trainer::train::bundle::export(&run, &out, name, precision)?;
            out!("wrote {}", b.display());
        }
        Command::Bundle { options: o, threads } => {
            threads.apply()?;
            use odm_trainer::train::byo::bundle_onnx;
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
        }
        Command::Report { results, clip, truth, how, per_group, out } => {
            let o = odm_trainer::report::ReportOptions { results, clip, truth, matching: how, per_group, out };
            let index = odm_trainer::report::write(&o)?;
            out!("wrote {}", index.display());
        }
        Command::Classes { designs } => {
            let catalogue = odm_trainer::synth::designs::Catalogue::open(designs.designs.as_deref())?;
            for d in &catalogue.designs {
                out!("{:<64} {:<14} {}", d.name, d.category.as_str(), d.regions.join(","));
            }
        }
        Command::Plain { out, config, per_design, seed, photos, designs } => {
            let catalogue = odm_trainer::synth::designs::Catalogue::open(designs.designs.as_deref())?;
            let c = odm_trainer::train::config::TrainConfig::load(&config)?;
            let plain = odm_trainer::synth::plain::PlainConfig {
                seed,
                per_design,
                designs: c.in_dist.iter().chain(&c.unseen_ood).cloned().collect(),
                photos,
            };
            let n = odm_trainer::synth::plain::run(&out, &plain, &catalogue)?;
            out!("wrote {n} plain renders of {} designs to {}", plain.designs.len(), out.join("test").display());
        }
        Command::Protocol { region, seen_fraction, seed, config, validation, designs } => {
            let catalogue = odm_trainer::synth::designs::Catalogue::open(designs.designs.as_deref())?;
            let mut p = odm_trainer::synth::protocol::build(&catalogue, &region, seen_fraction, seed)?;
            if let Some(f) = validation {
                p = odm_trainer::synth::protocol::validation(&p, f, seed)?;
            }
            let w = odm_trainer::synth::protocol::write_into(&p, &config)?;
            out!(
                "{}: {} known, {} seen OOD, {} unseen, {} aside ({} designs, region {region}, seed {seed})",
                config.display(),
                p.in_dist.len(),
                p.seen_ood.len(),
                p.unseen_ood.len(),
                p.aside.len(),
                w
            );
        }
        Command::Inspect { bundle } => {
            let b = Bundle::open(&bundle)?;
            // The network as ONNX Runtime sees it must be the one the bundle describes (input, output, dimension).
            odm_trainer::train::byo::check_network(&b, &bundle)?;
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
            if b.novelty_collapsed() {
                out!("WARNING     {}", odm_trainer::train::calibrate::COLLAPSE_WARNING);
            }
            out!("classes     {}", b.classes.len());
            for c in &b.classes {
                out!("  {:>4}  {}", c.id, c.label);
            }
        }
    }
    Ok(())
}

/// A line on stderr that a closed stderr (`2>&1 | head`) cannot turn into a panic (eprintln! would: exit 101).
fn warn_as(what: &str, line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "odm-train {what}: {line}");
}

/// `odm-train: warning: ...` on stderr, closed or not.
fn warn(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "odm-train: warning: {line}");
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "odm-train: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_training_setting_has_a_train_flag() {
        let cmd = Cli::command();
        let train = cmd.find_subcommand("train").expect("a train subcommand");
        let flags: Vec<&str> = train.get_arguments().filter_map(|a| a.get_long()).collect();
        let config = serde_json::to_value(odm_trainer::train::TrainConfig::default()).unwrap();
        let keys: Vec<&String> = config.as_object().expect("a JSON object").keys().collect();
        assert!(keys.len() > 20, "{keys:?}");
        for key in keys {
            let flag = match key.as_str() {
                "in_dist" => "in".to_owned(),
                // Repeatable folder flags are named in the singular.
                k if k.ends_with("_dirs") => k.trim_end_matches('s').replace('_', "-"),
                k => k.replace('_', "-"),
            };
            assert!(flags.contains(&flag.as_str()), "config field {key:?} has no --{flag}");
        }
    }

    #[test]
    fn train_flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.json");
        std::fs::write(&file, r#"{"data": "d", "steps": 5, "pair_mean": "all", "lr_schedule": "constant"}"#).unwrap();
        let cli = Cli::try_parse_from([
            "odm-train",
            "train",
            "--config",
            file.to_str().unwrap(),
            "--out",
            "o",
            "--pair-mean",
            "active",
            "--lr-schedule",
            "cosine",
            "--permuted-ood",
            "0.5",
        ])
        .unwrap();
        let Command::Train(a) = cli.command else { panic!("not train") };
        let c = a.config().unwrap();
        assert_eq!(c.steps, 5, "from the file");
        assert_eq!(c.pair_mean, odm_trainer::train::loss::PairMean::Active);
        assert_eq!(c.lr_schedule, odm_trainer::train::LrSchedule::Cosine);
        assert_eq!(c.permuted_ood, 0.5);
    }
}
