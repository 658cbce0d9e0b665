//! Publishes, acknowledgements, subscriptions, limits, framing.

use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, SubAck, SubscribeReasonCode,
};

use super::*;

#[test]
fn in_flight_publishes_are_resent_with_dup_after_a_reconnect() {
    let mut h = H::device();
    h.connect();
    let out = h.publish("picolet/devices/dev1/events", b"A", Qos::AtLeastOnce, false);
    let [Packet::Publish(a)] = &packets(&out)[..] else {
        panic!("PUBLISH A expected");
    };
    assert!(!a.dup && a.qos == QoS::AtLeastOnce && a.pkid != 0);
    let a_id = a.pkid;
    assert_eq!(h.feed(SessionInput::Disconnected("eof".into())).len(), 2);
    // Queued while down: nothing is written.
    assert_eq!(
        h.publish("picolet/devices/dev1/events", b"B", Qos::AtLeastOnce, false),
        []
    );
    assert_eq!(h.s.in_flight(), 2);

    let out = h.connect();
    let ps = packets(&out);
    let [
        Packet::Subscribe(_),
        Packet::Publish(a2),
        Packet::Publish(b),
    ] = &ps[..]
    else {
        panic!("SUBSCRIBE, then A and B in order: {ps:?}");
    };
    assert_eq!((a2.pkid, a2.dup, &a2.payload[..]), (a_id, true, &b"A"[..]));
    assert_eq!((b.dup, &b.payload[..]), (false, &b"B"[..]));
    assert_ne!(b.pkid, a_id);

    let out = h.packet(Packet::PubAck(PubAck::new(a_id)));
    assert_eq!(
        out,
        [SessionOutput::Delivered {
            topic: "picolet/devices/dev1/events".into()
        }]
    );
    assert_eq!(h.s.in_flight(), 1);
    assert_eq!(
        h.packet(Packet::PubAck(PubAck::new(a_id))),
        [],
        "duplicate PUBACK"
    );
}

#[test]
fn subscriptions_are_sent_again_after_every_reconnect() {
    let mut h = H::device();
    h.connect();
    let out = h.feed(SessionInput::Subscribe(vec![
        "picolet/groups/g2/desired".into(),
    ]));
    let [Packet::Subscribe(s)] = &packets(&out)[..] else {
        panic!("SUBSCRIBE of the new topic only");
    };
    assert_eq!(s.filters.len(), 1);
    let out = h.feed(SessionInput::Unsubscribe(vec![
        "picolet/groups/g1/desired".into(),
    ]));
    assert!(matches!(packets(&out)[..], [Packet::Unsubscribe(_)]));
    h.feed(SessionInput::Disconnected("eof".into()));

    let ps = packets(&h.connect());
    let [Packet::Subscribe(s)] = &ps[..] else {
        panic!("one SUBSCRIBE after the reconnect: {ps:?}");
    };
    let topics: Vec<_> = s.filters.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        topics,
        ["picolet/devices/dev1/desired", "picolet/groups/g2/desired"]
    );
}

#[test]
fn inbound_qos1_publish_is_pubacked_before_it_is_handed_out() {
    let mut h = H::device();
    h.connect();
    let p = publish_in(
        "picolet/devices/dev1/desired",
        b"{\"revision\":3}",
        QoS::AtLeastOnce,
        7,
        true,
    );
    let out = h.packet(p);
    assert_eq!(
        out,
        [
            SessionOutput::Transmit(vec![0x40, 0x02, 0x00, 0x07]),
            SessionOutput::Message {
                topic: "picolet/devices/dev1/desired".into(),
                payload: b"{\"revision\":3}".to_vec(),
                retained: true
            }
        ]
    );
}

#[test]
fn oversized_packet_is_refused_from_its_header_and_never_buffered() {
    let mut cfg = SessionConfig::device("dev1", "picolet");
    cfg.max_packet_size = 1024;
    let mut h = H::new(cfg);
    h.connect();
    // A packet of exactly the limit passes.
    let topic = "t";
    let fits = publish_in(
        topic,
        &vec![b'x'; 1024 - 2 - topic.len()],
        QoS::AtMostOnce,
        0,
        false,
    );
    let out = h.packet(fits);
    assert!(matches!(&out[..], [SessionOutput::Message { payload, .. }] if payload.len() == 1021));
    // The header of a 2000-byte PUBLISH is enough to refuse it.
    let out = h.bytes(&[0x30, 0xD0, 0x0F, 0x00, 0x01, b't']);
    assert_eq!(
        out,
        [
            SessionOutput::Error(SessionError::PacketTooLarge {
                size: 2000,
                max: 1024
            }),
            SessionOutput::Close,
            SessionOutput::ConnectionDown
        ]
    );
    assert_eq!(
        SessionError::PacketTooLarge {
            size: 2000,
            max: 1024
        }
        .to_string(),
        "incoming MQTT packet of 2000 bytes exceeds the limit of 1024 bytes"
    );
    assert_eq!(h.s.rx.capacity(), 0, "the buffer was dropped");
}

#[test]
fn fragmented_input_yields_the_same_outputs_as_whole_packets() {
    let mut stream = encode(Packet::ConnAck(ConnAck::new(
        ConnectReturnCode::Success,
        true,
    )));
    stream.extend(encode(publish_in(
        "a/b",
        b"hello",
        QoS::AtLeastOnce,
        9,
        false,
    )));
    stream.extend(encode(Packet::PingResp));
    stream.extend(encode(publish_in(
        "a/c",
        &[7u8; 300],
        QoS::AtMostOnce,
        0,
        true,
    )));

    let run = |chunk: usize| {
        let mut h = H::device();
        h.at(T0);
        h.feed(SessionInput::Connected);
        let mut out = Vec::new();
        for c in stream.chunks(chunk) {
            out.extend(h.bytes(c));
        }
        (not_transmits(&out), packets(&out))
    };
    let whole = run(stream.len());
    assert_eq!(
        whole.0.len(),
        3,
        "ConnectionUp and two messages: {:?}",
        whole.0
    );
    for chunk in [1, 2, 3, 7, 64] {
        assert_eq!(run(chunk), whole, "in chunks of {chunk} bytes");
    }
}

#[test]
fn a_packet_before_connack_is_a_protocol_error() {
    let mut h = H::device();
    h.at(T0);
    h.feed(SessionInput::Connected);
    let out = h.packet(Packet::PingResp);
    assert_eq!(
        out,
        [
            SessionOutput::Error(SessionError::Protocol(
                "expected CONNACK, got PINGRESP".into()
            )),
            SessionOutput::Close
        ]
    );
    let mut h = H::device();
    h.connect();
    let out = h.bytes(&[0xF0, 0x00]);
    assert!(
        matches!(
            &out[..],
            [
                SessionOutput::Error(SessionError::Protocol(_)),
                SessionOutput::Close,
                SessionOutput::ConnectionDown
            ]
        ),
        "{out:?}"
    );
}

#[test]
fn refused_subscription_is_reported_by_topic() {
    let mut h = H::device();
    let ps = packets(&h.connect());
    let [Packet::Subscribe(s)] = &ps[..] else {
        panic!();
    };
    let codes = vec![
        SubscribeReasonCode::Success(QoS::AtLeastOnce),
        SubscribeReasonCode::Failure,
    ];
    let out = h.packet(Packet::SubAck(SubAck::new(s.pkid, codes)));
    assert_eq!(
        out,
        [SessionOutput::Error(SessionError::SubscribeRefused(
            "picolet/groups/g1/desired".into()
        ))]
    );
}

#[test]
fn retained_publish_replaces_a_queued_one_and_a_full_queue_drops_the_oldest() {
    let mut cfg = SessionConfig::device("dev1", "picolet");
    cfg.max_queued = 3;
    let mut h = H::new(cfg);
    assert_eq!(h.at(T0), [SessionOutput::Connect]);
    for rev in 0..5 {
        let s = format!("status {rev}");
        assert_eq!(
            h.publish("d/status", s.as_bytes(), Qos::AtLeastOnce, true),
            []
        );
    }
    assert_eq!(h.s.in_flight(), 1, "only the latest retained status waits");
    h.publish("d/events", b"e1", Qos::AtLeastOnce, false);
    h.publish("d/events", b"e2", Qos::AtLeastOnce, false);
    let out = h.publish("d/events", b"e3", Qos::AtLeastOnce, false);
    assert_eq!(
        out,
        [SessionOutput::Error(SessionError::QueueFull {
            topic: "d/status".into(),
            max: 3
        })]
    );
    let ps = packets(&h.connect());
    let payloads: Vec<_> = ps
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p.payload.to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(payloads, [b"e1".to_vec(), b"e2".to_vec(), b"e3".to_vec()]);
}

#[test]
fn qos0_publish_while_down_is_dropped_and_bad_topics_are_refused() {
    let mut h = H::device();
    assert_eq!(h.at(T0), [SessionOutput::Connect]);
    assert_eq!(h.publish("d/events", b"x", Qos::AtMostOnce, false), []);
    assert_eq!(h.s.in_flight(), 0);
    let ps = packets(&h.connect());
    assert!(!ps.iter().any(|p| matches!(p, Packet::Publish(_))));
    let out = h.publish("d/+/x", b"x", Qos::AtLeastOnce, false);
    assert_eq!(
        out,
        [SessionOutput::Error(SessionError::InvalidPublish {
            topic: "d/+/x".into(),
            reason: "wildcard or NUL in a topic name"
        })]
    );
    assert_eq!(h.s.in_flight(), 0);
}

#[test]
fn shutdown_says_disconnect_and_never_reconnects() {
    let mut h = H::device();
    h.connect();
    let out = h.feed(SessionInput::Shutdown);
    assert_eq!(
        out,
        [
            SessionOutput::Transmit(vec![0xE0, 0x00]),
            SessionOutput::Close,
            SessionOutput::ConnectionDown
        ]
    );
    assert_eq!(h.s.poll_timeout(), None);
    assert_eq!(h.at(h.t + 3_600_000), []);
    assert_eq!(h.publish("d/events", b"x", Qos::AtLeastOnce, false), []);
}

#[test]
fn outputs_of_one_handle_are_batched_into_one_transmit() {
    let mut h = H::device();
    h.connect();
    h.feed(SessionInput::Disconnected("eof".into()));
    h.publish("a", b"1", Qos::AtLeastOnce, false);
    h.publish("b", b"2", Qos::AtLeastOnce, false);
    let out = h.connect();
    let transmits = out
        .iter()
        .filter(|o| matches!(o, SessionOutput::Transmit(_)))
        .count();
    assert_eq!(transmits, 1, "SUBSCRIBE and both resends in one write");
    assert_eq!(packets(&out).len(), 3);
}
