// SPDX-License-Identifier: MIT OR Apache-2.0
//! No usable ONNX Runtime library: a clear error naming the library asked for, or every place looked in. Its own
//! test binary (its own process), because a process keeps the first ONNX Runtime it loads.

mod common;

use common::*;

#[test]
fn a_named_library_that_cannot_load_fails_and_nothing_else_is_tried_then_every_candidate_is_named() {
    // Before GStreamer starts any thread: hide the bootstrap folder and the environment variable. One test, so the
    // environment is not changed under another thread.
    std::env::set_var("ODM_ORT_DIR", "/nonexistent/odm-ort");
    std::env::remove_var("ORT_DYLIB_PATH");
    let not_a_library = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_a_library.path(), b"not a shared object").unwrap();
    let line = |lib: &str| {
        format!("videotestsrc num-buffers=1 ! odmclassify mode=frame model={} {lib} ! fakesink", colors_model())
    };
    for lib in [not_a_library.path().display().to_string(), "/nonexistent/gpu/libonnxruntime.so".to_owned()] {
        let err = run_launch(&line(&format!("ort-library={lib}"))).unwrap_err();
        for part in
            [&format!("the ONNX Runtime library {lib} named by property ort-library cannot be used"), "no other"]
        {
            assert!(err.contains(part), "error does not mention {part:?}: {err}");
        }
        assert!(!err.contains("bootstrap folder"), "only the named library is tried: {err}");
    }
    let err = run_launch(&line("")).unwrap_err();
    for part in [
        "no usable ONNX Runtime library",
        "/nonexistent/odm-ort/libonnxruntime.so (bootstrap folder from ODM_ORT_DIR): no such file",
        "libonnxruntime.so.1 (system loader path)",
    ] {
        assert!(err.contains(part), "error does not mention {part:?}: {err}");
    }
}
