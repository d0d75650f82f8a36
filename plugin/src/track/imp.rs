// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmtrack` implementation: an in-place BaseTransform that relabels the ROI metas of each frame with
//! [`super::sort::Tracker`]. Pixels are never read, so any raw video (any format, any memory) passes.
//!
//! What each ROI meta becomes:
//! - its `id` is the track id (≥ 0) once the track has been matched in `min-hits` frames; before that, a
//!   provisional id (< 0) unique to the would-be track, and a box with no area gets a provisional id of its own. No
//!   ROI is ever dropped, and no id, track or provisional, is given twice in a stream.
//! - an `odm-track` param: `detector-id` (the id the ROI had when it reached the first odmtrack: a second tracker
//!   keeps it), `tracked` (the `id` is a published track id) and `hits` (frames the track has been matched in). Like
//!   every ROI param on GStreamer 1.22.0 it is lost when the buffer is copied; the `id` and its sign survive.
//!
//! Tracks are forgotten on FLUSH_STOP, on every SEGMENT event (seeks) and when the frame size changes; the id
//! counters go on, so ids from before a flush are not given again. READY→PAUSED starts a new stream: ids from 0.
//! Properties may change while PLAYING: they are read once per frame and take effect on the next frame.

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::glib::translate::IntoGlib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::VideoRegionOfInterestMeta;

use super::sort::{Detection, Label, Params, Tracker};

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| gst::DebugCategory::new("odmtrack", gst::DebugColorFlags::empty(), Some("odm ROI tracker")));

/// Name of the ROI param odmtrack writes.
pub const PARAM: &str = "odm-track";
const PARAM_C: &std::ffi::CStr = c"odm-track";

/// Largest `max-age`, in frames (tracks kept that long stay bounded by [`super::sort::MAX_TRACKS`]).
const MAX_AGE_LIMIT: u32 = 1000;
/// Largest `min-hits`.
const MIN_HITS_LIMIT: u32 = 100;

#[derive(Default)]
struct State {
    tracker: Tracker,
    /// Frame size of the caps, to forget tracks when it changes.
    size: Option<(i32, i32)>,
    /// Scratch: this frame's boxes and their labels.
    dets: Vec<Detection>,
    labels: Vec<Label>,
}

impl State {
    fn new() -> State {
        State { tracker: Tracker::new(), ..Default::default() }
    }
}

#[derive(Default)]
pub struct OdmTrack {
    settings: Mutex<Params>,
    state: Mutex<Option<State>>,
}

impl OdmTrack {
    fn forget_tracks(&self, why: &str) {
        if let Some(state) = self.state.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            gst::debug!(CAT, imp = self, "{why}: forgetting {} tracks", state.tracker.len());
            state.tracker.reset();
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for OdmTrack {
    const NAME: &'static str = "GstOdmTrack";
    type Type = super::OdmTrack;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for OdmTrack {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Params::default();
            vec![
                glib::ParamSpecDouble::builder("iou-threshold")
                    .nick("IoU threshold")
                    .blurb(
                        "Least overlap (intersection over union) of a box with a track's predicted box for the box to \
                         continue the track (0: any overlap); takes effect on the next frame",
                    )
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.iou_threshold)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-age")
                    .nick("Maximum age")
                    .blurb(
                        "Frames a track is kept without a box (occlusion, missed detections) before it is forgotten; \
                         takes effect on the next frame",
                    )
                    .minimum(0)
                    .maximum(MAX_AGE_LIMIT)
                    .default_value(d.max_age)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("min-hits")
                    .nick("Minimum hits")
                    .blurb(
                        "Frames a track must be matched in before its id is published; until then its ROIs carry a \
                         provisional negative id and tracked=false; takes effect on the next frame",
                    )
                    .minimum(1)
                    .maximum(MIN_HITS_LIMIT)
                    .default_value(d.min_hits)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        match pspec.name() {
            "iou-threshold" => s.iou_threshold = value.get().expect("type checked upstream"),
            "max-age" => s.max_age = value.get().expect("type checked upstream"),
            "min-hits" => s.min_hits = value.get().expect("type checked upstream"),
            other => unreachable!("unknown property {other}"),
        }
        gst::debug!(CAT, imp = self, "{} = {:?}", pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        match pspec.name() {
            "iou-threshold" => s.iou_threshold.to_value(),
            "max-age" => s.max_age.to_value(),
            "min-hits" => s.min_hits.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for OdmTrack {}

impl ElementImpl for OdmTrack {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "odm ROI tracker",
                "Filter/Analyzer/Video",
                "Gives ROI metas stable ids across frames (IoU association with a constant-velocity prediction, \
                 SORT-like); the detector's id is kept in an odm-track param",
                "odm developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            // Pixels are never read: any raw video, in any memory.
            let caps = gst::Caps::builder("video/x-raw").any_features().build();
            crate::video::filter_templates(&caps)
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for OdmTrack {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(State::new());
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let size = incaps.structure(0).and_then(|s| Some((s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?)));
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(state) = guard.as_mut() {
            if state.size.is_some() && state.size != size {
                gst::debug!(
                    CAT,
                    imp = self,
                    "frame size changed to {size:?}: forgetting {} tracks",
                    state.tracker.len()
                );
                state.tracker.reset();
            }
            state.size = size;
        }
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::FlushStop(_) => self.forget_tracks("flush"),
            gst::EventView::Segment(_) => self.forget_tracks("new segment"),
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let params = *self.settings.lock().unwrap_or_else(|e| e.into_inner());
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(State { tracker, dets, labels, .. }) = guard.as_mut() else {
            drop(guard);
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("a buffer came before the element started"));
            return Err(gst::FlowError::Flushing);
        };
        dets.clear();
        dets.extend(
            buf.iter_meta::<VideoRegionOfInterestMeta>()
                .map(|m| Detection { rect: m.rect(), kind: glib::Quark::from_str(m.roi_type()).into_glib() }),
        );
        tracker.update(dets, &params, labels);
        for (mut m, label) in buf.iter_meta_mut::<VideoRegionOfInterestMeta>().zip(labels.iter()) {
            let previous = m.id();
            m.set_id(label.id);
            write_param(&mut m, previous, label);
        }
        gst::log!(CAT, imp = self, "{} ROIs, {} tracks", labels.len(), tracker.len());
        Ok(gst::FlowSuccess::Ok)
    }
}

/// Set the `odm-track` param of `m`, in place when an earlier odmtrack left one (its `detector-id` is then kept).
fn write_param(
    m: &mut gst::meta::MetaRefMut<'_, VideoRegionOfInterestMeta, gst::meta::Iterated>,
    detector_id: i32,
    label: &Label,
) {
    // SAFETY: the meta belongs to a buffer borrowed mutably for the length of `m`; the name is a NUL-terminated static
    // string; the structure GStreamer returns (or NULL) is owned by the meta's param list, which nothing else touches
    // while `m` is borrowed.
    let existing = unsafe {
        let s = gst_video::ffi::gst_video_region_of_interest_meta_get_param(m.as_mut_ptr(), PARAM_C.as_ptr());
        (!s.is_null()).then(|| gst::StructureRef::from_glib_borrow_mut(s))
    };
    match existing {
        Some(s) => {
            if s.get::<i32>("detector-id").is_err() {
                s.set("detector-id", detector_id);
            }
            s.set("tracked", label.tracked);
            s.set("hits", label.hits);
        }
        None => m.add_param(
            gst::Structure::builder(PARAM)
                .field("detector-id", detector_id)
                .field("tracked", label.tracked)
                .field("hits", label.hits)
                .build(),
        ),
    }
}
