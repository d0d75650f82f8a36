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

/// The source rows one output row is filtered from: row index and weight, rows in increasing order; a row pushed
/// twice in a row (two luma rows on one chroma row) adds its weights.
#[derive(Debug, Default, Clone)]
struct Rows {
    taps: Vec<(usize, f32)>,
}

impl Rows {
    fn push(&mut self, y: usize, w: f32) {
        match self.taps.last_mut() {
            Some(last) if last.0 == y => last.1 += w,
            _ => self.taps.push((y, w)),
        }
    }
}

/// `line[j] = sum of w * row(y)[j]` over the rows: all rows at once over blocks of 8 columns, so the sums stay in
/// registers (one store per column instead of one load and store per row), in groups of 8 rows; the last
/// columns short of a block row by row.
#[inline(always)]
fn filter_rows<'a>(line: &mut [f32], rows: &Rows, row: impl Fn(usize) -> &'a [u8]) {
    const B: usize = 8;
    if rows.taps.is_empty() {
        line.fill(0.0);
    }
    for (g, group) in rows.taps.chunks(8).enumerate() {
        let mut src: [(&[u8], f32); 8] = [(&[], 0.0); 8];
        for (s, &(y, w)) in src.iter_mut().zip(group) {
            *s = (row(y), w);
        }
        let src = &src[..group.len()];
        let add = g > 0;
        let full = line.len() / B * B;
        let (blocks, tail) = line.split_at_mut(full);
        for (b, out) in blocks.chunks_exact_mut(B).enumerate() {
            let mut acc = [0.0f32; B];
            for &(r, w) in src {
                for (a, &v) in acc.iter_mut().zip(&r[b * B..(b + 1) * B]) {
                    *a += w * v as f32;
                }
            }
            for (o, a) in out.iter_mut().zip(acc) {
                *o = if add { *o + a } else { a };
            }
        }
        if !add {
            tail.fill(0.0);
        }
        for &(r, w) in src {
            for (o, &v) in tail.iter_mut().zip(&r[full..]) {
                *o += w * v as f32;
            }
        }
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

#[inline(always)]
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
    /// Horizontal taps of the chroma of YUV frames, derived from `tx`.
    ctaps: Taps,
    /// The source rows of the output row being filtered: luma (or packed), and chroma.
    luma: Rows,
    crows: Rows,
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

/// The normalisation of one output row: channel order, then `v * scale - shift` per tensor channel.
struct RowNorm {
    bgr: bool,
    scale: [f32; 3],
    shift: [f32; 3],
}

/// Writes one output pixel of the three tensor channels from its filtered RGB.
#[inline(always)]
fn put(dst: [&mut f32; 3], p: [f32; 3], n: &RowNorm) {
    let (first, last) = if n.bgr { (p[2], p[0]) } else { (p[0], p[2]) };
    *dst[0] = first * n.scale[0] - n.shift[0];
    *dst[1] = p[1] * n.scale[1] - n.shift[1];
    *dst[2] = last * n.scale[2] - n.shift[2];
}

/// `sum(w[i] * line[i])` over the taps `w` (the line is at least as long).
#[inline(always)]
fn dot(line: &[f32], w: &[f32]) -> f32 {
    line[..w.len()].iter().zip(w).map(|(a, b)| a * b).sum()
}

/// [`dot`] over pixels of `PX` interleaved samples: one sum per sample.
#[inline(always)]
fn dot_px<const PX: usize>(line: &[f32], w: &[f32]) -> [f32; PX] {
    let mut acc = [0.0f32; PX];
    for (p, &w) in line[..w.len() * PX].chunks_exact(PX).zip(w) {
        for j in 0..PX {
            acc[j] += w * p[j];
        }
    }
    acc
}

/// Chroma taps from the luma taps `tx`: luma column `x` reads chroma sample `x / 2`, so each output's chroma window
/// sums the weights of the luma columns that share a sample. Starts are relative to chroma sample `c0`; windows stay
/// within the `cspan` samples the vertical pass filtered.
fn chroma_taps(tx: &Taps, c0: usize, cspan: usize, out: &mut Taps) {
    let k = (tx.k / 2 + 1).min(cspan);
    out.k = k;
    out.starts.clear();
    out.weights.clear();
    out.weights.resize(tx.starts.len() * k, 0.0);
    for ((&s, w), cw) in tx.starts.iter().zip(tx.weights.chunks_exact(tx.k)).zip(out.weights.chunks_exact_mut(k)) {
        let first = (s as usize / 2 - c0).min(cspan - k);
        out.starts.push(first as u32);
        for (i, &w) in w.iter().enumerate() {
            cw[(s as usize + i) / 2 - c0 - first] += w;
        }
    }
}

/// Crop `roi` (grown by the context margin) out of `frame` into `out` as a normalised CHW tensor of
/// `spec.width x spec.height`. Allocates its working buffers; [`crop_to_tensor_with`] reuses them.
pub fn crop_to_tensor(frame: &Frame<'_>, roi: Roi, spec: &CropSpec, out: &mut [f32]) -> Result<(), PreprocessError> {
    crop_to_tensor_with(frame, roi, spec, out, &mut CropScratch::default())
}

/// [`crop_to_tensor`] with reusable working buffers.
///
/// On x86-64 CPUs with AVX2 the same code is compiled a second time for AVX2 and chosen at run time (the default
/// target is baseline x86-64, SSE2 only); the arithmetic and its order are the same, so both give the same floats.
pub fn crop_to_tensor_with(
    frame: &Frame<'_>,
    roi: Roi,
    spec: &CropSpec,
    out: &mut [f32],
    scratch: &mut CropScratch,
) -> Result<(), PreprocessError> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { crop_avx2(frame, roi, spec, out, scratch) };
    }
    crop(frame, roi, spec, out, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn crop_avx2(
    frame: &Frame<'_>,
    roi: Roi,
    spec: &CropSpec,
    out: &mut [f32],
    scratch: &mut CropScratch,
) -> Result<(), PreprocessError> {
    crop(frame, roi, spec, out, scratch)
}

/// The body of [`crop_to_tensor_with`], inlined into each target's copy.
#[inline(always)]
fn crop(
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
    let CropScratch { tx, ty, lines, chroma, ctaps, luma, crows } = scratch;
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
    // Every element is written by the vertical pass (no zero-fill): the buffers only grow.
    let need = (oh * span * px, if yuv { oh * cspan * 2 } else { 0 });
    if lines.len() < need.0 {
        lines.resize(need.0, 0.0);
    }
    if chroma.len() < need.1 {
        chroma.resize(need.1, 0.0);
    }
    let (lines, chroma) = (&mut lines[..need.0], &mut chroma[..need.1]);
    for (oy, (&start, w)) in ty.starts.iter().zip(ty.weights.chunks_exact(ky)).enumerate() {
        // The source rows this output row reads (at most 2 per supersample), and for YUV the chroma rows, where two
        // luma rows share one chroma row and so one summed weight.
        luma.taps.clear();
        crows.taps.clear();
        for (i, &w) in w.iter().enumerate() {
            if w != 0.0 {
                let y = start as usize + i;
                luma.push(y, w);
                if yuv {
                    crows.push(y / 2, w);
                }
            }
        }
        let line = &mut lines[oy * span * px..(oy + 1) * span * px];
        filter_rows(line, luma, |y| row(0, y, x0 * px, span * px));
        match frame.format {
            PixelFormat::Nv12 => {
                let cline = &mut chroma[oy * cspan * 2..(oy + 1) * cspan * 2];
                filter_rows(cline, crows, |y| row(1, y, c0 * 2, cspan * 2))
            }
            PixelFormat::I420 => {
                let (u, v) = chroma[oy * cspan * 2..(oy + 1) * cspan * 2].split_at_mut(cspan);
                filter_rows(u, crows, |y| row(1, y, c0, cspan));
                filter_rows(v, crows, |y| row(2, y, c0, cspan));
            }
            _ => {}
        }
    }

    // Horizontal pass on the filtered lines, colour conversion, normalisation, one output row at a time, with one
    // loop per layout so that every inner loop has a fixed shape (pixel size, chroma layout) the compiler unrolls.
    let off = frame.format.packed().map_or([0, 0, 0], |p| p.0);
    let bgr = spec.norm.color == ColorOrder::Bgr;
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * spec.norm.std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| spec.norm.mean[c] / spec.norm.std[c]);
    let norm = RowNorm { bgr, scale, shift };
    let plane = ow * oh;
    let (r0, rest) = out.split_at_mut(plane);
    let (r1, r2) = rest.split_at_mut(plane);
    let rows = r0.chunks_exact_mut(ow).zip(r1.chunks_exact_mut(ow)).zip(r2.chunks_exact_mut(ow));
    let lines = lines.chunks_exact(span * px);
    // Plain loops, no closures: a closure is a function of its own, which the AVX2 copy would call per pixel.
    let taps = tx.starts.iter().zip(tx.weights.chunks_exact(kx));
    if yuv {
        // Chroma taps: the luma taps of each output summed per chroma sample (luma column x reads chroma x / 2).
        chroma_taps(tx, c0, cspan, ctaps);
        let ck = ctaps.k;
        let nv12 = frame.format == PixelFormat::Nv12;
        let m = frame.matrix;
        for (((d0, d1), d2), (line, cline)) in rows.zip(lines.zip(chroma.chunks_exact(cspan * 2))) {
            let (cu, cv) = cline.split_at(cspan);
            let ctap = ctaps.starts.iter().zip(ctaps.weights.chunks_exact(ck));
            for ((((a, b), c), (&s, w)), (&cs, cw)) in
                d0.iter_mut().zip(d1.iter_mut()).zip(d2.iter_mut()).zip(taps.clone()).zip(ctap)
            {
                let y = dot(&line[s as usize - x0..], w);
                let cs = cs as usize;
                let [u, v] =
                    if nv12 { dot_px::<2>(&cline[2 * cs..], cw) } else { [dot(&cu[cs..], cw), dot(&cv[cs..], cw)] };
                put([a, b, c], yuv_to_rgb(y, u, v, m), &norm);
            }
        }
    } else {
        for (((d0, d1), d2), line) in rows.zip(lines) {
            let dst = d0.iter_mut().zip(d1.iter_mut()).zip(d2.iter_mut()).zip(taps.clone());
            match px {
                1 => {
                    for (((a, b), c), (&s, w)) in dst {
                        put([a, b, c], [dot(&line[s as usize - x0..], w); 3], &norm);
                    }
                }
                3 => {
                    for (((a, b), c), (&s, w)) in dst {
                        let p = dot_px::<3>(&line[3 * (s as usize - x0)..], w);
                        put([a, b, c], [p[off[0] % 3], p[off[1] % 3], p[off[2] % 3]], &norm);
                    }
                }
                _ => {
                    for (((a, b), c), (&s, w)) in dst {
                        let p = dot_px::<4>(&line[4 * (s as usize - x0)..], w);
                        put([a, b, c], [p[off[0] & 3], p[off[1] & 3], p[off[2] & 3]], &norm);
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 copy and the baseline copy give the same floats, bit for bit, for every layout.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx2_and_baseline_copies_agree() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("this CPU has no AVX2: only the baseline copy runs here");
            return;
        }
        let (w, h) = (131u32, 77u32);
        let bytes: Vec<u8> = (0..w as usize * h as usize * 4).map(|i| (i * 7 % 251 + i / 97) as u8).collect();
        let (wu, hu) = (w as usize, h as usize);
        let frames = [
            Frame::new(PixelFormat::Rgb, w, h, &[Plane { data: &bytes, stride: 3 * wu }], YuvMatrix::Bt601),
            Frame::new(PixelFormat::Xbgr, w, h, &[Plane { data: &bytes, stride: 4 * wu }], YuvMatrix::Bt601),
            Frame::new(
                PixelFormat::Nv12,
                w,
                h,
                &[Plane { data: &bytes, stride: wu }, Plane { data: &bytes[wu * hu..], stride: wu + 1 }],
                YuvMatrix::Bt709,
            ),
            Frame::new(
                PixelFormat::I420,
                w,
                h,
                &[
                    Plane { data: &bytes, stride: wu },
                    Plane { data: &bytes[wu * hu..], stride: wu / 2 + 1 },
                    Plane { data: &bytes[wu * hu + 5000..], stride: wu / 2 + 1 },
                ],
                YuvMatrix::Bt601,
            ),
        ];
        let norm = Normalize { color: ColorOrder::Bgr, mean: [0.4, 0.5, 0.6], std: [0.2, 0.25, 0.3] };
        for frame in frames {
            let frame = frame.expect("frame fits its planes");
            for (roi, size) in [
                (Roi { x: 3, y: 5, w: 24, h: 24 }, 32u32),
                (Roi { x: 20, y: 9, w: 96, h: 60 }, 32),
                (Roi { x: -30, y: 40, w: 200, h: 90 }, 48),
                (Roi { x: 100, y: 70, w: 3, h: 2 }, 17),
            ] {
                let spec = CropSpec { width: size, height: size, context: 0.1, norm };
                let (mut a, mut b) = (vec![0.0; spec.len()], vec![0.0; spec.len()]);
                crop(&frame, roi, &spec, &mut a, &mut CropScratch::default()).expect("baseline crop");
                // SAFETY: AVX2 was checked at the top of the test.
                unsafe { crop_avx2(&frame, roi, &spec, &mut b, &mut CropScratch::default()) }.expect("AVX2 crop");
                assert_eq!(a, b, "{:?} {roi:?}", frame.format());
            }
        }
    }
}
