// SPDX-License-Identifier: MIT OR Apache-2.0
//! Embeds the vendored scenes (assets/scenes/*; the font is odm-core's, `odm_core::font`) into odm-train, so the synthetic generator works
//! offline from any folder and gives the same bytes everywhere. The sign designs are not vendored: see
//! scripts/designs.sh.
use std::fmt::Write;
use std::path::Path;

fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".LICENSE") && !n.ends_with(".md"))
        .collect();
    names.sort();
    names
}

fn main() {
    // tch links libtorch without an RPATH: embed one so odm-train runs without LD_LIBRARY_PATH.
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(libtorch) = std::env::var("LIBTORCH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch}/lib");
    }
    // Without this, a tch binary links only libtorch_cpu and cannot see a GPU ("Could not run
    // 'aten::empty.memory_format' with arguments from the 'CUDA' backend").
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let manifest = Path::new(&manifest);
    let mut code = String::new();
    for (konst, dir) in [("SCENES", manifest.join("assets/scenes"))] {
        println!("cargo:rerun-if-changed={}", dir.display());
        writeln!(code, "pub static {konst}: &[(&str, &[u8])] = &[").unwrap();
        for name in list(&dir) {
            let path = dir.join(&name);
            writeln!(code, "    ({name:?}, include_bytes!({:?})),", path.display().to_string()).unwrap();
        }
        writeln!(code, "];").unwrap();
    }
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("assets.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}
