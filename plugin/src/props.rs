// SPDX-License-Identifier: MIT OR Apache-2.0
//! The state rule every odm element applies to its properties.

use gst::glib;
use gst::prelude::*;

/// Whether `pspec` may be set on `element` now. A property without `GST_PARAM_MUTABLE_PLAYING` changes only in NULL
/// or READY; asked later, the element posts a warning naming it, and the caller keeps the old value.
pub fn settable(element: &impl IsA<gst::Element>, pspec: &glib::ParamSpec) -> bool {
    if pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING) || element.current_state() <= gst::State::Ready {
        return true;
    }
    gst::element_warning!(
        element,
        gst::CoreError::StateChange,
        (
            "property {} can only change in NULL or READY; ignored (the element is {:?}: the old value stays)",
            pspec.name(),
            format!("{:?}", element.current_state()).to_uppercase()
        )
    );
    false
}
