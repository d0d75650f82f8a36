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
