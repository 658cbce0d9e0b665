//! URL parsing, TLS file errors, and the transport under a real session
//! against a real mosquitto (plain, TLS, mTLS), on the project's reactor.

use std::cell::RefCell;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::*;
use crate::clock::Now;
use crate::fleet::session::{
    Qos, Session, SessionConfig, SessionError, SessionInput, SessionOutput,
};
use crate::fleet::test_broker::{Broker, Pki};
use crate::reactor::{self, Task};

#[test]
fn broker_urls_parse_with_default_ports_and_ipv6_brackets() {
    let u = |s: &str| BrokerUrl::parse(s).unwrap();
    assert_eq!(
        u("mqtt://broker.local"),
        BrokerUrl {
            tls: false,
            host: "broker.local".into(),
            port: 1883
        }
    );
    assert_eq!(u("mqtts://10.0.0.1").port, 8883);
    assert_eq!(u("mqtts://10.0.0.1:18883/").port, 18883);
    let v6 = u("mqtts://[::1]:9000");
    assert_eq!((v6.host.as_str(), v6.port), ("::1", 9000));
    assert_eq!(v6.to_string(), "mqtts://[::1]:9000");
    assert_eq!(u("mqtt://h").to_string(), "mqtt://h:1883");
    for bad in [
        "http://h",
        "mqtt://",
        "mqtt://h:0",
        "mqtt://h:99999",
        "mqtt://::1:1883",
        "mqtt://[nope]:1",
        "mqtt://user@h",
        "mqtt://h/topic",
    ] {
        let e = BrokerUrl::parse(bad).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("bad broker URL {bad:?}")),
            "{e}"
        );
    }
}

#[test]
fn tls_settings_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.crt");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no PEM here\n").unwrap();
    let settings = |ca: &std::path::Path| TlsSettings {
        ca_file: Some(ca.to_path_buf()),
        ..TlsSettings::default()
    };
    let e = tls::client_config(&settings(&missing)).unwrap_err();
    assert!(matches!(e, TransportError::ReadFile { .. }), "{e}");
    assert!(e.to_string().contains("missing.crt"), "{e}");
    let e = tls::client_config(&settings(&empty)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: no certificate in it", empty.display())
    );

    let Some(pki) = Pki::generate(dir.path()) else {
        return;
    };
    let mut s = settings(&pki.path("ca.crt"));
    s.client_cert = Some(pki.path("client.crt"));
    let e = tls::client_config(&s).unwrap_err();
    assert!(matches!(e, TransportError::ClientAuthIncomplete), "{e}");
    s.client_key = Some(pki.path("client.crt"));
    let e = tls::client_config(&s).unwrap_err();
    assert!(matches!(e, TransportError::NoKey { .. }), "{e}");
    s.client_key = Some(pki.path("client.key"));
    tls::client_config(&s).unwrap();
}

#[test]
fn system_roots_come_from_the_distribution_bundle() {
    if !std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        eprintln!("SKIP: no /etc/ssl/certs/ca-certificates.crt (ca-certificates not installed)");
        return;
    }
    let roots = tls::system_roots().unwrap();
    assert!(roots.len() > 20, "only {} roots", roots.len());
    tls::client_config(&TlsSettings::default()).unwrap();
}

#[test]
fn connecting_to_a_closed_port_names_the_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = BrokerUrl::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();
    let e = reactor::block_on(connect(&url, &TlsSettings::default())).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")),
        "{e}"
    );
}

/// What the reader task hands to the shell loop, tagged with the
/// connection's generation so a dead connection's leftovers are ignored.
enum Ev {
    Bytes(u64, Vec<u8>),
    Closed(u64, String),
}

/// The agent's shell in miniature: one task reads the transport into a
/// channel while the loop writes to it, on the single-threaded reactor.
struct Shell {
    s: Session,
    url: BrokerUrl,
    tls: TlsSettings,
    conn: Option<(Transport, Task<()>)>,
    generation: u64,
    tx: async_channel::Sender<Ev>,
    rx: async_channel::Receiver<Ev>,
    errors: Vec<SessionError>,
    /// Messages that came out while waiting for something else.
    inbox: Vec<SessionOutput>,
    /// Thread counts sampled while running (see the no-thread test).
    samples: Rc<RefCell<Vec<usize>>>,
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

impl Shell {
    fn new(cfg: SessionConfig, url: &str, tls: TlsSettings) -> Shell {
        let (tx, rx) = async_channel::unbounded();
        Shell {
            s: Session::new(cfg),
            url: BrokerUrl::parse(url).unwrap(),
            tls,
            conn: None,
            generation: 0,
            tx,
            rx,
            errors: Vec::new(),
            inbox: Vec::new(),
            samples: Rc::default(),
        }
    }

    fn handle(&mut self, input: SessionInput<'_>) {
        self.s.handle(input, Now::read());
    }

    async fn open(&mut self) {
        let attempt = reactor::timeout(Duration::from_secs(10), connect(&self.url, &self.tls));
        match attempt.await {
            Ok(Ok(t)) => {
                self.generation += 1;
                let (g, tx, reader) = (self.generation, self.tx.clone(), t.clone());
                let samples = self.samples.clone();
                let task = reactor::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    loop {
                        let ev = match reader.read(&mut buf).await {
                            Ok(0) => Ev::Closed(g, "end of stream".into()),
                            Ok(n) => Ev::Bytes(g, buf[..n].to_vec()),
                            Err(e) => Ev::Closed(g, e.to_string()),
                        };
                        samples.borrow_mut().push(thread_count());
                        let closed = matches!(ev, Ev::Closed(..));
                        let _ = tx.send(ev).await;
                        if closed {
                            return;
                        }
                    }
                });
                self.conn = Some((t, task));
                self.handle(SessionInput::Connected);
            }
            Ok(Err(e)) => self.handle(SessionInput::Disconnected(e.to_string())),
            Err(e) => self.handle(SessionInput::Disconnected(e.to_string())),
        }
    }

    /// Runs until an output matching `want` (returned), or a session error
    /// when `stop_on_error` (returned as `Err`), or `limit` (panics).
    async fn run(
        &mut self,
        limit: Duration,
        stop_on_error: bool,
        mut want: impl FnMut(&SessionOutput) -> bool,
    ) -> Result<SessionOutput, SessionError> {
        let start = Instant::now();
        loop {
            self.samples.borrow_mut().push(thread_count());
            while let Some(o) = self.s.poll_output() {
                match o {
                    SessionOutput::Connect => self.open().await,
                    SessionOutput::Transmit(b) => {
                        let res = match &self.conn {
                            Some((t, _)) => t.write_all(&b).await,
                            None => Ok(()),
                        };
                        if let Err(e) = res {
                            self.conn = None;
                            self.handle(SessionInput::Disconnected(e.to_string()));
                        }
                    }
                    SessionOutput::Close => self.conn = None,
                    o if want(&o) => return Ok(o),
                    SessionOutput::Error(e) if stop_on_error => return Err(e),
                    SessionOutput::Error(e) => self.errors.push(e),
                    o @ SessionOutput::Message { .. } => self.inbox.push(o),
                    _ => {}
                }
            }
            let elapsed = start.elapsed();
            assert!(
                elapsed < limit,
                "timed out; errors so far: {:?}",
                self.errors
            );
            let due = self.s.poll_timeout().unwrap_or(u64::MAX);
            let wait =
                Duration::from_millis(due.saturating_sub(Now::read().mono_ms)).min(limit - elapsed);
            match reactor::timeout(wait, self.rx.recv()).await {
                Ok(Ok(Ev::Bytes(g, b))) if g == self.generation => {
                    self.handle(SessionInput::Bytes(&b))
                }
                Ok(Ok(Ev::Closed(g, why))) if g == self.generation => {
                    self.conn = None;
                    self.handle(SessionInput::Disconnected(why));
                }
                _ => self.handle(SessionInput::Tick),
            }
        }
    }

    async fn up(&mut self) -> Result<(), SessionError> {
        let up = |o: &SessionOutput| matches!(o, SessionOutput::ConnectionUp { .. });
        self.run(Duration::from_secs(15), true, up)
            .await
            .map(|_| ())
    }

    async fn publish_retained(&mut self, topic: &str, payload: &[u8]) {
        self.handle(SessionInput::Publish {
            topic: topic.into(),
            payload: payload.to_vec(),
            qos: Qos::AtLeastOnce,
            retain: true,
        });
        let delivered = |o: &SessionOutput| matches!(o, SessionOutput::Delivered { .. });
        self.run(Duration::from_secs(10), true, delivered)
            .await
            .unwrap();
    }

    async fn message(&mut self) -> (String, Vec<u8>) {
        let msg = |o: &SessionOutput| matches!(o, SessionOutput::Message { .. });
        let next = match self.inbox.is_empty() {
            true => self.run(Duration::from_secs(10), true, msg).await.unwrap(),
            false => self.inbox.remove(0),
        };
        match next {
            SessionOutput::Message { topic, payload, .. } => (topic, payload),
            _ => unreachable!(),
        }
    }
}

const DESIRED: &str = "picolet/devices/dev1/desired";

fn device(url: &str, tls: TlsSettings) -> Shell {
    let mut cfg = SessionConfig::device("dev1", "picolet");
    cfg.subscriptions = vec![DESIRED.into()];
    Shell::new(cfg, url, tls)
}

fn mtls(pki: &Pki) -> TlsSettings {
    TlsSettings {
        ca_file: Some(pki.path("ca.crt")),
        client_cert: Some(pki.path("client.crt")),
        client_key: Some(pki.path("client.key")),
    }
}

/// Listener 0: mTLS (127.0.0.1/localhost certificate); 1: plain MQTT;
/// 2: TLS with a certificate for `wrong.example` only.
fn tls_broker(dir: &std::path::Path) -> Option<(Pki, Broker)> {
    let pki = Pki::generate(dir)?;
    let broker = Broker::start(&[
        &pki.listener("server", true),
        "",
        &pki.listener("wrong-name", false),
    ])?;
    Some((pki, broker))
}

/// The controller publishes a retained desired document over plain MQTT;
/// the device gets it over mTLS: CONNECT, CONNACK, SUBSCRIBE, PUBLISH.
fn mtls_round_trip(pki: &Pki, broker: &Broker) -> (Shell, (String, Vec<u8>)) {
    reactor::block_on(async {
        let mut ctl = Shell::new(
            SessionConfig::new("controller"),
            &format!("mqtt://127.0.0.1:{}", broker.ports[1]),
            TlsSettings::default(),
        );
        ctl.up().await.unwrap();
        ctl.publish_retained(DESIRED, b"{\"revision\":4}").await;

        let url = format!("mqtts://127.0.0.1:{}", broker.ports[0]);
        let mut dev = device(&url, mtls(pki));
        dev.up().await.unwrap();
        assert!(dev.conn.as_ref().unwrap().0.is_tls());
        let msg = dev.message().await;
        (dev, msg)
    })
}

#[test]
fn mtls_session_connects_subscribes_and_receives_a_publish() {
    let dir = tempfile::tempdir().unwrap();
    let Some((pki, broker)) = tls_broker(dir.path()) else {
        return;
    };
    let (_, msg) = mtls_round_trip(&pki, &broker);
    assert_eq!(msg, (DESIRED.to_string(), b"{\"revision\":4}".to_vec()));
}

#[test]
fn localhost_is_verified_against_the_certificate_dns_name() {
    let dir = tempfile::tempdir().unwrap();
    let Some((pki, broker)) = tls_broker(dir.path()) else {
        return;
    };
    let mut dev = device(
        &format!("mqtts://localhost:{}", broker.ports[0]),
        mtls(&pki),
    );
    reactor::block_on(dev.up()).unwrap();
}

/// Connects once and returns the first session error.
fn refused(url: &str, tls: TlsSettings) -> String {
    let mut dev = device(url, tls);
    match reactor::block_on(dev.up()) {
        Ok(()) => panic!("{url} connected"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_server_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Some((pki, broker)) = tls_broker(dir.path()) else {
        return;
    };
    let url = format!("mqtts://127.0.0.1:{}", broker.ports[0]);
    let tls = TlsSettings {
        ca_file: Some(pki.path("other-ca.crt")),
        ..mtls(&pki)
    };
    let e = reactor::block_on(connect(&BrokerUrl::parse(&url).unwrap(), &tls)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "TLS with 127.0.0.1:{}: invalid peer certificate: UnknownIssuer",
            broker.ports[0]
        )
    );
    let e = refused(&url, tls);
    assert!(e.contains("invalid peer certificate: UnknownIssuer"), "{e}");
}

#[test]
fn a_server_certificate_for_another_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Some((pki, broker)) = tls_broker(dir.path()) else {
        return;
    };
    let e = refused(
        &format!("mqtts://127.0.0.1:{}", broker.ports[2]),
        mtls(&pki),
    );
    assert!(
        e.contains("invalid peer certificate: certificate not valid for name \"127.0.0.1\""),
        "{e}"
    );
}

#[test]
fn a_client_without_certificate_is_refused_by_an_mtls_broker() {
    let dir = tempfile::tempdir().unwrap();
    let Some((pki, broker)) = tls_broker(dir.path()) else {
        return;
    };
    let tls = TlsSettings {
        ca_file: Some(pki.path("ca.crt")),
        ..TlsSettings::default()
    };
    // TLS 1.3: our handshake completes, then the broker's alert arrives
    // instead of the CONNACK.
    let e = refused(&format!("mqtts://127.0.0.1:{}", broker.ports[0]), tls);
    assert!(
        e.starts_with("connection lost: TLS with 127.0.0.1:")
            && e.contains("received fatal alert: CertificateRequired"),
        "{e}"
    );
}

#[test]
fn plain_mqtt_session_connects_and_round_trips_a_publish() {
    let Some(broker) = Broker::start(&[""]) else {
        return;
    };
    let url = format!("mqtt://127.0.0.1:{}", broker.ports[0]);
    reactor::block_on(async {
        let mut dev = device(&url, TlsSettings::default());
        dev.up().await.unwrap();
        assert!(!dev.conn.as_ref().unwrap().0.is_tls());
        dev.publish_retained(DESIRED, b"{\"revision\":9}").await;
        assert_eq!(dev.message().await.1, b"{\"revision\":9}");
        // A polite close: the broker sees the end of the stream.
        let (t, _task) = dev.conn.take().unwrap();
        t.close().await.unwrap();
    });
}

const CHILD_ENV: &str = "PICOLET_FLEET_THREAD_CHECK_CHILD";
const THREAD_TEST: &str = "fleet::transport::tests::mtls_session_on_the_reactor_starts_no_thread";

#[test]
fn mtls_session_on_the_reactor_starts_no_thread() {
    if std::env::var_os(CHILD_ENV).is_none() {
        if let Some(why) = crate::check::qemu_user() {
            eprintln!(
                "skipped: {why}: the check re-executes this test binary, which the kernel \
                 cannot exec without binfmt_misc (and qemu-user has threads of its own)"
            );
            return;
        }
        let out = Command::new(std::env::current_exe().unwrap())
            .args([THREAD_TEST, "--exact", "--test-threads=1", "--nocapture"])
            .env(CHILD_ENV, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
        assert!(
            stdout.contains("1 passed")
                && (stdout.contains("threads before=") || stderr.contains("SKIP")),
            "the check did not run in the child:\n{stdout}\n{stderr}"
        );
        return;
    }
    // In the child: one test thread, nothing else starts or ends threads.
    let dir = tempfile::tempdir().unwrap();
    let Some((pki, broker)) = tls_broker(dir.path()) else {
        return;
    };
    let before = thread_count();
    let (dev, msg) = mtls_round_trip(&pki, &broker);
    assert_eq!(msg.1, b"{\"revision\":4}");
    let after = thread_count();
    let samples = dev.samples.borrow();
    println!(
        "threads before={before} after={after} samples={}",
        samples.len()
    );
    assert!(samples.len() > 5, "too few samples: {samples:?}");
    assert!(
        samples.iter().all(|&n| n == before) && after == before,
        "threads appeared: before={before} after={after} during={samples:?}"
    );
}

/// A stand-in for `picolet resolve`: a script in a tempdir.
fn fake_resolver(dir: &Path, body: &str) -> PathBuf {
    crate::testutil::script(dir, "resolver", body)
}

#[test]
fn a_host_name_is_looked_up_by_a_child_that_gets_resolve_host_port() {
    let dir = tempfile::tempdir().unwrap();
    let program = fake_resolver(
        dir.path(),
        r#"[ "$1 $2" = "resolve broker.lan" ] || exit 9; echo "10.0.0.7:$3"; echo "[fd00::7]:$3""#,
    );
    let addrs = reactor::block_on(lookup_with(&program, "broker.lan", 8883)).unwrap();
    assert_eq!(
        addrs,
        [
            "10.0.0.7:8883".parse::<SocketAddr>().unwrap(),
            "[fd00::7]:8883".parse().unwrap()
        ]
    );
}

#[test]
fn a_failed_lookup_names_the_host_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let program = fake_resolver(dir.path(), "echo 'error: no such host'; exit 1");
    let e = reactor::block_on(lookup_with(&program, "nowhere.lan", 1883)).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("cannot resolve nowhere.lan: no such host"),
        "{text}"
    );
    let program = fake_resolver(dir.path(), "echo garbage");
    let e = reactor::block_on(lookup_with(&program, "x.lan", 1883)).unwrap_err();
    assert!(e.to_string().contains("lookup printed \"garbage\""), "{e}");
}

#[test]
fn ip_literals_and_localhost_need_no_lookup() {
    let got = reactor::block_on(resolve("192.0.2.1", 1)).unwrap();
    assert_eq!(got, ["192.0.2.1:1".parse::<SocketAddr>().unwrap()]);
    let got = reactor::block_on(resolve("LOCALHOST", 2)).unwrap();
    assert_eq!(got[0], "127.0.0.1:2".parse::<SocketAddr>().unwrap());
}
