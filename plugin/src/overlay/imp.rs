// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmoverlay` implementation: an in-place VideoFilter drawing straight into RGB-family, NV12 and I420 planes, in
//! the caps' colour matrix and range. Text is rasterised with `ab_glyph` from odm's one font ([`odm_core::font`]),
//! glyphs cached per size.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{LazyLock, Mutex};

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;
use gst_video::{VideoColorMatrix, VideoColorRange, VideoFormat};

use crate::meta::{self, Outcome};

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| gst::DebugCategory::new("odmoverlay", gst::DebugColorFlags::empty(), Some("odm result drawing")));

/// odm's font, parsed once per process.
static FONT: LazyLock<FontRef<'static>> =
    LazyLock::new(|| FontRef::try_from_slice(odm_core::font::OSP_DIN).expect("the embedded font parses"));

/// Colours by verdict (RGB).
const KNOWN: [u8; 3] = [40, 200, 60];
const NOVELTY: [u8; 3] = [255, 165, 0];
const ANOMALY: [u8; 3] = [230, 30, 30];
const OTHER: [u8; 3] = [160, 160, 160];

#[derive(Debug, Clone)]
struct Settings {
    /// Line width in pixels; 0: from the frame height.
    thickness: u32,
    /// Text height in pixels; 0: from the frame height.
    font_size: u32,
    show_skipped: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { thickness: 0, font_size: 0, show_skipped: true }
    }
}

/// A rasterised glyph: coverage bitmap and placement.
struct Glyph {
    w: usize,
    h: usize,
    left: i32,
    top: i32,
    advance: f32,
    coverage: Vec<u8>,
}

#[derive(Default)]
struct State {
    glyphs: HashMap<(char, u32), Glyph>,
    /// The label being drawn, kept between ROIs and frames.
    label: String,
}

#[derive(Default)]
pub struct OdmOverlay {
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

#[glib::object_subclass]
impl ObjectSubclass for OdmOverlay {
    const NAME: &'static str = "GstOdmOverlay";
    type Type = super::OdmOverlay;
    type ParentType = gst_video::VideoFilter;
}

/// The YUV of an RGB colour in the caps' matrix (BT.709, BT.601, BT.2020; BT.601 for the rest, as videoconvert
/// reads unknown ones) and range (limited or full).
fn yuv(c: [u8; 3], matrix: VideoColorMatrix, range: VideoColorRange) -> [u8; 3] {
    let (kr, kb) = match matrix {
        VideoColorMatrix::Bt709 => (0.2126, 0.0722),
        VideoColorMatrix::Bt2020 => (0.2627, 0.0593),
        VideoColorMatrix::Smpte240m => (0.212, 0.087),
        VideoColorMatrix::Fcc => (0.30, 0.11),
        _ => (0.299, 0.114),
    };
    let (r, g, b) = (c[0] as f64 / 255.0, c[1] as f64 / 255.0, c[2] as f64 / 255.0);
    let y = kr * r + (1.0 - kr - kb) * g + kb * b;
    let (u, v) = ((b - y) / (2.0 * (1.0 - kb)), (r - y) / (2.0 * (1.0 - kr)));
    let (ys, yo, cs) = if range == VideoColorRange::Range0_255 { (255.0, 0.0, 255.0) } else { (219.0, 16.0, 224.0) };
    let q = |x: f64| x.round().clamp(0.0, 255.0) as u8;
    [q(yo + ys * y), q(128.0 + cs * u), q(128.0 + cs * v)]
}

/// The writable planes of a mapped frame, their strides, and how to put a pixel into them.
struct Canvas<'a> {
    format: VideoFormat,
    /// The caps' YUV matrix and range (NV12, I420).
    matrix: VideoColorMatrix,
    range: VideoColorRange,
    width: i32,
    height: i32,
    planes: [&'a mut [u8]; 4],
    strides: [usize; 4],
}

impl Canvas<'_> {
    /// Blend colour `c` over the pixel at (x, y) with opacity `a` in [0, 1]; outside the frame does nothing.
    fn blend(&mut self, x: i32, y: i32, c: [u8; 3], a: f32) {
        if x < 0 || y < 0 || x >= self.width || y >= self.height || a <= 0.0 {
            return;
        }
        let (x, y) = (x as usize, y as usize);
        // A plane shorter than its caps say is left alone where it ends (never a panic).
        let mix = |d: Option<&mut u8>, s: u8| {
            if let Some(d) = d {
                *d = (*d as f32 + (s as f32 - *d as f32) * a.min(1.0)).round() as u8
            }
        };
        let (planes, strides) = (&mut self.planes, &self.strides);
        let mut packed = |off: [usize; 3], px: usize| {
            let i = y * strides[0] + x * px;
            for k in 0..3 {
                mix(planes[0].get_mut(i + off[k]), c[k]);
            }
        };
        match self.format {
            VideoFormat::Rgb => packed([0, 1, 2], 3),
            VideoFormat::Bgr => packed([2, 1, 0], 3),
            VideoFormat::Rgba | VideoFormat::Rgbx => packed([0, 1, 2], 4),
            VideoFormat::Bgra | VideoFormat::Bgrx => packed([2, 1, 0], 4),
            VideoFormat::Nv12 | VideoFormat::I420 => {
                let [cy, cu, cv] = yuv(c, self.matrix, self.range);
                mix(planes[0].get_mut(y * strides[0] + x), cy);
                // Chroma is shared by 2x2 pixels: written once per block, from its top-left pixel.
                if x % 2 == 0 && y % 2 == 0 {
                    if self.format == VideoFormat::Nv12 {
                        let i = (y / 2) * strides[1] + x;
                        mix(planes[1].get_mut(i), cu);
                        mix(planes[1].get_mut(i + 1), cv);
                    } else {
                        mix(planes[1].get_mut((y / 2) * strides[1] + x / 2), cu);
                        mix(planes[2].get_mut((y / 2) * strides[2] + x / 2), cv);
                    }
                }
            }
            _ => {}
        }
    }

    /// Blend a filled rectangle; the arithmetic is in i64, so no box can overflow it, and only the part inside the
    /// frame is touched.
    fn fill(&mut self, x: i32, y: i32, w: i32, h: i32, c: [u8; 3], a: f32) {
        let (x, y) = (x as i64, y as i64);
        let (x1, y1) = ((x + w as i64).min(self.width as i64), (y + h as i64).min(self.height as i64));
        for yy in y.max(0)..y1 {
            for xx in x.max(0)..x1 {
                // Inside [0, width) x [0, height): both fit in i32.
                self.blend(xx as i32, yy as i32, c, a);
            }
        }
    }

    fn rect(&mut self, x: i32, y: i32, w: i32, h: i32, t: i32, c: [u8; 3]) {
        self.fill(x - t, y - t, w + 2 * t, t, c, 1.0);
        self.fill(x - t, y + h, w + 2 * t, t, c, 1.0);
        self.fill(x - t, y, t, h, c, 1.0);
        self.fill(x + w, y, t, h, c, 1.0);
    }
}

/// A box of any u32 values (from upstream metas) as drawing coordinates: clipped, in i64, to the frame grown by
/// `margin` on every side, so the lines and label of a box past the frame edge land outside it and nothing overflows.
fn clip_box(rect: (u32, u32, u32, u32), width: i32, height: i32, margin: i32) -> (i32, i32, i32, i32) {
    let m = margin as i64;
    let clip = |v: i64, hi: i32| v.clamp(-m, hi as i64 + m).min(i32::MAX as i64) as i32;
    let (x, y) = (rect.0 as i64, rect.1 as i64);
    let (x0, y0) = (clip(x, width), clip(y, height));
    let (x1, y1) = (clip(x + rect.2 as i64, width), clip(y + rect.3 as i64, height));
    (x0, y0, x1 - x0, y1 - y0)
}

impl OdmOverlay {
    /// Draw every entry into the frame; an error is the flow to return and the sentence to post.
    fn draw(
        state: &mut State,
        settings: &Settings,
        entries: &[meta::RoiEntry],
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) {
        let State { glyphs, label } = state;
        let info = frame.info().clone();
        let font = &*FONT;
        let h = info.height();
        let thickness = if settings.thickness > 0 { settings.thickness } else { (h / 240).max(1) } as i32;
        let size = if settings.font_size > 0 { settings.font_size } else { (h / 30).max(10) };
        let format = info.format();
        let (width, height) = (info.width().min(i32::MAX as u32) as i32, info.height().min(i32::MAX as u32) as i32);
        // A box is clipped to the frame plus room for its lines and label tab.
        let th_margin = size as i32 + 2;
        let mut strides = [0usize; 4];
        for (s, &f) in strides.iter_mut().zip(frame.plane_stride()) {
            *s = f.max(0) as usize;
        }
        let (matrix, range) = (info.colorimetry().matrix(), info.colorimetry().range());
        let planes = frame.planes_data_mut();
        let mut canvas = Canvas { format, matrix, range, width, height, planes, strides };
        for e in entries {
            // Written into one reused string: no allocation per ROI once it has grown.
            label.clear();
            let colour = match e.result.as_ref().map(|r| &r.outcome) {
                Some(Outcome::Classified { label: class, distance, verdict, category, .. }) => {
                    use odm_core::Verdict;
                    // Writing into a String cannot fail. A novelty shows the category of its nearest class when
                    // the bundle has categories: an unknown warning sign reads "novelty warning".
                    let _ = match (verdict, category) {
                        (Verdict::Known, _) => write!(label, "{class} {distance:.2}"),
                        (Verdict::Novelty, Some(c)) => write!(label, "{verdict} {c} {distance:.1}"),
                        _ => write!(label, "{verdict} {distance:.1}"),
                    };
                    match verdict {
                        Verdict::Known => KNOWN,
                        Verdict::Novelty => NOVELTY,
                        Verdict::Anomaly => ANOMALY,
                    }
                }
                Some(Outcome::Skipped { .. }) if settings.show_skipped => {
                    label.push_str("skipped");
                    OTHER
                }
                None if settings.show_skipped => {
                    label.push_str(&e.roi_type);
                    OTHER
                }
                _ => continue,
            };
            let (x, y, w, hh) = clip_box(e.rect, width, height, thickness + th_margin);
            canvas.rect(x, y, w, hh, thickness, colour);
            let tw = Self::text_width(glyphs, font, label, size) + 2 * thickness;
            let th = size as i32 + thickness;
            // The label sits on a filled tab above the box, or inside it at the top of the frame.
            let ty = if y - thickness - th >= 0 { y - thickness - th } else { y };
            canvas.fill(x - thickness, ty, tw, th, colour, 0.85);
            Self::text(&mut canvas, glyphs, font, label, x, ty, size, [255, 255, 255]);
        }
    }
    fn glyph<'a>(cache: &'a mut HashMap<(char, u32), Glyph>, font: &FontRef<'_>, ch: char, size: u32) -> &'a Glyph {
        cache.entry((ch, size)).or_insert_with(|| {
            let scaled = font.as_scaled(PxScale::from(size as f32));
            let id = font.glyph_id(ch);
            let advance = scaled.h_advance(id);
            let g = id.with_scale_and_position(PxScale::from(size as f32), ab_glyph::point(0.0, scaled.ascent()));
            match font.outline_glyph(g) {
                Some(o) => {
                    let b = o.px_bounds();
                    let (w, h) = (b.width().ceil() as usize, b.height().ceil() as usize);
                    let mut coverage = vec![0u8; w * h];
                    o.draw(|x, y, c| {
                        if let Some(p) = coverage.get_mut(y as usize * w + x as usize) {
                            *p = (c.clamp(0.0, 1.0) * 255.0) as u8;
                        }
                    });
                    Glyph { w, h, left: b.min.x.floor() as i32, top: b.min.y.floor() as i32, advance, coverage }
                }
                None => Glyph { w: 0, h: 0, left: 0, top: 0, advance, coverage: Vec::new() },
            }
        })
    }

    /// Width of `text` in pixels at `size`.
    fn text_width(cache: &mut HashMap<(char, u32), Glyph>, font: &FontRef<'_>, text: &str, size: u32) -> i32 {
        text.chars().map(|c| Self::glyph(cache, font, c, size).advance).sum::<f32>().ceil() as i32
    }

    #[allow(clippy::too_many_arguments)]
    fn text(
        canvas: &mut Canvas<'_>,
        cache: &mut HashMap<(char, u32), Glyph>,
        font: &FontRef<'_>,
        text: &str,
        x: i32,
        y: i32,
        size: u32,
        c: [u8; 3],
    ) {
        let mut pen = x as f32;
        for ch in text.chars() {
            let g = Self::glyph(cache, font, ch, size);
            let gx = pen.round() as i32 + g.left;
            for row in 0..g.h {
                for col in 0..g.w {
                    let a = g.coverage[row * g.w + col] as f32 / 255.0;
                    canvas.blend(gx + col as i32, y + g.top + row as i32, c, a);
                }
            }
            pen += g.advance;
        }
    }
}

impl ObjectImpl for OdmOverlay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecUInt::builder("thickness")
                    .nick("Thickness")
                    .blurb("Box line width in pixels; 0: from the frame height (3 at 720p)")
                    .maximum(64)
                    .default_value(0)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("font-size")
                    .nick("Font size")
                    .blurb("Label text height in pixels; 0: from the frame height (24 at 720p)")
                    .maximum(256)
                    .default_value(0)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("show-skipped")
                    .nick("Show skipped")
                    .blurb("Also draw ROIs the classifier skipped, and ROIs without a result, in grey")
                    .default_value(true)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        match pspec.name() {
            "thickness" => s.thickness = value.get().expect("type checked upstream"),
            "font-size" => s.font_size = value.get().expect("type checked upstream"),
            "show-skipped" => s.show_skipped = value.get().expect("type checked upstream"),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        match pspec.name() {
            "thickness" => s.thickness.to_value(),
            "font-size" => s.font_size.to_value(),
            "show-skipped" => s.show_skipped.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for OdmOverlay {}

impl ElementImpl for OdmOverlay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "odm result overlay",
                "Filter/Effect/Video",
                "Draws each ROI's box and its label and distance, coloured by verdict (known green, novelty orange, \
                 anomaly red, skipped grey)",
                "odm developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = crate::video::formats_caps();
            crate::video::filter_templates(&caps)
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for OdmOverlay {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    /// A buffer that cannot be mapped as a frame of the caps (smaller than they need, or a video meta that does not
    /// fit it) is refused here with a sentence, before VideoFilter maps it.
    fn submit_input_buffer(&self, is_discont: bool, inbuf: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let caps = self.obj().sink_pad().current_caps();
        if let Some(info) = caps.as_ref().and_then(|c| gst_video::VideoInfo::from_caps(c).ok()) {
            if gst_video::VideoFrameRef::from_buffer_ref_readable(inbuf.as_ref(), &info).is_err() {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    (
                        "cannot map the frame: the buffer ({} bytes) is smaller than {}x{} {} needs, or its video \
                         meta does not fit it",
                        inbuf.size(),
                        info.width(),
                        info.height(),
                        info.format().to_str()
                    )
                );
                return Err(gst::FlowError::Error);
            }
        }
        self.parent_submit_input_buffer(is_discont, inbuf)
    }
}

impl VideoFilterImpl for OdmOverlay {
    fn transform_frame_ip(
        &self,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = self.settings.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let entries = meta::results_by_roi(frame.buffer());
        if entries.is_empty() {
            return Ok(gst::FlowSuccess::Ok);
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Self::draw(&mut state, &settings, &entries, frame);
        gst::log!(CAT, imp = self, "drew {} ROIs", entries.len());
        Ok(gst::FlowSuccess::Ok)
    }
}
