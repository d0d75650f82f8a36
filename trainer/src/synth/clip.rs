// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train clip`: a synthetic dashcam drive with ground truth.
//!
//! A camera drives down a road (a ground plane textured with the embedded gravel and grass photos, lane marks, a
//! brick skyline, sky). Signs on poles stand at the roadside: known classes (those of the model), unknown signs
//! (classes it never learnt) and sign-like distractors (discs and panels in sign colours, billboards of real photos).
//! Each appears in the distance, grows and passes out of view, in perspective. The frames are encoded through
//! GStreamer (`gst-launch-1.0 fdsrc ! rawvideoparse ! x264enc ! mp4mux`) and every visible object's box is written
//! as JSON lines, one line per frame, in the format `odmroireplay` reads:
//! `{"frame": N, "pts": NS, "rois": [{"x", "y", "w", "h", "type", "id", "label", "kind"}]}` where `kind` is
//! `known`, `unknown` or `distractor`.
//!
//! mp4mux writes the wall-clock time of the run into the movie, track and media headers; `run` sets those times to
//! zero after muxing (`synth::mp4::zero_times`), so the same seed and settings give the same file byte for byte.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use rayon::prelude::*;

use crate::error::TrainError;
use crate::synth::render::{Rgb, Template};
use crate::synth::{self, designs, mp4};

/// What to render.
#[derive(Debug, Clone)]
pub struct ClipConfig {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub seconds: f32,
    pub seed: u64,
    /// Classes the model knows, and classes it does not (sign designs of the synthetic world).
    pub known: Vec<String>,
    pub unknown: Vec<String>,
    /// Share of the roadside objects that are unknown signs (half are known signs, the rest distractors).
    pub unknown_share: f64,
    /// The sign designs folder (None: found as `odm-train synth` finds it).
    pub designs: Option<PathBuf>,
    /// x264 constant quantizer (lower: better quality, larger file). Encoding uses one thread, a constant quantizer
    /// and pinned SIMD routines ([`x264enc`]) so the same clip gives the same bytes on every run and every CPU with
    /// SSSE3.
    pub quantizer: u32,
}

impl Default for ClipConfig {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|c| c.to_string()).collect();
        ClipConfig {
            width: 1280,
            height: 720,
            fps: 30,
            seconds: 12.0,
            seed: 7,
            // Known: designs of the shipped model (the European catalogue, models/signs/train.json); unknown:
            // designs of its unseen set, never trained nor calibrated on (a test holds both to the config).
            known: s(&[
                "regulatory--maximum-speed-limit-30--g1",
                "regulatory--maximum-speed-limit-50--g1",
                "regulatory--maximum-speed-limit-70--g1",
                "regulatory--maximum-speed-limit-100--g1",
                "regulatory--stop--g1",
                "regulatory--yield--g1",
                "regulatory--no-entry--g1",
                "regulatory--keep-right--g1",
                "regulatory--turn-right-ahead--g1",
                "warning--curve-left--g1",
                "warning--pedestrians-crossing--g1",
                "information--parking--g1",
            ]),
            unknown: s(&[
                "regulatory--end-of-maximum-speed-limit-40--g1",
                "regulatory--no-bicycles-mopeds-or-motorcycles--g1",
                "warning--elephant-crossing--g1",
                "warning--hairpin-curve-left--g1",
                "warning--keep-distance--g1",
                "information--airport--g1",
                "information--parking-area--g1",
                "complementary--chevron-right--g1",
            ]),
            unknown_share: 0.22,
            designs: None,
            quantizer: 28,
        }
    }
}

impl ClipConfig {
    /// The demo drive for a bundle: the default known designs the bundle knows (all of its classes when it knows
    /// none of them); unknown signs are the defaults it does not know, and they are more frequent than on the default
    /// drive (35% of the objects against 22%: the demo is there to show them; the drives mined for training keep
    /// the default).
    pub fn for_bundle(bundle: &odm_core::Bundle) -> ClipConfig {
        let labels: Vec<String> = bundle.classes.iter().map(|c| c.label.clone()).collect();
        let mut cfg = ClipConfig { unknown_share: 0.35, ..ClipConfig::default() };
        cfg.known.retain(|c| labels.contains(c));
        if cfg.known.is_empty() {
            cfg.known = labels.clone();
        }
        cfg.unknown.retain(|c| !labels.contains(c));
        cfg
    }
}

/// What was rendered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClipSummary {
    pub video: PathBuf,
    pub rois: PathBuf,
    pub frames: usize,
    pub objects: usize,
    pub boxes: usize,
    pub seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Known,
    Unknown,
    Distractor,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Known => "known",
            Kind::Unknown => "unknown",
            Kind::Distractor => "distractor",
        }
    }
}

/// The look of a distractor.
#[derive(Clone)]
enum Look {
    Sign(usize),
    /// A flat disc or panel of one colour with a darker rim.
    Shape {
        colour: [f32; 3],
        disc: bool,
    },
    /// A square cut of a photo (a billboard).
    Photo {
        scene: usize,
        u: f32,
        v: f32,
    },
}

struct Object {
    id: i32,
    kind: Kind,
    label: String,
    look: Look,
    /// World position of the panel centre: lateral (m), height (m), distance along the road (m); panel side (m).
    x: f32,
    y: f32,
    z: f32,
    size: f32,
}

/// Focal length in pixels at 1280 wide (scaled with the width).
const FOCAL_1280: f32 = 900.0;
const CAM_HEIGHT: f32 = 1.4;
const SPEED: f32 = 13.0;
const ROAD_HALF: f32 = 3.6;

/// x264's SIMD routines for [`x264enc`]: `SSSE3` on x86-64 CPUs that have it, `SSE2` on those that do not (with a
/// warning from [`run`]), x264's own choice elsewhere. x264 picks its routines from the CPU at run time and they do
/// not all decide alike: without SSSE3 (an old CPU, or a VM's generic kvm64 or qemu64 model) the stream differs, and
/// with it the decoded frames, odmproposals' boxes and what `mine` keeps. Pinned at SSSE3, every CPU with it runs the
/// same routines, which give the stream x264 chooses itself on such CPUs (SSE4.2 to AVX-512: the same bytes), so the
/// drives, stored results and mined sets made so far stay as they are.
pub fn x264_asm() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("ssse3") {
            "SSSE3"
        } else {
            "SSE2"
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "auto"
    }
}

/// The encoder element of [`run`] with its properties, for gst-launch: one thread (x264's threaded rate control is
/// not reproducible), a constant quantizer, and `asm` as x264's `asm` option ([`x264_asm`] in [`run`]).
pub fn x264enc(cfg: &ClipConfig, asm: &str) -> Vec<String> {
    let mut args: Vec<String> = ["x264enc", "speed-preset=faster", "pass=quant", "threads=1"].map(String::from).into();
    args.push(format!("quantizer={}", cfg.quantizer));
    args.push(format!("key-int-max={}", cfg.fps));
    args.push(format!("option-string=asm={asm}"));
    args
}

/// Render the clip: `video` (MP4, H.264) and `rois` (JSON lines).
pub fn run(video: &Path, rois: &Path, cfg: &ClipConfig) -> Result<ClipSummary, TrainError> {
    let t0 = std::time::Instant::now();
    let (w, h) = (cfg.width as usize, cfg.height as usize);
    let focal = FOCAL_1280 * w as f32 / 1280.0;
    if w < 64 || h < 64 || cfg.fps == 0 || cfg.seconds.is_nan() || cfg.seconds <= 0.0 {
        return Err(TrainError::Config("clip: size at least 64x64, fps and seconds positive".into()));
    }
    let catalogue = designs::Catalogue::open(cfg.designs.as_deref())?;
    let find = |name: &String| -> Result<usize, TrainError> {
        match catalogue.index_of(name) {
            Some(i) => Ok(i),
            // The catalogue's error, with the variants of the sign it has.
            None => catalogue.select(std::slice::from_ref(name)).map(|_| 0),
        }
    };
    let known: Vec<usize> = cfg.known.iter().map(find).collect::<Result<_, _>>()?;
    let unknown: Vec<usize> = cfg.unknown.iter().map(find).collect::<Result<_, _>>()?;
    if known.is_empty() {
        return Err(TrainError::Config("clip: no known class".into()));
    }
    let db = synth::fonts();
    let mut templates: Vec<Option<Template>> = (0..catalogue.designs.len()).map(|_| None).collect();
    for &i in known.iter().chain(&unknown) {
        let d = &catalogue.designs[i];
        let t = Template::rasterise(&d.svg()?, &db).map_err(|e| TrainError::Designs {
            path: d.path.clone(),
            reason: format!("cannot render the design: {e}"),
        })?;
        templates[i] = Some(t);
    }
    let scenes = synth::scenes()?;
    let scene = |name: &str| scenes.iter().position(|(n, _)| n == name).unwrap_or(0);
    let (gravel, grass, brick) = (scene("gravel"), scene("grass"), scene("brick"));
    let photos: Vec<usize> = ["coffee", "chelsea", "astronaut", "rocket", "camera"].iter().map(|n| scene(n)).collect();

    // The drive: objects spawned ahead at random intervals, on both sides.
    let mut rng = Pcg64::seed_from_u64(cfg.seed);
    let frames = (cfg.seconds * cfg.fps as f32).round() as usize;
    let travel = SPEED * cfg.seconds;
    let mut objects = Vec::new();
    let mut z = 25.0f32;
    while z < travel + 90.0 {
        let unknown_end = 50 + (cfg.unknown_share.clamp(0.0, 0.5) * 100.0).round() as i32;
        let kind = match rng.random_range(0..100i32) {
            0..50 => Kind::Known,
            r if r < unknown_end && !unknown.is_empty() => Kind::Unknown,
            _ => Kind::Distractor,
        };
        let (label, look) = match kind {
            Kind::Known => {
                let &d = known.choose(&mut rng).expect("non-empty");
                (catalogue.designs[d].name.clone(), Look::Sign(d))
            }
            Kind::Unknown => {
                let &d = unknown.choose(&mut rng).expect("non-empty");
                (catalogue.designs[d].name.clone(), Look::Sign(d))
            }
            Kind::Distractor => {
                let look = if rng.random_bool(0.5) {
                    let colours = [[0.85, 0.1, 0.1], [0.1, 0.25, 0.8], [0.95, 0.8, 0.1], [0.9, 0.45, 0.1]];
                    Look::Shape { colour: *colours.choose(&mut rng).expect("colours"), disc: rng.random_bool(0.6) }
                } else {
                    Look::Photo {
                        scene: *photos.choose(&mut rng).expect("photos"),
                        u: rng.random_range(0.0..0.5),
                        v: rng.random_range(0.0..0.5),
                    }
                };
                ("distractor".to_owned(), look)
            }
        };
        let side = if rng.random_bool(0.7) { 1.0 } else { -1.0 };
        objects.push(Object {
            id: objects.len() as i32,
            kind,
            label,
            look,
            x: side * rng.random_range(ROAD_HALF + 0.8..ROAD_HALF + 2.5),
            y: rng.random_range(1.8..2.6),
            z,
            size: rng.random_range(0.6..0.9),
        });
        z += rng.random_range(6.0..14.0);
    }

    if x264_asm() == "SSE2" {
        eprintln!(
            "odm-train: warning: this CPU has no SSSE3: x264 encodes {} otherwise than CPUs with it do (other bytes, \
             other frames to mine than on other machines)",
            video.display()
        );
    }
    let mut child = Command::new("gst-launch-1.0")
        .args(["-q", "fdsrc", "fd=0", "!", "rawvideoparse", "format=rgb"])
        .arg(format!("width={w}"))
        .arg(format!("height={h}"))
        .arg(format!("framerate={}/1", cfg.fps))
        .args(["!", "videoconvert", "!", "video/x-raw,format=I420", "!"])
        .args(x264enc(cfg, x264_asm()))
        .args(["!", "h264parse", "!", "mp4mux", "!", "filesink"])
        .arg(format!("location={}", video.display()))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| TrainError::Asset(format!("cannot start gst-launch-1.0 (run scripts/bootstrap.sh): {e}")))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut lines = String::new();
    let mut boxes = 0;
    let mut rgb = vec![0u8; w * h * 3];
    for f in 0..frames {
        let cam_z = SPEED * f as f32 / cfg.fps as f32;
        draw_world(&mut rgb, w, h, focal, cam_z, &scenes[gravel].1, &scenes[grass].1, &scenes[brick].1);
        // Far to near.
        let mut visible: Vec<(&Object, f32, f32, f32)> = objects
            .iter()
            .filter_map(|o| {
                let dz = o.z - cam_z;
                if !(3.0..=120.0).contains(&dz) {
                    return None;
                }
                let (cx, cy) = (w as f32 / 2.0, h as f32 * 0.45);
                let sx = cx + focal * o.x / dz;
                let sy = cy + focal * (CAM_HEIGHT - o.y) / dz;
                let side = focal * o.size / dz;
                Some((o, sx, sy, side))
            })
            .collect();
        visible.sort_by(|a, b| (b.0.z).total_cmp(&a.0.z));
        let mut rois = Vec::new();
        for &(o, sx, sy, side) in &visible {
            let dz = o.z - cam_z;
            let ground = h as f32 * 0.45 + focal * CAM_HEIGHT / dz;
            draw_object(&mut rgb, w, h, o, sx, sy, side, ground, &templates, &scenes);
            let (x0, y0) = (sx - side / 2.0, sy - side / 2.0);
            let inside = x0 >= 0.0 && y0 >= 0.0 && x0 + side <= w as f32 && y0 + side <= h as f32;
            if side >= 10.0 && inside {
                rois.push(serde_json::json!({
                    "x": x0.round(), "y": y0.round(), "w": side.round(), "h": side.round(),
                    "type": "traffic-sign", "id": o.id, "label": o.label, "kind": o.kind.as_str(),
                }));
            }
        }
        boxes += rois.len();
        let pts = f as u64 * 1_000_000_000 / cfg.fps as u64;
        lines.push_str(&serde_json::json!({"frame": f, "pts": pts, "rois": rois}).to_string());
        lines.push('\n');
        if stdin.write_all(&rgb).is_err() {
            break;
        }
    }
    drop(stdin);
    let out = child.wait_with_output().map_err(|e| TrainError::Asset(format!("gst-launch-1.0: {e}")))?;
    if !out.status.success() {
        return Err(TrainError::Asset(format!(
            "encoding {} failed: {}",
            video.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut mp4 = std::fs::read(video).map_err(TrainError::io(video))?;
    match mp4::zero_times(&mut mp4) {
        Ok(0) => return Err(TrainError::Asset(format!("{}: mp4mux wrote no movie header", video.display()))),
        Ok(_) => {}
        Err(reason) => return Err(TrainError::Asset(format!("{}: {reason}", video.display()))),
    }
    std::fs::write(video, mp4).map_err(TrainError::io(video))?;
    std::fs::write(rois, lines).map_err(TrainError::io(rois))?;
    Ok(ClipSummary {
        video: video.to_owned(),
        rois: rois.to_owned(),
        frames,
        objects: objects.len(),
        boxes,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

fn put(rgb: &mut [u8], i: usize, c: [f32; 3]) {
    for k in 0..3 {
        rgb[i * 3 + k] = (c[k].clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
    }
}

/// Sky, skyline and the textured road plane, seen from `cam_z`.
#[allow(clippy::too_many_arguments)]
fn draw_world(rgb: &mut [u8], w: usize, h: usize, focal: f32, cam_z: f32, gravel: &Rgb, grass: &Rgb, brick: &Rgb) {
    let horizon = h as f32 * 0.45;
    let cx = w as f32 / 2.0;
    rgb.par_chunks_mut(w * 3).enumerate().for_each(|(y, row)| {
        let yf = y as f32 + 0.5;
        for x in 0..w {
            let xf = x as f32 + 0.5;
            let c = if yf < horizon - 70.0 {
                let t = yf / (horizon - 70.0);
                [0.45 + 0.35 * t, 0.62 + 0.25 * t, 0.9]
            } else if yf < horizon {
                // A skyline of brick, drifting slowly.
                let u = (xf * 0.6 + cam_z * 0.8).rem_euclid(brick.w as f32);
                let v = (yf - horizon + 70.0) * 2.0;
                let b = brick.sample(u, v.min(brick.h as f32 - 1.0));
                [b[0] * 0.8, b[1] * 0.8, b[2] * 0.85]
            } else {
                let dz = focal * CAM_HEIGHT / (yf - horizon);
                let wx = (xf - cx) * dz / focal;
                let wz = cam_z + dz;
                let (u, v) = (wx * 60.0, wz * 60.0);
                let mut c = if wx.abs() < ROAD_HALF {
                    let g = gravel.sample(u.rem_euclid(gravel.w as f32), v.rem_euclid(gravel.h as f32));
                    let grey = 0.3 + 0.35 * (g[0] + g[1] + g[2]) / 3.0;
                    let mark =
                        (wx.abs() < 0.08 && wz.rem_euclid(9.0) < 4.0) || (wx.abs() - ROAD_HALF + 0.25).abs() < 0.08;
                    if mark {
                        [0.92, 0.92, 0.9]
                    } else {
                        [grey, grey, grey * 1.03]
                    }
                } else {
                    let g = grass.sample(u.rem_euclid(grass.w as f32), v.rem_euclid(grass.h as f32));
                    [g[0] * 0.8, g[1] * 0.9, g[2] * 0.7]
                };
                // Haze with distance.
                let fog = (dz / 160.0).min(0.8);
                for k in 0..3 {
                    c[k] = c[k] * (1.0 - fog) + [0.75, 0.8, 0.88][k] * fog;
                }
                c
            };
            put(row, x, c);
        }
    });
}

/// One roadside object: a pole down to the ground, then the panel centred at (sx, sy) with side `side`.
#[allow(clippy::too_many_arguments)]
fn draw_object(
    rgb: &mut [u8],
    w: usize,
    h: usize,
    o: &Object,
    sx: f32,
    sy: f32,
    side: f32,
    ground: f32,
    templates: &[Option<Template>],
    scenes: &[(String, Rgb)],
) {
    let pole = (side * 0.07).max(1.0);
    let (px0, px1) = ((sx - pole / 2.0).max(0.0) as usize, ((sx + pole / 2.0).max(0.0) as usize).min(w));
    for y in (sy.max(0.0) as usize)..(ground.max(0.0) as usize).min(h) {
        for x in px0..px1 {
            put(rgb, y * w + x, [0.45, 0.45, 0.47]);
        }
    }
    let (x0, y0) = (sx - side / 2.0, sy - side / 2.0);
    let (xa, xb) = (x0.floor().max(0.0) as usize, ((x0 + side).ceil().max(0.0) as usize).min(w));
    let (ya, yb) = (y0.floor().max(0.0) as usize, ((y0 + side).ceil().max(0.0) as usize).min(h));
    for y in ya..yb {
        for x in xa..xb {
            let (u, v) = (((x as f32 + 0.5) - x0) / side, ((y as f32 + 0.5) - y0) / side);
            if !(0.0..1.0).contains(&u) || !(0.0..1.0).contains(&v) {
                continue;
            }
            let i = y * w + x;
            let dst = [rgb[i * 3] as f32 / 255.0, rgb[i * 3 + 1] as f32 / 255.0, rgb[i * 3 + 2] as f32 / 255.0];
            let (src, a) = match &o.look {
                Look::Sign(d) => match &templates[*d] {
                    Some(t) => {
                        let p = t.sample_at(side, u, v);
                        ([p[0], p[1], p[2]], p[3])
                    }
                    None => continue,
                },
                Look::Shape { colour, disc } => {
                    let r = ((u - 0.5).powi(2) + (v - 0.5).powi(2)).sqrt();
                    let inside = if *disc { r < 0.5 } else { (0.05..0.95).contains(&u) && (0.2..0.8).contains(&v) };
                    if !inside {
                        continue;
                    }
                    let edge = if *disc { r > 0.42 } else { !(0.1..0.9).contains(&u) || !(0.25..0.75).contains(&v) };
                    let k = if edge { 0.6 } else { 1.0 };
                    ([colour[0] * k, colour[1] * k, colour[2] * k], 1.0)
                }
                Look::Photo { scene, u: pu, v: pv } => {
                    let s = &scenes[*scene].1;
                    let span = s.w.min(s.h) as f32 * 0.5;
                    let c = s.sample(pu * s.w as f32 + u * span, pv * s.h as f32 + v * span);
                    (c, 1.0)
                }
            };
            let c: [f32; 3] = std::array::from_fn(|k| src[k] + (1.0 - a) * dst[k]);
            put(rgb, i, c);
        }
    }
}
