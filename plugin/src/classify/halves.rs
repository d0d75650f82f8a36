// SPDX-License-Identifier: MIT OR Apache-2.0
//! The two halves of an odmclassify frame, on whichever path it takes (synchronous or in flight): `prepare` (ids, the
//! ROIs to classify, reuse of remembered results, crops) before the embedding, `finish` (scores, votes, results on
//! the buffer, messages, counters) after it. Both run under the state lock; neither waits for anything.

use std::sync::Mutex;

use gst_video::VideoRegionOfInterestMeta;

use odm_core::preprocess::{check_roi, crop_to_tensor_with, CropSpec, Roi};

use super::frame::{FrameWork, Job, Skip};
use super::messages::{self, Obj, CAT};
use super::settings::{threshold, Live};
use super::state::State;
use super::stats::Stats;
use super::Mode;
use crate::meta::{self, Outcome, RawResult, RoiResult};

/// Give ROI metas distinct ids where they collide (ROI metas are created with id 0 unless the producer sets
/// one), so results can be joined back by id after copies. New ids are ones no meta has (never an overflow, even
/// next to i32::MAX). `ids` is scratch; `duplicated` gets the ids that came more than once and the fresh ids
/// given in their place: which box is which among them is not known, so none of them is followed by id.
fn ensure_unique_ids(buffer: &mut gst::BufferRef, ids: &mut Vec<i32>, duplicated: &mut Vec<i32>) {
    ids.clear();
    duplicated.clear();
    ids.extend(buffer.iter_meta::<VideoRegionOfInterestMeta>().map(|m| m.id()));
    ids.sort_unstable();
    for w in ids.windows(2) {
        if w[0] == w[1] && duplicated.last() != Some(&w[0]) {
            duplicated.push(w[0]);
        }
    }
    if duplicated.is_empty() {
        return;
    }
    // Ids no meta has, enough for every duplicate; then `ids` holds the ids seen so far.
    let total = ids.len();
    ids.dedup();
    let mut fresh: Vec<i32> = meta::fresh_ids(ids).take(total - ids.len()).collect();
    duplicated.extend_from_slice(&fresh);
    fresh.reverse();
    ids.clear();
    for mut m in buffer.iter_meta_mut::<VideoRegionOfInterestMeta>() {
        if ids.contains(&m.id()) {
            if let Some(id) = fresh.pop() {
                m.set_id(id);
            }
        }
        ids.push(m.id());
    }
}

/// The first half of a frame: give ROI metas distinct ids, pick the ROIs to classify, skip those that cannot be
/// (with the reason) or reuse a tracked one's result, and crop the rest into `work`'s rows. `in_flight`: how many
/// frames prepared before this one may not be finished yet (0 on the synchronous path); the memory's decisions are
/// the same whichever of them are.
#[allow(clippy::too_many_arguments)]
pub(super) fn prepare(
    obj: &Obj,
    state: &mut State,
    work: &mut FrameWork,
    mode: Mode,
    live: &Live,
    in_flight: u64,
    buffer: &mut gst::BufferRef,
    posts: &mut Vec<gst::Message>,
) -> Result<(), gst::FlowError> {
    work.clear();
    let State { network, scoring, info, ids, new_ids, duplicated, crop_scratch, tracks, .. } = state;
    work.scoring = Some(scoring.clone());
    // Objects are followed by ROI id in roi mode (a frame ROI gets a new id each frame).
    let tracking = mode == Mode::Roi && (live.reclassify_interval > 1 || live.vote_window > 1);
    work.tracking = tracking;
    work.window = live.vote_window;
    if tracking {
        // Memory of another bundle is forgotten (a reload may change the classes a result's index names).
        tracks.set_generation(scoring.generation);
        tracks.next_frame(2 * (live.reclassify_interval as u64 + live.vote_window as u64) + 30);
    }
    let Some(info) = info.as_ref() else {
        posts.push(messages::error(obj, gst::CoreError::Negotiation, "a buffer came before caps"));
        return Err(gst::FlowError::NotNegotiated);
    };
    let (width, height) = (info.width(), info.height());

    if mode == Mode::Frame {
        meta::new_roi_ids(buffer, 1, ids, new_ids);
        let next = new_ids.first().copied().unwrap_or(0);
        let mut m = VideoRegionOfInterestMeta::add(buffer, meta::FRAME_ROI_TYPE, (0, 0, width, height));
        m.set_id(next);
    }
    ensure_unique_ids(buffer, ids, duplicated);

    let wanted = |t: &str| match mode {
        Mode::Frame => t == meta::FRAME_ROI_TYPE,
        Mode::Roi => live.roi_type.is_empty() || *live.roi_type == *t,
    };
    work.jobs.extend(buffer.iter_meta::<VideoRegionOfInterestMeta>().filter(|m| wanted(m.roi_type())).map(|m| Job {
        id: m.id(),
        rect: m.rect(),
        outcome: Err(Skip::Pending),
        reused: false,
        raw: None,
        tracked: tracking && !duplicated.contains(&m.id()),
        link: None,
    }));
    if work.jobs.is_empty() {
        return Ok(());
    }
    let frame_ref = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).map_err(|_| {
        let text = format!(
            "cannot map a buffer of {} bytes as a {}x{} {} frame",
            buffer.size(),
            width,
            height,
            info.format().to_str()
        );
        posts.push(messages::error(obj, gst::StreamError::Failed, &text));
        gst::FlowError::Error
    })?;
    let frame = crate::video::core_frame(&frame_ref).map_err(|text| {
        posts.push(messages::error(obj, gst::StreamError::Format, &text));
        gst::FlowError::Error
    })?;
    let sample = network.sample_len;
    // A buffer that is a crop is already framed: the context margin is for detector boxes only (the trainer
    // takes whole-image samples the same way).
    let crop = match mode {
        Mode::Frame => CropSpec { context: 0.0, ..scoring.crop },
        Mode::Roi => scoring.crop,
    };
    for j in 0..work.jobs.len() {
        let (x, y, w, h) = work.jobs[j].rect;
        let roi = Roi { x: x as i64, y: y as i64, w: w as i64, h: h as i64 };
        if let Err(e) = check_roi(roi, width, height) {
            work.jobs[j].outcome = Err(Skip::Outside(e));
            continue;
        }
        // Size that lies inside the frame (check_roi ensured x < width, y < height; the far edge of an upstream
        // box may not fit in u32).
        let (vis_w, vis_h) = (x.saturating_add(w).min(width) - x, y.saturating_add(h).min(height) - y);
        if vis_w < live.min_size || vis_h < live.min_size {
            work.jobs[j].outcome = Err(Skip::Small(vis_w, vis_h, live.min_size));
            continue;
        }
        if live.max_size > 0 && (vis_w > live.max_size || vis_h > live.max_size) {
            work.jobs[j].outcome = Err(Skip::Large(vis_w, vis_h, live.max_size));
            continue;
        }
        let (id, rect, tracked) = (work.jobs[j].id, work.jobs[j].rect, work.jobs[j].tracked);
        if tracked && live.reclassify_interval > 1 {
            // Taken when the frame is finished, from the frame it follows (finished by then).
            let link = tracks.reuse(id, rect, live.reclassify_interval, live.memory_iou, in_flight);
            if link.is_some() {
                (work.jobs[j].link, work.jobs[j].reused) = (link, true);
                continue;
            }
        }
        if let Err(e) = crop_to_tensor_with(&frame, roi, &crop, work.next_row(sample), crop_scratch) {
            work.jobs[j].outcome = Err(Skip::Preprocess(e));
            continue;
        }
        if tracked {
            work.jobs[j].link = Some(tracks.send(id, rect, live.memory_iou));
        }
        work.push_row(j);
    }
    Ok(())
}

/// The second half of a frame, once its rows are embedded: score, vote, write the results on the buffer, post the
/// messages, count.
pub(super) fn finish(
    obj: &Obj,
    stats: &Mutex<Stats>,
    state: &mut State,
    work: &mut FrameWork,
    live: &Live,
    buffer: &mut gst::BufferRef,
    posts: &mut Vec<gst::Message>,
) -> Result<(), gst::FlowError> {
    // Scored by the bundle the frame was cropped for (a frame in flight may outlive a reload).
    let scoring = work.scoring.take().unwrap_or_else(|| state.scoring.clone());
    let State { network, drift, tracks, results, invalid_warned, .. } = state;
    work.score(&scoring.scorer, network.dim);
    if let Some(e) = &work.crops.error {
        posts.push(messages::warning(obj, gst::StreamError::Failed, &e.to_string()));
    }
    if work.invalid > 0 && *invalid_warned != Some(scoring.generation) {
        *invalid_warned = Some(scoring.generation);
        let text = format!(
            "the network {} gave a non-finite embedding (NaN or infinite) for {} of {} crops: they are skipped \
             as \"invalid model output\" (said once per bundle); check the network, and the input \
             normalisation of bundle {} (mean, std)",
            network.path.display(),
            work.invalid,
            work.rows.len(),
            scoring.path.display()
        );
        posts.push(messages::warning(obj, gst::StreamError::Decode, &text));
    }
    // Frames finish in order: this frame's real results are recorded after every earlier frame's, and a reused one
    // is taken from the earlier frame it follows, finished by now. Memory is written only under the bundle it
    // belongs to (the one this frame was cropped for, as it was made when the frame was prepared).
    let category = |k: usize, v: odm_core::Verdict| scoring.scorer.category(k, v);
    for job in work.jobs.iter_mut() {
        let Some(link) = &job.link else { continue };
        if job.reused {
            job.outcome = link.resolve(scoring.generation).map_err(Skip::Unresolved);
        } else if let Ok(raw) = job.outcome {
            if let Some(reported) = link.record(scoring.generation, raw, work.window, category) {
                job.outcome = Ok(reported);
                job.raw = (work.window > 1).then_some(raw);
            }
        }
    }
    let jobs = &work.jobs;
    if !jobs.is_empty() {
        let scorer = &scoring.scorer;
        results.clear();
        let label = |k: usize| scoring.labels.get(k).cloned();
        results.extend(jobs.iter().enumerate().map(|(j, job)| {
            let (outcome, k) = match &job.outcome {
                // A class index always names a class of `scoring` (memory is kept per bundle generation); an
                // index outside it is refused, never written with another class's label.
                Ok(r) if label(r.class_index).is_none() => {
                    (Outcome::Skipped { reason: "internal: a result of another bundle".into() }, 0)
                }
                Ok(r) => (
                    Outcome::Classified {
                        class_id: r.class_id,
                        label: label(r.class_index).unwrap_or_default(),
                        distance: r.distance as f64,
                        verdict: r.verdict,
                        category: r.category,
                        confidence: r.confidence,
                        reference_bound: r.reference_bound.map(f64::from),
                    },
                    r.class_index,
                ),
                Err(skip) => (Outcome::Skipped { reason: skip.to_string() }, 0),
            };
            let (n, a) = scorer.thresholds(k);
            RoiResult {
                roi_id: job.id,
                rect: job.rect,
                outcome,
                novelty_threshold: n,
                anomaly_threshold: a,
                model: scoring.name.clone(),
                reused: job.reused && job.outcome.is_ok(),
                raw: job.raw.map(|r| RawResult {
                    class_id: r.class_id,
                    label: label(r.class_index).unwrap_or_default(),
                    distance: r.distance as f64,
                    verdict: r.verdict,
                    category: r.category,
                }),
                embedding: (live.attach_embedding && !job.reused).then(|| work.embedding_of(j, network.dim)).flatten(),
            }
        }));
        for mut m in buffer.iter_meta_mut::<VideoRegionOfInterestMeta>() {
            if let Some(r) = results.iter().find(|r| r.roi_id == m.id()) {
                m.add_param(r.to_structure());
            }
        }
        meta::attach(buffer, results).map_err(|e| {
            posts.push(messages::error(obj, gst::CoreError::Failed, &format!("cannot attach the results meta: {e}")));
            gst::FlowError::Error
        })?;
        gst::log!(CAT, obj = obj, "classified {} ROIs", results.len());
        if live.emit_messages {
            let s = gst::Structure::builder("odm-results")
                .field("pts", buffer.pts().map_or(-1i64, |t| t.nseconds() as i64))
                .field("model", &*scoring.name)
                .field("results", gst::Array::new(results.iter().map(RoiResult::to_structure)))
                .build();
            posts.push(gst::message::Element::builder(s).src(obj).build());
        }
    }

    // Counters: the stats property, and the drift window.
    {
        let mut st = stats.lock().unwrap_or_else(|e| e.into_inner());
        for took in &work.crops.runs {
            st.inference.push(took.as_secs_f64() * 1e6);
        }
        st.frames += 1;
        st.shared_runs += work.crops.shared_run as u64;
        st.tracked = tracks.len() as u64;
        st.rois += jobs.len() as u64;
        for job in jobs.iter() {
            st.verdicts[job.verdict_slot()] += 1;
            st.reused += (job.reused && job.outcome.is_ok()) as u64;
            st.reuse_failed += matches!(job.outcome, Err(Skip::Unresolved(_))) as u64;
        }
        if let Some(t0) = work.started {
            st.frame.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    if live.stats_interval > 0 {
        let span = 2.0 * threshold(live.anomaly_threshold).unwrap_or(scoring.anomaly_threshold).max(1e-9);
        drift.frames += 1;
        for job in jobs.iter() {
            drift.add(job.verdict_slot(), job.outcome.as_ref().ok().map(|r| r.distance as f64), span);
        }
        if drift.frames >= live.stats_interval {
            let pts = buffer.pts().map_or(-1i64, |t| t.nseconds() as i64);
            let s = drift.take_structure(pts, &scoring.name, span);
            posts.push(gst::message::Element::builder(s).src(obj).build());
        }
    }
    Ok(())
}
