// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmclassify against a bare ONNX Runtime session, side by side in one run (`cargo bench -p gst-plugin-odm`).
//!
//! Element: `appsrc ! odmclassify ! appsink` on 1280x720 NV12 frames (what decoders emit) carrying 1, 8 or 32 ROI
//! metas, every frame sharing one memory (no copy in the source). Reference: an ORT session built with the same
//! options (graph optimisation level 3, the same intra-op threads, spinning off) fed the very same crops as pre-made
//! tensors, in the same batches. Also measured: preprocessing time per crop (crop + resize + normalise from NV12),
//! Rust-side heap allocations per frame in steady state (a counting global allocator: GStreamer's and ONNX Runtime's C
//! allocations are not seen by it), and resident memory over a long run (`--soak N` frames, default 100,000).
//!
//! Usage: `cargo bench -p gst-plugin-odm --bench classify -- [--model FILE] [--threads 1,2] [--in-flight 0,2]
//! [--compare FILE,FILE] [--soak N] [--quick]` (`--in-flight`: the element's `frames-in-flight` values to measure;
//! `--compare`: other exports of the same network, such as `odm-train export --int8` and `--fp16` models, run bare
//! on the same crops beside the model, 32 crops a run).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use gst::prelude::*;
use gst_video::VideoRegionOfInterestMeta;
use odm_core::preprocess::{crop_to_tensor_with, CropScratch, CropSpec, Frame, PixelFormat, Plane, Roi, YuvMatrix};
use odm_core::Bundle;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const W: u32 = 1280;
const H: u32 = 720;
const BATCH: usize = 32;

mod common;
use common::rss_mib;

/// A synthetic NV12 dashcam-like frame: gradients with coloured discs where the ROIs are.
fn nv12_frame(rois: &[(u32, u32, u32, u32)]) -> Vec<u8> {
    let (w, h) = (W as usize, H as usize);
    let mut f = vec![0u8; w * h * 3 / 2];
    for y in 0..h {
        for x in 0..w {
            f[y * w + x] = ((x * 7 + y * 3) % 200 + 30) as u8;
        }
    }
    for (i, &(rx, ry, rw, rh)) in rois.iter().enumerate() {
        let (cx, cy, r) = (rx + rw / 2, ry + rh / 2, rw.min(rh) / 2);
        for y in ry..ry + rh {
            for x in rx..rx + rw {
                let (dx, dy) = (x as i64 - cx as i64, y as i64 - cy as i64);
                if dx * dx + dy * dy <= (r * r) as i64 {
                    f[y as usize * w + x as usize] = 60 + (i * 37 % 150) as u8;
                    let uv = w * h + (y as usize / 2) * w + (x as usize / 2) * 2;
                    f[uv] = (90 + i * 53 % 120) as u8;
                    f[uv + 1] = (200 - i * 29 % 120) as u8;
                }
            }
        }
    }
    f
}

fn rois(n: usize) -> Vec<(u32, u32, u32, u32)> {
    (0..n as u32).map(|i| (40 + (i % 8) * 150, 40 + (i / 8) * 160, 48 + (i % 5) * 12, 48 + (i % 5) * 12)).collect()
}

struct Row {
    rois: usize,
    threads: usize,
    in_flight: u32,
    element_cps: f64,
    bare_cps: f64,
    pre_us: f64,
    allocs_element: f64,
    allocs_bare: f64,
    run_us_element: f64,
    run_us_bare: f64,
    frame_us: f64,
}

/// The element: frames pushed into appsrc, pulled from appsink. (crops/s, Rust allocations per frame, the
/// element's mean µs per ORT run and per frame from its `stats`).
fn run_element(
    model: &str,
    threads: usize,
    in_flight: u32,
    mem: &gst::Memory,
    r: &[(u32, u32, u32, u32)],
    frames: usize,
    props: &str,
) -> (f64, f64, f64, f64) {
    let caps = gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::Nv12)
        .width(W as i32)
        .height(H as i32)
        .framerate(gst::Fraction::new(30, 1))
        .build();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time block=true max-buffers=4 ! odmclassify name=c model={model} threads={threads} \
         batch-size={BATCH} frames-in-flight={in_flight} {props} ! appsink name=sink sync=false"
    ))
    .expect("pipeline");
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let src = bin.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    let sink = bin.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    src.set_caps(Some(&caps));
    pipeline.set_state(gst::State::Playing).expect("playing");
    // A pusher thread feeds warm-up and measured frames, then EOS; this thread pulls every result. (With frames in
    // flight, a frame's buffer leaves only when later frames come or the stream ends.)
    let warm = 20;
    // The buffers are made before the run (adding an ROI meta allocates on the Rust side: its type name becomes a C
    // string), so that the allocations counted are the element's and appsrc's/appsink's, not the source's.
    let buffers: Vec<gst::Buffer> = (0..warm + frames)
        .map(|i| {
            let mut b = gst::Buffer::new();
            {
                let b = b.get_mut().unwrap();
                b.append_memory(mem.clone());
                b.set_pts(gst::ClockTime::from_mseconds(33 * i as u64));
                for (k, rect) in r.iter().enumerate() {
                    VideoRegionOfInterestMeta::add(b, "sign", *rect).set_id(k as i32);
                }
            }
            b
        })
        .collect();
    let pusher = {
        let src = src.clone();
        std::thread::spawn(move || {
            for b in buffers {
                src.push_buffer(b).expect("push");
            }
            src.end_of_stream().expect("eos");
        })
    };
    let (mut a0, mut t0) = (0, Instant::now());
    let (mut secs, mut allocs) = (0.0, 0.0);
    for i in 0..warm + frames {
        if i == warm {
            (a0, t0) = (ALLOCS.load(Ordering::Relaxed), Instant::now());
        }
        let s = sink.pull_sample().expect("sample");
        if i + 1 == warm + frames {
            secs = t0.elapsed().as_secs_f64();
            allocs = (ALLOCS.load(Ordering::Relaxed) - a0) as f64 / frames as f64;
        }
        // Results are read (which allocates) outside the measured frames: the warm-up ones and the last.
        if i < warm || i + 1 == warm + frames {
            assert!(s.buffer().is_some_and(|b| gstodm::meta::read(b).len() == r.len()), "every ROI has a result");
        }
    }
    pusher.join().unwrap();
    let stats: gst::Structure = bin.by_name("c").unwrap().property("stats");
    let run_us = stats.get::<f64>("inference-mean-us").unwrap_or(f64::NAN);
    let frame_us = stats.get::<f64>("frame-mean-us").unwrap_or(f64::NAN);
    pipeline.set_state(gst::State::Null).unwrap();
    ((frames * r.len()) as f64 / secs, allocs, run_us, frame_us)
}

/// The same crops as pre-made tensors through a bare session with the element's options.
/// (crops/s, Rust allocations per frame, mean µs per ORT run).
fn run_bare(session: &mut Session, bundle: &Bundle, crops: &[f32], n_rois: usize, frames: usize) -> (f64, f64, f64) {
    let spec = &bundle.model.input;
    let sample = 3 * (spec.width * spec.height) as usize;
    let mut runs = 0usize;
    let mut once = || {
        let mut done = 0;
        while done < n_rois {
            let n = (n_rois - done).min(BATCH);
            let x = ndarray::ArrayView4::from_shape(
                (n, 3, spec.height as usize, spec.width as usize),
                &crops[done * sample..(done + n) * sample],
            )
            .unwrap();
            let out =
                session.run(ort::inputs![spec.name.as_str() => TensorRef::from_array_view(x).unwrap()]).expect("run");
            let (_, e) = out[bundle.model.output.name.as_str()].try_extract_tensor::<f32>().unwrap();
            assert_eq!(e.len(), n * bundle.dim());
            done += n;
            runs += 1;
        }
    };
    for _ in 0..20 {
        once();
    }
    let a0 = ALLOCS.load(Ordering::Relaxed);
    let t0 = Instant::now();
    for _ in 0..frames {
        once();
    }
    let secs = t0.elapsed().as_secs_f64();
    let allocs = (ALLOCS.load(Ordering::Relaxed) - a0) as f64 / frames as f64;
    let per_run = (frames * n_rois.div_ceil(BATCH)) as f64;
    ((frames * n_rois) as f64 / secs, allocs, secs * 1e6 / per_run)
}

/// The reference session: the element's options (graph optimisation level 3, `threads` intra-op threads, spinning off).
fn bare_session(env: &ort::environment::Environment, model: &std::path::Path, threads: usize) -> Session {
    Session::builder(env)
        .unwrap()
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .unwrap()
        .with_intra_threads(threads)
        .unwrap()
        .with_intra_op_spinning(false)
        .unwrap()
        .commit_from_file(model)
        .expect("session")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let default_model = ["models/signs/signs.onnx", "models/colors/colors.onnx"]
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.is_file())
        .expect("a committed model");
    // Relative paths are taken from the workspace root (cargo runs benches in the package folder).
    let model = arg("--model")
        .map(|m| if PathBuf::from(&m).exists() { m.into() } else { root.join(m) })
        .unwrap_or(default_model);
    let threads: Vec<usize> =
        arg("--threads").unwrap_or_else(|| "1,2".into()).split(',').map(|t| t.parse().expect("threads")).collect();
    let in_flight: Vec<u32> =
        arg("--in-flight").unwrap_or_else(|| "0,2".into()).split(',').map(|t| t.parse().expect("in-flight")).collect();
    let compare: Vec<PathBuf> = arg("--compare")
        .map(|l| l.split(',').map(|m| if PathBuf::from(m).exists() { m.into() } else { root.join(m) }).collect())
        .unwrap_or_default();
    let quick = args.iter().any(|a| a == "--quick");
    let soak: usize = arg("--soak").map(|s| s.parse().expect("--soak N")).unwrap_or(if quick { 2000 } else { 100_000 });

    gst::init().expect("gst");
    gstodm::plugin_register_static().expect("plugin");
    let bundle = Bundle::open(&odm_core::bundle::sibling_bundle_path(&model)).unwrap_or_else(|e| {
        eprintln!("classify bench: {e}");
        std::process::exit(2)
    });
    // Each --compare model needs its bundle beside it (`odm-train export` writes both): said before any measuring.
    for m in &compare {
        if let Err(e) = Bundle::open(&odm_core::bundle::sibling_bundle_path(m)) {
            eprintln!("classify bench: --compare {}: {e}", m.display());
            std::process::exit(2)
        }
    }
    let (env, lib) = gstodm::runtime::environment(None).expect("ONNX Runtime");
    let spec = CropSpec::from_input(&bundle.model.input);
    println!(
        "model {} ({}x{} -> {}), ONNX Runtime {}, {} cores, frames {W}x{H} NV12, batch-size {BATCH}",
        model.display(),
        spec.width,
        spec.height,
        bundle.dim(),
        lib.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    embedding_rows(model.to_str().unwrap(), quick);
    if args.iter().any(|a| a == "--embedding-only") {
        return;
    }

    let mut rows = Vec::new();
    for &t in &threads {
        let mut session = bare_session(&env, &model, t);
        for n in [1usize, 8, 32] {
            let r = rois(n);
            let data = nv12_frame(&r);
            // The crops the element makes, made here once: the bare session's input, and the preprocessing timing.
            let (y, uv) = data.split_at((W * H) as usize);
            let planes = [Plane { data: y, stride: W as usize }, Plane { data: uv, stride: W as usize }];
            let frame = Frame::new(PixelFormat::Nv12, W, H, &planes, YuvMatrix::Bt601).unwrap();
            let mut crops = vec![0f32; n * spec.len()];
            let mut scratch = CropScratch::default();
            let reps = if quick { 20 } else { 200 };
            let t0 = Instant::now();
            for _ in 0..reps {
                for (k, &(x, y, w, h)) in r.iter().enumerate() {
                    let roi = Roi { x: x as i64, y: y as i64, w: w as i64, h: h as i64 };
                    let dst = &mut crops[k * spec.len()..(k + 1) * spec.len()];
                    crop_to_tensor_with(&frame, roi, &spec, dst, &mut scratch).unwrap();
                }
            }
            let pre_us = t0.elapsed().as_secs_f64() * 1e6 / (reps * n) as f64;
            let frames = ((if quick { 300 } else { 3000 }) / n).max(if quick { 10 } else { 60 });
            let mem = gst::Memory::from_slice(data.clone());
            for &f in &in_flight {
                // Interleave element and bare runs so drift in the machine's speed hits both.
                let (mut e, mut b) = ((0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0));
                for _ in 0..2 {
                    let x = run_element(model.to_str().unwrap(), t, f, &mem, &r, frames, "");
                    let y = run_bare(&mut session, &bundle, &crops, n, frames);
                    e = (e.0 + x.0 / 2.0, x.1, e.2 + x.2 / 2.0, e.3 + x.3 / 2.0);
                    b = (b.0 + y.0 / 2.0, y.1, b.2 + y.2 / 2.0);
                }
                rows.push(Row {
                    rois: n,
                    threads: t,
                    in_flight: f,
                    element_cps: e.0,
                    bare_cps: b.0,
                    pre_us,
                    allocs_element: e.1,
                    allocs_bare: b.1,
                    run_us_element: e.2,
                    run_us_bare: b.2,
                    frame_us: e.3,
                });
            }
        }
    }
    println!(
        "\n| ROIs/frame | threads | frames in flight | element crops/s | bare ORT crops/s | element/bare | ORT µs/run element | ORT µs/run bare | element µs/frame | preprocess µs/crop | Rust allocs/frame element | Rust allocs/frame bare |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.1}% | {:.0} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1} |",
            r.rois,
            r.threads,
            r.in_flight,
            r.element_cps,
            r.bare_cps,
            100.0 * r.element_cps / r.bare_cps,
            r.run_us_element,
            r.run_us_bare,
            r.frame_us,
            r.pre_us,
            r.allocs_element,
            r.allocs_bare
        );
    }

    // Other precisions of the same network (--compare), bare, on the model's 32-crop batches, interleaved with it.
    if !compare.is_empty() {
        println!("\nPrecisions, bare ONNX Runtime on the same 32 crops a run (median of 3 interleaved rounds):\n");
        println!("| model | precision | threads | crops/s | vs the model |\n|---|---|---:|---:|---:|");
        let r = rois(32);
        let data = nv12_frame(&r);
        let (y, uv) = data.split_at((W * H) as usize);
        let planes = [Plane { data: y, stride: W as usize }, Plane { data: uv, stride: W as usize }];
        let frame = Frame::new(PixelFormat::Nv12, W, H, &planes, YuvMatrix::Bt601).unwrap();
        let mut crops = vec![0f32; 32 * spec.len()];
        let mut scratch = CropScratch::default();
        for (k, &(x, y, w, h)) in r.iter().enumerate() {
            let roi = Roi { x: x as i64, y: y as i64, w: w as i64, h: h as i64 };
            crop_to_tensor_with(&frame, roi, &spec, &mut crops[k * spec.len()..(k + 1) * spec.len()], &mut scratch)
                .unwrap();
        }
        let models: Vec<PathBuf> = std::iter::once(model.clone()).chain(compare.iter().cloned()).collect();
        let frames = if quick { 20 } else { 100 };
        for &t in &threads {
            let mut sessions: Vec<(Session, Bundle)> = models
                .iter()
                .map(|m| {
                    let b = Bundle::open(&odm_core::bundle::sibling_bundle_path(m)).expect("checked at the start");
                    (bare_session(&env, m, t), b)
                })
                .collect();
            let mut cps: Vec<Vec<f64>> = vec![Vec::new(); models.len()];
            for _ in 0..3 {
                for (i, (s, b)) in sessions.iter_mut().enumerate() {
                    cps[i].push(run_bare(s, b, &crops, 32, frames).0);
                }
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let base = median(&mut cps[0]);
            for (i, m) in models.iter().enumerate() {
                let c = median(&mut cps[i]);
                let name = m.file_name().map_or(String::new(), |f| f.to_string_lossy().into_owned());
                println!("| {name} | {} | {t} | {c:.0} | {:.2}x |", sessions[i].1.model.precision, c / base);
            }
        }
    }

    // The Python peer (plugin/benches/peer.py: appsink + OpenCV + onnxruntime + numpy) on the same frame, boxes and
    // model, against the element's rows above: time per frame, and the part of it that is not inference.
    let python = root.join(".deps/peer/bin/python");
    if python.is_file() {
        println!("\nPython peer (appsink + OpenCV + onnxruntime + numpy), same frame, boxes, model, batch {BATCH}:\n");
        println!("| ROIs/frame | threads | peer ms/frame | peer non-inference ms/frame | element ms/frame | element non-inference ms/frame | element / peer non-inference |");
        println!("|---:|---:|---:|---:|---:|---:|---:|");
        let dir = std::env::temp_dir().join(format!("odm-peer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        for row in rows.iter().filter(|r| r.in_flight == 0) {
            let r = rois(row.rois);
            let frame = dir.join("frame.nv12");
            std::fs::write(&frame, nv12_frame(&r)).expect("frame file");
            let boxes = format!("{:?}", r.iter().map(|&(x, y, w, h)| [x, y, w, h]).collect::<Vec<_>>());
            let out = std::process::Command::new(&python)
                .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/peer.py"))
                .args(["--model", &model.display().to_string()])
                .args(["--bundle", &odm_core::bundle::sibling_bundle_path(&model).display().to_string()])
                .args(["--frame", &frame.display().to_string(), "--width", &W.to_string(), "--height", &H.to_string()])
                .args(["--rois", &boxes, "--frames", if quick { "60" } else { "300" }])
                .args(["--threads", &row.threads.to_string(), "--batch", &BATCH.to_string()])
                .output()
                .expect("python runs");
            let text = String::from_utf8_lossy(&out.stdout);
            let Ok(v) = serde_json::from_str::<serde_json::Value>(text.trim()) else {
                println!("| {} | {} | peer failed: {} |", row.rois, row.threads, String::from_utf8_lossy(&out.stderr));
                continue;
            };
            let (ms, inf) = (
                v["ms_per_frame"].as_f64().unwrap_or(f64::NAN),
                v["inference_ms_per_frame"].as_f64().unwrap_or(f64::NAN),
            );
            let runs = row.rois.div_ceil(BATCH) as f64;
            let (e_ms, e_non) = (row.frame_us / 1e3, (row.frame_us - row.run_us_element * runs) / 1e3);
            println!(
                "| {} | {} | {ms:.2} | {:.2} | {e_ms:.2} | {e_non:.2} | {:.2}x |",
                row.rois,
                row.threads,
                ms - inf,
                e_non / (ms - inf)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("\n(no Python peer: scripts/peer.sh makes .deps/peer with OpenCV and onnxruntime for it)");
    }

    // Memory over a long run: RSS sampled along `soak` frames with 1 ROI each.
    let r = rois(1);
    let mem = gst::Memory::from_slice(nv12_frame(&r));
    let t = threads[0];
    let steps = 10;
    let per = (soak / steps).max(1);
    println!("\nresident memory over {} frames of 1 ROI (threads {t}):", per * steps);
    let caps = gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::Nv12)
        .width(W as i32)
        .height(H as i32)
        .framerate(gst::Fraction::new(30, 1))
        .build();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time ! odmclassify model={} threads={t} ! appsink name=sink sync=false",
        model.display()
    ))
    .unwrap();
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let src = bin.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    let sink = bin.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    src.set_caps(Some(&caps));
    pipeline.set_state(gst::State::Playing).unwrap();
    let t0 = Instant::now();
    let mut line = String::new();
    for s in 0..=steps {
        if s > 0 {
            for i in 0..per {
                let mut b = gst::Buffer::new();
                {
                    let b = b.get_mut().unwrap();
                    b.append_memory(mem.clone());
                    b.set_pts(gst::ClockTime::from_mseconds(33 * (s * per + i) as u64));
                    for (k, rect) in r.iter().enumerate() {
                        VideoRegionOfInterestMeta::add(b, "sign", *rect).set_id(k as i32);
                    }
                }
                src.push_buffer(b).unwrap();
                sink.pull_sample().unwrap();
            }
        }
        line.push_str(&format!(" {}:{:.1}", s * per, rss_mib()));
    }
    println!("  frames:RSS MiB{line}");
    println!(
        "  {:.1} s, {:.0} frames/s",
        t0.elapsed().as_secs_f64(),
        (per * steps) as f64 / t0.elapsed().as_secs_f64()
    );
    pipeline.set_state(gst::State::Null).unwrap();
}

/// The cost of `attach-embedding=true`: the same frames with it off and on (1 thread, no frames in flight),
/// interleaved over three rounds so drift in the machine's speed hits both; the medians.
fn embedding_rows(model: &str, quick: bool) {
    println!("\nattach-embedding off vs on (threads 1, batch-size {BATCH}, median of 3 interleaved rounds):\n");
    println!("| ROIs/frame | attach-embedding | crops/s | element µs/frame | Rust allocs/frame | µs/frame on - off |");
    println!("|---:|---|---:|---:|---:|---:|");
    for n in [1usize, 8, 32] {
        let r = rois(n);
        let mem = gst::Memory::from_slice(nv12_frame(&r));
        let frames = ((if quick { 300 } else { 3000 }) / n).max(if quick { 10 } else { 60 });
        let mut runs: [Vec<(f64, f64, f64, f64)>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..3 {
            for (k, props) in ["attach-embedding=false", "attach-embedding=true"].iter().enumerate() {
                runs[k].push(run_element(model, 1, 0, &mem, &r, frames, props));
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let mut frame_us = [0.0; 2];
        for (k, on) in ["off", "on"].iter().enumerate() {
            let cps = median(&mut runs[k].iter().map(|x| x.0).collect());
            let allocs = median(&mut runs[k].iter().map(|x| x.1).collect());
            frame_us[k] = median(&mut runs[k].iter().map(|x| x.3).collect());
            let delta = if k == 1 { format!("{:+.0}", frame_us[1] - frame_us[0]) } else { String::new() };
            println!("| {n} | {on} | {cps:.0} | {:.0} | {allocs:.1} | {delta} |", frame_us[k]);
        }
    }
}
