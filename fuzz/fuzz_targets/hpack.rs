//! libFuzzer target for the HPACK decoder of the grpc probe
//! (`probe::hpack`): the input is cut into header blocks (at the offsets
//! the first byte gives) and decoded by one decoder, as a connection's
//! blocks are, and fed whole to the Huffman decoder. It never panics, the
//! dynamic table stays within its 4,096 bytes, and a failed block leaves
//! the decoder usable. Seeds: every block the probe tests decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picolet::probe::hpack::{Decoder, huffman_decode};

fuzz_target!(|data: &[u8]| {
    let step = data.first().map_or(1, |&b| usize::from(b).max(1));
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for block in data.chunks(step) {
        let _ = d.decode(block, &mut out);
        assert!(d.table_size() <= 4096, "table of {} bytes", d.table_size());
    }
    if let Ok(text) = huffman_decode(data) {
        // Every symbol takes at least 5 bits.
        assert!(text.len() * 5 <= data.len() * 8);
    }
});
