//! A small zlib (RFC 1950) encoder for the documents the controller
//! publishes: LZ77 over deflate's 32 KiB window (hash chains, one step of
//! lazy matching), coded as one block of deflate's fixed Huffman codes
//! (RFC 1951 §3.2.6). miniz_oxide's encoder (flate2's `Compress`) cost the
//! x86 release binary 18,328 bytes more than this one, for documents about
//! a fifth smaller (50 pods: 3,982 bytes against 5,099); devices only
//! inflate, with flate2, which image pulls link anyway.

/// How many earlier positions with the same 3-byte hash are tried.
const MAX_CHAIN: usize = 256;
const WINDOW: usize = 1 << 15;
const HASH_BITS: u32 = 15;
const NONE: u32 = u32::MAX;

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// Bits, least significant first, as deflate packs them.
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, len: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += len;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code (sent most significant bit first).
    fn code(&mut self, code: u32, len: u32) {
        self.put(code.reverse_bits() >> (32 - len), len);
    }

    /// A literal/length symbol in the fixed code.
    fn symbol(&mut self, s: u32) {
        match s {
            0..=143 => self.code(0x30 + s, 8),
            144..=255 => self.code(0x190 + s - 144, 9),
            256..=279 => self.code(s - 256, 7),
            _ => self.code(0xc0 + s - 280, 8),
        }
    }
}

/// Hash chains: `head[h]` is the latest position whose 3 bytes hash to
/// `h`, `prev[p % WINDOW]` the one before `p`.
struct Chains<'a> {
    data: &'a [u8],
    head: Vec<u32>,
    prev: Vec<u32>,
    /// Positions below this are in the chains.
    next: usize,
}

impl Chains<'_> {
    fn hash(&self, i: usize) -> usize {
        let d = self.data;
        let v = u32::from(d[i]) | u32::from(d[i + 1]) << 8 | u32::from(d[i + 2]) << 16;
        (v.wrapping_mul(0x9e37_79b1) >> (32 - HASH_BITS)) as usize
    }

    /// Adds the positions up to `end` (excluded).
    fn insert_to(&mut self, end: usize) {
        while self.next < end.min(self.data.len().saturating_sub(2)) {
            let h = self.hash(self.next);
            self.prev[self.next % WINDOW] = self.head[h];
            self.head[h] = self.next as u32;
            self.next += 1;
        }
        self.next = self.next.max(end);
    }

    /// The longest earlier match for position `i`: (length, distance),
    /// length 0 when there is none of at least 3 bytes.
    fn longest(&mut self, i: usize) -> (usize, usize) {
        self.insert_to(i);
        let d = self.data;
        let max = (d.len() - i).min(258);
        if max < 3 {
            return (0, 0);
        }
        let mut best = (0, 0);
        let mut cand = self.head[self.hash(i)];
        for _ in 0..MAX_CHAIN {
            if cand == NONE || i - cand as usize > WINDOW {
                break;
            }
            let c = cand as usize;
            let len = d[c..c + max]
                .iter()
                .zip(&d[i..i + max])
                .take_while(|(a, b)| a == b)
                .count();
            if len > best.0 {
                best = (len, i - c);
                if len == max {
                    break;
                }
            }
            let older = self.prev[c % WINDOW];
            // A slot reused by a newer position ends the chain.
            if older == NONE || older >= cand {
                break;
            }
            cand = older;
        }
        if best.0 < 3 { (0, 0) } else { best }
    }
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    b << 16 | a
}

/// The zlib stream of `data`.
pub(super) fn zlib(data: &[u8]) -> Vec<u8> {
    let mut w = Bits {
        out: Vec::with_capacity(data.len() / 4 + 16),
        acc: 0,
        n: 0,
    };
    w.out.extend([0x78, 0x01]); // deflate, 32 KiB window, "fastest"
    w.put(0b011, 3); // the last block, fixed Huffman codes
    let mut lz = Chains {
        data,
        head: vec![NONE; 1 << HASH_BITS],
        prev: vec![NONE; WINDOW],
        next: 0,
    };
    let mut i = 0;
    while i < data.len() {
        let (len, dist) = lz.longest(i);
        // Lazy matching: a longer match one byte on wins over this one.
        if len == 0 || (len < 258 && lz.longest(i + 1).0 > len) {
            w.symbol(u32::from(data[i]));
            i += 1;
            continue;
        }
        let l = LEN_BASE
            .iter()
            .rposition(|&b| usize::from(b) <= len)
            .unwrap_or(0);
        w.symbol(257 + l as u32);
        w.put(
            (len - usize::from(LEN_BASE[l])) as u32,
            u32::from(LEN_EXTRA[l]),
        );
        let d = DIST_BASE
            .iter()
            .rposition(|&b| usize::from(b) <= dist)
            .unwrap_or(0);
        w.code(d as u32, 5);
        w.put(
            (dist - usize::from(DIST_BASE[d])) as u32,
            u32::from(DIST_EXTRA[d]),
        );
        i += len;
    }
    w.symbol(256);
    if w.n > 0 {
        w.out.push(w.acc as u8); // the last bits, padded to a byte
    }
    w.out.extend(adler32(data).to_be_bytes());
    w.out
}
