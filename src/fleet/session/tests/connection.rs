//! Handshake, keepalive, dead connections, back-off, refusals.

use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, Packet};

use super::*;

#[test]
fn connect_handshake_writes_the_exact_connect_bytes() {
    let mut cfg = SessionConfig::device("dev1", "picolet");
    cfg.username = Some("u".into());
    cfg.password = Some("pw".into());
    let mut h = H::new(cfg);
    assert_eq!(h.s.poll_timeout(), Some(0), "a new session is due at once");
    assert_eq!(h.at(T0), [SessionOutput::Connect]);
    assert_eq!(h.at(T0 + 500), [], "Connect is asked for once");
    let out = h.feed(SessionInput::Connected);

    let mut want = vec![0x10, 59]; // CONNECT, remaining length
    want.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4]); // protocol 3.1.1
    // user | password | will retain | will QoS 1 | will; clean_session=0
    want.push(0x80 | 0x40 | 0x20 | 0x08 | 0x04);
    want.extend_from_slice(&[0, 30]); // keepalive 30 s
    want.extend_from_slice(b"\x00\x04dev1");
    want.extend_from_slice(b"\x00\x1bpicolet/devices/dev1/online");
    want.extend_from_slice(b"\x00\x05false");
    want.extend_from_slice(b"\x00\x01u\x00\x02pw");
    assert_eq!(want.len(), 61);
    assert_eq!(out, [SessionOutput::Transmit(want)]);
    assert!(!h.s.is_up());
}

#[test]
fn accepted_connack_reports_up_and_subscribes_every_topic_with_qos1() {
    let mut h = H::device();
    let out = h.connect();
    assert_eq!(
        not_transmits(&out),
        [SessionOutput::ConnectionUp {
            session_present: false
        }]
    );
    let ps = packets(&out);
    let [Packet::Subscribe(sub)] = &ps[..] else {
        panic!("one SUBSCRIBE expected: {ps:?}");
    };
    let filters: Vec<_> = sub
        .filters
        .iter()
        .map(|f| (f.path.as_str(), f.qos))
        .collect();
    assert_eq!(
        filters,
        [
            ("picolet/devices/dev1/desired", QoS::AtLeastOnce),
            ("picolet/groups/g1/desired", QoS::AtLeastOnce)
        ]
    );
    assert!(h.s.is_up());
}

#[test]
fn keepalive_pings_after_thirty_seconds_of_send_silence() {
    let mut h = H::device();
    h.connect();
    let up = h.t;
    // The broker talks, we do not: only our silence counts.
    let out = h.packet(publish_in(
        "picolet/devices/dev1/desired",
        b"{}",
        QoS::AtMostOnce,
        0,
        false,
    ));
    assert_eq!(packets(&out), [], "QoS 0 needs no answer");
    assert_eq!(h.timeout(), up + 30_000);
    assert_eq!(h.at(up + 29_999), []);
    let out = h.at(up + 30_000);
    assert_eq!(out, [SessionOutput::Transmit(vec![0xC0, 0x00])], "PINGREQ");
    // PINGRESP 100 ms later: the next ping is 30 s after our last send.
    h.t = up + 30_100;
    assert_eq!(h.bytes(&[0xD0, 0x00]), []);
    assert_eq!(h.timeout(), up + 60_000);
}

#[test]
fn keepalive_pings_after_thirty_seconds_of_receive_silence() {
    let mut h = H::device();
    h.connect();
    let up = h.t;
    h.t = up + 20_000;
    let out = h.publish("picolet/devices/dev1/events", b"e", Qos::AtMostOnce, false);
    assert!(matches!(packets(&out)[..], [Packet::Publish(_)]));
    assert_eq!(
        h.timeout(),
        up + 30_000,
        "nothing received since the CONNACK"
    );
    assert_eq!(
        packets(&h.at(up + 30_000)),
        [Packet::PingReq],
        "a broker that only listens is pinged too"
    );
}

#[test]
fn missing_pingresp_declares_the_connection_dead_after_ten_seconds() {
    let mut h = H::device();
    h.connect();
    let up = h.t;
    assert_eq!(packets(&h.at(up + 30_000)), [Packet::PingReq]);
    assert_eq!(h.timeout(), up + 40_000);
    assert_eq!(h.at(up + 39_999), []);
    assert_eq!(
        h.at(up + 40_000),
        [
            SessionOutput::Error(SessionError::KeepaliveTimeout(10_000)),
            SessionOutput::Close,
            SessionOutput::ConnectionDown
        ]
    );
    assert!(!h.s.is_up());
    let next = h.timeout() - h.t;
    assert!(
        (750..=1000).contains(&next),
        "first reconnect after ~1 s, got {next}"
    );
    // Bytes of the dead connection arriving late are ignored.
    assert_eq!(h.bytes(&[0xD0, 0x00]), []);
}

#[test]
fn any_inbound_byte_after_a_pingreq_keeps_the_connection_alive() {
    let mut h = H::device();
    h.connect();
    let up = h.t;
    h.at(up + 30_000);
    h.t = up + 35_000;
    // Half a PUBLISH is still proof of life.
    let p = encode(publish_in("t", b"x", QoS::AtMostOnce, 0, false));
    assert_eq!(h.bytes(&p[..3]), []);
    assert_eq!(h.at(up + 40_000), [], "no timeout: bytes arrived");
    assert!(h.s.is_up());
    assert_eq!(h.timeout(), up + 60_000, "next ping 30 s after the PINGREQ");
}

#[test]
fn reconnect_backoff_doubles_from_one_to_sixty_seconds_with_bounded_jitter_and_resets() {
    let mut h = H::device();
    let bases = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60].map(|s| s * 1000);
    let mut delays = Vec::new();
    h.at(T0);
    for _ in bases {
        assert_eq!(h.feed(SessionInput::Connected).len(), 1, "CONNECT sent");
        let out = h.feed(SessionInput::Disconnected("connection reset".into()));
        assert_eq!(
            out,
            [SessionOutput::Error(SessionError::Transport(
                "connection reset".into()
            ))],
            "no ConnectionDown: it never was up"
        );
        let due = h.timeout();
        delays.push(due - h.t);
        assert_eq!(h.at(due - 1), []);
        assert_eq!(h.at(due), [SessionOutput::Connect]);
    }
    for (d, b) in delays.iter().zip(bases) {
        assert!(*d <= b && *d >= b - b / 4, "delay {d} outside [¾·{b}, {b}]");
    }
    assert!(
        delays.iter().zip(bases).any(|(d, b)| *d != b),
        "jitter applied: {delays:?}"
    );
    // A successful CONNACK resets the sequence.
    h.feed(SessionInput::Connected);
    h.packet(Packet::ConnAck(ConnAck::new(
        ConnectReturnCode::Success,
        true,
    )));
    h.feed(SessionInput::Disconnected("eof".into()));
    let d = h.timeout() - h.t;
    assert!(
        (750..=1000).contains(&d),
        "back to ~1 s after a CONNACK: {d}"
    );
}

#[test]
fn connect_attempt_times_out_without_transport_or_without_connack() {
    let mut h = H::device();
    assert_eq!(h.at(T0), [SessionOutput::Connect]);
    assert_eq!(h.timeout(), T0 + 20_000);
    let timed_out = [
        SessionOutput::Error(SessionError::ConnectTimeout(20_000)),
        SessionOutput::Close,
    ];
    assert_eq!(h.at(T0 + 20_000), timed_out);
    let due = h.timeout();
    assert_eq!(h.at(due), [SessionOutput::Connect]);
    h.feed(SessionInput::Connected);
    assert_eq!(h.at(due + 19_999), [], "CONNACK still awaited");
    assert_eq!(h.at(due + 20_000), timed_out);
    // The shell's late `Connected` for the abandoned attempt is refused.
    assert_eq!(h.feed(SessionInput::Connected), [SessionOutput::Close]);
}

#[test]
fn refused_connack_reports_the_return_code_and_backs_off() {
    let mut h = H::device();
    h.at(T0);
    h.feed(SessionInput::Connected);
    let out = h.bytes(&[0x20, 0x02, 0x00, 0x05]);
    assert_eq!(
        out,
        [
            SessionOutput::Error(SessionError::Refused {
                code: 5,
                reason: "not authorized"
            }),
            SessionOutput::Close
        ]
    );
    assert_eq!(
        SessionError::Refused {
            code: 5,
            reason: "not authorized"
        }
        .to_string(),
        "the broker refused the connection: not authorized (CONNACK return code 5)"
    );
    assert!(!h.s.is_up());
    assert!(h.timeout() > h.t);
}
