// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train plain`: a second, plainer rendering of the designs, used only to evaluate (`eval --test-data`).
//!
//! A model that is good only on odm's own renders is not done, so this path shares none of the camera model of
//! [`super::render`]: each design is rasterised by resvg straight at its final size (no mip templates, no
//! homography), squeezed sideways for a crude yaw, pasted with the `image` crate over a cut of a photograph the
//! training never saw (`.deps/photos/heldout`) or a flat colour, then blurred, brightened or darkened, and passed
//! through a JPEG round trip, all with the `image` crate's own operations. The crops are framed with a fixed margin.
//! Layout: `OUT/test/<design>/00000.png`, the shape `eval --test-data OUT` reads, and `OUT/plain.json` written last
//! (what was rendered: a tree without it is incomplete).

/// Written last into the output folder.
pub const DONE: &str = "plain.json";

use std::path::Path;

use image::{imageops, DynamicImage, ImageEncoder, Rgb, RgbImage, RgbaImage};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use rayon::prelude::*;

use super::designs::Catalogue;
use super::mix;
use crate::data::save_png;
use crate::error::TrainError;

/// What to render.
#[derive(Debug, Clone)]
pub struct PlainConfig {
    pub seed: u64,
    pub per_design: usize,
    /// Designs to render (empty: none).
    pub designs: Vec<String>,
    /// Photographs to cut backgrounds from (None: flat colours only).
    pub photos: Option<std::path::PathBuf>,
}

fn rasterise(svg: &str, size: u32) -> Result<RgbaImage, String> {
    let tree = resvg::usvg::Tree::from_str(svg, &resvg::usvg::Options::default()).map_err(|e| e.to_string())?;
    let s = tree.size();
    let scale = size as f32 / s.width().max(s.height());
    let (w, h) = ((s.width() * scale).round().max(1.0) as u32, (s.height() * scale).round().max(1.0) as u32);
    let mut pixmap = resvg::tiny_skia::Pixmap::new(w, h).ok_or("empty pixmap")?;
    resvg::render(&tree, resvg::tiny_skia::Transform::from_scale(scale, scale), &mut pixmap.as_mut());
    if pixmap.pixels().iter().all(|p| p.alpha() == 0) {
        return Err("the design renders to nothing (every pixel transparent)".into());
    }
    // tiny-skia is premultiplied; the image crate's RGBA is not.
    let mut img = RgbaImage::new(w, h);
    for (dst, p) in img.pixels_mut().zip(pixmap.pixels()) {
        let c = p.demultiply();
        *dst = image::Rgba([c.red(), c.green(), c.blue(), c.alpha()]);
    }
    Ok(img)
}

fn one(svg: &str, photos: &[RgbImage], rng: &mut Pcg64) -> Result<RgbImage, String> {
    let size = rng.random_range(14u32..80);
    let sign = rasterise(svg, size)?;
    // A crude yaw: squeeze the width.
    let squeeze = rng.random_range(0.7f32..1.0);
    let sign = imageops::resize(
        &sign,
        ((sign.width() as f32 * squeeze).round() as u32).max(1),
        sign.height(),
        imageops::FilterType::Triangle,
    );
    let margin = (size as f32 * 0.15).round() as u32;
    let (w, h) = (sign.width() + 2 * margin, sign.height() + 2 * margin);
    let mut canvas = if photos.is_empty() || rng.random_bool(0.25) {
        RgbImage::from_pixel(w, h, Rgb([rng.random(), rng.random(), rng.random()]))
    } else {
        let p = &photos[rng.random_range(0..photos.len())];
        let scale = rng.random_range(0.2f32..1.0);
        let (cw, ch) = (((w as f32 / scale) as u32).min(p.width()), ((h as f32 / scale) as u32).min(p.height()));
        let x = rng.random_range(0..=p.width() - cw);
        let y = rng.random_range(0..=p.height() - ch);
        imageops::resize(&imageops::crop_imm(p, x, y, cw, ch).to_image(), w, h, imageops::FilterType::Triangle)
    };
    let mut rgba = DynamicImage::ImageRgb8(canvas.clone()).to_rgba8();
    imageops::overlay(&mut rgba, &sign, margin as i64, margin as i64);
    canvas = DynamicImage::ImageRgba8(rgba).to_rgb8();
    let sigma = rng.random_range(0.0f32..1.2);
    if sigma > 0.3 {
        canvas = imageops::blur(&canvas, sigma);
    }
    let canvas = imageops::colorops::brighten(&canvas, rng.random_range(-60..40));
    let canvas = imageops::colorops::contrast(&canvas, rng.random_range(-30.0f32..10.0));
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, rng.random_range(40..95))
        .write_image(canvas.as_raw(), canvas.width(), canvas.height(), image::ExtendedColorType::Rgb8)
        .map_err(|e| e.to_string())?;
    Ok(image::load_from_memory(&jpeg).map_err(|e| e.to_string())?.to_rgb8())
}

/// Render `per_design` crops of every named design into `out/test/<design>/`. Returns the number written.
pub fn run(out: &Path, config: &PlainConfig, catalogue: &Catalogue) -> Result<usize, TrainError> {
    let designs = catalogue.select(&config.designs)?;
    let photos: Vec<RgbImage> = match &config.photos {
        Some(dir) => super::photo_scenes(dir)?.into_iter().map(|(_, rgb)| rgb.to_image()).collect(),
        None => Vec::new(),
    };
    let jobs: Vec<(usize, usize)> =
        (0..designs.len()).flat_map(|d| (0..config.per_design).map(move |i| (d, i))).collect();
    let svgs: Vec<String> = designs.iter().map(|d| d.svg()).collect::<Result<_, _>>()?;
    for d in &designs {
        let dir = out.join("test").join(&d.name);
        std::fs::create_dir_all(&dir).map_err(TrainError::io(&dir))?;
    }
    jobs.par_iter().try_for_each(|&(d, i)| {
        let mut rng = Pcg64::seed_from_u64(mix(mix(config.seed ^ 0x706c_6169_6e00) ^ d as u64) ^ i as u64);
        let img = one(&svgs[d], &photos, &mut rng).map_err(|e| TrainError::Designs {
            path: designs[d].path.clone(),
            reason: format!("cannot render the design plainly: {e}"),
        })?;
        save_png(&img, &out.join("test").join(&designs[d].name).join(format!("{i:05}.png")))
    })?;
    let done = out.join(DONE);
    let record = serde_json::json!({
        "seed": config.seed, "per_design": config.per_design, "designs": config.designs,
        "photos": config.photos.as_ref().map(|p| p.display().to_string()), "images": jobs.len(),
    });
    std::fs::write(&done, record.to_string() + "\n").map_err(TrainError::io(&done))?;
    Ok(jobs.len())
}
