// SPDX-License-Identifier: MIT OR Apache-2.0
//! No ONNX Runtime library anywhere: a clear error naming every place looked in. Its own test binary (its own
//! process), because a process keeps the first ONNX Runtime it loads.

mod common;

use common::*;

#[test]
fn library_missing_names_every_candidate() {
    // Before GStreamer starts any thread: hide the bootstrap folder and the environment variable.
    std::env::set_var("ODM_ORT_DIR", "/nonexistent/odm-ort");
    std::env::remove_var("ORT_DYLIB_PATH");
    let not_a_library = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_a_library.path(), b"not a shared object").unwrap();
    let err = run_launch(&format!(
        "videotestsrc num-buffers=1 ! odmclassify mode=frame model={} ort-library={} ! fakesink",
        colors_model(),
        not_a_library.path().display()
    ))
    .unwrap_err();
    for part in [
        "no usable ONNX Runtime library",
        "(property ort-library)",
        &not_a_library.path().display().to_string(),
        "/nonexistent/odm-ort/libonnxruntime.so (bootstrap folder from ODM_ORT_DIR): no such file",
        "libonnxruntime.so.1 (system loader path)",
    ] {
        assert!(err.contains(part), "error does not mention {part:?}: {err}");
    }
}
