// SPDX-License-Identifier: MIT OR Apache-2.0
//! Detection speed at 1280x720 on one core (`cargo bench -p gst-plugin-odm --bench detect`), side by side in one run:
//! a bare ONNX Runtime session on the letterboxed input (the reference: the network alone, one intra-op thread),
//! odmdetect in `appsrc ! odmdetect threads=1 ! appsink` on NV12 and RGB frames (letterbox, run, decode, NMS, metas),
//! the same with an INT8 model when there is one, odmdetect with `frames-in-flight=2` (its letterbox on the
//! streaming thread beside the inference: two threads), and odmproposals. Resident memory before and after each element
//! run says whether it stays flat.
//!
//! Usage: `cargo bench -p gst-plugin-odm --bench detect -- [--model M.onnx] [--int8 M.onnx] [--frames N]`
//! (default the shipped `models/detector/detector.onnx`, and `detector-int8.onnx` beside it when present).

use std::path::{Path, PathBuf};
use std::time::Instant;

use gst::prelude::*;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

mod common;
use common::{rgb_frame, rss_mib, to_nv12, H, W};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// `rgb` (W x H) letterboxed into a CHW tensor of `(h, w)` by the element's own letterbox: the same numbers it feeds
/// the network.
fn letterboxed(rgb: &[u8], h: usize, w: usize) -> Vec<f32> {
    use odm_core::preprocess::{CropScratch, Frame, PixelFormat, Plane, YuvMatrix};
    let planes = [Plane { data: rgb, stride: 3 * W as usize }];
    let frame = Frame::new(PixelFormat::Rgb, W, H, &planes, YuvMatrix::Bt601).expect("a whole RGB frame");
    let mut x = vec![0f32; 3 * h * w];
    gstodm::detect::letterbox::letterbox(&frame, (0, 0, W, H), (h, w), &mut x, &mut CropScratch::default())
        .expect("the frame letterboxes");
    x
}

/// The bare session: one intra-op thread, full optimisation, the frame's letterboxed tensor every run.
fn bare(model: &Path, rgb: &[u8], frames: usize) -> (f64, (usize, usize)) {
    let (env, _) = gstodm::runtime::environment(None).expect("ONNX Runtime loads");
    let mut session = Session::builder(&env)
        .unwrap()
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .unwrap()
        .with_intra_threads(1)
        .unwrap()
        .with_intra_op_spinning(false)
        .unwrap()
        .commit_from_file(model)
        .unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let input = session.inputs()[0].name().to_owned();
    let shape = match session.inputs()[0].dtype() {
        ort::value::ValueType::Tensor { shape, .. } => shape.iter().copied().collect::<Vec<i64>>(),
        other => panic!("input {other:?}"),
    };
    let (h, w) = (shape[2].max(1) as usize, shape[3].max(1) as usize);
    let x = letterboxed(rgb, h, w);
    let t0 = Instant::now();
    for _ in 0..frames {
        let view = ndarray::ArrayView4::from_shape((1, 3, h, w), &x).unwrap();
        let out = session.run(ort::inputs![input.as_str() => TensorRef::from_array_view(view).unwrap()]).unwrap();
        std::hint::black_box(&out);
    }
    (frames as f64 / t0.elapsed().as_secs_f64(), (h, w))
}

/// `appsrc ! ELEMENT ! appsink` over `frames` copies of one frame: frames/s, ROIs on the last frame, RSS before and
/// after (MiB).
fn element(element: &str, format: &str, data: &[u8], frames: usize) -> (f64, usize, f64, f64) {
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time caps=video/x-raw,format={format},width={W},height={H},framerate=30/1 ! \
         {element} ! appsink name=sink sync=false"
    ))
    .unwrap();
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let src = bin.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    let sink = bin.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mem = gst::Memory::from_slice(data.to_vec());
    // Every frame is queued in appsrc at once (they share one memory), then EOS; the clock starts when the warm-up
    // frames (session start, first allocations) are out. So elements that hold frames in flight are timed the same
    // way as those that do not.
    let warm = 5;
    for i in 0..warm + frames {
        let mut b = gst::Buffer::new();
        {
            let b = b.get_mut().unwrap();
            b.append_memory(mem.clone());
            b.set_pts(gst::ClockTime::from_mseconds(33 * i as u64));
        }
        src.push_buffer(b).unwrap();
    }
    src.end_of_stream().unwrap();
    let pull = || {
        let s = sink.pull_sample().expect("every frame comes out");
        s.buffer().unwrap().iter_meta::<gst_video::VideoRegionOfInterestMeta>().count()
    };
    for _ in 0..warm {
        pull();
    }
    let before = rss_mib();
    let mut found = 0;
    let t0 = Instant::now();
    for _ in 0..frames {
        found = pull();
    }
    let fps = frames as f64 / t0.elapsed().as_secs_f64();
    let after = rss_mib();
    pipeline.set_state(gst::State::Null).unwrap();
    (fps, found, before, after)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let model = arg(&args, "--model").map_or_else(|| root.join("models/detector/detector.onnx"), PathBuf::from);
    let int8 = arg(&args, "--int8")
        .map(PathBuf::from)
        .or_else(|| Some(model.with_file_name("detector-int8.onnx")).filter(|p| p.is_file()));
    let frames: usize = arg(&args, "--frames").and_then(|v| v.parse().ok()).unwrap_or(200);
    if !model.is_file() {
        eprintln!("{}: no detector (train one with models/detector/make.sh, or give --model)", model.display());
        std::process::exit(2);
    }
    gst::init().unwrap();
    gstodm::plugin_register_static().unwrap();
    let rgb = rgb_frame();
    let nv12 = to_nv12(&rgb);
    println!(
        "detection at {W}x{H}, one core (ONNX Runtime intra-op threads 1), {frames} frames per row; model {}\n",
        model.display()
    );
    println!("| path | input | frames/s | ms/frame | boxes | RSS before → after (MiB) |");
    println!("|---|---|---:|---:|---:|---|");
    let mut models = vec![("FP32", model.clone())];
    models.extend(int8.map(|p| ("INT8", p)));
    for (kind, m) in &models {
        let (fps, (h, w)) = bare(m, &rgb, frames);
        println!("| bare ORT session {kind} | {w}x{h} tensor | {fps:.1} | {:.2} | – | – |", 1e3 / fps);
        for (format, data) in [("NV12", &nv12), ("RGB", &rgb)] {
            let line = format!("odmdetect model={} threads=1", m.display());
            let (fps, found, a, b) = element(&line, format, data, frames);
            println!("| odmdetect {kind} | {format} | {fps:.1} | {:.2} | {found} | {a:.1} → {b:.1} |", 1e3 / fps);
        }
        // Two threads: the streaming thread letterboxes the next frame while the batching service runs this one.
        let line = format!("odmdetect model={} threads=1 frames-in-flight=2", m.display());
        let (fps, found, a, b) = element(&line, "NV12", &nv12, frames);
        println!(
            "| odmdetect {kind} frames-in-flight=2 (letterbox ∥ inference: 2 threads) | NV12 | {fps:.1} | {:.2} | \
             {found} | {a:.1} → {b:.1} |",
            1e3 / fps
        );
    }
    for (format, data) in [("NV12", &nv12), ("RGB", &rgb)] {
        let (fps, found, a, b) = element("odmproposals", format, data, frames);
        println!("| odmproposals | {format} | {fps:.1} | {:.2} | {found} | {a:.1} → {b:.1} |", 1e3 / fps);
    }
}
