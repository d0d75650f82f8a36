// SPDX-License-Identifier: MIT OR Apache-2.0
//! One ONNX Runtime session for a whole-frame detector: one float32 `[N,3,H,W]` input (RGB in [0, 1], as YOLO and
//! most exported detectors take it), any outputs, read back as they come. Made like the embedding engine's session
//! (providers, fallback, `model-instance-id` sharing through [`super::pool::Pool`]); runs on the calling thread, or
//! through the batching service ([`super::batch`]) for frames in flight.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::batch;
use super::pool::{InstanceKey, Pool, PoolError, Shared};
use super::{session, EngineError, EngineOptions, Provider};

/// One output tensor of a run: its shape and its values.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub shape: Vec<i64>,
    pub data: Vec<f32>,
}

pub struct Detector {
    session: Session,
    provider: Provider,
    input: String,
    /// Network input height and width.
    hw: (usize, usize),
    fixed_batch: Option<usize>,
    outputs: Vec<String>,
    /// Class names from the model's metadata (`names`, as Ultralytics writes it), if it has them.
    names: Option<Vec<String>>,
}

fn shape_of(v: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    match v {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.iter().copied().collect())),
        _ => None,
    }
}

impl Detector {
    /// A session for the detector in `bytes` (read from `model`). A network whose input size is dynamic runs at
    /// `input_size` (height, width).
    pub fn new(
        env: &ort::environment::Environment,
        model: &Path,
        bytes: &[u8],
        opts: &EngineOptions,
        input_size: (usize, usize),
    ) -> Result<(Detector, Option<String>), EngineError> {
        let (session, provider, fell_back) = session::open(env, model, bytes, opts)?;
        let mismatch = |reason: String| EngineError::Mismatch { path: model.to_owned(), reason };
        if session.inputs().len() != 1 {
            return Err(mismatch(format!(
                "a detector has one input (an image batch); this network has {}",
                session.inputs().len()
            )));
        }
        let input = &session.inputs()[0];
        let (fixed_batch, hw) = match shape_of(input.dtype()) {
            Some((TensorElementType::Float32, s)) if s.len() == 4 && s[1] == 3 => {
                let axis = |d: i64, asked: usize| usize::try_from(d).ok().filter(|&d| d > 0).unwrap_or(asked);
                (usize::try_from(s[0]).ok().filter(|&b| b > 0), (axis(s[2], input_size.0), axis(s[3], input_size.1)))
            }
            other => {
                return Err(mismatch(format!(
                    "its input \"{}\" is {other:?}; a detector takes float32 [N,3,H,W]",
                    input.name()
                )))
            }
        };
        if session.outputs().is_empty() {
            return Err(mismatch("it has no output".into()));
        }
        let names = session.metadata().ok().and_then(|m| m.custom("names")).and_then(|t| parse_names(&t));
        let detector = Detector {
            input: input.name().to_owned(),
            outputs: session.outputs().iter().map(|o| o.name().to_owned()).collect(),
            session,
            provider,
            hw,
            fixed_batch,
            names,
        };
        Ok((detector, fell_back))
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Network input (height, width).
    pub fn input_hw(&self) -> (usize, usize) {
        self.hw
    }

    pub fn names(&self) -> Option<&[String]> {
        self.names.as_deref()
    }

    pub fn output_names(&self) -> &[String] {
        &self.outputs
    }

    /// Run `batch` samples laid out in `input`; every output comes back in `out` (its first axis the batch). A network
    /// with a fixed batch size runs in batches of that size, the last padded with zeros (whose outputs are dropped).
    pub fn run(&mut self, input: &[f32], batch: usize, out: &mut Vec<Output>) -> Result<(), EngineError> {
        out.clear();
        self.run_appending(input, batch, out)
    }

    /// [`Detector::run`] whose outputs are appended to those already in `out` (the rows of earlier runs).
    fn run_appending(&mut self, input: &[f32], batch: usize, out: &mut Vec<Output>) -> Result<(), EngineError> {
        let sample = 3 * self.hw.0 * self.hw.1;
        if input.len() < batch * sample || batch == 0 {
            return Err(EngineError::Run(format!("{} floats for a batch of {batch}", input.len())));
        }
        let step = self.fixed_batch.unwrap_or(batch);
        if out.len() != self.outputs.len() {
            out.clear();
            out.resize(self.outputs.len(), Output::default());
        }
        let mut padded = Vec::new();
        for start in (0..batch).step_by(step) {
            let k = step.min(batch - start);
            let chunk = &input[start * sample..(start + k) * sample];
            let data = if k == step {
                chunk
            } else {
                padded.clear();
                padded.extend_from_slice(chunk);
                padded.resize(step * sample, 0.0);
                &padded[..]
            };
            let x = ndarray::ArrayView4::from_shape((step, 3, self.hw.0, self.hw.1), data)
                .map_err(|e| EngineError::Run(e.to_string()))?;
            let tensor = TensorRef::from_array_view(x).map_err(|e| EngineError::Run(e.to_string()))?;
            let outputs = self
                .session
                .run(ort::inputs![self.input.as_str() => tensor])
                .map_err(|e| EngineError::Run(e.to_string()))?;
            for (i, name) in self.outputs.iter().enumerate() {
                let value = outputs
                    .get(name.as_str())
                    .ok_or_else(|| EngineError::Run(format!("the model gave no output \"{name}\"")))?;
                let (shape, values) = value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| EngineError::Run(format!("output \"{name}\": {e}")))?;
                if shape.is_empty() || shape[0] != step as i64 {
                    return Err(EngineError::Run(format!(
                        "output \"{name}\" has shape {:?} for a batch of {step}: its first axis must be the batch",
                        &shape[..]
                    )));
                }
                let per = values.len() / step;
                let o = &mut out[i];
                if o.shape.is_empty() {
                    o.shape = shape.iter().copied().collect();
                    o.shape[0] = 0;
                }
                o.shape[0] += k as i64;
                o.data.extend_from_slice(&values[..k * per]);
            }
        }
        Ok(())
    }
}

/// Class names from a model's `names` metadata: Ultralytics' `{0: 'person', 1: 'bicycle'}`, a JSON object of index
/// to name, or a JSON list. `None` when the text is none of these.
pub fn parse_names(text: &str) -> Option<Vec<String>> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        return match v {
            serde_json::Value::Array(a) => a.iter().map(|n| n.as_str().map(str::to_owned)).collect(),
            serde_json::Value::Object(o) => {
                let mut pairs: Vec<(usize, String)> =
                    o.iter().map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_owned()))).collect::<Option<_>>()?;
                pairs.sort();
                pairs.iter().enumerate().all(|(i, p)| p.0 == i).then(|| pairs.into_iter().map(|p| p.1).collect())
            }
            _ => None,
        };
    }
    // Python's repr of a dict of int to str.
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut names = Vec::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once(':')?;
        if key.trim().parse::<usize>().ok()? != names.len() {
            return None;
        }
        let after = after.trim_start();
        let quote = after.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let end = after[1..].find(quote)? + 1;
        names.push(after[1..end].to_owned());
        rest = after[end + 1..].trim_start().strip_prefix(',').unwrap_or(&after[end + 1..]).trim_start();
    }
    Some(names)
}

/// The batching service runs a detector's images (frames or tiles) as rows; each output is split by its first axis.
impl batch::Session for Detector {
    type Output = Vec<Output>;

    fn row_len(&self) -> usize {
        3 * self.hw.0 * self.hw.1
    }

    fn run(&mut self, input: &[f32], rows: usize, out: &mut Vec<Output>) -> Result<(), EngineError> {
        self.run_appending(input, rows, out)
    }

    fn clear(out: &mut Vec<Output>) {
        out.clear();
    }

    fn split(&self, run: &Vec<Output>, from: usize, rows: usize, into: &mut Vec<Output>) {
        split_rows(run, from, rows, into);
    }
}

/// Append rows `from..from + rows` of each output of a run (first axis the batch) to `into`'s outputs. Outputs that
/// lack those rows (no batch axis, fewer rows) are left as they are: [`Detector::run`] checked every output's batch
/// axis before.
fn split_rows(run: &[Output], from: usize, rows: usize, into: &mut Vec<Output>) {
    if into.len() != run.len() {
        into.clear();
        into.resize(run.len(), Output::default());
    }
    for (o, r) in into.iter_mut().zip(run) {
        let Some(&n) = r.shape.first() else { continue };
        let per = r.data.len() / (n.max(1) as usize);
        let Some(part) = r.data.get(from * per..(from + rows) * per) else { continue };
        if o.shape.is_empty() {
            o.shape = r.shape.clone();
            o.shape[0] = 0;
        }
        o.shape[0] += rows as i64;
        o.data.extend_from_slice(part);
    }
}

/// A detector session shared under a `model-instance-id`.
pub struct DetectInstance {
    detector: Mutex<Detector>,
    /// The batching service's thread, while an element runs frames in flight on this instance.
    service: Mutex<Weak<batch::Service<DetectInstance>>>,
    pub key: InstanceKey,
    pub id: String,
}

impl batch::Model for DetectInstance {
    type Session = Detector;

    fn lock(&self) -> MutexGuard<'_, Detector> {
        DetectInstance::lock(self)
    }

    fn service(&self) -> &Mutex<Weak<batch::Service<DetectInstance>>> {
        &self.service
    }
}

impl DetectInstance {
    /// The session, for one run.
    pub fn lock(&self) -> MutexGuard<'_, Detector> {
        self.detector.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Shared for DetectInstance {
    fn key(&self) -> &InstanceKey {
        &self.key
    }
}

static POOL: Pool<DetectInstance> = Pool::new();

/// The detector shared under `id`, or a new one from `make`.
pub fn instance(
    id: &str,
    key: InstanceKey,
    make: impl FnOnce() -> Result<(Detector, Option<String>), EngineError>,
) -> Result<(Arc<DetectInstance>, Option<String>), PoolError> {
    POOL.get(id, &key, || {
        let (detector, note) = make()?;
        let instance = DetectInstance {
            detector: Mutex::new(detector),
            service: Mutex::new(Weak::new()),
            key: key.clone(),
            id: id.to_owned(),
        };
        Ok((instance, note))
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_names, split_rows, Output};

    /// A run of three rows with two outputs: each job gets its own rows of every output, appended in order.
    #[test]
    fn a_runs_outputs_split_by_rows() {
        let run = vec![
            Output { shape: vec![3, 2], data: vec![0.0, 1.0, 10.0, 11.0, 20.0, 21.0] },
            Output { shape: vec![3, 1, 1], data: vec![5.0, 6.0, 7.0] },
        ];
        let mut a = Vec::new();
        split_rows(&run, 0, 1, &mut a);
        assert_eq!((a[0].shape.clone(), a[0].data.clone()), (vec![1, 2], vec![0.0, 1.0]));
        assert_eq!((a[1].shape.clone(), a[1].data.clone()), (vec![1, 1, 1], vec![5.0]));
        let mut b = Vec::new();
        split_rows(&run, 1, 2, &mut b);
        assert_eq!((b[0].shape.clone(), b[0].data.clone()), (vec![2, 2], vec![10.0, 11.0, 20.0, 21.0]));
        assert_eq!((b[1].shape.clone(), b[1].data.clone()), (vec![2, 1, 1], vec![6.0, 7.0]));
        // A second run's rows are appended after the first's.
        split_rows(&run, 2, 1, &mut a);
        assert_eq!((a[0].shape.clone(), a[0].data.clone()), (vec![2, 2], vec![0.0, 1.0, 20.0, 21.0]));
        // Rows the run does not have, and an output with no batch axis, leave the job's outputs as they are.
        let odd = vec![Output { shape: vec![], data: vec![1.0] }, Output { shape: vec![1, 2], data: vec![1.0, 2.0] }];
        let mut c = Vec::new();
        split_rows(&odd, 1, 1, &mut c);
        assert!(c.iter().all(|o| o.shape.is_empty() && o.data.is_empty()), "{c:?}");
    }

    #[test]
    fn names_from_ultralytics_metadata_and_json() {
        let want = Some(vec!["person".to_owned(), "stop sign".to_owned()]);
        assert_eq!(parse_names("{0: 'person', 1: 'stop sign'}"), want);
        assert_eq!(parse_names(r#"{"0": "person", "1": "stop sign"}"#), want);
        assert_eq!(parse_names(r#"["person", "stop sign"]"#), want);
        assert_eq!(parse_names("{0: 'person', 2: 'car'}"), None, "a gap");
        assert_eq!(parse_names("person, car"), None);
        assert_eq!(parse_names("{}"), Some(vec![]));
    }
}
