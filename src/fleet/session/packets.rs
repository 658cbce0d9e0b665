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
