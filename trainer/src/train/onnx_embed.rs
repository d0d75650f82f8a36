// SPDX-License-Identifier: MIT OR Apache-2.0
//! Embedding with an exported ONNX file in ONNX Runtime instead of tch: how `eval --onnx` scores the network the
//! plugin runs (an INT8 export, say) on the same test sets. The library is found as the plugin finds it
//! (`odm_runtime`).

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::TensorRef;
use tch::{Kind, Tensor};

use crate::error::TrainError;

/// The process's ORT environment, found and loaded as the plugin does it (`odm_runtime`: `ORT_DYLIB_PATH`, the
/// bootstrap folder, the system loader path; a library named by `ORT_DYLIB_PATH` is the only one tried).
pub fn environment() -> Result<ort::environment::Environment, TrainError> {
    odm_runtime::environment(None).map(|(env, _)| env).map_err(|e| TrainError::Config(e.to_string()))
}

/// Intra-op threads of the sessions made from now on (0: ONNX Runtime's default, every core).
static THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Set the intra-op threads of the ONNX Runtime sessions made from now on (`--threads`).
pub fn set_threads(n: usize) {
    THREADS.store(n, std::sync::atomic::Ordering::Relaxed);
}

/// A session builder with the threads set by [`set_threads`].
pub fn builder(env: &ort::environment::Environment) -> ort::Result<ort::session::builder::SessionBuilder> {
    let b = Session::builder(env)?;
    match THREADS.load(std::sync::atomic::Ordering::Relaxed) {
        0 => Ok(b),
        n => b.with_intra_threads(n).map_err(ort::Error::from),
    }
}

/// An ONNX embedding network in ONNX Runtime.
pub struct OnnxEmbedder {
    session: Session,
    input: String,
    output: String,
    path: PathBuf,
}

impl OnnxEmbedder {
    /// An embedder over a session already made from `path`.
    pub fn from_session(session: Session, input: &str, output: &str, path: &Path) -> OnnxEmbedder {
        OnnxEmbedder { session, input: input.to_owned(), output: output.to_owned(), path: path.to_owned() }
    }

    pub fn open(path: &Path, input: &str, output: &str) -> Result<OnnxEmbedder, TrainError> {
        let env = environment()?;
        let bad = |e: &dyn std::fmt::Display| {
            TrainError::Config(format!("{}: ONNX Runtime cannot load it: {e}", path.display()))
        };
        let session = builder(&env).map_err(|e| bad(&e))?.commit_from_file(path).map_err(|e| bad(&e))?;
        Ok(OnnxEmbedder { session, input: input.to_owned(), output: output.to_owned(), path: path.to_owned() })
    }

    /// Embeddings `[N, D]` of crops `[N, 3, H, W]`, in batches of 256.
    pub fn embed(&mut self, x: &Tensor) -> Result<Tensor, TrainError> {
        let size = x.size();
        let (n, c, h, w) = (size[0], size[1] as usize, size[2] as usize, size[3] as usize);
        let mut out: Vec<f32> = Vec::new();
        let mut dim = 0;
        let bad =
            |e: &dyn std::fmt::Display| TrainError::Config(format!("{}: inference failed: {e}", self.path.display()));
        for start in (0..n).step_by(256) {
            let k = (n - start).min(256);
            let part = x.narrow(0, start, k).to_kind(Kind::Float).contiguous();
            let v = Vec::<f32>::try_from(&part.view([-1])).map_err(|e| bad(&e))?;
            let a = ndarray::Array4::from_shape_vec((k as usize, c, h, w), v).map_err(|e| bad(&e))?;
            let t = TensorRef::from_array_view(&a).map_err(|e| bad(&e))?;
            let r = self.session.run(ort::inputs![self.input.as_str() => t]).map_err(|e| bad(&e))?;
            let (shape, data) = r[self.output.as_str()].try_extract_tensor::<f32>().map_err(|e| bad(&e))?;
            dim = shape[1];
            out.extend_from_slice(data);
        }
        Ok(Tensor::from_slice(&out).view([n, dim]))
    }
}
