// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmproposals`: a fast colour-and-shape sign-proposal detector adding ROI metas of type
//! `traffic-sign-candidate`.

use gst::glib;
use gst::prelude::*;

pub mod detect;
mod imp;

glib::wrapper! {
    pub struct OdmProposals(ObjectSubclass<imp::OdmProposals>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "odmproposals", gst::Rank::NONE, OdmProposals::static_type())
}
