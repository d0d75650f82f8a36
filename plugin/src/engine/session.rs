// SPDX-License-Identifier: MIT OR Apache-2.0
//! Making an ONNX Runtime session the way every odm element does: odm's CPU settings, or a GPU provider (CUDA,
//! TensorRT) with the fallback to the CPU said plainly. Shared by the embedding engine and the detector.

use std::path::Path;

use ort::ep::{self, ExecutionProvider as _};
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;

use super::{EngineError, EngineOptions, Provider};

/// The `model` property's file, read once (the session is made from these bytes, and they are what is hashed): an
/// element error naming the property or the file when it is unset, missing or unreadable.
pub fn read_model(model: Option<&Path>) -> Result<(std::path::PathBuf, Vec<u8>), gst::ErrorMessage> {
    let Some(model) = model else {
        return Err(gst::error_msg!(gst::ResourceError::NotFound, ("no model set: set the `model` property")));
    };
    if !model.is_file() {
        return Err(gst::error_msg!(gst::ResourceError::NotFound, ("model file {} not found", model.display())));
    }
    let bytes = std::fs::read(model).map_err(|e| {
        gst::error_msg!(gst::ResourceError::OpenRead, ("cannot read the model file {}: {e}", model.display()))
    })?;
    Ok((model.to_owned(), bytes))
}

/// A session on the asked-for provider from the model's bytes, the provider it runs on, and why it fell back to the
/// CPU when it did.
pub fn open(
    env: &ort::environment::Environment,
    model: &Path,
    bytes: &[u8],
    opts: &EngineOptions,
) -> Result<(Session, Provider, Option<String>), EngineError> {
    let load = |e: &dyn std::fmt::Display| EngineError::Load { path: model.to_owned(), message: e.to_string() };
    let cpu =
        || builder(env, opts.intra_threads).map_err(|e| load(&e))?.commit_from_memory(bytes).map_err(|e| load(&e));
    Ok(match opts.provider {
        Provider::Cpu => (cpu()?, Provider::Cpu, None),
        gpu => match gpu_session(env, bytes, opts) {
            Ok(s) => (s, gpu, None),
            Err(reason) if opts.fallback => (
                cpu()?,
                Provider::Cpu,
                Some(format!("execution provider {gpu} cannot start ({reason}): running on the CPU")),
            ),
            Err(reason) => return Err(EngineError::Provider { path: model.to_owned(), provider: gpu, reason }),
        },
    })
}

/// A session builder with odm's CPU settings: full graph optimisation, `threads` intra-op threads, no spinning.
fn builder(env: &ort::environment::Environment, threads: usize) -> Result<SessionBuilder, String> {
    let b = Session::builder(env).map_err(|e| e.to_string())?;
    b.with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| e.to_string())?
        .with_intra_threads(threads.max(1))
        .map_err(|e| e.to_string())?
        .with_intra_op_spinning(false)
        .map_err(|e| e.to_string())
}

/// A session on a GPU provider, or why there is none: the provider missing from the loaded library, its registration
/// failing (no driver, no device, missing CUDA libraries), or the session failing to start on it.
fn gpu_session(env: &ort::environment::Environment, bytes: &[u8], opts: &EngineOptions) -> Result<Session, String> {
    let cuda_here = ep::CUDA::is_available().map_err(|e| e.to_string())?;
    let missing = |name: &str| {
        format!(
            "the loaded ONNX Runtime library has no {name} (the PyPI `onnxruntime` wheel is CPU-only; point \
             ort-library at the library of `onnxruntime-gpu`)"
        )
    };
    let mut eps = Vec::new();
    if opts.provider == Provider::TensorRt {
        if !ep::TensorRT::is_available().map_err(|e| e.to_string())? {
            return Err(missing("TensorrtExecutionProvider"));
        }
        let mut trt = ep::TensorRT::default().with_device_id(opts.device_id).with_fp16(opts.trt_fp16);
        if let Some(dir) = &opts.trt_cache {
            trt = trt.with_engine_cache(true).with_engine_cache_path(dir.display());
        }
        eps.push(trt.build().error_on_failure());
    }
    if !cuda_here {
        return Err(missing("CUDAExecutionProvider"));
    }
    eps.push(ep::CUDA::default().with_device_id(opts.device_id).build().error_on_failure());
    let b = builder(env, opts.intra_threads)?.with_execution_providers(eps).map_err(|e| e.to_string())?;
    let mut b = b;
    b.commit_from_memory(bytes).map_err(|e| e.to_string())
}
