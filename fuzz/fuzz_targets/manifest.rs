//! libFuzzer target for the manifest loader (`spec::load::load_str`, YAML
//! and JSON): it never panics, and every refusal has a message. Seeds: the
//! texts the unit tests load (`scripts/fuzz.sh` collects them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use picolet::spec::load::load_str;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for result in load_str(text, "fuzz.yaml") {
        if let Err(e) = result {
            assert!(!e.to_string().is_empty(), "an error without a message");
        }
    }
});
