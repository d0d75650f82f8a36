// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmroireplay`: adds ROI metas recorded in a JSON-lines file (a detector's output, or hand-made ground truth).

use gst::glib;
use gst::prelude::*;

mod imp;
mod parse;

/// How recorded lines are matched to buffers.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstOdmReplayMatch")]
pub enum Match {
    /// The line's `frame` is the buffer's index since the start (0-based).
    #[enum_value(name = "By frame index (the line's `frame`)", nick = "frame")]
    Frame = 0,
    /// The line's `pts` (nanoseconds) is the buffer's PTS, within `tolerance`.
    #[enum_value(name = "By timestamp (the line's `pts`, within tolerance)", nick = "pts")]
    Pts = 1,
    /// The line's `stream_time` (nanoseconds, odmexport's position of the buffer) is the buffer's stream time,
    /// within `tolerance`.
    #[enum_value(name = "By stream position (the line's `stream_time`, within tolerance)", nick = "stream-time")]
    StreamTime = 2,
    /// `stream-time` when every line has a `stream_time` (odmexport's output: its replay is exact, also after a
    /// seek), otherwise `frame`.
    #[default]
    #[enum_value(name = "By stream position when every line has one, else by frame index", nick = "auto")]
    Auto = 3,
}

glib::wrapper! {
    pub struct OdmRoiReplay(ObjectSubclass<imp::OdmRoiReplay>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    Match::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(Some(plugin), "odmroireplay", gst::Rank::NONE, OdmRoiReplay::static_type())
}
