// SPDX-License-Identifier: MIT OR Apache-2.0
//! What several commands share: `--threads`, `--designs`, and warnings on stderr.

use std::path::PathBuf;

/// `--threads` of the commands that embed data (eval, centers, plot, export, bundle).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Threads {
    /// Threads for libtorch, image decoding and ONNX Runtime (default: every core).
    #[arg(long)]
    threads: Option<usize>,
}

impl Threads {
    pub fn apply(self) -> Result<(), Box<dyn std::error::Error>> {
        if let Some(n) = self.threads {
            if n == 0 {
                return Err("--threads 0: give at least 1".into());
            }
            tch::set_num_threads(n as i32);
            rayon::ThreadPoolBuilder::new().num_threads(n).build_global()?;
            odm_trainer::eval::onnx::set_threads(n);
        }
        Ok(())
    }
}

/// Where the sign designs are.
#[derive(clap::Args)]
pub struct DesignsArg {
    /// The folder holding package_signs/ and mapping.json of mapillary_sprite_source (default: $ODM_DESIGNS, else
    /// the checkout's .deps/designs/package written by scripts/designs.sh).
    #[arg(long = "designs")]
    pub designs: Option<PathBuf>,
}

/// A line on stderr that a closed stderr (`2>&1 | head`) cannot turn into a panic (eprintln! would: exit 101).
pub fn warn_as(what: &str, line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "odm-train {what}: {line}");
}

/// `odm-train: warning: ...` on stderr, closed or not.
pub fn warn(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "odm-train: warning: {line}");
}
