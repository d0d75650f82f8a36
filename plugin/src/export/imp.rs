// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmexport` implementation: a pass-through BaseTransform that writes a JSON line per buffer.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use super::line::FrameLine;
use crate::meta;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("odmexport", gst::DebugColorFlags::empty(), Some("odm results to JSON lines"))
});

#[derive(Debug, Clone, Default)]
struct Settings {
    location: Option<PathBuf>,
    sync: bool,
}

/// Lines gathered before a write: the file only ever receives whole lines.
const WRITE_CHUNK: usize = 64 * 1024;

/// The open file. Lines gather in `pending` and go to the file whole, a chunk at a time; after a failed write the
/// file is cut back to the last whole line and nothing more is written.
struct Output {
    file: File,
    path: PathBuf,
    pending: Vec<u8>,
    /// Bytes of whole lines the file holds.
    written: u64,
    /// The first write error; once set, the rest of the stream is dropped.
    failed: bool,
}

/// The process's file size limit (`ulimit -f`, RLIMIT_FSIZE) in bytes, None when there is none. It is read before
/// every write because a write that crosses it writes only part of a line and the next write is killed by SIGXFSZ
/// (the process dies, the file keeps a torn line); odmexport stops short of it instead. Read each time: it is one
/// system call per 64 KiB, and another thread of the application may change it.
fn file_size_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Fsize).current
}

impl Output {
    /// Write the gathered lines. On an error the file is truncated to its last whole line (where the file can be
    /// truncated: not on a device such as /dev/full) and the sentence to post is returned. Lines that would take the
    /// file past the file size limit are not written: the whole lines that fit are, then the error names the limit.
    fn write_pending(&mut self) -> Result<(), String> {
        if self.failed {
            return Err(format!("{}: an earlier write failed; nothing more is written", self.path.display()));
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Some(limit) = file_size_limit().filter(|&l| self.written.saturating_add(self.pending.len() as u64) > l) {
            return Err(self.refuse_past_limit(limit));
        }
        match self.file.write_all(&self.pending) {
            Ok(()) => {
                self.written += self.pending.len() as u64;
                self.pending.clear();
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                let lines = self.pending.iter().filter(|&&b| b == b'\n').count();
                self.pending = Vec::new();
                let cut = match self.file.set_len(self.written) {
                    Ok(()) => "the file ends at its last whole line".to_owned(),
                    Err(_) => "the file could not be cut back to its last whole line".to_owned(),
                };
                Err(format!(
                    "cannot write {}: {e}; {lines} lines were lost, {cut}, and the rest of the stream is not written",
                    self.path.display()
                ))
            }
        }
    }

    /// The pending lines would cross the file size limit: write the whole lines that fit below it, drop the rest and
    /// say so.
    fn refuse_past_limit(&mut self, limit: u64) -> String {
        self.failed = true;
        let room = usize::try_from(limit.saturating_sub(self.written)).unwrap_or(usize::MAX).min(self.pending.len());
        let fit = self.pending[..room].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let written = if fit == 0 {
            Ok(())
        } else {
            self.file.write_all(&self.pending[..fit]).map(|()| self.written += fit as u64)
        };
        let lost = self.pending[fit..].iter().filter(|&&b| b == b'\n').count();
        self.pending = Vec::new();
        let cut = match written {
            Ok(()) => "the file ends at its last whole line".to_owned(),
            Err(e) => match self.file.set_len(self.written) {
                Ok(()) => format!("writing the lines that fit failed ({e}); the file ends at its last whole line"),
                Err(_) => format!("writing the lines that fit failed ({e})"),
            },
        };
        format!(
            "cannot write {}: the file size limit (ulimit -f) of {limit} bytes would be crossed; {lost} lines were \
             not written, {cut}, and the rest of the stream is not written",
            self.path.display()
        )
    }

    /// Write what is gathered, then (with `sync`) ask the system to put it on the disk.
    fn finish(&mut self, sync: bool) -> Result<(), String> {
        self.write_pending()?;
        if sync {
            self.file.sync_all().map_err(|e| format!("cannot sync {} to disk: {e}", self.path.display()))?;
        }
        Ok(())
    }
}

struct State {
    out: Output,
    /// Buffers seen so far: the next line's `frame`.
    frame: u64,
    /// The current time segment, to turn a buffer's PTS into its position in the stream (`stream_time`).
    segment: gst::FormattedSegment<gst::ClockTime>,
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

impl OdmExport {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write out what is gathered (at EOS and at stop). A failure is posted as an error once, outside the lock.
    fn finish(&self) {
        let sync = self.settings.lock().unwrap_or_else(|e| e.into_inner()).sync;
        let result = match self.lock_state().as_mut() {
            Some(st) if !st.out.failed => st.out.finish(sync),
            _ => Ok(()),
        };
        if let Err(why) = result {
            gst::element_imp_error!(self, gst::ResourceError::Write, ("{why}"));
        }
    }
}

impl ObjectImpl for OdmExport {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("location")
                    .nick("Location")
                    .blurb("Path of the JSON-lines file to write (created or truncated at start)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("sync")
                    .nick("Sync")
                    .blurb("At EOS and at stop, wait until the file is on the disk (fsync)")
                    .default_value(false)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if !crate::props::settable(&*self.obj(), pspec) {
            return;
        }
        let mut s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        match pspec.name() {
            "location" => {
                s.location = value.get::<Option<String>>().ok().flatten().filter(|p| !p.is_empty()).map(PathBuf::from)
            }
            "sync" => s.sync = value.get().expect("type checked upstream"),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        match pspec.name() {
            "location" => s.location.as_ref().map(|p| p.display().to_string()).to_value(),
            "sync" => s.sync.to_value(),
            other => unreachable!("unknown property {other}"),
        }
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
                 label, distance, confidence, verdict and category",
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
        let out = Output { file, path, pending: Vec::with_capacity(WRITE_CHUNK), written: 0, failed: false };
        *self.lock_state() = Some(State { out, frame: 0, segment: gst::FormattedSegment::new() });
        Ok(())
    }

    /// Never fails: a write error here is posted, and the element still reaches READY and NULL (a failing stop
    /// would leave the pipeline stuck in PAUSED).
    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.finish();
        *self.lock_state() = None;
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Eos(_) => self.finish(),
            gst::EventView::Segment(e) => {
                if let (Some(st), Ok(seg)) =
                    (self.lock_state().as_mut(), e.segment().clone().downcast::<gst::ClockTime>())
                {
                    st.segment = seg;
                }
            }
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn transform_ip_passthrough(&self, buf: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let entries = meta::results_by_roi(buf);
        let mut guard = self.lock_state();
        let Some(st) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        if st.out.failed {
            // The error was posted when the write failed; the rest of the stream is dropped.
            return Err(gst::FlowError::Error);
        }
        let line = FrameLine::new(buf, &entries, st.frame, &st.segment);
        st.frame += 1;
        let whole = st.out.pending.len();
        if let Err(e) = serde_json::to_writer(&mut st.out.pending, &line) {
            // Plain data always serialises; should it not, the torn line is not written.
            st.out.pending.truncate(whole);
            drop(guard);
            gst::element_imp_error!(self, gst::CoreError::Failed, ("cannot write a JSON line: {e}"));
            return Err(gst::FlowError::Error);
        }
        st.out.pending.push(b'\n');
        if st.out.pending.len() < WRITE_CHUNK {
            return Ok(gst::FlowSuccess::Ok);
        }
        if let Err(why) = st.out.write_pending() {
            drop(guard);
            gst::element_imp_error!(self, gst::ResourceError::Write, ("{why}"));
            return Err(gst::FlowError::Error);
        }
        Ok(gst::FlowSuccess::Ok)
    }
}
