//! libFuzzer target for the desired-document decoder: decoding never
//! panics, and an accepted document survives a JSON, a postcard and a
//! compressed (zlib, what the controller publishes) round trip unchanged. Seeds: `fuzz/seeds/` (JSON, pretty JSON, postcard and
//! signed documents).
#![no_main]

use libfuzzer_sys::fuzz_target;
use picolet::fleet::doc::{
    DecodeOptions, decode_desired, encode_json, encode_message, encode_postcard,
};

fuzz_target!(|data: &[u8]| {
    let opts = DecodeOptions::default();
    let Ok(opened) = decode_desired(data, &opts) else {
        return;
    };
    for again in [
        encode_json(&opened.doc),
        encode_postcard(&opened.doc),
        encode_message(&opened.doc, None),
    ] {
        let back = decode_desired(&again, &opts).expect("a re-encoded document decodes");
        assert_eq!(back.doc, opened.doc, "round trip changed the document");
    }
});
