// SPDX-License-Identifier: MIT OR Apache-2.0
//! The mined hard negatives of a drive do not depend on the machine: `odm-train clip` gives the same MP4 and ROIs,
//! and `odm-train mine --proposals` the same manifest and crops, with one CPU or all of them, one rayon thread or two,
//! ORC's compiled or plain-C code, and another H.264 decoder ranked above libav's (as a hardware decoder is; mine
//! must still decode with libav). x264 chooses its SIMD routines from the CPU: the clip's are pinned at SSSE3, and
//! every level from SSSE3 up must give the same stream.

use std::path::{Path, PathBuf};

use odm_e2e::*;
use odm_trainer::synth::clip::{self, ClipConfig};
use odm_trainer::synth::mp4;

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// How a command is run: with all CPUs or on one, `RAYON_NUM_THREADS`, ORC's plain-C code, and a H.264 decoder
/// that decodebin would take before libav's.
struct Setting {
    one_cpu: bool,
    rayon: &'static str,
    orc_backup: bool,
    other_decoder_first: bool,
}

const ALL: Setting = Setting { one_cpu: false, rayon: "2", orc_backup: false, other_decoder_first: false };
const ONE: Setting = Setting { one_cpu: true, rayon: "1", orc_backup: true, other_decoder_first: true };

/// The first CPU this process may run on (`Cpus_allowed_list`, e.g. `0-1` or `3,5`), for `taskset -c`.
fn first_cpu() -> String {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).expect("Cpus_allowed_list");
    list.trim().split([',', '-']).next().expect("a CPU").to_owned()
}

/// `odm-train ARGS` under `how`, with the built plugin and a registry of its own in `dir` (a rank set by
/// `GST_PLUGIN_FEATURE_RANK` stays out of the other runs' registries).
fn odm_train(args: &[&str], how: &Setting, dir: &Path) -> std::process::Output {
    let exe = target_dir().join("odm-train");
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let reg = dir.join(format!("registry-{}.bin", RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let mut c = if how.one_cpu {
        let mut c = gst_tool("taskset", &reg);
        c.args(["-c", &first_cpu()]).arg(exe);
        c
    } else {
        gst_tool(exe, &reg)
    };
    c.args(args).env("RAYON_NUM_THREADS", how.rayon);
    if how.orc_backup {
        c.env("ORC_CODE", "backup");
    }
    if how.other_decoder_first {
        // Above avdec_h264 (primary, 256), as a hardware decoder would be; openh264dec decodes these drives otherwise.
        c.env("GST_PLUGIN_FEATURE_RANK", "openh264dec:512");
    }
    let out = c.output().expect("odm-train runs");
    assert!(out.status.success(), "odm-train {args:?}: {}", text(&out));
    out
}

/// Every file under `dir` (relative path, bytes), sorted by path.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).expect("readable folder") {
            let p = e.expect("folder entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).expect("under root").to_owned();
                out.push((rel, std::fs::read(&p).expect("readable file")));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The H.264 stream x264 makes of the decoded frames of `video` with the clip's encoder settings and x264's `asm`.
fn encode(video: &Path, cfg: &ClipConfig, asm: &str, out: &Path) -> Vec<u8> {
    let run = gst_tool("gst-launch-1.0", &out.with_extension("registry.bin"))
        .args(["-q", "filesrc", &format!("location={}", video.display()), "!", "qtdemux", "!", "h264parse", "!"])
        .args(["avdec_h264", "!"])
        .args(clip::x264enc(cfg, asm))
        .args(["!", "filesink", &format!("location={}", out.display())])
        .output()
        .expect("gst-launch-1.0 runs");
    assert!(run.status.success(), "{}", text(&run));
    std::fs::read(out).expect("the encoded stream")
}

#[test]
fn clip_and_mined_crops_are_the_same_on_any_cpu_count_thread_count_and_simd() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let render = |out: &Path, how: &Setting| {
        let size = ["--seed", "5", "--seconds", "2", "--fps", "15", "--width", "640", "--height", "360"];
        odm_train(&[&["clip", "--out", s(out)][..], &size].concat(), how, d)
    };
    let (a, b) = (d.join("clip-a"), d.join("clip-b"));
    render(&a, &ALL);
    render(&b, &ONE);
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(read(a.join("drive.rois.jsonl")), read(b.join("drive.rois.jsonl")), "the ROIs differ");
    let (mp4_a, mp4_b) = (read(a.join("drive.mp4")), read(b.join("drive.mp4")));
    assert!(mp4_a == mp4_b, "the MP4s differ");
    // mp4mux's wall-clock times are zero in the file (so the equality above does not hang on the two runs' second).
    let mut again = mp4_a.clone();
    assert_eq!(mp4::zero_times(&mut again), Ok(3), "a movie, a track and a media header");
    assert!(again == mp4_a, "the clip's MP4 still holds mp4mux's times");

    // The encoder runs x264's routines up to SSSE3 whatever else the CPU has (`clip::x264_asm`): each level this CPU
    // has gives that stream, and so does x264's own choice. SSE2 alone encodes these frames otherwise: why the routines
    // are pinned, and a CPU without SSSE3 gets a warning.
    let video = a.join("drive.mp4");
    let cfg = ClipConfig { fps: 15, ..Default::default() };
    let stream = |asm: &str| encode(&video, &cfg, asm, &d.join(format!("{asm}.h264")));
    let pinned = stream(clip::x264_asm());
    assert!(stream("auto") == pinned, "x264's own routines encode otherwise than {}", clip::x264_asm());
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        for (level, here) in [("SSE4.2", has!("sse4.2")), ("AVX", has!("avx")), ("AVX2", has!("avx2"))] {
            assert!(!here || stream(level) == pinned, "x264's {level} routines encode otherwise");
        }
        if has!("ssse3") {
            assert!(stream("SSE2") != pinned, "these frames take no SSSE3-only decision: the check shows nothing");
        }
    }

    // Mining the same clip under both settings: the same manifest (which names the clip), the same crops. Without
    // --truth every proposal is mined (more crops to compare; leaving some out by the truth file is plain code).
    let mine =
        |out: &Path, how: &Setting| odm_train(&["mine", "--clip", s(&video), "--proposals", "--out", s(out)], how, d);
    let (ma, mb) = (d.join("mined-a"), d.join("mined-b"));
    let run = mine(&ma, &ALL);
    mine(&mb, &ONE);
    let (fa, fb) = (files(&ma), files(&mb));
    let n = fa.iter().filter(|(p, _)| p.extension().is_some_and(|e| e == "png")).count();
    assert!(n > 0, "nothing mined: {}", text(&run));
    assert_eq!(fa.len(), fb.len(), "{} files against {}", fa.len(), fb.len());
    for ((pa, ba), (pb, bb)) in fa.iter().zip(&fb) {
        assert_eq!(pa, pb);
        assert!(ba == bb, "{} differs", pa.display());
    }
}
