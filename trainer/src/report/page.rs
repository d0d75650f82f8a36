// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train report`: a static HTML page about one run of odmclassify on a clip (odmexport JSON lines), for people
//! to look at: the verdicts against ground truth, the distances of each class with its thresholds, and thumbnails of
//! the ROIs grouped by what went right or wrong, worst first. One folder: `index.html` and `thumbs/*.png`; charts are
//! inline SVG (plotters), so the page needs no network and no script.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use odm_core::bundle::ColorOrder;
use odm_core::preprocess::{CropSpec, Normalize};
use odm_core::taxonomy::{self, Category};
use plotters::prelude::*;

use super::results::{self, Match};
use crate::data::footage::{crop, for_each_frame};
use crate::data::rois::{self, FrameLine, RoiLine};
use crate::data::save_png;
use crate::error::TrainError;

/// What `report` is given.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub results: PathBuf,
    /// The clip the results are of (thumbnails); without it the page has no thumbnails.
    pub clip: Option<PathBuf>,
    /// Ground truth (`odm-train clip`'s ROI file, with `kind` and `label`).
    pub truth: Option<PathBuf>,
    /// How results are joined with the truth: by ROI id (replayed boxes) or by box overlap (a live detector).
    pub matching: Match,
    /// Thumbnails per group.
    pub per_group: usize,
    pub out: PathBuf,
}

/// One ROI of the results with where it is and what the truth says.
#[derive(Debug, Clone)]
struct Item {
    frame: u64,
    roi: RoiLine,
    truth_kind: Option<String>,
    truth_label: Option<String>,
    /// The sign category of the truth label when it is a taxonomy name.
    truth_category: Option<Category>,
}

impl Item {
    /// An unknown sign whose truth label has a category, called novelty with another category (that of a known
    /// design of another category). A result without a category (a bundle without categories) is not one.
    fn novelty_of_another_category(&self) -> bool {
        let (truth, result) = (self.truth_category, self.roi.category.as_deref());
        self.truth_kind.as_deref() == Some("unknown")
            && self.roi.verdict.as_deref() == Some("novelty")
            && truth.zip(result).is_some_and(|(t, r)| t.as_str() != r)
    }
}

/// A group of thumbnails: title, why it matters, and its items in display order.
struct Group {
    title: &'static str,
    note: &'static str,
    items: Vec<Item>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn distance(i: &Item) -> f64 {
    i.roi.distance.unwrap_or(f64::NAN)
}

/// The ROIs in groups, worst first within each: with ground truth, the mistakes (a known sign not called known or
/// given the wrong label, an unknown sign called known, a non-sign called known) and then the right answers; without
/// it, by verdict (anomalies farthest first, novelties, known least sure first).
fn groups(items: &[Item], with_truth: bool) -> Vec<Group> {
    let pick = |f: &dyn Fn(&Item) -> bool| items.iter().filter(|i| f(i)).cloned().collect::<Vec<_>>();
    let verdict = |i: &Item, v: &str| i.roi.verdict.as_deref() == Some(v);
    let kind = |i: &Item, k: &str| i.truth_kind.as_deref() == Some(k);
    let far_first = |mut v: Vec<Item>| {
        v.sort_by(|a, b| distance(b).total_cmp(&distance(a)));
        v
    };
    let near_first = |mut v: Vec<Item>| {
        v.sort_by(|a, b| distance(a).total_cmp(&distance(b)));
        v
    };
    if with_truth {
        let categories = items.iter().any(|i| i.truth_category.is_some());
        let mut groups = vec![
            Group {
                title: "Known signs called anomaly",
                note: "signs of a trained class taken for non-signs: farthest first",
                items: far_first(pick(&|i| kind(i, "known") && verdict(i, "anomaly"))),
            },
            Group {
                title: "Known signs called novelty",
                note: "signs of a trained class taken for unknown signs: farthest first",
                items: far_first(pick(&|i| kind(i, "known") && verdict(i, "novelty"))),
            },
            Group {
                title: "Known signs with the wrong label",
                note: "called known, but another class: most confident first",
                items: near_first(pick(&|i| kind(i, "known") && verdict(i, "known") && i.roi.label != i.truth_label)),
            },
            Group {
                title: "Non-signs called known",
                note: "distractors and background taken for a known sign: most confident first",
                items: near_first(pick(&|i| (kind(i, "distractor") || kind(i, "no-object")) && verdict(i, "known"))),
            },
            Group {
                title: "Unknown signs called known",
                note: "signs of no trained class given a label: most confident first",
                items: near_first(pick(&|i| kind(i, "unknown") && verdict(i, "known"))),
            },
        ];
        if categories {
            groups.push(Group {
                title: "Unknown signs called novelty with another category",
                note: "an unknown sign takes the category of the known design nearest to it, and that one is of \
                       another category: nearest first",
                items: near_first(pick(&|i| i.novelty_of_another_category())),
            });
        }
        groups.push(Group {
            title: "Right answers",
            note: "known signs with their label, unknown signs as novelty (with their category, where the truth has \
                   one) or anomaly, non-signs as anomaly or novelty: least sure first",
            items: far_first(pick(&|i| match i.truth_kind.as_deref() {
                Some("known") => verdict(i, "known") && i.roi.label == i.truth_label,
                Some("unknown") => (verdict(i, "novelty") && !i.novelty_of_another_category()) || verdict(i, "anomaly"),
                Some("distractor") | Some("no-object") => verdict(i, "novelty") || verdict(i, "anomaly"),
                _ => false,
            })),
        });
        groups
    } else {
        vec![
            Group {
                title: "Anomaly",
                note: "called not a sign: farthest first",
                items: far_first(pick(&|i| verdict(i, "anomaly"))),
            },
            Group {
                title: "Novelty",
                note: "called an unknown sign: farthest first",
                items: far_first(pick(&|i| verdict(i, "novelty"))),
            },
            Group {
                title: "Known",
                note: "called a known sign: least sure first",
                items: far_first(pick(&|i| verdict(i, "known"))),
            },
        ]
    }
}

/// The distance histogram of one class (ROIs whose nearest class it is), one series per ground-truth kind, with the
/// class's thresholds as vertical lines; an SVG string.
fn histogram(label: &str, items: &[&Item], thresholds: (Option<f64>, Option<f64>)) -> Result<String, TrainError> {
    let bad = |e: &dyn std::fmt::Display| TrainError::Asset(format!("histogram of {label}: {e}"));
    let top = items
        .iter()
        .map(|i| distance(i))
        .chain([thresholds.0.unwrap_or(0.0), thresholds.1.unwrap_or(0.0)])
        .filter(|d| d.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-6)
        * 1.05;
    const BINS: usize = 30;
    let width = top / BINS as f64;
    let mut series: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for i in items {
        let k = i.truth_kind.clone().unwrap_or_else(|| "all".into());
        let b = ((distance(i) / width) as usize).min(BINS - 1);
        series.entry(k).or_insert_with(|| vec![0; BINS])[b] += 1;
    }
    let peak = series.values().flat_map(|v| v.iter().copied()).max().unwrap_or(1).max(1);
    let colour = |k: &str| match k {
        "known" => RGBColor(44, 160, 44),
        "unknown" => RGBColor(255, 127, 14),
        "distractor" | "no-object" => RGBColor(214, 39, 40),
        _ => RGBColor(31, 119, 180),
    };
    let ceiling = peak + peak * 3 / 4 + 1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 300)).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .caption(label, ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(38)
            .y_label_area_size(44)
            // Head room above the tallest bar for the legend, so that it never covers a bar.
            .build_cartesian_2d(0f64..top, 0u32..ceiling)
            .map_err(|e| bad(&e))?;
        chart
            .configure_mesh()
            .x_desc("distance to the class centre")
            .y_desc("ROIs")
            .label_style(("sans-serif", 12))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(|e| bad(&e))?;
        for (k, counts) in &series {
            let c = colour(k);
            chart
                .draw_series(counts.iter().enumerate().filter(|(_, &n)| n > 0).map(|(b, &n)| {
                    let x0 = b as f64 * width;
                    Rectangle::new([(x0, 0), (x0 + width, n)], c.mix(0.45).filled())
                }))
                .map_err(|e| bad(&e))?
                .label(format!("{k} ({})", counts.iter().sum::<u32>()))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.mix(0.6).filled()));
        }
        for (t, name, c) in [(thresholds.0, "novelty threshold", BLACK), (thresholds.1, "anomaly threshold", RED)] {
            if let Some(t) = t.filter(|t| t.is_finite()) {
                chart
                    .draw_series(std::iter::once(PathElement::new(vec![(t, 0), (t, ceiling)], c.stroke_width(2))))
                    .map_err(|e| bad(&e))?
                    .label(format!("{name} {t:.2}"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2)));
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 11))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .draw()
            .map_err(|e| bad(&e))?;
        root.present().map_err(|e| bad(&e))?;
    }
    Ok(svg)
}

/// Write the report; returns the path of `index.html`.
pub fn write(o: &ReportOptions) -> Result<PathBuf, TrainError> {
    if let Some(clip) = o.clip.as_deref().filter(|c| !c.is_file()) {
        return Err(TrainError::Config(format!("--clip {}: missing (no such file)", clip.display())));
    }
    let frames = rois::read_some(&o.results)?;
    let truth = o.truth.as_deref().map(rois::read_some).transpose()?;
    let summary = results::summarise_by(&frames, truth.as_deref(), o.matching);

    // Each ROI with its truth (by id, or by box overlap).
    let by_id: BTreeMap<(u64, i32), &RoiLine> =
        truth.as_deref().unwrap_or(&[]).iter().flat_map(|f| f.rois.iter().map(move |r| ((f.frame, r.id), r))).collect();
    let truth_frames: BTreeMap<u64, &FrameLine> =
        truth.as_deref().unwrap_or(&[]).iter().map(|f| (f.frame, f)).collect();
    let mut items = Vec::new();
    for f in &frames {
        for r in &f.rois {
            let t = match (truth.is_some(), o.matching) {
                (false, _) => None,
                (true, Match::Ids) => by_id.get(&(f.frame, r.id)).copied(),
                (true, Match::Boxes) => truth_frames.get(&f.frame).and_then(|tf| {
                    tf.rois
                        .iter()
                        .map(|t| (rois::iou(r.rect(), t.rect()), t))
                        .filter(|(iou, _)| *iou >= results::DETECTION_IOU)
                        .max_by(|a, b| a.0.total_cmp(&b.0))
                        .map(|p| p.1)
                }),
            };
            let (truth_kind, truth_label) = match (truth.is_some(), t) {
                (true, Some(t)) => (t.kind.clone(), t.label.clone()),
                (true, None) if o.matching == Match::Boxes => (Some("no-object".to_owned()), None),
                _ => (None, None),
            };
            let truth_category = truth_label.as_deref().and_then(taxonomy::category_of);
            items.push(Item { frame: f.frame, roi: r.clone(), truth_kind, truth_label, truth_category });
        }
    }

    let mut groups = groups(&items, truth.is_some());
    for g in &mut groups {
        g.items.truncate(o.per_group);
    }

    // Thumbnails of the ROIs shown, cut from the clip's frames.
    let thumbs = o.out.join("thumbs");
    let thumbs_existed = thumbs.is_dir();
    std::fs::create_dir_all(&thumbs).map_err(TrainError::io(&thumbs))?;
    let mut wanted: BTreeMap<u64, Vec<(usize, usize)>> = BTreeMap::new();
    for (g, group) in groups.iter().enumerate() {
        for (k, it) in group.items.iter().enumerate() {
            wanted.entry(it.frame).or_default().push((g, k));
        }
    }
    let mut thumb_of: BTreeMap<(usize, usize), String> = BTreeMap::new();
    let mut clip_note = None::<String>;
    if let Some(clip) = &o.clip {
        let spec = CropSpec {
            width: 64,
            height: 64,
            context: 0.15,
            norm: Normalize { color: ColorOrder::Rgb, mean: [0.0; 3], std: [1.0; 3] },
        };
        let mut buf = vec![0f32; spec.len()];
        let decoded = for_each_frame(clip, |frame_no, frame| {
            for &(g, k) in wanted.get(&frame_no).map(Vec::as_slice).unwrap_or(&[]) {
                let it = &groups[g].items[k];
                if let Some(img) = crop(frame, &it.roi, &spec, &mut buf) {
                    let name = format!("thumbs/{frame_no:06}-{}.png", it.roi.id);
                    save_png(&img, &o.out.join(&name))?;
                    thumb_of.insert((g, k), name);
                }
            }
            Ok(())
        });
        let decoded = match decoded {
            Ok(n) => n,
            Err(e) => {
                // A clip that does not decode leaves no empty thumbs/ behind.
                if !thumbs_existed {
                    let _ = std::fs::remove_dir_all(&thumbs);
                }
                return Err(e);
            }
        };
        let beyond = frames.iter().filter(|f| f.frame >= decoded).map(|f| f.rois.len()).sum::<usize>();
        if beyond > 0 {
            let last = frames.iter().map(|f| f.frame).max().unwrap_or(0);
            let note = format!(
                "the clip {} has {decoded} frames but the results go on to frame {last}: {beyond} ROIs have no \
                 thumbnail (is it the clip the results are of?)",
                clip.display()
            );
            eprintln!("odm-train: warning: {note}");
            clip_note = Some(note);
        }
    }

    // The page.
    let mut h = String::new();
    let title =
        format!("odm report: {}", o.results.file_name().map_or(String::new(), |f| f.to_string_lossy().into_owned()));
    let models: std::collections::BTreeSet<&str> = items.iter().filter_map(|i| i.roi.model.as_deref()).collect();
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{t}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; max-width: 1200px; }}
h1 {{ font-size: 24px; }} h2 {{ font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ccc; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th {{ background: #f3f3f3; }} td.k {{ text-align: left; font-weight: bold; }}
.bad {{ background: #fde2e1; }} .good {{ background: #e3f4e1; }}
.hists {{ display: flex; flex-wrap: wrap; gap: 8px; }}
.thumbs {{ display: flex; flex-wrap: wrap; gap: 10px; }}
figure {{ margin: 0; width: 132px; font-size: 11px; }} figure img {{ width: 128px; height: 128px; image-rendering: pixelated; border: 2px solid #999; }}
.known img {{ border-color: #2ca02c; }} .novelty img {{ border-color: #ff7f0e; }} .anomaly img {{ border-color: #d62728; }}
.note {{ color: #666; }}
</style></head><body>
<h1>{t}</h1>
<p>results <code>{r}</code>{clip}{truth}; model {m}; {frames} frames, {rois} ROIs.</p>
"#,
        t = esc(&title),
        r = esc(&o.results.display().to_string()),
        clip =
            o.clip.as_ref().map_or(String::new(), |c| format!(", clip <code>{}</code>", esc(&c.display().to_string()))),
        truth = o
            .truth
            .as_ref()
            .map_or(String::new(), |c| format!(", ground truth <code>{}</code>", esc(&c.display().to_string()))),
        m = esc(&models.into_iter().collect::<Vec<_>>().join(", ")),
        frames = summary.frames,
        rois = summary.rois,
    );
    if let Some(note) = &clip_note {
        let _ = writeln!(h, "<p class=\"note\">Warning: {}.</p>", esc(note));
    }

    // Verdicts, by ground truth.
    let verdicts = ["known", "novelty", "anomaly", "skipped"];
    h.push_str("<h2>Verdicts</h2>\n<table><tr><th>ground truth</th><th>ROIs</th>");
    for v in verdicts {
        let _ = write!(h, "<th>{v}</th>");
    }
    h.push_str("</tr>\n");
    let rows: Vec<(String, BTreeMap<String, usize>)> = if truth.is_some() {
        summary.by_kind.iter().map(|(k, m)| (k.clone(), m.clone())).collect()
    } else {
        vec![("all".into(), summary.verdicts.clone())]
    };
    for (kind, m) in &rows {
        let total: usize = m.values().sum();
        let _ = write!(h, "<tr><td class=\"k\">{}</td><td>{total}</td>", esc(kind));
        for v in verdicts {
            let n = m.get(v).copied().unwrap_or(0);
            let right = match kind.as_str() {
                "known" => v == "known",
                "unknown" => v == "novelty",
                "distractor" | "no-object" => v == "anomaly",
                _ => true,
            };
            let class = if n == 0 || kind == "all" {
                ""
            } else if right {
                "good"
            } else {
                "bad"
            };
            let pct = 100.0 * n as f64 / total.max(1) as f64;
            let _ = write!(h, "<td class=\"{class}\">{n} ({pct:.1}%)</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    if summary.known_total > 0 {
        let _ = writeln!(
            h,
            "<p>Known signs called known with the right label: {} of {} ({:.1}%).</p>",
            summary.known_correct,
            summary.known_total,
            100.0 * summary.known_correct as f64 / summary.known_total as f64
        );
    }
    // By the sign category of the truth, where its labels are taxonomy names.
    if !summary.by_category.is_empty() {
        h.push_str(
            "<h2>Verdicts by sign category</h2>\n<p class=\"note\">Ground-truth signs whose label is a taxonomy \
             name, by kind and by the category of the sign.</p>\n<table><tr><th>ground truth</th><th>category</th>\
             <th>ROIs</th>",
        );
        for v in verdicts {
            let _ = write!(h, "<th>{v}</th>");
        }
        h.push_str("</tr>\n");
        for (kind, by) in &summary.by_category {
            for (category, m) in by {
                let total: usize = m.values().sum();
                let _ = write!(
                    h,
                    "<tr><td class=\"k\">{}</td><td class=\"k\">{}</td><td>{total}</td>",
                    esc(kind),
                    esc(category)
                );
                for v in verdicts {
                    let n = m.get(v).copied().unwrap_or(0);
                    let _ = write!(h, "<td>{n} ({:.1}%)</td>", 100.0 * n as f64 / total.max(1) as f64);
                }
                h.push_str("</tr>\n");
            }
        }
        h.push_str("</table>\n");
    }
    if summary.novelty_category_total > 0 {
        let _ = writeln!(
            h,
            "<p>Unknown signs called novelty with the category of their sign: {} of {} ({:.1}%).</p>",
            summary.novelty_category_correct,
            summary.novelty_category_total,
            100.0 * summary.novelty_category_correct as f64 / summary.novelty_category_total as f64
        );
    }

    // Distances per class.
    h.push_str(
        "<h2>Distances per class</h2>\n<p class=\"note\">Every ROI whose nearest class this is, by ground truth; \
                the class's novelty threshold (black: at or below, known) and anomaly threshold (red: above, not a \
                sign).</p>\n<div class=\"hists\">\n",
    );
    let mut by_label: BTreeMap<&str, Vec<&Item>> = BTreeMap::new();
    for it in &items {
        if let (Some(l), Some(_)) = (it.roi.label.as_deref(), it.roi.distance) {
            by_label.entry(l).or_default().push(it);
        }
    }
    for (label, its) in &by_label {
        let t = its.iter().find_map(|i| i.roi.novelty_threshold.map(|n| (Some(n), i.roi.anomaly_threshold)));
        h.push_str(&histogram(label, its, t.unwrap_or((None, None)))?);
        h.push('\n');
    }
    h.push_str("</div>\n");

    // Thumbnails.
    for (g, group) in groups.iter().enumerate() {
        let _ = writeln!(
            h,
            "<h2 id=\"group-{g}\">{} ({})</h2>\n<p class=\"note\">{}</p>\n<div class=\"thumbs\">",
            group.title,
            group.items.len(),
            group.note
        );
        for (k, it) in group.items.iter().enumerate() {
            let v = it.roi.verdict.as_deref().unwrap_or("none");
            let img = thumb_of.get(&(g, k)).map_or(String::new(), |p| format!("<img src=\"{}\" alt=\"\">", esc(p)));
            let truth = match (&it.truth_kind, &it.truth_label) {
                (Some(k), Some(l)) => format!("<br>truth {} {}", esc(k), esc(l)),
                (Some(k), None) => format!("<br>truth {}", esc(k)),
                _ => String::new(),
            };
            let category = it.roi.category.as_deref().map_or(String::new(), |c| format!(" ({})", esc(c)));
            let _ = writeln!(
                h,
                "<figure class=\"{v}\">{img}<figcaption>frame {} id {}<br><b>{}</b> {}{category}<br>distance {:.2}, confidence {}{truth}</figcaption></figure>",
                it.frame,
                it.roi.id,
                esc(it.roi.label.as_deref().unwrap_or("")),
                esc(v),
                distance(it),
                it.roi.confidence.map_or("?".into(), |c| format!("{c:.2}")),
            );
        }
        h.push_str("</div>\n");
    }
    h.push_str("</body></html>\n");
    let index = o.out.join("index.html");
    std::fs::write(&index, h).map_err(TrainError::io(&index))?;
    Ok(index)
}
