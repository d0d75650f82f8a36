// SPDX-License-Identifier: MIT OR Apache-2.0
//! Preprocessing time per crop (crop + resize + colour conversion + normalisation) from 1280x720 frames, by format,
//! box size and model input size: `cargo bench -p odm-core --bench preprocess`.

use std::time::Instant;

use odm_core::bundle::ColorOrder;
use odm_core::preprocess::*;

fn main() {
    let (w, h) = (1280u32, 720u32);
    let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
    let nv12: Vec<u8> = (0..w * h * 3 / 2).map(|i| (i * 13 % 241) as u8).collect();
    let (y, uv) = nv12.split_at((w * h) as usize);
    let frames = [
        ("RGB", Frame::new(PixelFormat::Rgb, w, h, &[Plane { data: &rgb, stride: 3 * w as usize }], YuvMatrix::Bt601)),
        (
            "NV12",
            Frame::new(
                PixelFormat::Nv12,
                w,
                h,
                &[Plane { data: y, stride: w as usize }, Plane { data: uv, stride: w as usize }],
                YuvMatrix::Bt601,
            ),
        ),
    ];
    // This machine is shared and noisy: each row is the median and the best of 9 rounds of 300 crops.
    println!("| format | box px | input | µs/crop median | µs/crop best |\n|---|---:|---:|---:|---:|");
    for (name, frame) in &frames {
        let frame = frame.as_ref().expect("valid frame");
        for input in [32u32, 48] {
            let spec = CropSpec {
                width: input,
                height: input,
                context: 0.1,
                norm: Normalize { color: ColorOrder::Rgb, mean: [0.5; 3], std: [0.25; 3] },
            };
            for side in [24i64, 48, 96, 200] {
                let mut out = vec![0f32; spec.len()];
                let mut scratch = CropScratch::default();
                let reps = 300;
                let mut rounds: Vec<f64> = (0..9)
                    .map(|_| {
                        let t0 = Instant::now();
                        for i in 0..reps {
                            let roi = Roi { x: 100 + (i % 50) * 17, y: 80 + (i % 30) * 11, w: side, h: side };
                            crop_to_tensor_with(frame, roi, &spec, &mut out, &mut scratch).expect("crop");
                        }
                        t0.elapsed().as_secs_f64() * 1e6 / reps as f64
                    })
                    .collect();
                rounds.sort_by(f64::total_cmp);
                println!("| {name} | {side} | {input} | {:.2} | {:.2} |", rounds[4], rounds[0]);
            }
        }
    }
    // A detector's input: the whole frame, unscaled (the direct path: 1280x720 into a 1280x736 letterbox) and
    // scaled (the filter: 1279x719, 640x360).
    println!("\n| format | whole frame into | ms/frame median | ms/frame best |\n|---|---|---:|---:|");
    for (name, frame) in &frames {
        let frame = frame.as_ref().expect("valid frame");
        for (ow, oh, what) in [(1280u32, 720u32, "1280x720 (unscaled)"), (1279, 719, "1279x719"), (640, 360, "640x360")]
        {
            let spec = CropSpec {
                width: ow,
                height: oh,
                context: 0.0,
                norm: Normalize { color: ColorOrder::Rgb, mean: [0.0; 3], std: [1.0; 3] },
            };
            let place = Place { width: 1280, height: 736, x: 0, y: 8 };
            let mut out = vec![0f32; 3 * 1280 * 736];
            let mut scratch = CropScratch::default();
            let roi = Roi { x: 0, y: 0, w: w as i64, h: h as i64 };
            let mut rounds: Vec<f64> = (0..9)
                .map(|_| {
                    let t0 = Instant::now();
                    for _ in 0..5 {
                        crop_into(frame, roi, &spec, &mut out, place, &mut scratch).expect("whole frame");
                    }
                    t0.elapsed().as_secs_f64() * 1e3 / 5.0
                })
                .collect();
            rounds.sort_by(f64::total_cmp);
            println!("| {name} | {what} | {:.2} | {:.2} |", rounds[4], rounds[0]);
        }
    }
}
