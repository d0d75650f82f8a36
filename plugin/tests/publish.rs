// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmpublish against a real mosquitto on a loopback port: every message in order, a broker restart and a broker
//! down at start with nothing lost, refusals said clearly, a spool too small counted exactly, bad input handled.
//! No durations are asserted: every wait is for a condition, with a generous bound.

mod common;
mod mqtt;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gst::prelude::*;
use mqtt::{wait_for, Broker, Subscriber};

const W: u32 = 64;
const H: u32 = 48;

/// `appsrc ! odmpublish ! fakesink`, driven buffer by buffer from the test.
struct Run {
    pipeline: gst::Element,
    src: gst_app::AppSrc,
    publish: gst::Element,
    passed: Arc<AtomicU64>,
    pushed: u64,
    warnings: Vec<String>,
    errors: Vec<String>,
    infos: Vec<String>,
}

impl Run {
    /// The pipeline with odmpublish's properties (as strings, as on a launch line); started.
    fn start(props: &[(&str, &str)]) -> Run {
        let run = Run::new(props);
        run.pipeline.set_state(gst::State::Playing).expect("the pipeline starts");
        run
    }

    fn new(props: &[(&str, &str)]) -> Run {
        common::init();
        let pipeline = gst::parse::launch(
            "appsrc name=src format=time ! odmpublish name=pub ! fakesink name=sink sync=false async=false",
        )
        .expect("pipeline parses");
        let bin = pipeline.downcast_ref::<gst::Bin>().expect("a bin");
        let src = bin.by_name("src").expect("src").downcast::<gst_app::AppSrc>().expect("an appsrc");
        src.set_caps(Some(&common::rgb_caps(W, H)));
        let publish = bin.by_name("pub").expect("pub");
        for (k, v) in props {
            publish.set_property_from_str(k, v);
        }
        let passed = Arc::new(AtomicU64::new(0));
        let p = passed.clone();
        bin.by_name("sink").expect("sink").static_pad("sink").expect("sink pad").add_probe(
            gst::PadProbeType::BUFFER,
            move |_, _| {
                p.fetch_add(1, Ordering::SeqCst);
                gst::PadProbeReturn::Ok
            },
        );
        Run { pipeline, src, publish, passed, pushed: 0, warnings: vec![], errors: vec![], infos: vec![] }
    }

    /// Push `n` frames, each with `rois` ROI metas.
    fn push(&mut self, n: u64, rois: usize) {
        for _ in 0..n {
            let boxes: Vec<(i32, common::Rect)> = (0..rois).map(|i| (i as i32, (i as u32 % 8 * 8, 0, 8, 8))).collect();
            let buf = common::buffer_with_rois(common::rgb_frame(W, H, &[]), &boxes, self.pushed * 33_333_333);
            self.src.push_buffer(buf).expect("appsrc takes the buffer");
            self.pushed += 1;
        }
    }

    /// Collect what the bus has now; whether it held the EOS.
    fn drain(&mut self) -> bool {
        let bus = self.pipeline.bus().expect("bus");
        let mut eos = false;
        while let Some(m) = bus.pop() {
            match m.view() {
                gst::MessageView::Eos(_) => eos = true,
                gst::MessageView::Warning(w) => self.warnings.push(w.error().to_string()),
                gst::MessageView::Error(e) => self.errors.push(e.error().to_string()),
                gst::MessageView::Info(i) => self.infos.push(i.error().to_string()),
                _ => {}
            }
        }
        eos
    }

    /// Wait until every pushed buffer came out of odmpublish.
    fn all_passed(&self) {
        wait_for("every buffer through odmpublish", || self.passed.load(Ordering::SeqCst) == self.pushed);
    }

    fn stats(&self) -> gst::Structure {
        self.publish.property::<gst::Structure>("stats")
    }

    fn stat(&self, name: &str) -> u64 {
        self.stats().get::<u64>(name).expect("a counter")
    }

    /// Wait until the spool is empty (the broker has every message). Every pushed buffer through odmpublish first:
    /// a frame's message is spooled before its buffer is passed on, so an empty spool seen before that may be one
    /// the last frames have not reached yet.
    fn delivered(&self) {
        self.all_passed();
        wait_for("the spool to empty", || self.stat("spooled") == 0);
    }

    /// EOS, then NULL (odmpublish flushes within its flush-timeout); the bus collected.
    fn finish(&mut self) {
        let _ = self.src.end_of_stream();
        wait_for("EOS", || self.drain());
        self.all_passed();
        self.drain();
        // READY first: odmpublish stops (and says what it says at stop) before the bus is flushed at NULL.
        self.pipeline.set_state(gst::State::Ready).expect("the pipeline stops");
        self.drain();
        self.pipeline.set_state(gst::State::Null).expect("the pipeline stops");
    }
}

#[test]
fn two_hundred_messages_arrive_in_order() {
    let broker = Broker::start(false, "");
    let sub = Subscriber::new(broker.port, "odm/#", "sub-order");
    let port = broker.port.to_string();
    let mut run = Run::start(&[("port", &port), ("host", "127.0.0.1"), ("topic", "odm/{stream}"), ("stream", "cam1")]);
    run.push(200, 2);
    run.finish();
    wait_for("200 messages", || sub.count() >= 200);
    assert_eq!(sub.seqs(), (0..200).collect::<Vec<_>>(), "every message once, in order");
    let msgs = sub.messages();
    assert!(msgs.iter().all(|(t, _)| t == "odm/cam1"), "{:?}", &msgs[0]);
    let first: serde_json::Value = serde_json::from_str(&msgs[0].1).unwrap();
    assert_eq!(first["stream"], "cam1");
    assert_eq!(first["frame"], 0);
    assert_eq!(first["rois"].as_array().unwrap().len(), 2);
    let s = run.stats();
    assert_eq!((s.get::<u64>("sent").unwrap(), s.get::<u64>("lost").unwrap()), (200, 0), "{s}");
    assert!(run.warnings.is_empty() && run.errors.is_empty(), "{:?} {:?}", run.warnings, run.errors);
}

#[test]
fn a_broker_restarted_mid_stream_loses_nothing() {
    let mut broker = Broker::start(true, "");
    let sub = Subscriber::new(broker.port, "odm/#", "sub-restart");
    let port = broker.port.to_string();
    let mut run = Run::start(&[("port", &port), ("host", "127.0.0.1"), ("stream", "cam")]);
    // Connected first, so that what follows is a reconnection (on a loaded machine the first connection can take
    // longer than 80 buffers).
    wait_for("odmpublish to connect", || run.stats().get::<bool>("connected").unwrap());
    run.push(80, 1);
    broker.stop();
    wait_for("odmpublish to see the broker gone", || !run.stats().get::<bool>("connected").unwrap());
    // Buffers keep flowing while the broker is away; their messages wait in the spool.
    run.push(60, 1);
    run.all_passed();
    broker.run();
    run.push(60, 1);
    run.delivered();
    run.finish();
    wait_for("200 distinct messages", || sub.distinct_seqs().len() >= 200);
    assert_eq!(sub.distinct_seqs(), (0..200).collect::<Vec<_>>(), "nothing lost, in order");
    let s = run.stats();
    assert_eq!(s.get::<u64>("lost").unwrap(), 0, "{s}");
    assert!(s.get::<u64>("reconnects").unwrap() >= 1, "{s}");
    assert!(run.warnings.iter().any(|w| w.contains(&format!("127.0.0.1:{port}"))), "{:?}", run.warnings);
    assert!(run.errors.is_empty(), "{:?}", run.errors);
}

/// A subscriber whose persistent session the broker kept while it was down: subscribed before any publisher can
/// reach the broker.
fn persistent_subscriber(broker: &mut Broker, topic: &str, id: &str) -> Subscriber {
    let sub = Subscriber::new(broker.port, topic, id);
    broker.stop();
    sub
}

#[test]
fn a_broker_down_at_start_gets_everything_once_it_is_up() {
    let mut broker = Broker::start(true, "");
    let sub = persistent_subscriber(&mut broker, "odm/#", "sub-late");
    let port = broker.port.to_string();
    let mut run = Run::start(&[("port", &port), ("host", "127.0.0.1")]);
    run.push(50, 1);
    run.all_passed();
    wait_for("the warning", || {
        run.drain();
        !run.warnings.is_empty()
    });
    let w = &run.warnings[0];
    assert!(w.contains(&format!("cannot reach the MQTT broker at 127.0.0.1:{port}")), "{w}");
    assert_eq!(run.stat("spooled"), 50);
    broker.run();
    run.push(50, 1);
    run.delivered();
    run.finish();
    wait_for("100 messages", || sub.distinct_seqs().len() >= 100);
    assert_eq!(sub.distinct_seqs(), (0..100).collect::<Vec<_>>());
    assert_eq!(run.stat("lost"), 0);
    let connected = format!("connected to the MQTT broker at 127.0.0.1:{port}");
    assert!(run.infos.iter().any(|i| i.contains(&connected)), "{:?}", run.infos);
}

#[test]
fn a_wrong_port_is_said_with_host_and_port_and_buffers_flow() {
    let port = mqtt::free_port().to_string();
    let mut run = Run::start(&[("port", &port), ("host", "127.0.0.1"), ("flush-timeout", "0")]);
    run.push(30, 1);
    run.all_passed();
    wait_for("the warning", || {
        run.drain();
        !run.warnings.is_empty()
    });
    assert!(run.warnings[0].contains(&format!("127.0.0.1:{port}")), "{:?}", run.warnings);
    assert!(run.warnings[0].contains("refused"), "the OS's reason: {:?}", run.warnings);
    run.finish();
    // Nothing could be sent: everything still spooled at stop is lost, and counted.
    let s = run.stats();
    assert_eq!((s.get::<u64>("made").unwrap(), s.get::<u64>("lost").unwrap()), (30, 30), "{s}");
    assert!(run.warnings.iter().any(|w| w.contains("30 messages were still waiting")), "{:?}", run.warnings);
    assert!(run.errors.is_empty(), "{:?}", run.errors);
}

#[test]
fn refused_credentials_are_an_error_naming_the_broker() {
    let mut broker = Broker::configure(false, "allow_anonymous false\n");
    let pw = broker.dir().join("passwd");
    let made = std::process::Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&pw)
        .args(["odm", "right"])
        .status()
        .expect("mosquitto_passwd runs");
    assert!(made.success());
    let conf = broker.dir().join("mosquitto.conf");
    let text = std::fs::read_to_string(&conf).unwrap().replace("allow_anonymous true\n", "");
    std::fs::write(&conf, format!("{text}password_file {}\n", pw.display())).unwrap();
    broker.run();
    let port = broker.port.to_string();
    let mut run = Run::start(&[
        ("port", &port),
        ("host", "127.0.0.1"),
        ("username", "odm"),
        ("password", "wrong"),
        ("flush-timeout", "0"),
    ]);
    run.push(10, 0);
    run.all_passed();
    wait_for("the error", || {
        run.drain();
        !run.errors.is_empty()
    });
    let e = &run.errors[0];
    assert!(e.contains(&format!("127.0.0.1:{port} refused the connection")), "{e}");
    run.pipeline.set_state(gst::State::Null).unwrap();

    // The right password: delivered.
    let mut run = Run::start(&[("port", &port), ("host", "127.0.0.1"), ("username", "odm"), ("password", "right")]);
    run.push(10, 0);
    run.delivered();
    run.finish();
    assert_eq!((run.stat("sent"), run.stat("lost")), (10, 0));
    assert!(run.errors.is_empty(), "{:?}", run.errors);
}

#[test]
fn a_spool_too_small_counts_exactly_what_it_loses() {
    let mut broker = Broker::start(true, "");
    let sub = persistent_subscriber(&mut broker, "odm/#", "sub-small");
    let port = broker.port.to_string();
    let mut run = Run::start(&[("port", &port), ("host", "127.0.0.1"), ("spool-size", "10")]);
    run.push(50, 1);
    run.all_passed();
    assert_eq!(run.stat("lost"), 40);
    broker.run();
    run.delivered();
    run.finish();
    wait_for("the spooled messages", || sub.distinct_seqs().len() >= 10);
    let got = sub.distinct_seqs();
    // The oldest are dropped: the last ten arrive.
    assert_eq!(got, (40..50).collect::<Vec<_>>());
    let s = run.stats();
    assert_eq!(s.get::<u64>("lost").unwrap(), 50 - got.len() as u64, "{s}");
    assert_eq!(s.get::<u64>("sent").unwrap(), got.len() as u64, "{s}");
    let said: Vec<_> = run.warnings.iter().filter(|w| w.contains("the spool is full")).collect();
    assert_eq!(said.len(), 1, "said once: {:?}", run.warnings);
}

#[test]
fn a_broker_that_disconnects_repeatedly_loses_nothing() {
    let broker = Broker::start(false, "");
    let sub = Subscriber::new(broker.port, "odm/#", "sub-flaky");
    let port = broker.port.to_string();
    let mut run = Run::start(&[("port", &port), ("host", "127.0.0.1"), ("client-id", "odm-flaky")]);
    for _ in 0..5 {
        run.push(30, 1);
        let before = run.stat("reconnects");
        // Another client with the same client id: the broker disconnects odmpublish (MQTT's session takeover). It
        // may itself be taken over by odmpublish's reconnection before it is done: its exit status is not ours.
        std::process::Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port, "-i", "odm-flaky", "-t", "other", "-m", "x"])
            .status()
            .expect("mosquitto_pub runs");
        wait_for("odmpublish to reconnect", || run.stat("reconnects") > before);
    }
    run.push(50, 1);
    run.delivered();
    run.finish();
    wait_for("200 distinct messages", || sub.distinct_seqs().len() >= 200);
    assert_eq!(sub.distinct_seqs(), (0..200).collect::<Vec<_>>());
    assert!(run.stat("reconnects") >= 5);
    assert_eq!(run.stat("lost"), 0);
}

#[test]
fn a_topic_with_wildcards_is_refused_by_name() {
    for (prop, topic) in [("topic", "odm/+/x"), ("drift-topic", "odm/drift/#"), ("topic", "odm/{camera}")] {
        let run = Run::new(&[("port", "1"), (prop, topic)]);
        assert!(run.pipeline.set_state(gst::State::Playing).is_err(), "{topic}");
        let bus = run.pipeline.bus().unwrap();
        let err = bus.pop_filtered(&[gst::MessageType::Error]).expect("an error");
        let gst::MessageView::Error(e) = err.view() else { unreachable!() };
        assert!(e.error().to_string().contains(&format!("{prop} \"{topic}\"")), "{}", e.error());
        run.pipeline.set_state(gst::State::Null).unwrap();
    }
}

#[test]
fn a_message_over_the_size_limit_is_handled() {
    let broker = Broker::start(false, "message_size_limit 1000\n");
    let sub = Subscriber::new(broker.port, "odm/#", "sub-size");
    let port = broker.port.to_string();
    // Told the limit: the large messages are not sent, counted, said once.
    let mut run = Run::start(&[("port", &port), ("host", "127.0.0.1"), ("max-message-size", "1000")]);
    for _ in 0..10 {
        run.push(1, 0);
        run.push(1, 20);
    }
    run.delivered();
    run.finish();
    wait_for("the small messages", || sub.count() >= 10);
    assert_eq!(sub.seqs(), (0..20).step_by(2).collect::<Vec<_>>());
    let s = run.stats();
    assert_eq!((s.get::<u64>("too-large").unwrap(), s.get::<u64>("lost").unwrap()), (10, 10), "{s}");
    assert_eq!(run.warnings.iter().filter(|w| w.contains("larger than max-message-size")).count(), 1);

    // Not told: an MQTT 3.1.1 broker acknowledges and drops them; the stream is unharmed.
    let mut run = Run::start(&[("port", &port), ("host", "127.0.0.1"), ("stream", "second")]);
    for _ in 0..10 {
        run.push(1, 0);
        run.push(1, 20);
    }
    run.delivered();
    run.finish();
    assert_eq!(run.passed.load(Ordering::SeqCst), 20);
    wait_for("the second run's small messages", || sub.count() >= 20);
    assert!(run.errors.is_empty(), "{:?}", run.errors);
}

#[test]
fn a_spool_location_that_cannot_be_written() {
    // A folder that does not exist: refused at start, naming the file.
    let run = Run::new(&[("port", "1"), ("spool-location", "/nonexistent/odm/spool.jsonl")]);
    assert!(run.pipeline.set_state(gst::State::Playing).is_err());
    let err = run.pipeline.bus().unwrap().pop_filtered(&[gst::MessageType::Error]).expect("an error");
    let gst::MessageView::Error(e) = err.view() else { unreachable!() };
    assert!(e.error().to_string().contains("/nonexistent/odm/spool.jsonl"), "{}", e.error());
    run.pipeline.set_state(gst::State::Null).unwrap();

    // A full disk: said once, the spool goes on in memory, everything is delivered.
    let broker = Broker::start(false, "");
    let sub = Subscriber::new(broker.port, "odm/#", "sub-full");
    let port = broker.port.to_string();
    let mut run = Run::start(&[("port", &port), ("host", "127.0.0.1"), ("spool-location", "/dev/full")]);
    run.push(20, 1);
    run.delivered();
    run.finish();
    wait_for("20 messages", || sub.count() >= 20);
    assert_eq!(sub.seqs(), (0..20).collect::<Vec<_>>());
    let said: Vec<_> = run.warnings.iter().filter(|w| w.contains("cannot write the spool file /dev/full")).collect();
    assert_eq!(said.len(), 1, "{:?}", run.warnings);
}

#[test]
fn the_spool_file_carries_undelivered_messages_to_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool.jsonl").display().to_string();
    let mut broker = Broker::start(true, "");
    let sub = persistent_subscriber(&mut broker, "odm/#", "sub-file");
    let port = broker.port.to_string();
    let props = [("port", port.as_str()), ("host", "127.0.0.1"), ("spool-location", &spool), ("flush-timeout", "0")];
    let mut run = Run::start(&props);
    run.push(7, 1);
    run.finish();
    let s = run.stats();
    assert_eq!((s.get::<u64>("spooled").unwrap(), s.get::<u64>("lost").unwrap()), (7, 0), "{s}");
    assert_eq!(std::fs::read_to_string(&spool).unwrap().lines().count(), 7);
    broker.run();
    let mut run = Run::start(&props);
    run.push(3, 1);
    run.delivered();
    run.finish();
    wait_for("10 messages", || sub.count() >= 10);
    // The earlier run's seven first (seq 0..7), then this run's (seq 0..3).
    assert_eq!(sub.seqs(), [0, 1, 2, 3, 4, 5, 6, 0, 1, 2]);
    assert_eq!(std::fs::read_to_string(&spool).unwrap(), "");
}

#[test]
fn classified_frames_carry_embeddings_and_drift_goes_to_its_topic() {
    let broker = Broker::start(false, "");
    let sub = Subscriber::new(broker.port, "odm/#", "sub-classify");
    common::init();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time ! odmclassify name=c attach-embedding=true stats-interval=5 model={} ! \
         odmpublish name=pub host=127.0.0.1 port={} stream=cam ! fakesink sync=false async=false",
        common::colors_model(),
        broker.port
    ))
    .expect("pipeline parses");
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let publish = bin.by_name("pub").unwrap();
    publish.set_property("topic", "odm/{stream}/{label}");
    publish.set_property("drift-topic", "odm/drift/{stream}");
    let src = bin.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    src.set_caps(Some(&common::rgb_caps(W, H)));
    pipeline.set_state(gst::State::Playing).unwrap();
    for i in 0..10u64 {
        let data = common::rgb_frame(W, H, &[((0, 0, 16, 16), common::RED), ((32, 16, 16, 16), common::BLUE)]);
        let buf = common::buffer_with_rois(data, &[(1, (0, 0, 16, 16)), (2, (32, 16, 16, 16))], i * 33_333_333);
        src.push_buffer(buf).unwrap();
    }
    let _ = src.end_of_stream();
    let bus = pipeline.bus().unwrap();
    wait_for("EOS", || bus.pop_filtered(&[gst::MessageType::Eos, gst::MessageType::Error]).is_some());
    wait_for("the spool to empty", || publish.property::<gst::Structure>("stats").get::<u64>("spooled") == Ok(0));
    pipeline.set_state(gst::State::Null).unwrap();
    // 10 frames x 2 labels, and 2 drift windows.
    wait_for("22 messages", || sub.count() >= 22);
    let msgs = sub.messages();
    let drift: Vec<_> = msgs.iter().filter(|(t, _)| t == "odm/drift/cam").collect();
    assert_eq!(drift.len(), 2, "{msgs:?}");
    let d: serde_json::Value = serde_json::from_str(&drift[0].1).unwrap();
    assert_eq!(d["drift"]["frames"], 5);
    let frames: Vec<serde_json::Value> =
        msgs.iter().filter(|(t, _)| t != "odm/drift/cam").map(|(_, p)| serde_json::from_str(p).unwrap()).collect();
    assert_eq!(frames.len(), 20);
    for (f, (t, _)) in frames.iter().zip(msgs.iter().filter(|(t, _)| t != "odm/drift/cam")) {
        let rois = f["rois"].as_array().unwrap();
        assert_eq!(rois.len(), 1, "one label per message: {f}");
        assert_eq!(t, &format!("odm/cam/{}", rois[0]["label"].as_str().unwrap()));
        let e = rois[0]["embedding"].as_array().expect("an embedding");
        assert!(!e.is_empty() && e.iter().all(|v| v.as_f64().is_some_and(f64::is_finite)), "{f}");
    }
}

/// A certificate authority, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
fn certificates(dir: &std::path::Path) {
    let sh = |script: &str| {
        let ok = std::process::Command::new("sh").arg("-c").arg(script).current_dir(dir).output().expect("sh runs");
        assert!(ok.status.success(), "{script}: {}", String::from_utf8_lossy(&ok.stderr));
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=odm-test-ca");
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    for who in ["server", "client"] {
        sh(&format!("openssl req -newkey rsa:2048 -nodes -keyout {who}.key -out {who}.csr -subj /CN={who}"));
        sh(&format!(
            "openssl x509 -req -in {who}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out {who}.pem -days 2 \
             -extfile san.ext"
        ));
    }
}

#[test]
fn tls_with_a_client_certificate() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let c = |f: &str| certs.path().join(f).display().to_string();
    // Two listeners: two ports picked together (one after the other, the kernel may give the same one twice).
    let [plain_port, tls_port] = mqtt::free_ports();
    // The subscriber on the plain listener; odmpublish on the TLS one, which wants a client certificate.
    let mut broker = Broker::configure_on(
        plain_port,
        false,
        &format!(
            "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
            c("ca.pem"),
            c("server.pem"),
            c("server.key")
        ),
    );
    broker.run();
    let sub = Subscriber::new(broker.port, "odm/#", "sub-tls");
    let port = tls_port.to_string();
    let (ca, cert, key) = (c("ca.pem"), c("client.pem"), c("client.key"));
    let mut run = Run::start(&[
        ("port", &port),
        ("host", "127.0.0.1"),
        ("ca-file", &ca),
        ("cert-file", &cert),
        ("key-file", &key),
    ]);
    run.push(20, 1);
    run.delivered();
    run.finish();
    wait_for("20 messages", || sub.count() >= 20);
    assert_eq!(sub.seqs(), (0..20).collect::<Vec<_>>());
    assert!(run.warnings.is_empty() && run.errors.is_empty(), "{:?} {:?}", run.warnings, run.errors);

    // Without the client certificate the broker ends the handshake: said, naming the broker; buffers flow.
    let mut run = Run::start(&[("port", &port), ("host", "127.0.0.1"), ("ca-file", &ca), ("flush-timeout", "0")]);
    run.push(5, 1);
    run.all_passed();
    wait_for("the warning", || {
        run.drain();
        !run.warnings.is_empty()
    });
    assert!(run.warnings[0].contains(&format!("127.0.0.1:{port}")), "{:?}", run.warnings);
    run.finish();
    assert_eq!(run.stat("lost"), 5);

    // A key file that is not a key: refused at start, naming it.
    let run = Run::new(&[("port", &port), ("ca-file", &ca), ("cert-file", &cert), ("key-file", &ca)]);
    assert!(run.pipeline.set_state(gst::State::Playing).is_err());
    let err = run.pipeline.bus().unwrap().pop_filtered(&[gst::MessageType::Error]).expect("an error");
    let gst::MessageView::Error(e) = err.view() else { unreachable!() };
    assert!(e.error().to_string().contains(&format!("key-file {ca}")), "{}", e.error());
    run.pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn every_qos_delivers_in_order() {
    let broker = Broker::start(false, "");
    let port = broker.port.to_string();
    for qos in ["0", "1", "2"] {
        let sub = Subscriber::new(broker.port, &format!("qos{qos}/#"), &format!("sub-qos{qos}"));
        let topic = format!("qos{qos}/{{stream}}");
        let mut run = Run::start(&[("port", &port), ("host", "127.0.0.1"), ("qos", qos), ("topic", &topic)]);
        run.push(50, 1);
        run.delivered();
        run.finish();
        wait_for(&format!("50 messages at qos {qos}"), || sub.count() >= 50);
        assert_eq!(sub.seqs(), (0..50).collect::<Vec<_>>(), "qos {qos}");
        assert_eq!((run.stat("sent"), run.stat("lost")), (50, 0), "qos {qos}");
    }
}
