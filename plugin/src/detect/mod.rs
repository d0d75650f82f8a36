// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmdetect`: a whole-frame ONNX detector (any network in a common output layout) adding ROI metas with the class
//! label as type, a score param and fresh ids (odmtrack makes them stable).

use gst::glib;
use gst::prelude::*;

pub mod decode;
mod imp;
mod inflight;
pub mod letterbox;
mod settings;

pub use imp::PARAM;

glib::wrapper! {
    pub struct OdmDetect(ObjectSubclass<imp::OdmDetect>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    decode::Decoder::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(Some(plugin), "odmdetect", gst::Rank::NONE, OdmDetect::static_type())
}
