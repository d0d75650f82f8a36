// SPDX-License-Identifier: MIT OR Apache-2.0
fn main() {
    // Where scripts/bootstrap.sh puts the ONNX Runtime library: one of the places looked at (see lib.rs).
    let dir = std::env::var("ODM_ORT_DIR").unwrap_or_else(|_| {
        let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        let root = std::path::Path::new(&manifest).parent().expect("the runtime crate lives in the workspace");
        root.join(".deps/onnxruntime").display().to_string()
    });
    println!("cargo:rerun-if-env-changed=ODM_ORT_DIR");
    // The path is the checkout's: a checkout elsewhere sharing this target folder (CI reuses one across clones) must
    // run this again. Its files are newer than the last build, so this file's date says so; without a file listed,
    // the env line above would be the only reason cargo reruns this and the old checkout's path would stay baked in.
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-env=ODM_BOOTSTRAP_ORT_LIBRARY={dir}/libonnxruntime.so");
}
