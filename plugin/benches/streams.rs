// SPDX-License-Identifier: MIT OR Apache-2.0
//! Four streams in one process: four odmclassify elements on one shared model instance (`model-instance-id`)
//! against four with a session each. Each case runs in its own child process (so resident memory is its own):
//! crops per second over the four streams together, peak resident memory, threads.
//!
//! Usage: `cargo bench -p gst-plugin-odm --bench streams -- [--frames N] [--model FILE] [--threads T]` (defaults:
//! 1,500 frames per stream, the shipped model, 1 ORT thread per session).

use std::path::PathBuf;
use std::time::Instant;

use gst::prelude::*;

const STREAMS: usize = 4;

mod common;
use common::status;

/// One case, in this (child) process: prints `crops/s peak-RSS-MiB threads`.
fn child(shared: bool, frames: u32, model: &str, threads: u32) {
    gst::init().unwrap();
    gstodm::plugin_register_static().unwrap();
    let line = (0..STREAMS)
        .map(|i| {
            let id = if shared { "model-instance-id=streams" } else { "" };
            // Each stream its own colour, so every stream's frames are real, distinct crops; 4 ROIs per frame.
            format!(
                "videotestsrc pattern=smpte num-buffers={frames} ! video/x-raw,format=NV12,width=320,height=240 ! \
                 odmproposals max-size=320 max-proposals=4 ! odmclassify model={model} threads={threads} \
                 {id} name=c{i} ! fakesink sync=false"
            )
        })
        .collect::<Vec<_>>()
        .join("  ");
    let p = gst::parse::launch(&line).unwrap();
    let bus = p.bus().unwrap();
    let t0 = Instant::now();
    p.set_state(gst::State::Playing).unwrap();
    let mut threads_seen = 0.0f64;
    loop {
        let msg = bus
            .timed_pop_filtered(gst::ClockTime::from_mseconds(100), &[gst::MessageType::Eos, gst::MessageType::Error]);
        threads_seen = threads_seen.max(status("Threads:"));
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(..)) => break,
            Some(gst::MessageView::Error(e)) => panic!("{} ({:?})", e.error(), e.debug()),
            _ => {}
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let bin = p.downcast_ref::<gst::Bin>().unwrap();
    let rois: u64 = (0..STREAMS)
        .map(|i| bin.by_name(&format!("c{i}")).unwrap().property::<gst::Structure>("stats").get::<u64>("rois").unwrap())
        .sum();
    p.set_state(gst::State::Null).unwrap();
    println!("{} {:.1} {}", rois as f64 / secs, status("VmHWM:") / 1024.0, threads_seen);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let frames: u32 = arg("--frames").and_then(|v| v.parse().ok()).unwrap_or(1500);
    let threads: u32 = arg("--threads").and_then(|v| v.parse().ok()).unwrap_or(1);
    let model = arg("--model").unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/signs/signs.onnx").display().to_string()
    });
    if let Some(case) = arg("--child") {
        return child(case == "shared", frames, &model, threads);
    }
    println!("{STREAMS} streams in one process, {frames} frames each (320x240 NV12, up to 4 proposals per frame), {model}, {threads} ORT thread(s) per session\n");
    println!("| sessions | crops/s (4 streams) | peak RSS MiB | threads |");
    println!("|---|---:|---:|---:|");
    let exe = std::env::current_exe().unwrap();
    for (name, case) in [("4 separate", "separate"), ("1 shared (model-instance-id)", "shared")] {
        // Two runs each, interleaved order, so drift in the machine's speed hits both cases.
        let mut rows = Vec::new();
        for _ in 0..2 {
            let out = std::process::Command::new(&exe)
                .args(["--child", case, "--frames", &frames.to_string(), "--model", &model])
                .args(["--threads", &threads.to_string()])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let text = String::from_utf8_lossy(&out.stdout);
            let v: Vec<f64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            rows.push(v);
        }
        let mean = |k: usize| rows.iter().map(|r| r[k]).sum::<f64>() / rows.len() as f64;
        println!("| {name} | {:.0} | {:.1} | {:.0} |", mean(0), mean(1), mean(2));
    }
}
