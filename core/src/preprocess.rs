// SPDX-License-Identifier: MIT OR Apache-2.0
//! Crop a region of a frame, grow it by the context margin, resize it and normalise it into a CHW float tensor.
//!
//! This is the single preprocessing path of odm: the trainer turns dataset images into tensors with it and the
//! plugin turns ROIs of video frames into tensors with it, so training and inference see the same pixels.
//!
//! Crop, resize, colour conversion and normalisation read the source planes directly (packed RGB family, grey, NV12,
//! I420): no full-frame conversion. Resizing is bilinear with supersampling when shrinking (up to 4x4 taps per output
//! pixel), so a 200-px sign and a 20-px sign both give a clean 32-px crop; no tap reaches outside the box. Where the
//! grown box leaves the frame, edge pixels are repeated (the geometry of the box is kept).
//!
//! The filter is separable, so it runs as two passes with precomputed taps: down the columns first (contiguous bytes,
//! so the loops vectorise) into one line per output row, then along those lines ([`CropScratch`] holds the taps and
//! lines and is reused across crops, so a warm crop allocates nothing). YUV frames are filtered as Y, U and V and converted to RGB per output pixel, which is the
//! same as converting first except where a colour leaves the RGB cube (the conversion clamps).

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
        let layout: &[(usize, usize)] = match format {
            PixelFormat::Nv12 => &[(h, w), (ch, 2 * cw)],
            PixelFormat::I420 => &[(h, w), (ch, cw), (ch, cw)],
            f => &[(h, w * f.packed().map_or(1, |p| p.1))],
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

    /// The YUV matrix NV12 and I420 samples are converted with.
    pub fn matrix(&self) -> YuvMatrix {
        self.matrix
    }

    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Plane `i` (checked against the size and format in [`Frame::new`]); empty past the format's planes.
    pub fn plane(&self, i: usize) -> Plane<'a> {
        self.planes.get(i).copied().unwrap_or(Plane { data: &[], stride: 0 })
    }
}

/// `acc[i] += w * src[i]` over the shorter of the two: the inner loop of the vertical pass (vectorises).
#[inline]
fn accumulate(acc: &mut [f32], src: &[u8], w: f32) {
    for (a, &b) in acc.iter_mut().zip(src) {
        *a += w * b as f32;
    }
}

/// `f.floor()` without the libm call the baseline x86-64 target makes of it (no SSE4.1 `roundss`): exact for the
/// pixel coordinates used here (|f| < 2^31).
#[inline(always)]
fn floor(f: f32) -> f32 {
    let t = f as i32 as f32;
    if t > f {
        t - 1.0
    } else {
        t
    }
}

/// The taps of one axis: for each output, a window of `k` source indices from `starts[o]` with their weights
/// (`weights[o * k..][..k]`, zero where the window is wider than that output needs).
#[derive(Debug, Default, Clone)]
struct Taps {
    starts: Vec<u32>,
    weights: Vec<f32>,
    k: usize,
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

/// Buffers reused by [`crop_to_tensor_with`]: the taps of both passes and the intermediate rows. A crop made with a
/// scratch that has seen a crop of the same output size and a box at least as large allocates nothing.
#[derive(Debug, Default, Clone)]
pub struct CropScratch {
    tx: Taps,
    ty: Taps,
    /// Vertically filtered source columns, one line per output row: packed pixels (all bytes of each pixel), or Y.
    lines: Vec<f32>,
    /// The same for the chroma of YUV frames: interleaved UV, or U then V.
    chroma: Vec<f32>,
}

/// Taps of one axis: for each of `n` outputs, `taps` supersamples of a bilinear filter whose centres stay within
/// `[lo, hi]` (inside the box), source indices clamped to `[0, size)`, merged into one dense window per output.
#[allow(clippy::too_many_arguments)]
fn axis_taps(out: &mut Taps, n: usize, taps: usize, start: f32, step: f32, lo: f32, hi: f32, size: u32) {
    let last = size as i64 - 1;
    let w_tap = 1.0 / taps as f32;
    // (first raw index, fraction) of each supersample; the window spans the widest output.
    let tap = |o: usize, t: usize| {
        let f = (start + (o as f32 + (t as f32 + 0.5) / taps as f32) * step).max(lo).min(hi) - 0.5;
        let f0 = floor(f);
        (f0 as i64, f - f0)
    };
    let mut k = 1usize;
    for o in 0..n {
        let (first, _) = tap(o, 0);
        let (last_tap, _) = tap(o, taps - 1);
        k = k.max((last_tap + 1 - first + 1) as usize);
    }
    let k = k.min(size as usize);
    out.k = k;
    out.starts.clear();
    out.weights.clear();
    out.weights.resize(n * k, 0.0);
    for o in 0..n {
        let lo_idx = tap(o, 0).0.clamp(0, last);
        let s0 = lo_idx.min(size as i64 - k as i64);
        out.starts.push(s0 as u32);
        let w = &mut out.weights[o * k..(o + 1) * k];
        for t in 0..taps {
            let (i0, a) = tap(o, t);
            w[(i0.clamp(0, last) - s0) as usize] += (1.0 - a) * w_tap;
            w[((i0 + 1).clamp(0, last) - s0) as usize] += a * w_tap;
        }
    }
}

/// Crop `roi` (grown by the context margin) out of `frame` into `out` as a normalised CHW tensor of
/// `spec.width x spec.height`. Allocates its working buffers; [`crop_to_tensor_with`] reuses them.
pub fn crop_to_tensor(frame: &Frame<'_>, roi: Roi, spec: &CropSpec, out: &mut [f32]) -> Result<(), PreprocessError> {
    crop_to_tensor_with(frame, roi, spec, out, &mut CropScratch::default())
}

/// [`crop_to_tensor`] with reusable working buffers.
pub fn crop_to_tensor_with(
    frame: &Frame<'_>,
    roi: Roi,
    spec: &CropSpec,
    out: &mut [f32],
    scratch: &mut CropScratch,
) -> Result<(), PreprocessError> {
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
    // Taps stay inside the box (half a pixel in from its edges) so that bilinear weights never reach outside it.
    let (lo_x, hi_x) = (bx + 0.5, (bx + bw - 0.5).max(bx + 0.5));
    let (lo_y, hi_y) = (by + 0.5, (by + bh - 0.5).max(by + 0.5));
    let CropScratch { tx, ty, lines, chroma } = scratch;
    axis_taps(tx, ow, nx, bx, sx, lo_x, hi_x, frame.width);
    axis_taps(ty, oh, ny, by, sy, lo_y, hi_y, frame.height);
    let (kx, ky) = (tx.k, ty.k);

    // Vertical pass first: for each output row, the weighted sum of the source rows its taps reach, over the source
    // columns the horizontal taps reach ([x0, x1)); contiguous bytes, so the loops vectorise.
    let x0 = tx.starts.iter().copied().min().unwrap_or(0) as usize;
    let x1 = tx.starts.iter().copied().max().unwrap_or(0) as usize + kx;
    let span = x1 - x0;
    let planes = &frame.planes;
    let row = |p: usize, y: usize, from: usize, len: usize| &planes[p].data[y * planes[p].stride + from..][..len];
    let yuv = matches!(frame.format, PixelFormat::Nv12 | PixelFormat::I420);
    // Bytes per pixel of the main plane, and the chroma columns (in samples) covering [x0, x1).
    let px = frame.format.packed().map_or(1, |p| p.1);
    let (c0, c1) = (x0 / 2, (x1 - 1) / 2 + 1);
    let cspan = c1 - c0;
    lines.clear();
    lines.resize(oh * span * px, 0.0);
    chroma.clear();
    if yuv {
        chroma.resize(oh * cspan * 2, 0.0);
    }
    for (oy, (&start, w)) in ty.starts.iter().zip(ty.weights.chunks_exact(ky)).enumerate() {
        let line = &mut lines[oy * span * px..(oy + 1) * span * px];
        for (i, &w) in w.iter().enumerate() {
            if w == 0.0 {
                continue;
            }
            let y = start as usize + i;
            accumulate(line, row(0, y, x0 * px, span * px), w);
            match frame.format {
                PixelFormat::Nv12 => {
                    accumulate(&mut chroma[oy * cspan * 2..(oy + 1) * cspan * 2], row(1, y / 2, c0 * 2, cspan * 2), w)
                }
                PixelFormat::I420 => {
                    let (u, v) = chroma[oy * cspan * 2..(oy + 1) * cspan * 2].split_at_mut(cspan);
                    accumulate(u, row(1, y / 2, c0, cspan), w);
                    accumulate(v, row(2, y / 2, c0, cspan), w);
                }
                _ => {}
            }
        }
    }

    // Horizontal pass on the filtered lines, colour conversion, normalisation.
    let off = frame.format.packed().map_or([0, 0, 0], |p| p.0);
    let order = match spec.norm.color {
        ColorOrder::Rgb => [0, 1, 2],
        ColorOrder::Bgr => [2, 1, 0],
    };
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * spec.norm.std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| spec.norm.mean[c] / spec.norm.std[c]);
    let plane = ow * oh;
    for oy in 0..oh {
        let line = &lines[oy * span * px..(oy + 1) * span * px];
        let cline = if yuv { &chroma[oy * cspan * 2..(oy + 1) * cspan * 2] } else { &chroma[..0] };
        let (cu, cv) = cline.split_at(if frame.format == PixelFormat::I420 { cspan } else { 0 });
        for (ox, (&start, w)) in tx.starts.iter().zip(tx.weights.chunks_exact(kx)).enumerate() {
            let mut acc = [0.0f32; 3];
            let first = start as usize - x0;
            if yuv {
                let nv12 = frame.format == PixelFormat::Nv12;
                for (i, &w) in w.iter().enumerate() {
                    let c = (start as usize + i) / 2 - c0;
                    let (u, v) = if nv12 { (cline[2 * c], cline[2 * c + 1]) } else { (cu[c], cv[c]) };
                    acc[0] += w * line[first + i];
                    acc[1] += w * u;
                    acc[2] += w * v;
                }
                acc = yuv_to_rgb(acc[0], acc[1], acc[2], frame.matrix);
            } else {
                for (p, &w) in line[first * px..].chunks_exact(px).zip(w) {
                    acc[0] += w * p[off[0]];
                    acc[1] += w * p[off[1]];
                    acc[2] += w * p[off[2]];
                }
            }
            let i = oy * ow + ox;
            for c in 0..3 {
                out[c * plane + i] = acc[order[c]] * scale[c] - shift[c];
            }
        }
    }
    Ok(())
}
