// SPDX-License-Identifier: MIT OR Apache-2.0
//! Crop a region of a frame, grow it by the context margin, resize it and normalise it into a CHW float tensor.
//!
//! This is the single preprocessing path of odm: the trainer turns dataset images into tensors with it and the
//! plugin turns ROIs of video frames into tensors with it, so training and inference see the same pixels.
//!
//! Crop, colour conversion, resize and normalisation are fused into one pass that reads the source planes directly
//! (packed RGB family, grey, NV12, I420): no full-frame conversion, no intermediate image. Resizing is bilinear with
//! supersampling when shrinking (up to 4x4 taps per output pixel), so a 200-px sign and a 20-px sign both give a
//! clean 48-px crop; no tap reaches outside the box. Where the grown box leaves the frame, edge pixels are repeated (the geometry of the box is kept).

use crate::bundle::{ColorOrder, InputSpec};
use crate::error::PreprocessError;

/// Memory layout of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Rgb,
    Bgr,
    Rgba,
    Bgra,
    Rgbx,
    Bgrx,
    Argb,
    Abgr,
    Xrgb,
    Xbgr,
    Gray8,
    /// Y plane, then interleaved UV at half resolution.
    Nv12,
    /// Y, U and V planes; U and V at half resolution.
    I420,
}

impl PixelFormat {
    /// Byte offsets of R, G, B within a pixel and the pixel size, for packed formats.
    fn packed(self) -> Option<([usize; 3], usize)> {
        Some(match self {
            PixelFormat::Rgb => ([0, 1, 2], 3),
            PixelFormat::Bgr => ([2, 1, 0], 3),
            PixelFormat::Rgba | PixelFormat::Rgbx => ([0, 1, 2], 4),
            PixelFormat::Bgra | PixelFormat::Bgrx => ([2, 1, 0], 4),
            PixelFormat::Argb | PixelFormat::Xrgb => ([1, 2, 3], 4),
            PixelFormat::Abgr | PixelFormat::Xbgr => ([3, 2, 1], 4),
            PixelFormat::Gray8 => ([0, 0, 0], 1),
            PixelFormat::Nv12 | PixelFormat::I420 => return None,
        })
    }
}

/// YUV to RGB matrix (limited range) for NV12 and I420.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum YuvMatrix {
    #[default]
    Bt601,
    Bt709,
}

/// One plane: bytes and row stride.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    pub data: &'a [u8],
    pub stride: usize,
}

/// A borrowed frame: the planes as the producer laid them out.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    format: PixelFormat,
    width: u32,
    height: u32,
    planes: [Plane<'a>; 3],
    matrix: YuvMatrix,
}

fn need(stride: usize, rows: usize, row_bytes: usize) -> usize {
    if rows == 0 {
        0
    } else {
        stride * (rows - 1) + row_bytes
    }
}

impl<'a> Frame<'a> {
    /// A frame over `planes` (one for packed and grey, two for NV12, three for I420). Checks that every plane is
    /// large enough for the size and strides given, so sampling can never read out of bounds.
    pub fn new(
        format: PixelFormat,
        width: u32,
        height: u32,
        planes: &[Plane<'a>],
        matrix: YuvMatrix,
    ) -> Result<Frame<'a>, PreprocessError> {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let layout: Vec<(usize, usize)> = match format {
            PixelFormat::Nv12 => vec![(h, w), (ch, 2 * cw)],
            PixelFormat::I420 => vec![(h, w), (ch, cw), (ch, cw)],
            f => vec![(h, w * f.packed().map_or(1, |p| p.1))],
        };
        let empty = Plane { data: &[], stride: 0 };
        let mut out = [empty; 3];
        for (k, (rows, row_bytes)) in layout.iter().enumerate() {
            let p = planes.get(k).copied().unwrap_or(empty);
            let n = need(p.stride, *rows, *row_bytes);
            if p.data.len() < n || (*rows > 1 && p.stride < *row_bytes) {
                return Err(PreprocessError::ShortBuffer {
                    got: p.data.len(),
                    need: n,
                    width,
                    height,
                    stride: p.stride,
                });
            }
            out[k] = p;
        }
        Ok(Frame { format, width, height, planes: out, matrix })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// RGB of the pixel at integer coordinates (clamped to the frame).
    #[inline]
    fn rgb(&self, x: i64, y: i64) -> [f32; 3] {
        let x = x.clamp(0, self.width as i64 - 1) as usize;
        let y = y.clamp(0, self.height as i64 - 1) as usize;
        match self.format.packed() {
            Some((off, px)) => {
                let p = &self.planes[0];
                let base = y * p.stride + x * px;
                [p.data[base + off[0]] as f32, p.data[base + off[1]] as f32, p.data[base + off[2]] as f32]
            }
            None => {
                let yp = &self.planes[0];
                let luma = yp.data[y * yp.stride + x] as f32;
                let (cx, cy) = (x / 2, y / 2);
                let (u, v) = match self.format {
                    PixelFormat::Nv12 => {
                        let p = &self.planes[1];
                        (p.data[cy * p.stride + 2 * cx] as f32, p.data[cy * p.stride + 2 * cx + 1] as f32)
                    }
                    _ => {
                        let (pu, pv) = (&self.planes[1], &self.planes[2]);
                        (pu.data[cy * pu.stride + cx] as f32, pv.data[cy * pv.stride + cx] as f32)
                    }
                };
                yuv_to_rgb(luma, u, v, self.matrix)
            }
        }
    }

    /// Bilinear sample at continuous coordinates (pixel centres at +0.5), edges repeated.
    #[inline]
    fn sample(&self, fx: f32, fy: f32) -> [f32; 3] {
        let (x, y) = (fx - 0.5, fy - 0.5);
        let (x0, y0) = (x.floor(), y.floor());
        let (ax, ay) = (x - x0, y - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let p00 = self.rgb(x0, y0);
        let p10 = self.rgb(x0 + 1, y0);
        let p01 = self.rgb(x0, y0 + 1);
        let p11 = self.rgb(x0 + 1, y0 + 1);
        let mut out = [0.0; 3];
        for c in 0..3 {
            let top = p00[c] + (p10[c] - p00[c]) * ax;
            let bottom = p01[c] + (p11[c] - p01[c]) * ax;
            out[c] = top + (bottom - top) * ay;
        }
        out
    }
}

#[inline]
fn yuv_to_rgb(y: f32, u: f32, v: f32, m: YuvMatrix) -> [f32; 3] {
    let (y, u, v) = (1.164_383 * (y - 16.0), u - 128.0, v - 128.0);
    let (r, g, b) = match m {
        YuvMatrix::Bt601 => (y + 1.596_027 * v, y - 0.391_762 * u - 0.812_968 * v, y + 2.017_232 * u),
        YuvMatrix::Bt709 => (y + 1.792_741 * v, y - 0.213_249 * u - 0.532_909 * v, y + 2.112_402 * u),
    };
    [r.clamp(0.0, 255.0), g.clamp(0.0, 255.0), b.clamp(0.0, 255.0)]
}

/// A region of interest in frame pixels (a detector's box).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roi {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
}

/// Normalisation of the model input: tensor channel order, then `(v / 255 - mean) / std` per channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalize {
    pub color: ColorOrder,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// Everything needed to turn a region into a model input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropSpec {
    pub width: u32,
    pub height: u32,
    pub context: f32,
    pub norm: Normalize,
}

impl CropSpec {
    pub fn from_input(input: &InputSpec) -> CropSpec {
        CropSpec {
            width: input.width,
            height: input.height,
            context: input.context,
            norm: Normalize { color: input.color, mean: input.mean, std: input.std },
        }
    }

    /// Floats in one CHW tensor.
    pub fn len(&self) -> usize {
        3 * self.width as usize * self.height as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a region can be cropped: positive size and some overlap with the frame.
pub fn check_roi(roi: Roi, width: u32, height: u32) -> Result<(), PreprocessError> {
    let outside = roi.w <= 0
        || roi.h <= 0
        || roi.x >= width as i64
        || roi.y >= height as i64
        || roi.x.saturating_add(roi.w) <= 0
        || roi.y.saturating_add(roi.h) <= 0;
    if outside {
        return Err(PreprocessError::Outside { x: roi.x, y: roi.y, w: roi.w, h: roi.h, width, height });
    }
    Ok(())
}

/// Crop `roi` (grown by the context margin) out of `frame` into `out` as a normalised CHW tensor of
/// `spec.width x spec.height`.
pub fn crop_to_tensor(frame: &Frame<'_>, roi: Roi, spec: &CropSpec, out: &mut [f32]) -> Result<(), PreprocessError> {
    if spec.width == 0 || spec.height == 0 {
        return Err(PreprocessError::InputSize(spec.width, spec.height));
    }
    if out.len() != spec.len() {
        return Err(PreprocessError::OutputSize { got: out.len(), need: spec.len() });
    }
    check_roi(roi, frame.width, frame.height)?;

    let grow_x = spec.context * roi.w as f32;
    let grow_y = spec.context * roi.h as f32;
    let (bx, by) = (roi.x as f32 - grow_x, roi.y as f32 - grow_y);
    let (bw, bh) = (roi.w as f32 + 2.0 * grow_x, roi.h as f32 + 2.0 * grow_y);
    let (ow, oh) = (spec.width as usize, spec.height as usize);
    let (sx, sy) = (bw / ow as f32, bh / oh as f32);
    // Supersample when shrinking: n x n bilinear taps per output pixel approximate an area filter.
    let nx = (sx.ceil() as usize).clamp(1, 4);
    let ny = (sy.ceil() as usize).clamp(1, 4);
    let inv_taps = 1.0 / (nx * ny) as f32;

    let order = match spec.norm.color {
        ColorOrder::Rgb => [0, 1, 2],
        ColorOrder::Bgr => [2, 1, 0],
    };
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * spec.norm.std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| spec.norm.mean[c] / spec.norm.std[c]);
    let plane = ow * oh;

    // Taps stay inside the box (half a pixel in from its edges) so that bilinear weights never reach outside it.
    let (lo_x, hi_x) = (bx + 0.5, (bx + bw - 0.5).max(bx + 0.5));
    let (lo_y, hi_y) = (by + 0.5, (by + bh - 0.5).max(by + 0.5));

    for oy in 0..oh {
        for ox in 0..ow {
            let mut acc = [0.0f32; 3];
            for ty in 0..ny {
                let fy = (by + (oy as f32 + (ty as f32 + 0.5) / ny as f32) * sy).max(lo_y).min(hi_y);
                for tx in 0..nx {
                    let fx = (bx + (ox as f32 + (tx as f32 + 0.5) / nx as f32) * sx).max(lo_x).min(hi_x);
                    let p = frame.sample(fx, fy);
                    acc[0] += p[0];
                    acc[1] += p[1];
                    acc[2] += p[2];
                }
            }
            let i = oy * ow + ox;
            for c in 0..3 {
                out[c * plane + i] = acc[order[c]] * inv_taps * scale[c] - shift[c];
            }
        }
    }
    Ok(())
}
