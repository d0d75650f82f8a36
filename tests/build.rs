// SPDX-License-Identifier: MIT OR Apache-2.0
//! The end-to-end tests link libtorch through odm-trainer: give them the RPATH tch does not set.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(libtorch) = std::env::var("LIBTORCH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch}/lib");
    }
}
