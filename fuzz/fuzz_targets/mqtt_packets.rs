//! libFuzzer target for the MQTT receive path: a device session, after its
//! CONNACK, is fed the input in two chunks (split where the first byte
//! says), as bytes from the broker. It never panics, and its outputs stay
//! drainable. Seeds: every chunk the session tests feed it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picolet::clock::Now;
use picolet::fleet::session::{Session, SessionConfig, SessionInput};

fn now(ms: u64) -> Now {
    Now {
        mono_ms: ms,
        wall_ms: 1_700_000_000_000 + ms as i64,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut cfg = SessionConfig::device("dev1", "picolet");
    cfg.subscriptions = vec!["picolet/devices/dev1/desired".into()];
    cfg.max_packet_size = 4096;
    let mut s = Session::new(cfg);
    let feed = |s: &mut Session, input: SessionInput<'_>, t: u64| {
        s.handle(input, now(t));
        while s.poll_output().is_some() {}
    };
    feed(&mut s, SessionInput::Tick, 1_000);
    feed(&mut s, SessionInput::Connected, 1_000);
    // CONNACK, session not present, accepted.
    feed(
        &mut s,
        SessionInput::Bytes(&[0x20, 0x02, 0x00, 0x00]),
        1_001,
    );
    let split = data.first().map_or(0, |&b| usize::from(b).min(data.len()));
    let (a, b) = data.split_at(split);
    feed(&mut s, SessionInput::Bytes(a), 1_002);
    feed(&mut s, SessionInput::Bytes(b), 1_003);
    let _ = s.poll_timeout();
    feed(&mut s, SessionInput::Tick, 60_000);
});
