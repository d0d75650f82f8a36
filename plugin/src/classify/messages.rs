// SPDX-License-Identifier: MIT OR Apache-2.0
//! How odmclassify speaks: its debug category, and bus messages (logged too) that are built while a lock is held and
//! posted once none is (a sync bus handler runs in the posting thread, and may set properties that take the locks).

use std::sync::LazyLock;

use gst::prelude::*;
use gst_base::prelude::*;

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("odmclassify", gst::DebugColorFlags::empty(), Some("odm open-set sign classifier"))
});

/// The element, as every part of odmclassify sees it.
pub(super) type Obj = gst_base::BaseTransform;

/// A bus message for an error, logged too.
pub(super) fn error(obj: &Obj, domain: impl gst::MessageErrorDomain, text: &str) -> gst::Message {
    gst::error!(CAT, obj = obj, "{text}");
    gst::message::Error::builder(domain, text).src(obj).build()
}

/// A bus message for a warning, logged too.
pub(super) fn warning(obj: &Obj, domain: impl gst::MessageErrorDomain, text: &str) -> gst::Message {
    gst::warning!(CAT, obj = obj, "{text}");
    gst::message::Warning::builder(domain, text).src(obj).build()
}

/// A bus message for information, logged too.
pub(super) fn info(obj: &Obj, domain: impl gst::MessageErrorDomain, text: &str) -> gst::Message {
    gst::info!(CAT, obj = obj, "{text}");
    gst::message::Info::builder(domain, text).src(obj).build()
}

/// Post messages gathered under a lock; call with no lock held. `odm-drift` also goes downstream as an event (only
/// a frame's second half makes it: on the streaming thread or under the stream lock).
pub(super) fn post_all(obj: &Obj, posts: Vec<gst::Message>) {
    for m in posts {
        if let Some(drift) = super::stats::drift_event(&m) {
            let _ = obj.src_pad().push_event(drift);
        }
        let _ = obj.post_message(m);
    }
}
