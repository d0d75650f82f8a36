// SPDX-License-Identifier: MIT OR Apache-2.0
//! Footage: a clip decoded by GStreamer (`decodebin`, H.264 always by libav: [`gst_decode`]) frame by frame as binary
//! PPM through a pipe, and boxes cropped from its frames with odm-core's preprocessing, the plugin's code (`mine`'s
//! negatives, `report`'s thumbnails).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use odm_core::preprocess::{crop_to_tensor, CropSpec, Frame, PixelFormat, Plane, Roi, YuvMatrix};

use super::rois::RoiLine;
use crate::error::TrainError;

/// An error about `clip` from gst-launch-1.0: what failed and the last lines it said.
pub fn gst_error(what: &str, clip: &Path, stderr: &str) -> TrainError {
    let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(3)..].join(" / ");
    TrainError::Config(format!("{}: {what}: {tail}", clip.display()))
}

/// `gst-launch-1.0` for a pipeline that decodes a clip with decodebin, with libav's H.264 decoder ranked above every
/// other (`GST_PLUGIN_FEATURE_RANK`, added after the caller's own). decodebin takes the highest-ranked decoder a
/// machine has, and they do not give the same frames: openh264dec decodes the B-frames of `odm-train clip`'s drives
/// otherwise (other boxes from odmproposals), and hardware decoders hand NV12 to videoconvert, whose RGB differs from
/// the one it makes of avdec_h264's I420 (other crops). libav decodes H.264 exactly, whatever its thread count.
pub fn gst_decode() -> Command {
    let mut c = Command::new("gst-launch-1.0");
    let pin = "avdec_h264:MAX";
    let ranks = match std::env::var("GST_PLUGIN_FEATURE_RANK") {
        Ok(r) if !r.trim().is_empty() => format!("{r},{pin}"),
        _ => pin.to_owned(),
    };
    c.env("GST_PLUGIN_FEATURE_RANK", ranks);
    c
}

/// Read one binary PPM (`P6 W H 255`, then W*H*3 bytes) from a stream into `data` (reused from frame to frame);
/// its size, or `None` at a clean end of stream.
fn read_ppm(r: &mut impl BufRead, data: &mut Vec<u8>) -> Result<Option<(u32, u32)>, String> {
    let mut fields = Vec::new();
    while fields.len() < 4 {
        let mut tok = Vec::new();
        loop {
            let mut b = [0u8];
            if r.read(&mut b).map_err(|e| e.to_string())? == 0 {
                return if fields.is_empty() && tok.is_empty() { Ok(None) } else { Err("truncated PPM header".into()) };
            }
            if b[0] == b'#' {
                let mut comment = Vec::new();
                r.read_until(b'\n', &mut comment).map_err(|e| e.to_string())?;
                continue;
            }
            if b[0].is_ascii_whitespace() {
                if !tok.is_empty() {
                    break;
                }
                continue;
            }
            tok.push(b[0]);
        }
        fields.push(String::from_utf8_lossy(&tok).into_owned());
    }
    let num = |s: &str| s.parse::<u32>().map_err(|_| format!("bad PPM header field {s:?}"));
    if fields[0] != "P6" || num(&fields[3])? != 255 {
        return Err(format!("not an 8-bit binary PPM ({} ... {})", fields[0], fields[3]));
    }
    let (w, h) = (num(&fields[1])?, num(&fields[2])?);
    data.resize(w as usize * h as usize * 3, 0);
    r.read_exact(data).map_err(|e| format!("truncated PPM frame: {e}"))?;
    Ok(Some((w, h)))
}

/// Crop one box of an RGB frame through odm-core's preprocessing into an RGB image of `spec`'s size.
pub fn crop(frame: &Frame<'_>, r: &RoiLine, spec: &CropSpec, buf: &mut [f32]) -> Option<image::RgbImage> {
    let roi = Roi { x: r.x.round() as i64, y: r.y.round() as i64, w: r.w.round() as i64, h: r.h.round() as i64 };
    crop_to_tensor(frame, roi, spec, buf).ok()?;
    let (w, h) = (spec.width as usize, spec.height as usize);
    let n = &spec.norm;
    let mut img = image::RgbImage::new(spec.width, spec.height);
    for (i, p) in img.pixels_mut().enumerate() {
        let (y, x) = (i / w, i % w);
        *p = image::Rgb(std::array::from_fn(|c| {
            let v = buf[c * w * h + y * w + x] * n.std[c] + n.mean[c];
            (v * 255.0).round().clamp(0.0, 255.0) as u8
        }));
    }
    Some(img)
}

/// Decode `clip` with GStreamer (decodebin as [`gst_decode`] sets it up, RGB) and call `f` with each frame's index and
/// pixels, in order; returns the number of frames. A clip that does not decode (or gives no frame) is an error naming
/// it.
pub fn for_each_frame(
    clip: &Path,
    mut f: impl FnMut(u64, &Frame<'_>) -> Result<(), TrainError>,
) -> Result<u64, TrainError> {
    let mut child = gst_decode()
        .arg("-q")
        .args(["filesrc", &format!("location={}", clip.display()), "!", "decodebin", "!", "videoconvert", "!"])
        .args(["video/x-raw,format=RGB", "!", "pnmenc", "!", "fdsink", "fd=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| TrainError::Asset(format!("cannot start gst-launch-1.0 (run scripts/bootstrap.sh): {e}")))?;
    let mut stdout = BufReader::with_capacity(1 << 20, child.stdout.take().expect("piped"));
    let mut frame_no = 0u64;
    let mut data = Vec::new();
    let mut failed = None;
    let decode_error = loop {
        let (w, h) = match read_ppm(&mut stdout, &mut data) {
            Ok(Some(f)) => f,
            Ok(None) => break None,
            Err(e) => break Some(e),
        };
        let frame =
            Frame::new(PixelFormat::Rgb, w, h, &[Plane { data: &data, stride: 3 * w as usize }], YuvMatrix::Bt601)
                .map_err(|e| TrainError::Config(format!("{}: frame {frame_no}: {e}", clip.display())));
        if let Err(e) = frame.and_then(|frame| f(frame_no, &frame)) {
            failed = Some(e);
            break None;
        }
        frame_no += 1;
    };
    drop(stdout);
    if failed.is_some() {
        // Stopped early by `f`: the rest of the clip is not wanted.
        let _ = child.kill();
    }
    let out = child.wait_with_output().map_err(|e| TrainError::Asset(format!("gst-launch-1.0: {e}")))?;
    if let Some(e) = failed {
        return Err(e);
    }
    if !out.status.success() || frame_no == 0 || decode_error.is_some() {
        let why = decode_error.unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned());
        return Err(gst_error("the clip does not decode", clip, &why));
    }
    Ok(frame_no)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppm_stream_reads_frame_after_frame() {
        let mut bytes = b"P6\n2 1\n255\n".to_vec();
        bytes.extend([1, 2, 3, 4, 5, 6]);
        bytes.extend(b"P6 # a comment\n1 1 255\n");
        bytes.extend([7, 8, 9]);
        let mut r = std::io::Cursor::new(bytes);
        let mut data = Vec::new();
        assert_eq!(read_ppm(&mut r, &mut data).unwrap(), Some((2, 1)));
        assert_eq!(data, [1, 2, 3, 4, 5, 6]);
        assert_eq!(read_ppm(&mut r, &mut data).unwrap(), Some((1, 1)));
        assert_eq!(data, [7, 8, 9]);
        assert_eq!(read_ppm(&mut r, &mut data).unwrap(), None);
        let mut short = std::io::Cursor::new(b"P6\n2 2\n255\n\x01\x02".to_vec());
        assert!(read_ppm(&mut short, &mut data).unwrap_err().contains("truncated"));
    }
}
