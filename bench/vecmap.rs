//! `VecMap` against `BTreeMap` at the sizes of the fleet controller's
//! per-device maps (`picolet fleet status` rows, a rollout's reports):
//!
//!     cargo bench --bench vecmap
//!
//! Each line: the time to fill a map of N devices from messages arriving
//! in a random order (an insert moves the entries after its slot, so a
//! `VecMap`'s fill is quadratic), then to look every device up once. The
//! value is 200 bytes, about a status row. docs/design-deviations.md §12
//! (session 10) takes the figures as its limit: fine up to tens of
//! thousands of devices.

use picolet::vecmap::VecMap;
use std::collections::BTreeMap;
use std::time::Instant;

type Row = [u8; 200];

fn keys(n: usize) -> Vec<String> {
    let mut x: u64 = 1;
    (0..n)
        .map(|i| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            format!("device-{:010}-{i}", x >> 34)
        })
        .collect()
}

fn main() {
    for n in [1_000, 5_000, 20_000, 50_000] {
        let ks = keys(n);
        let t = Instant::now();
        let mut v: VecMap<String, Row> = VecMap::new();
        for k in &ks {
            v.entry(k.clone()).or_insert([0; 200])[0] += 1;
        }
        let fill_v = t.elapsed();
        let t = Instant::now();
        let found_v = ks.iter().filter(|k| v.contains_key(k.as_str())).count();
        let get_v = t.elapsed();
        let t = Instant::now();
        let mut b: BTreeMap<String, Row> = BTreeMap::new();
        for k in &ks {
            b.entry(k.clone()).or_insert([0; 200])[0] += 1;
        }
        let fill_b = t.elapsed();
        let t = Instant::now();
        let found_b = ks.iter().filter(|k| b.contains_key(k.as_str())).count();
        let get_b = t.elapsed();
        assert_eq!((found_v, found_b), (n, n));
        println!(
            "{n:>6} devices: VecMap fill {fill_v:>10.2?} look-ups {get_v:>9.2?} | BTreeMap fill {fill_b:>9.2?} look-ups {get_b:>9.2?}"
        );
    }
}
