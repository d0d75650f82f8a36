// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train plot`: the paper's Figure 3 (a 2-D PCA of the embedding: in-distribution classes, novelties, anomalies,
//! noise, class centres) and ROC curves of every out-of-distribution set, as PNG files in the run folder.
//! Drawn with plotters as SVG (axes, ticks, labels, legends) and rasterised by resvg with the embedded font.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::TrainError;

/// Colours of the out-of-distribution sets: distinct from each other and from the blue-to-teal in-distribution shades.
const PALETTE: [[u8; 3]; 12] = [
    [214, 39, 40],
    [255, 127, 14],
    [148, 103, 189],
    [140, 86, 75],
    [23, 190, 207],
    [0, 0, 0],
    [227, 119, 194],
    [188, 189, 34],
    [127, 127, 127],
    [200, 0, 200],
    [230, 171, 2],
    [120, 0, 0],
];

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

/// The embedded font, by the name the charts ask for.
const FONT: &str = "OSP-DIN";

fn colour(i: usize) -> RGBColor {
    let c = PALETTE[i % PALETTE.len()];
    RGBColor(c[0], c[1], c[2])
}

fn chart_error(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> TrainError + '_ {
    move |e| TrainError::Asset(format!("{}: cannot draw the figure: {e}", path.display()))
}

/// Rasterise an SVG drawn by plotters into a PNG, with the embedded font.
fn svg_to_png(svg: &str, path: &Path) -> Result<(), TrainError> {
    let bad = chart_error(path);
    let opt = resvg::usvg::Options { fontdb: crate::synth::fonts(), font_family: FONT.into(), ..Default::default() };
    let tree = resvg::usvg::Tree::from_str(svg, &opt).map_err(|e| bad(&e))?;
    let size = tree.size().to_int_size();
    let mut pm = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).ok_or_else(|| bad(&"empty figure"))?;
    pm.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(&tree, resvg::tiny_skia::Transform::identity(), &mut pm.as_mut());
    pm.save_png(path).map_err(|e| bad(&e))
}

/// A named group of embeddings for the PCA figure.
pub struct Cloud {
    pub name: String,
    pub points: Vec<f32>,
}

/// PCA figure: in-distribution points in blue shades by class, each OOD set in its colour, centres as black crosses,
/// axes with ticks, the legend beside the plot (never over the points).
pub fn pca_figure(
    inside: &Cloud,
    in_labels: &[i64],
    outs: &[Cloud],
    centers: &[Vec<f32>],
    d: usize,
    path: &Path,
) -> Result<(), TrainError> {
    let bad = chart_error(path);
    let (axes, mean) = pca2(&inside.points, d);
    let project = |p: &[f32]| (dot(p, &axes[0], &mean), dot(p, &axes[1], &mean));
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    let every = inside.points.chunks_exact(d).chain(outs.iter().flat_map(|o| o.points.chunks_exact(d)));
    for (x, y) in every.chain(centers.iter().map(|c| c.as_slice())).map(project) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    let pad = |a: f64, b: f64| 0.04 * (b - a).max(1e-9);
    let (px, py) = (pad(x0, x1), pad(y0, y1));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 860)).into_drawing_area();
        let (plot, side) = root.split_horizontally(860);
        let mut chart = ChartBuilder::on(&plot)
            .caption(format!("Embedding, first two principal axes of {}", inside.name), (FONT, 22))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(60)
            .build_cartesian_2d(x0 - px..x1 + px, y0 - py..y1 + py)
            .map_err(|e| bad(&e))?;
        chart
            .configure_mesh()
            .x_desc("principal axis 1")
            .y_desc("principal axis 2")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| bad(&e))?;
        for (o, cloud) in outs.iter().enumerate() {
            let c = colour(o);
            let pts = cloud.points.chunks_exact(d).map(|p| Circle::new(project(p), 2, c.filled()));
            chart.draw_series(pts).map_err(|e| bad(&e))?;
        }
        let k = centers.len().max(1) as f64;
        let shade = |l: i64| {
            let t = l as f64 / k;
            RGBColor((30.0 + 60.0 * t) as u8, (90.0 + 100.0 * t) as u8, (200.0 - 80.0 * t) as u8)
        };
        let pts =
            inside.points.chunks_exact(d).zip(in_labels).map(|(p, &l)| Circle::new(project(p), 2, shade(l).filled()));
        chart.draw_series(pts).map_err(|e| bad(&e))?;
        let crosses = centers.iter().map(|c| Cross::new(project(c), 6, BLACK.stroke_width(2)));
        chart.draw_series(crosses).map_err(|e| bad(&e))?;

        // The legend, in its own panel.
        let entries: Vec<(String, RGBColor)> =
            std::iter::once((format!("{} (a shade per class)", inside.name), shade(0)))
                .chain(outs.iter().enumerate().map(|(o, c)| (c.name.clone(), colour(o))))
                .chain(std::iter::once(("class centres (+)".to_owned(), BLACK)))
                .collect();
        for (i, (name, c)) in entries.iter().enumerate() {
            let y = 70 + 28 * i as i32;
            side.draw(&Circle::new((12, y), 6, c.filled())).map_err(|e| bad(&e))?;
            side.draw(&Text::new(name.clone(), (26, y - 9), (FONT, 16).into_font().color(&BLACK)))
                .map_err(|e| bad(&e))?;
        }
        root.present().map_err(|e| bad(&e))?;
    }
    svg_to_png(&svg, path)
}

/// ROC curves (in-distribution positive, score = distance or 1 - MSP), one per set, with axes in percent and a
/// legend in the lower right (where a useful detector's curves never go). Each legend entry's AUROC is computed by
/// the code `eval` uses (`odm_core::metrics::OodReport`) on the same scores, printed like `metrics.md` (2 decimals);
/// returns those AUROCs in set order.
pub fn roc_figure(ins: &[f64], outs: &[(String, Vec<f64>)], path: &Path) -> Result<Vec<f64>, TrainError> {
    let bad = chart_error(path);
    let mut aurocs = Vec::new();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (860, 760)).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .caption("ROC: in-distribution kept against out-of-distribution accepted", (FONT, 22))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..100f64, 0f64..100.5f64)
            .map_err(|e| bad(&e))?;
        chart
            .configure_mesh()
            .x_desc("FPR: out-of-distribution crops accepted as known (%)")
            .y_desc("TPR: in-distribution crops kept (%)")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| bad(&e))?;
        for (o, (name, scores)) in outs.iter().enumerate() {
            let mut t: Vec<f64> = ins.iter().chain(scores).copied().filter(|v| v.is_finite()).collect();
            t.sort_by(f64::total_cmp);
            t.dedup();
            let mut curve = vec![(0.0, 0.0)];
            curve.extend(t.iter().map(|&thr| {
                let tpr = odm_core::metrics::rate_at_or_below(ins, thr);
                let fpr = odm_core::metrics::rate_at_or_below(scores, thr);
                (100.0 * fpr, 100.0 * tpr)
            }));
            curve.push((100.0, 100.0));
            let auroc = odm_core::metrics::OodReport::compute(ins, scores)
                .map(|r| r.percent().auroc)
                .map_err(|e| bad(&format!("set {name}: {e}")))?;
            aurocs.push(auroc);
            let c = colour(o);
            chart
                .draw_series(LineSeries::new(curve, c.stroke_width(2)))
                .map_err(|e| bad(&e))?
                .label(format!("{name}: AUROC {auroc:.2}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], c.stroke_width(3)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .margin(12)
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(120, 120, 120))
            .draw()
            .map_err(|e| bad(&e))?;
        root.present().map_err(|e| bad(&e))?;
    }
    svg_to_png(&svg, path)?;
    Ok(aurocs)
}

/// What `plot` drew.
#[derive(Debug)]
pub struct Plotted {
    pub pca: PathBuf,
    pub roc: PathBuf,
    /// Each ROC curve's set and the AUROC its legend shows (percent, before rounding).
    pub roc_aurocs: Vec<(String, f64)>,
}

/// Both figures for a run: `pca.png` (about `per_set` points of each set) and `roc.png` (every test image, with as
/// many noise images as the run's `metrics.json` counted, so that each legend AUROC is the report's).
pub fn plot_run(run: &Path, per_set: usize) -> Result<Plotted, TrainError> {
    use crate::eval::{test_sets, TestSets};
    use crate::train::embed::{distances, embed_all, to_vec};
    let (cfg, _vs, net, bundle, _) = crate::train::load::load_net(run)?;
    let dev = tch::Device::Cpu;
    let scorer = odm_core::Scorer::new(&bundle);

    let TestSets { inside, sets, .. } = test_sets(&cfg, &bundle, per_set, Some(per_set), &[])?;
    let ein = embed_all(&net, &inside.x, dev);
    let clouds: Vec<Cloud> = sets
        .iter()
        .map(|(name, _, x)| Cloud { name: name.clone(), points: to_vec(&embed_all(&net, x, dev)) })
        .collect();
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

    let noise = std::fs::read_to_string(run.join("metrics.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|m| m["sets"]["noise"]["count"].as_u64())
        .map_or(500, |n| n as usize);
    let TestSets { inside, sets, .. } = test_sets(&cfg, &bundle, noise, None, &[])?;
    let ins: Vec<f64> = distances(&scorer, &embed_all(&net, &inside.x, dev)).iter().map(|p| p.1).collect();
    let rocs: Vec<(String, Vec<f64>)> = sets
        .iter()
        .map(|(name, _, x)| (name.clone(), distances(&scorer, &embed_all(&net, x, dev)).iter().map(|p| p.1).collect()))
        .collect();
    let roc = run.join("roc.png");
    let aurocs = roc_figure(&ins, &rocs, &roc)?;
    Ok(Plotted { pca, roc, roc_aurocs: rocs.into_iter().map(|(n, _)| n).zip(aurocs).collect() })
}
