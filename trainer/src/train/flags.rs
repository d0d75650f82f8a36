// SPDX-License-Identifier: MIT OR Apache-2.0
//! `train`'s flags and how they make a [`TrainConfig`]: each setting from its flag, else from `--config FILE` (or,
//! with `--resume`, the run's own `config.json`), else from the defaults.

use std::path::PathBuf;

use super::config::{LrSchedule, Method, TrainConfig};
use super::loss::PairMean;
use crate::error::FlagsError;

/// The class lists of a split; without any, classes are split by fractions (the paper's 50/20/30) keeping groups.
#[derive(clap::Args)]
pub struct ClassLists {
    /// In-distribution classes (comma-separated).
    #[arg(long = "in", value_delimiter = ',')]
    pub in_dist: Vec<String>,
    /// Seen out-of-distribution classes (ODM pushes them away from every class in training).
    #[arg(long, value_delimiter = ',')]
    pub seen_ood: Vec<String>,
    /// Unseen out-of-distribution classes (novelty; evaluation only).
    #[arg(long, value_delimiter = ',')]
    pub unseen_ood: Vec<String>,
}

/// `train`'s flags (all but `--threads`). Every setting is optional here: the value comes from the flag, else from
/// `--config FILE`, else from `TrainConfig::default()` (shown in brackets), so one source holds the defaults.
#[derive(clap::Args)]
pub struct TrainFlags {
    /// A JSON training config (the `config.json` a run writes, or any part of it); flags override its fields.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Dataset root holding train/ and test/ class-per-folder trees.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run folder for the weights, config, log and bundle.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub lists: ClassLists,
    /// Seen OOD classes held out of training and used only as the novelty side of the anomaly-threshold calibration
    /// (comma-separated), or `none` to hold none out [ODM: a fifth of --seen-ood, at least one, when it has three or
    /// more].
    #[arg(long, value_delimiter = ',')]
    pub calib_ood: Option<Vec<String>>,
    /// A class-per-folder tree of anomalies (repeatable), named after its folder: calibration and evaluation only.
    #[arg(long = "anomaly-dir")]
    pub anomaly_dirs: Vec<PathBuf>,
    /// A class-per-folder tree of anomalies mined as seen OOD data in training (repeatable; ODM, Eq. 2, used without
    /// labels); a calibration part and a held-out test part "NAME (seen)" are kept apart.
    #[arg(long = "seen-anomaly-dir")]
    pub seen_anomaly_dirs: Vec<PathBuf>,
    /// A class-per-folder tree of sign-like unknowns mined as seen OOD data (repeatable; `synth` writes signlike/).
    #[arg(long = "seen-novelty-dir")]
    pub seen_novelty_dirs: Vec<PathBuf>,
    /// Share of the OOD slots filled from --seen-anomaly-dir [0.25].
    #[arg(long)]
    pub anomaly_share: Option<f64>,
    /// Share of the OOD slots filled from --seen-novelty-dir [0.25].
    #[arg(long)]
    pub novelty_share: Option<f64>,
    /// Margin of the in/out pairs of mined sign-like unknowns; 0 means --margin [0].
    #[arg(long)]
    pub novelty_margin: Option<f64>,
    /// Weight of a cross-entropy head on the embedding (two-headed network), metric-learning methods; 0 for none [0].
    #[arg(long)]
    pub ce_weight: Option<f64>,
    /// odm, ml or ce [odm].
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    /// wrn-D-K (D = 6n+4) or lenet [wrn-10-1].
    #[arg(long)]
    pub arch: Option<String>,
    /// Input size, square [32].
    #[arg(long)]
    pub input: Option<u32>,
    /// Embedding dimension (paper: 32 for signs, 5 for MNIST) [32].
    #[arg(long)]
    pub embedding: Option<i64>,
    /// Training steps [2000].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Mini-batch size [64].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Adam learning rate (paper: 1e-4 for 10,000 steps; 1e-3 converges in the short CPU budget) [0.001].
    #[arg(long)]
    pub lr: Option<f64>,
    /// constant, or cosine: half a cosine from --lr down to zero over --steps [constant].
    #[arg(long, value_enum)]
    pub lr_schedule: Option<LrSchedule>,
    /// Contrastive margin m [10].
    #[arg(long)]
    pub margin: Option<f64>,
    /// Weight of same-class pairs in the loss (paper: 25%) [0.25].
    #[arg(long)]
    pub same_pairs: Option<f64>,
    /// Weight of in-vs-out pairs, ODM only (paper: 25%) [0.25].
    #[arg(long)]
    pub in_out_pairs: Option<f64>,
    /// Average the margin terms over all pairs of their kind (the paper) or only over those inside the margin [all].
    #[arg(long, value_enum)]
    pub pair_mean: Option<PairMean>,
    /// Share of each batch drawn from the seen OOD classes, ODM only [0.25].
    #[arg(long)]
    pub ood_fraction: Option<f64>,
    /// Share of those OOD slots filled with pixel-permuted in-distribution images instead, ODM only; 0 is the
    /// paper's ODM [0.25].
    #[arg(long)]
    pub permuted_ood: Option<f64>,
    /// Share of each training class held out for validation and calibration [0.1].
    #[arg(long)]
    pub val_fraction: Option<f64>,
    /// Target TPR of the novelty threshold [0.95].
    #[arg(long)]
    pub tpr: Option<f64>,
    /// Context margin the plugin grows detector boxes by, written into the bundle [0.1].
    #[arg(long)]
    pub context: Option<f32>,
    /// Save a resumable checkpoint every N steps, 0 for never [500].
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Seed of the split, the batches and the initial weights [1].
    #[arg(long)]
    pub seed: Option<u64>,
    /// cpu or cuda; cuda falls back to the CPU, saying so, when no GPU is visible [cpu].
    #[arg(long)]
    pub device: Option<String>,
    /// Bundle name [odm-model].
    #[arg(long)]
    pub name: Option<String>,
    /// Continue the run in --out from its checkpoint (weights, Adam moments and step); its config.json gives every
    /// setting no flag gives (refused when the flags would change its network or its name).
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    /// Replace a run already in --out (its files are removed first; without this or --resume, it is refused).
    #[arg(long)]
    pub force: bool,
}

impl TrainFlags {
    /// The config: `--config FILE` (or the defaults), then every flag given.
    pub fn config(self) -> Result<TrainConfig, FlagsError> {
        // Destructured without `..`: a flag added to TrainFlags but not applied below is an unused variable, which
        // the lint gate refuses (a flag that parses and then does nothing cannot ship).
        let TrainFlags {
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
        } = self;
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
            Some(p) => TrainConfig::load(p)?,
            None if resume && run_config.is_file() => TrainConfig::load(&run_config)?,
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
        if c.method != Method::Odm && !mining.is_empty() {
            let method = format!("{:?}", c.method).to_lowercase();
            return Err(FlagsError::MiningWithoutOdm { method, flags: mining.join(", ") });
        }
        if c.data.as_os_str().is_empty() {
            return Err(FlagsError::NoData);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Train {
        #[command(flatten)]
        flags: TrainFlags,
    }

    #[test]
    fn every_training_setting_has_a_train_flag() {
        let cmd = Train::command();
        let flags: Vec<&str> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
        let config = serde_json::to_value(TrainConfig::default()).unwrap();
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
        let t = Train::try_parse_from([
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
        let c = t.flags.config().unwrap();
        assert_eq!(c.steps, 5, "from the file");
        assert_eq!(c.pair_mean, PairMean::Active);
        assert_eq!(c.lr_schedule, LrSchedule::Cosine);
        assert_eq!(c.permuted_ood, 0.5);
    }

    #[test]
    fn mining_flags_need_odm_and_a_dataset_is_needed() {
        let parse = |args: &[&str]| Train::try_parse_from(["train", "--out", "o"].iter().chain(args)).unwrap();
        let e = parse(&["--data", "d", "--method", "ce", "--permuted-ood", "0.5"]).flags.config().unwrap_err();
        assert_eq!(
            e.to_string(),
            "--method ce mines no out-of-distribution data: --permuted-ood act only with --method odm"
        );
        assert_eq!(
            parse(&[]).flags.config().unwrap_err().to_string(),
            "no dataset: give --data ROOT (or \"data\" in --config)"
        );
    }
}
