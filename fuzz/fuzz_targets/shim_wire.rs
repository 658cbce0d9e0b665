//! libFuzzer target for the shim's wire protocol: JSON lines of
//! `Request` (agent to shim) and `Event` (shim to agent), split on `\n` as
//! both ends do. It never panics, and a line that decodes survives a round
//! trip unchanged. Seeds: every line the shim tests send and receive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picolet::runtime::shim::proto::{Event, Request};

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        if let Ok(r) = serde_json::from_slice::<Request>(line) {
            let again: Request = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
            assert_eq!(again, r);
        }
        if let Ok(e) = serde_json::from_slice::<Event>(line) {
            let again: Event = serde_json::from_slice(&serde_json::to_vec(&e).unwrap()).unwrap();
            assert_eq!(again, e);
        }
    }
});
