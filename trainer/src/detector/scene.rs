// SPDX-License-Identifier: MIT OR Apache-2.0
//! Scenes to learn and to test sign detection on.
//!
//! Photo scenes: a real photograph as the background, sign designs of the Mapillary catalogue placed on it in
//! perspective (the crop renderer's own pose and compositing, [`render::place`] and [`render::composite`]), often
//! on a pole, among distractors — discs and panels in sign colours, the crop renderer's coloured shapes
//! ([`render::distractor`]), billboards cut from other photos, grey sign backs — then the whole frame goes
//! through the crop renderer's camera ([`render::camera`]: exposure, night gain with retro-reflecting signs, blur,
//! noise, JPEG). Drive crops: windows of frames of drives rendered by `odm-train clip` ([`crate::synth::clip`]), decoded
//! from their MP4 as any video, with the clip's truth boxes (its distractors are negatives).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use image::RgbImage;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_pcg::Pcg64;

use crate::data::rois::FrameLine;
use crate::error::TrainError;
use crate::synth::render::{self, Placement, Rgb, Template};

/// A truth box: (x, y, w, h) in pixels, and whether it is a sign (else a distractor, a negative).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    pub rect: (f32, f32, f32, f32),
    pub sign: bool,
}

/// What scenes are made of.
pub struct World {
    pub templates: Vec<Template>,
    pub photos: Vec<Rgb>,
}

/// How many signs and distractors a scene holds, and their sizes (pixels).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Crowd {
    pub signs: (usize, usize),
    pub distractors: (usize, usize),
    pub min_size: f32,
    pub max_size: f32,
}

fn overlaps(a: (f32, f32, f32, f32), boxes: &[Truth]) -> bool {
    boxes.iter().any(|b| {
        let r = b.rect;
        let ix = (a.0 + a.2).min(r.0 + r.2) - a.0.max(r.0);
        let iy = (a.1 + a.3).min(r.1 + r.3) - a.1.max(r.1);
        ix > -2.0 && iy > -2.0
    })
}

fn fill(img: &mut Rgb, x0: f32, y0: f32, x1: f32, y1: f32, c: [f32; 3]) {
    let (xa, xb) = (x0.max(0.0) as usize, (x1.max(0.0) as usize).min(img.w));
    let (ya, yb) = (y0.max(0.0) as usize, (y1.max(0.0) as usize).min(img.h));
    for y in ya..yb {
        for x in xa..xb {
            img.px[y * img.w + x] = c;
        }
    }
}

/// A pole under a panel centred at `cx` whose bottom is at `bottom`.
fn pole<R: Rng>(img: &mut Rgb, cx: f32, bottom: f32, size: f32, rng: &mut R) {
    let half = (size * 0.035).max(0.5);
    let grey = rng.random_range(0.3f32..0.6);
    let len = size * rng.random_range(1.5f32..5.0);
    fill(img, cx - half, bottom, cx + half, bottom + len, [grey, grey, grey * 1.04]);
}

/// A disc, panel or sign back of one colour with a darker rim, as `odm-train clip` draws its distractors.
fn shape(img: &mut Rgb, r: (f32, f32, f32, f32), colour: [f32; 3], disc: bool) {
    let (x0, y0, s, _) = r;
    for y in (y0.max(0.0) as usize)..((y0 + s).max(0.0) as usize).min(img.h) {
        for x in (x0.max(0.0) as usize)..((x0 + s).max(0.0) as usize).min(img.w) {
            let (u, v) = ((x as f32 + 0.5 - x0) / s, (y as f32 + 0.5 - y0) / s);
            let d = ((u - 0.5).powi(2) + (v - 0.5).powi(2)).sqrt();
            let inside = if disc { d < 0.5 } else { (0.05..0.95).contains(&u) && (0.2..0.8).contains(&v) };
            if !inside {
                continue;
            }
            let edge = if disc { d > 0.42 } else { !(0.1..0.9).contains(&u) || !(0.25..0.75).contains(&v) };
            let k = if edge { 0.6 } else { 1.0 };
            img.px[y * img.w + x] = colour.map(|c| c * k);
        }
    }
}

/// One distractor in the square `r`.
fn distractor<R: Rng>(img: &mut Rgb, r: (f32, f32, f32, f32), photos: &[Rgb], rng: &mut R) {
    let (x0, y0, s, _) = r;
    match rng.random_range(0..4) {
        0 => {
            let colours = [[0.85, 0.1, 0.1], [0.1, 0.25, 0.8], [0.95, 0.8, 0.1], [0.9, 0.45, 0.1], [0.95, 0.95, 0.92]];
            shape(img, r, colours[rng.random_range(0..colours.len())], rng.random_bool(0.6));
        }
        1 => {
            // The crop renderer's red, blue, yellow or white blob, on a patch of the scene.
            let (w, h) = (s.max(2.0) as usize, (s * rng.random_range(0.5f32..1.5)).max(2.0) as usize);
            let mut patch = Rgb::new(w, h);
            for y in 0..h {
                for x in 0..w {
                    let (tx, ty) = (x0 as i64 + x as i64, y0 as i64 + y as i64);
                    if tx >= 0 && ty >= 0 && (tx as usize) < img.w && (ty as usize) < img.h {
                        patch.px[y * w + x] = img.px[ty as usize * img.w + tx as usize];
                    }
                }
            }
            render::distractor(&mut patch, rng);
            for y in 0..h {
                for x in 0..w {
                    let (tx, ty) = (x0 as i64 + x as i64, y0 as i64 + y as i64);
                    if tx >= 0 && ty >= 0 && (tx as usize) < img.w && (ty as usize) < img.h {
                        img.px[ty as usize * img.w + tx as usize] = patch.px[y * w + x];
                    }
                }
            }
        }
        2 => {
            // A billboard: a cut of another photograph in a dark frame.
            let photo = &photos[rng.random_range(0..photos.len())];
            let h = s * rng.random_range(0.6f32..1.0);
            let cut = render::background(photo, s.max(2.0) as usize, h.max(2.0) as usize, rng);
            fill(img, x0 - 1.0, y0 - 1.0, x0 + s + 1.0, y0 + h + 1.0, [0.15, 0.15, 0.15]);
            for y in 0..cut.h {
                for x in 0..cut.w {
                    let (tx, ty) = (x0 as i64 + x as i64, y0 as i64 + y as i64);
                    if tx >= 0 && ty >= 0 && (tx as usize) < img.w && (ty as usize) < img.h {
                        img.px[ty as usize * img.w + tx as usize] = cut.px[y * cut.w + x];
                    }
                }
            }
        }
        _ => {
            let g = rng.random_range(0.4f32..0.75);
            shape(img, r, [g, g, g * 1.03], rng.random_bool(0.5));
        }
    }
}

/// A scene of `w x h`: a photo background, signs and distractors, through the camera.
pub fn compose<R: Rng>(world: &World, w: usize, h: usize, crowd: &Crowd, rng: &mut R) -> (RgbImage, Vec<Truth>) {
    let photo = &world.photos[rng.random_range(0..world.photos.len())];
    let mut img = render::background(photo, w, h, rng);
    let mut truth: Vec<Truth> = Vec::new();
    let mut mask = vec![0.0f32; w * h];
    let max = crowd.max_size.min(w.min(h) as f32 - 2.0).max(crowd.min_size * 1.01);
    let n_signs = rng.random_range(crowd.signs.0..=crowd.signs.1);
    let n_distractors = rng.random_range(crowd.distractors.0..=crowd.distractors.1);
    let mut kinds: Vec<bool> = (0..n_signs).map(|_| true).chain((0..n_distractors).map(|_| false)).collect();
    kinds.shuffle(rng);
    for sign in kinds {
        let p = render::place(rng, crowd.min_size, max);
        let xs = p.quad.iter().map(|q| q[0]);
        let ys = p.quad.iter().map(|q| q[1]);
        let (qx0, qx1) = (xs.clone().fold(f32::INFINITY, f32::min), xs.fold(f32::NEG_INFINITY, f32::max));
        let (qy0, qy1) = (ys.clone().fold(f32::INFINITY, f32::min), ys.fold(f32::NEG_INFINITY, f32::max));
        let (bw, bh) = (qx1 - qx0, qy1 - qy0);
        if bw >= w as f32 - 2.0 || bh >= h as f32 - 2.0 {
            continue;
        }
        // A place inside the frame clear of the others (a few tries).
        let spot = (0..8).find_map(|_| {
            let x = rng.random_range(1.0..w as f32 - bw - 1.0);
            let y = rng.random_range(1.0..h as f32 - bh - 1.0);
            (!overlaps((x, y, bw, bh), &truth)).then_some((x, y))
        });
        let Some((x, y)) = spot else { continue };
        if sign {
            if rng.random_bool(0.6) {
                pole(&mut img, x + bw / 2.0, y + bh * 0.9, p.size, rng);
            }
            let quad = p.quad.map(|[qx, qy]| [qx - qx0 + x, qy - qy0 + y]);
            let t = &world.templates[rng.random_range(0..world.templates.len())];
            let placed = Placement { size: p.size, crop_w: w, crop_h: h, quad };
            let m = render::composite(&mut img, t, &placed, rng);
            for (a, b) in mask.iter_mut().zip(m) {
                *a = a.max(b);
            }
        } else {
            if rng.random_bool(0.4) {
                pole(&mut img, x + bw / 2.0, y + bh * 0.9, p.size, rng);
            }
            distractor(&mut img, (x, y, bw.max(bh), bh), &world.photos, rng);
        }
        truth.push(Truth { rect: (x, y, bw, bh), sign });
    }
    let scale = rng.random_range(0.3f32..1.0);
    (render::camera(&mut img, &mask, scale, rng), truth)
}

/// Frames of a video as RGB, decoded by GStreamer (`gst-launch-1.0 ... ! fdsink`), each handed to `each` with its
/// index; `each` returns false to stop.
pub fn frames(
    video: &Path,
    width: usize,
    height: usize,
    mut each: impl FnMut(usize, &[u8]) -> Result<bool, TrainError>,
) -> Result<(), TrainError> {
    let mut child = Command::new("gst-launch-1.0")
        .args(["-q", "filesrc"])
        .arg(format!("location={}", video.display()))
        .args(["!", "decodebin", "!", "videoconvert", "!", "video/x-raw,format=RGB", "!", "fdsink", "fd=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| TrainError::Asset(format!("cannot start gst-launch-1.0 (run scripts/bootstrap.sh): {e}")))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut buf = vec![0u8; width * height * 3];
    let mut f = 0;
    while stdout.read_exact(&mut buf).is_ok() {
        if !each(f, &buf)? {
            break;
        }
        f += 1;
    }
    drop(stdout);
    let out = child.wait_with_output().map_err(|e| TrainError::Asset(format!("gst-launch-1.0: {e}")))?;
    if f == 0 {
        return Err(TrainError::Asset(format!(
            "{}: no frame decoded: {}",
            video.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Windows of `side x side` of a drive's frame (RGB bytes, `width` wide) with the truth boxes of that frame: half
/// of them around a sign when the frame has one. Boxes whose centre falls inside a window are kept, clipped to it.
pub fn drive_windows(
    rgb: &[u8],
    width: usize,
    height: usize,
    truth: &FrameLine,
    side: usize,
    count: usize,
    rng: &mut Pcg64,
) -> Vec<(RgbImage, Vec<Truth>)> {
    let boxes: Vec<Truth> = truth
        .rois
        .iter()
        .map(|r| Truth {
            rect: (r.x as f32, r.y as f32, r.w as f32, r.h as f32),
            sign: r.kind.as_deref() != Some("distractor"),
        })
        .collect();
    let signs: Vec<&Truth> = boxes.iter().filter(|b| b.sign).collect();
    let (mx, my) = (width.saturating_sub(side) as f32, height.saturating_sub(side) as f32);
    (0..count)
        .map(|k| {
            let (x0, y0) = if k % 2 == 0 && !signs.is_empty() {
                let s = signs[rng.random_range(0..signs.len())];
                let (cx, cy) = (s.rect.0 + s.rect.2 / 2.0, s.rect.1 + s.rect.3 / 2.0);
                let j = side as f32 * 0.4;
                (
                    (cx - side as f32 / 2.0 + rng.random_range(-j..j)).clamp(0.0, mx),
                    (cy - side as f32 / 2.0 + rng.random_range(-j..j)).clamp(0.0, my),
                )
            } else {
                (rng.random_range(0.0..=mx), rng.random_range(0.0..=my))
            };
            let (x0, y0) = (x0.floor() as usize, y0.floor() as usize);
            let mut img = RgbImage::new(side as u32, side as u32);
            for y in 0..side.min(height) {
                let row = &rgb[((y0 + y) * width + x0) * 3..((y0 + y) * width + x0 + side.min(width)) * 3];
                for (x, px) in row.chunks_exact(3).enumerate() {
                    img.put_pixel(x as u32, y as u32, image::Rgb([px[0], px[1], px[2]]));
                }
            }
            let s = side as f32;
            let kept = boxes
                .iter()
                .filter_map(|b| {
                    let (x, y, w, h) = (b.rect.0 - x0 as f32, b.rect.1 - y0 as f32, b.rect.2, b.rect.3);
                    let (cx, cy) = (x + w / 2.0, y + h / 2.0);
                    if !(0.0..s).contains(&cx) || !(0.0..s).contains(&cy) {
                        return None;
                    }
                    let (ax, ay) = (x.max(0.0), y.max(0.0));
                    let (bx, by) = ((x + w).min(s), (y + h).min(s));
                    Some(Truth { rect: (ax, ay, bx - ax, by - ay), sign: b.sign })
                })
                .collect();
            (img, kept)
        })
        .collect()
}
