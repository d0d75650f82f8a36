// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmclassify`'s glue: the GObject subclass, its properties, and the BaseTransform virtual methods, each handing
//! its work to the file whose job it is: the synchronous path (sync.rs), frames in flight and their latency timer
//! (inflight.rs), hot reload and live thresholds (reload.rs), the streaming state (state.rs), the counters (stats.rs).
//! What those share is in parts.rs. An in-place BaseTransform that only adds metadata.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::base_transform::GenerateOutputSuccess;
use gst_base::subclass::prelude::*;

use super::inflight::{self, InFlight};
use super::messages::{self, Obj, CAT};
use super::parts::Parts;
use super::reload;
use super::state::State;
use super::stats::Stats;
use super::sync;
use crate::video::pixel_format;

#[derive(Default)]
pub struct OdmClassify {
    /// Settings, streaming state and counters (the latency timer holds them too).
    parts: Arc<Parts>,
    /// With `frames-in-flight`: the frames waiting for the batching service, and the latency timer.
    in_flight: InFlight,
}

#[glib::object_subclass]
impl ObjectSubclass for OdmClassify {
    const NAME: &'static str = "GstOdmClassify";
    type Type = super::OdmClassify;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for OdmClassify {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(super::settings::param_specs);
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let name = pspec.name();
        if !crate::props::settable(&*self.obj(), pspec) {
            return;
        }
        let path =
            |v: &glib::Value| v.get::<Option<String>>().ok().flatten().filter(|s| !s.is_empty()).map(PathBuf::from);
        let obj = self.obj();
        let obj = obj.upcast_ref::<Obj>();
        match name {
            "bundle" => return reload::set_bundle(obj, &self.parts, path(value)),
            "novelty-threshold" | "anomaly-threshold" => {
                return reload::set_threshold(obj, &self.parts, name, value.get().expect("type checked upstream"))
            }
            "reference-ratio" => {
                return reload::set_reference_ratio(obj, &self.parts, value.get().expect("type checked upstream"))
            }
            "category-votes" => {
                return reload::set_category_votes(obj, &self.parts, value.get().expect("type checked upstream"))
            }
            _ => {}
        }
        self.parts.settings().set(name, value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.parts.stats().structure().to_value();
        }
        self.parts.settings().get(pspec.name())
    }
}
impl GstObjectImpl for OdmClassify {}

impl ElementImpl for OdmClassify {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "odm open-set classifier",
                "Filter/Analyzer/Video",
                "Classifies region-of-interest crops with a metric-learning embedding; says whether each is a known \
                 sign, a novelty or an anomaly",
                "odm developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = crate::video::formats_caps();
            crate::video::filter_templates(&caps)
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for OdmClassify {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.parts.settings().clone();
        let obj = self.obj();
        let obj = obj.upcast_ref::<Obj>();
        let mut posts = Vec::new();
        let state = State::load(&settings, obj, &mut posts);
        messages::post_all(obj, posts);
        let state = state?;
        *self.parts.stats() = Stats {
            provider: state.engine.lock().provider().to_string(),
            instance: Some(Arc::downgrade(&state.engine)),
            ..Stats::default()
        };
        *self.parts.state() = Some(state);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.in_flight.stop();
        *self.parts.state() = None;
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        // Per-object memory belongs to the stream as it was: a flush, a new segment (seek) or a new stream ends it.
        if let gst::EventView::FlushStop(_) | gst::EventView::Segment(_) | gst::EventView::StreamStart(_) = event.view()
        {
            if let Some(state) = self.parts.state().as_mut() {
                state.tracks.clear();
            }
        }
        self.in_flight.event(self.obj().upcast_ref(), &self.parts, &event);
        self.parent_sink_event(event)
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        // DRAIN (an upstream pool or decoder wants its buffers back): the frames in flight go downstream first.
        if let (gst::PadDirection::Sink, gst::QueryViewMut::Drain(_)) = (direction, query.view_mut()) {
            self.in_flight.drain_all(self.obj().upcast_ref(), &self.parts);
        }
        let ok = BaseTransformImplExt::parent_query(self, direction, query);
        let in_flight = self.parts.settings().frames_in_flight as u64;
        if let (true, gst::PadDirection::Src, gst::QueryViewMut::Latency(q)) = (ok, direction, query.view_mut()) {
            if in_flight > 0 {
                inflight::add_latency(&self.parts, in_flight, q);
            }
        }
        ok
    }

    fn submit_input_buffer(&self, is_discont: bool, inbuf: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (mode, batch, live, in_flight, max_latency) = {
            let s = self.parts.settings();
            (s.mode, s.batch_size.max(1) as usize, s.live.clone(), s.frames_in_flight, s.max_batch_latency)
        };
        if in_flight == 0 {
            return self.parent_submit_input_buffer(is_discont, inbuf);
        }
        // BaseTransform's own handling first (renegotiation, QoS): it queues the buffer, or drops it when late.
        self.parent_submit_input_buffer(is_discont, inbuf)?;
        let Some(inbuf) = self.take_queued_buffer() else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let max_latency = (max_latency > 0).then(|| Duration::from_millis(max_latency as u64));
        let obj = self.obj();
        self.in_flight.submit(obj.upcast_ref(), &self.parts, mode, batch, &live, in_flight as usize, max_latency, inbuf)
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        let in_flight = self.parts.settings().frames_in_flight as usize;
        if in_flight == 0 {
            return self.parent_generate_output();
        }
        self.in_flight.generate(self.obj().upcast_ref(), &self.parts, in_flight)
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = crate::video::info_from_caps(*CAT, incaps)?;
        if pixel_format(info.format()).is_none() {
            return Err(gst::loggable_error!(CAT, "unsupported format {}", info.format().to_str()));
        }
        gst::debug!(CAT, imp = self, "caps {}x{} {}", info.width(), info.height(), info.format().to_str());
        match self.parts.state().as_mut() {
            Some(state) => {
                // Boxes of other caps are not the same objects' boxes: per-object memory ends.
                state.tracks.clear();
                state.info = Some(info);
                Ok(())
            }
            None => Err(gst::loggable_error!(CAT, "caps before start")),
        }
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        // Only without frames in flight (submit_input_buffer and generate_output take the buffers otherwise).
        // Settings before state, never the other way round (set_property takes them in this order too).
        let (mode, batch, live) = {
            let s = self.parts.settings();
            (s.mode, s.batch_size.max(1) as usize, s.live.clone())
        };
        // Messages are posted once the state lock is released: a sync bus handler runs in this thread, and may set
        // properties that take the locks (a threshold on `odm-drift`, a bundle on a warning).
        let obj = self.obj();
        let obj = obj.upcast_ref::<Obj>();
        let mut posts = Vec::new();
        let result = sync::classify(obj, &self.parts, mode, batch, &live, buf, &mut posts);
        messages::post_all(obj, posts);
        result.map(|()| gst::FlowSuccess::Ok)
    }
}
