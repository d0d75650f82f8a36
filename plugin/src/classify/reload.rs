// SPDX-License-Identifier: MIT OR Apache-2.0
//! Hot reload and live thresholds: the `bundle` property while running (read and checked with no lock held, swapped
//! in between two frames) and `novelty-threshold` / `anomaly-threshold` / `reference-ratio` / `category-votes`
//! (applied to the scorer between two frames).
//! Frames already cropped keep the bundle and thresholds they were cropped under.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use odm_core::bundle::sibling_bundle_path;

use super::messages::{self, Obj};
use super::parts::Parts;
use super::scoring::{raised_text, Scoring};
use super::settings::{threshold, Live};
use super::state::{read_bundle, Network};

/// The `bundle` property. Stopped, it is only stored. Running, the file is read and checked against the running
/// network with no lock held, then swapped in between two frames; a bad file is refused with a warning and the
/// old bundle stays. A reload says on the bus which bundle is live.
pub(super) fn set_bundle(obj: &Obj, parts: &Parts, new: Option<PathBuf>) {
    let live = parts.settings().live.clone();
    let network = parts.state().as_ref().map(|st| st.network.clone());
    let Some(network) = network else {
        parts.settings().bundle = new;
        return;
    };
    let path = new.clone().unwrap_or_else(|| sibling_bundle_path(&network.path));
    let prepared = prepare(&network, &path, &live);
    let message = {
        let mut s = parts.settings();
        let mut guard = parts.state();
        match (prepared, guard.as_mut()) {
            (Ok((mut scoring, classes)), Some(state)) if Arc::ptr_eq(&state.network, &network) => {
                // A new generation: per-object memory of the old bundle is forgotten before its next frame.
                scoring.generation = state.scoring.generation + 1;
                // The thresholds, the reference ratio and the category votes in force now (one may have been set
                // while the file was read).
                let rules = scoring
                    .set_reference_ratio(s.live.reference_ratio)
                    .and_then(|()| scoring.set_category_votes(s.live.category_votes))
                    .map_err(|e| e.to_string());
                match rules.and_then(|()| {
                    scoring
                        .scorer
                        .set_overrides(threshold(s.live.novelty_threshold), threshold(s.live.anomaly_threshold))
                        .map_err(|e| e.to_string())
                }) {
                    Ok(()) => {
                        let text = format!(
                            "bundle {} ({}, {classes} classes) is live in place of {}",
                            path.display(),
                            scoring.name,
                            state.scoring.path.display()
                        );
                        state.scoring = Arc::new(scoring);
                        s.bundle = new;
                        Some(messages::info(obj, gst::ResourceError::Settings, &text))
                    }
                    Err(e) => Some(messages::warning(
                        obj,
                        gst::ResourceError::Settings,
                        &format!(
                            "bundle {} refused, {} stays: the threshold or reference-ratio overrides in force do not \
                             fit it: {e}",
                            path.display(),
                            state.scoring.path.display()
                        ),
                    )),
                }
            }
            (Err(e), Some(state)) => Some(messages::warning(
                obj,
                gst::ResourceError::Settings,
                &format!("bundle {} refused, {} stays: {e}", path.display(), state.scoring.path.display()),
            )),
            (_, Some(_)) => Some(messages::warning(
                obj,
                gst::ResourceError::Settings,
                &format!(
                    "bundle {} was not loaded: the element restarted while the file was read; set it again",
                    path.display()
                ),
            )),
            // Stopped while the file was read: stored, and checked at the next start.
            (_, None) => {
                s.bundle = new;
                None
            }
        }
    };
    messages::post_all(obj, message.into_iter().collect());
}

/// `novelty-threshold` or `anomaly-threshold`: applied to the scorer between two frames (frames already cropped
/// keep the thresholds they were cropped under), or refused with a warning and the old values kept. Overrides
/// that cross a class's other threshold are kept, and said on the bus.
pub(super) fn set_threshold(obj: &Obj, parts: &Parts, name: &str, v: f64) {
    let (refused, raised) = {
        let mut s = parts.settings();
        let (n, a) =
            if name == "novelty-threshold" { (v, s.live.anomaly_threshold) } else { (s.live.novelty_threshold, v) };
        let (refused, raised) = match parts.state().as_mut() {
            Some(state) => {
                let scoring = Arc::make_mut(&mut state.scoring);
                match scoring.scorer.set_overrides(threshold(n), threshold(a)) {
                    Ok(()) => (None, scoring.scorer.raised_anomaly_bands()),
                    Err(e) => (Some(e), None),
                }
            }
            None => (None, None),
        };
        if refused.is_none() {
            s.live.novelty_threshold = n;
            s.live.anomaly_threshold = a;
        }
        (refused, raised)
    };
    let mut posts = Vec::new();
    if let Some(e) = refused {
        posts.push(messages::warning(obj, gst::LibraryError::Settings, &format!("{name} = {v} refused: {e}")));
    }
    if let Some((classes, highest)) = raised {
        posts.push(messages::warning(
            obj,
            gst::LibraryError::Settings,
            &raised_text(&format!("{name} = {v}"), classes, highest),
        ));
    }
    messages::post_all(obj, posts);
}

/// `reference-ratio`: applied to the scorer between two frames (frames already cropped keep the rule they were
/// cropped under), or refused with a warning and the old value kept (a ratio on a bundle with no category
/// references). -1 while running: the bundle's own rule again.
pub(super) fn set_reference_ratio(obj: &Obj, parts: &Parts, v: f64) {
    set_scoring_rule(obj, parts, "reference-ratio", v, |sc| sc.set_reference_ratio(v), |live| live.reference_ratio = v);
}

/// `category-votes`: applied to the scorer between two frames (frames already cropped keep the number they were
/// cropped under), or refused with a warning and the old value kept. 0 while running: the bundle's own number again.
pub(super) fn set_category_votes(obj: &Obj, parts: &Parts, v: u32) {
    set_scoring_rule(obj, parts, "category-votes", v, |sc| sc.set_category_votes(v), |live| live.category_votes = v);
}

/// A scoring property set while the element may run: `apply` puts it in force on the live scoring (between two
/// frames), and only if that succeeds (or nothing runs) `store` keeps it in the settings; a refusal is a warning
/// naming the property, the value and the cause.
fn set_scoring_rule<V: std::fmt::Display>(
    obj: &Obj,
    parts: &Parts,
    name: &str,
    v: V,
    apply: impl FnOnce(&mut Scoring) -> Result<(), odm_core::ScoreError>,
    store: impl FnOnce(&mut Live),
) {
    let refused = {
        let mut s = parts.settings();
        let refused = parts.state().as_mut().and_then(|state| apply(Arc::make_mut(&mut state.scoring)).err());
        if refused.is_none() {
            store(&mut s.live);
        }
        refused
    };
    if let Some(e) = refused {
        let text = format!("{name} = {v} refused: {e}");
        messages::post_all(obj, vec![messages::warning(obj, gst::LibraryError::Settings, &text)]);
    }
}

/// A reload's first half, with no lock held: read the bundle at `path` and check it against the running
/// network (its hash when the session was made, its input and output). The caller swaps it in between two frames.
fn prepare(network: &Network, path: &Path, live: &Live) -> Result<(Scoring, usize), String> {
    let bundle = read_bundle(path).map_err(|(_, text)| text)?;
    if bundle.model.sha256 != network.sha256 {
        return Err(format!(
            "{}: it was made for another network (model.sha256 {}) than the one running, read from {} at start \
             (sha256 {})",
            path.display(),
            bundle.model.sha256,
            network.path.display(),
            network.sha256
        ));
    }
    network.check_io(path, &bundle)?;
    Ok((Scoring::new(&bundle, path, live)?, bundle.classes.len()))
}
