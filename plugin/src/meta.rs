// SPDX-License-Identifier: MIT OR Apache-2.0
//! How odm's results travel on buffers.
//!
//! Each classified `GstVideoRegionOfInterestMeta` gets a param structure named `odm` (the convention DL Streamer and
//! others read). GStreamer 1.22.0 drops ROI params whenever metas are copied (videoconvert, videoscale, any buffer
//! copy) while the rectangle and id survive, so the same results also travel in a custom meta, `OdmResultsMeta`,
//! that survives copies: its structure holds `results`, an array of `odm` structures, each keyed by `roi-id`.
//! odm's elements read the custom meta and join it with the ROI metas by id; applications may read either.

use std::sync::Arc;

use gst::prelude::*;
use gst_video::VideoRegionOfInterestMeta;
use odm_core::{Category, Verdict};

/// Name of the custom meta that carries results across copies.
pub const RESULTS_META: &str = "OdmResultsMeta";
/// The same name as a C string, for the per-frame calls (gstreamer-rs would copy the `&str` into a new C string on
/// every call).
const RESULTS_META_C: &std::ffi::CStr = c"OdmResultsMeta";
/// Name of the ROI param structure (and of each entry of the custom meta).
pub const PARAM: &str = "odm";
/// ROI type of the meta added in `mode=frame`, covering the whole buffer.
pub const FRAME_ROI_TYPE: &str = "odm-frame";

/// Register the custom meta once per process (called from `plugin_init`).
pub fn register() {
    if !gst::meta::CustomMeta::is_registered(RESULTS_META) {
        // No tags: every transform (copy, scale, convert) keeps it.
        gst::meta::CustomMeta::register(RESULTS_META, &[]);
    }
}

/// A rectangle `(x, y, w, h)` in pixels, as ROI metas store it.
pub type Rect = (u32, u32, u32, u32);

/// What happened to one ROI.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Classified {
        class_id: i32,
        /// Shared with the bundle's label list: a result costs no allocation for it.
        label: Arc<str>,
        distance: f64,
        verdict: Verdict,
        /// The sign category: the class's for `known`, the nearest class's for `novelty`, none for `anomaly` or
        /// when the bundle gives the class none (`odm_core::Scorer::category`).
        category: Option<Category>,
        /// In [0, 1], at least 0.5 exactly when the scorer said `known` (`odm_core::ScoreResult::confidence`): with
        /// `vote-window` this frame's own, and on a reused result the earlier frame's, as its distance.
        confidence: f64,
        /// With the bundle's reference rule in force when the crop was scored: the ratio times its distance to the
        /// nearest category reference (`odm_core::ScoreResult::reference_bound`); the crop is `known` only within
        /// both this and the novelty threshold. None without the rule.
        reference_bound: Option<f64>,
    },
    /// Not classified; `reason` says why (too small, outside the frame, invalid model output...).
    Skipped { reason: String },
}

/// This frame's own result of a tracked object, kept beside the voted one (`vote-window`).
#[derive(Debug, Clone, PartialEq)]
pub struct RawResult {
    pub class_id: i32,
    pub label: Arc<str>,
    pub distance: f64,
    pub verdict: Verdict,
    pub category: Option<Category>,
}

/// The result for one ROI, as written on the buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct RoiResult {
    /// `id` of the ROI meta it belongs to.
    pub roi_id: i32,
    /// The ROI rectangle when it was classified (x, y, w, h), in the classifier's frame.
    pub rect: Rect,
    pub outcome: Outcome,
    pub novelty_threshold: f64,
    pub anomaly_threshold: f64,
    /// Bundle name of the model that produced it (shared, as the labels).
    pub model: Arc<str>,
    /// Reused from an earlier frame for the same ROI id (`reclassify-interval`), not computed on this one.
    pub reused: bool,
    /// With `vote-window`, this frame's own result; `outcome` is then the majority over the object's last results.
    pub raw: Option<RawResult>,
    /// With odmclassify `attach-embedding=true`: the crop's embedding, computed on this frame (none on a reused or
    /// skipped result).
    pub embedding: Option<Vec<f32>>,
}

impl RoiResult {
    pub fn verdict_str(&self) -> &str {
        match &self.outcome {
            Outcome::Classified { verdict, .. } => verdict.as_str(),
            Outcome::Skipped { .. } => "skipped",
        }
    }

    /// The `odm` structure: the ROI param, and one entry of the custom meta.
    pub fn to_structure(&self) -> gst::Structure {
        let b = gst::Structure::builder(PARAM)
            .field("roi-id", self.roi_id)
            .field("x", self.rect.0)
            .field("y", self.rect.1)
            .field("w", self.rect.2)
            .field("h", self.rect.3);
        let b = match &self.outcome {
            Outcome::Classified { class_id, label, distance, verdict, category, confidence, reference_bound } => b
                .field("class-id", *class_id)
                .field("label", &**label)
                .field("distance", *distance)
                .field("confidence", *confidence)
                .field("verdict", verdict.as_str())
                // A NULL string when there is none (`anomaly`, or a bundle without categories).
                .field("category", category.map(Category::as_str))
                // Only with the reference rule.
                .field_if_some("reference-bound", *reference_bound),
            Outcome::Skipped { reason } => b
                .field("class-id", -1i32)
                .field("label", "")
                .field("distance", -1.0f64)
                .field("confidence", 0.0f64)
                .field("verdict", "skipped")
                .field("category", None::<&str>)
                .field("reason", reason.as_str()),
        };
        let mut b = b
            .field("novelty-threshold", self.novelty_threshold)
            .field("anomaly-threshold", self.anomaly_threshold)
            .field("model", &*self.model)
            .field("reused", self.reused);
        if let Some(raw) = &self.raw {
            b = b
                .field("raw-class-id", raw.class_id)
                .field("raw-label", &*raw.label)
                .field("raw-distance", raw.distance)
                .field("raw-verdict", raw.verdict.as_str())
                .field("raw-category", raw.category.map(Category::as_str));
        }
        if let Some(e) = &self.embedding {
            b = b.field("embedding", gst::Array::new(e.iter().map(|&v| v.to_send_value())));
        }
        b.build()
    }

    /// Parse an `odm` structure; `None` if it is not one or a field is missing or of the wrong type.
    pub fn from_structure(s: &gst::StructureRef) -> Option<RoiResult> {
        if s.name() != PARAM {
            return None;
        }
        let verdict = s.get::<&str>("verdict").ok()?;
        let outcome = if verdict == "skipped" {
            Outcome::Skipped { reason: s.get::<&str>("reason").ok()?.to_owned() }
        } else {
            Outcome::Classified {
                class_id: s.get("class-id").ok()?,
                label: Arc::from(s.get::<&str>("label").ok()?),
                distance: s.get("distance").ok()?,
                verdict: verdict.parse().ok()?,
                category: category(s, "category")?,
                confidence: s.get("confidence").ok()?,
                reference_bound: optional(s, "reference-bound")?,
            }
        };
        Some(RoiResult {
            roi_id: s.get("roi-id").ok()?,
            rect: (s.get("x").ok()?, s.get("y").ok()?, s.get("w").ok()?, s.get("h").ok()?),
            outcome,
            novelty_threshold: s.get("novelty-threshold").ok()?,
            anomaly_threshold: s.get("anomaly-threshold").ok()?,
            model: Arc::from(s.get::<&str>("model").ok()?),
            // Optional: absent in results of older odm versions.
            reused: s.get("reused").unwrap_or(false),
            raw: (|| {
                Some(RawResult {
                    class_id: s.get("raw-class-id").ok()?,
                    label: Arc::from(s.get::<&str>("raw-label").ok()?),
                    distance: s.get("raw-distance").ok()?,
                    verdict: s.get::<&str>("raw-verdict").ok()?.parse().ok()?,
                    category: category(s, "raw-category")?,
                })
            })(),
            embedding: embedding(s),
        })
    }
}

/// A category field of an `odm` structure: `Some(None)` when it is a NULL string or absent (results of older odm
/// versions), `None` when it is of another type or names no category.
fn category(s: &gst::StructureRef, field: &str) -> Option<Option<Category>> {
    match s.get::<Option<&str>>(field) {
        Ok(Some(name)) => name.parse().ok().map(Some),
        Ok(None) | Err(gst::structure::GetError::FieldNotFound { .. }) => Some(None),
        Err(_) => None,
    }
}

/// An optional double field of an `odm` structure: `Some(None)` when absent, `None` when of another type.
fn optional(s: &gst::StructureRef, field: &str) -> Option<Option<f64>> {
    match s.get::<f64>(field) {
        Ok(v) => Some(Some(v)),
        Err(gst::structure::GetError::FieldNotFound { .. }) => Some(None),
        Err(_) => None,
    }
}

/// The `embedding` field of an `odm` structure: an array of floats, `None` when absent or of another type.
fn embedding(s: &gst::StructureRef) -> Option<Vec<f32>> {
    let array = s.get::<gst::ArrayRef>("embedding").ok()?;
    array.iter().map(|v| v.get::<f32>().ok()).collect()
}

/// Write `results` into the buffer's `OdmResultsMeta` (created if absent). Entries for ROI ids already present are
/// replaced, others kept, so two classifiers in a row each leave their results.
pub fn attach(buffer: &mut gst::BufferRef, results: &[RoiResult]) -> Result<(), gst::glib::BoolError> {
    // The meta an earlier classifier left, whose entries stay unless this one has a result for the same ROI; else a
    // new meta, built straight from the results. Through the C API with a static name: no allocation of our own.
    // SAFETY: `buffer` is a valid, writable buffer for the length of the borrow; the name is a NUL-terminated static
    // string. The meta and its structure belong to the buffer, which the `&mut` borrow keeps alive and unshared while
    // the structure is written; GStreamer returns NULL (handled) when the name is not a registered custom meta.
    unsafe {
        let buf = buffer.as_mut_ptr();
        let existing = gst::ffi::gst_buffer_get_custom_meta(buf, RESULTS_META_C.as_ptr());
        let (meta, array) = if existing.is_null() {
            (gst::ffi::gst_buffer_add_custom_meta(buf, RESULTS_META_C.as_ptr()), None)
        } else {
            let earlier =
                entries(gst::StructureRef::from_glib_borrow(gst::ffi::gst_custom_meta_get_structure(existing)));
            let kept = earlier.iter().filter(|old| !results.iter().any(|r| r.roi_id == old.roi_id));
            (existing, Some(gst::Array::new(kept.chain(results).map(RoiResult::to_structure))))
        };
        if meta.is_null() {
            return Err(gst::glib::bool_error!("cannot add {RESULTS_META}: it is not registered"));
        }
        let array = array.unwrap_or_else(|| gst::Array::new(results.iter().map(RoiResult::to_structure)));
        gst::StructureRef::from_glib_borrow_mut(gst::ffi::gst_custom_meta_get_structure(meta)).set("results", array);
    }
    Ok(())
}

/// The results in the buffer's `OdmResultsMeta` (empty when there is none).
pub fn read(buffer: &gst::BufferRef) -> Vec<RoiResult> {
    gst::meta::CustomMeta::from_buffer(buffer, RESULTS_META).map_or_else(|_| Vec::new(), |m| entries(m.structure()))
}

/// The entries of an `OdmResultsMeta`'s structure.
fn entries(s: &gst::StructureRef) -> Vec<RoiResult> {
    let Ok(array) = s.get::<gst::Array>("results") else {
        return Vec::new();
    };
    array.iter().filter_map(|v| v.get::<gst::Structure>().ok()).filter_map(|s| RoiResult::from_structure(&s)).collect()
}

/// The `odm` param of one ROI meta, if it has one (absent after a copy on GStreamer 1.22.0).
pub fn roi_param(meta: &VideoRegionOfInterestMeta) -> Option<RoiResult> {
    meta.param(PARAM).and_then(RoiResult::from_structure)
}

/// One ROI meta of a buffer joined with its result.
#[derive(Debug, Clone, PartialEq)]
pub struct RoiEntry {
    /// The rectangle as it is now (after any scaling downstream of the classifier).
    pub rect: Rect,
    pub roi_type: String,
    pub id: i32,
    pub result: Option<RoiResult>,
    /// The detector's score, when odmdetect made the ROI and its `odm-detection` param survived (GStreamer 1.22.0
    /// drops ROI params on a copy of the buffer).
    pub score: Option<f64>,
}

/// Every ROI of a buffer with its result: from the ROI param when present, else from the custom meta by id.
pub fn results_by_roi(buffer: &gst::BufferRef) -> Vec<RoiEntry> {
    let custom = read(buffer);
    buffer
        .iter_meta::<VideoRegionOfInterestMeta>()
        .map(|m| RoiEntry {
            rect: m.rect(),
            roi_type: m.roi_type().to_owned(),
            id: m.id(),
            result: roi_param(&m).or_else(|| custom.iter().find(|r| r.roi_id == m.id()).cloned()),
            score: m.param("odm-detection").and_then(|p| p.get::<f64>("score").ok()),
        })
        .collect()
}

/// ROI ids not in `used` (sorted ascending): above the highest first, then from 0 up, then the negatives; every i32
/// is reachable, so a buffer with an id of i32::MAX still gets distinct ones (never an overflow).
pub fn fresh_ids(used: &[i32]) -> impl Iterator<Item = i32> + '_ {
    // Empty when the highest used id is i32::MAX.
    let from = used.last().map_or(Some(0), |&m| m.checked_add(1));
    let above = from.into_iter().flat_map(|f| f..=i32::MAX);
    above.chain(0..=i32::MAX).chain(i32::MIN..0).filter(move |id| used.binary_search(id).is_err())
}

/// `n` ids for new ROI metas on `buffer`, none of which a ROI meta of it has, into `out`. `used` is scratch: with
/// both kept by the caller, a steady stream allocates nothing here.
pub fn new_roi_ids(buffer: &gst::BufferRef, n: usize, used: &mut Vec<i32>, out: &mut Vec<i32>) {
    used.clear();
    used.extend(buffer.iter_meta::<VideoRegionOfInterestMeta>().map(|m| m.id()));
    used.sort_unstable();
    out.clear();
    out.extend(fresh_ids(used).take(n));
}

#[cfg(test)]
mod tests {
    use super::fresh_ids;

    #[test]
    fn fresh_ids_never_overflow_and_never_repeat_a_used_one() {
        assert_eq!(fresh_ids(&[]).take(2).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(fresh_ids(&[3, 7]).take(2).collect::<Vec<_>>(), [8, 9]);
        assert_eq!(fresh_ids(&[0, 1, i32::MAX]).take(2).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(fresh_ids(&[i32::MAX - 1, i32::MAX]).take(3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(fresh_ids(&[i32::MAX]).next(), Some(0));
    }
}
