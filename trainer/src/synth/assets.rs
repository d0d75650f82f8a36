// SPDX-License-Identifier: MIT OR Apache-2.0
//! The vendored assets, embedded at build time (see build.rs and assets/LICENSES.md).

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// An embedded asset by file name.
pub fn get(set: &'static [(&'static str, &'static [u8])], name: &str) -> Option<&'static [u8]> {
    set.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}
