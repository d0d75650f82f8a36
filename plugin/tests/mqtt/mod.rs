// SPDX-License-Identifier: MIT OR Apache-2.0
//! A real MQTT broker for the tests: Debian's mosquitto (scripts/bootstrap.sh installs it) on a free loopback port
//! with its own configuration file, and a subscriber (rumqttc) that records every message it gets.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};

/// Generous: these waits end as soon as their condition holds; they only bound a test that would otherwise hang.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// Wait until `cond` holds, checking every 20 ms; panic naming `what` after [`PATIENCE`].
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < PATIENCE, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    let [p] = free_ports();
    p
}

/// `N` different TCP ports on 127.0.0.1 that nothing listens on now: all held at once while they are picked, so the
/// kernel cannot hand the same one out twice (ports picked one after another, each released at once, can repeat).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> =
        (0..N).map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port")).collect();
    std::array::from_fn(|i| held[i].local_addr().expect("a bound port").port())
}

fn mosquitto() -> PathBuf {
    for p in ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("mosquitto")
}

/// A mosquitto of the test's own: its config, persistence and log in a temporary folder.
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Broker {
    /// Configure a broker on a free port (`extra`: more mosquitto.conf lines); not started.
    pub fn configure(persistence: bool, extra: &str) -> Broker {
        Self::configure_on(free_port(), persistence, extra)
    }

    pub fn configure_on(port: u16, persistence: bool, extra: &str) -> Broker {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let d = dir.path().display();
        // mosquitto started as root switches to the user `mosquitto`, who could not write this folder.
        let user = if rustix::process::geteuid().is_root() { "user root\n" } else { "" };
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence {persistence}\npersistence_location {d}/\n\
             log_dest file {d}/mosquitto.log\n{user}{extra}\n"
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).expect("config written");
        Broker { port, dir, child: None }
    }

    /// Start a broker and wait until it accepts connections.
    pub fn start(persistence: bool, extra: &str) -> Broker {
        let mut b = Self::configure(persistence, extra);
        b.run();
        b
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Start (or restart) the broker and wait until it accepts connections.
    pub fn run(&mut self) {
        assert!(self.child.is_none(), "the broker runs already");
        let child = Command::new(mosquitto())
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start mosquitto ({e}): run scripts/bootstrap.sh to install it"));
        self.child = Some(child);
        let port = self.port;
        wait_for("mosquitto to listen", || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("mosquitto exited ({status}): {}", self.log());
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Stop the broker as a service stop does (SIGTERM: it saves its persistence file) and wait for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// The broker's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A subscriber with a persistent session (clean session off, QoS 1): after a broker restart it gets what was
/// queued for it meanwhile.
pub struct Subscriber {
    got: Arc<Mutex<Vec<(String, String)>>>,
    subacks: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    client: Client,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Subscriber {
    /// Subscribe to `topic` as `id` and wait for the broker's SUBACK.
    pub fn new(port: u16, topic: &str, id: &str) -> Subscriber {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_session(false);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_max_packet_size(16 << 20, 1 << 16);
        let (client, mut conn) = Client::new(o, 16);
        client.subscribe(topic, QoS::AtLeastOnce).expect("subscribe request queued");
        let got = Arc::new(Mutex::new(Vec::new()));
        let subacks = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s, st) = (got.clone(), subacks.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        g.lock().unwrap().push((p.topic.clone(), String::from_utf8_lossy(&p.payload).into_owned()))
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        s.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                    Err(_) if st.load(Ordering::SeqCst) => break,
                    // The broker is away: try again shortly.
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    Ok(_) => {}
                }
            }
        });
        let sub = Subscriber { got, subacks, stop, client, thread: Some(thread) };
        wait_for("the subscription", || sub.subacks.load(Ordering::SeqCst) > 0);
        sub
    }

    /// Every message so far: (topic, payload).
    pub fn messages(&self) -> Vec<(String, String)> {
        self.got.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// The `seq` of every message so far, in arrival order.
    pub fn seqs(&self) -> Vec<u64> {
        self.messages()
            .iter()
            .map(|(_, p)| {
                let v: serde_json::Value = serde_json::from_str(p).unwrap_or_else(|e| panic!("{e}: {p}"));
                v["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {p}"))
            })
            .collect()
    }

    /// The distinct `seq`s in the order they first came (QoS 1 is at least once: a message whose acknowledgement was
    /// lost in a disconnection comes again).
    pub fn distinct_seqs(&self) -> Vec<u64> {
        let mut seen = std::collections::HashSet::new();
        self.seqs().into_iter().filter(|s| seen.insert(*s)).collect()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.client.try_disconnect();
        // The thread ends on the disconnection, or on its next error; it is not waited for if the broker is gone.
        if let Some(t) = self.thread.take() {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}
