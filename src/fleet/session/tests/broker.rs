//! The session against a real mosquitto, driven over a blocking
//! `std::net::TcpStream` by a minimal shell written here.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::*;
use crate::fleet::test_broker::Broker;

/// A blocking shell: one socket, reads with a 10 ms timeout.
struct Client {
    s: Session,
    addr: SocketAddr,
    sock: Option<TcpStream>,
    /// Outputs seen and not asked for, for failure messages.
    seen: Vec<SessionOutput>,
    /// PINGREQs written and PINGRESPs read (as whole 2-byte writes/reads).
    pings: (usize, usize),
}

impl Client {
    fn new(cfg: SessionConfig, addr: SocketAddr) -> Client {
        Client {
            s: Session::new(cfg),
            addr,
            sock: None,
            seen: Vec::new(),
            pings: (0, 0),
        }
    }

    fn handle(&mut self, input: SessionInput<'_>) {
        self.s.handle(input, Now::read());
    }

    /// Runs the shell until an output matching `want` comes out, or panics
    /// after `limit`.
    fn run_until(
        &mut self,
        limit: Duration,
        want: impl FnMut(&SessionOutput) -> bool,
    ) -> SessionOutput {
        match self.pump(limit, want) {
            Some(o) => o,
            None => panic!("timed out after {limit:?}; seen {:?}", self.seen),
        }
    }

    /// Runs the shell for `d`, whatever comes out.
    fn run_for(&mut self, d: Duration) {
        self.pump(d, |_| false);
    }

    /// Runs the shell until an output matching `want` comes out (returned)
    /// or `limit` passes (`None`).
    fn pump(
        &mut self,
        limit: Duration,
        mut want: impl FnMut(&SessionOutput) -> bool,
    ) -> Option<SessionOutput> {
        let start = Instant::now();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            while let Some(o) = self.s.poll_output() {
                match o {
                    SessionOutput::Connect => match TcpStream::connect(self.addr) {
                        Ok(sock) => {
                            sock.set_read_timeout(Some(Duration::from_millis(10)))
                                .unwrap();
                            self.sock = Some(sock);
                            self.handle(SessionInput::Connected);
                        }
                        Err(e) => self.handle(SessionInput::Disconnected(e.to_string())),
                    },
                    SessionOutput::Transmit(b) => {
                        self.pings.0 += usize::from(b == [0xC0, 0x00]);
                        let res = match &mut self.sock {
                            Some(sock) => sock.write_all(&b),
                            None => Ok(()),
                        };
                        if let Err(e) = res {
                            self.sock = None;
                            self.handle(SessionInput::Disconnected(e.to_string()));
                        }
                    }
                    SessionOutput::Close => self.sock = None,
                    o if want(&o) => return Some(o),
                    o => self.seen.push(o),
                }
            }
            if start.elapsed() >= limit {
                return None;
            }
            let read = match &mut self.sock {
                Some(sock) => Some(sock.read(&mut buf)),
                None => {
                    std::thread::sleep(Duration::from_millis(10));
                    None
                }
            };
            match read {
                Some(Ok(0)) => {
                    self.sock = None;
                    self.handle(SessionInput::Disconnected("end of stream".into()));
                }
                Some(Ok(n)) => {
                    self.pings.1 += usize::from(buf[..n] == [0xD0, 0x00]);
                    self.handle(SessionInput::Bytes(&buf[..n]));
                }
                Some(Err(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                }
                Some(Err(e)) => {
                    self.sock = None;
                    self.handle(SessionInput::Disconnected(e.to_string()));
                }
                None => {}
            }
            self.handle(SessionInput::Tick);
        }
    }

    fn up(&mut self) -> bool {
        match self.run_until(SECS_10, |o| matches!(o, SessionOutput::ConnectionUp { .. })) {
            SessionOutput::ConnectionUp { session_present } => session_present,
            _ => unreachable!(),
        }
    }

    fn publish(&mut self, topic: &str, payload: &[u8], retain: bool) {
        self.handle(SessionInput::Publish {
            topic: topic.into(),
            payload: payload.to_vec(),
            qos: Qos::AtLeastOnce,
            retain,
        });
        let t = topic.to_string();
        self.run_until(
            SECS_10,
            |o| matches!(o, SessionOutput::Delivered { topic } if *topic == t),
        );
    }

    /// Returns once every packet written so far was handled by the broker
    /// (it handles one client's packets in order).
    fn sync(&mut self) {
        self.publish("picolet/test/sync", b"", false);
    }

    fn message(&mut self, topic: &str) -> (Vec<u8>, bool) {
        let t = topic.to_string();
        match self.run_until(
            SECS_10,
            |o| matches!(o, SessionOutput::Message { topic, .. } if *topic == t),
        ) {
            SessionOutput::Message {
                payload, retained, ..
            } => (payload, retained),
            _ => unreachable!(),
        }
    }
}

const SECS_10: Duration = Duration::from_secs(10);
const DESIRED: &str = "picolet/devices/devA/desired";
const ONLINE: &str = "picolet/devices/devA/online";

fn device(addr: SocketAddr) -> Client {
    let mut cfg = SessionConfig::device("devA", "picolet");
    cfg.subscriptions = vec![DESIRED.into()];
    Client::new(cfg, addr)
}

fn controller(addr: SocketAddr, subscriptions: &[&str]) -> Client {
    let mut cfg = SessionConfig::new("controller");
    cfg.clean_session = true;
    cfg.subscriptions = subscriptions.iter().map(|s| s.to_string()).collect();
    Client::new(cfg, addr)
}

#[test]
fn mosquitto_delivers_retained_desired_state_and_publishes_the_will_when_the_device_vanishes() {
    let Some(broker) = Broker::start(&[""]) else {
        return;
    };
    let mut ctl = controller(broker.addr(0), &[ONLINE]);
    ctl.up();
    ctl.publish(DESIRED, b"{\"revision\":1}", true);

    let mut dev = device(broker.addr(0));
    dev.up();
    assert_eq!(dev.message(DESIRED), (b"{\"revision\":1}".to_vec(), true));
    dev.publish(ONLINE, b"true", true);
    assert_eq!(ctl.message(ONLINE).0, b"true");

    // The device vanishes without DISCONNECT: the broker publishes its will.
    drop(dev);
    assert_eq!(ctl.message(ONLINE), (b"false".to_vec(), false));
}

#[test]
fn mosquitto_keeps_qos1_messages_for_the_persistent_session_while_the_device_is_away() {
    let Some(broker) = Broker::start(&[""]) else {
        return;
    };
    let mut dev = device(broker.addr(0));
    assert!(!dev.up(), "a fresh client id has no session yet");
    dev.sync();
    dev.handle(SessionInput::Shutdown);
    dev.run_until(SECS_10, |o| *o == SessionOutput::ConnectionDown);

    let mut ctl = controller(broker.addr(0), &[]);
    ctl.up();
    ctl.publish(DESIRED, b"{\"revision\":2}", false);

    // The agent restarts: a new Session with the same client id.
    let mut dev = device(broker.addr(0));
    assert!(dev.up(), "session_present after clean_session=false");
    assert_eq!(dev.message(DESIRED), (b"{\"revision\":2}".to_vec(), false));
}

#[test]
fn keepalive_pings_hold_a_quiet_connection_to_mosquitto_up() {
    let Some(broker) = Broker::start(&[""]) else {
        return;
    };
    let mut cfg = SessionConfig::new("quiet");
    cfg.keepalive_s = 1;
    cfg.response_timeout_ms = 900;
    let mut dev = Client::new(cfg, broker.addr(0));
    dev.up();
    // 3.5 s of quiet: a PINGREQ every second, each answered within 0.9 s,
    // or the session would have declared the connection dead.
    dev.run_for(Duration::from_millis(3500));
    assert!(
        dev.pings.0 >= 3 && dev.pings.1 >= 3,
        "pings {:?}",
        dev.pings
    );
    assert!(dev.s.is_up(), "still up; seen {:?}", dev.seen);
    assert!(
        !dev.seen.contains(&SessionOutput::ConnectionDown),
        "{:?}",
        dev.seen
    );
}

#[test]
fn session_reconnects_when_mosquitto_comes_back_and_resends_what_was_in_flight() {
    let Some(mut broker) = Broker::start(&[""]) else {
        return;
    };
    let mut dev = device(broker.addr(0));
    dev.up();
    broker.stop();
    dev.run_until(SECS_10, |o| *o == SessionOutput::ConnectionDown);
    // Published while the broker is away: kept in flight.
    dev.handle(SessionInput::Publish {
        topic: "picolet/devices/devA/status".into(),
        payload: b"{\"observedRevision\":7}".to_vec(),
        qos: Qos::AtLeastOnce,
        retain: true,
    });
    broker.restart();
    let started = Instant::now();
    dev.up();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "reconnected within the back-off"
    );
    dev.run_until(SECS_10, |o| matches!(o, SessionOutput::Delivered { .. }));
    let mut ctl = controller(broker.addr(0), &["picolet/devices/devA/status"]);
    ctl.up();
    assert_eq!(
        ctl.message("picolet/devices/devA/status"),
        (b"{\"observedRevision\":7}".to_vec(), true)
    );
}

#[test]
fn an_oversized_message_from_mosquitto_is_consumed_and_never_redelivered() {
    let Some(broker) = Broker::start(&[""]) else {
        return;
    };
    let mut cfg = SessionConfig::device("devA", "picolet");
    cfg.subscriptions = vec![DESIRED.into()];
    cfg.max_packet_size = 4096;
    let mut dev = Client::new(cfg.clone(), broker.addr(0));
    dev.up();
    dev.sync();
    let mut ctl = controller(broker.addr(0), &[]);
    ctl.up();
    ctl.publish(DESIRED, &vec![b'x'; 10_000], false);
    ctl.publish(DESIRED, b"{\"revision\":2}", false);
    let e = dev.run_until(SECS_10, |o| matches!(o, SessionOutput::Error(_)));
    assert!(
        matches!(
            &e,
            SessionOutput::Error(SessionError::MessageTooLarge {
                max: 4096,
                payload: 10_000,
                retained: false,
                ..
            })
        ),
        "{e:?}"
    );
    // The next message comes on the same connection.
    assert_eq!(dev.message(DESIRED), (b"{\"revision\":2}".to_vec(), false));
    assert!(
        !dev.seen.contains(&SessionOutput::ConnectionDown),
        "{:?}",
        dev.seen
    );
    // Acknowledged: after a restart on the persistent session, mosquitto
    // has nothing left to send.
    dev.handle(SessionInput::Shutdown);
    dev.run_until(SECS_10, |o| *o == SessionOutput::ConnectionDown);
    let mut dev = Client::new(cfg, broker.addr(0));
    assert!(dev.up(), "session present");
    dev.sync();
    dev.run_for(Duration::from_millis(300));
    assert!(
        !dev.seen
            .iter()
            .any(|o| matches!(o, SessionOutput::Message { .. } | SessionOutput::Error(_))),
        "{:?}",
        dev.seen
    );
}
