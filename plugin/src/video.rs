// SPDX-License-Identifier: MIT OR Apache-2.0
//! The raw video formats odm's elements read and draw on, and their odm-core layouts.

use gst_video::VideoFormat;
use odm_core::preprocess::PixelFormat;

/// What odmclassify, odmproposals and odmoverlay accept: the packed RGB family and the decoders' NV12 and I420.
pub const FORMATS: &[VideoFormat] = &[
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::Nv12,
    VideoFormat::I420,
];

/// The odm-core layout of a GStreamer format (`None` for formats odm does not read).
pub fn pixel_format(f: VideoFormat) -> Option<PixelFormat> {
    Some(match f {
        VideoFormat::Rgb => PixelFormat::Rgb,
        VideoFormat::Bgr => PixelFormat::Bgr,
        VideoFormat::Rgba => PixelFormat::Rgba,
        VideoFormat::Bgra => PixelFormat::Bgra,
        VideoFormat::Rgbx => PixelFormat::Rgbx,
        VideoFormat::Bgrx => PixelFormat::Bgrx,
        VideoFormat::Nv12 => PixelFormat::Nv12,
        VideoFormat::I420 => PixelFormat::I420,
        _ => return None,
    })
}

/// The always-present `src` and `sink` templates of an in-place filter with these caps.
pub fn filter_templates(caps: &gst::Caps) -> Vec<gst::PadTemplate> {
    [("src", gst::PadDirection::Src), ("sink", gst::PadDirection::Sink)]
        .into_iter()
        .map(|(name, dir)| gst::PadTemplate::new(name, dir, gst::PadPresence::Always, caps).expect("valid template"))
        .collect()
}

/// The video info of negotiated caps, or an error naming them (logged in `cat`).
pub fn info_from_caps(cat: gst::DebugCategory, caps: &gst::Caps) -> Result<gst_video::VideoInfo, gst::LoggableError> {
    gst_video::VideoInfo::from_caps(caps).map_err(|_| gst::loggable_error!(cat, "cannot parse caps {caps}"))
}

/// Caps of the formats in [`FORMATS`].
pub fn formats_caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new().format_list(FORMATS.iter().copied()).build()
}
