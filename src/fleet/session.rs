//! The MQTT 3.1.1 client session, sans-IO (DESIGN §2, §5).
//!
//! [`Session`] decides everything about the broker connection — CONNECT,
//! keepalive, subscriptions, acknowledgements, the in-flight queue and the
//! reconnect back-off — and does none of it: it opens no socket, reads no
//! clock and starts no thread. Packets are encoded and decoded with
//! rumqttc's `mqttbytes::v4` codec. Time comes in as [`Now`]; every timer
//! uses `mono_ms`.
//!
//! # How the I/O shell drives it
//! - Call `handle(SessionInput::Tick, now)` when [`Session::poll_timeout`]
//!   (mono ms) is due, and drain [`Session::poll_output`] after every
//!   `handle`. A new session is due at once (`poll_timeout() == Some(0)`).
//! - [`SessionOutput::Connect`]: open a transport; report
//!   [`SessionInput::Connected`] or [`SessionInput::Disconnected`].
//! - [`SessionOutput::Transmit`]: write all the bytes, in order.
//! - Bytes read: [`SessionInput::Bytes`]; end of stream or a read/write
//!   error: [`SessionInput::Disconnected`].
//! - [`SessionOutput::Close`]: drop the transport, or abandon the connect
//!   attempt in progress. Nothing needs reporting back.
//!
//! # Behaviour
//! - CONNECT carries the client id, `clean_session` (default `false`, so
//!   the broker keeps the subscriptions and queues QoS 1 messages while the
//!   device is away), the keepalive, the optional credentials (a password is
//!   only sent with a user name) and the optional last will, always QoS 1.
//! - The whole attempt (transport up, then CONNACK) must finish within
//!   `connect_timeout_ms` (default 20 s), else `Error`, `Close` and back-off.
//! - After every accepted CONNACK: `ConnectionUp`, one SUBSCRIBE (QoS 1) of
//!   every configured topic, then every queued QoS 1 publish in order (DUP=1
//!   for those sent on an earlier connection).
//! - Keepalive (default 30 s): a PINGREQ goes out when nothing was sent or
//!   nothing was received for `keepalive`. If then nothing at all arrives
//!   within `response_timeout_ms` (default 10 s), the connection is dead:
//!   `Error`, `Close`, `ConnectionDown`. So a silent broker is detected
//!   within keepalive + 10 s = 40 s by default.
//! - Inbound QoS 1 PUBLISHes are PUBACKed before they are handed out as
//!   [`SessionOutput::Message`] (QoS 2, which we never subscribe with, is
//!   PUBRECed and PUBCOMPed). Delivery is at least once: a redelivered
//!   message comes out again.
//! - Outbound QoS 1 publishes are queued (see `outbox`) until their PUBACK
//!   ([`SessionOutput::Delivered`]). QoS 0 publishes are sent only while the
//!   connection is up and dropped otherwise.
//! - Back-off: 1 s doubling to 60 s, minus up to a quarter of jitter drawn
//!   from `jitter_seed`; reset by an accepted CONNACK (see `backoff`).
//! - An inbound PUBLISH whose fixed header announces more than
//!   `max_packet_size` bytes (default 1 MiB, counted after the fixed header)
//!   is **consumed without being buffered**: once its variable header (topic
//!   and packet id, at most 65,544 bytes) is in, the rest of the packet is
//!   counted off as it streams in and dropped, chunk by chunk. After its last
//!   byte it is acknowledged like any other (QoS 1: PUBACK; QoS 2: PUBREC),
//!   so the broker never sends it again (MQTT 3.1.1 §4.3.2: a QoS 1 PUBLISH
//!   is consumed once acknowledged), and `Error(MessageTooLarge)` names its
//!   topic, payload size and the limit. The connection stays up: one
//!   oversized message cannot wedge the channel by being redelivered on
//!   every reconnect. Any other packet type over the limit is refused from
//!   its header: `Error(PacketTooLarge)`, `Close`.
//! - The receive buffer never holds more than one packet of at most
//!   `max_packet_size` (or the head of an oversized PUBLISH) plus the last
//!   chunk read.
//!
//! Outputs on a failure come in this order: `Error`, then `Close` when the
//! session drops the connection itself, then `ConnectionDown` when a
//! `ConnectionUp` came before.

mod backoff;
mod outbox;
mod packets;
mod types;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, LastWill, Login, Packet, PubAck, PubComp, PubRec, Publish,
    SubAck, Subscribe, SubscribeFilter, SubscribeReasonCode, Unsubscribe,
};
use rumqttc::mqttbytes::{self, QoS};

use crate::clock::Now;
use backoff::Backoff;
use outbox::{Outbox, Outgoing};
use packets::{
    Head, PublishHead, check_publish, dedup, packet_name, publish_head, publish_packet,
    refusal_reason,
};
pub use types::{
    BACKOFF_MAX_MS, BACKOFF_MIN_MS, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_KEEPALIVE_S,
    DEFAULT_MAX_PACKET_SIZE, DEFAULT_MAX_QUEUED, DEFAULT_RESPONSE_TIMEOUT_MS, Qos, SessionConfig,
    SessionError, SessionInput, SessionOutput, Will,
};

/// A receive buffer left larger than this by a big packet is freed.
const RX_KEEP_CAPACITY: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting until `at` to start the next attempt.
    Waiting {
        at: u64,
    },
    /// `Connect` asked; waiting for `Connected`.
    Opening {
        deadline: u64,
    },
    /// CONNECT sent; waiting for CONNACK.
    Handshake {
        deadline: u64,
    },
    Up,
    Stopped,
}

/// A SUBSCRIBE or UNSUBSCRIBE waiting for its acknowledgement.
#[derive(Debug)]
enum Pending {
    Subscribe(Vec<String>),
    Unsubscribe,
}

/// The sans-IO MQTT client session: see the module docs.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    state: State,
    backoff: Backoff,
    outbox: Outbox,
    subscriptions: Vec<String>,
    /// Per connection: acknowledgements still due, by packet id.
    pending: HashMap<u16, Pending>,
    rx: BytesMut,
    /// The oversized PUBLISH being consumed, and its bytes still to come.
    discard: Option<(PublishHead, usize)>,
    out: VecDeque<SessionOutput>,
    last_tx: u64,
    last_rx: u64,
    ping_sent: Option<u64>,
}

impl Session {
    pub fn new(cfg: SessionConfig) -> Session {
        Session {
            state: State::Waiting { at: 0 },
            backoff: Backoff::new(cfg.backoff_min_ms, cfg.backoff_max_ms, cfg.jitter_seed),
            outbox: Outbox::new(cfg.max_queued),
            subscriptions: dedup(cfg.subscriptions.clone()),
            pending: HashMap::new(),
            rx: BytesMut::new(),
            discard: None,
            out: VecDeque::new(),
            last_tx: 0,
            last_rx: 0,
            ping_sent: None,
            cfg,
        }
    }

    /// Feeds one input, then fires the timers due at `now`.
    pub fn handle(&mut self, input: SessionInput<'_>, now: Now) {
        let t = now.mono_ms;
        match input {
            SessionInput::Tick => {}
            SessionInput::Connected => self.on_connected(t),
            SessionInput::Bytes(b) => self.on_bytes(b, t),
            SessionInput::Disconnected(reason) => {
                if self.is_connecting_or_up() {
                    self.fail(SessionError::Transport(reason), false, t);
                }
            }
            SessionInput::Publish {
                topic,
                payload,
                qos,
                retain,
            } => self.publish(topic, payload, qos, retain, t),
            SessionInput::Subscribe(topics) => self.subscribe(topics, t),
            SessionInput::Unsubscribe(topics) => self.unsubscribe(topics, t),
            SessionInput::Shutdown => self.shutdown(t),
        }
        self.fire_timers(t);
    }

    /// The next output, in order. Drain after every `handle`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<SessionOutput> {
        self.out.pop_front()
    }

    /// The mono time (ms) at which `handle(Tick, now)` is due next; `None`
    /// after `Shutdown`, or while up with keepalive disabled.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.state {
            State::Waiting { at } => Some(at),
            State::Opening { deadline } | State::Handshake { deadline } => Some(deadline),
            State::Up => {
                let ka = self.keepalive_ms()?;
                Some(match self.ping_sent {
                    Some(sent) => sent + self.cfg.response_timeout_ms,
                    None => self.last_tx.min(self.last_rx) + ka,
                })
            }
            State::Stopped => None,
        }
    }

    /// True between an accepted CONNACK and the end of that connection.
    pub fn is_up(&self) -> bool {
        self.state == State::Up
    }

    /// QoS 1 publishes not yet acknowledged by the broker.
    pub fn in_flight(&self) -> usize {
        self.outbox.len()
    }

    /// The topic filters subscribed after every CONNACK.
    pub fn subscriptions(&self) -> &[String] {
        &self.subscriptions
    }

    fn keepalive_ms(&self) -> Option<u64> {
        match self.cfg.keepalive_s {
            0 => None,
            s => Some(u64::from(s) * 1000),
        }
    }

    fn is_connecting_or_up(&self) -> bool {
        matches!(
            self.state,
            State::Opening { .. } | State::Handshake { .. } | State::Up
        )
    }

    fn fire_timers(&mut self, t: u64) {
        match self.state {
            State::Waiting { at } if t >= at => {
                self.out.push_back(SessionOutput::Connect);
                self.state = State::Opening {
                    deadline: t + self.cfg.connect_timeout_ms,
                };
            }
            State::Opening { deadline } | State::Handshake { deadline } if t >= deadline => {
                let e = SessionError::ConnectTimeout(self.cfg.connect_timeout_ms);
                self.fail(e, true, t);
            }
            State::Up => {
                let Some(ka) = self.keepalive_ms() else {
                    return;
                };
                match self.ping_sent {
                    Some(sent) if t >= sent + self.cfg.response_timeout_ms => {
                        let e = SessionError::KeepaliveTimeout(self.cfg.response_timeout_ms);
                        self.fail(e, true, t);
                    }
                    Some(_) => {}
                    None if t >= self.last_tx.min(self.last_rx) + ka => {
                        self.send(Packet::PingReq, t);
                        self.ping_sent = Some(t);
                    }
                    None => {}
                }
            }
            _ => {}
        }
    }

    /// Ends the attempt or the connection and schedules the next attempt.
    fn fail(&mut self, e: SessionError, close: bool, t: u64) {
        self.out.push_back(SessionOutput::Error(e));
        if close {
            self.out.push_back(SessionOutput::Close);
        }
        if self.state == State::Up {
            self.out.push_back(SessionOutput::ConnectionDown);
        }
        self.reset_connection();
        self.state = State::Waiting {
            at: t + self.backoff.next_delay_ms(),
        };
    }

    fn reset_connection(&mut self) {
        self.rx = BytesMut::new();
        self.discard = None;
        self.pending.clear();
        self.ping_sent = None;
    }

    fn on_connected(&mut self, t: u64) {
        match self.state {
            State::Opening { deadline } => {
                self.state = State::Handshake { deadline };
                self.reset_connection();
                let connect = self.connect_packet();
                // The keepalive clock restarts at the CONNACK.
                self.send(Packet::Connect(connect), t);
            }
            // A transport nobody asked for (any more): drop it.
            State::Waiting { .. } | State::Stopped => self.out.push_back(SessionOutput::Close),
            State::Handshake { .. } | State::Up => {}
        }
    }

    fn connect_packet(&self) -> Connect {
        let mut c = Connect::new(self.cfg.client_id.clone());
        c.keep_alive = self.cfg.keepalive_s;
        c.clean_session = self.cfg.clean_session;
        c.last_will = self.cfg.will.as_ref().map(|w| {
            LastWill::new(
                w.topic.clone(),
                w.payload.clone(),
                QoS::AtLeastOnce,
                w.retain,
            )
        });
        c.login = self
            .cfg
            .username
            .as_ref()
            .map(|u| Login::new(u.clone(), self.cfg.password.clone().unwrap_or_default()));
        c
    }

    fn on_bytes(&mut self, b: &[u8], t: u64) {
        #[cfg(test)]
        crate::testutil::fuzz_seed("mqtt_packets", b);
        if !matches!(self.state, State::Handshake { .. } | State::Up) || b.is_empty() {
            return;
        }
        // Any byte shows the connection is alive.
        self.last_rx = t;
        self.ping_sent = None;
        let b = self.skip_discarded(b, t);
        self.rx.extend_from_slice(b);
        let max = self.cfg.max_packet_size;
        loop {
            match mqttbytes::check(self.rx.iter(), max) {
                Ok(_) => {}
                Err(mqttbytes::Error::InsufficientBytes(_)) => break,
                Err(mqttbytes::Error::PayloadSizeLimitExceeded(size)) => {
                    match self.start_discard(size, t) {
                        Ok(true) => continue,
                        Ok(false) => break,
                        Err(e) => return self.fail(e, true, t),
                    }
                }
                Err(e) => return self.fail(SessionError::Protocol(e.to_string()), true, t),
            }
            let packet = match Packet::read(&mut self.rx, max) {
                Ok(p) => p,
                Err(e) => return self.fail(SessionError::Protocol(e.to_string()), true, t),
            };
            self.on_packet(packet, t);
            if !matches!(self.state, State::Handshake { .. } | State::Up) {
                return;
            }
        }
        if self.rx.is_empty() && self.rx.capacity() > RX_KEEP_CAPACITY {
            self.rx = BytesMut::new();
        }
    }

    /// Counts off the bytes of the oversized PUBLISH being consumed (see
    /// the module doc); returns the bytes after it.
    fn skip_discarded<'b>(&mut self, b: &'b [u8], t: u64) -> &'b [u8] {
        let Some((_, left)) = &mut self.discard else {
            return b;
        };
        let n = (*left).min(b.len());
        *left -= n;
        if *left == 0 {
            self.finish_discard(t);
        }
        &b[n..]
    }

    /// The packet at the start of `rx` announces `size` bytes, over the
    /// limit. A PUBLISH (once its head is in) is consumed: `Ok(true)` when
    /// it was all in `rx` already, `Ok(false)` when the rest is to come (or
    /// its head is). Anything else is refused.
    fn start_discard(&mut self, size: usize, t: u64) -> Result<bool, SessionError> {
        let max = self.cfg.max_packet_size;
        let head = match publish_head(&self.rx) {
            _ if self.state != State::Up => return Err(SessionError::PacketTooLarge { size, max }),
            Head::NotPublish => return Err(SessionError::PacketTooLarge { size, max }),
            Head::Malformed(why) => return Err(SessionError::Protocol(why.to_string())),
            Head::Incomplete => return Ok(false),
            Head::Publish(h) => h,
        };
        let have = self.rx.len().min(head.total);
        self.rx.advance(have);
        let left = head.total - have;
        self.discard = Some((head, left));
        if left == 0 {
            self.finish_discard(t);
            return Ok(true);
        }
        // Nothing of the packet is kept; the rest is counted off as it comes.
        if self.rx.capacity() > RX_KEEP_CAPACITY {
            self.rx = BytesMut::new();
        }
        Ok(false)
    }

    /// The last byte of the oversized PUBLISH is in: acknowledge, report.
    fn finish_discard(&mut self, t: u64) {
        let Some((h, _)) = self.discard.take() else {
            return;
        };
        match h.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(Packet::PubAck(PubAck::new(h.pkid)), t),
            QoS::ExactlyOnce => self.send(Packet::PubRec(PubRec::new(h.pkid)), t),
        }
        let e = SessionError::MessageTooLarge {
            size: h.remaining,
            topic: h.topic,
            payload: h.payload,
            max: self.cfg.max_packet_size,
            retained: h.retain,
        };
        self.out.push_back(SessionOutput::Error(e));
    }

    fn on_packet(&mut self, packet: Packet, t: u64) {
        match (self.state, packet) {
            (State::Handshake { .. }, Packet::ConnAck(ack)) => self.on_connack(ack, t),
            (State::Handshake { .. }, p) => {
                let e = format!("expected CONNACK, got {}", packet_name(&p));
                self.fail(SessionError::Protocol(e), true, t);
            }
            (State::Up, Packet::Publish(p)) => self.on_publish(p, t),
            (State::Up, Packet::PubAck(a)) => {
                if let Some(o) = self.outbox.ack(a.pkid) {
                    self.out
                        .push_back(SessionOutput::Delivered { topic: o.topic });
                }
            }
            (State::Up, Packet::SubAck(s)) => self.on_suback(s),
            (State::Up, Packet::UnsubAck(u)) => {
                self.pending.remove(&u.pkid);
            }
            (State::Up, Packet::PubRel(r)) => self.send(Packet::PubComp(PubComp::new(r.pkid)), t),
            (State::Up, Packet::PingResp) => {}
            (_, p) => {
                let e = format!("unexpected {} from the broker", packet_name(&p));
                self.fail(SessionError::Protocol(e), true, t);
            }
        }
    }

    fn on_connack(&mut self, ack: ConnAck, t: u64) {
        if ack.code != ConnectReturnCode::Success {
            let e = SessionError::Refused {
                code: ack.code as u8,
                reason: refusal_reason(ack.code),
            };
            return self.fail(e, true, t);
        }
        self.state = State::Up;
        self.backoff.reset();
        self.last_rx = t;
        self.last_tx = t;
        self.out.push_back(SessionOutput::ConnectionUp {
            session_present: ack.session_present,
        });
        let topics = self.subscriptions.clone();
        self.send_subscribe(topics, t);
        let mut resend = Vec::new();
        for o in self.outbox.iter_mut() {
            resend.push(publish_packet(o));
            o.sent = true;
        }
        for p in resend {
            self.send(p, t);
        }
    }

    fn on_publish(&mut self, p: Publish, t: u64) {
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(Packet::PubAck(PubAck::new(p.pkid)), t),
            QoS::ExactlyOnce => self.send(Packet::PubRec(PubRec::new(p.pkid)), t),
        }
        self.out.push_back(SessionOutput::Message {
            topic: p.topic,
            payload: p.payload.to_vec(),
            retained: p.retain,
        });
    }

    fn on_suback(&mut self, s: SubAck) {
        let Some(Pending::Subscribe(topics)) = self.pending.remove(&s.pkid) else {
            return;
        };
        for (topic, code) in topics.into_iter().zip(s.return_codes) {
            if code == SubscribeReasonCode::Failure {
                self.out
                    .push_back(SessionOutput::Error(SessionError::SubscribeRefused(topic)));
            }
        }
    }

    fn publish(&mut self, topic: String, payload: Vec<u8>, qos: Qos, retain: bool, t: u64) {
        if self.state == State::Stopped {
            return;
        }
        if let Err(reason) = check_publish(&topic, payload.len()) {
            let e = SessionError::InvalidPublish { topic, reason };
            return self.out.push_back(SessionOutput::Error(e));
        }
        let up = self.state == State::Up;
        if qos == Qos::AtMostOnce {
            if up {
                let mut p = Publish::from_bytes(topic, QoS::AtMostOnce, Bytes::from(payload));
                p.retain = retain;
                self.send(Packet::Publish(p), t);
            }
            return;
        }
        let pending = &self.pending;
        let pkid = self.outbox.alloc_pkid(|id| pending.contains_key(&id));
        let dropped = self.outbox.push(Outgoing {
            pkid,
            topic,
            payload: Bytes::from(payload),
            retain,
            sent: false,
        });
        if let Some(topic) = dropped {
            let max = self.cfg.max_queued;
            self.out
                .push_back(SessionOutput::Error(SessionError::QueueFull { topic, max }));
        }
        if up {
            if let Some(o) = self.outbox.last_mut() {
                let p = publish_packet(o);
                o.sent = true;
                self.send(p, t);
            }
        }
    }

    fn subscribe(&mut self, topics: Vec<String>, t: u64) {
        let mut new = Vec::new();
        for topic in topics {
            if !topic.is_empty() && !self.subscriptions.contains(&topic) && !new.contains(&topic) {
                new.push(topic);
            }
        }
        self.subscriptions.extend(new.iter().cloned());
        if self.state == State::Up {
            self.send_subscribe(new, t);
        }
    }

    fn unsubscribe(&mut self, topics: Vec<String>, t: u64) {
        let gone: Vec<String> = dedup(topics)
            .into_iter()
            .filter(|topic| self.subscriptions.contains(topic))
            .collect();
        self.subscriptions.retain(|s| !gone.contains(s));
        if self.state == State::Up && !gone.is_empty() {
            let pkid = self.alloc_pkid();
            self.pending.insert(pkid, Pending::Unsubscribe);
            let u = Unsubscribe { pkid, topics: gone };
            self.send(Packet::Unsubscribe(u), t);
        }
    }

    fn send_subscribe(&mut self, topics: Vec<String>, t: u64) {
        if topics.is_empty() {
            return;
        }
        let pkid = self.alloc_pkid();
        let filters = topics
            .iter()
            .map(|p| SubscribeFilter::new(p.clone(), QoS::AtLeastOnce))
            .collect();
        self.pending.insert(pkid, Pending::Subscribe(topics));
        self.send(Packet::Subscribe(Subscribe { pkid, filters }), t);
    }

    fn alloc_pkid(&mut self) -> u16 {
        let pending = &self.pending;
        self.outbox.alloc_pkid(|id| pending.contains_key(&id))
    }

    fn shutdown(&mut self, t: u64) {
        match self.state {
            State::Up => {
                self.send(Packet::Disconnect, t);
                self.out.push_back(SessionOutput::Close);
                self.out.push_back(SessionOutput::ConnectionDown);
            }
            State::Opening { .. } | State::Handshake { .. } => {
                self.out.push_back(SessionOutput::Close)
            }
            State::Waiting { .. } | State::Stopped => {}
        }
        self.reset_connection();
        self.state = State::Stopped;
    }

    /// Encodes `packet` into the pending `Transmit` (one write per batch).
    fn send(&mut self, packet: Packet, t: u64) {
        let mut buf = BytesMut::new();
        if let Err(e) = packet.write(&mut buf, usize::MAX) {
            // Only malformed packets fail to encode, and `check_publish`
            // keeps those out: this is a bug, reported rather than sent.
            let e = format!("cannot encode {}: {e}", packet_name(&packet));
            return self
                .out
                .push_back(SessionOutput::Error(SessionError::Protocol(e)));
        }
        match self.out.back_mut() {
            Some(SessionOutput::Transmit(v)) => v.extend_from_slice(&buf),
            _ => self.out.push_back(SessionOutput::Transmit(buf.to_vec())),
        }
        self.last_tx = t;
    }
}
