// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmpublish`: sends one JSON message per frame (odmexport's fields, a sequence number and the stream's name) to an
//! MQTT broker, spooled so that nothing is lost while the broker is away; passes buffers through untouched.

use gst::glib;
use gst::prelude::*;

mod client;
mod imp;
mod message;
mod settings;
mod spool;
mod topic;

glib::wrapper! {
    pub struct OdmPublish(ObjectSubclass<imp::OdmPublish>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "odmpublish", gst::Rank::NONE, OdmPublish::static_type())
}
