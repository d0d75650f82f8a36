// SPDX-License-Identifier: MIT OR Apache-2.0
//! End-to-end tests live in `tests/*.rs`; this library only helps them find the built plugin and the tools.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The cargo target folder of the running test (`target/<profile>`), where `libgstodm.so` is built.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    exe.parent().and_then(|deps| deps.parent()).expect("test runs from target/<profile>/deps").to_owned()
}

/// The built plugin, checked to exist.
pub fn plugin_dir() -> PathBuf {
    let dir = target_dir();
    assert!(
        dir.join("libgstodm.so").exists(),
        "{} has no libgstodm.so: build the plugin first (cargo build -p gst-plugin-odm)",
        dir.display()
    );
    dir
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A GStreamer tool (gst-launch-1.0, gst-inspect-1.0, or a script of `pipelines/` that runs them) that sees only the
/// built odm plugin besides the system ones, with a private registry so a stale cache never hides a rebuilt plugin.
pub fn gst_tool(tool: impl AsRef<std::ffi::OsStr>, registry: &Path) -> Command {
    let mut c = Command::new(tool);
    c.env("GST_PLUGIN_PATH", plugin_dir()).env("GST_REGISTRY", registry).env_remove("GST_PLUGIN_PATH_1_0");
    c
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Run `filesrc location=VIDEO ! decodebin ! videoconvert ! video/x-raw,format=FORMAT ! odmroireplay location=ROIS !
/// odmclassify model=MODEL ! odmexport location=OUT ! fakesink` through gst-launch-1.0, to the end (the registry is
/// kept beside OUT).
pub fn classify_clip(video: &Path, rois: &Path, model: &Path, format: &str, out: &Path) -> Output {
    gst_tool("gst-launch-1.0", &out.with_extension("registry.bin"))
        .args(["-q", "filesrc", &format!("location={}", video.display()), "!", "decodebin", "!", "videoconvert"])
        .args([
            "!",
            &format!("video/x-raw,format={format}"),
            "!",
            "odmroireplay",
            &format!("location={}", rois.display()),
        ])
        .args(["!", "odmclassify", &format!("model={}", model.display()), "!", "odmexport"])
        .args([&format!("location={}", out.display()), "!", "fakesink"])
        .output()
        .expect("gst-launch-1.0 runs")
}
