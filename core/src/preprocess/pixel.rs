// SPDX-License-Identifier: MIT OR Apache-2.0
//! One pixel's arithmetic, shared by the filter (crop.rs) and the direct path (direct.rs): YUV to RGB, and the
//! normalisation into the tensor's three channels.

use super::YuvMatrix;

/// The limited-range YUV to RGB coefficients of a matrix: V in R, U and V in G, U in B.
#[inline(always)]
pub(super) fn coefficients(m: YuvMatrix) -> [f32; 4] {
    match m {
        YuvMatrix::Bt601 => [1.596_027, 0.391_762, 0.812_968, 2.017_232],
        YuvMatrix::Bt709 => [1.792_741, 0.213_249, 0.532_909, 2.112_402],
    }
}

#[inline(always)]
pub(super) fn yuv_to_rgb(y: f32, u: f32, v: f32, k: &[f32; 4]) -> [f32; 3] {
    let (y, u, v) = (1.164_383 * (y - 16.0), u - 128.0, v - 128.0);
    let (r, g, b) = (y + k[0] * v, y - k[1] * u - k[2] * v, y + k[3] * u);
    [r.clamp(0.0, 255.0), g.clamp(0.0, 255.0), b.clamp(0.0, 255.0)]
}

/// The normalisation of one output row: channel order, then `v * scale - shift` per tensor channel.
pub(super) struct RowNorm {
    pub(super) bgr: bool,
    pub(super) scale: [f32; 3],
    pub(super) shift: [f32; 3],
}

/// Writes one output pixel of the three tensor channels from its filtered RGB.
#[inline(always)]
pub(super) fn put(dst: [&mut f32; 3], p: [f32; 3], n: &RowNorm) {
    let (first, last) = if n.bgr { (p[2], p[0]) } else { (p[0], p[2]) };
    *dst[0] = first * n.scale[0] - n.shift[0];
    *dst[1] = p[1] * n.scale[1] - n.shift[1];
    *dst[2] = last * n.scale[2] - n.shift[2];
}
