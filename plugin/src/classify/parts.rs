// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the jobs of odmclassify share, each behind its own lock: the settings (its properties), the streaming state
//! (made in `start`, dropped in `stop`) and the counters. The element's glue holds them in an `Arc`, which the latency
//! timer holds too (weakly). Lock order: settings, then state, then stats (a frame's second half counts under the
//! state lock); none of them is held across an inference run, a wait for the batching service, or a push.

use std::sync::{Mutex, MutexGuard};

use super::settings::Settings;
use super::state::State;
use super::stats::Stats;

#[derive(Default)]
pub(super) struct Parts {
    pub(super) settings: Mutex<Settings>,
    pub(super) state: Mutex<Option<State>>,
    pub(super) stats: Mutex<Stats>,
}

impl Parts {
    pub(super) fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn state(&self) -> MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn stats(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}
