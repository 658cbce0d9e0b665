//! libFuzzer target for the shim's wire protocol: JSON lines of
//! `Request` (agent to shim) and `Event` (shim to agent), cut by the shared
//! framing (`jsonl::LineBuffer`) from the input fed in two chunks (split
//! where the first byte says), as both ends read them. It never panics, and
//! a line that decodes survives a round trip through `jsonl::encode`
//! unchanged. Seeds: every line the shim tests send and receive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picolet::jsonl::{LineBuffer, encode};
use picolet::runtime::shim::proto::{Event, Request};

fn check(line: &[u8]) {
    if let Ok(r) = serde_json::from_slice::<Request>(line) {
        let again: Request = serde_json::from_slice(&encode(&r).unwrap()).unwrap();
        assert_eq!(again, r);
    }
    if let Ok(e) = serde_json::from_slice::<Event>(line) {
        let again: Event = serde_json::from_slice(&encode(&e).unwrap()).unwrap();
        assert_eq!(again, e);
    }
}

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b).min(data.len()));
    let mut lines = LineBuffer::default();
    let mut taken = 0;
    for part in [&data[..split], &data[split..]] {
        lines.extend(part);
        while let Some(line) = lines.next_line() {
            taken += line.len() + 1;
            check(&line);
        }
    }
    assert_eq!(
        taken + lines.pending(),
        data.len(),
        "the framing lost bytes"
    );
});
