//! libFuzzer target for the state file decoder (`store::decode` of the
//! versioned `StateFile`): it never panics, and a file that decodes
//! migrates to the latest version, which encodes and decodes unchanged.
//! Seeds: every state file the unit tests decode (the golden files too).
#![no_main]

use libfuzzer_sys::fuzz_target;
use picolet::agent::statefile::StateFile;
use picolet::store::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(state) = decode::<StateFile>(data) else {
        return;
    };
    let latest = StateFile::V5(state.into_latest());
    let bytes = encode(&latest).expect("a decoded state encodes");
    assert_eq!(decode::<StateFile>(&bytes).unwrap(), latest);
});
