// SPDX-License-Identifier: MIT OR Apache-2.0
//! The crop itself: the vertical pass into lines, then the horizontal pass, colour conversion and normalisation
//! into the tensor (the direct path, where the box maps pixel for pixel onto the output, is direct.rs).

use super::direct::direct_copy;
use super::pixel::{coefficients, put, yuv_to_rgb, RowNorm};
use super::taps::{axis_taps, chroma_taps, filter_rows, Rows, Taps};
use super::{check_roi, CropSpec, Frame, PixelFormat, Roi};
use crate::bundle::ColorOrder;
use crate::error::PreprocessError;

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

/// Where a crop lands in a larger CHW tensor: the tensor's width and height, and the crop's top-left corner in it
/// (a detector's letterbox writes the frame straight into its padded input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub width: u32,
    pub height: u32,
    pub x: u32,
    pub y: u32,
}

impl Place {
    /// The crop is the whole tensor.
    pub fn whole(spec: &CropSpec) -> Place {
        Place { width: spec.width, height: spec.height, x: 0, y: 0 }
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
    crop_into(frame, roi, spec, out, Place::whole(spec), scratch)
}

/// [`crop_to_tensor_with`] into a part of a larger CHW tensor of `place.width x place.height`, at `place.x, place.y`;
/// the rest of `out` is left as it is.
///
/// On x86-64 CPUs with AVX2 the same code is compiled a second time for AVX2 and chosen at run time (the default
/// target is baseline x86-64, SSE2 only); the arithmetic and its order are the same, so both give the same floats.
pub fn crop_into(
    frame: &Frame<'_>,
    roi: Roi,
    spec: &CropSpec,
    out: &mut [f32],
    place: Place,
    scratch: &mut CropScratch,
) -> Result<(), PreprocessError> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { crop_avx2(frame, roi, spec, out, place, scratch, true) };
    }
    crop(frame, roi, spec, out, place, scratch, true)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn crop_avx2(
    frame: &Frame<'_>,
    roi: Roi,
    spec: &CropSpec,
    out: &mut [f32],
    place: Place,
    scratch: &mut CropScratch,
    direct: bool,
) -> Result<(), PreprocessError> {
    crop(frame, roi, spec, out, place, scratch, direct)
}

/// The rows of the three tensor channels that the crop writes: `oh` rows of `ow` floats at the place.
fn place_rows<'o>(
    out: &'o mut [f32],
    place: Place,
    ow: usize,
    oh: usize,
) -> impl Iterator<Item = ((&'o mut [f32], &'o mut [f32]), &'o mut [f32])> {
    let (pw, ph) = (place.width as usize, place.height as usize);
    let (px, py) = (place.x as usize, place.y as usize);
    let plane = pw * ph;
    let (r0, rest) = out.split_at_mut(plane);
    let (r1, r2) = rest.split_at_mut(plane);
    let rows = |r: &'o mut [f32]| r.chunks_exact_mut(pw).skip(py).take(oh).map(move |r| &mut r[px..px + ow]);
    rows(r0).zip(rows(r1)).zip(rows(r2))
}

/// The body of [`crop_into`], inlined into each target's copy; `direct` allows the direct path (tests turn it off to
/// compare it with the filter).
#[inline(always)]
fn crop(
    frame: &Frame<'_>,
    roi: Roi,
    spec: &CropSpec,
    out: &mut [f32],
    place: Place,
    scratch: &mut CropScratch,
    direct: bool,
) -> Result<(), PreprocessError> {
    if spec.width == 0 || spec.height == 0 {
        return Err(PreprocessError::InputSize(spec.width, spec.height));
    }
    if place.x.checked_add(spec.width).is_none_or(|r| r > place.width)
        || place.y.checked_add(spec.height).is_none_or(|b| b > place.height)
    {
        return Err(PreprocessError::Place {
            width: spec.width,
            height: spec.height,
            x: place.x,
            y: place.y,
            into_width: place.width,
            into_height: place.height,
        });
    }
    let need = 3 * place.width as usize * place.height as usize;
    if out.len() != need {
        return Err(PreprocessError::OutputSize { got: out.len(), need });
    }
    check_roi(roi, frame.width, frame.height)?;
    let bgr = spec.norm.color == ColorOrder::Bgr;
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * spec.norm.std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| spec.norm.mean[c] / spec.norm.std[c]);
    let norm = RowNorm { bgr, scale, shift };

    let grow_x = spec.context * roi.w as f32;
    let grow_y = spec.context * roi.h as f32;
    let (bx, by) = (roi.x as f32 - grow_x, roi.y as f32 - grow_y);
    let (bw, bh) = (roi.w as f32 + 2.0 * grow_x, roi.h as f32 + 2.0 * grow_y);
    let (ow, oh) = (spec.width as usize, spec.height as usize);
    let (sx, sy) = (bw / ow as f32, bh / oh as f32);
    let whole = |v: f32| v >= 0.0 && v == (v as i64) as f32;
    if direct
        && sx == 1.0
        && sy == 1.0
        && whole(bx)
        && whole(by)
        && bx + bw <= frame.width as f32
        && by + bh <= frame.height as f32
    {
        direct_copy(frame, (bx as usize, by as usize), ow, place_rows(out, place, ow, oh), &norm);
        return Ok(());
    }
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
    let rows = place_rows(out, place, ow, oh);
    let lines = lines.chunks_exact(span * px);
    // Plain loops, no closures: a closure is a function of its own, which the AVX2 copy would call per pixel.
    let taps = tx.starts.iter().zip(tx.weights.chunks_exact(kx));
    if yuv {
        // Chroma taps: the luma taps of each output summed per chroma sample (luma column x reads chroma x / 2).
        chroma_taps(tx, c0, cspan, ctaps);
        let ck = ctaps.k;
        let nv12 = frame.format == PixelFormat::Nv12;
        let m = coefficients(frame.matrix);
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
                put([a, b, c], yuv_to_rgb(y, u, v, &m), &norm);
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
    use crate::preprocess::direct::RUNS as DIRECT;
    use crate::preprocess::YuvMatrix;
    use crate::preprocess::{Normalize, Plane};

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
                let place = Place::whole(&spec);
                crop(&frame, roi, &spec, &mut a, place, &mut CropScratch::default(), true).expect("baseline crop");
                // SAFETY: AVX2 was checked at the top of the test.
                unsafe { crop_avx2(&frame, roi, &spec, &mut b, place, &mut CropScratch::default(), true) }
                    .expect("AVX2 crop");
                assert_eq!(a, b, "{:?} {roi:?}", frame.format());
            }
        }
    }

    /// A frame of each layout over the same bytes, with strides wider than the rows.
    fn frames(bytes: &[u8], w: u32, h: u32) -> Vec<Frame<'_>> {
        let (wu, hu) = (w as usize, h as usize);
        let packed =
            |f, px: usize| Frame::new(f, w, h, &[Plane { data: bytes, stride: px * wu + 3 }], YuvMatrix::Bt601);
        vec![
            // Every packed layout (the direct path compiles each on its own).
            packed(PixelFormat::Rgb, 3),
            packed(PixelFormat::Bgr, 3),
            packed(PixelFormat::Rgbx, 4),
            packed(PixelFormat::Bgrx, 4),
            packed(PixelFormat::Argb, 4),
            packed(PixelFormat::Xbgr, 4),
            packed(PixelFormat::Gray8, 1),
            Frame::new(
                PixelFormat::Nv12,
                w,
                h,
                &[Plane { data: bytes, stride: wu + 1 }, Plane { data: &bytes[(wu + 1) * hu..], stride: wu + 2 }],
                YuvMatrix::Bt709,
            ),
            Frame::new(
                PixelFormat::I420,
                w,
                h,
                &[
                    Plane { data: bytes, stride: wu },
                    Plane { data: &bytes[wu * hu..], stride: wu / 2 + 1 },
                    Plane { data: &bytes[wu * hu + 3000..], stride: wu / 2 + 1 },
                ],
                YuvMatrix::Bt601,
            ),
        ]
        .into_iter()
        .map(|f| f.expect("frame fits its planes"))
        .collect()
    }

    /// Where a box maps pixel for pixel onto the output, the direct path gives the filter's floats bit for bit, for
    /// every layout, odd offsets (chroma shared across the box's edge), the whole frame and one pixel.
    #[test]
    fn the_direct_path_gives_the_filters_floats() {
        let (w, h) = (67u32, 41u32);
        let bytes: Vec<u8> = (0..w as usize * h as usize * 5).map(|i| (i * 31 % 253 + i / 89) as u8).collect();
        let norm = Normalize { color: ColorOrder::Bgr, mean: [0.4, 0.5, 0.6], std: [0.2, 0.25, 0.3] };
        for frame in frames(&bytes, w, h) {
            for roi in [
                Roi { x: 0, y: 0, w: w as i64, h: h as i64 },
                Roi { x: 3, y: 5, w: 24, h: 17 },
                Roi { x: 4, y: 6, w: 25, h: 16 },
                Roi { x: 66, y: 40, w: 1, h: 1 },
            ] {
                let spec = CropSpec { width: roi.w as u32, height: roi.h as u32, context: 0.0, norm };
                let place = Place::whole(&spec);
                let (mut a, mut b) = (vec![f32::NAN; spec.len()], vec![f32::NAN; spec.len()]);
                crop(&frame, roi, &spec, &mut a, place, &mut CropScratch::default(), false).expect("filter");
                let before = DIRECT.with(|n| n.get());
                crop_into(&frame, roi, &spec, &mut b, place, &mut CropScratch::default()).expect("direct");
                assert_eq!(DIRECT.with(|n| n.get()), before + 1, "the direct path ran: {:?} {roi:?}", frame.format());
                assert_eq!(a, b, "{:?} {roi:?}", frame.format());
            }
        }
    }

    /// A crop placed into a larger tensor writes its rectangle of each channel and nothing else; one that does not
    /// fit is refused with the sizes named.
    #[test]
    fn a_placed_crop_writes_its_rectangle_only() {
        let (w, h) = (40u32, 30u32);
        let bytes: Vec<u8> = (0..w as usize * h as usize * 5).map(|i| (i * 17 % 251) as u8).collect();
        let norm = Normalize { color: ColorOrder::Rgb, mean: [0.0; 3], std: [1.0; 3] };
        for frame in frames(&bytes, w, h) {
            for (roi, size) in
                [(Roi { x: 0, y: 0, w: 40, h: 30 }, (40, 30)), (Roi { x: 5, y: 2, w: 20, h: 20 }, (9, 7))]
            {
                let spec = CropSpec { width: size.0, height: size.1, context: 0.0, norm };
                let mut alone = vec![0.0; spec.len()];
                crop_to_tensor(&frame, roi, &spec, &mut alone).expect("crop");
                let place = Place { width: 50, height: 44, x: 6, y: 11 };
                let mut big = vec![-7.0f32; 3 * 50 * 44];
                crop_into(&frame, roi, &spec, &mut big, place, &mut CropScratch::default()).expect("placed");
                for c in 0..3 {
                    for y in 0..44usize {
                        for x in 0..50usize {
                            let v = big[c * 50 * 44 + y * 50 + x];
                            let (cx, cy) = (x.wrapping_sub(6), y.wrapping_sub(11));
                            if cx < size.0 as usize && cy < size.1 as usize {
                                assert_eq!(v, alone[c * spec.len() / 3 + cy * size.0 as usize + cx]);
                            } else {
                                assert_eq!(v, -7.0, "outside the place at {c},{x},{y}");
                            }
                        }
                    }
                }
            }
        }
        let frame = &frames(&bytes, w, h)[0];
        let spec = CropSpec { width: 20, height: 20, context: 0.0, norm };
        let mut big = vec![0.0f32; 3 * 30 * 30];
        let err = crop_into(
            frame,
            Roi { x: 0, y: 0, w: 20, h: 20 },
            &spec,
            &mut big,
            Place { width: 30, height: 30, x: 11, y: 0 },
            &mut CropScratch::default(),
        )
        .expect_err("does not fit");
        assert_eq!(err.to_string(), "a 20x20 crop at 11,0 does not fit a 30x30 tensor");
        let err = crop_into(
            frame,
            Roi { x: 0, y: 0, w: 20, h: 20 },
            &spec,
            &mut big,
            Place { width: 30, height: 30, x: u32::MAX, y: 0 },
            &mut CropScratch::default(),
        )
        .expect_err("overflowing place");
        assert!(err.to_string().contains("does not fit"), "{err}");
    }
}
