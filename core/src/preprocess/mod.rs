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

mod crop;
mod direct;
mod pixel;
mod taps;

pub use crop::{crop_into, crop_to_tensor, crop_to_tensor_with, CropScratch, Place};

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
