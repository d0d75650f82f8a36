// SPDX-License-Identifier: MIT OR Apache-2.0
//! ONNX files in ONNX Runtime: embedding with an exported network instead of tch (how `eval --onnx` scores the
//! network the plugin runs, an INT8 export say, on the same test sets, and how `bundle --onnx` embeds a network odm
//! did not train), and the check that a file is an embedding network odm can run (`bundle --onnx`, `inspect`). The
//! library is found as the plugin finds it (`odm_runtime`).

use std::path::{Path, PathBuf};

use odm_core::Bundle;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};
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

/// A tensor outlet as `[N,3,H,W]`-style text, for errors.
fn describe(t: &ValueType) -> String {
    match t {
        ValueType::Tensor { ty, shape, .. } => {
            let axes: Vec<String> = shape.iter().map(|&d| if d < 0 { "?".into() } else { d.to_string() }).collect();
            let ty = match ty {
                TensorElementType::Float32 => "float32".to_owned(),
                TensorElementType::Float16 => "float16".to_owned(),
                TensorElementType::Uint8 => "uint8".to_owned(),
                other => format!("{other:?}").to_lowercase(),
            };
            format!("{ty} [{}]", axes.join(","))
        }
        other => format!("{other}"),
    }
}

/// The network's input and output as odm will feed and read them.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkIo {
    pub input: String,
    /// Height and width when fixed in the file.
    pub size: Option<(u32, u32)>,
    pub output: String,
    /// Embedding dimension when fixed in the file.
    pub dim: Option<usize>,
}

/// Open `path` in ONNX Runtime and check that it is an embedding network odm can run: one float32 image input
/// `[N,3,H,W]` and a float32 `[N,D]` output. Errors name the file and what is wrong.
pub fn inspect(path: &Path, input: Option<&str>, output: Option<&str>) -> Result<NetworkIo, TrainError> {
    open_checked(path, input, output).map(|(io, _)| io)
}

/// [`inspect`], keeping the session it opened as the embedder (the file is loaded once).
pub fn open_checked(
    path: &Path,
    input: Option<&str>,
    output: Option<&str>,
) -> Result<(NetworkIo, OnnxEmbedder), TrainError> {
    let env = environment()?;
    let bad = |why: String| TrainError::Config(format!("{}: {why}", path.display()));
    let session = builder(&env)
        .and_then(|mut b| b.commit_from_file(path))
        .map_err(|e| bad(format!("ONNX Runtime cannot load it: {e}")))?;
    let inputs = session.inputs();
    let input = match input {
        Some(n) => inputs.iter().find(|o| o.name() == n).ok_or_else(|| {
            let names: Vec<&str> = inputs.iter().map(|o| o.name()).collect();
            bad(format!("it has no input named \"{n}\" (its inputs: {})", names.join(", ")))
        })?,
        None if inputs.len() == 1 => &inputs[0],
        None => {
            return Err(bad(format!(
                "it has {} inputs; odm feeds one image tensor [N,3,H,W] (name it with --input if the others are \
                 optional)",
                inputs.len()
            )))
        }
    };
    let size = match input.dtype() {
        ValueType::Tensor { ty: TensorElementType::Float32, shape, .. }
            if shape.len() == 4 && (shape[1] == 3 || shape[1] < 0) =>
        {
            if shape[0] > 0 {
                // ONNX Runtime would refuse every batch but this one, in its own words, at the first frame.
                return Err(bad(format!(
                    "input \"{}\" is {}: a fixed batch of {}; odm batches crops, so the first axis must be dynamic \
                     (export with a dynamic batch axis, e.g. torch.onnx.export(..., dynamic_axes={{\"{}\": {{0: \"N\"}}}}))",
                    input.name(),
                    describe(input.dtype()),
                    shape[0],
                    input.name()
                )));
            }
            (shape[2] > 0 && shape[3] > 0).then(|| (shape[3] as u32, shape[2] as u32))
        }
        other => {
            return Err(bad(format!(
                "input \"{}\" is {}: not an image tensor; odm feeds float32 [N,3,H,W] (channels first, RGB or BGR)",
                input.name(),
                describe(other)
            )))
        }
    };
    let outputs = session.outputs();
    let output = match output {
        Some(n) => outputs.iter().find(|o| o.name() == n).ok_or_else(|| {
            let names: Vec<&str> = outputs.iter().map(|o| o.name()).collect();
            bad(format!("it has no output named \"{n}\" (its outputs: {})", names.join(", ")))
        })?,
        None => outputs.first().ok_or_else(|| bad("it has no output".into()))?,
    };
    let dim = match output.dtype() {
        ValueType::Tensor { ty: TensorElementType::Float32, shape, .. } if shape.len() == 2 => {
            (shape[1] > 0).then_some(shape[1] as usize)
        }
        other => {
            return Err(bad(format!(
                "output \"{}\" is {}: an embedding is float32 [N,D] (pick another output with --output)",
                output.name(),
                describe(other)
            )))
        }
    };
    let io = NetworkIo { input: input.name().to_owned(), size, output: output.name().to_owned(), dim };
    let net = OnnxEmbedder::from_session(session, &io.input, &io.output, path);
    Ok((io, net))
}

/// `odm-train inspect`: the network a bundle names, opened in ONNX Runtime, must have the bundle's input and output
/// names, its input size when fixed, and its embedding dimension when fixed (a bundle whose centres have another
/// length than the network's output would pass the bundle's own checks and fail at the first frame).
pub fn check_network(bundle: &Bundle, bundle_path: &Path) -> Result<NetworkIo, TrainError> {
    let onnx = bundle.model_path(bundle_path);
    let io = inspect(&onnx, Some(&bundle.model.input.name), Some(&bundle.model.output.name))
        .map_err(|e| TrainError::Config(format!("{}: {e}", bundle_path.display())))?;
    let bad =
        |field: &str, why: String| TrainError::Config(format!("{}: field `{field}`: {why}", bundle_path.display()));
    if let Some(d) = io.dim.filter(|&d| d != bundle.dim()) {
        return Err(bad(
            "model.output.dim",
            format!("is {} but the network's output \"{}\" is [N,{d}] ({})", bundle.dim(), io.output, onnx.display()),
        ));
    }
    let i = &bundle.model.input;
    if let Some((w, h)) = io.size.filter(|&s| s != (i.width, i.height)) {
        return Err(bad(
            "model.input.width",
            format!("the bundle says {}x{} but the network's input is {w}x{h} ({})", i.width, i.height, onnx.display()),
        ));
    }
    Ok(io)
}
