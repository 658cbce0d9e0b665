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
fn an_oversized_packet_other_than_publish_is_refused_from_its_header() {
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
    // The header of a 2000-byte SUBACK is enough to refuse it.
    let out = h.bytes(&[0x90, 0xD0, 0x0F, 0x00, 0x01]);
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

/// A session up with a 4 KiB packet limit.
fn small_limit() -> H {
    let mut cfg = SessionConfig::device("dev1", "picolet");
    cfg.subscriptions = vec!["picolet/devices/dev1/desired".into()];
    cfg.max_packet_size = 4096;
    let mut h = H::new(cfg);
    h.connect();
    h
}

const DESIRED: &str = "picolet/devices/dev1/desired";

#[test]
fn an_oversized_qos1_publish_is_consumed_unbuffered_acknowledged_and_reported() {
    let mut h = small_limit();
    let payload_len = 5 * 1024 * 1024;
    let big = encode(publish_in(
        DESIRED,
        &vec![b'x'; payload_len],
        QoS::AtLeastOnce,
        9,
        false,
    ));
    let next = encode(publish_in(
        DESIRED,
        b"{\"revision\":2}",
        QoS::AtLeastOnce,
        10,
        false,
    ));
    let mut stream = big.clone();
    stream.extend(&next);
    // 16 KiB chunks, as the agent reads them; the last one holds the end of
    // the big message and the whole next one.
    let mut outs = Vec::new();
    let mut most_buffered = 0;
    for (i, chunk) in stream.chunks(16 * 1024).enumerate() {
        h.t += 1;
        let out = h.bytes(chunk);
        most_buffered = most_buffered.max(h.s.rx.capacity());
        if (i + 1) * 16 * 1024 < big.len() {
            assert_eq!(out, [], "nothing until the last byte (chunk {i})");
        }
        outs.extend(out);
    }
    assert!(
        most_buffered <= 64 * 1024,
        "at most a chunk is ever held, not the payload: {most_buffered} bytes"
    );
    let remaining = payload_len + 2 + DESIRED.len() + 2;
    assert_eq!(
        outs,
        [
            SessionOutput::Transmit(vec![0x40, 0x02, 0x00, 0x09]),
            SessionOutput::Error(SessionError::MessageTooLarge {
                topic: DESIRED.into(),
                payload: payload_len,
                size: remaining,
                max: 4096,
                retained: false,
            }),
            SessionOutput::Transmit(vec![0x40, 0x02, 0x00, 0x0A]),
            SessionOutput::Message {
                topic: DESIRED.into(),
                payload: b"{\"revision\":2}".to_vec(),
                retained: false,
            },
        ]
    );
    assert!(h.s.is_up(), "the connection stays up");
    assert!(
        outs[1].clone() != SessionOutput::Close,
        "no Close: the broker must not redeliver it"
    );
    assert_eq!(
        SessionError::MessageTooLarge {
            topic: DESIRED.into(),
            payload: payload_len,
            size: remaining,
            max: 4096,
            retained: false,
        }
        .to_string(),
        format!(
            "a message on \"{DESIRED}\" of 5242880 bytes (an MQTT packet of {remaining} bytes, over the limit of 4096 bytes) was discarded unread"
        )
    );
}

#[test]
fn oversized_publishes_of_every_qos_split_anywhere_are_consumed_alike() {
    // The head split at every byte, QoS 0 (no ack), 1 (PUBACK), 2 (PUBREC),
    // retained or not, with a small packet after it in the same stream.
    for (qos, pkid, ack) in [
        (QoS::AtMostOnce, 0, None),
        (QoS::AtLeastOnce, 0x1234, Some(vec![0x40, 0x02, 0x12, 0x34])),
        (QoS::ExactlyOnce, 0x0102, Some(vec![0x50, 0x02, 0x01, 0x02])),
    ] {
        let mut big = encode(publish_in(DESIRED, &[7u8; 5000], qos, pkid, true));
        big.extend(encode(Packet::PingResp));
        for split in 1..40 {
            let mut h = small_limit();
            let mut out = h.bytes(&big[..split]);
            for chunk in big[split..].chunks(999) {
                out.extend(h.bytes(chunk));
            }
            let mut want = Vec::new();
            if let Some(a) = &ack {
                want.push(SessionOutput::Transmit(a.clone()));
            }
            want.push(SessionOutput::Error(SessionError::MessageTooLarge {
                topic: DESIRED.into(),
                payload: 5000,
                size: 5000 + 2 + DESIRED.len() + if pkid == 0 { 0 } else { 2 },
                max: 4096,
                retained: true,
            }));
            assert_eq!(out, want, "{qos:?}, split at {split}");
            assert!(h.s.is_up());
            assert!(h.s.discard.is_none() && h.s.rx.is_empty());
        }
    }
}

#[test]
fn a_thousand_oversized_and_garbage_publishes_leave_the_session_up_and_in_step() {
    // Random sizes and cuts (a fixed seed: reproducible); each oversized
    // message is acknowledged once, each small one handed out once.
    let mut h = small_limit();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut stream = Vec::new();
    let (mut big, mut small) = (0, 0);
    for i in 0..1000u16 {
        let pkid = i + 1;
        if rand(2) == 0 {
            let len = 4096 + rand(100_000) as usize;
            stream.extend(encode(publish_in(
                DESIRED,
                &vec![0xAB; len],
                QoS::AtLeastOnce,
                pkid,
                false,
            )));
            big += 1;
        } else {
            let len = rand(4000) as usize;
            let junk: Vec<u8> = (0..len).map(|_| rand(256) as u8).collect();
            stream.extend(encode(publish_in(
                DESIRED,
                &junk,
                QoS::AtLeastOnce,
                pkid,
                false,
            )));
            small += 1;
        }
    }
    let mut outs = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let n = (1 + rand(20_000) as usize).min(stream.len() - at);
        outs.extend(h.bytes(&stream[at..at + n]));
        at += n;
        assert!(h.s.rx.capacity() <= 64 * 1024, "{}", h.s.rx.capacity());
    }
    let acks = packets(&outs)
        .into_iter()
        .filter(|p| matches!(p, Packet::PubAck(_)))
        .count();
    let too_large = outs
        .iter()
        .filter(|o| {
            matches!(
                o,
                SessionOutput::Error(SessionError::MessageTooLarge { .. })
            )
        })
        .count();
    let messages = outs
        .iter()
        .filter(|o| matches!(o, SessionOutput::Message { .. }))
        .count();
    assert_eq!((acks, too_large, messages), (1000, big, small));
    assert!(h.s.is_up());
}

#[test]
fn an_oversized_publish_with_a_bad_head_still_ends_the_connection() {
    // Each announces 16,384 bytes, over the 4 KiB limit.
    let cases: [(&[u8], &str); 3] = [
        // QoS 3.
        (
            &[0x36, 0x80, 0x80, 0x01, 0x00, 0x01, b't'],
            "PUBLISH with QoS 3",
        ),
        // Packet id 0 on QoS 1.
        (
            &[0x32, 0x80, 0x80, 0x01, 0x00, 0x01, b't', 0x00, 0x00],
            "PUBLISH with packet id 0",
        ),
        // A topic that is not UTF-8.
        (
            &[0x30, 0x80, 0x80, 0x01, 0x00, 0x01, 0xFF],
            "PUBLISH topic is not UTF-8",
        ),
    ];
    for (bytes, why) in cases {
        let mut h = small_limit();
        let out = h.bytes(bytes);
        assert_eq!(
            out,
            [
                SessionOutput::Error(SessionError::Protocol(why.into())),
                SessionOutput::Close,
                SessionOutput::ConnectionDown
            ]
        );
    }
    // Before the CONNACK, an oversized PUBLISH is refused as before.
    let mut h = H::device();
    assert_eq!(h.at(h.t), [SessionOutput::Connect]);
    h.feed(SessionInput::Connected);
    let out = h.bytes(&[0x30, 0xFF, 0xFF, 0x7F]);
    assert!(matches!(
        out[0],
        SessionOutput::Error(SessionError::PacketTooLarge { .. })
    ));
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
