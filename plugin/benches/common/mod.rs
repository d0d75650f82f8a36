// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the benches read of their own process.
#![allow(dead_code)]

/// A `/proc/self/status` field's number (`VmRSS:`, `VmHWM:` in KiB; `Threads:`), 0 when absent.
pub fn status(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Resident memory in MiB.
pub fn rss_mib() -> f64 {
    status("VmRSS:") / 1024.0
}

/// Open file descriptors.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// The benches' frame size: a 720p dashcam frame.
pub const W: u32 = 1280;
pub const H: u32 = 720;

/// A road-like frame: grey gradients with sign-coloured discs and rings, and some clutter.
pub fn rgb_frame() -> Vec<u8> {
    let mut f = vec![0u8; (W * H * 3) as usize];
    let shapes = [
        (200.0, 300.0, 30.0, [220u8, 20, 30]),
        (900.0, 280.0, 22.0, [20, 60, 200]),
        (600.0, 320.0, 12.0, [230, 200, 20]),
    ];
    for y in 0..H {
        for x in 0..W {
            let mut c = [((x * 3 + y) % 120 + 60) as u8; 3];
            for &(cx, cy, r, col) in &shapes {
                let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
                if d < r {
                    c = col;
                }
            }
            let i = ((y * W + x) * 3) as usize;
            f[i..i + 3].copy_from_slice(&c);
        }
    }
    f
}

pub fn to_nv12(rgb: &[u8]) -> Vec<u8> {
    let (w, h) = (W as usize, H as usize);
    let mut out = vec![0u8; w * h * 3 / 2];
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 3;
            let (r, g, b) = (rgb[i] as f32, rgb[i + 1] as f32, rgb[i + 2] as f32);
            out[y * w + x] = (16.0 + 0.257 * r + 0.504 * g + 0.098 * b) as u8;
            if x % 2 == 0 && y % 2 == 0 {
                let c = w * h + (y / 2) * w + x;
                out[c] = (128.0 - 0.148 * r - 0.291 * g + 0.439 * b) as u8;
                out[c + 1] = (128.0 + 0.439 * r - 0.368 * g - 0.071 * b) as u8;
            }
        }
    }
    out
}
