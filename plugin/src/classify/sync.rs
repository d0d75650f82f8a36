// SPDX-License-Identifier: MIT OR Apache-2.0
//! The synchronous path (`frames-in-flight=0`): one frame on the streaming thread, from crops to results.

use super::halves::{finish, prepare};
use super::messages::{self, Obj};
use super::parts::Parts;
use super::settings::Live;
use super::Mode;
use crate::engine::batch;

/// One frame: crop under the state lock, embed with no element lock held (so that no property setter or getter waits
/// for an inference run), then score and write the results under the lock again.
pub(super) fn classify(
    obj: &Obj,
    parts: &Parts,
    mode: Mode,
    batch: usize,
    live: &Live,
    buffer: &mut gst::BufferRef,
    posts: &mut Vec<gst::Message>,
) -> Result<(), gst::FlowError> {
    let cropped = match parts.state().as_mut() {
        Some(state) => {
            let mut work = std::mem::take(&mut state.work);
            match prepare(obj, state, &mut work, mode, live, 0, buffer, posts) {
                Ok(()) => Ok((work, state.engine.clone(), state.shared.take())),
                Err(e) => {
                    state.work = work;
                    Err(e)
                }
            }
        }
        None => {
            posts.push(messages::error(obj, gst::CoreError::Negotiation, "a buffer came before the element started"));
            Err(gst::FlowError::NotNegotiated)
        }
    };
    let (mut work, engine, shared) = cropped?;
    let embedded = match shared.as_ref() {
        // A shared instance's service batches this frame with the other streams' waiting ones.
        Some(line) => line.round_trip(std::mem::take(&mut work.crops)).map(|back| work.crops = back).is_some(),
        None => {
            batch::run(&*engine, &mut work.crops, batch);
            true
        }
    };
    drop(engine);
    let mut guard = parts.state();
    // Stopped meanwhile: the buffer goes with the stream.
    let Some(state) = guard.as_mut() else { return Err(gst::FlowError::Flushing) };
    if state.shared.is_none() {
        state.shared = shared;
    }
    if !embedded {
        posts.push(messages::error(obj, gst::LibraryError::Failed, "the inference thread stopped"));
        return Err(gst::FlowError::Error);
    }
    let r = finish(obj, &parts.stats, state, &mut work, live, buffer, posts);
    state.work = work;
    r
}
