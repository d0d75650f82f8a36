// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmroireplay` implementation: an in-place BaseTransform that adds ROI metas from a file read at start.

use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::VideoRegionOfInterestMeta;

use super::parse::{self, LineRecord, RoiRecord};
use super::Match;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("odmroireplay", gst::DebugColorFlags::empty(), Some("odm recorded ROI replay"))
});

/// ROI type given to recorded ROIs that name none.
pub const DEFAULT_TYPE: &str = "traffic-sign";
/// Name of the param structure carrying a recorded ROI's label (ground truth), when the file gives one.
pub const TRUTH_PARAM: &str = "odm-truth";
const DEFAULT_TOLERANCE: u64 = 1_000_000;

#[derive(Debug, Clone)]
struct Settings {
    location: Option<PathBuf>,
    matching: Match,
    tolerance: u64,
    strict: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { location: None, matching: Match::Auto, tolerance: DEFAULT_TOLERANCE, strict: true }
    }
}

/// The ROIs of one recorded frame.
struct Entry {
    key: u64,
    line: usize,
    rois: Vec<RoiRecord>,
    used: bool,
}

struct State {
    entries: Vec<Entry>,
    path: PathBuf,
    /// The match in force (`auto` resolved at start).
    matching: Match,
    /// The index of the next buffer (match=frame).
    frame: u64,
    info: Option<gst_video::VideoInfo>,
    /// The current time segment, to turn a buffer's PTS into stream time.
    segment: gst::FormattedSegment<gst::ClockTime>,
    /// Stream time of frame 0: the first buffer's.
    origin: Option<gst::ClockTime>,
    /// A new segment came after buffers (a seek): the next buffer's index is computed from its stream time.
    resync: bool,
    /// A seek happened: frames it skipped are not reported as never come.
    seeked: bool,
}

#[derive(Default)]
pub struct OdmRoiReplay {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for OdmRoiReplay {
    const NAME: &'static str = "GstOdmRoiReplay";
    type Type = super::OdmRoiReplay;
    type ParentType = gst_base::BaseTransform;
}

/// The name of the field a match reads, and the sentence for a line without it.
fn key_of(matching: Match, rec: &LineRecord) -> Option<u64> {
    match matching {
        Match::Frame => rec.frame,
        Match::Pts => rec.pts,
        Match::StreamTime | Match::Auto => rec.stream_time,
    }
}

fn key_name(matching: Match) -> &'static str {
    match matching {
        Match::Frame => "frame",
        Match::Pts => "pts",
        Match::StreamTime | Match::Auto => "stream_time",
    }
}

/// What `load` read: the entries sorted by key, the match in force (`auto` resolved) and the lines skipped.
struct Loaded {
    entries: Vec<Entry>,
    matching: Match,
    skipped: Vec<String>,
}

/// Read and check the whole file. Strict: the first bad line is the error. Otherwise bad lines are skipped and
/// returned as warnings, each naming its line. The file is read as bytes and each line checked on its own, so a
/// byte that is not UTF-8 is a bad line like any other.
fn load(path: &Path, asked: Match, strict: bool) -> Result<Loaded, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut records = Vec::new();
    let mut skipped = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse::line(line) {
            Ok(rec) => records.push((i + 1, rec)),
            Err(e) if strict => return Err(format!("{}:{}: {e}", path.display(), i + 1)),
            Err(e) => skipped.push(format!("{}:{}: {e}", path.display(), i + 1)),
        }
    }
    let matching = match asked {
        Match::Auto if !records.is_empty() && records.iter().all(|(_, r)| r.stream_time.is_some()) => Match::StreamTime,
        Match::Auto => Match::Frame,
        m => m,
    };
    let name = key_name(matching);
    let why = if asked == Match::Auto {
        "match=auto reads \"frame\" when a line has no \"stream_time\"".to_owned()
    } else {
        format!("match={name}").replace('_', "-")
    };
    let mut entries: Vec<Entry> = Vec::new();
    for (line, rec) in records {
        match key_of(matching, &rec) {
            Some(key) => entries.push(Entry { key, line, rois: rec.rois, used: false }),
            None => {
                let msg = format!("{}:{line}: no \"{name}\" ({why})", path.display());
                if strict {
                    return Err(msg);
                }
                skipped.push(msg);
            }
        }
    }
    entries.sort_by_key(|e| e.key);
    if let Some(w) = entries.windows(2).find(|w| w[0].key == w[1].key) {
        let msg = format!("{}:{}: {name} {} already given on line {}", path.display(), w[1].line, w[1].key, w[0].line);
        if strict {
            return Err(msg);
        }
        skipped.push(msg);
        entries.dedup_by_key(|e| e.key);
    }
    Ok(Loaded { entries, matching, skipped })
}

/// The entry whose key is nearest to `t`, within `tolerance`.
fn nearest(entries: &[Entry], t: u64, tolerance: u64) -> Option<usize> {
    let i = entries.partition_point(|e| e.key < t);
    [i.checked_sub(1), Some(i)]
        .into_iter()
        .flatten()
        .filter(|&j| j < entries.len() && entries[j].key.abs_diff(t) <= tolerance)
        .min_by_key(|&j| entries[j].key.abs_diff(t))
}

impl OdmRoiReplay {
    fn lock_settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Say which recorded frames never came (at EOS).
    fn report_unused(&self) {
        let guard = self.lock_state();
        let Some(st) = guard.as_ref() else { return };
        if st.seeked {
            gst::info!(CAT, imp = self, "a seek skipped frames: recorded frames that never came are not reported");
            return;
        }
        let unused: Vec<&Entry> = st.entries.iter().filter(|e| !e.used).collect();
        if let Some(first) = unused.first() {
            let msg = format!(
                "{}: ROIs recorded for {} of {} frames never came (first: line {}, key {})",
                st.path.display(),
                unused.len(),
                st.entries.len(),
                first.line,
                first.key
            );
            drop(guard);
            gst::warning!(CAT, imp = self, "{msg}");
            gst::element_imp_warning!(self, gst::StreamError::Demux, ("{msg}"));
        }
    }
}

impl ObjectImpl for OdmRoiReplay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("location")
                    .nick("Location")
                    .blurb(
                        "JSON-lines file, one line per frame: {\"frame\": N or \"pts\": NS, \"rois\": [{\"x\", \"y\", \
                         \"w\", \"h\", \"type\"?, \"id\"?, \"label\"?}]}",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("match", Match::Auto)
                    .nick("Match")
                    .blurb(
                        "Match lines to buffers by frame index, by PTS, or by stream position (odmexport's \
                         `stream_time`); auto: by stream position when every line has one, else by frame index",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("tolerance")
                    .nick("Tolerance")
                    .blurb(
                        "Largest difference between a line's time and the buffer's that still matches, in \
                         nanoseconds (match=pts and match=stream-time)",
                    )
                    .default_value(DEFAULT_TOLERANCE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("strict")
                    .nick("Strict")
                    .blurb("A bad line is an error (true) or is skipped with a warning (false)")
                    .default_value(true)
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
        let mut s = self.lock_settings();
        match pspec.name() {
            "location" => {
                s.location = value.get::<Option<String>>().ok().flatten().filter(|p| !p.is_empty()).map(PathBuf::from)
            }
            "match" => s.matching = value.get().expect("type checked upstream"),
            "tolerance" => s.tolerance = value.get().expect("type checked upstream"),
            "strict" => s.strict = value.get().expect("type checked upstream"),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.lock_settings();
        match pspec.name() {
            "location" => s.location.as_ref().map(|p| p.display().to_string()).to_value(),
            "match" => s.matching.to_value(),
            "tolerance" => s.tolerance.to_value(),
            "strict" => s.strict.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for OdmRoiReplay {}

impl ElementImpl for OdmRoiReplay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "odm ROI replay",
                "Filter/Video",
                "Adds region-of-interest metas recorded in a JSON-lines file (a detector's output or ground truth)",
                "odm developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new().build();
            crate::video::filter_templates(&caps)
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for OdmRoiReplay {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = self.lock_settings().clone();
        let Some(path) = s.location else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("no location set: set the `location` property")
            ));
        };
        let Loaded { entries, matching, skipped } = load(&path, s.matching, s.strict).map_err(|e| {
            let kind = if path.is_file() { gst::ResourceError::Read } else { gst::ResourceError::NotFound };
            gst::error_msg!(kind, ("{e}"))
        })?;
        if let Some(first) = skipped.first() {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Decode,
                ("{} bad lines skipped (strict=false); first: {first}", skipped.len())
            );
        }
        if entries.is_empty() {
            let why = if skipped.is_empty() { "it holds no line" } else { "every line was skipped" };
            gst::element_imp_warning!(
                self,
                gst::StreamError::Decode,
                ("{}: no recorded frames ({why}): no ROI will be added", path.display())
            );
        }
        gst::info!(CAT, imp = self, "{} recorded frames from {}, match={matching:?}", entries.len(), path.display());
        *self.lock_state() = Some(State {
            entries,
            path,
            matching,
            frame: 0,
            info: None,
            segment: gst::FormattedSegment::new(),
            origin: None,
            resync: false,
            seeked: false,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.lock_state() = None;
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = crate::video::info_from_caps(*CAT, incaps)?;
        if let Some(st) = self.lock_state().as_mut() {
            st.info = Some(info);
        }
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Eos(_) => self.report_unused(),
            gst::EventView::Segment(e) => {
                if let Some(st) = self.lock_state().as_mut() {
                    if let Ok(seg) = e.segment().clone().downcast::<gst::ClockTime>() {
                        st.segment = seg;
                    }
                    // After buffers have flowed, a new segment is a seek (or a loop): match=frame re-finds its place.
                    if st.origin.is_some() {
                        st.resync = true;
                        st.seeked = true;
                    }
                }
            }
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let tolerance = self.lock_settings().tolerance;
        let mut guard = self.lock_state();
        let Some(st) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let matching = st.matching;
        let stream_time = buf.pts().and_then(|pts| st.segment.to_stream_time(pts));
        if st.origin.is_none() {
            st.origin = stream_time.or(Some(gst::ClockTime::ZERO));
        }
        if std::mem::take(&mut st.resync) && matching == Match::Frame {
            // The frame index from stream time and frame rate, counted from the first buffer's stream time.
            let fps = st.info.as_ref().map(|i| i.fps()).filter(|f| f.numer() > 0 && f.denom() > 0);
            match (stream_time, st.origin, fps) {
                (Some(t), Some(t0), Some(fps)) => {
                    let secs = t.saturating_sub(t0).nseconds() as f64 / 1e9;
                    st.frame = (secs * fps.numer() as f64 / fps.denom() as f64).round() as u64;
                    gst::debug!(CAT, imp = self, "after a seek: stream time {t}, frame {}", st.frame);
                }
                _ => {
                    let msg = format!(
                        "{}: after a seek, match=frame cannot tell which frame comes next (the stream has no frame \
                         rate or the buffer no time); ROIs may land on the wrong frames: use match=pts",
                        st.path.display()
                    );
                    drop(guard);
                    gst::warning!(CAT, imp = self, "{msg}");
                    gst::element_imp_warning!(self, gst::StreamError::Demux, ("{msg}"));
                    guard = self.lock_state();
                }
            }
        }
        let Some(st) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let index = st.frame;
        st.frame += 1;
        let found = match matching {
            Match::Frame => st.entries.binary_search_by_key(&index, |e| e.key).ok(),
            Match::Pts => buf.pts().and_then(|pts| nearest(&st.entries, pts.nseconds(), tolerance)),
            Match::StreamTime | Match::Auto => stream_time.and_then(|t| nearest(&st.entries, t.nseconds(), tolerance)),
        };
        let Some(i) = found else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let (fw, fh) = st.info.as_ref().map_or((u32::MAX, u32::MAX), |i| (i.width(), i.height()));
        let entry = &mut st.entries[i];
        entry.used = true;
        // ROIs recorded without an id get ones no ROI meta of the buffer has, nor any recorded id of this frame.
        let mut taken: Vec<i32> = buf.iter_meta::<VideoRegionOfInterestMeta>().map(|m| m.id()).collect();
        taken.extend(entry.rois.iter().filter_map(|r| r.id));
        taken.sort_unstable();
        let mut fresh = crate::meta::fresh_ids(&taken);
        for r in &entry.rois {
            // Clip to the frame: the meta holds unsigned coordinates. A box wholly outside keeps a zero size, so a
            // classifier still reports it (as outside the frame) instead of it vanishing.
            let (x0, y0) = (r.x.round().max(0.0).min(fw as f64) as u32, r.y.round().max(0.0).min(fh as f64) as u32);
            let x1 = (r.x + r.w).round().max(0.0).min(fw as f64) as u32;
            let y1 = (r.y + r.h).round().max(0.0).min(fh as f64) as u32;
            let t = r.roi_type.as_deref().unwrap_or(DEFAULT_TYPE);
            let mut m = VideoRegionOfInterestMeta::add(buf, t, (x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0)));
            let id = r.id.or_else(|| fresh.next()).unwrap_or(0);
            m.set_id(id);
            if let Some(label) = &r.label {
                m.add_param(gst::Structure::builder(TRUTH_PARAM).field("label", label.as_str()).build());
            }
        }
        gst::log!(CAT, imp = self, "frame {index}: {} ROIs from line {}", entry.rois.len(), entry.line);
        Ok(gst::FlowSuccess::Ok)
    }
}
