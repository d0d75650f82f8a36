// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmpublish's settings (the properties), apart from its streaming state.

use std::path::PathBuf;

use gst::glib;
use gst::prelude::*;

pub(super) const DEFAULT_HOST: &str = "localhost";
pub(super) const DEFAULT_PORT: u32 = 1883;
pub(super) const DEFAULT_TOPIC: &str = "odm/{stream}";
pub(super) const DEFAULT_QOS: u32 = 1;
pub(super) const DEFAULT_SPOOL_SIZE: u32 = 10_000;
pub(super) const DEFAULT_MAX_MESSAGE_SIZE: u32 = 1024 * 1024;
pub(super) const DEFAULT_FLUSH_TIMEOUT: u32 = 5_000;

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) host: String,
    pub(super) port: u32,
    pub(super) topic: String,
    pub(super) drift_topic: Option<String>,
    pub(super) stream: Option<String>,
    pub(super) qos: u32,
    pub(super) client_id: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) cert_file: Option<PathBuf>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) spool_size: u32,
    pub(super) spool_location: Option<PathBuf>,
    pub(super) max_message_size: u32,
    pub(super) flush_timeout: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: DEFAULT_HOST.into(),
            port: DEFAULT_PORT,
            topic: DEFAULT_TOPIC.into(),
            drift_topic: None,
            stream: None,
            qos: DEFAULT_QOS,
            client_id: None,
            username: None,
            password: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            spool_size: DEFAULT_SPOOL_SIZE,
            spool_location: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
        }
    }
}

fn string(name: &str, nick: &str, blurb: &str) -> glib::ParamSpec {
    glib::ParamSpecString::builder(name).nick(nick).blurb(blurb).mutable_ready().build()
}

fn uint(name: &str, nick: &str, blurb: &str, min: u32, max: u32, default: u32) -> glib::ParamSpec {
    glib::ParamSpecUInt::builder(name)
        .nick(nick)
        .blurb(blurb)
        .minimum(min)
        .maximum(max)
        .default_value(default)
        .mutable_ready()
        .build()
}

/// odmpublish's properties.
pub(super) fn param_specs() -> Vec<glib::ParamSpec> {
    vec![
        string("host", "Host", "The MQTT broker's host name or address"),
        uint("port", "Port", "The MQTT broker's port (1883; 8883 is usual with TLS)", 1, 65535, DEFAULT_PORT),
        string(
            "topic",
            "Topic",
            "Topic of the frame messages; {stream} is the stream's name, {label} a ROI's label (the nearest class, \
             whatever the verdict): with {label} a frame goes out as one message per label among its ROIs (ROIs \
             without a class, and frames without ROIs, under \"none\"). No wildcards (+, #)",
        ),
        string(
            "drift-topic",
            "Drift topic",
            "Topic of odmclassify's odm-drift statistics (stats-interval), which reach this element in the stream; \
             {stream} is the stream's name; unset: not published",
        ),
        string("stream", "Stream name", "The stream's name in messages and topics; unset: the element's name"),
        uint(
            "qos",
            "QoS",
            "MQTT quality of service: 0 at most once, 1 at least once, 2 exactly once",
            0,
            2,
            DEFAULT_QOS,
        ),
        string("client-id", "Client id", "MQTT client id; unset: odmpublish-PID-ELEMENT"),
        string("username", "User name", "User name for the broker"),
        glib::ParamSpecString::builder("password")
            .nick("Password")
            .blurb("Password for the broker (write-only)")
            .write_only()
            .mutable_ready()
            .build(),
        string("ca-file", "CA file", "PEM certificate authority of the broker; set, the connection uses TLS"),
        string("cert-file", "Certificate file", "PEM client certificate (with key-file) for TLS client authentication"),
        string("key-file", "Key file", "PEM private key of cert-file"),
        uint(
            "spool-size",
            "Spool size",
            "Messages kept until the broker has them (while it is away, or slow); when full, the oldest message \
             not yet sent is dropped and counted as lost",
            1,
            u32::MAX,
            DEFAULT_SPOOL_SIZE,
        ),
        string(
            "spool-location",
            "Spool location",
            "A file that mirrors the spool, so that messages not yet delivered survive the process: read at start \
             (sent first), kept up to date while running, left with what was not delivered at stop",
        ),
        uint(
            "max-message-size",
            "Max message size",
            "Largest message in bytes; a larger one is not sent and counted as lost (set it to the broker's \
             message_size_limit: an MQTT 3.1.1 broker drops a larger message without saying so)",
            1,
            256 * 1024 * 1024 - 1,
            DEFAULT_MAX_MESSAGE_SIZE,
        ),
        uint(
            "flush-timeout",
            "Flush timeout",
            "At stop, wait up to this many milliseconds for the broker to take what is spooled",
            0,
            u32::MAX,
            DEFAULT_FLUSH_TIMEOUT,
        ),
        glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
            .nick("Statistics")
            .blurb(
                "Since the last start: made, sent (the broker acknowledged them; for QoS 0, written), spooled \
                 (waiting now), lost (spool full, too large, or still spooled at stop without spool-location), \
                 too-large, reconnects, connected",
            )
            .read_only()
            .build(),
    ]
}

impl Settings {
    pub(super) fn set(&mut self, name: &str, value: &glib::Value) {
        let text = |v: &glib::Value| v.get::<Option<String>>().ok().flatten().filter(|s| !s.is_empty());
        let path = |v: &glib::Value| text(v).map(PathBuf::from);
        match name {
            "host" => self.host = text(value).unwrap_or_else(|| DEFAULT_HOST.into()),
            "port" => self.port = value.get().expect("type checked upstream"),
            "topic" => self.topic = value.get::<Option<String>>().ok().flatten().unwrap_or_default(),
            "drift-topic" => self.drift_topic = text(value),
            "stream" => self.stream = text(value),
            "qos" => self.qos = value.get().expect("type checked upstream"),
            "client-id" => self.client_id = text(value),
            "username" => self.username = text(value),
            "password" => self.password = value.get::<Option<String>>().ok().flatten(),
            "ca-file" => self.ca_file = path(value),
            "cert-file" => self.cert_file = path(value),
            "key-file" => self.key_file = path(value),
            "spool-size" => self.spool_size = value.get().expect("type checked upstream"),
            "spool-location" => self.spool_location = path(value),
            "max-message-size" => self.max_message_size = value.get().expect("type checked upstream"),
            "flush-timeout" => self.flush_timeout = value.get().expect("type checked upstream"),
            other => unreachable!("unknown property {other}"),
        }
    }

    pub(super) fn get(&self, name: &str) -> glib::Value {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).to_value();
        match name {
            "host" => self.host.to_value(),
            "port" => self.port.to_value(),
            "topic" => self.topic.to_value(),
            "drift-topic" => self.drift_topic.to_value(),
            "stream" => self.stream.to_value(),
            "qos" => self.qos.to_value(),
            "client-id" => self.client_id.to_value(),
            "username" => self.username.to_value(),
            "password" => None::<String>.to_value(),
            "ca-file" => path(&self.ca_file),
            "cert-file" => path(&self.cert_file),
            "key-file" => path(&self.key_file),
            "spool-size" => self.spool_size.to_value(),
            "spool-location" => path(&self.spool_location),
            "max-message-size" => self.max_message_size.to_value(),
            "flush-timeout" => self.flush_timeout.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}
