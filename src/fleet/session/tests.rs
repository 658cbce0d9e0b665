//! The session on a virtual clock (`connection`, `flow`: no sockets, no
//! real time) and against a real mosquitto (`broker`).

mod broker;
mod connection;
mod flow;

use bytes::BytesMut;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, Packet, Publish};

use super::*;

pub(super) const T0: u64 = 5_000_000;

pub(super) fn now(ms: u64) -> Now {
    Now {
        mono_ms: ms,
        wall_ms: 1_700_000_000_000 + ms as i64,
    }
}

/// A session plus its virtual clock.
pub(super) struct H {
    pub(super) s: Session,
    pub(super) t: u64,
}

impl H {
    pub(super) fn new(cfg: SessionConfig) -> H {
        H {
            s: Session::new(cfg),
            t: T0,
        }
    }

    pub(super) fn device() -> H {
        let mut cfg = SessionConfig::device("dev1", "picolet");
        cfg.subscriptions = vec![
            "picolet/devices/dev1/desired".into(),
            "picolet/groups/g1/desired".into(),
        ];
        cfg.jitter_seed = 42;
        H::new(cfg)
    }

    pub(super) fn feed(&mut self, input: SessionInput<'_>) -> Vec<SessionOutput> {
        self.s.handle(input, now(self.t));
        std::iter::from_fn(|| self.s.poll_output()).collect()
    }

    pub(super) fn at(&mut self, t: u64) -> Vec<SessionOutput> {
        assert!(t >= self.t, "the virtual clock only goes forward");
        self.t = t;
        self.feed(SessionInput::Tick)
    }

    pub(super) fn bytes(&mut self, b: &[u8]) -> Vec<SessionOutput> {
        self.feed(SessionInput::Bytes(b))
    }

    pub(super) fn packet(&mut self, p: Packet) -> Vec<SessionOutput> {
        self.bytes(&encode(p))
    }

    pub(super) fn timeout(&self) -> u64 {
        self.s.poll_timeout().expect("a timer is armed")
    }

    /// Drives a fresh or waiting session to `Up`; returns the outputs after
    /// the CONNACK.
    pub(super) fn connect(&mut self) -> Vec<SessionOutput> {
        if let State::Waiting { at } = self.s.state {
            assert_eq!(self.at(at.max(self.t)), [SessionOutput::Connect]);
        }
        let sent = self.feed(SessionInput::Connected);
        assert!(matches!(packets(&sent)[..], [Packet::Connect(_)]));
        self.packet(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            false,
        )))
    }

    pub(super) fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: Qos,
        retain: bool,
    ) -> Vec<SessionOutput> {
        self.feed(SessionInput::Publish {
            topic: topic.into(),
            payload: payload.to_vec(),
            qos,
            retain,
        })
    }
}

pub(super) fn encode(p: Packet) -> Vec<u8> {
    let mut b = BytesMut::new();
    p.write(&mut b, usize::MAX).unwrap();
    b.to_vec()
}

/// Every packet written by the `Transmit` outputs, decoded.
pub(super) fn packets(outs: &[SessionOutput]) -> Vec<Packet> {
    let mut buf = BytesMut::new();
    for o in outs {
        if let SessionOutput::Transmit(b) = o {
            buf.extend_from_slice(b);
        }
    }
    let mut ps = Vec::new();
    while !buf.is_empty() {
        ps.push(Packet::read(&mut buf, usize::MAX).unwrap());
    }
    ps
}

pub(super) fn publish_in(topic: &str, payload: &[u8], qos: QoS, pkid: u16, retain: bool) -> Packet {
    let mut p = Publish::new(topic, qos, payload.to_vec());
    p.pkid = pkid;
    p.retain = retain;
    Packet::Publish(p)
}

pub(super) fn not_transmits(outs: &[SessionOutput]) -> Vec<SessionOutput> {
    outs.iter()
        .filter(|o| !matches!(o, SessionOutput::Transmit(_)))
        .cloned()
        .collect()
}
