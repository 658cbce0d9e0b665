//! A randomized mutation test of [`decode_desired`], the decoder that takes
//! bytes from the network. Seeds are valid JSON, postcard and signed
//! documents. A third of the runs change the JSON seed as a tree (new
//! values, removed or added keys, duplicated items) and send it as JSON,
//! postcard or signed; the others apply 1–8 (mostly 1–2) byte mutations
//! (bit flips, interesting bytes, deletions, duplications, JSON tokens,
//! splices, truncation) to any seed. Every run checks that decoding never
//! panics, that errors have a message, and that an accepted document is
//! sound: unique pod names, valid pods, and JSON and postcard round trips
//! that decode to the same document.
//!
//! `PICOLET_FUZZ_ITERS` (default 100 000 in an optimized build, 30 000 —
//! about 7 s — in a debug one) and `PICOLET_FUZZ_SEED` set the run;
//! `scripts/fuzz-desired.sh` runs it longer. A failure prints the seed, the
//! iteration and the input in base64.

use super::*;
use crate::fleet::sign::{PublicKey, SigningKey, base64, generate_keypair};
use crate::spec::validate;
use std::collections::HashSet;

/// SplitMix64: small, fast, and good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// A pod using most of the fields picolet reads.
fn rich_pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "edge", "labels": {"app": name}},
        "spec": {
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": 5,
            "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}],
            "initContainers": [{"name": "init", "image": "busybox:1", "command": ["true"]}],
            "containers": [{
                "name": "app", "image": "registry.local/app:2",
                "args": ["--port", "$(PORT)"],
                "env": [{"name": "PORT", "value": "8080"},
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "ports": [{"name": "http", "containerPort": 8080}],
                "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}, "requests": {"cpu": 0.1}},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 2},
                "livenessProbe": {"tcpSocket": {"port": 8080}},
                "securityContext": {"runAsUser": 1000, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}]
            }]
        }
    })
}

fn seeds(key: &SigningKey) -> Vec<Vec<u8>> {
    let json = doc_json(3, vec![rich_pod("a"), pod("b")]);
    let doc = decode(&json).unwrap();
    let postcard = encode_postcard(&doc);
    vec![
        json.clone(),
        doc_json(0, vec![]),
        serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&json).unwrap()).unwrap(),
        postcard.clone(),
        seal_envelope(&json, key),
        seal_envelope(&postcard, key),
    ]
}

const TOKENS: [&[u8]; 16] = [
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e309",
    b"18446744073709551616",
    b"\"\"",
    b"{}",
    b"[]",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b",",
    b":",
    b"\"Pod\"",
    b"\"DeviceState\"",
    b"\"kind\":",
];

const BYTES: [u8; 14] = [
    0, 0xff, 0x80, b'{', b'}', b'[', b']', b'"', b',', b':', b'\\', b'-', b'9', b' ',
];

/// Values and fields that reach deep into the pod loader and the policy.
const VALUES: [&str; 18] = [
    "null",
    "true",
    "false",
    "0",
    "-1",
    "65536",
    "2147483648",
    "1.5",
    "\"\"",
    "\"x\"",
    "\"ALL\"",
    "\"Memory\"",
    "\"http\"",
    "\"1Ei\"",
    "\"/\"",
    "[]",
    "{}",
    "[\"a\",\"a\"]",
];
const KEYS: [&str; 14] = [
    "name",
    "image",
    "hostNetwork",
    "hostPID",
    "privileged",
    "hostPath",
    "port",
    "containerPort",
    "namespace",
    "restartPolicy",
    "command",
    "capabilities",
    "status",
    "lifecycle",
];

/// Changes one random node of a JSON tree: a new value, a removed or added
/// key, or a duplicated list item.
fn mutate_tree(rng: &mut Rng, v: &mut Value) {
    let descend = rng.below(3) != 0;
    match v {
        Value::Object(map) if descend && !map.is_empty() => {
            let k = map
                .keys()
                .nth(rng.below(map.len()))
                .cloned()
                .unwrap_or_default();
            if let Some(child) = map.get_mut(&k) {
                return mutate_tree(rng, child);
            }
        }
        Value::Array(items) if descend && !items.is_empty() => {
            let i = rng.below(items.len());
            return mutate_tree(rng, &mut items[i]);
        }
        _ => {}
    }
    let value: Value = serde_json::from_str(VALUES[rng.below(VALUES.len())]).unwrap();
    let choice = rng.below(4);
    match (choice, &mut *v) {
        (0, Value::Object(map)) if !map.is_empty() => {
            let k = map
                .keys()
                .nth(rng.below(map.len()))
                .cloned()
                .unwrap_or_default();
            map.remove(&k);
        }
        (1, Value::Object(map)) => {
            map.insert(KEYS[rng.below(KEYS.len())].to_string(), value);
        }
        (2, Value::Array(items)) if !items.is_empty() => {
            let item = items[rng.below(items.len())].clone();
            items.push(item);
        }
        _ => *v = value,
    }
}

/// A JSON seed changed as a tree, then sent as JSON, postcard or signed.
fn mutate_structure(rng: &mut Rng, tree: &Value, key: &SigningKey) -> Vec<u8> {
    let mut doc = tree.clone();
    for _ in 0..1 + rng.below(3) {
        mutate_tree(rng, &mut doc);
    }
    let json = serde_json::to_vec(&doc).unwrap();
    match rng.below(4) {
        0 => seal_envelope(&json, key),
        1 => {
            let pods: Vec<String> = match doc.get("pods") {
                Some(Value::Array(items)) => items.iter().map(Value::to_string).collect(),
                _ => Vec::new(),
            };
            let pods: Vec<&str> = pods.iter().map(String::as_str).collect();
            postcard_doc("DeviceState", 3, &pods)
        }
        _ => json,
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], tree: &Value, key: &SigningKey) -> Vec<u8> {
    if rng.below(3) == 0 {
        return mutate_structure(rng, tree, key);
    }
    let mut data = seeds[rng.below(seeds.len())].clone();
    // Mostly one or two mutations, sometimes up to eight.
    let rounds = if rng.below(4) == 0 {
        1 + rng.below(8)
    } else {
        1 + rng.below(2)
    };
    for _ in 0..rounds {
        let len = data.len();
        let at = rng.below(len + 1);
        match rng.below(8) {
            0 if len > 0 => data[at.min(len - 1)] ^= 1 << rng.below(8),
            1 if len > 0 => data[at.min(len - 1)] = BYTES[rng.below(BYTES.len())],
            2 => {
                let end = (at + 1 + rng.below(32)).min(len);
                data.drain(at..end);
            }
            3 => {
                let end = (at + 1 + rng.below(64)).min(len);
                let chunk = data[at..end].to_vec();
                let to = rng.below(len + 1);
                data.splice(to..to, chunk);
            }
            4 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, t.iter().copied());
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(128)).min(other.len());
                let cut = (at + rng.below(64)).min(len);
                data.splice(at..cut, other[from..end].iter().copied());
            }
            6 => data.truncate(at),
            _ if len > 0 => {
                // Replace a digit run (revisions, ports, counts) with another number.
                let i = at.min(len - 1);
                if data[i].is_ascii_digit() {
                    let n = rng.next() >> rng.below(64);
                    data.splice(i..i + 1, n.to_string().into_bytes());
                }
            }
            _ => {}
        }
    }
    data
}

/// Decodes `bytes` and checks what an accepted document must satisfy.
/// `Ok(None)` if accepted, `Ok(Some(reason))` if refused.
fn check(bytes: &[u8], key: Option<&PublicKey>) -> Result<Option<&'static str>, String> {
    let opts = DecodeOptions {
        max_bytes: MAX_DOC_BYTES,
        fleet_key: key,
    };
    let opened = match decode_desired(bytes, &opts) {
        Ok(o) => o,
        Err(e) => {
            return if e.to_string().is_empty() {
                Err(format!("empty error message for {e:?}"))
            } else {
                Ok(Some(e.reason()))
            };
        }
    };
    let doc = opened.doc;
    let mut names = HashSet::new();
    for p in &doc.pods {
        validate(p).map_err(|e| format!("accepted an invalid pod: {e}"))?;
        if !names.insert((&p.metadata.namespace, &p.metadata.name)) {
            return Err(format!("accepted a duplicate pod {}", p.metadata.name));
        }
    }
    for (what, again) in [
        ("JSON", encode_json(&doc)),
        ("postcard", encode_postcard(&doc)),
    ] {
        match decode(&again) {
            Ok(d) if d == doc => {}
            Ok(d) => return Err(format!("{what} round trip changed the document: {d:?}")),
            Err(e) => return Err(format!("{what} round trip refused: {e}")),
        }
    }
    Ok(None)
}

/// A decimal or `0x` hex number from the environment.
fn env_u64(name: &str, default: u64) -> u64 {
    let Ok(v) = std::env::var(name) else {
        return default;
    };
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
    .unwrap_or(default)
}

#[test]
fn random_mutations_of_desired_documents_never_panic_and_accept_only_sound_documents() {
    // Under qemu-user (the aarch64 run in CI) each case is ~50× slower: a
    // smaller sample there checks the decoder on that target; the native
    // run and the cargo-fuzz target carry the volume.
    let default_iters = if crate::check::qemu_user().is_some() {
        3_000
    } else if cfg!(debug_assertions) {
        30_000
    } else {
        100_000
    };
    let iters = env_u64("PICOLET_FUZZ_ITERS", default_iters);
    let seed = env_u64("PICOLET_FUZZ_SEED", 0x5eed_f1ee7);
    let (private, _) = generate_keypair().unwrap();
    let key = SigningKey::from_pkcs8(&private).unwrap();
    let public = key.public_key();
    let seeds = seeds(&key);
    let tree: Value = serde_json::from_slice(&seeds[0]).unwrap();
    for s in &seeds {
        assert_eq!(check(s, None), Ok(None), "seed must decode");
    }
    if let Some(dir) = std::env::var_os("PICOLET_FUZZ_WRITE_SEEDS") {
        // Seeds for the cargo-fuzz corpus (fuzz/seeds/).
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(std::path::Path::new(&dir).join(format!("seed-{i}")), s).unwrap();
        }
    }
    let mut rng = Rng(seed);
    let mut accepted = 0u64;
    let mut refused = crate::vecmap::VecMap::new();
    let started = std::time::Instant::now();
    for i in 0..iters {
        let input = mutate(&mut rng, &seeds, &tree, &key);
        let key = if i % 4 == 0 { Some(&public) } else { None };
        let why = match std::panic::catch_unwind(|| check(&input, key)) {
            Ok(Ok(None)) => {
                accepted += 1;
                continue;
            }
            Ok(Ok(Some(reason))) => {
                *refused.entry(reason).or_insert(0u64) += 1;
                continue;
            }
            Ok(Err(why)) => why,
            Err(_) => "panic (message above)".to_string(),
        };
        panic!(
            "seed {seed:#x} iteration {i}: {why}\ninput (base64): {}",
            base64::encode(&input)
        );
    }
    println!(
        "fuzz: {iters} executions, {accepted} accepted, refused {refused:?}, seed {seed:#x}, {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
