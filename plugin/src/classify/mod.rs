// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmclassify`: embeds every ROI of a frame with the bundle's network and attaches class, distance and verdict.

use gst::glib;
use gst::prelude::*;

mod frame;
mod halves;
mod imp;
mod inflight;
mod messages;
mod parts;
mod reload;
mod scoring;
mod settings;
mod state;
mod stats;
mod sync;
mod track;

/// What the element classifies.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstOdmClassifyMode")]
pub enum Mode {
    /// Every GstVideoRegionOfInterestMeta of the frame (filtered by roi-type).
    #[default]
    #[enum_value(name = "Classify each region-of-interest meta", nick = "roi")]
    Roi,
    /// The whole frame is one crop (an ROI meta of type odm-frame is added).
    #[enum_value(name = "Classify the whole frame as one crop", nick = "frame")]
    Frame,
}

/// Where ONNX Runtime runs the network (shared with odmdetect).
pub use crate::engine::ExecutionProvider;

glib::wrapper! {
    pub struct OdmClassify(ObjectSubclass<imp::OdmClassify>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    Mode::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    ExecutionProvider::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(Some(plugin), "odmclassify", gst::Rank::NONE, OdmClassify::static_type())
}
