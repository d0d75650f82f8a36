// SPDX-License-Identifier: MIT OR Apache-2.0
//! Finding and loading the ONNX Runtime library, and the process-wide ORT environment.
//!
//! ort is built with `load-dynamic`: the library is opened at run time with `ort::init_from`, never through
//! ort's implicit `ORT_DYLIB_PATH` loader (which panics when the library is missing). Candidates, in order:
//!
//! 1. the element's `ort-library` property;
//! 2. the `ORT_DYLIB_PATH` environment variable;
//! 3. the project's bootstrap folder: `$ODM_ORT_DIR/libonnxruntime.so` when that variable is set, else the
//!    checkout's `.deps/onnxruntime/libonnxruntime.so` (filled by `scripts/bootstrap.sh`; path fixed at build time);
//! 4. the system loader path (`libonnxruntime.so.1`, then `libonnxruntime.so`).
//!
//! ONNX Runtime allows one environment per process (even after the first is dropped), so the first one that loads
//! is kept for the life of the process and shared by every element.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where bootstrap puts the library (set by build.rs).
pub const BOOTSTRAP_LIBRARY: &str = env!("ODM_BOOTSTRAP_ORT_LIBRARY");

struct Loaded {
    env: ort::environment::Environment,
    path: PathBuf,
}

static ENV: Mutex<Option<Loaded>> = Mutex::new(None);

/// Every candidate, in lookup order, with where it came from.
pub fn candidates(property: Option<&Path>) -> Vec<(String, PathBuf)> {
    let mut v = Vec::new();
    if let Some(p) = property {
        v.push(("property ort-library".to_owned(), p.to_owned()));
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        v.push(("ORT_DYLIB_PATH".to_owned(), PathBuf::from(p)));
    }
    match std::env::var_os("ODM_ORT_DIR") {
        Some(dir) => {
            v.push(("bootstrap folder from ODM_ORT_DIR".to_owned(), PathBuf::from(dir).join("libonnxruntime.so")))
        }
        None => v.push(("bootstrap folder".to_owned(), PathBuf::from(BOOTSTRAP_LIBRARY))),
    }
    v.push(("system loader path".to_owned(), PathBuf::from("libonnxruntime.so.1")));
    v.push(("system loader path".to_owned(), PathBuf::from("libonnxruntime.so")));
    v
}

/// Why no ONNX Runtime library could be loaded: every candidate and what happened to it.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    pub attempts: Vec<(String, PathBuf, String)>,
}

impl std::fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no usable ONNX Runtime library (run scripts/bootstrap.sh, or set ORT_DYLIB_PATH or ort-library); tried:"
        )?;
        for (source, path, why) in &self.attempts {
            write!(f, "\n  {} ({source}): {why}", path.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadFailure {}

/// The loader's own reason: ort's Display of a dlopen failure says only "dlopen failed", the cause is its source.
fn load_reason(e: &ort::LoadDynamicError) -> String {
    use std::error::Error;
    match e {
        ort::LoadDynamicError::Dlopen { error, .. } => match error.source() {
            Some(cause) => cause.to_string(),
            None => error.to_string(),
        },
        other => other.to_string(),
    }
}

/// The process's ORT environment, loading the library on first use. Returns the environment and the library path
/// it was loaded from.
pub fn environment(property: Option<&Path>) -> Result<(ort::environment::Environment, PathBuf), LoadFailure> {
    let mut guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(loaded) = guard.as_ref() {
        return Ok((loaded.env.clone(), loaded.path.clone()));
    }
    let mut attempts = Vec::new();
    for (source, path) in candidates(property) {
        // A path with a folder that does not exist is reported as such, without asking the loader.
        let bare_name = path.parent().is_none_or(|p| p.as_os_str().is_empty());
        if !bare_name && !path.exists() {
            attempts.push((source, path, "no such file".to_owned()));
            continue;
        }
        let builder = match ort::init_from(&path) {
            Ok(b) => b,
            Err(e) => {
                attempts.push((source, path, load_reason(&e)));
                continue;
            }
        };
        match builder.with_name("odm").with_telemetry(false).build() {
            Ok(env) => {
                *guard = Some(Loaded { env: env.clone(), path: path.clone() });
                return Ok((env, path));
            }
            Err(e) => attempts.push((source, path, format!("loaded, but the environment failed: {e}"))),
        }
    }
    Err(LoadFailure { attempts })
}
