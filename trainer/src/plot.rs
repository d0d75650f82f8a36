// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train plot`: the paper's Figure 3 (a 2-D PCA of the embedding: in-distribution classes, novelties, anomalies,
//! noise, class centres) and ROC curves of every out-of-distribution set, as PNG files in the run folder.
//! Drawn directly with the image crate (points, lines, and text through resvg with the embedded font).

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};

use crate::error::TrainError;

const PALETTE: [[u8; 3]; 6] =
    [[214, 39, 40], [255, 127, 14], [148, 103, 189], [140, 86, 75], [23, 190, 207], [0, 0, 0]];

/// Top-2 principal axes of row-major `[n, d]` points (power iteration with deflation).
pub fn pca2(points: &[f32], d: usize) -> ([Vec<f64>; 2], Vec<f64>) {
    let n = points.len() / d;
    let mut mean = vec![0f64; d];
    for r in points.chunks_exact(d) {
        for (m, v) in mean.iter_mut().zip(r) {
            *m += *v as f64 / n as f64;
        }
    }
    let mut cov = vec![0f64; d * d];
    for r in points.chunks_exact(d) {
        for i in 0..d {
            let a = r[i] as f64 - mean[i];
            for j in 0..d {
                cov[i * d + j] += a * (r[j] as f64 - mean[j]) / n as f64;
            }
        }
    }
    let mut axes: [Vec<f64>; 2] = [vec![0.0; d], vec![0.0; d]];
    for (k, axis) in axes.iter_mut().enumerate() {
        let mut v: Vec<f64> = (0..d).map(|i| 1.0 + (i * (k + 1)) as f64 * 0.01).collect();
        for _ in 0..200 {
            let mut w = vec![0f64; d];
            for i in 0..d {
                w[i] = (0..d).map(|j| cov[i * d + j] * v[j]).sum();
            }
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            v = w.into_iter().map(|x| x / norm).collect();
        }
        let lambda: f64 = (0..d).map(|i| v[i] * (0..d).map(|j| cov[i * d + j] * v[j]).sum::<f64>()).sum();
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] -= lambda * v[i] * v[j];
            }
        }
        *axis = v;
    }
    (axes, mean)
}

fn dot(p: &[f32], axis: &[f64], mean: &[f64]) -> f64 {
    p.iter().zip(axis).zip(mean).map(|((v, a), m)| (*v as f64 - m) * a).sum()
}

fn dot_px(img: &mut RgbImage, x: i64, y: i64, r: i64, c: [u8; 3]) {
    for dy in -r..=r {
        for dx in -r..=r {
            let (px, py) = (x + dx, y + dy);
            if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                img.put_pixel(px as u32, py as u32, Rgb(c));
            }
        }
    }
}

fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: [u8; 3]) {
    let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        dot_px(img, (x0 + (x1 - x0) * t) as i64, (y0 + (y1 - y0) * t) as i64, 1, c);
    }
}

fn text(img: &mut RgbImage, s: &str, x: u32, y: u32, c: [u8; 3]) {
    let db = crate::synth::fonts();
    let (w, h) = (360u32, 22u32);
    let esc = s.replace('&', "&amp;").replace('<', "&lt;");
    let svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}"><text x="2" y="16" font-family="OSP-DIN" font-size="16" fill="rgb({},{},{})">{esc}</text></svg>"#,
        c[0], c[1], c[2]
    );
    let opt = resvg::usvg::Options { fontdb: db, ..Default::default() };
    if let (Ok(tree), Some(mut pm)) = (resvg::usvg::Tree::from_str(&svg, &opt), resvg::tiny_skia::Pixmap::new(w, h)) {
        resvg::render(&tree, resvg::tiny_skia::Transform::identity(), &mut pm.as_mut());
        for (i, p) in pm.pixels().iter().enumerate() {
            let a = p.alpha() as f32 / 255.0;
            let (px, py) = (x + i as u32 % w, y + i as u32 / w);
            if a > 0.0 && px < img.width() && py < img.height() {
                let bg = img.get_pixel(px, py).0;
                img.put_pixel(px, py, Rgb(std::array::from_fn(|k| (bg[k] as f32 * (1.0 - a) + c[k] as f32 * a) as u8)));
            }
        }
    }
}

/// A named group of embeddings for the PCA figure.
pub struct Cloud {
    pub name: String,
    pub points: Vec<f32>,
}

/// PCA figure: in-distribution points in greys/blues by class, each OOD set in its colour, centres as crosses.
pub fn pca_figure(
    inside: &Cloud,
    in_labels: &[i64],
    outs: &[Cloud],
    centers: &[Vec<f32>],
    d: usize,
    path: &Path,
) -> Result<(), TrainError> {
    let (axes, mean) = pca2(&inside.points, d);
    let project = |p: &[f32]| (dot(p, &axes[0], &mean), dot(p, &axes[1], &mean));
    let all: Vec<(f64, f64)> =
        inside.points.chunks_exact(d).chain(outs.iter().flat_map(|o| o.points.chunks_exact(d))).map(project).collect();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in &all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    let size = 900u32;
    let margin = 40.0;
    let sx = |x: f64| margin + (x - x0) / (x1 - x0).max(1e-9) * (size as f64 - 2.0 * margin);
    let sy = |y: f64| size as f64 - margin - (y - y0) / (y1 - y0).max(1e-9) * (size as f64 - 2.0 * margin);
    let mut img = RgbImage::from_pixel(size, size, Rgb([255, 255, 255]));
    for (o, cloud) in outs.iter().enumerate() {
        for p in cloud.points.chunks_exact(d) {
            let (x, y) = project(p);
            dot_px(&mut img, sx(x) as i64, sy(y) as i64, 1, PALETTE[o % PALETTE.len()]);
        }
    }
    let k = centers.len().max(1);
    for (p, &l) in inside.points.chunks_exact(d).zip(in_labels) {
        let (x, y) = project(p);
        let t = l as f64 / k as f64;
        dot_px(
            &mut img,
            sx(x) as i64,
            sy(y) as i64,
            1,
            [(30.0 + 60.0 * t) as u8, (90.0 + 100.0 * t) as u8, (200.0 - 80.0 * t) as u8],
        );
    }
    for c in centers {
        let (x, y) = project(c);
        let (cx, cy) = (sx(x), sy(y));
        line(&mut img, (cx - 6.0, cy), (cx + 6.0, cy), [0, 0, 0]);
        line(&mut img, (cx, cy - 6.0), (cx, cy + 6.0), [0, 0, 0]);
    }
    text(&mut img, &format!("{} (blue shades, + = class centres)", inside.name), 10, 6, [40, 90, 200]);
    for (o, cloud) in outs.iter().enumerate() {
        text(&mut img, &cloud.name, 10, 28 + 22 * o as u32, PALETTE[o % PALETTE.len()]);
    }
    img.save(path).map_err(|e| TrainError::Asset(format!("{}: {e}", path.display())))
}

/// ROC curves (in-distribution positive, score = distance or 1 - MSP), one per set.
pub fn roc_figure(ins: &[f64], outs: &[(String, Vec<f64>)], path: &Path) -> Result<(), TrainError> {
    let size = 600u32;
    let m = 50.0;
    let span = size as f64 - 2.0 * m;
    let mut img = RgbImage::from_pixel(size, size, Rgb([255, 255, 255]));
    line(&mut img, (m, size as f64 - m), (size as f64 - m, size as f64 - m), [0, 0, 0]);
    line(&mut img, (m, m), (m, size as f64 - m), [0, 0, 0]);
    for (o, (name, scores)) in outs.iter().enumerate() {
        let mut t: Vec<f64> = ins.iter().chain(scores).copied().filter(|v| v.is_finite()).collect();
        t.sort_by(f64::total_cmp);
        t.dedup();
        let mut prev = (m, size as f64 - m);
        for thr in t {
            let tpr = odm_core::metrics::rate_at_or_below(ins, thr);
            let fpr = odm_core::metrics::rate_at_or_below(scores, thr);
            let p = (m + fpr * span, size as f64 - m - tpr * span);
            line(&mut img, prev, p, PALETTE[o % PALETTE.len()]);
            prev = p;
        }
        line(&mut img, prev, (size as f64 - m, m), PALETTE[o % PALETTE.len()]);
        let auroc = odm_core::metrics::auroc(ins, scores).unwrap_or(f64::NAN);
        text(
            &mut img,
            &format!("{name}: AUROC {:.1}", 100.0 * auroc),
            (m + span * 0.45) as u32,
            (size as f64 - m - 30.0 - 22.0 * o as f64) as u32,
            PALETTE[o % PALETTE.len()],
        );
    }
    text(&mut img, "FPR (out-of-distribution accepted) ->", m as u32, size - 40, [0, 0, 0]);
    text(&mut img, "TPR (in-distribution kept), ROC", m as u32 + 4, 14, [0, 0, 0]);
    img.save(path).map_err(|e| TrainError::Asset(format!("{}: {e}", path.display())))
}

/// Both figures for a run: `pca.png` and `roc.png`; returns their paths.
pub fn plot_run(run: &Path, per_set: usize) -> Result<Vec<PathBuf>, TrainError> {
    use crate::train::embed::{distances, embed_all, to_vec};
    let (cfg, _vs, net, bundle, _) = crate::train::bundle::load_net(run)?;
    let crate::train::eval::TestSets { inside, sets } =
        crate::train::eval::test_sets(&cfg, &bundle, per_set, Some(per_set), &[])?;
    let dev = tch::Device::Cpu;
    let ein = embed_all(&net, &inside.x, dev);
    let scorer = odm_core::Scorer::new(&bundle);
    let ins: Vec<f64> = distances(&scorer, &ein).iter().map(|p| p.1).collect();
    let mut clouds = Vec::new();
    let mut rocs = Vec::new();
    for (name, _, x) in &sets {
        let e = embed_all(&net, x, dev);
        rocs.push((name.clone(), distances(&scorer, &e).iter().map(|p| p.1).collect::<Vec<_>>()));
        clouds.push(Cloud { name: name.clone(), points: to_vec(&e) });
    }
    let centers: Vec<Vec<f32>> = bundle.classes.iter().map(|c| c.center.clone()).collect();
    let pca = run.join("pca.png");
    pca_figure(
        &Cloud { name: "in-distribution".into(), points: to_vec(&ein) },
        &inside.y,
        &clouds,
        &centers,
        bundle.dim(),
        &pca,
    )?;
    let roc = run.join("roc.png");
    roc_figure(&ins, &rocs, &roc)?;
    Ok(vec![pca, roc])
}
