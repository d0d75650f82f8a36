// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmproposals` implementation: an in-place BaseTransform running [`super::detect::Detector`] on every frame.

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::VideoRegionOfInterestMeta;

use super::detect::{Detector, Params, Proposal};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("odmproposals", gst::DebugColorFlags::empty(), Some("odm sign proposals"))
});

/// ROI type of the proposals.
pub const ROI_TYPE: &str = "traffic-sign-candidate";

#[derive(Default)]
struct State {
    info: Option<gst_video::VideoInfo>,
    detector: Detector,
    found: Vec<Proposal>,
    /// ROI id scratch: ids in use, new ids.
    used: Vec<i32>,
    ids: Vec<i32>,
}

#[derive(Default)]
pub struct OdmProposals {
    settings: Mutex<Params>,
    state: Mutex<State>,
}

#[glib::object_subclass]
impl ObjectSubclass for OdmProposals {
    const NAME: &'static str = "GstOdmProposals";
    type Type = super::OdmProposals;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for OdmProposals {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Params::default();
            vec![
                glib::ParamSpecUInt::builder("step")
                    .nick("Step")
                    .blurb("Sampling grid step in pixels (larger: faster, misses small signs)")
                    .minimum(1)
                    .maximum(64)
                    .default_value(d.step)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("min-size")
                    .nick("Minimum size")
                    .blurb("Smallest proposal side in pixels")
                    .minimum(1)
                    .default_value(d.min_size)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-size")
                    .nick("Maximum size")
                    .blurb("Largest proposal side in pixels")
                    .minimum(1)
                    .default_value(d.max_size)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-proposals")
                    .nick("Maximum proposals")
                    .blurb("Most proposals per frame (largest kept)")
                    .minimum(1)
                    .maximum(10_000)
                    .default_value(d.max_proposals as u32)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        let v: u32 = value.get().expect("type checked upstream");
        match pspec.name() {
            "step" => s.step = v,
            "min-size" => s.min_size = v,
            "max-size" => s.max_size = v,
            "max-proposals" => s.max_proposals = v as usize,
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        match pspec.name() {
            "step" => s.step.to_value(),
            "min-size" => s.min_size.to_value(),
            "max-size" => s.max_size.to_value(),
            "max-proposals" => (s.max_proposals as u32).to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for OdmProposals {}

impl ElementImpl for OdmProposals {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "odm sign proposals",
                "Filter/Analyzer/Video",
                "Proposes traffic-sign regions from colour (red, blue, yellow) and shape: high recall, many false \
                 positives; adds ROI metas of type traffic-sign-candidate",
                "odm developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = crate::video::formats_caps();
            crate::video::filter_templates(&caps)
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for OdmProposals {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = crate::video::info_from_caps(*CAT, incaps)?;
        self.state.lock().unwrap_or_else(|e| e.into_inner()).info = Some(info);
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let params = *self.settings.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let State { info, detector, found, used, ids } = &mut *state;
        // An error is posted once the state lock is released (a sync bus handler runs in this thread).
        let failed = match info.as_ref() {
            None => Some((gst::FlowError::NotNegotiated, "a buffer came before caps".to_owned())),
            Some(info) => match gst_video::VideoFrameRef::from_buffer_ref_readable(buf, info) {
                Err(_) => Some((
                    gst::FlowError::Error,
                    format!(
                        "cannot map a buffer of {} bytes as a {}x{} {} frame",
                        buf.size(),
                        info.width(),
                        info.height(),
                        info.format().to_str()
                    ),
                )),
                Ok(frame_ref) => match crate::video::core_frame(&frame_ref) {
                    Err(text) => Some((gst::FlowError::Error, text)),
                    Ok(frame) => {
                        detector.detect(&frame, &params, found);
                        None
                    }
                },
            },
        };
        if let Some((flow, text)) = failed {
            drop(state);
            gst::element_imp_error!(self, gst::StreamError::Format, ("{text}"));
            return Err(flow);
        }
        // New ids are ones no ROI meta of the buffer has (never an overflow next to i32::MAX).
        crate::meta::new_roi_ids(buf, found.len(), used, ids);
        for (&id, p) in ids.iter().zip(found.iter()) {
            let mut m = VideoRegionOfInterestMeta::add(buf, ROI_TYPE, (p.x, p.y, p.w, p.h));
            m.set_id(id);
            m.add_param(
                gst::Structure::builder("odm-proposal")
                    .field("colour", p.colour.as_str())
                    .field("fill", p.fill as f64)
                    .build(),
            );
        }
        gst::log!(CAT, imp = self, "{} proposals", found.len());
        Ok(gst::FlowSuccess::Ok)
    }
}
