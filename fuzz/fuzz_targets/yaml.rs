//! libFuzzer target for the YAML reader and writer (`picolet::yaml`),
//! against serde_norway (libyaml): whatever our reader accepts, serde_norway
//! reads as the same values (ours refuses what it does not read the same
//! way), and what our writer prints of them both readers read back
//! unchanged. Seeds: the texts the unit tests read (`scripts/fuzz.sh`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::Value;

/// serde_norway's documents as `serde_json::Value`s. Where it differs from
/// our strict reading (it keeps the last of duplicate keys and makes
/// non-finite floats null), ours refuses the text.
fn norway(text: &str) -> Result<Vec<Value>, String> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).map_err(|e| e.to_string()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(ours) = picolet::yaml::values(text) else {
        return;
    };
    assert_eq!(Ok(&ours), norway(text).as_ref(), "read differently: {text:?}");
    for v in &ours {
        let printed = picolet::yaml::to_string(v);
        let back = vec![v.clone()];
        assert_eq!(picolet::yaml::values(&printed).as_ref(), Ok(&back), "{printed:?}");
        assert_eq!(norway(&printed).as_ref(), Ok(&back), "{printed:?}");
    }
});
