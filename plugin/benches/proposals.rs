// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmproposals speed at 1280x720 on one core (`cargo bench -p gst-plugin-odm --bench proposals`): the detector
//! alone on NV12 and RGB frames, and the element in `appsrc ! odmproposals ! appsink`.

use std::time::Instant;

use gst::prelude::*;
use gstodm::proposals::detect::{Detector, Params};
use odm_core::preprocess::{Frame, PixelFormat, Plane, YuvMatrix};

mod common;
use common::{rgb_frame, to_nv12, H, W};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 50 } else { 1000 };
    let rgb = rgb_frame();
    let nv12 = to_nv12(&rgb);
    let params = Params::default();
    let mut det = Detector::default();
    let mut out = Vec::new();
    println!("| path | format | frames/s | ms/frame | proposals |\n|---|---|---:|---:|---:|");
    let (y, uv) = nv12.split_at((W * H) as usize);
    let frames = [
        (
            "NV12",
            Frame::new(
                PixelFormat::Nv12,
                W,
                H,
                &[Plane { data: y, stride: W as usize }, Plane { data: uv, stride: W as usize }],
                YuvMatrix::Bt601,
            )
            .unwrap(),
        ),
        (
            "RGB",
            Frame::new(PixelFormat::Rgb, W, H, &[Plane { data: &rgb, stride: 3 * W as usize }], YuvMatrix::Bt601)
                .unwrap(),
        ),
    ];
    for (name, frame) in &frames {
        let t0 = Instant::now();
        for _ in 0..n {
            det.detect(frame, &params, &mut out);
        }
        let s = t0.elapsed().as_secs_f64();
        println!("| detector | {name} | {:.0} | {:.2} | {} |", n as f64 / s, 1e3 * s / n as f64, out.len());
    }

    gst::init().unwrap();
    gstodm::plugin_register_static().unwrap();
    for (name, data) in [("NV12", nv12.clone()), ("RGB", rgb.clone())] {
        let pipeline = gst::parse::launch(&format!(
            "appsrc name=src format=time caps=video/x-raw,format={name},width={W},height={H},framerate=30/1 ! \
             odmproposals ! appsink name=sink sync=false"
        ))
        .unwrap();
        let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
        let src = bin.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
        let sink = bin.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let mem = gst::Memory::from_slice(data);
        let mut found = 0;
        let t0 = Instant::now();
        for i in 0..n {
            let mut b = gst::Buffer::new();
            {
                let b = b.get_mut().unwrap();
                b.append_memory(mem.clone());
                b.set_pts(gst::ClockTime::from_mseconds(33 * i as u64));
            }
            src.push_buffer(b).unwrap();
            let s = sink.pull_sample().unwrap();
            found = s.buffer().unwrap().iter_meta::<gst_video::VideoRegionOfInterestMeta>().count();
        }
        let s = t0.elapsed().as_secs_f64();
        println!("| element | {name} | {:.0} | {:.2} | {found} |", n as f64 / s, 1e3 * s / n as f64);
        pipeline.set_state(gst::State::Null).unwrap();
    }
}
