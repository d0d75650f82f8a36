// SPDX-License-Identifier: MIT OR Apache-2.0
//! The engine: ONNX Runtime sessions for the elements that run a network, and the batching of their work. It serves
//! elements and never names one. `session` opens a session (providers, fallback), `embedding` is the embedding
//! network's session and its shared instances, `detector` the detector's, `pool` shares instances by
//! `model-instance-id`, `batch` runs jobs of rows on an instance, batched across frames and streams. Here: what they
//! all share (errors, providers, session options and the properties that set them).

use std::path::PathBuf;

use gst::glib;

pub mod batch;
pub mod detector;
pub mod embedding;
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
