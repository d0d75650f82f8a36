// SPDX-License-Identifier: MIT OR Apache-2.0
//! Whole frames (or tiles of them) into a detector's input: the view resized with its aspect kept, read straight from
//! the frame's planes (NV12, I420 or packed RGB: no full-frame conversion), centred on grey 114 (as YOLO letterboxes),
//! RGB in [0, 1]; and boxes back from the network's pixels to the frame's.

use odm_core::bundle::ColorOrder;
use odm_core::preprocess::{crop_into, CropScratch, CropSpec, Frame, Normalize, Place, Roi};
use odm_core::PreprocessError;

use super::decode::Detection;

/// The letterbox's grey, as YOLO pads.
pub const PAD: f32 = 114.0 / 255.0;

/// A part of the frame (x, y, w, h).
pub type View = (u32, u32, u32, u32);

/// Where a view landed in the network input: its scale per axis and its offset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub view: View,
    pub scale_x: f32,
    pub scale_y: f32,
    pub pad_x: f32,
    pub pad_y: f32,
}

/// The views of a frame: the whole frame, and with `tiles` >= 2 a grid of `tiles` tiles along the frame's longer
/// side (as many along the shorter side as keep the tiles near square, at least one) overlapping by `overlap` of a
/// tile, for small objects. At most `tiles`² tiles whatever the frame's shape: a tall, thin frame cannot ask for
/// thousands.
pub fn views(width: u32, height: u32, tiles: u32, overlap: f64, out: &mut Vec<View>) {
    out.clear();
    out.push((0, 0, width, height));
    if tiles < 2 || width == 0 || height == 0 {
        return;
    }
    let (long, short) = (width.max(height) as f64, width.min(height) as f64);
    let across = ((tiles as f64 * short / long).round() as u32).clamp(1, tiles);
    let (cols, rows) = if width >= height { (tiles, across) } else { (across, tiles) };
    let overlap = overlap.clamp(0.0, 0.9);
    let side = |len: u32, n: u32| -> (u32, f64) {
        let t = (len as f64 / (n as f64 * (1.0 - overlap) + overlap)).ceil().min(len as f64).max(1.0);
        (t as u32, t * (1.0 - overlap))
    };
    let ((tw, sx), (th, sy)) = (side(width, cols), side(height, rows));
    for r in 0..rows {
        for c in 0..cols {
            let x = ((c as f64 * sx).round() as u32).min(width - tw);
            let y = ((r as f64 * sy).round() as u32).min(height - th);
            out.push((x, y, tw, th));
        }
    }
}

/// Letterbox `view` of `frame` into `out`, a CHW tensor of the network's `(height, width)`: the view is cropped and
/// resized straight into its place (pixel for pixel, with no filter, when it needs no scaling, as a 1280x720 frame
/// in a 1280x736 input) and only the padding around it is filled. `scratch` is reused from call to call.
pub fn letterbox(
    frame: &Frame<'_>,
    view: View,
    net: (usize, usize),
    out: &mut [f32],
    scratch: &mut CropScratch,
) -> Result<Placement, PreprocessError> {
    let (nh_net, nw_net) = net;
    let (vw, vh) = (view.2.max(1) as f32, view.3.max(1) as f32);
    let scale = (nw_net as f32 / vw).min(nh_net as f32 / vh);
    let nw = ((vw * scale).round() as usize).clamp(1, nw_net);
    let nh = ((vh * scale).round() as usize).clamp(1, nh_net);
    let (pad_x, pad_y) = ((nw_net - nw) / 2, (nh_net - nh) / 2);
    let spec = CropSpec {
        width: nw as u32,
        height: nh as u32,
        context: 0.0,
        norm: Normalize { color: ColorOrder::Rgb, mean: [0.0; 3], std: [1.0; 3] },
    };
    let roi = Roi { x: view.0 as i64, y: view.1 as i64, w: view.2 as i64, h: view.3 as i64 };
    let place = Place { width: nw_net as u32, height: nh_net as u32, x: pad_x as u32, y: pad_y as u32 };
    crop_into(frame, roi, &spec, out, place, scratch)?;
    // The padding: whole rows above and below the picture, the columns left and right of it.
    for channel in out.chunks_exact_mut(nh_net * nw_net) {
        let (above, rest) = channel.split_at_mut(pad_y * nw_net);
        let (picture, below) = rest.split_at_mut(nh * nw_net);
        above.fill(PAD);
        below.fill(PAD);
        for row in picture.chunks_exact_mut(nw_net) {
            row[..pad_x].fill(PAD);
            row[pad_x + nw..].fill(PAD);
        }
    }
    Ok(Placement { view, scale_x: nw as f32 / vw, scale_y: nh as f32 / vh, pad_x: pad_x as f32, pad_y: pad_y as f32 })
}

/// A detection's box in frame pixels (x, y, w, h), clipped to its view; `None` when nothing of it is left.
pub fn to_frame(d: &Detection, p: &Placement) -> Option<View> {
    let (vx, vy, vw, vh) = (p.view.0 as f32, p.view.1 as f32, p.view.2 as f32, p.view.3 as f32);
    let fx = |x: f32| ((x - p.pad_x) / p.scale_x).clamp(0.0, vw) + vx;
    let fy = |y: f32| ((y - p.pad_y) / p.scale_y).clamp(0.0, vh) + vy;
    let (x1, y1, x2, y2) = (fx(d.x1).round(), fy(d.y1).round(), fx(d.x2).round(), fy(d.y2).round());
    (x2 > x1 && y2 > y1).then_some((x1 as u32, y1 as u32, (x2 - x1) as u32, (y2 - y1) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_frame_with_overlap() {
        let mut v = Vec::new();
        views(1280, 720, 1, 0.2, &mut v);
        assert_eq!(v, [(0, 0, 1280, 720)]);
        views(1280, 720, 3, 0.2, &mut v);
        // The whole frame, then 3 x 2 tiles.
        assert_eq!(v.len(), 7);
        assert_eq!(v[1].0, 0);
        let last = v[6];
        assert_eq!((last.0 + last.2, last.1 + last.3), (1280, 720), "the last tile reaches the corner");
        assert!(v[1].2 > 1280 / 3 && v[1].3 > 720 / 2, "tiles overlap: {v:?}");
        // A portrait frame: the tiles run along its height (16 x 9, not 16 x 28).
        views(720, 1280, 16, 0.2, &mut v);
        assert_eq!(v.len(), 1 + 9 * 16);
        assert!(v.iter().all(|t| t.0 + t.2 <= 720 && t.1 + t.3 <= 1280), "{v:?}");
        // A thin strip either way: one row (or column) of 16, never thousands of tiles.
        views(40, 3000, 16, 0.2, &mut v);
        assert_eq!(v.len(), 1 + 16);
        views(3000, 40, 16, 0.2, &mut v);
        assert_eq!(v.len(), 1 + 16);
        assert!(v.iter().all(|t| t.2 >= 1 && t.3 == 40 && t.0 + t.2 <= 3000), "{v:?}");
    }

    #[test]
    fn boxes_map_back_through_the_letterbox() {
        // A 128 x 64 frame into 64 x 64: scale 0.5, 16 rows of padding above.
        let p = Placement { view: (0, 0, 128, 64), scale_x: 0.5, scale_y: 0.5, pad_x: 0.0, pad_y: 16.0 };
        let d = Detection { x1: 24.0, y1: 28.0, x2: 40.0, y2: 36.0, score: 1.0, class: 0 };
        assert_eq!(to_frame(&d, &p), Some((48, 24, 32, 16)));
        // A box wholly in the padding leaves nothing.
        let pad = Detection { x1: 0.0, y1: 0.0, x2: 10.0, y2: 10.0, score: 1.0, class: 0 };
        assert_eq!(to_frame(&pad, &p), None);
        // A tile's box lands at the tile's place.
        let t = Placement { view: (100, 50, 64, 64), scale_x: 1.0, scale_y: 1.0, pad_x: 0.0, pad_y: 0.0 };
        assert_eq!(to_frame(&d, &t), Some((124, 78, 16, 8)));
    }

    /// The letterbox fills exactly the padding with grey and puts the picture (the view resized) in its place: a
    /// 1280x720 frame in a 1280x736 input unscaled, a wide tile scaled down with columns of padding.
    #[test]
    fn the_picture_lands_in_its_place_and_the_padding_is_grey() {
        use odm_core::preprocess::{crop_to_tensor, PixelFormat, Plane, YuvMatrix};
        let (w, h) = (1280u32, 720u32);
        let bytes: Vec<u8> = (0..(w * h * 3) as usize).map(|i| (i * 7 % 251) as u8).collect();
        let frame =
            Frame::new(PixelFormat::Rgb, w, h, &[Plane { data: &bytes, stride: 3 * w as usize }], YuvMatrix::Bt601)
                .expect("frame");
        for (view, net) in [((0, 0, 1280, 720), (736usize, 1280usize)), ((100, 40, 300, 500), (64, 64))] {
            let mut out = vec![f32::NAN; 3 * net.0 * net.1];
            let p = letterbox(&frame, view, net, &mut out, &mut CropScratch::default()).expect("letterbox");
            let (nw, nh) = ((view.2 as f32 * p.scale_x).round() as usize, (view.3 as f32 * p.scale_y).round() as usize);
            let spec = CropSpec {
                width: nw as u32,
                height: nh as u32,
                context: 0.0,
                norm: Normalize { color: ColorOrder::Rgb, mean: [0.0; 3], std: [1.0; 3] },
            };
            let mut picture = vec![0.0; spec.len()];
            let roi = Roi { x: view.0 as i64, y: view.1 as i64, w: view.2 as i64, h: view.3 as i64 };
            crop_to_tensor(&frame, roi, &spec, &mut picture).expect("crop");
            let (px, py) = (p.pad_x as usize, p.pad_y as usize);
            for c in 0..3 {
                for y in 0..net.0 {
                    for x in 0..net.1 {
                        let v = out[c * net.0 * net.1 + y * net.1 + x];
                        if (px..px + nw).contains(&x) && (py..py + nh).contains(&y) {
                            assert_eq!(v, picture[c * nw * nh + (y - py) * nw + (x - px)], "picture at {c},{x},{y}");
                        } else {
                            assert_eq!(v, PAD, "padding at {c},{x},{y} of {view:?}");
                        }
                    }
                }
            }
        }
    }
}
