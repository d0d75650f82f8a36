// SPDX-License-Identifier: MIT OR Apache-2.0
//! The embedding network's session: checked against its bundle at load, run on `[N,3,H,W]` batches; its instances
//! shared by `model-instance-id`, each with the batching service that runs the jobs of every element on it.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use odm_core::Bundle;

use super::batch::{self, Service};
use super::pool::{InstanceKey, Pool, PoolError, Shared};
use super::{session, EngineError, EngineOptions, Provider};

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

/// One embedding session and the key it was made for.
pub struct Instance {
    engine: Mutex<Engine>,
    pub key: InstanceKey,
    /// The `model-instance-id` it is shared under (empty: not shared).
    pub id: String,
    /// The batching service that serves every element on the instance, once one is started; it lives while an
    /// element holds a line to it.
    service: Mutex<Weak<Service<Instance>>>,
}

impl Instance {
    /// The session, for one inference run.
    pub fn lock(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The batching service runs embedding jobs: rows of crops in, `[rows, dim]` embeddings out.
impl batch::Session for Engine {
    type Output = Vec<f32>;

    fn row_len(&self) -> usize {
        self.sample_len()
    }

    fn run(&mut self, input: &[f32], rows: usize, out: &mut Vec<f32>) -> Result<(), EngineError> {
        self.embed(input, rows, out)
    }

    fn clear(out: &mut Vec<f32>) {
        out.clear();
    }

    fn split(&self, run: &Vec<f32>, from: usize, rows: usize, into: &mut Vec<f32>) {
        into.extend_from_slice(&run[from * self.dim..(from + rows) * self.dim]);
    }
}

impl batch::Model for Instance {
    type Session = Engine;

    fn lock(&self) -> MutexGuard<'_, Engine> {
        Instance::lock(self)
    }

    fn service(&self) -> &Mutex<Weak<Service<Instance>>> {
        &self.service
    }
}

impl Shared for Instance {
    fn key(&self) -> &InstanceKey {
        &self.key
    }
}

static POOL: Pool<Instance> = Pool::new();

/// The embedding instance shared under `id`, or a new one from `make` (registered under `id` unless it is empty).
/// The second value is `make`'s fallback note (only when this call made the session).
pub fn instance(
    id: &str,
    key: InstanceKey,
    make: impl FnOnce() -> Result<(Engine, Option<String>), EngineError>,
) -> Result<(Arc<Instance>, Option<String>), PoolError> {
    POOL.get(id, &key, || {
        let (engine, note) = make()?;
        let instance = Instance {
            engine: Mutex::new(engine),
            key: key.clone(),
            id: id.to_owned(),
            service: Mutex::new(Weak::new()),
        };
        Ok((instance, note))
    })
}
