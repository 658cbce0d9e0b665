//! A minimal HPACK decoder (RFC 7541) for the gRPC probe's response
//! headers and trailers: indexed fields, literals with and without
//! indexing, the dynamic table (at most 4,096 bytes, our default
//! `SETTINGS_HEADER_TABLE_SIZE`) and its size updates, and Huffman-coded
//! strings. Every length is checked against the input: a malformed block
//! is an error, never a panic.
//!
//! The Huffman code of Appendix B is canonical (codes of one length are
//! consecutive, in symbol order, and each length starts where the last
//! left off, doubled), so it is stored as two small tables: how many codes
//! each length has, and the symbols in code order.

use std::collections::VecDeque;

/// Why a header block could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HPACK: {0}")]
pub struct HpackError(&'static str);

/// The dynamic table size our SETTINGS leave at its default.
const MAX_TABLE: usize = 4096;

/// A decoder for one connection (the dynamic table lives across blocks).
/// Fuzzed by `fuzz/fuzz_targets/hpack.rs`.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Newest first.
    dynamic: VecDeque<(String, String)>,
    size: usize,
    max: usize,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            max: MAX_TABLE,
            ..Decoder::default()
        }
    }

    /// Decodes one complete header block, appending its fields to `out`.
    pub fn decode(
        &mut self,
        mut buf: &[u8],
        out: &mut Vec<(String, String)>,
    ) -> Result<(), HpackError> {
        #[cfg(test)]
        crate::testutil::fuzz_seed("hpack", buf);
        while let Some(&b) = buf.first() {
            if b & 0x80 != 0 {
                let i = integer(&mut buf, 7)?;
                out.push(self.get(i)?);
            } else if b & 0x40 != 0 {
                let (name, value) = self.literal(&mut buf, 6)?;
                self.insert(name.clone(), value.clone());
                out.push((name, value));
            } else if b & 0x20 != 0 {
                let max = integer(&mut buf, 5)?;
                if max > MAX_TABLE {
                    return Err(HpackError("table size update above the limit"));
                }
                self.max = max;
                self.evict();
            } else {
                // Without indexing (0000) or never indexed (0001).
                out.push(self.literal(&mut buf, 4)?);
            }
        }
        Ok(())
    }

    fn literal(&self, buf: &mut &[u8], prefix: u8) -> Result<(String, String), HpackError> {
        let i = integer(buf, prefix)?;
        let name = if i == 0 { string(buf)? } else { self.get(i)?.0 };
        Ok((name, string(buf)?))
    }

    /// The dynamic table's size as RFC 7541 counts it (32 bytes an entry
    /// plus its name and value), never above the limit.
    pub fn table_size(&self) -> usize {
        self.size
    }

    fn get(&self, i: usize) -> Result<(String, String), HpackError> {
        let entry = match i {
            0 => None,
            1..=61 => STATIC_TABLE
                .get(i - 1)
                .map(|&(n, v)| (n.to_string(), v.to_string())),
            _ => self.dynamic.get(i - 62).cloned(),
        };
        entry.ok_or(HpackError("index out of range"))
    }

    fn insert(&mut self, name: String, value: String) {
        let size = name.len() + value.len() + 32;
        if size > self.max {
            self.dynamic.clear();
            self.size = 0;
            return;
        }
        self.dynamic.push_front((name, value));
        self.size += size;
        self.evict();
    }

    fn evict(&mut self) {
        while self.size > self.max {
            match self.dynamic.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + 32,
                None => self.size = 0,
            }
        }
    }
}

fn take(buf: &mut &[u8]) -> Result<u8, HpackError> {
    let (&b, rest) = buf.split_first().ok_or(HpackError("truncated block"))?;
    *buf = rest;
    Ok(b)
}

/// An integer with an N-bit prefix (section 5.1); at most 2^28 or so.
fn integer(buf: &mut &[u8], prefix: u8) -> Result<usize, HpackError> {
    let mask = (1u8 << prefix) - 1;
    let first = take(buf)? & mask;
    if first < mask {
        return Ok(usize::from(first));
    }
    let mut value = usize::from(mask);
    for shift in [0, 7, 14, 21] {
        let b = take(buf)?;
        value += usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(HpackError("integer too large"))
}

/// A string literal (section 5.2), Huffman-coded or not.
fn string(buf: &mut &[u8]) -> Result<String, HpackError> {
    let huffman = buf.first().is_some_and(|b| b & 0x80 != 0);
    let len = integer(buf, 7)?;
    if len > buf.len() {
        return Err(HpackError("truncated string"));
    }
    let (raw, rest) = buf.split_at(len);
    *buf = rest;
    let bytes = if huffman {
        huffman_decode(raw)?
    } else {
        raw.to_vec()
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Decodes a Huffman-coded string (Appendix B): bit by bit, with the
/// canonical code's first code of each length.
pub fn huffman_decode(raw: &[u8]) -> Result<Vec<u8>, HpackError> {
    let mut out = Vec::with_capacity(raw.len() * 8 / 5);
    // The code read so far, its length, the first code of that length and
    // the index of that code's symbol.
    let (mut code, mut len, mut first, mut index) = (0u32, 0usize, 0u32, 0usize);
    for byte in raw {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            let count = u32::from(HUFFMAN_COUNTS[len]);
            let offset = code.wrapping_sub(first);
            if offset < count {
                let i = index + offset as usize;
                let &symbol = HUFFMAN_SYMBOLS
                    .get(i)
                    .ok_or(HpackError("EOS in a Huffman string"))?;
                out.push(symbol);
                (code, len, first, index) = (0, 0, 0, 0);
            } else {
                index += count as usize;
                first = (first + count) << 1;
                if len == HUFFMAN_COUNTS.len() - 1 {
                    return Err(HpackError("invalid Huffman code"));
                }
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (a prefix of EOS).
    if len > 7 || code != (1 << len) - 1 {
        return Err(HpackError("invalid Huffman padding"));
    }
    Ok(out)
}

/// How many codes of each length (0..=30) the Huffman code has (EOS included).
const HUFFMAN_COUNTS: [u16; 31] = [
    0, 0, 0, 0, 0, 10, 26, 32, 6, 0, 5, 3, 2, 6, 2, 3, 0, 0, 0, 3, 8, 13, 26, 29, 12, 4, 15, 19,
    29, 0, 4,
];
/// The 256 byte symbols in code order (by length, then value); EOS is last.
const HUFFMAN_SYMBOLS: [u8; 256] = [
    48, 49, 50, 97, 99, 101, 105, 111, 115, 116, 32, 37, 45, 46, 47, 51, 52, 53, 54, 55, 56, 57,
    61, 65, 95, 98, 100, 102, 103, 104, 108, 109, 110, 112, 114, 117, 58, 66, 67, 68, 69, 70, 71,
    72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 89, 106, 107, 113, 118, 119,
    120, 121, 122, 38, 42, 44, 59, 88, 90, 33, 34, 40, 41, 63, 39, 43, 124, 35, 62, 0, 36, 64, 91,
    93, 126, 94, 125, 60, 96, 123, 92, 195, 208, 128, 130, 131, 162, 184, 194, 224, 226, 153, 161,
    167, 172, 176, 177, 179, 209, 216, 217, 227, 229, 230, 129, 132, 133, 134, 136, 146, 154, 156,
    160, 163, 164, 169, 170, 173, 178, 181, 185, 186, 187, 189, 190, 196, 198, 228, 232, 233, 1,
    135, 137, 138, 139, 140, 141, 143, 147, 149, 150, 151, 152, 155, 157, 158, 165, 166, 168, 174,
    175, 180, 182, 183, 188, 191, 197, 231, 239, 9, 142, 144, 145, 148, 159, 171, 206, 215, 225,
    236, 237, 199, 207, 234, 235, 192, 193, 200, 201, 202, 205, 210, 213, 218, 219, 238, 240, 242,
    243, 255, 203, 204, 211, 212, 214, 221, 222, 223, 241, 244, 245, 246, 247, 248, 250, 251, 252,
    253, 254, 2, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27, 28,
    29, 30, 31, 127, 220, 249, 10, 13, 22,
];
/// RFC 7541 Appendix A.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(d: &mut Decoder, block: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        d.decode(block, &mut out).unwrap();
        out
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn rfc_7541_c4_requests_with_huffman_and_the_dynamic_table() {
        let mut d = Decoder::new();
        let first = decode(&mut d, &hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"));
        assert_eq!(
            first,
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ])
        );
        let second = decode(&mut d, &hex("8286 84be 5886 a8eb 1064 9cbf"));
        assert_eq!(
            second,
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache"),
            ])
        );
        let third = decode(
            &mut d,
            &hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"),
        );
        assert_eq!(third[4], ("custom-key".into(), "custom-value".into()));
        assert_eq!(third[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(d.size, 164);
    }

    #[test]
    fn rfc_7541_c6_responses_evict_from_a_small_table() {
        let mut d = Decoder::new();
        // A size update to 256 first, then C.6.1 and C.6.2.
        let mut block = vec![0x3f, 0xe1, 0x01];
        block.extend(hex(
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 \
             2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        ));
        let first = decode(&mut d, &block);
        assert_eq!(first[0], (":status".into(), "302".into()));
        assert_eq!(
            first[3],
            ("location".into(), "https://www.example.com".into())
        );
        let second = decode(&mut d, &hex("4883 640e ffc1 c0bf"));
        assert_eq!(
            second,
            pairs(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ])
        );
        assert_eq!(d.size, 222);
    }

    #[test]
    fn malformed_blocks_are_errors() {
        for bad in [
            &[0x80][..],                                 // index 0
            &[0xff, 0x80],                               // truncated integer
            &[0xbe],                                     // empty dynamic table
            &[0x00, 0x05, b'a'],                         // truncated string
            &[0x3f, 0xe2, 0x1f],                         // size update above 4096
            &[0x00, 0x81, 0x00, 0x00],                   // Huffman padding of zeros
            &[0x00, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00], // EOS
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],       // integer too large
        ] {
            let mut out = Vec::new();
            assert!(Decoder::new().decode(bad, &mut out).is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn every_byte_round_trips_through_the_canonical_code() {
        // Encode each byte with codes rebuilt from the counts (the
        // canonical construction), then decode: the tables agree.
        let mut codes = [(0u32, 0usize); 256];
        let (mut code, mut i) = (0u32, 0usize);
        for (len, &count) in HUFFMAN_COUNTS.iter().enumerate().skip(1) {
            for _ in 0..count {
                if let Some(&s) = HUFFMAN_SYMBOLS.get(i) {
                    codes[usize::from(s)] = (code, len);
                }
                code += 1;
                i += 1;
            }
            code <<= 1;
        }
        // RFC 7541 Appendix B: 'a' is 00011 (5 bits), '0' is 00000.
        assert_eq!(codes[usize::from(b'a')], (0b00011, 5));
        assert_eq!(codes[usize::from(b'0')], (0, 5));
        let all: Vec<u8> = (0..=255).collect();
        let (mut bits, mut n, mut enc) = (0u64, 0usize, Vec::new());
        for &b in &all {
            let (c, l) = codes[usize::from(b)];
            bits = (bits << l) | u64::from(c);
            n += l;
            while n >= 8 {
                enc.push((bits >> (n - 8)) as u8);
                n -= 8;
            }
        }
        if n > 0 {
            enc.push(((bits << (8 - n)) as u8) | ((1u8 << (8 - n)) - 1));
        }
        assert_eq!(huffman_decode(&enc).unwrap(), all);
    }
}
