// SPDX-License-Identifier: MIT OR Apache-2.0
//! A fast colour-and-shape sign-proposal detector: high recall, many false positives (which is what odm's anomaly
//! verdict is for). Pure Rust over borrowed planes, no GStreamer.
//!
//! The frame is sampled on a grid (one pixel every `step` pixels); each cell is classed red, blue or yellow by its
//! colour (saturation and dominant channel, after YUV to RGB where needed); 4-connected components of one class are
//! kept when their box is sign-sized, roughly square and filled like a disc, ring or triangle (not a thin line).

use odm_core::preprocess::{Frame, PixelFormat, YuvMatrix};

/// Colour class of a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Red,
    Blue,
    Yellow,
}

impl Colour {
    pub fn as_str(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
        }
    }
}

/// A proposed sign region in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proposal {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    pub colour: Colour,
    /// Share of the box's cells that have the colour (0..1).
    pub fill: f32,
}

/// Detector settings.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Grid step in pixels.
    pub step: u32,
    /// Smallest and largest box side in pixels.
    pub min_size: u32,
    pub max_size: u32,
    /// Most proposals per frame (largest first).
    pub max_proposals: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params { step: 2, min_size: 12, max_size: 400, max_proposals: 64 }
    }
}

/// Colour class of an RGB sample (0: none, 1 red, 2 blue, 3 yellow).
#[inline]
fn class_of(r: i32, g: i32, b: i32) -> u8 {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    if max < 60 || (max - min) * 100 < 35 * max {
        return 0;
    }
    if r == max && r * 10 > g * 16 && r * 10 > b * 16 {
        1
    } else if b == max && b * 10 > r * 14 && b * 10 > g * 11 {
        2
    } else if r > 130 && g > 100 && b * 10 < g * 6 && (r - g).abs() * 10 < r * 4 {
        3
    } else {
        0
    }
}

/// Reusable buffers: the class grid, labels and the flood-fill stack.
#[derive(Debug, Default)]
pub struct Detector {
    grid: Vec<u8>,
    seen: Vec<bool>,
    stack: Vec<u32>,
}

impl Detector {
    /// Proposals in `frame` (cleared and filled into `out`).
    pub fn detect(&mut self, frame: &Frame<'_>, p: &Params, out: &mut Vec<Proposal>) {
        let planes: [(&[u8], usize); 3] = std::array::from_fn(|i| (frame.plane(i).data, frame.plane(i).stride));
        out.clear();
        let step = p.step.max(1) as usize;
        let (fw, fh) = (frame.width() as usize, frame.height() as usize);
        let (gw, gh) = (fw / step, fh / step);
        if gw == 0 || gh == 0 {
            return;
        }
        self.grid.clear();
        self.grid.resize(gw * gh, 0);
        // Limited-range YUV to RGB in 8.8 fixed point, with the frame's matrix (from the caps' colorimetry, as
        // odmclassify and videoconvert use it): [R from V, G from U, G from V, B from U].
        let k: [i32; 4] = match frame.matrix() {
            YuvMatrix::Bt601 => [409, 100, 208, 516],
            YuvMatrix::Bt709 => [459, 55, 136, 541],
        };
        let yuv = |y: i32, u: i32, v: i32| {
            let c = y - 16;
            let (d, e) = (u - 128, v - 128);
            (
                (298 * c + k[0] * e + 128) >> 8,
                (298 * c - k[1] * d - k[2] * e + 128) >> 8,
                (298 * c + k[3] * d + 128) >> 8,
            )
        };
        for gy in 0..gh {
            let y = gy * step + step / 2;
            let row = &mut self.grid[gy * gw..(gy + 1) * gw];
            match frame.format() {
                format @ (PixelFormat::Nv12 | PixelFormat::I420) => {
                    let (yp, ys) = planes[0];
                    let yrow = &yp[y * ys..];
                    let nv12 = format == PixelFormat::Nv12;
                    let (c0, c0s) = planes[1];
                    let c0row = &c0[(y / 2) * c0s..];
                    let (c1, c1s) = planes[2];
                    let c1row = if nv12 { &[][..] } else { &c1[(y / 2) * c1s..] };
                    for (gx, cell) in row.iter_mut().enumerate() {
                        let x = gx * step + step / 2;
                        let (u, v) = if nv12 {
                            let i = (x / 2) * 2;
                            (c0row[i] as i32, c0row[i + 1] as i32)
                        } else {
                            (c0row[x / 2] as i32, c1row[x / 2] as i32)
                        };
                        // Grey enough to be no colour class whatever the luma: max - min of the RGB conversion is at
                        // most (617|V-128| + 616|U-128|) / 256 + 1 <= 20.3 here (BT.601; BT.709's bound is lower), and a class needs max >= 60 and
                        // max - min >= 0.35 max >= 21. Most of a road scene stops here, before the luma is read.
                        if (u - 128).abs() + (v - 128).abs() <= 8 {
                            *cell = 0;
                            continue;
                        }
                        let (r, g, b) = yuv(yrow[x] as i32, u, v);
                        *cell = class_of(r.clamp(0, 255), g.clamp(0, 255), b.clamp(0, 255));
                    }
                }
                f => {
                    let (off, px) = match f {
                        PixelFormat::Rgb => ([0, 1, 2], 3),
                        PixelFormat::Bgr => ([2, 1, 0], 3),
                        PixelFormat::Rgba | PixelFormat::Rgbx => ([0, 1, 2], 4),
                        PixelFormat::Bgra | PixelFormat::Bgrx => ([2, 1, 0], 4),
                        _ => return,
                    };
                    let (data, stride) = planes[0];
                    let prow = &data[y * stride..];
                    for (gx, cell) in row.iter_mut().enumerate() {
                        let i = (gx * step + step / 2) * px;
                        *cell = class_of(prow[i + off[0]] as i32, prow[i + off[1]] as i32, prow[i + off[2]] as i32);
                    }
                }
            }
        }
        // Components of one class.
        self.seen.clear();
        self.seen.resize(gw * gh, false);
        let (min_cells, max_cells) = ((p.min_size as usize).div_ceil(step).max(2), (p.max_size as usize / step).max(2));
        for start in 0..gw * gh {
            let class = self.grid[start];
            if class == 0 || self.seen[start] {
                continue;
            }
            self.seen[start] = true;
            self.stack.clear();
            self.stack.push(start as u32);
            let (mut x0, mut y0, mut x1, mut y1, mut n) = (gw, gh, 0, 0, 0usize);
            while let Some(i) = self.stack.pop() {
                let i = i as usize;
                let (x, y) = (i % gw, i / gw);
                (x0, y0, x1, y1, n) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y), n + 1);
                let mut visit = |j: usize| {
                    if self.grid[j] == class && !self.seen[j] {
                        self.seen[j] = true;
                        self.stack.push(j as u32);
                    }
                };
                if x > 0 {
                    visit(i - 1);
                }
                if x + 1 < gw {
                    visit(i + 1);
                }
                if y > 0 {
                    visit(i - gw);
                }
                if y + 1 < gh {
                    visit(i + gw);
                }
            }
            let (cw, ch) = (x1 - x0 + 1, y1 - y0 + 1);
            let fill = n as f32 / (cw * ch) as f32;
            let square = cw * 10 >= ch * 5 && ch * 10 >= cw * 5;
            if cw >= min_cells && ch >= min_cells && cw <= max_cells && ch <= max_cells && square && fill >= 0.2 {
                out.push(Proposal {
                    x: (x0 * step) as u32,
                    y: (y0 * step) as u32,
                    w: ((cw * step) as u32).min(frame.width() - (x0 * step) as u32),
                    h: ((ch * step) as u32).min(frame.height() - (y0 * step) as u32),
                    colour: match class {
                        1 => Colour::Red,
                        2 => Colour::Blue,
                        _ => Colour::Yellow,
                    },
                    fill,
                });
            }
        }
        out.sort_by_key(|p| std::cmp::Reverse(p.w * p.h));
        out.truncate(p.max_proposals);
    }
}
