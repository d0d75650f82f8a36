// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odmpublish` implementation: a pass-through BaseTransform that turns each buffer's results into MQTT messages and
//! puts them in the spool; the link (client.rs) sends them on its own thread, so the streaming thread never waits for
//! the network.

use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use super::client::{Link, LinkConfig, LinkEvent, TlsFiles};
use super::message::{self, Frame};
use super::settings::{param_specs, Settings};
use super::spool::{Message, Pushed, Spool};
use super::topic::Template;
use crate::export::line::FrameLine;
use crate::meta;

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| gst::DebugCategory::new("odmpublish", gst::DebugColorFlags::empty(), Some("odm results to MQTT")));

/// The streaming state, from start to stop.
struct State {
    link: Link,
    /// `host:port`, for messages.
    broker: String,
    stream: String,
    topic: Template,
    drift_topic: Option<Template>,
    max_message_size: usize,
    flush_timeout: Duration,
    /// Buffers seen: the next message's `frame`.
    frame: u64,
    /// The next message's `seq`.
    seq: u64,
    segment: gst::FormattedSegment<gst::ClockTime>,
    made: u64,
    too_large: u64,
    overflow_said: bool,
    too_large_said: bool,
}

/// Counters kept after stop, for the `stats` property.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    made: u64,
    sent: u64,
    spooled: u64,
    lost: u64,
    too_large: u64,
    reconnects: u64,
    connected: bool,
}

impl Counts {
    fn structure(&self) -> gst::Structure {
        gst::Structure::builder("odm-publish-stats")
            .field("made", self.made)
            .field("sent", self.sent)
            .field("spooled", self.spooled)
            .field("lost", self.lost)
            .field("too-large", self.too_large)
            .field("reconnects", self.reconnects)
            .field("connected", self.connected)
            .build()
    }
}

impl State {
    fn counts(&self) -> Counts {
        let core = self.link.shared.lock();
        Counts {
            made: self.made,
            sent: core.spool.sent,
            spooled: core.spool.len() as u64,
            lost: core.spool.lost,
            too_large: self.too_large,
            reconnects: core.reconnects,
            connected: core.connected,
        }
    }

    /// Put messages in the spool and wake the link; returns what to say (once each) on the bus.
    fn enqueue(&mut self, msgs: Vec<Message>) -> Vec<String> {
        let mut say = Vec::new();
        let mut core = self.link.shared.lock();
        for m in msgs {
            self.made += 1;
            if m.payload.len() > self.max_message_size {
                self.too_large += 1;
                core.spool.refuse();
                if !self.too_large_said {
                    self.too_large_said = true;
                    say.push(format!(
                        "a message of {} bytes for {} is larger than max-message-size ({} bytes): it is not sent \
                         and counted as lost (said once; see the stats property)",
                        m.payload.len(),
                        m.topic,
                        self.max_message_size
                    ));
                }
                continue;
            }
            let pushed = core.spool.push(m);
            if pushed != Pushed::Kept && !self.overflow_said {
                self.overflow_said = true;
                say.push(format!(
                    "the spool is full ({} messages waiting for the broker at {}): messages are dropped, the \
                     oldest not yet sent first, and counted as lost (said once; see the stats property)",
                    core.spool.len(),
                    self.broker
                ));
            }
            if let Some(e) = core.spool.take_journal_error() {
                say.push(e);
            }
        }
        drop(core);
        self.link.shared.wake();
        say
    }
}

#[derive(Default)]
pub struct OdmPublish {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// The counters of the last run, once stopped.
    last: Mutex<Counts>,
}

#[glib::object_subclass]
impl ObjectSubclass for OdmPublish {
    const NAME: &'static str = "GstOdmPublish";
    type Type = super::OdmPublish;
    type ParentType = gst_base::BaseTransform;
}

impl OdmPublish {
    fn lock_settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Post warnings gathered under the state lock (call with no lock held).
    fn warn_all(&self, say: Vec<String>) {
        for text in say {
            gst::element_imp_warning!(self, gst::ResourceError::Write, ("{text}"));
        }
    }

    /// What the link says, on the bus, from the link's thread.
    fn reporter(&self, broker: String, spool_size: u32) -> impl Fn(LinkEvent) + Send + 'static {
        let weak = self.obj().downgrade();
        move |event| {
            let Some(obj) = weak.upgrade() else { return };
            match event {
                LinkEvent::Connected { reconnect: false, recovered: false } => {
                    gst::info!(CAT, obj = obj, "connected to {broker}")
                }
                // After a disconnection, or after a warning that it could not connect: said on the bus.
                LinkEvent::Connected { .. } => gst::element_info!(
                    obj,
                    gst::ResourceError::Write,
                    ("connected to the MQTT broker at {broker}: the spool goes out in order")
                ),
                LinkEvent::Unreachable(why) => gst::element_warning!(
                    obj,
                    gst::ResourceError::OpenWrite,
                    ("cannot reach the MQTT broker at {broker}: {why}; messages wait in the spool (up to \
                         {spool_size}) and go out in order when it is back")
                ),
                LinkEvent::Refused(why) => gst::element_error!(
                    obj,
                    gst::ResourceError::NotAuthorized,
                    ("the MQTT broker at {broker} refused the connection ({why}): check username, password and \
                         client-id; messages wait in the spool (up to {spool_size}) while odmpublish keeps trying")
                ),
            }
        }
    }
}

impl ObjectImpl for OdmPublish {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(param_specs);
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if !crate::props::settable(&*self.obj(), pspec) {
            return;
        }
        self.lock_settings().set(pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            let counts = match self.lock_state().as_ref() {
                Some(st) => st.counts(),
                None => *self.last.lock().unwrap_or_else(|e| e.into_inner()),
            };
            return counts.structure().to_value();
        }
        self.lock_settings().get(pspec.name())
    }
}

impl GstObjectImpl for OdmPublish {}

impl ElementImpl for OdmPublish {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "odm results to MQTT",
                "Filter/Analyzer/Video",
                "Sends one JSON message per frame (odmexport's fields, a sequence number and the stream's name) to \
                 an MQTT broker, spooled while the broker is away",
                "odm developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> =
            LazyLock::new(|| crate::video::filter_templates(&gst::Caps::new_any()));
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for OdmPublish {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = true;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = true;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = self.lock_settings().clone();
        let settings_err = |e: &dyn std::fmt::Display| gst::error_msg!(gst::ResourceError::Settings, ("{e}"));
        let topic = Template::parse("topic", &s.topic, true).map_err(|e| settings_err(&e))?;
        let drift_topic = match &s.drift_topic {
            Some(t) => Some(Template::parse("drift-topic", t, false).map_err(|e| settings_err(&e))?),
            None => None,
        };
        let port = u16::try_from(s.port).map_err(|_| settings_err(&format!("port {} is not a TCP port", s.port)))?;
        let name = self.obj().name().to_string();
        let broker = format!("{}:{}", s.host, port);
        let spool = match &s.spool_location {
            Some(path) => {
                let (spool, bad) = Spool::with_journal(s.spool_size as usize, path)
                    .map_err(|e| gst::error_msg!(gst::ResourceError::OpenWrite, ("{e}")))?;
                if bad > 0 {
                    let text = format!(
                        "{}: {bad} lines were not messages (a crash mid-write?) and are skipped",
                        path.display()
                    );
                    self.warn_all(vec![text]);
                }
                spool
            }
            None => Spool::new(s.spool_size as usize),
        };
        let cfg = LinkConfig {
            host: s.host.clone(),
            port,
            client_id: s.client_id.clone().unwrap_or_else(|| format!("odmpublish-{}-{name}", std::process::id())),
            credentials: s.username.clone().map(|u| (u, s.password.clone().unwrap_or_default())),
            tls: TlsFiles { ca: s.ca_file.clone(), cert: s.cert_file.clone(), key: s.key_file.clone() },
            qos: match s.qos {
                0 => rumqttc::QoS::AtMostOnce,
                1 => rumqttc::QoS::AtLeastOnce,
                _ => rumqttc::QoS::ExactlyOnce,
            },
            max_message_size: s.max_message_size as usize,
        };
        let link = Link::start(&cfg, spool, self.reporter(broker.clone(), s.spool_size))
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("{e}")))?;
        gst::info!(CAT, imp = self, "publishing to {broker} on {}", s.topic);
        *self.lock_state() = Some(State {
            link,
            broker,
            stream: s.stream.unwrap_or(name),
            topic,
            drift_topic,
            max_message_size: s.max_message_size as usize,
            flush_timeout: Duration::from_millis(s.flush_timeout as u64),
            frame: 0,
            seq: 0,
            segment: gst::FormattedSegment::new(),
            made: 0,
            too_large: 0,
            overflow_said: false,
            too_large_said: false,
        });
        Ok(())
    }

    /// Waits up to flush-timeout for the broker to take the spool (on the thread changing the state, never the
    /// streaming thread); what is left stays in spool-location, or is counted as lost and said. Never fails.
    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let Some(st) = self.lock_state().take() else { return Ok(()) };
        let mut counts = st.counts();
        let reconnects = counts.reconnects;
        let connected = counts.connected;
        let mut spool = st.link.stop(st.flush_timeout);
        let lost_before = spool.lost;
        let kept = spool.close();
        let mut say = Vec::new();
        if spool.lost > lost_before {
            say.push(format!(
                "{} messages were still waiting for the broker at {} at stop (flush-timeout {} ms) and are lost; \
                 spool-location keeps them for the next run",
                spool.lost - lost_before,
                st.broker,
                st.flush_timeout.as_millis()
            ));
        }
        if kept > 0 {
            gst::info!(CAT, imp = self, "{kept} messages stay in the spool file for the next run");
        }
        say.extend(spool.take_journal_error());
        counts = Counts { sent: spool.sent, spooled: kept as u64, lost: spool.lost, reconnects, connected, ..counts };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = counts;
        self.warn_all(say);
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Segment(e) => {
                if let (Some(st), Ok(seg)) =
                    (self.lock_state().as_mut(), e.segment().clone().downcast::<gst::ClockTime>())
                {
                    st.segment = seg;
                }
            }
            gst::EventView::CustomDownstream(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "odm-drift") {
                    let mut guard = self.lock_state();
                    let say = match guard.as_mut() {
                        Some(st) => match st.drift_topic.as_ref().map(|t| message::drift(s, &st.stream, t)) {
                            Some(Ok(m)) => st.enqueue(vec![m]),
                            Some(Err(e)) => vec![format!("cannot write odm-drift as JSON: {e}")],
                            None => Vec::new(),
                        },
                        None => Vec::new(),
                    };
                    drop(guard);
                    self.warn_all(say);
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
        let line = FrameLine::new(buf, &entries, st.frame, &st.segment);
        st.frame += 1;
        let made = Frame { stream: &st.stream, topic: &st.topic, seq: &mut st.seq }.messages(line);
        let say = match made {
            Ok(msgs) => st.enqueue(msgs),
            // Plain data always serialises; should it not, the frame's message is lost, the buffer is not.
            Err(e) => {
                st.link.shared.lock().spool.refuse();
                vec![format!("cannot write frame {} as JSON: {e}; its message is lost", st.frame - 1)]
            }
        };
        drop(guard);
        self.warn_all(say);
        Ok(gst::FlowSuccess::Ok)
    }
}
