// SPDX-License-Identifier: MIT OR Apache-2.0
//! Soak: four odmclassify instances in one process, a long stream, then many PLAYING <-> NULL cycles. Resident
//! memory, open file descriptors and threads are sampled along the way and printed as a table, with the growth from
//! the first sample after warm-up to the last (`cargo bench -p gst-plugin-odm --bench soak`).
//!
//! The pipeline: four branches of `videotestsrc pattern=smpte ! 320x240 NV12 ! odmproposals ! odmtrack !
//! odmclassify (colour model, vote-window=5 reclassify-interval=3) ! odmoverlay ! fakesink`, so each frame carries
//! several tracked ROIs through every element that reads metas, with per-object memory in use. During the long
//! stream each odmclassify reloads its bundle every 100 of its frames (two copies of the colour bundle in turn, from
//! its streaming thread, as an application's bus handler would), so reloads are soaked too.
//!
//! Usage: `cargo bench -p gst-plugin-odm --bench soak -- [--frames N] [--cycles N]` (defaults 100,000 frames over
//! the four instances, and 1,000 cycles).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use gst::prelude::*;

const INSTANCES: u64 = 4;

mod common;

/// Resident memory (MiB), open file descriptors and threads of this process.
fn sample() -> (f64, usize, usize) {
    (common::rss_mib(), common::open_fds(), common::status("Threads:") as usize)
}

fn pipeline(model: &str, frames_per_instance: u64, counter: &Arc<AtomicU64>) -> gst::Pipeline {
    let branch = |i: u64| {
        format!(
            "videotestsrc pattern=smpte num-buffers={frames_per_instance} ! \
             video/x-raw,format=NV12,width=320,height=240,framerate=30/1 ! odmproposals max-size=320 ! odmtrack ! \
             odmclassify name=c{i} model={model} vote-window=5 reclassify-interval=3 ! odmoverlay ! \
             fakesink name=s{i} sync=false"
        )
    };
    let line = (0..INSTANCES).map(branch).collect::<Vec<_>>().join("  ");
    let p = gst::parse::launch(&line).expect("the soak pipeline parses").downcast::<gst::Pipeline>().unwrap();
    for i in 0..INSTANCES {
        let sink = p.by_name(&format!("s{i}")).unwrap();
        let c = counter.clone();
        sink.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            c.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    }
    p
}

/// Reload a bundle on every odmclassify of `p` every `every` of its frames, from its sink pad (the two `bundles` in
/// turn); counts the reloads that went live in `live` (an `Info` on the bus each).
fn reload_every(p: &gst::Pipeline, every: u64, bundles: [String; 2]) {
    for i in 0..INSTANCES {
        let c = p.by_name(&format!("c{i}")).unwrap();
        let seen = AtomicU64::new(0);
        let (el, bundles) = (c.clone(), bundles.clone());
        c.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let n = seen.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_multiple_of(every) {
                el.set_property("bundle", &bundles[(n / every) as usize % 2]);
            }
            gst::PadProbeReturn::Ok
        });
    }
}

fn row(phase: &str, at: String, s: (f64, usize, usize), secs: f64) {
    println!("| {phase} | {at} | {:.1} | {} | {} | {secs:.1} |", s.0, s.1, s.2);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (frames, cycles) = (arg("--frames", 100_000), arg("--cycles", 1_000));
    gst::init().unwrap();
    gstodm::plugin_register_static().unwrap();
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/colors/colors.onnx");
    let model = model.display().to_string();
    println!(
        "odmclassify soak: {INSTANCES} instances in one process, {frames} frames, {cycles} PLAYING <-> NULL cycles"
    );
    println!(
        "GStreamer {}, {} cores\n",
        gst::version_string(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| phase | at | RSS MiB | open fds | threads | s |");
    println!("|---|---|---|---|---|---|");
    let t0 = Instant::now();
    row("start", "0".into(), sample(), 0.0);

    // A long stream: sampled every tenth of the frames.
    let counter = Arc::new(AtomicU64::new(0));
    let p = pipeline(&model, frames / INSTANCES, &counter);
    let dir = tempfile::tempdir().unwrap();
    let bundles = ["a", "b"].map(|name| {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/colors/colors.odm.json");
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(src).unwrap()).unwrap();
        v["name"] = format!("colors-{name}").into();
        let path = dir.path().join(format!("{name}.odm.json"));
        std::fs::write(&path, v.to_string()).unwrap();
        path.display().to_string()
    });
    reload_every(&p, 100, bundles);
    let mut reloads = 0u64;
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let mut stream = Vec::new();
    let mut next = frames / 10;
    loop {
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(50),
            &[gst::MessageType::Eos, gst::MessageType::Error, gst::MessageType::Warning, gst::MessageType::Info],
        );
        let done = counter.load(Ordering::Relaxed);
        while done >= next && next <= frames {
            let s = sample();
            row("stream", format!("{next} frames"), s, t0.elapsed().as_secs_f64());
            stream.push(s);
            next += frames / 10;
        }
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(..)) => break,
            Some(gst::MessageView::Error(e)) => panic!("soak stream failed: {} ({:?})", e.error(), e.debug()),
            Some(gst::MessageView::Warning(w)) => panic!("soak stream warned: {} ({:?})", w.error(), w.debug()),
            Some(gst::MessageView::Info(i)) if i.error().to_string().contains("is live") => reloads += 1,
            _ => {}
        }
    }
    p.set_state(gst::State::Null).unwrap();
    let done = counter.load(Ordering::Relaxed);
    assert_eq!(done, frames / INSTANCES * INSTANCES, "every frame reached its sink");
    // Messages still queued when EOS came.
    while let Some(m) = bus.pop_filtered(&[gst::MessageType::Info]) {
        if let gst::MessageView::Info(i) = m.view() {
            reloads += i.error().to_string().contains("is live") as u64;
        }
    }
    println!("\nbundle reloads that went live during the stream: {reloads} (one per 100 frames per instance)\n");
    drop(p);

    // PLAYING <-> NULL: each cycle starts the four sessions, waits for a frame through each, and stops.
    let mut cycle = Vec::new();
    for c in 1..=cycles {
        let counter = Arc::new(AtomicU64::new(0));
        let p = pipeline(&model, 1_000_000, &counter);
        p.set_state(gst::State::Playing).unwrap();
        let bus = p.bus().unwrap();
        while counter.load(Ordering::Relaxed) < INSTANCES {
            if let Some(m) = bus.timed_pop_filtered(gst::ClockTime::from_mseconds(5), &[gst::MessageType::Error]) {
                panic!("cycle {c}: {m:?}");
            }
        }
        p.set_state(gst::State::Null).unwrap();
        if c % (cycles / 10).max(1) == 0 {
            let s = sample();
            row("cycles", format!("{c} cycles"), s, t0.elapsed().as_secs_f64());
            cycle.push(s);
        }
    }

    let growth = |v: &[(f64, usize, usize)]| -> String {
        // From the first sample after warm-up (the second one) to the last.
        match (v.get(1).or(v.first()), v.last()) {
            (Some(a), Some(b)) => format!(
                "RSS {:+.1} MiB, fds {:+}, threads {:+}",
                b.0 - a.0,
                b.1 as i64 - a.1 as i64,
                b.2 as i64 - a.2 as i64
            ),
            _ => "no samples".into(),
        }
    };
    println!("\nstream growth after warm-up: {}", growth(&stream));
    println!("cycle growth after warm-up: {}", growth(&cycle));
    println!("total {:.1} s", t0.elapsed().as_secs_f64());
}
