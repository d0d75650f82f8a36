// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmexport`: writes one JSON line per frame with every ROI and its result; passes buffers through untouched.

use gst::glib;
use gst::prelude::*;

mod imp;
pub mod line;

glib::wrapper! {
    pub struct OdmExport(ObjectSubclass<imp::OdmExport>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "odmexport", gst::Rank::NONE, OdmExport::static_type())
}
