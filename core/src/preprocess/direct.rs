// SPDX-License-Identifier: MIT OR Apache-2.0
//! The direct path of a crop: a box that maps pixel for pixel onto the output (a detector's unscaled letterbox of a
//! whole frame) is read straight into the tensor, without the filter's two passes, giving the filter's floats.

use super::pixel::{coefficients, put, yuv_to_rgb, RowNorm};
use super::{Frame, PixelFormat};

#[cfg(test)]
thread_local! {
    /// How many times [`direct_copy`] ran on this thread, so a test can tell that the direct path was taken.
    pub(crate) static RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The box `(x0, y0)` + the output's size lies inside the frame and maps pixel for pixel onto the output: each
/// sample is read straight into the tensor. The filter's weights are exactly 1 and 0 there, so this gives the same
/// floats as the two passes, without them (a detector's unscaled letterbox of a whole frame). YUV rows go by pixel
/// pairs: each chroma sample's products are computed once for the two pixels that share it.
#[inline(always)]
pub(super) fn direct_copy<'o>(
    frame: &Frame<'_>,
    (x0, y0): (usize, usize),
    ow: usize,
    rows: impl Iterator<Item = ((&'o mut [f32], &'o mut [f32]), &'o mut [f32])>,
    norm: &RowNorm,
) {
    #[cfg(test)]
    RUNS.with(|n| n.set(n.get() + 1));
    let planes = &frame.planes;
    let row = |p: usize, y: usize| &planes[p].data[y * planes[p].stride..];
    let k = coefficients(frame.matrix);
    for (oy, ((d0, d1), d2)) in rows.enumerate() {
        let y = y0 + oy;
        let luma = &row(0, y)[x0..x0 + ow];
        match frame.format {
            PixelFormat::Nv12 => {
                let c = row(1, y / 2);
                let uv = |x: usize| (c[2 * (x / 2)], c[2 * (x / 2) + 1]);
                let pairs = c[2 * (x0.div_ceil(2))..].chunks_exact(2).map(|p| (p[0], p[1]));
                yuv_row(x0, luma, uv, pairs, [d0, d1, d2], &k, norm);
            }
            PixelFormat::I420 => {
                let (cu, cv) = (row(1, y / 2), row(2, y / 2));
                let uv = |x: usize| (cu[x / 2], cv[x / 2]);
                let from = x0.div_ceil(2);
                let pairs = cu[from..].iter().copied().zip(cv[from..].iter().copied());
                yuv_row(x0, luma, uv, pairs, [d0, d1, d2], &k, norm);
            }
            f => {
                let (off, px) = f.packed().unwrap_or(([0, 0, 0], 1));
                let (src, d) = (&row(0, y)[x0 * px..], [d0, d1, d2]);
                // Each layout compiled on its own, its offsets constants, so the loop vectorises.
                match (px, off) {
                    (3, [0, 1, 2]) => packed_row::<3, 0, 1, 2>(src, d, norm),
                    (3, [2, 1, 0]) => packed_row::<3, 2, 1, 0>(src, d, norm),
                    (4, [0, 1, 2]) => packed_row::<4, 0, 1, 2>(src, d, norm),
                    (4, [2, 1, 0]) => packed_row::<4, 2, 1, 0>(src, d, norm),
                    (4, [1, 2, 3]) => packed_row::<4, 1, 2, 3>(src, d, norm),
                    (4, [3, 2, 1]) => packed_row::<4, 3, 2, 1>(src, d, norm),
                    (1, [0, 0, 0]) => packed_row::<1, 0, 0, 0>(src, d, norm),
                    // A layout not listed above: the same loop with the offsets read at run time.
                    _ => {
                        let [d0, d1, d2] = d;
                        let px_iter = src.chunks_exact(px).zip(d0.iter_mut().zip(d1.iter_mut()).zip(d2.iter_mut()));
                        for (p, ((a, b), c)) in px_iter {
                            put([a, b, c], [p[off[0]] as f32, p[off[1]] as f32, p[off[2]] as f32], norm);
                        }
                    }
                }
            }
        }
    }
}

/// One row of a packed frame of `PX` bytes a pixel, red, green and blue at `R`, `G`, `B`.
#[inline(always)]
fn packed_row<const PX: usize, const R: usize, const G: usize, const B: usize>(
    src: &[u8],
    [d0, d1, d2]: [&mut [f32]; 3],
    norm: &RowNorm,
) {
    for (p, ((a, b), c)) in src.chunks_exact(PX).zip(d0.iter_mut().zip(d1.iter_mut()).zip(d2.iter_mut())) {
        put([a, b, c], [p[R] as f32, p[G] as f32, p[B] as f32], norm);
    }
}

/// One row of a YUV 4:2:0 frame from column `x0`: `luma` its samples, `uv(x)` the chroma of frame column `x`, `pairs`
/// the chroma samples from the first even column at or after `x0` on. The arithmetic is [`yuv_to_rgb`]'s, term for
/// term, so the floats are the same; only the chroma products are shared by the two pixels of a pair.
#[inline(always)]
fn yuv_row(
    x0: usize,
    luma: &[u8],
    uv: impl Fn(usize) -> (u8, u8),
    pairs: impl Iterator<Item = (u8, u8)>,
    [d0, d1, d2]: [&mut [f32]; 3],
    k: &[f32; 4],
    norm: &RowNorm,
) {
    let one = |x: usize, l: u8, a: &mut f32, b: &mut f32, c: &mut f32| {
        let (u, v) = uv(x);
        put([a, b, c], yuv_to_rgb(l as f32, u as f32, v as f32, k), norm);
    };
    // An odd first column shares its chroma with the column left of the box.
    let lead = x0 % 2;
    if lead == 1 {
        one(x0, luma[0], &mut d0[0], &mut d1[0], &mut d2[0]);
    }
    // `luma` has at least one sample (crops are never empty).
    let n = luma.len() - lead;
    let (luma, d0, d1, d2) = (&luma[lead..], &mut d0[lead..], &mut d1[lead..], &mut d2[lead..]);
    let mut it = luma.chunks_exact(2);
    let (mut a, mut b, mut c) = (d0.chunks_exact_mut(2), d1.chunks_exact_mut(2), d2.chunks_exact_mut(2));
    for ((((l, a), b), c), (u, v)) in it.by_ref().zip(a.by_ref()).zip(b.by_ref()).zip(c.by_ref()).zip(pairs) {
        let (u, v) = (u as f32 - 128.0, v as f32 - 128.0);
        let (rv, gu, gv, bu) = (k[0] * v, k[1] * u, k[2] * v, k[3] * u);
        for j in 0..2 {
            let y = 1.164_383 * (l[j] as f32 - 16.0);
            let p = [(y + rv).clamp(0.0, 255.0), (y - gu - gv).clamp(0.0, 255.0), (y + bu).clamp(0.0, 255.0)];
            let [a, b, c] = [&mut a[j], &mut b[j], &mut c[j]];
            put([a, b, c], p, norm);
        }
    }
    // An odd last column.
    if let [l] = it.remainder() {
        let last = n - 1;
        one(x0 + lead + last, *l, &mut d0[last], &mut d1[last], &mut d2[last]);
    }
}
