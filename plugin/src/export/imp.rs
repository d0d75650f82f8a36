// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmexport` implementation: a pass-through BaseTransform that writes a JSON line per buffer.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use crate::meta::{self, Outcome};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("odmexport", gst::DebugColorFlags::empty(), Some("odm results to JSON lines"))
});

#[derive(Debug, Clone, Default)]
struct Settings {
    location: Option<PathBuf>,
}

struct State {
    out: BufWriter<File>,
    path: PathBuf,
    frame: u64,
}

#[derive(Default)]
pub struct OdmExport {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for OdmExport {
    const NAME: &'static str = "GstOdmExport";
    type Type = super::OdmExport;
    type ParentType = gst_base::BaseTransform;
}

/// One ROI of a frame as exported.
#[derive(serde::Serialize)]
struct RoiLine<'a> {
    id: i32,
    #[serde(rename = "type")]
    roi_type: &'a str,
    x: u32,
    y: u32,
    w: u32,
    h: u32,
    class_id: Option<i32>,
    label: Option<&'a str>,
    distance: Option<f64>,
    /// known, novelty, anomaly, skipped, or null when no classifier saw this ROI.
    verdict: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
}

/// One frame as exported.
#[derive(serde::Serialize)]
struct FrameLine<'a> {
    frame: u64,
    pts: Option<u64>,
    rois: Vec<RoiLine<'a>>,
}

impl OdmExport {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn flush(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(st) = self.lock_state().as_mut() {
            st.out
                .flush()
                .map_err(|e| gst::error_msg!(gst::ResourceError::Write, ("cannot write {}: {e}", st.path.display())))?;
        }
        Ok(())
    }
}

impl ObjectImpl for OdmExport {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![glib::ParamSpecString::builder("location")
                .nick("Location")
                .blurb("Path of the JSON-lines file to write (created or truncated at start)")
                .mutable_ready()
                .build()]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if !crate::props::settable(&*self.obj(), pspec) {
            return;
        }
        let mut s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        s.location = value.get::<Option<String>>().ok().flatten().filter(|p| !p.is_empty()).map(PathBuf::from);
    }

    fn property(&self, _id: usize, _pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        s.location.as_ref().map(|p| p.display().to_string()).to_value()
    }
}

impl GstObjectImpl for OdmExport {}

impl ElementImpl for OdmExport {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "odm results export",
                "Filter/Analyzer/Video",
                "Writes one JSON line per frame: pts, frame number and every ROI with its box, type, id, class, \
                 label, distance and verdict",
                "odm developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::new_any();
            crate::video::filter_templates(&caps)
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for OdmExport {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = true;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = true;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let location = self.settings.lock().unwrap_or_else(|e| e.into_inner()).location.clone();
        let Some(path) = location else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("no location set: set the `location` property")
            ));
        };
        let file = File::create(&path)
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenWrite, ("cannot write {}: {e}", path.display())))?;
        gst::info!(CAT, imp = self, "writing {}", path.display());
        *self.lock_state() = Some(State { out: BufWriter::new(file), path, frame: 0 });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let r = self.flush();
        *self.lock_state() = None;
        r
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view() {
            if let Err(e) = self.flush() {
                self.post_error_message(e);
            }
        }
        self.parent_sink_event(event)
    }

    fn transform_ip_passthrough(&self, buf: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let entries = meta::results_by_roi(buf);
        let mut guard = self.lock_state();
        let Some(st) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let rois = entries
            .iter()
            .map(|e| {
                let (class_id, label, distance, reason) = match e.result.as_ref().map(|r| &r.outcome) {
                    Some(Outcome::Classified { class_id, label, distance, .. }) => {
                        (Some(*class_id), Some(label.as_str()), Some(*distance), None)
                    }
                    Some(Outcome::Skipped { reason }) => (None, None, None, Some(reason.as_str())),
                    None => (None, None, None, None),
                };
                RoiLine {
                    id: e.id,
                    roi_type: &e.roi_type,
                    x: e.rect.0,
                    y: e.rect.1,
                    w: e.rect.2,
                    h: e.rect.3,
                    class_id,
                    label,
                    distance,
                    verdict: e.result.as_ref().map(|r| r.verdict_str()),
                    reason,
                    model: e.result.as_ref().map(|r| r.model.as_str()),
                }
            })
            .collect();
        let line = FrameLine { frame: st.frame, pts: buf.pts().map(|t| t.nseconds()), rois };
        st.frame += 1;
        let text = serde_json::to_string(&line).expect("plain data serialises");
        if let Err(e) = writeln!(st.out, "{text}") {
            let path = st.path.display().to_string();
            drop(guard);
            gst::element_imp_error!(self, gst::ResourceError::Write, ("cannot write {path}: {e}"));
            return Err(gst::FlowError::Error);
        }
        Ok(gst::FlowSuccess::Ok)
    }
}
