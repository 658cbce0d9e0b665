//! The compressed (zlib) wire form: round trips, the old forms still
//! accepted, deflate bombs, bad streams, and what the signature covers.

use super::*;
use crate::fleet::sign::{SigningKey, base64, generate_keypair};

fn key() -> SigningKey {
    SigningKey::from_pkcs8(&generate_keypair().unwrap().0).unwrap()
}

fn limit(max_bytes: usize) -> DecodeOptions<'static> {
    DecodeOptions {
        max_bytes,
        fleet_key: None,
    }
}

/// A zlib stream that inflates to `n` zero bytes (`n` ≥ 1, a multiple of
/// 258 plus 1), written by hand so that a gigabyte costs a few megabytes:
/// one fixed-Huffman block, a literal 0, then copies of length 258 at
/// distance 1 (13 bits each), then the end of block; the Adler-32 of `n`
/// zeros is `(n mod 65521) << 16 | 1`.
fn zero_bomb(n: u64) -> Vec<u8> {
    assert_eq!((n - 1) % 258, 0);
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        len: u32,
    }
    impl Bits {
        /// Appends the `len` low bits of `value`, least significant first.
        fn put(&mut self, value: u64, len: u32) {
            self.acc |= value << self.len;
            self.len += len;
            while self.len >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.len -= 8;
            }
        }
        /// A Huffman code, sent most significant bit first.
        fn code(&mut self, code: u64, len: u32) {
            let rev = (0..len).fold(0, |r, i| r | ((code >> i) & 1) << (len - 1 - i));
            self.put(rev, len);
        }
    }
    let mut w = Bits {
        out: vec![0x78, 0x01],
        acc: 0,
        len: 0,
    };
    w.put(0b011, 3); // BFINAL, BTYPE = 01 (fixed Huffman)
    w.code(0x30, 8); // literal 0
    for _ in 0..(n - 1) / 258 {
        w.code(0xc5, 8); // length code 285: 258 bytes
        w.code(0, 5); // distance code 0: distance 1
    }
    w.code(0, 7); // end of block (256)
    let pad = (8 - w.len % 8) % 8;
    w.put(0, pad);
    let adler = ((n % 65521) << 16 | 1) as u32;
    w.out.extend(adler.to_be_bytes());
    w.out
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_compressed_json_or_postcard_document_decodes_to_the_same_document() {
    let json = doc_json(7, vec![pod("a"), pod("b")]);
    let doc = decode(&json).unwrap();
    let postcard = encode_postcard(&doc);
    for plain in [&json, &postcard] {
        let z = compress(plain);
        assert_eq!(detect_format(&z), Ok(Format::Zlib));
        assert_eq!(decode(&z).unwrap(), doc);
        // The uncompressed forms are still accepted.
        assert_eq!(decode(plain).unwrap(), doc);
    }
    // What the controller publishes: compressed JSON.
    let msg = encode_message(&doc, None);
    assert_eq!(msg, compress(&encode_json(&doc)));
    assert_eq!(decode(&msg).unwrap(), doc);
    // Streams from other zlib writers (levels, window sizes) are read too:
    // `78 01` (level 0-1), `78 9c`, `78 da`, and a 512-byte window `08 1d`.
    let stored = {
        let mut s = vec![0x78, 0x01, 0x01];
        s.extend((json.len() as u16).to_le_bytes());
        s.extend((!(json.len() as u16)).to_le_bytes());
        s.extend(&json);
        let (mut a, mut b) = (1u32, 0u32);
        for &x in &json {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        s.extend((b << 16 | a).to_be_bytes());
        s
    };
    assert_eq!(decode(&stored).unwrap(), doc);
    let mut small_window = stored.clone();
    small_window[..2].copy_from_slice(&[0x08, 0x1d]);
    assert_eq!(detect_format(&small_window), Ok(Format::Zlib));
    assert_eq!(decode(&small_window).unwrap(), doc);
}

#[test]
fn a_deflate_bomb_is_refused_as_too_large_with_little_memory() {
    // 1 GiB of zeros in 6.5 MB: inflating it whole would take a gigabyte.
    let n = 258 * 4_161_601 + 1;
    let bomb = zero_bomb(n);
    assert!(bomb.len() < 7_000_000, "{}", bomb.len());
    let before = vm_hwm_kib();
    let err = decode_desired(&bomb, &limit(8 << 20)).unwrap_err();
    let grew = vm_hwm_kib().saturating_sub(before);
    assert_eq!(
        err,
        DocError::InflatesTooLarge {
            compressed: bomb.len(),
            limit: 8 << 20
        }
    );
    assert_eq!(err.reason(), "TooLarge");
    assert_eq!(
        err.to_string(),
        format!(
            "the compressed document ({} bytes) inflates to more than the limit of 8388608 bytes",
            bomb.len()
        )
    );
    // The peak RSS of the whole test process (other tests run too): far
    // below the gigabyte a whole inflate would take.
    assert!(grew < 256 * 1024, "peak RSS grew by {grew} KiB");

    // The limit is exact: n bytes pass with a limit of n, not of n - 1.
    let small = zero_bomb(258 * 40 + 1);
    assert_eq!(
        crate::fleet::doc::desired::inflate(&small, 10_321).unwrap(),
        vec![0; 10_321]
    );
    assert_eq!(
        crate::fleet::doc::desired::inflate(&small, 10_320),
        Err(DocError::InflatesTooLarge {
            compressed: small.len(),
            limit: 10_320
        })
    );
    // Limits below the first buffer's size (--max-document-bytes takes 1Ki).
    assert_eq!(
        crate::fleet::doc::desired::inflate(&small, 1024),
        Err(DocError::InflatesTooLarge {
            compressed: small.len(),
            limit: 1024
        })
    );
    let tiny = compress(b"{}");
    assert_eq!(
        crate::fleet::doc::desired::inflate(&tiny, 2).unwrap(),
        b"{}"
    );
    assert_eq!(
        crate::fleet::doc::desired::inflate(&tiny, 0)
            .unwrap_err()
            .reason(),
        "TooLarge"
    );
    // The default cap is --max-document-bytes' default, 1 MiB.
    assert_eq!(decode(&bomb).unwrap_err().reason(), "TooLarge");
}

#[test]
fn bad_compressed_data_is_malformed_with_a_clear_message() {
    let z = compress(&doc_json(1, vec![pod("a")]));
    let malformed = |bytes: &[u8]| {
        let err = decode(bytes).unwrap_err();
        assert_eq!(err.reason(), "Malformed", "{err}");
        err.to_string()
    };
    let truncated = malformed(&z[..z.len() / 2]);
    assert_eq!(
        truncated,
        "malformed compressed (zlib) document: truncated: the data ends before the end of the stream"
    );
    let mut after = z.clone();
    after.extend(b"xyz");
    assert_eq!(
        malformed(&after),
        "malformed compressed (zlib) document: 3 bytes after the end of the stream"
    );
    // A flipped bit in the checksum, then in the data.
    let mut sum = z.clone();
    *sum.last_mut().unwrap() ^= 1;
    let msg = malformed(&sum);
    assert!(
        msg.starts_with("malformed compressed (zlib) document: "),
        "{msg}"
    );
    let mut data = z.clone();
    data[z.len() / 2] ^= 0x10;
    assert!(
        malformed(&data).starts_with("malformed compressed (zlib) document: "),
        "{}",
        malformed(&data)
    );
    // The header alone, and a stream of something that is not a document.
    assert_eq!(
        malformed(&z[..2]),
        "malformed compressed (zlib) document: truncated: the data ends before the end of the stream"
    );
    assert_eq!(
        decode(&compress(b"[1]")).unwrap_err(),
        DocError::Format { first: b'[' }
    );
    // One level only.
    assert_eq!(
        malformed(&compress(&z)),
        "malformed compressed (zlib) document: the inflated document is compressed again (one level is allowed)"
    );
}

#[test]
fn the_signature_covers_the_compressed_payload_and_is_checked_before_inflating() {
    let key = key();
    let public = key.public_key();
    let with_key = DecodeOptions {
        fleet_key: Some(&public),
        ..DecodeOptions::default()
    };
    let doc = decode(&doc_json(3, vec![pod("a")])).unwrap();
    let sealed = encode_message(&doc, Some(&key));
    let envelope: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
    let payload = base64::decode(envelope["payload"].as_str().unwrap()).unwrap();
    let sig = base64::decode(envelope["signature"].as_str().unwrap()).unwrap();
    assert_eq!(detect_format(&payload), Ok(Format::Zlib));
    assert!(public.verify(&payload, &sig));
    let opened = decode_desired(&sealed, &with_key).unwrap();
    assert_eq!(opened.doc, doc);
    assert_eq!(
        opened.signature,
        Signature::Verified {
            key_id: public.key_id()
        }
    );

    // A signature over the uncompressed bytes does not verify the
    // compressed payload.
    let mut swapped = envelope.clone();
    swapped["signature"] = base64::encode(&key.sign(&encode_json(&doc))).into();
    let err = decode_desired(&serde_json::to_vec(&swapped).unwrap(), &with_key).unwrap_err();
    assert_eq!(err.reason(), "BadSignature");

    // A bomb under a bad signature is refused for its signature: it is
    // never inflated.
    let mut bomb = envelope.clone();
    bomb["payload"] = base64::encode(&zero_bomb(258 * 100_000 + 1)).into();
    let err = decode_desired(&serde_json::to_vec(&bomb).unwrap(), &with_key).unwrap_err();
    assert_eq!(err.reason(), "BadSignature");
    // Signed, it is inflated only up to the cap.
    let signed_bomb = seal_envelope(&zero_bomb(258 * 100_000 + 1), &key);
    let err = decode_desired(&signed_bomb, &with_key).unwrap_err();
    assert_eq!(err.reason(), "TooLarge");

    // With a fleet key, a compressed message is unsigned: refused before
    // inflating. Without one, a compressed envelope is refused: the
    // envelope compresses its payload instead.
    let err = decode_desired(&compress(&sealed), &with_key).unwrap_err();
    assert_eq!(
        err,
        DocError::Unsigned {
            key_id: public.key_id()
        }
    );
    assert_eq!(
        error(&compress(&sealed)),
        "kind: a SignedDeviceState envelope cannot be inside another envelope nor compressed (compress its payload instead)"
    );
}

/// 50 pods of the examples' shape (`examples/hello.yaml`: two containers,
/// a command, env, a port, a readiness probe, resources), each with its
/// own name, image, labels and env values (one of them a random-looking
/// hash, which does not compress).
fn ordinary_pods(n: usize) -> Vec<Value> {
    const TIERS: [&str; 3] = ["web", "worker", "cache"];
    const LEVELS: [&str; 3] = ["info", "debug", "warn"];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut hex = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        format!("{seed:016x}")
    };
    (0..n)
        .map(|i| {
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": format!("service-{i:02}"),
                    "namespace": "edge",
                    "labels": {"app": format!("service-{i:02}"), "tier": TIERS[i % 3]},
                },
                "spec": {
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "app",
                            "image": format!("registry.example.com/fleet/service-{i:02}:1.{}.{}", i % 7, i),
                            "command": ["/bin/app", "--listen", format!(":{}", 8000 + i), "--config", "/etc/app/config.yaml"],
                            "env": [
                                {"name": "SERVICE_NAME", "value": format!("service-{i:02}")},
                                {"name": "LOG_LEVEL", "value": LEVELS[i % 3]},
                                {"name": "UPSTREAM_URL", "value": format!("http://10.0.{}.{}:9000/api/v2", i / 10, i)},
                                {"name": "CONFIG_SHA", "value": hex() + &hex()},
                                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            ],
                            "ports": [{"name": "http", "containerPort": 8000 + i}],
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "initialDelaySeconds": 1,
                                "periodSeconds": 5,
                            },
                            "resources": {
                                "requests": {"cpu": format!("{}m", 10 + i), "memory": format!("{}Mi", 8 + i % 8)},
                                "limits": {"cpu": format!("{}m", 100 + 10 * i), "memory": format!("{}Mi", 32 + i % 16)},
                            },
                        },
                        {
                            "name": "sidecar",
                            "image": format!("registry.example.com/fleet/log-shipper:2.{}", i % 4),
                            "command": ["sh", "-c", format!("trap 'exit 0' TERM; while true; do ship /var/log/service-{i:02}; sleep 5; done")],
                            "resources": {"limits": {"cpu": "50m", "memory": "8Mi"}},
                        },
                    ],
                },
            })
        })
        .collect()
}

#[test]
fn fifty_ordinary_pods_fit_under_aws_iot_cores_128_kb_when_compressed() {
    let doc = decode(&doc_json(12, ordinary_pods(50))).unwrap();
    assert_eq!(doc.pods.len(), 50);
    let json = encode_json(&doc);
    let postcard = encode_postcard(&doc);
    let key = key();
    let rows = [
        ("JSON", json.len()),
        ("postcard", postcard.len()),
        ("JSON, signed", seal_envelope(&json, &key).len()),
        ("zlib JSON (published)", encode_message(&doc, None).len()),
        ("zlib postcard", compress(&postcard).len()),
        (
            "zlib JSON, signed (published)",
            encode_message(&doc, Some(&key)).len(),
        ),
    ];
    let miniz = |b: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(b).unwrap();
        e.finish().unwrap().len()
    };
    eprintln!("message sizes of 50 ordinary pods:");
    eprintln!(
        "  {:32} {:>7} bytes",
        "(zlib JSON by miniz_oxide, best)",
        miniz(&json)
    );
    for (what, size) in rows {
        eprintln!("  {what:32} {size:>7} bytes");
    }
    // AWS IoT Core's cap is 128 KB: compressed, they fit, signed or not,
    // with room to spare.
    assert!(rows[4].1 < 128 * 1024 / 4, "{rows:?}");
    assert!(rows[5].1 < 128 * 1024 / 4, "{rows:?}");
    for (_, bytes) in [
        ("json", encode_message(&doc, None)),
        ("signed", encode_message(&doc, Some(&key))),
    ] {
        let opts = DecodeOptions {
            fleet_key: None,
            ..DecodeOptions::default()
        };
        assert_eq!(decode_desired(&bytes, &opts).unwrap().doc, doc);
    }
}

#[test]
fn the_encoder_round_trips_any_bytes_through_a_standard_inflater() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    let json = doc_json(1, ordinary_pods(60));
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![],
        b"a".to_vec(),
        b"ab".to_vec(),
        b"abc".to_vec(),
        b"abcabcabcabc".to_vec(),
        vec![0; 1 << 20],
        vec![0xff; 259],
        random(100_000),
        json.clone(),
    ];
    // Matches at the window's far end (32 KiB back) and beyond it.
    let block = random(40_000);
    inputs.push([&block[..], &block[..]].concat());
    inputs.push([&block[..32_768], &block[..300]].concat());
    for (n, input) in inputs.iter().enumerate() {
        let z = compress(input);
        assert_eq!(detect_format(&z), Ok(Format::Zlib), "input {n}");
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&z[..]), &mut plain)
            .unwrap();
        assert!(plain == *input, "input {n} changed");
        assert_eq!(
            crate::fleet::doc::desired::inflate(&z, input.len()).unwrap(),
            *input
        );
    }
    // It compresses: JSON to less than a tenth, 1 MiB of zeros to about
    // 13 bits per 258 bytes, random bytes grow by at most 1/8 (9-bit codes).
    assert!(compress(&json).len() * 10 < json.len());
    assert!(compress(&vec![0; 1 << 20]).len() < 7_000);
    assert!(compress(&random(100_000)).len() < 112_600);
}
