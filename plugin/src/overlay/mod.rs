// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmoverlay`: draws each ROI's box and result, coloured by verdict, into the frame.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct OdmOverlay(ObjectSubclass<imp::OdmOverlay>) @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "odmoverlay", gst::Rank::NONE, OdmOverlay::static_type())
}
