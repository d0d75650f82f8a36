// SPDX-License-Identifier: MIT OR Apache-2.0
//! Trees of out-of-distribution images to mine in training (`train --seen-novelty-dir`, `--seen-anomaly-dir`),
//! rendered through the same camera model as the signs:
//!
//! * `odm-train signlike`: sign-like unknowns — the paper's lever for novelty is mining *related* classes, and the
//!   renderer makes them without end. Numerals that no class has in a speed-limit ring, random glyphs and random
//!   pictograms (bars, discs, triangles) in real sign shapes and colours. None of them is a class of the catalogue:
//!   numerals skip every multiple of ten (speed limits 10..130 are classes, seen or unseen), and the pictograms are
//!   random primitives, never the catalogue's artwork.
//! * `odm-train objects`: sign-coloured non-signs that sign detectors fire on — traffic cones, red and blue
//!   clothing, doors, windows, brake and tail lights, round traffic mirrors, plain coloured panels.
//!
//! Layout: `OUT/<family>/00000.png ...` (one folder per family, as every loader of odm reads trees) and
//! `OUT/mined.json` (kind, seed, counts). Each image has its own random stream from (seed, family, index).

use std::fs;
use std::path::Path;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use rayon::prelude::*;
use serde::Serialize;

use super::render::{self, Template};
use super::{fonts, mix, scenes, SynthConfig};
use crate::data::save_png;
use crate::error::TrainError;

/// What a tree holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MinedKind {
    /// Sign-like unknowns (novelty-like: related to the signs, no class of them).
    Signlike,
    /// Sign-coloured non-signs (anomalies).
    Objects,
}

impl MinedKind {
    pub fn families(self) -> &'static [&'static str] {
        match self {
            MinedKind::Signlike => &[
                "numeral-ring",
                "glyph-ring",
                "pictogram-ring",
                "glyph-triangle",
                "pictogram-triangle",
                "blue-disc",
                "panel",
                "odd-shape",
            ],
            MinedKind::Objects => {
                &["cone", "jacket", "trousers", "door", "window", "tail-lights", "traffic-mirror", "colour-panel"]
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MinedManifest {
    pub generator: &'static str,
    pub kind: MinedKind,
    pub seed: u64,
    pub families: Vec<(String, usize)>,
}

/// Version of these generators; changes whenever the same seed would give different pixels.
pub const MINED_GENERATOR: &str = "odm-mined/1";

/// Glyphs no class shows alone (letters, symbols); the numerals have their own family.
const GLYPHS: &[&str] = &[
    "A", "B", "C", "D", "E", "F", "G", "H", "K", "L", "M", "N", "P", "R", "S", "U", "V", "W", "X", "Y", "Z", "?", "&",
    "%", "#", "+", "=", "@", "$", "AB", "XY", "KM", "PR", "ZZ",
];

const RED: &str = "#c1121c";
const BLUE: &str = "#1d5aa6";
const BLACK: &str = "#111111";
const GREEN: &str = "#1f7a3a";

/// Namespaces declared on every generated root, so nested content may use them.
const NAMESPACES: &str = r#"xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink""#;

/// A square SVG document of 100 x 100 units around `body`.
fn doc(body: &str) -> String {
    format!(r#"<svg {NAMESPACES} width="100" height="100" viewBox="0 0 100 100">{body}</svg>"#)
}
const WHITE: &str = "#ffffff";

/// A number in 1..=135 that is not a multiple of ten (the common speed limits of every region are).
fn odd_numeral<R: Rng>(rng: &mut R) -> u32 {
    loop {
        let v = rng.random_range(1..=135);
        if v % 10 != 0 {
            return v;
        }
    }
}

fn text(s: &str, x: f32, y: f32, size: f32, fill: &str) -> String {
    let esc = s.replace('&', "&amp;");
    format!(
        r#"<text x="{x}" y="{y}" font-family="OSP-DIN" font-size="{size}" text-anchor="middle" fill="{fill}">{esc}</text>"#
    )
}

/// Two to four random primitives (bars, discs, triangles) inside the box centred at (50, 52) of half-size `r`.
fn pictogram<R: Rng>(rng: &mut R, r: f32, fill: &str) -> String {
    let mut s = String::new();
    for _ in 0..rng.random_range(2..=4) {
        let (cx, cy) = (50.0 + rng.random_range(-0.5..0.5) * r, 52.0 + rng.random_range(-0.5..0.5) * r);
        let a = rng.random_range(0.15..0.55) * r;
        match rng.random_range(0..3) {
            0 => {
                let (w, h) = (a * 2.0, a * rng.random_range(0.25..0.7));
                let angle = rng.random_range(0.0..180.0f32);
                s += &format!(
                    r#"<rect x="{}" y="{}" width="{w}" height="{h}" fill="{fill}" transform="rotate({angle} {cx} {cy})"/>"#,
                    cx - w / 2.0,
                    cy - h / 2.0
                );
            }
            1 => s += &format!(r#"<circle cx="{cx}" cy="{cy}" r="{}" fill="{fill}"/>"#, a * 0.7),
            _ => {
                let angle = rng.random_range(0.0..360.0f32);
                s += &format!(
                    r#"<path d="M{cx} {} L{} {} L{} {} Z" fill="{fill}" transform="rotate({angle} {cx} {cy})"/>"#,
                    cy - a,
                    cx + a,
                    cy + a * 0.8,
                    cx - a,
                    cy + a * 0.8
                );
            }
        }
    }
    s
}

fn glyph<R: Rng>(rng: &mut R, y: f32, size: f32, fill: &str) -> String {
    let g = GLYPHS.choose(rng).expect("glyphs");
    let size = if g.len() > 1 { size * 0.75 } else { size };
    text(g, 50.0, y + size * 0.36, size, fill)
}

fn red_ring(content: &str) -> String {
    doc(&format!(r#"<circle cx="50" cy="50" r="40" fill="white" stroke="{RED}" stroke-width="14"/>{content}"#))
}

fn red_triangle(content: &str) -> String {
    doc(&format!(
        r#"<path d="M50 6 L95 88 Q97 93 91 93 L9 93 Q3 93 5 88 Z" fill="{RED}"/>
<path d="M50 22 L82 82 L18 82 Z" fill="white"/>{content}"#
    ))
}

/// One random sign-like design of a family, as an SVG document.
fn signlike_svg<R: Rng>(family: &str, rng: &mut R) -> String {
    match family {
        "numeral-ring" => {
            let v = odd_numeral(rng);
            let size = if v >= 100 { 38.0 } else { 48.0 };
            red_ring(&text(&v.to_string(), 50.0, 50.0 + size * 0.36, size, BLACK))
        }
        "glyph-ring" => red_ring(&glyph(rng, 50.0, 46.0, BLACK)),
        "pictogram-ring" => red_ring(&pictogram(rng, 40.0, BLACK)),
        "glyph-triangle" => red_triangle(&glyph(rng, 62.0, 32.0, BLACK)),
        "pictogram-triangle" => {
            let p = pictogram(rng, 24.0, BLACK);
            red_triangle(&format!(r#"<g transform="translate(0 12)">{p}</g>"#))
        }
        "blue-disc" => {
            let content =
                if rng.random_bool(0.5) { glyph(rng, 50.0, 46.0, WHITE) } else { pictogram(rng, 44.0, WHITE) };
            doc(&format!(r#"<circle cx="50" cy="50" r="47" fill="{BLUE}" stroke="white" stroke-width="2"/>{content}"#))
        }
        "panel" => {
            let bg = if rng.random_bool(0.5) { BLUE } else { GREEN };
            let content =
                if rng.random_bool(0.5) { glyph(rng, 50.0, 50.0, WHITE) } else { pictogram(rng, 50.0, WHITE) };
            doc(&format!(
                r#"<rect x="4" y="4" width="92" height="92" rx="6" fill="{bg}" stroke="white" stroke-width="3"/>{content}"#
            ))
        }
        _ => {
            // Real sign outlines with colours or content they never have: a blue or green octagon, an upright
            // triangle in blue, an inverted triangle with a glyph.
            let colour = *[BLUE, GREEN, "#7a3fa0", "#e07a10"].choose(rng).expect("colours");
            let content = glyph(rng, 52.0, 36.0, WHITE);
            match rng.random_range(0..3) {
                0 => doc(&format!(
                    r#"<path d="M31 4 L69 4 L96 31 L96 69 L69 96 L31 96 L4 69 L4 31 Z" fill="{colour}" stroke="white" stroke-width="3"/>{content}"#
                )),
                1 => doc(&format!(
                    r#"<path d="M50 6 L95 88 Q97 93 91 93 L9 93 Q3 93 5 88 Z" fill="{colour}"/>{}"#,
                    glyph(rng, 64.0, 32.0, WHITE)
                )),
                _ => doc(&format!(
                    r#"<path d="M5 8 L95 8 L50 94 Z" fill="white" stroke="{colour}" stroke-width="10"/>{}"#,
                    glyph(rng, 36.0, 26.0, BLACK)
                )),
            }
        }
    }
}

/// One of `bases`, jittered.
fn pick<R: Rng>(rng: &mut R, bases: &[[u8; 3]], jitter: i32) -> String {
    let base = *bases.choose(rng).expect("colours");
    rgb(rng, base, jitter)
}

fn rgb<R: Rng>(rng: &mut R, base: [u8; 3], jitter: i32) -> String {
    let c = base.map(|v| (v as i32 + rng.random_range(-jitter..=jitter)).clamp(0, 255));
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// One random sign-coloured non-sign of a kind, as an SVG document.
fn object_svg<R: Rng>(kind: &str, rng: &mut R) -> String {
    let red = [200u8, 30, 30];
    let blue = [30u8, 70, 160];
    match kind {
        "cone" => {
            let o = rgb(rng, [240, 100, 20], 20);
            doc(&format!(
                r#"<path d="M44 8 L56 8 L80 86 L20 86 Z" fill="{o}"/><path d="M38 34 L62 34 L66 48 L34 48 Z" fill="white"/>
<path d="M31 58 L69 58 L72 68 L28 68 Z" fill="white"/><rect x="10" y="86" width="80" height="8" fill="{o}"/>"#
            ))
        }
        "jacket" => {
            let c = pick(rng, &[red, blue, [230, 200, 30]], 30);
            let zip = if rng.random_bool(0.5) { "#222222" } else { "#dddddd" };
            doc(&format!(
                r#"<path d="M30 10 L42 6 Q50 14 58 6 L70 10 L94 40 L84 52 L72 40 L72 94 L28 94 L28 40 L16 52 L6 40 Z" fill="{c}"/>
<rect x="49" y="14" width="2" height="80" fill="{zip}"/>"#
            ))
        }
        "trousers" => {
            let c = pick(rng, &[blue, [40, 50, 90], red], 25);
            doc(&format!(
                r#"<path d="M26 6 L74 6 L80 94 L58 94 L50 36 L42 94 L20 94 Z" fill="{c}"/>
<rect x="26" y="6" width="48" height="6" fill="rgb(0,0,0)" fill-opacity="0.20"/>"#
            ))
        }
        "door" => {
            let c = pick(rng, &[red, blue, [120, 70, 40], [30, 110, 60]], 25);
            doc(&format!(
                r#"<rect x="18" y="2" width="64" height="96" fill="rgb(221,221,221)"/><rect x="24" y="8" width="52" height="90" fill="{c}"/>
<rect x="30" y="14" width="40" height="30" fill="rgb(0,0,0)" fill-opacity="0.13"/><rect x="30" y="52" width="40" height="38" fill="rgb(0,0,0)" fill-opacity="0.13"/>
<circle cx="68" cy="52" r="3" fill="rgb(212,176,64)"/>"#
            ))
        }
        "window" => {
            let frame = pick(rng, &[[240, 240, 235], red, blue, [60, 60, 60]], 15);
            let glass = rgb(rng, [120, 150, 180], 40);
            doc(&format!(
                r#"<rect x="8" y="8" width="84" height="84" fill="{frame}"/><rect x="15" y="15" width="32" height="32" fill="{glass}"/>
<rect x="53" y="15" width="32" height="32" fill="{glass}"/><rect x="15" y="53" width="32" height="32" fill="{glass}"/>
<rect x="53" y="53" width="32" height="32" fill="{glass}"/>"#
            ))
        }
        "tail-lights" => {
            let body = pick(rng, &[[40, 40, 45], [200, 200, 205], blue, [120, 20, 20]], 20);
            let lamp = rgb(rng, [230, 20, 25], 20);
            doc(&format!(
                r#"<rect x="0" y="20" width="100" height="60" rx="8" fill="{body}"/><rect x="6" y="32" width="22" height="14" rx="4" fill="{lamp}"/>
<rect x="72" y="32" width="22" height="14" rx="4" fill="{lamp}"/><rect x="36" y="52" width="28" height="12" fill="rgb(242,242,232)"/>"#
            ))
        }
        "traffic-mirror" => {
            let rim = rgb(rng, [240, 110, 20], 20);
            let glass = rgb(rng, [150, 160, 170], 40);
            doc(&format!(
                r#"<rect x="47" y="80" width="6" height="20" fill="rgb(119,119,119)"/><circle cx="50" cy="44" r="40" fill="{rim}"/>
<circle cx="50" cy="44" r="32" fill="{glass}"/><ellipse cx="40" cy="34" rx="12" ry="7" fill="rgb(255,255,255)" fill-opacity="0.40"/>"#
            ))
        }
        _ => {
            let c = pick(rng, &[red, blue, [235, 200, 20], [245, 245, 240]], 30);
            let stripe = if rng.random_bool(0.5) {
                format!(r#"<rect x="4" y="{}" width="92" height="10" fill="white"/>"#, rng.random_range(20..70))
            } else {
                String::new()
            };
            let (w, h) = (rng.random_range(50..96), rng.random_range(30..96));
            doc(&format!(
                r#"<rect x="{}" y="{}" width="{w}" height="{h}" fill="{c}"/>{stripe}"#,
                (100 - w) / 2,
                (100 - h) / 2
            ))
        }
    }
}

/// Render `per_family` images of every family of `kind` into `out`; returns the manifest (also `out/mined.json`).
pub fn run(out: &Path, kind: MinedKind, per_family: usize, seed: u64) -> Result<MinedManifest, TrainError> {
    if per_family == 0 {
        return Err(TrainError::Config("--per-family must be at least 1".into()));
    }
    let scenes = scenes()?;
    let db = fonts();
    let config = SynthConfig::default();
    let families = kind.families();
    let mut jobs = Vec::new();
    for (f, family) in families.iter().enumerate() {
        let dir = out.join(family);
        fs::create_dir_all(&dir).map_err(TrainError::io(&dir))?;
        for i in 0..per_family {
            jobs.push((f, i, dir.join(format!("{i:05}.png"))));
        }
    }
    let part = match kind {
        MinedKind::Signlike => 16,
        MinedKind::Objects => 17,
    };
    jobs.par_iter().try_for_each(|(f, i, path)| {
        let mut rng = Pcg64::seed_from_u64(mix(mix(mix(seed ^ (part as u64).rotate_left(48)) ^ *f as u64) ^ *i as u64));
        let family = families[*f];
        let svg = match kind {
            MinedKind::Signlike => signlike_svg(family, &mut rng),
            MinedKind::Objects => object_svg(family, &mut rng),
        };
        let t = Template::rasterise(&svg, &db)
            .map_err(|e| TrainError::Asset(format!("{family} design {i}: {e}: {svg}")))?;
        let img = match kind {
            MinedKind::Signlike => super::render_sign(&t, &scenes, &config, &mut rng),
            MinedKind::Objects => {
                // Objects stand upright in the scene, at any size a detector frames: no occlusion model needed.
                let p = render::place(&mut rng, config.min_size, config.max_size);
                let scene = &scenes[rng.random_range(0..scenes.len())].1;
                let mut img = render::background(scene, p.crop_w, p.crop_h, &mut rng);
                let mask = render::composite(&mut img, &t, &p, &mut rng);
                render::camera(&mut img, &mask, p.size / 48.0, &mut rng)
            }
        };
        save_png(&img, path)
    })?;
    let manifest = MinedManifest {
        generator: MINED_GENERATOR,
        kind,
        seed,
        families: families.iter().map(|f| (f.to_string(), per_family)).collect(),
    };
    let path = out.join("mined.json");
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| TrainError::Asset(e.to_string()))?;
    fs::write(&path, text + "\n").map_err(TrainError::io(&path))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerals_are_never_a_multiple_of_ten() {
        let mut rng = Pcg64::seed_from_u64(3);
        for _ in 0..2000 {
            let v = odd_numeral(&mut rng);
            assert!(v % 10 != 0, "{v} is a common speed limit");
            assert!((1..=135).contains(&v));
        }
    }

    #[test]
    fn every_family_rasterises() {
        let db = fonts();
        let mut rng = Pcg64::seed_from_u64(5);
        for kind in [MinedKind::Signlike, MinedKind::Objects] {
            for family in kind.families() {
                for _ in 0..8 {
                    let svg = match kind {
                        MinedKind::Signlike => signlike_svg(family, &mut rng),
                        MinedKind::Objects => object_svg(family, &mut rng),
                    };
                    let t = Template::rasterise(&svg, &db).unwrap_or_else(|e| panic!("{family}: {e}: {svg}"));
                    // Something is drawn: some opaque pixels in the largest level.
                    let l = t.levels.last().unwrap();
                    assert!(l.px.iter().filter(|p| p[3] > 0.5).count() > l.px.len() / 10, "{family} is empty");
                }
            }
        }
    }
}
