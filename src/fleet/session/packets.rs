//! Packet helpers around rumqttc's v4 codec.

use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet, Publish};

use super::outbox::Outgoing;

/// The largest remaining length MQTT can encode (four length bytes).
const MAX_REMAINING_LENGTH: usize = 268_435_455;

pub(super) fn publish_packet(o: &Outgoing) -> Packet {
    let mut p = Publish::from_bytes(o.topic.clone(), QoS::AtLeastOnce, o.payload.clone());
    p.pkid = o.pkid;
    p.retain = o.retain;
    p.dup = o.sent;
    Packet::Publish(p)
}

/// Topic name rules of MQTT 3.1.1 §4.7 that the codec does not check.
pub(super) fn check_publish(topic: &str, payload_len: usize) -> Result<(), &'static str> {
    if topic.is_empty() {
        return Err("empty topic");
    }
    if topic.len() > usize::from(u16::MAX) {
        return Err("topic longer than 65535 bytes");
    }
    if topic.contains(['+', '#', '\0']) {
        return Err("wildcard or NUL in a topic name");
    }
    if 2 + topic.len() + 2 + payload_len > MAX_REMAINING_LENGTH {
        return Err("packet larger than MQTT's 256 MiB limit");
    }
    Ok(())
}

pub(super) fn refusal_reason(code: ConnectReturnCode) -> &'static str {
    match code {
        ConnectReturnCode::Success => "accepted",
        ConnectReturnCode::RefusedProtocolVersion => "unacceptable protocol version",
        ConnectReturnCode::BadClientId => "client identifier rejected",
        ConnectReturnCode::ServiceUnavailable => "server unavailable",
        ConnectReturnCode::BadUserNamePassword => "bad user name or password",
        ConnectReturnCode::NotAuthorized => "not authorized",
    }
}

pub(super) fn packet_name(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}

pub(super) fn dedup(topics: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(topics.len());
    for t in topics {
        if !t.is_empty() && !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// The head of an inbound PUBLISH: its fixed header and variable header,
/// which is all [`publish_head`] reads of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PublishHead {
    /// Fixed header + remaining length: the whole packet's size.
    pub(super) total: usize,
    /// The remaining length (what the size limit is about).
    pub(super) remaining: usize,
    pub(super) topic: String,
    pub(super) pkid: u16,
    pub(super) qos: QoS,
    pub(super) retain: bool,
    /// Payload bytes (the rest of the packet).
    pub(super) payload: usize,
}

/// What the start of the receive buffer holds, for a packet too large to
/// buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Head {
    /// Not a PUBLISH: only a PUBLISH can be consumed without reading it.
    NotPublish,
    /// The variable header is not all in yet (it is at most 65,544 bytes:
    /// the fixed header, a topic of up to 65,535 bytes and a packet id).
    Incomplete,
    Publish(PublishHead),
    Malformed(&'static str),
}

/// Reads the head of the packet at the start of `buf` without needing the
/// payload (MQTT 3.1.1 §2.2, §3.3.1, §3.3.2).
pub(super) fn publish_head(buf: &[u8]) -> Head {
    let Some(&first) = buf.first() else {
        return Head::Incomplete;
    };
    if first >> 4 != 3 {
        return Head::NotPublish;
    }
    let qos = match (first >> 1) & 3 {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        _ => return Head::Malformed("PUBLISH with QoS 3"),
    };
    // The remaining length: 1 to 4 bytes, 7 bits each, low first.
    let mut remaining = 0usize;
    let mut at = 1;
    loop {
        let Some(&b) = buf.get(at) else {
            return Head::Incomplete;
        };
        remaining |= usize::from(b & 0x7f) << (7 * (at - 1));
        at += 1;
        if b & 0x80 == 0 {
            break;
        }
        if at == 5 {
            return Head::Malformed("remaining length longer than 4 bytes");
        }
    }
    let header = at;
    let Some(len) = buf.get(header..header + 2) else {
        return Head::Incomplete;
    };
    let topic_len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    let id_len = if qos == QoS::AtMostOnce { 0 } else { 2 };
    let var = 2 + topic_len + id_len;
    if var > remaining {
        return Head::Malformed("PUBLISH topic longer than the packet");
    }
    let Some(var_bytes) = buf.get(header + 2..header + var) else {
        return Head::Incomplete;
    };
    let Ok(topic) = std::str::from_utf8(&var_bytes[..topic_len]) else {
        return Head::Malformed("PUBLISH topic is not UTF-8");
    };
    let pkid = match id_len {
        0 => 0,
        _ => u16::from_be_bytes([var_bytes[topic_len], var_bytes[topic_len + 1]]),
    };
    if id_len > 0 && pkid == 0 {
        return Head::Malformed("PUBLISH with packet id 0");
    }
    Head::Publish(PublishHead {
        total: header + remaining,
        remaining,
        topic: topic.to_string(),
        pkid,
        qos,
        retain: first & 1 == 1,
        payload: remaining - var,
    })
}
