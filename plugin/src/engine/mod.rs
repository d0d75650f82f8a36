// SPDX-License-Identifier: MIT OR Apache-2.0
//! One ONNX Runtime session for one bundle: checked against the bundle at load, run on `[N,3,H,W]` batches.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use gst::glib;
use odm_core::Bundle;

pub mod detector;
pub mod pool;
pub mod session;

/// Why a session could not be made or run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{path}: ONNX Runtime cannot load the model: {message}")]
    Load { path: PathBuf, message: String },
    #[error("{path}: execution provider {provider} cannot start ({reason}) and fallback=false")]
    Provider { path: PathBuf, provider: Provider, reason: String },
    #[error("{path}: the model does not match its bundle: {reason}")]
    Mismatch { path: PathBuf, reason: String },
    #[error("inference failed: {0}")]
    Run(String),
    #[error("the model returned a [{}] tensor for a batch of {batch}; expected [{batch},{dim}]", join(got))]
    OutputShape { got: Vec<i64>, batch: usize, dim: usize },
}

fn join(axes: &[i64]) -> String {
    axes.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// Where ONNX Runtime runs the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Cpu,
    Cuda,
    /// TensorRT, with CUDA behind it for the nodes TensorRT does not take.
    TensorRt,
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::TensorRt => "tensorrt",
        })
    }
}

/// Where ONNX Runtime runs the network: the `execution-provider` property of odmclassify and odmdetect.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstOdmExecutionProvider")]
pub enum ExecutionProvider {
    #[default]
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu,
    #[enum_value(name = "CUDA (NVIDIA GPU)", nick = "cuda")]
    Cuda,
    #[enum_value(name = "TensorRT, with CUDA for the nodes TensorRT does not take", nick = "tensorrt")]
    Tensorrt,
}

impl From<ExecutionProvider> for Provider {
    fn from(p: ExecutionProvider) -> Self {
        match p {
            ExecutionProvider::Cpu => Provider::Cpu,
            ExecutionProvider::Cuda => Provider::Cuda,
            ExecutionProvider::Tensorrt => Provider::TensorRt,
        }
    }
}

/// The properties of how a session runs, the same on every element that runs a network (odmclassify, odmdetect):
/// `execution-provider`, `device-id`, `fallback`, `threads` (default `threads`), `ort-library`.
pub fn session_param_specs(threads: u32) -> Vec<glib::ParamSpec> {
    use gst::prelude::*;
    vec![
        glib::ParamSpecEnum::builder_with_default("execution-provider", ExecutionProvider::Cpu)
            .nick("Execution provider")
            .blurb("Where ONNX Runtime runs the network (cuda and tensorrt need a GPU build of ONNX Runtime)")
            .mutable_ready()
            .build(),
        glib::ParamSpecInt::builder("device-id")
            .nick("Device id")
            .blurb("GPU index for the cuda and tensorrt providers")
            .minimum(0)
            .maximum(1024)
            .default_value(0)
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder("fallback")
            .nick("Fallback")
            .blurb("When the execution provider cannot start, run on the CPU with a warning (else fail)")
            .default_value(true)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("threads")
            .nick("Threads")
            .blurb("ONNX Runtime intra-op threads (spinning off)")
            .minimum(1)
            .maximum(256)
            .default_value(threads)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("ort-library")
            .nick("ONNX Runtime library")
            .blurb(
                "Path of libonnxruntime.so; default: ORT_DYLIB_PATH, then the bootstrap folder, then the system \
                 loader path",
            )
            .mutable_ready()
            .build(),
    ]
}

/// Session options the element exposes.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub intra_threads: usize,
    pub provider: Provider,
    pub device_id: i32,
    /// When the provider cannot start: run on the CPU (true) or fail (false).
    pub fallback: bool,
    /// TensorRT: the folder its built engines are cached in (rebuilding one takes minutes), none when `None`.
    pub trt_cache: Option<std::path::PathBuf>,
    /// TensorRT: build FP16 engines.
    pub trt_fp16: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            intra_threads: 1,
            provider: Provider::Cpu,
            device_id: 0,
            fallback: true,
            trt_cache: None,
            trt_fp16: false,
        }
    }
}

pub struct Engine {
    session: Session,
    provider: Provider,
    input: String,
    output: String,
    channels_hw: (usize, usize, usize),
    dim: usize,
    /// The batch size fixed in the network's input (`None`: dynamic).
    fixed_batch: Option<usize>,
}

fn tensor_shape(v: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    match v {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.iter().copied().collect())),
        _ => None,
    }
}

/// A value's type as a reader writes it: `float32 [N,3,32,32]` (a dynamic axis is N), or `not a tensor`.
fn describe(v: &Option<(TensorElementType, Vec<i64>)>) -> String {
    match v {
        Some((ty, shape)) => {
            let axes: Vec<String> = shape.iter().map(|&d| if d < 0 { "N".to_owned() } else { d.to_string() }).collect();
            format!("{} [{}]", ty.to_string().to_lowercase(), axes.join(","))
        }
        None => "not a tensor".to_owned(),
    }
}

impl Engine {
    /// Create a session from `bytes` (the contents of the file `model`, read once so the caller can hash exactly what
    /// runs) and check its input and output against `bundle`. The second value says why the asked-for GPU provider
    /// was not used, when the engine fell back to the CPU.
    pub fn new(
        env: &ort::environment::Environment,
        model: &Path,
        bytes: &[u8],
        bundle: &Bundle,
        opts: EngineOptions,
    ) -> Result<(Engine, Option<String>), EngineError> {
        let (session, provider, fell_back) = session::open(env, model, bytes, &opts)?;

        let mismatch = |reason: String| EngineError::Mismatch { path: model.to_owned(), reason };
        let spec = &bundle.model;
        let (h, w) = (spec.input.height as i64, spec.input.width as i64);
        let input = session
            .inputs()
            .iter()
            .find(|o| o.name() == spec.input.name)
            .ok_or_else(|| mismatch(format!("it has no input named \"{}\"", spec.input.name)))?;
        let fixed_batch = match tensor_shape(input.dtype()) {
            // Height and width fixed in the file, or dynamic (a network exported with dynamic axes runs at the bundle's).
            // A batch axis fixed in the file is run in batches of exactly that size.
            Some((TensorElementType::Float32, s))
                if s.len() == 4 && s[1] == 3 && (s[2] == h || s[2] < 0) && (s[3] == w || s[3] < 0) =>
            {
                usize::try_from(s[0]).ok().filter(|&b| b > 0)
            }
            other => {
                return Err(mismatch(format!(
                    "input \"{}\" is {}; the bundle says float32 [N,3,{h},{w}]",
                    spec.input.name,
                    describe(&other)
                )))
            }
        };
        if session.inputs().len() != 1 {
            return Err(mismatch(format!("the model has {} inputs; odm feeds exactly one", session.inputs().len())));
        }
        let output = session
            .outputs()
            .iter()
            .find(|o| o.name() == spec.output.name)
            .ok_or_else(|| mismatch(format!("it has no output named \"{}\"", spec.output.name)))?;
        let dim = spec.output.dim as i64;
        match tensor_shape(output.dtype()) {
            Some((TensorElementType::Float32, s)) if s.len() == 2 && (s[1] == dim || s[1] < 0) => {}
            other => {
                return Err(mismatch(format!(
                    "output \"{}\" is {}; the bundle says float32 [N,{dim}]",
                    spec.output.name,
                    describe(&other)
                )))
            }
        }
        let engine = Engine {
            provider,
            input: spec.input.name.clone(),
            output: spec.output.name.clone(),
            channels_hw: (3, h as usize, w as usize),
            dim: spec.output.dim,
            fixed_batch,
            session,
        };
        Ok((engine, fell_back))
    }

    /// The provider the session runs on (the CPU after a fallback).
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Input name, height and width, output name and dimension: what a hot-reloaded bundle must match.
    pub fn io(&self) -> (&str, usize, usize, &str, usize) {
        (&self.input, self.channels_hw.1, self.channels_hw.2, &self.output, self.dim)
    }

    /// Floats in one input sample.
    pub fn sample_len(&self) -> usize {
        let (c, h, w) = self.channels_hw;
        c * h * w
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The batch size fixed in the network's input, if it has one (runs are made of exactly that many samples).
    pub fn fixed_batch(&self) -> Option<usize> {
        self.fixed_batch
    }

    /// Embed `batch` samples laid out contiguously in `input`; appends `batch * dim` floats to `out`. A network with
    /// a fixed batch size runs in batches of that size, the last one padded with zeros (whose outputs are dropped).
    pub fn embed(&mut self, input: &[f32], batch: usize, out: &mut Vec<f32>) -> Result<(), EngineError> {
        let Some(fixed) = self.fixed_batch.filter(|&f| f != batch) else { return self.run(input, batch, out) };
        let (sample, dim) = (self.sample_len(), self.dim);
        if input.len() < batch * sample {
            return Err(EngineError::Run(format!("{} floats for a batch of {batch}", input.len())));
        }
        let mut padded = Vec::new();
        for start in (0..batch).step_by(fixed) {
            let k = fixed.min(batch - start);
            let chunk = &input[start * sample..(start + k) * sample];
            if k == fixed {
                self.run(chunk, fixed, out)?;
            } else {
                padded.clear();
                padded.extend_from_slice(chunk);
                padded.resize(fixed * sample, 0.0);
                let before = out.len();
                self.run(&padded, fixed, out)?;
                out.truncate(before + k * dim);
            }
        }
        Ok(())
    }

    /// One inference run over exactly `batch` samples.
    fn run(&mut self, input: &[f32], batch: usize, out: &mut Vec<f32>) -> Result<(), EngineError> {
        let (c, h, w) = self.channels_hw;
        let x = ndarray::ArrayView4::from_shape((batch, c, h, w), &input[..batch * c * h * w])
            .map_err(|e| EngineError::Run(e.to_string()))?;
        let tensor = TensorRef::from_array_view(x).map_err(|e| EngineError::Run(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.as_str() => tensor])
            .map_err(|e| EngineError::Run(e.to_string()))?;
        let value = outputs
            .get(self.output.as_str())
            .ok_or_else(|| EngineError::Run(format!("the model gave no output \"{}\"", self.output)))?;
        let (shape, data) = value.try_extract_tensor::<f32>().map_err(|e| EngineError::Run(e.to_string()))?;
        if shape[..] != [batch as i64, self.dim as i64] || data.len() != batch * self.dim {
            return Err(EngineError::OutputShape { got: shape.iter().copied().collect(), batch, dim: self.dim });
        }
        out.extend_from_slice(data);
        Ok(())
    }
}
