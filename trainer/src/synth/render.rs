// SPDX-License-Identifier: MIT OR Apache-2.0
//! Rendering one crop: a sign seen from a car, or a background patch, through a simulated camera.
//!
//! Each sign design is rasterised once (resvg) at three sizes; each sample then places the sign on a patch of a real
//! photo with a perspective warp, and passes the result through the camera: fading, occlusion, exposure, colour cast,
//! night-time gain, defocus and motion blur, sensor noise and JPEG artefacts. The crop is framed the way a detector
//! frames its boxes: some context around the sign, a little off-centre, never exactly square.

use image::{ImageEncoder, RgbImage};
use rand::Rng;
use rand_distr::{Distribution, Normal};

/// Bilinear interpolation of `at` (pixel centres at +0.5) at continuous coordinates.
#[inline]
fn bilinear<const N: usize>(at: impl Fn(i64, i64) -> [f32; N], fx: f32, fy: f32) -> [f32; N] {
    let (x, y) = (fx - 0.5, fy - 0.5);
    let (x0, y0) = (x.floor(), y.floor());
    let (ax, ay) = (x - x0, y - y0);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let (p00, p10, p01, p11) = (at(x0, y0), at(x0 + 1, y0), at(x0, y0 + 1), at(x0 + 1, y0 + 1));
    std::array::from_fn(|c| {
        let top = p00[c] + (p10[c] - p00[c]) * ax;
        let bottom = p01[c] + (p11[c] - p01[c]) * ax;
        top + (bottom - top) * ay
    })
}

/// A premultiplied RGBA float image.
#[derive(Clone)]
pub struct Rgba {
    pub w: usize,
    pub h: usize,
    pub px: Vec<[f32; 4]>,
}

/// An RGB float image in [0, 1].
#[derive(Clone)]
pub struct Rgb {
    pub w: usize,
    pub h: usize,
    pub px: Vec<[f32; 3]>,
}

impl Rgb {
    pub fn new(w: usize, h: usize) -> Rgb {
        Rgb { w, h, px: vec![[0.0; 3]; w * h] }
    }

    pub fn from_image(img: &image::RgbImage) -> Rgb {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let px = img.pixels().map(|p| [p[0] as f32 / 255.0, p[1] as f32 / 255.0, p[2] as f32 / 255.0]).collect();
        Rgb { w, h, px }
    }

    fn at(&self, x: i64, y: i64) -> [f32; 3] {
        let x = x.clamp(0, self.w as i64 - 1) as usize;
        let y = y.clamp(0, self.h as i64 - 1) as usize;
        self.px[y * self.w + x]
    }

    /// Bilinear sample, pixel centres at +0.5, edges repeated.
    pub fn sample(&self, fx: f32, fy: f32) -> [f32; 3] {
        bilinear(|x, y| self.at(x, y), fx, fy)
    }

    pub fn to_image(&self) -> RgbImage {
        let mut img = RgbImage::new(self.w as u32, self.h as u32);
        for (dst, src) in img.pixels_mut().zip(&self.px) {
            *dst = image::Rgb(std::array::from_fn(|c| (src[c].clamp(0.0, 1.0) * 255.0 + 0.5) as u8));
        }
        img
    }
}

impl Rgba {
    fn at(&self, x: i64, y: i64) -> [f32; 4] {
        if x < 0 || y < 0 || x >= self.w as i64 || y >= self.h as i64 {
            return [0.0; 4];
        }
        self.px[y as usize * self.w + x as usize]
    }

    /// Bilinear sample; transparent outside.
    fn sample(&self, fx: f32, fy: f32) -> [f32; 4] {
        bilinear(|x, y| self.at(x, y), fx, fy)
    }
}

/// One design rasterised at several sizes (a small mip chain), premultiplied.
pub struct Template {
    pub levels: Vec<Rgba>,
}

/// Sizes the designs are rasterised at.
pub const TEMPLATE_SIZES: [u32; 3] = [32, 64, 128];

impl Template {
    pub fn rasterise(svg: &str, fontdb: &std::sync::Arc<resvg::usvg::fontdb::Database>) -> Result<Template, String> {
        let opt = resvg::usvg::Options { fontdb: fontdb.clone(), font_family: "OSP-DIN".into(), ..Default::default() };
        let tree = resvg::usvg::Tree::from_str(svg, &opt).map_err(|e| e.to_string())?;
        let mut levels = Vec::new();
        for size in TEMPLATE_SIZES {
            let mut pixmap = resvg::tiny_skia::Pixmap::new(size, size).ok_or("empty pixmap")?;
            // The design keeps its aspect ratio, centred in the square (rectangular plates have transparent bands).
            let s = tree.size();
            let scale = size as f32 / s.width().max(s.height());
            let (dx, dy) = ((size as f32 - s.width() * scale) / 2.0, (size as f32 - s.height() * scale) / 2.0);
            let t = resvg::tiny_skia::Transform::from_scale(scale, scale).post_translate(dx, dy);
            resvg::render(&tree, t, &mut pixmap.as_mut());
            let px = pixmap
                .pixels()
                .iter()
                .map(|p| {
                    [
                        p.red() as f32 / 255.0,
                        p.green() as f32 / 255.0,
                        p.blue() as f32 / 255.0,
                        p.alpha() as f32 / 255.0,
                    ]
                })
                .collect();
            levels.push(Rgba { w: size as usize, h: size as usize, px });
        }
        if levels.iter().all(|l| l.px.iter().all(|p| p[3] <= 0.0)) {
            return Err("the design renders to nothing (every pixel transparent)".into());
        }
        Ok(Template { levels })
    }

    /// Premultiplied RGBA at (u, v) in [0, 1) of the design drawn `size` pixels wide (from the nearest level).
    pub fn sample_at(&self, size: f32, u: f32, v: f32) -> [f32; 4] {
        let l = self.level(size);
        l.sample(u * l.w as f32, v * l.h as f32)
    }

    /// The smallest level at least `size` pixels wide (the largest if none).
    fn level(&self, size: f32) -> &Rgba {
        self.levels.iter().find(|l| l.w as f32 >= size).unwrap_or_else(|| self.levels.last().expect("levels"))
    }
}

/// A projective map of the unit square onto a quad (Heckbert's closed form), and its inverse.
#[derive(Debug, Clone, Copy)]
pub struct Homography([f32; 9]);

impl Homography {
    /// Unit square corners (0,0), (1,0), (1,1), (0,1) onto `q[0..4]`.
    pub fn square_to_quad(q: [[f32; 2]; 4]) -> Homography {
        let [[x0, y0], [x1, y1], [x2, y2], [x3, y3]] = q;
        let (dx1, dx2, dx3) = (x1 - x2, x3 - x2, x0 - x1 + x2 - x3);
        let (dy1, dy2, dy3) = (y1 - y2, y3 - y2, y0 - y1 + y2 - y3);
        let det = dx1 * dy2 - dx2 * dy1;
        let (g, h) = if dx3.abs() < 1e-9 && dy3.abs() < 1e-9 || det.abs() < 1e-12 {
            (0.0, 0.0)
        } else {
            ((dx3 * dy2 - dx2 * dy3) / det, (dx1 * dy3 - dx3 * dy1) / det)
        };
        Homography([x1 - x0 + g * x1, x3 - x0 + h * x3, x0, y1 - y0 + g * y1, y3 - y0 + h * y3, y0, g, h, 1.0])
    }

    pub fn inverse(&self) -> Homography {
        let [a, b, c, d, e, f, g, h, i] = self.0;
        let m = [
            e * i - f * h,
            c * h - b * i,
            b * f - c * e,
            f * g - d * i,
            a * i - c * g,
            c * d - a * f,
            d * h - e * g,
            b * g - a * h,
            a * e - b * d,
        ];
        let det = a * m[0] + b * m[3] + c * m[6];
        Homography(m.map(|v| v / det))
    }

    pub fn apply(&self, x: f32, y: f32) -> (f32, f32) {
        let [a, b, c, d, e, f, g, h, i] = self.0;
        let w = g * x + h * y + i;
        ((a * x + b * y + c) / w, (d * x + e * y + f) / w)
    }
}

/// A background patch of `w x h` from a scene, at a random place, scale and mirror.
pub fn background<R: Rng>(scene: &Rgb, w: usize, h: usize, rng: &mut R) -> Rgb {
    let k = rng.random_range(0.6f32..3.0);
    let (sw, sh) = ((w as f32 * k).min(scene.w as f32 - 1.0), (h as f32 * k).min(scene.h as f32 - 1.0));
    let x0 = rng.random_range(0.0..(scene.w as f32 - sw).max(1.0));
    let y0 = rng.random_range(0.0..(scene.h as f32 - sh).max(1.0));
    let flip = rng.random_bool(0.5);
    let mut out = Rgb::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let u = (x as f32 + 0.5) / w as f32;
            let u = if flip { 1.0 - u } else { u };
            out.px[y * w + x] = scene.sample(x0 + u * sw, y0 + (y as f32 + 0.5) / h as f32 * sh);
        }
    }
    out
}

/// Where and how a sign sits in its crop.
pub struct Placement {
    /// Sign size in pixels (its larger side before perspective).
    pub size: f32,
    pub crop_w: usize,
    pub crop_h: usize,
    pub quad: [[f32; 2]; 4],
}

/// Frame a sign of a random size the way a detector does, and choose its pose.
pub fn place<R: Rng>(rng: &mut R, min: f32, max: f32) -> Placement {
    let size = (rng.random_range(min.ln()..max.ln())).exp();
    let ctx = rng.random_range(0.05f32..0.25);
    let crop_w = (size * (1.0 + 2.0 * ctx) * rng.random_range(0.9f32..1.12)).round().max(8.0) as usize;
    let crop_h = (size * (1.0 + 2.0 * ctx) * rng.random_range(0.9f32..1.12)).round().max(8.0) as usize;
    let cx = crop_w as f32 / 2.0 + rng.random_range(-0.12f32..0.12) * size;
    let cy = crop_h as f32 / 2.0 + rng.random_range(-0.12f32..0.12) * size;
    let yaw = rng.random_range(-0.7f32..0.7); // radians: seen from the side of the road
    let pitch = rng.random_range(-0.25f32..0.25);
    let roll = Normal::new(0.0f32, 0.06).expect("valid normal").sample(rng).clamp(-0.2, 0.2);
    let half_w = 0.5 * size * yaw.cos();
    let half_h = 0.5 * size * pitch.cos();
    // Keystone: the far edge is shorter.
    let (kx, ky) = (0.18 * yaw.sin(), 0.18 * pitch.sin());
    let corners = [
        [-half_w, -half_h * (1.0 + kx)],
        [half_w, -half_h * (1.0 - kx)],
        [half_w, half_h * (1.0 - kx)],
        [-half_w, half_h * (1.0 + kx)],
    ];
    let (s, c) = roll.sin_cos();
    let quad = corners.map(|[x, y]| {
        let y = y * (1.0 + if y < 0.0 { ky } else { -ky });
        [cx + x * c - y * s, cy + x * s + y * c]
    });
    Placement { size, crop_w, crop_h, quad }
}

/// Draw the template into `img` through the placement's homography; returns the sign's coverage mask.
pub fn composite<R: Rng>(img: &mut Rgb, t: &Template, p: &Placement, rng: &mut R) -> Vec<f32> {
    let level = t.level(p.size);
    let n = level.w as f32;
    let inv = Homography::square_to_quad(p.quad).inverse();
    // Fading (sun-bleached paint) and dirt.
    let fade = if rng.random_bool(0.3) { rng.random_range(0.05f32..0.45) } else { 0.0 };
    let dirt = rng.random_range(0.85f32..1.0);
    let mut mask = vec![0.0f32; img.w * img.h];
    for y in 0..img.h {
        for x in 0..img.w {
            let (u, v) = inv.apply(x as f32 + 0.5, y as f32 + 0.5);
            if !(-0.02..=1.02).contains(&u) || !(-0.02..=1.02).contains(&v) {
                continue;
            }
            let s = level.sample(u * n, v * n);
            let a = s[3];
            if a <= 0.0 {
                continue;
            }
            let i = y * img.w + x;
            for (dst, src) in img.px[i].iter_mut().zip(&s[..3]) {
                let sign = (src * (1.0 - fade) + fade * a) * dirt;
                *dst = *dst * (1.0 - a) + sign;
            }
            mask[i] = a;
        }
    }
    mask
}

/// Cover part of the sign with something from the scene (a branch, a pole, another car).
pub fn occlude<R: Rng>(img: &mut Rgb, other: &Rgb, p: &Placement, rng: &mut R) {
    let bb = bbox(&p.quad);
    let (w, h) = (bb.2 - bb.0, bb.3 - bb.1);
    let frac = rng.random_range(0.1f32..0.35);
    let (ow, oh, ox, oy) = match rng.random_range(0..4) {
        0 => (w * frac * 2.0, h, bb.0 - w * 0.1, bb.1),        // from the left
        1 => (w * frac * 2.0, h, bb.2 - w * frac * 1.9, bb.1), // from the right
        2 => (w, h * frac * 2.0, bb.0, bb.3 - h * frac * 1.9), // from below
        _ => (w * 0.18, h * 1.2, bb.0 + w * rng.random_range(0.2f32..0.7), bb.1 - h * 0.1), // a pole or branch
    };
    let patch = background(other, ow.max(1.0) as usize + 1, oh.max(1.0) as usize + 1, rng);
    for y in 0..patch.h {
        for x in 0..patch.w {
            let (tx, ty) = (ox as i64 + x as i64, oy as i64 + y as i64);
            if tx >= 0 && ty >= 0 && (tx as usize) < img.w && (ty as usize) < img.h {
                img.px[ty as usize * img.w + tx as usize] = patch.px[y * patch.w + x];
            }
        }
    }
}

fn bbox(q: &[[f32; 2]; 4]) -> (f32, f32, f32, f32) {
    let xs = q.iter().map(|p| p[0]);
    let ys = q.iter().map(|p| p[1]);
    (
        xs.clone().fold(f32::INFINITY, f32::min),
        ys.clone().fold(f32::INFINITY, f32::min),
        xs.fold(f32::NEG_INFINITY, f32::max),
        ys.fold(f32::NEG_INFINITY, f32::max),
    )
}

/// Separable convolution with a 1-D kernel along x then y (edges repeated).
fn convolve(img: &mut Rgb, kx: &[f32], ky: &[f32]) {
    let pass = |src: &Rgb, k: &[f32], horizontal: bool| {
        let r = (k.len() / 2) as i64;
        let mut out = Rgb::new(src.w, src.h);
        for y in 0..src.h as i64 {
            for x in 0..src.w as i64 {
                let mut acc = [0.0f32; 3];
                for (j, wgt) in k.iter().enumerate() {
                    let o = j as i64 - r;
                    let p = if horizontal { src.at(x + o, y) } else { src.at(x, y + o) };
                    for c in 0..3 {
                        acc[c] += wgt * p[c];
                    }
                }
                out.px[y as usize * src.w + x as usize] = acc;
            }
        }
        out
    };
    if kx.len() > 1 {
        *img = pass(img, kx, true);
    }
    if ky.len() > 1 {
        *img = pass(img, ky, false);
    }
}

fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let r = (sigma * 2.5).ceil().max(1.0) as i64;
    let k: Vec<f32> = (-r..=r).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let s: f32 = k.iter().sum();
    k.into_iter().map(|v| v / s).collect()
}

/// Motion blur along a random direction: a line kernel, applied as a sum of shifted copies.
fn motion_blur<R: Rng>(img: &mut Rgb, length: f32, rng: &mut R) {
    let angle = rng.random_range(0.0f32..std::f32::consts::PI);
    let (dx, dy) = (angle.cos(), angle.sin());
    let taps = length.ceil().max(2.0) as usize;
    let src = img.clone();
    for y in 0..img.h {
        for x in 0..img.w {
            let mut acc = [0.0f32; 3];
            for t in 0..taps {
                let o = (t as f32 / (taps - 1) as f32 - 0.5) * length;
                let p = src.sample(x as f32 + 0.5 + o * dx, y as f32 + 0.5 + o * dy);
                for c in 0..3 {
                    acc[c] += p[c];
                }
            }
            img.px[y * img.w + x] = acc.map(|v| v / taps as f32);
        }
    }
}

/// The camera: exposure, colour cast, night gain (signs retro-reflect headlights), blur, noise, JPEG.
/// `mask` is the sign's coverage (empty for background patches).
pub fn camera<R: Rng>(img: &mut Rgb, mask: &[f32], scale: f32, rng: &mut R) -> RgbImage {
    let night = rng.random_bool(0.15);
    let gain = if night { rng.random_range(0.12f32..0.35) } else { rng.random_range(0.55f32..1.5) };
    let reflect = if night { rng.random_range(1.8f32..3.2) } else { 1.0 };
    let cast: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.86f32..1.14));
    for (i, p) in img.px.iter_mut().enumerate() {
        let m = mask.get(i).copied().unwrap_or(0.0);
        let g = gain * (1.0 + (reflect - 1.0) * m);
        for c in 0..3 {
            p[c] *= g * cast[c];
        }
    }
    if rng.random_bool(0.3) {
        let k = gaussian_kernel(rng.random_range(0.3f32..1.1) * scale.max(0.5));
        convolve(img, &k, &k);
    }
    if rng.random_bool(0.25) {
        motion_blur(img, rng.random_range(1.5f32..5.0) * scale.max(0.5), rng);
    }
    let sigma = if night { rng.random_range(0.02f32..0.06) } else { rng.random_range(0.0f32..0.03) };
    if sigma > 0.0 {
        let n = Normal::new(0.0f32, sigma).expect("valid normal");
        for p in img.px.iter_mut() {
            for c in p.iter_mut() {
                *c += n.sample(rng);
            }
        }
    }
    let out = img.to_image();
    if rng.random_bool(0.5) {
        jpeg(&out, rng.random_range(25u8..92))
    } else {
        out
    }
}

/// JPEG round trip at a quality.
fn jpeg(img: &RgbImage, quality: u8) -> RgbImage {
    let mut bytes = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality);
    if enc.write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8).is_err() {
        return img.clone();
    }
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
        .map(|i| i.to_rgb8())
        .unwrap_or_else(|_| img.clone())
}

/// A red or blue non-sign object (tail light, shop sign, blue panel, red car) on a background patch.
pub fn distractor<R: Rng>(img: &mut Rgb, rng: &mut R) {
    let colour: [f32; 3] = match rng.random_range(0..4) {
        0 => [0.78, 0.08, 0.1],
        1 => [0.12, 0.32, 0.68],
        2 => [0.9, 0.75, 0.1],
        _ => [0.95, 0.95, 0.92],
    };
    let (w, h) = (img.w as f32, img.h as f32);
    let (cx, cy) = (rng.random_range(0.2..0.8) * w, rng.random_range(0.2..0.8) * h);
    let (rx, ry) = (rng.random_range(0.15..0.6) * w, rng.random_range(0.1..0.5) * h);
    let ellipse = rng.random_bool(0.5);
    let shade = rng.random_range(0.6f32..1.1);
    for y in 0..img.h {
        for x in 0..img.w {
            let (dx, dy) = ((x as f32 + 0.5 - cx) / rx, (y as f32 + 0.5 - cy) / ry);
            let inside = if ellipse { dx * dx + dy * dy <= 1.0 } else { dx.abs() <= 1.0 && dy.abs() <= 1.0 };
            if inside {
                let t = 1.0 - 0.25 * dy.clamp(-1.0, 1.0);
                img.px[y * img.w + x] = colour.map(|c| c * shade * t);
            }
        }
    }
}

/// Gaussian noise image (the paper's "noise" anomaly set).
pub fn noise<R: Rng>(w: usize, h: usize, rng: &mut R) -> RgbImage {
    let n = Normal::new(0.5f32, 0.2).expect("valid normal");
    let mut img = Rgb::new(w, h);
    for p in img.px.iter_mut() {
        *p = std::array::from_fn(|_| n.sample(rng));
    }
    img.to_image()
}
