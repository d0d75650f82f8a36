// SPDX-License-Identifier: MIT OR Apache-2.0
//! Finding and loading the ONNX Runtime library, and the process-wide ORT environment: the one lookup of odm, used by
//! the plugin (`odmclassify`'s `ort-library` property) and by the trainer (`eval --onnx`, `bundle --onnx`, exports'
//! tests).
//!
//! ort is built with `load-dynamic`: the library is opened at run time with `ort::init_from`, never through
//! ort's implicit `ORT_DYLIB_PATH` loader (which panics when the library is missing). Candidates, in order:
//!
//! 1. the element's `ort-library` property (the trainer has none);
//! 2. the `ORT_DYLIB_PATH` environment variable;
//! 3. the project's bootstrap folder: `$ODM_ORT_DIR/libonnxruntime.so` when that variable is set, else the
//!    checkout's `.deps/onnxruntime/libonnxruntime.so` (filled by `scripts/bootstrap.sh`; path fixed at build time);
//! 4. the system loader path (`libonnxruntime.so.1`, then `libonnxruntime.so`).
//!
//! A library named by the property or by `ORT_DYLIB_PATH` is the only one tried: when it cannot load, or when the
//! process already runs another one, the element fails with a sentence that says so (a user who points at a GPU
//! build must not silently run the CPU one).
//!
//! ONNX Runtime allows one environment per process (even after the first is dropped), so the first one that loads
//! is kept for the life of the process and shared by every element.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where bootstrap puts the library (set by build.rs; `ODM_ORT_DIR` at build time moves it).
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

/// Why no ONNX Runtime library could be loaded.
#[derive(Debug, Clone)]
pub enum LoadFailure {
    /// The library named by `ort-library` or `ORT_DYLIB_PATH` cannot be used; no other is tried in its place (a
    /// user who points at a GPU build must not run another library without being told).
    Named { source: String, path: PathBuf, why: String },
    /// The process already runs another library (ONNX Runtime allows one per process).
    Other { source: String, asked: PathBuf, loaded: PathBuf },
    /// Nothing was named and no candidate loaded: every one and what happened to it.
    NoneUsable { attempts: Vec<(String, PathBuf, String)> },
}

impl std::fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadFailure::Named { source, path, why } => write!(
                f,
                "the ONNX Runtime library {} named by {source} cannot be used: {why} (no other library is tried when \
                 one is named)",
                path.display()
            ),
            LoadFailure::Other { source, asked, loaded } => write!(
                f,
                "{source} names the ONNX Runtime library {}, but this process already runs the one at {} and can \
                 load only one: name that one, or run the other in its own process",
                asked.display(),
                loaded.display()
            ),
            LoadFailure::NoneUsable { attempts } => {
                write!(
                    f,
                    "no usable ONNX Runtime library (run scripts/bootstrap.sh, or set ORT_DYLIB_PATH or ort-library); \
                     tried:"
                )?;
                for (source, path, why) in attempts {
                    write!(f, "\n  {} ({source}): {why}", path.display())?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LoadFailure {}

/// Two library paths name the same file (bare names such as `libonnxruntime.so.1` compare as written).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

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

/// Load one candidate: the environment, or why not.
fn try_load(path: &Path) -> Result<ort::environment::Environment, String> {
    // A path with a folder that does not exist is reported as such, without asking the loader.
    let bare_name = path.parent().is_none_or(|p| p.as_os_str().is_empty());
    if !bare_name && !path.exists() {
        return Err("no such file".to_owned());
    }
    let builder = ort::init_from(path).map_err(|e| load_reason(&e))?;
    builder
        .with_name("odm")
        .with_telemetry(false)
        .build()
        .map_err(|e| format!("loaded, but the environment failed: {e}"))
}

/// The process's ORT environment, loading the library on first use. Returns the environment and the library path
/// it was loaded from. A library named by the property or by `ORT_DYLIB_PATH` is the only one tried, and must be the
/// one the process runs.
pub fn environment(property: Option<&Path>) -> Result<(ort::environment::Environment, PathBuf), LoadFailure> {
    let mut guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
    let candidates = candidates(property);
    let named = (property.is_some() || std::env::var_os("ORT_DYLIB_PATH").is_some_and(|p| !p.is_empty()))
        .then(|| candidates[0].clone());
    if let Some(loaded) = guard.as_ref() {
        return match named {
            Some((source, asked)) if !same_file(&asked, &loaded.path) => {
                Err(LoadFailure::Other { source, asked, loaded: loaded.path.clone() })
            }
            _ => Ok((loaded.env.clone(), loaded.path.clone())),
        };
    }
    if let Some((source, path)) = named {
        return match try_load(&path) {
            Ok(env) => {
                *guard = Some(Loaded { env: env.clone(), path: path.clone() });
                Ok((env, path))
            }
            Err(why) => Err(LoadFailure::Named { source, path, why }),
        };
    }
    let mut attempts = Vec::new();
    for (source, path) in candidates {
        match try_load(&path) {
            Ok(env) => {
                *guard = Some(Loaded { env: env.clone(), path: path.clone() });
                return Ok((env, path));
            }
            Err(why) => attempts.push((source, path, why)),
        }
    }
    Err(LoadFailure::NoneUsable { attempts })
}
