// SPDX-License-Identifier: MIT OR Apache-2.0
//! gst-plugin-odm: open-set traffic-sign classification for GStreamer.
//!
//! Elements: `odmclassify` (the classifier), `odmroireplay` (recorded ROIs in), `odmexport` (JSON lines out),
//! `odmpublish` (results to an MQTT broker), `odmoverlay` (boxes and labels drawn into the frames), `odmproposals` (a
//! fast colour/shape sign-proposal detector), `odmdetect` (any ONNX detector), `odmtrack` (stable ids). Results travel
//! as `odm` params on `GstVideoRegionOfInterestMeta` and in the `OdmResultsMeta` custom meta (see [`meta`]).
#![allow(clippy::non_send_fields_in_send_ty)]

use gst::glib;

pub mod classify;
pub mod detect;
pub mod engine;
pub mod export;
pub mod meta;
pub mod overlay;
pub mod proposals;
pub mod props;
pub mod publish;
pub mod replay;
pub mod track;
/// The ONNX Runtime library lookup (the `odm-runtime` crate, shared with the trainer).
pub use odm_runtime as runtime;
pub mod video;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    meta::register();
    classify::register(plugin)?;
    detect::register(plugin)?;
    replay::register(plugin)?;
    export::register(plugin)?;
    overlay::register(plugin)?;
    proposals::register(plugin)?;
    track::register(plugin)?;
    publish::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    odm,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    // odm is MIT OR Apache-2.0 (LICENSE-MIT, LICENSE-APACHE). GStreamer refuses to load a plugin whose licence is
    // not on its fixed list, which has no Apache-2.0 and no dual licences: the plugin states the MIT half.
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
