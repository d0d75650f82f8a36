// SPDX-License-Identifier: MIT OR Apache-2.0
//! The raw video formats odm's elements read and draw on, and their odm-core layouts.

use gst_video::prelude::*;
use gst_video::VideoFormat;
use odm_core::preprocess::{Frame, PixelFormat, Plane, YuvMatrix};

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

/// The YUV matrix the caps' colorimetry names (BT.709 for HD caps without one: GStreamer's own default), for every
/// odm element that reads NV12 or I420, so they agree with videoconvert and with each other.
pub fn yuv_matrix(info: &gst_video::VideoInfo) -> YuvMatrix {
    match info.colorimetry().matrix() {
        gst_video::VideoColorMatrix::Bt709 => YuvMatrix::Bt709,
        _ => YuvMatrix::Bt601,
    }
}

/// A mapped readable frame as odm-core reads it: its planes (a negative stride, a bottom-up layout, is refused rather
/// than read out of bounds), checked against the caps' size, with the caps' YUV matrix. Errors are sentences.
pub fn core_frame<'a>(frame: &'a gst_video::VideoFrameRef<&'a gst::BufferRef>) -> Result<Frame<'a>, String> {
    let info = frame.info();
    let format = pixel_format(info.format()).ok_or_else(|| format!("unsupported format {}", info.format().to_str()))?;
    let n = (frame.n_planes() as usize).min(3);
    let mut planes = [Plane { data: &[], stride: 0 }; 3];
    for (p, plane) in planes.iter_mut().enumerate().take(n) {
        let stride = frame.plane_stride()[p];
        let stride = usize::try_from(stride)
            .map_err(|_| format!("plane {p} has a negative stride ({stride}): bottom-up frames are not supported"))?;
        let data = frame.plane_data(p as u32).map_err(|e| format!("plane {p} cannot be read: {e}"))?;
        *plane = Plane { data, stride };
    }
    Frame::new(format, info.width(), info.height(), &planes[..n], yuv_matrix(info))
        .map_err(|e| format!("the frame does not match its caps: {e}"))
}

/// `frames` frame durations (at `fps`; nothing without a frame rate) added to a latency query's answer: what an
/// element holding that many frames in flight adds. Saturating: caps may carry any fraction (1/2147483647 fps is a
/// frame of 68 years).
pub fn add_frames_latency(fps: Option<gst::Fraction>, frames: u64, q: &mut gst::query::Latency) {
    let Some(fps) = fps.filter(|f| f.numer() > 0 && f.denom() > 0) else { return };
    let frame = gst::ClockTime::SECOND.mul_div_floor(fps.denom() as u64, fps.numer() as u64);
    let add =
        frame.and_then(|f| f.nseconds().checked_mul(frames)).map_or(gst::ClockTime::MAX, gst::ClockTime::from_nseconds);
    let (live, min, max) = q.result();
    let min = min.nseconds().saturating_add(add.nseconds()).min(gst::ClockTime::MAX.nseconds());
    let max = max.map(|m| m.nseconds().saturating_add(add.nseconds()).min(gst::ClockTime::MAX.nseconds()));
    q.set(live, gst::ClockTime::from_nseconds(min), max.map(gst::ClockTime::from_nseconds));
}
