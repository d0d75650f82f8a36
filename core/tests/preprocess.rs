// SPDX-License-Identifier: MIT OR Apache-2.0
//! Crop, resize and normalise: every supported layout gives the same tensor for the same picture.

use odm_core::bundle::ColorOrder;
use odm_core::preprocess::*;
use odm_core::PreprocessError;

const W: u32 = 40;
const H: u32 = 30;

/// A test picture: left half red, right half blue, with a green square at (8..16, 8..16).
fn rgb_at(x: u32, y: u32) -> [u8; 3] {
    if (8..16).contains(&x) && (8..16).contains(&y) {
        [0, 200, 0]
    } else if x < W / 2 {
        [220, 20, 30]
    } else {
        [10, 40, 230]
    }
}

fn packed(offsets: [usize; 3], px: usize, stride: usize) -> Vec<u8> {
    let mut v = vec![0u8; stride * H as usize];
    for y in 0..H {
        for x in 0..W {
            let p = rgb_at(x, y);
            for c in 0..3 {
                v[y as usize * stride + x as usize * px + offsets[c]] = p[c];
            }
        }
    }
    v
}

fn spec(color: ColorOrder, context: f32) -> CropSpec {
    CropSpec { width: 8, height: 8, context, norm: Normalize { color, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] } }
}

fn tensor(frame: &Frame<'_>, roi: Roi, s: &CropSpec) -> Vec<f32> {
    let mut out = vec![0.0; s.len()];
    crop_to_tensor(frame, roi, s, &mut out).unwrap();
    out
}

#[test]
fn packed_layouts_agree() {
    let roi = Roi { x: 4, y: 4, w: 20, h: 16 };
    let s = spec(ColorOrder::Rgb, 0.1);
    let rgb = packed([0, 1, 2], 3, 3 * W as usize + 5);
    let reference = tensor(
        &Frame::new(PixelFormat::Rgb, W, H, &[Plane { data: &rgb, stride: 3 * W as usize + 5 }], YuvMatrix::Bt601)
            .unwrap(),
        roi,
        &s,
    );
    for (fmt, off, px) in [
        (PixelFormat::Bgr, [2, 1, 0], 3),
        (PixelFormat::Rgba, [0, 1, 2], 4),
        (PixelFormat::Bgrx, [2, 1, 0], 4),
        (PixelFormat::Xrgb, [1, 2, 3], 4),
        (PixelFormat::Abgr, [3, 2, 1], 4),
    ] {
        let stride = px * W as usize;
        let data = packed(off, px, stride);
        let f = Frame::new(fmt, W, H, &[Plane { data: &data, stride }], YuvMatrix::Bt601).unwrap();
        assert_eq!(tensor(&f, roi, &s), reference, "{fmt:?}");
    }
}

#[test]
fn normalisation_and_channel_order() {
    let data = packed([0, 1, 2], 3, 3 * W as usize);
    let f =
        Frame::new(PixelFormat::Rgb, W, H, &[Plane { data: &data, stride: 3 * W as usize }], YuvMatrix::Bt601).unwrap();
    // A box well inside the green square: every tensor value is the normalised green pixel.
    let roi = Roi { x: 10, y: 10, w: 4, h: 4 };
    let t = tensor(&f, roi, &spec(ColorOrder::Rgb, 0.0));
    let norm = |v: f32| (v / 255.0 - 0.5) / 0.25;
    for (c, want) in [0.0f32, 200.0, 0.0].into_iter().enumerate() {
        for v in &t[c * 64..(c + 1) * 64] {
            assert!((v - norm(want)).abs() < 1e-4, "channel {c}: {v}");
        }
    }
    let bgr = tensor(&f, Roi { x: 30, y: 20, w: 4, h: 4 }, &spec(ColorOrder::Bgr, 0.0));
    assert!((bgr[0] - norm(230.0)).abs() < 1e-4 && (bgr[128] - norm(10.0)).abs() < 1e-4);
}

#[test]
fn yuv_planes_match_rgb_within_conversion_error() {
    // Build I420 and NV12 from the picture with the BT.601 limited-range forward matrix.
    let (w, h) = (W as usize, H as usize);
    let (cw, ch) = (w / 2, h / 2);
    let mut y = vec![0u8; w * h];
    let mut u = vec![0u8; cw * ch];
    let mut v = vec![0u8; cw * ch];
    let to_yuv = |p: [u8; 3]| {
        let (r, g, b) = (p[0] as f32, p[1] as f32, p[2] as f32);
        (
            16.0 + 0.256_788 * r + 0.504_129 * g + 0.097_906 * b,
            128.0 - 0.148_223 * r - 0.290_993 * g + 0.439_216 * b,
            128.0 + 0.439_216 * r - 0.367_788 * g - 0.071_427 * b,
        )
    };
    for yy in 0..h {
        for xx in 0..w {
            y[yy * w + xx] = to_yuv(rgb_at(xx as u32, yy as u32)).0.round() as u8;
        }
    }
    for yy in 0..ch {
        for xx in 0..cw {
            let (_, uu, vv) = to_yuv(rgb_at(2 * xx as u32, 2 * yy as u32));
            u[yy * cw + xx] = uu.round() as u8;
            v[yy * cw + xx] = vv.round() as u8;
        }
    }
    let uv: Vec<u8> = u.iter().zip(&v).flat_map(|(a, b)| [*a, *b]).collect();
    let rgb = packed([0, 1, 2], 3, 3 * w);
    let s = spec(ColorOrder::Rgb, 0.0);
    let roi = Roi { x: 22, y: 2, w: 12, h: 12 }; // inside the blue half
    let reference = tensor(
        &Frame::new(PixelFormat::Rgb, W, H, &[Plane { data: &rgb, stride: 3 * w }], YuvMatrix::Bt601).unwrap(),
        roi,
        &s,
    );
    let i420 = Frame::new(
        PixelFormat::I420,
        W,
        H,
        &[Plane { data: &y, stride: w }, Plane { data: &u, stride: cw }, Plane { data: &v, stride: cw }],
        YuvMatrix::Bt601,
    )
    .unwrap();
    let nv12 = Frame::new(
        PixelFormat::Nv12,
        W,
        H,
        &[Plane { data: &y, stride: w }, Plane { data: &uv, stride: w }],
        YuvMatrix::Bt601,
    )
    .unwrap();
    for f in [i420, nv12] {
        let t = tensor(&f, roi, &s);
        let worst = t.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        // 2 levels of 255 after normalisation by std 0.25.
        assert!(worst < 2.0 / 255.0 / 0.25, "worst difference {worst}");
    }
}

#[test]
fn shrinking_averages_instead_of_aliasing() {
    // A 1-px black/white checkerboard shrunk 5x must come out mid-grey, not black or white.
    let (w, h) = (80usize, 80usize);
    let data: Vec<u8> = (0..w * h).map(|i| if (i % w + i / w) % 2 == 0 { 255 } else { 0 }).collect();
    let f = Frame::new(PixelFormat::Gray8, 80, 80, &[Plane { data: &data, stride: w }], YuvMatrix::Bt601).unwrap();
    let s = CropSpec {
        width: 16,
        height: 16,
        context: 0.0,
        norm: Normalize { color: ColorOrder::Rgb, mean: [0.0; 3], std: [1.0; 3] },
    };
    let t = tensor(&f, Roi { x: 0, y: 0, w: 80, h: 80 }, &s);
    for v in t {
        assert!((v - 0.5).abs() < 0.15, "{v}");
    }
}

#[test]
fn regions_at_and_beyond_the_edges() {
    let data = packed([0, 1, 2], 3, 3 * W as usize);
    let f =
        Frame::new(PixelFormat::Rgb, W, H, &[Plane { data: &data, stride: 3 * W as usize }], YuvMatrix::Bt601).unwrap();
    let s = spec(ColorOrder::Rgb, 0.5);
    let mut out = vec![0.0; s.len()];
    // Partly outside: edge pixels repeat, values stay finite and in range.
    crop_to_tensor(&f, Roi { x: -10, y: 25, w: 20, h: 20 }, &s, &mut out).unwrap();
    assert!(out.iter().all(|v| v.is_finite() && (-2.01..=2.01).contains(v)));
    for roi in [Roi { x: 40, y: 0, w: 5, h: 5 }, Roi { x: -5, y: 0, w: 5, h: 5 }, Roi { x: 3, y: 3, w: 0, h: 5 }] {
        assert!(matches!(crop_to_tensor(&f, roi, &s, &mut out), Err(PreprocessError::Outside { .. })), "{roi:?}");
    }
    assert!(matches!(
        crop_to_tensor(&f, Roi { x: 0, y: 0, w: 5, h: 5 }, &s, &mut out[1..]),
        Err(PreprocessError::OutputSize { .. })
    ));
}

#[test]
fn short_buffers_are_refused() {
    let data = vec![0u8; 100];
    let e = Frame::new(PixelFormat::Rgb, W, H, &[Plane { data: &data, stride: 3 * W as usize }], YuvMatrix::Bt601)
        .unwrap_err();
    assert!(matches!(e, PreprocessError::ShortBuffer { .. }));
    let y = vec![0u8; (W * H) as usize];
    assert!(Frame::new(PixelFormat::Nv12, W, H, &[Plane { data: &y, stride: W as usize }], YuvMatrix::Bt601).is_err());
    // Odd sizes: chroma planes round up.
    let y = vec![0u8; 5 * 3];
    let c = vec![0u8; 3 * 2];
    let f = Frame::new(
        PixelFormat::I420,
        5,
        3,
        &[Plane { data: &y, stride: 5 }, Plane { data: &c, stride: 3 }, Plane { data: &c, stride: 3 }],
        YuvMatrix::Bt709,
    )
    .unwrap();
    let s = spec(ColorOrder::Rgb, 0.0);
    let mut out = vec![0.0; s.len()];
    crop_to_tensor(&f, Roi { x: 0, y: 0, w: 5, h: 3 }, &s, &mut out).unwrap();
}

/// The definition the fast path must equal: for every output pixel, n x n bilinear taps clamped inside the box,
/// each tap reading RGB pixels clamped to the frame (the direct, unseparated form; slow, for tests only).
fn reference_crop(rgb: &[u8], w: u32, h: u32, roi: Roi, s: &CropSpec) -> Vec<f32> {
    let px = |x: usize, y: usize| -> [f32; 3] {
        let i = (y * w as usize + x) * 3;
        [rgb[i] as f32, rgb[i + 1] as f32, rgb[i + 2] as f32]
    };
    reference_crop_by(px, |p| p, w, h, roi, s)
}

/// [`reference_crop`] over any layout: `px(x, y)` reads three samples of the pixel at (x, y) inside the frame
/// (RGB, or Y, U, V), `finish` turns the averaged samples into RGB (identity, or the YUV matrix).
fn reference_crop_by(
    px: impl Fn(usize, usize) -> [f32; 3],
    finish: impl Fn([f32; 3]) -> [f32; 3],
    w: u32,
    h: u32,
    roi: Roi,
    s: &CropSpec,
) -> Vec<f32> {
    let px = |x: i64, y: i64| px(x.clamp(0, w as i64 - 1) as usize, y.clamp(0, h as i64 - 1) as usize);
    let sample = |fx: f32, fy: f32| {
        let (x, y) = (fx - 0.5, fy - 0.5);
        let (x0, y0) = (x.floor(), y.floor());
        let (ax, ay) = (x - x0, y - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let (p00, p10, p01, p11) = (px(x0, y0), px(x0 + 1, y0), px(x0, y0 + 1), px(x0 + 1, y0 + 1));
        std::array::from_fn::<f32, 3, _>(|c| {
            let top = p00[c] + (p10[c] - p00[c]) * ax;
            let bottom = p01[c] + (p11[c] - p01[c]) * ax;
            top + (bottom - top) * ay
        })
    };
    let (gx, gy) = (s.context * roi.w as f32, s.context * roi.h as f32);
    let (bx, by, bw, bh) = (roi.x as f32 - gx, roi.y as f32 - gy, roi.w as f32 + 2.0 * gx, roi.h as f32 + 2.0 * gy);
    let (ow, oh) = (s.width as usize, s.height as usize);
    let (sx, sy) = (bw / ow as f32, bh / oh as f32);
    let (nx, ny) = ((sx.ceil() as usize).clamp(1, 4), (sy.ceil() as usize).clamp(1, 4));
    let mut out = vec![0.0; s.len()];
    for oy in 0..oh {
        for ox in 0..ow {
            let mut acc = [0.0f32; 3];
            for ty in 0..ny {
                let fy = (by + (oy as f32 + (ty as f32 + 0.5) / ny as f32) * sy)
                    .max(by + 0.5)
                    .min((by + bh - 0.5).max(by + 0.5));
                for tx in 0..nx {
                    let fx = (bx + (ox as f32 + (tx as f32 + 0.5) / nx as f32) * sx)
                        .max(bx + 0.5)
                        .min((bx + bw - 0.5).max(bx + 0.5));
                    let p = sample(fx, fy);
                    for c in 0..3 {
                        acc[c] += p[c] / (nx * ny) as f32;
                    }
                }
            }
            let rgb = finish(acc);
            let order = match s.norm.color {
                ColorOrder::Rgb => [0, 1, 2],
                ColorOrder::Bgr => [2, 1, 0],
            };
            for c in 0..3 {
                out[c * ow * oh + oy * ow + ox] = (rgb[order[c]] / 255.0 - s.norm.mean[c]) / s.norm.std[c];
            }
        }
    }
    out
}

/// BT.601 limited-range YUV to RGB, clamped: what NV12 and I420 frames are converted with.
fn bt601(p: [f32; 3]) -> [f32; 3] {
    let (y, u, v) = (1.164_383 * (p[0] - 16.0), p[1] - 128.0, p[2] - 128.0);
    [y + 1.596_027 * v, y - 0.391_762 * u - 0.812_968 * v, y + 2.017_232 * u].map(|c| c.clamp(0.0, 255.0))
}

#[test]
fn every_layout_equals_the_direct_definition() {
    // Textured planes; odd sizes so that chroma rounds up.
    let (w, h) = (97u32, 61u32);
    let (wu, hu) = (w as usize, h as usize);
    let (cw, ch) = (wu.div_ceil(2), hu.div_ceil(2));
    let luma: Vec<u8> = (0..wu * hu).map(|i| ((i % wu) * 3 + (i / wu) * 5 + i * 7 % 31) as u8).collect();
    let u: Vec<u8> = (0..cw * ch).map(|i| (i * 13 % 241) as u8).collect();
    let v: Vec<u8> = (0..cw * ch).map(|i| (i * 29 % 233) as u8).collect();
    let uv: Vec<u8> = u.iter().zip(&v).flat_map(|(a, b)| [*a, *b]).collect();
    // BGRA with a row padding of 12 bytes, from the same numbers as RGB (B = luma, G = u, R = v at full size).
    let stride = 4 * wu + 12;
    let mut bgra = vec![0u8; stride * hu];
    for y in 0..hu {
        for x in 0..wu {
            let p = &mut bgra[y * stride + 4 * x..][..4];
            p.copy_from_slice(&[luma[y * wu + x], u[(y / 2) * cw + x / 2], v[(y / 2) * cw + x / 2], 255]);
        }
    }
    let yuv_px =
        |x: usize, y: usize| [luma[y * wu + x] as f32, u[(y / 2) * cw + x / 2] as f32, v[(y / 2) * cw + x / 2] as f32];
    let bgra_px = |x: usize, y: usize| {
        let p = &bgra[y * stride + 4 * x..];
        [p[2] as f32, p[1] as f32, p[0] as f32]
    };
    let gray_px = |x: usize, y: usize| [luma[y * wu + x] as f32; 3];
    let frames = [
        Frame::new(
            PixelFormat::Nv12,
            w,
            h,
            &[Plane { data: &luma, stride: wu }, Plane { data: &uv, stride: 2 * cw }],
            YuvMatrix::Bt601,
        )
        .unwrap(),
        Frame::new(
            PixelFormat::I420,
            w,
            h,
            &[Plane { data: &luma, stride: wu }, Plane { data: &u, stride: cw }, Plane { data: &v, stride: cw }],
            YuvMatrix::Bt601,
        )
        .unwrap(),
        Frame::new(PixelFormat::Bgra, w, h, &[Plane { data: &bgra, stride }], YuvMatrix::Bt601).unwrap(),
        Frame::new(PixelFormat::Gray8, w, h, &[Plane { data: &luma, stride: wu }], YuvMatrix::Bt601).unwrap(),
    ];
    let rois = [
        Roi { x: 10, y: 5, w: 20, h: 30 },
        Roi { x: 0, y: 0, w: 97, h: 61 },
        Roi { x: 41, y: 21, w: 3, h: 2 },
        Roi { x: -15, y: 50, w: 30, h: 25 },
        Roi { x: 90, y: -3, w: 40, h: 9 },
        Roi { x: 33, y: 17, w: 24, h: 24 },
    ];
    let mut scratch = CropScratch::default();
    for frame in &frames {
        for (k, roi) in rois.iter().enumerate() {
            for (size, context, color) in
                [(8u32, 0.0f32, ColorOrder::Rgb), (16, 0.1, ColorOrder::Bgr), (5, 0.3, ColorOrder::Rgb)]
            {
                let s = CropSpec { width: size, height: size + 3, context, ..spec(color, 0.0) };
                let want = match frame.format() {
                    PixelFormat::Nv12 | PixelFormat::I420 => reference_crop_by(yuv_px, bt601, w, h, *roi, &s),
                    PixelFormat::Bgra => reference_crop_by(bgra_px, |p| p, w, h, *roi, &s),
                    _ => reference_crop_by(gray_px, |p| p, w, h, *roi, &s),
                };
                let mut got = vec![0.0; s.len()];
                crop_to_tensor_with(frame, *roi, &s, &mut got, &mut scratch).unwrap();
                let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(worst < 1e-3, "{:?} ROI {k} size {size} context {context}: off by {worst}", frame.format());
            }
        }
    }
}

#[test]
fn separable_fast_path_equals_the_direct_definition() {
    // A textured picture (no flat areas that would hide a wrong tap).
    let (w, h) = (97u32, 61u32);
    let rgb: Vec<u8> = (0..w * h)
        .flat_map(|i| [(i * 7 % 251) as u8, (i * 13 % 241) as u8, ((i / w) * 5 + (i % w) * 3) as u8])
        .collect();
    let frame =
        Frame::new(PixelFormat::Rgb, w, h, &[Plane { data: &rgb, stride: 3 * w as usize }], YuvMatrix::Bt601).unwrap();
    let mut scratch = CropScratch::default();
    let rois = [
        Roi { x: 10, y: 5, w: 20, h: 30 },   // shrink a little
        Roi { x: 0, y: 0, w: 97, h: 61 },    // the whole frame: 4x4 taps
        Roi { x: 40, y: 20, w: 3, h: 2 },    // upscale
        Roi { x: -15, y: 50, w: 30, h: 25 }, // partly outside: edges repeated
        Roi { x: 90, y: -3, w: 40, h: 9 },   // partly outside, other corner
    ];
    for (k, roi) in rois.iter().enumerate() {
        for (size, context) in [(8u32, 0.0f32), (16, 0.1), (5, 0.3)] {
            let s = CropSpec { width: size, height: size + 3, context, ..spec(ColorOrder::Rgb, 0.0) };
            let want = reference_crop(&rgb, w, h, *roi, &s);
            let mut got = vec![0.0; s.len()];
            crop_to_tensor_with(&frame, *roi, &s, &mut got, &mut scratch).unwrap();
            let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "ROI {k} size {size} context {context}: off by {worst}");
            // A fresh scratch gives the same bytes as a reused one.
            assert_eq!(got, tensor(&frame, *roi, &s));
        }
    }
}

#[test]
fn tiny_frames_narrower_than_the_filter_window() {
    let (w, h) = (3u32, 2u32);
    let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 37 % 256) as u8).collect();
    let frame = Frame::new(PixelFormat::Rgb, w, h, &[Plane { data: &rgb, stride: 9 }], YuvMatrix::Bt601).unwrap();
    for (roi, context) in [(Roi { x: 0, y: 0, w: 3, h: 2 }, 0.3f32), (Roi { x: -20, y: -20, w: 40, h: 40 }, 0.0)] {
        let s = CropSpec { width: 4, height: 4, context, ..spec(ColorOrder::Rgb, 0.0) };
        let want = reference_crop(&rgb, w, h, roi, &s);
        let got = tensor(&frame, roi, &s);
        let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{roi:?}: off by {worst}");
    }
}
