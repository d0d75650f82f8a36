// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmpublish's MQTT link: a thread of its own running rumqttc's event loop on a one-thread tokio runtime. The
//! streaming thread only puts messages in the spool and wakes the link; the link hands the spool's front to the
//! client while connected (at most [`window`] unacknowledged), takes them out as the broker acknowledges them, and
//! after a disconnection reconnects with a growing pause ([`backoff`]) and hands everything unacknowledged again.
//!
//! rumqttc keeps its own copy of unacknowledged messages only within a session, and forgets it on a clean session
//! (`session_present = 0`): the spool is the one record, so rumqttc's is cleared at every connection.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::spool::Spool;

/// Messages handed to the client and not yet acknowledged, at most (also rumqttc's in-flight limit).
pub const WINDOW: usize = 64;
/// The same at QoS 2. A broker holds a QoS 2 message from its PUBLISH until its PUBREL and takes only so many at once
/// from a client (mosquitto: `max_inflight_messages`, 20 by default); over MQTT 3.1.1 it refuses one more with a
/// PUBREC that reads as success (the reason code, 151 "quota exceeded", exists only in MQTT 5), drops it, and answers
/// its PUBREL with a PUBCOMP all the same. Such a message would be counted as sent and never delivered. The window
/// spans more than the broker's hold (it opens before the PUBLISH and closes at the PUBCOMP, after the PUBREL), so
/// staying under the broker's limit is enough; half mosquitto's default leaves room for brokers set lower.
pub const QOS2_WINDOW: usize = 10;

/// The window for `qos`: how many messages may be handed and unacknowledged at once.
pub fn window(qos: QoS) -> usize {
    match qos {
        QoS::ExactlyOnce => QOS2_WINDOW,
        QoS::AtMostOnce | QoS::AtLeastOnce => WINDOW,
    }
}
/// Longest pause between two connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The pause before connection attempt `failures + 1`: 100 ms, doubling, at most [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1u64 << failures.min(16))).min(MAX_BACKOFF)
}

/// TLS files (`ca-file`, `cert-file`, `key-file`).
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// What the link needs to connect.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub credentials: Option<(String, String)>,
    pub tls: TlsFiles,
    pub qos: QoS,
    /// Largest payload (bytes) handed to the client.
    pub max_message_size: usize,
}

/// A configuration refused before connecting.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot read {what} {path}: {why}")]
    TlsFile { what: &'static str, path: PathBuf, why: String },
    #[error("{0}")]
    Tls(String),
    #[error("cert-file and key-file go together (a client certificate needs its key): only {0} is set")]
    HalfClientAuth(&'static str),
    #[error("cannot start the MQTT thread: {0}")]
    Thread(std::io::Error),
}

/// What the link tells the element (which says it on the bus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Connected (again, when `reconnect`); `recovered` when an outage was said before.
    Connected { reconnect: bool, recovered: bool },
    /// The broker cannot be reached (said once per outage); the link keeps trying.
    Unreachable(String),
    /// The broker refused the connection (credentials, client id...): said once; the link keeps trying, slowly.
    Refused(String),
}

/// The state the streaming thread and the link share.
#[derive(Debug)]
pub struct Core {
    pub spool: Spool,
    pub connected: bool,
    pub reconnects: u64,
    /// The element is stopping: the link ends.
    stopping: bool,
}

#[derive(Debug)]
pub struct Shared {
    core: Mutex<Core>,
    /// Wakes the link: new messages, or stop.
    wake: tokio::sync::Notify,
    /// Signalled when the spool shrinks (for the flush at stop).
    shrunk: Condvar,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// New messages are in the spool.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// The running link.
pub struct Link {
    pub shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Options for rumqttc from the configuration, TLS files read and checked here (errors name the file).
fn options(cfg: &LinkConfig) -> Result<MqttOptions, LinkError> {
    let mut o = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
    o.set_keep_alive(Duration::from_secs(30));
    // The spool is the record of what is unacknowledged: no session to resume.
    o.set_clean_session(true);
    o.set_inflight(WINDOW as u16);
    // Room for the topic and the packet header beside the largest payload.
    o.set_max_packet_size(64 * 1024, cfg.max_message_size.saturating_add(70 * 1024));
    if let Some((user, pass)) = &cfg.credentials {
        o.set_credentials(user.clone(), pass.clone());
    }
    if let Some(config) = tls_config(&cfg.tls)? {
        o.set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::new(config))));
    }
    Ok(o)
}

fn tls_config(files: &TlsFiles) -> Result<Option<rustls::ClientConfig>, LinkError> {
    let (ca, client) = match (&files.ca, &files.cert, &files.key) {
        (None, None, None) => return Ok(None),
        (_, Some(_), None) => return Err(LinkError::HalfClientAuth("cert-file")),
        (_, None, Some(_)) => return Err(LinkError::HalfClientAuth("key-file")),
        (ca, Some(c), Some(k)) => (ca, Some((c, k))),
        (ca, None, None) => (ca, None),
    };
    let file_err = |what, path: &Path, why: String| LinkError::TlsFile { what, path: path.to_owned(), why };
    let certs = |what, path: &Path| -> Result<Vec<CertificateDer<'static>>, LinkError> {
        let iter = CertificateDer::pem_file_iter(path).map_err(|e| file_err(what, path, e.to_string()))?;
        let certs = iter.collect::<Result<Vec<_>, _>>().map_err(|e| file_err(what, path, e.to_string()))?;
        if certs.is_empty() {
            return Err(file_err(what, path, "no PEM certificate in it".into()));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            for c in certs("ca-file", path)? {
                roots.add(c).map_err(|e| file_err("ca-file", path, e.to_string()))?;
            }
        }
        // A client certificate without ca-file: the server is checked against nothing we could name; refuse.
        None => return Err(LinkError::Tls("TLS needs ca-file (the broker's certificate authority, PEM)".into())),
    }
    // ring: rustls deprecates it for lacking post-quantum key exchange, but aws-lc-rs, which has it, needs cmake and a
    // long C build; classic TLS 1.2/1.3 is what MQTT brokers speak.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LinkError::Tls(format!("TLS setup: {e}")))?
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => {
            let chain = certs("cert-file", cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err("key-file", key, e.to_string()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| LinkError::Tls(format!("cert-file and key-file do not make a client identity: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Some(config))
}

/// A connection error as a sentence (rumqttc's Display of an I/O error says little: add the kind).
fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::Io(io) => format!("{io}"),
        ConnectionError::NetworkTimeout => "no answer within 5 s".into(),
        other => other.to_string(),
    }
}

impl Link {
    /// Start the link with `spool`; `report` is called from the link's thread with no lock held.
    pub fn start(
        cfg: &LinkConfig,
        spool: Spool,
        report: impl Fn(LinkEvent) + Send + 'static,
    ) -> Result<Link, LinkError> {
        let opts = options(cfg)?;
        let shared = Arc::new(Shared {
            core: Mutex::new(Core { spool, connected: false, reconnects: 0, stopping: false }),
            wake: tokio::sync::Notify::new(),
            shrunk: Condvar::new(),
        });
        let qos = cfg.qos;
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("odmpublish-mqtt".into())
            .spawn(move || run(s, opts, qos, report))
            .map_err(LinkError::Thread)?;
        Ok(Link { shared, thread: Some(thread) })
    }

    /// Wait up to `timeout` for the spool to empty (the broker has everything), then end the link. Returns the spool.
    pub fn stop(mut self, timeout: Duration) -> Spool {
        {
            let core = self.shared.lock();
            let (mut core, _) = self
                .shared
                .shrunk
                .wait_timeout_while(core, timeout, |c| !c.spool.is_empty())
                .unwrap_or_else(|e| e.into_inner());
            core.stopping = true;
        }
        self.shared.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut core = self.shared.lock();
        std::mem::replace(&mut core.spool, Spool::new(1))
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.shared.lock().stopping = true;
            self.shared.wake();
            let _ = t.join();
        }
    }
}

/// The link's thread.
fn run(shared: Arc<Shared>, opts: MqttOptions, qos: QoS, report: impl Fn(LinkEvent)) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_time().enable_io().build() {
        Ok(rt) => rt,
        Err(e) => {
            report(LinkEvent::Unreachable(format!("cannot start the MQTT event loop: {e}")));
            return;
        }
    };
    rt.block_on(async move {
        let (client, mut eventloop) = AsyncClient::new(opts, WINDOW);
        let qos0 = qos == QoS::AtMostOnce;
        let window = window(qos);
        // Hands the spool's front to the client while connected, within the window.
        let feeder = async {
            loop {
                {
                    let mut core = shared.lock();
                    if core.stopping {
                        return;
                    }
                    while core.connected && core.spool.in_flight() < window {
                        let Some(m) = core.spool.next_unhanded() else { break };
                        // Never blocks: the channel holds WINDOW requests and at most `window` (<= WINDOW) are
                        // unacknowledged.
                        if client.try_publish(m.topic.as_str(), qos, false, m.payload.as_bytes()).is_err() {
                            break;
                        }
                        core.spool.mark_handed();
                    }
                }
                shared.wake.notified().await;
            }
        };
        let poller = async {
            let mut ever_connected = false;
            let mut failures = 0u32;
            let mut said = false;
            loop {
                let event = eventloop.poll().await;
                // What to say and how long to pause, decided under the lock; said and waited with it released.
                let (say, pause) = {
                    let mut core = shared.lock();
                    if core.stopping {
                        return;
                    }
                    match event {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            // rumqttc's own replay would duplicate the spool's: the spool alone says what is sent.
                            eventloop.pending.clear();
                            core.connected = true;
                            core.spool.reset();
                            let reconnect = ever_connected;
                            core.reconnects += reconnect as u64;
                            ever_connected = true;
                            failures = 0;
                            let recovered = std::mem::take(&mut said);
                            (Some(LinkEvent::Connected { reconnect, recovered }), None)
                        }
                        Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                            core.spool.on_written(pkid, qos0);
                            (None, None)
                        }
                        Ok(Event::Incoming(Packet::PubAck(a))) if qos == QoS::AtLeastOnce => {
                            core.spool.on_ack(a.pkid);
                            (None, None)
                        }
                        Ok(Event::Incoming(Packet::PubComp(c))) if qos == QoS::ExactlyOnce => {
                            core.spool.on_ack(c.pkid);
                            (None, None)
                        }
                        Ok(_) => (None, None),
                        Err(e) => {
                            core.connected = false;
                            core.spool.reset();
                            let say = (!said).then(|| match &e {
                                ConnectionError::ConnectionRefused(code) => {
                                    LinkEvent::Refused(format!("the broker refused the connection: {code:?}"))
                                }
                                other => LinkEvent::Unreachable(describe(other)),
                            });
                            said = true;
                            let pause = backoff(failures);
                            failures = failures.saturating_add(1);
                            (say, Some(pause))
                        }
                    }
                };
                // The spool may have shrunk, the window opened or the connection come: the feeder and stop look.
                shared.shrunk.notify_all();
                shared.wake();
                if let Some(event) = say {
                    report(event);
                }
                if let Some(pause) = pause {
                    tokio::time::sleep(pause).await;
                }
            }
        };
        tokio::select! {
            _ = feeder => {}
            _ = poller => {}
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos2_stays_within_what_a_default_mosquitto_takes() {
        assert_eq!(window(QoS::AtMostOnce), WINDOW);
        assert_eq!(window(QoS::AtLeastOnce), WINDOW);
        // mosquitto's max_inflight_messages defaults to 20; the window must never be above it.
        assert!(window(QoS::ExactlyOnce) <= 20);
        assert!(window(QoS::ExactlyOnce) <= WINDOW);
    }

    #[test]
    fn backoff_grows_to_its_bound() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(5), Duration::from_millis(3200));
        assert_eq!(backoff(6), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn tls_files_are_checked_before_connecting() {
        let tls = |ca: Option<&str>, cert: Option<&str>, key: Option<&str>| TlsFiles {
            ca: ca.map(PathBuf::from),
            cert: cert.map(PathBuf::from),
            key: key.map(PathBuf::from),
        };
        assert!(tls_config(&TlsFiles::default()).unwrap().is_none());
        let e = tls_config(&tls(Some("/no/such/ca.pem"), None, None)).unwrap_err();
        assert!(e.to_string().starts_with("cannot read ca-file /no/such/ca.pem"), "{e}");
        let e = tls_config(&tls(Some("/etc/hostname"), Some("/c.pem"), None)).unwrap_err();
        assert!(e.to_string().contains("only cert-file is set"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = tls_config(&tls(empty.to_str(), None, None)).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }
}
