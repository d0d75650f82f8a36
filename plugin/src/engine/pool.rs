// SPDX-License-Identifier: MIT OR Apache-2.0
//! Model instances shared by name: elements with the same `model-instance-id` run one ONNX Runtime session (one copy
//! of the weights, one set of ORT threads), as DL Streamer's `model-instance-id` does. Each element locks the
//! instance for the length of one inference run; the instance lives while one element holds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::{EngineError, Provider};

/// What must match for two elements to share an instance: the network's bytes and how the session runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceKey {
    pub sha256: String,
    pub provider: Provider,
    pub device_id: i32,
    pub threads: usize,
    /// TensorRT's engine cache folder and FP16 switch (other sessions when they differ).
    pub trt_cache: Option<std::path::PathBuf>,
    pub trt_fp16: bool,
}

impl std::fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the network with sha256 {} on {} (device {}, {} threads)",
            self.sha256, self.provider, self.device_id, self.threads
        )
    }
}

impl InstanceKey {
    /// The key of a session made from bytes with this SHA-256 and these options.
    pub fn new(sha256: String, opts: &super::EngineOptions) -> InstanceKey {
        InstanceKey {
            sha256,
            provider: opts.provider,
            device_id: opts.device_id,
            threads: opts.intra_threads,
            trt_cache: opts.trt_cache.clone(),
            trt_fp16: opts.trt_fp16,
        }
    }
}

/// Why an instance could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error(
        "model-instance-id \"{id}\" is already running {running}; this element asks for {asked}: give it another \
         model-instance-id, or the same model and settings"
    )]
    Mismatch { id: String, running: Box<InstanceKey>, asked: Box<InstanceKey> },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Anything shared by `model-instance-id`: it says what it was made for.
pub trait Shared {
    fn key(&self) -> &InstanceKey;
}

/// Instances of one kind shared by `model-instance-id`. The pool's lock is held only to find or add a slot; a slot's
/// own lock is held while its session is made, so two elements starting together under one id make one session, and
/// elements under other ids (or none) never wait for it.
pub struct Pool<T> {
    slots: Mutex<Option<HashMap<String, Slot<T>>>>,
}

type Slot<T> = Arc<Mutex<Weak<T>>>;

impl<T: Shared> Default for Pool<T> {
    fn default() -> Self {
        Pool::new()
    }
}

impl<T: Shared> Pool<T> {
    pub const fn new() -> Pool<T> {
        Pool { slots: Mutex::new(None) }
    }

    /// The instance shared under `id`, or a new one from `make` (registered under `id` unless it is empty). The
    /// second value is `make`'s note (only when this call made the session).
    pub fn get(
        &self,
        id: &str,
        key: &InstanceKey,
        make: impl FnOnce() -> Result<(T, Option<String>), PoolError>,
    ) -> Result<(Arc<T>, Option<String>), PoolError> {
        if id.is_empty() {
            let (t, note) = make()?;
            return Ok((Arc::new(t), note));
        }
        let slot: Slot<T> = {
            let mut guard = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let pool = guard.get_or_insert_with(HashMap::new);
            // Slots whose instance is gone and that no caller holds go (a caller holds its clone from here until its
            // session is made, so a slot being filled is never replaced by a second one).
            pool.retain(|_, s| Arc::strong_count(s) > 1 || s.try_lock().map_or(true, |w| w.strong_count() > 0));
            pool.entry(id.to_owned()).or_default().clone()
        };
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(running) = slot.upgrade() {
            if running.key() != key {
                return Err(PoolError::Mismatch {
                    id: id.to_owned(),
                    running: Box::new(running.key().clone()),
                    asked: Box::new(key.clone()),
                });
            }
            return Ok((running, None));
        }
        let (t, note) = make()?;
        let t = Arc::new(t);
        *slot = Arc::downgrade(&t);
        Ok((t, note))
    }
}

impl PoolError {
    /// The element error at start: a provider that cannot start is a library error, a model that cannot be loaded a
    /// read error, another element's instance under the same id a settings error.
    pub fn to_error_message(&self) -> gst::ErrorMessage {
        match self {
            PoolError::Engine(e @ EngineError::Provider { .. }) => gst::error_msg!(gst::LibraryError::Init, ("{e}")),
            PoolError::Engine(e) => gst::error_msg!(gst::ResourceError::OpenRead, ("{e}")),
            e @ PoolError::Mismatch { .. } => gst::error_msg!(gst::ResourceError::Settings, ("{e}")),
        }
    }
}
