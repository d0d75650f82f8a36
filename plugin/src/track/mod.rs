// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmtrack`: stable ROI ids across frames. Each `GstVideoRegionOfInterestMeta`'s `id` becomes a track id (IoU
//! association with a constant-velocity prediction, SORT-like, see [`sort`]); the detector's own id is kept in an
//! `odm-track` param.

use gst::glib;
use gst::prelude::*;

mod imp;
pub mod sort;

pub use imp::PARAM;

glib::wrapper! {
    pub struct OdmTrack(ObjectSubclass<imp::OdmTrack>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "odmtrack", gst::Rank::NONE, OdmTrack::static_type())
}
