//! Image garbage collection: the pure decisions (no I/O, clocks given).
//!
//! The kubelet's image GC: when the image filesystem's usage reaches
//! `high_pct` (`imageGCHighThresholdPercent`, 85), unused images are
//! deleted, least recently used first, until usage would be back at
//! `low_pct` (`imageGCLowThresholdPercent`, 80) ([`bytes_to_free`]). An
//! image is *unused* when no pod the agent knows (any phase, any source)
//! names it or runs it, and *eligible* once it is older than `min_age_ms`
//! (`imageMinimumGCAge`, 2 min) counted from its import or its last use,
//! whichever is later. Under imagefs eviction pressure every eligible
//! unused image goes (the kubelet's `DeleteUnusedImages`), before any pod
//! is evicted ([`GcSchedule::may_evict`]).
//!
//! Images share blobs and unpacked layers: deleting one frees only what no
//! remaining image references ([`plan`] counts exactly that).

use crate::vecmap::VecMap;
use crate::vecmap::VecSet;

use crate::lifecycle::eviction::FsStats;

/// The kubelet's `imageGCHighThresholdPercent`.
pub const DEFAULT_HIGH_PCT: u64 = 85;
/// The kubelet's `imageGCLowThresholdPercent`.
pub const DEFAULT_LOW_PCT: u64 = 80;
/// The kubelet's `imageMinimumGCAge`: 2 minutes.
pub const DEFAULT_MIN_AGE_MS: u64 = 120_000;
/// The kubelet's `ImageGCPeriod`: a threshold GC that freed nothing is
/// not tried again sooner than this (5 minutes).
pub const PERIOD_MS: u64 = 300_000;

/// When to collect and what may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcPolicy {
    /// Usage percent at which GC starts; 100 disables threshold GC.
    pub high_pct: u64,
    /// Usage percent GC frees down to.
    pub low_pct: u64,
    /// An unused image younger than this (since import or last use) stays.
    pub min_age_ms: u64,
}

impl Default for GcPolicy {
    fn default() -> GcPolicy {
        GcPolicy {
            high_pct: DEFAULT_HIGH_PCT,
            low_pct: DEFAULT_LOW_PCT,
            min_age_ms: DEFAULT_MIN_AGE_MS,
        }
    }
}

/// The kubelet's amount to free: 0 while usage (`100 - available×100 /
/// total`, percent, rounded down as the kubelet's integer division) is
/// below `high_pct`; else what brings available space up to `100 -
/// low_pct` percent of the filesystem. 0 on an unknown filesystem.
pub fn bytes_to_free(p: GcPolicy, fs: FsStats) -> u64 {
    if fs.total == 0 || p.high_pct >= 100 {
        return 0;
    }
    let total = fs.total as u128;
    let available = (fs.available as u128).min(total);
    let usage = 100 - available * 100 / total;
    if usage < p.high_pct as u128 {
        return 0;
    }
    let target = total * (100 - p.low_pct.min(100) as u128) / 100;
    target.saturating_sub(available) as u64
}

/// One image (every reference to one manifest) as GC sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcImage {
    /// `sha256:<manifest digest>`: the unit deleted.
    pub manifest: String,
    /// The references tagged to it.
    pub references: Vec<String>,
    /// What it holds on disk (blobs, unpacked layers), as opaque keys
    /// shared between images; sizes are given to [`plan`].
    pub objects: Vec<String>,
    /// Unix ms of its import.
    pub imported_ms: i64,
    /// Unix ms a container using it last started, if known.
    pub last_used_ms: Option<i64>,
    /// A pod the agent knows names it or runs it.
    pub in_use: bool,
}

impl GcImage {
    /// The later of import and last use: its LRU key and age origin.
    pub fn last_touched_ms(&self) -> i64 {
        self.last_used_ms
            .map_or(self.imported_ms, |u| u.max(self.imported_ms))
    }

    /// Unused and old enough at `now_ms`.
    pub fn eligible(&self, now_ms: i64, min_age_ms: u64) -> bool {
        !self.in_use
            && now_ms.saturating_sub(self.last_touched_ms())
                >= i64::try_from(min_age_ms).unwrap_or(i64::MAX)
    }
}

/// What to delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Manifests, in deletion order (least recently used first).
    pub delete: Vec<String>,
    /// Bytes deleting them frees (objects no kept image references).
    pub freed: u64,
    /// Bytes deleting every eligible image would free.
    pub eligible: u64,
}

/// The images to delete to free `want` bytes: eligible images (see
/// [`GcImage::eligible`]) least recently used first (ties: older import,
/// then manifest digest), each freeing the objects no other remaining
/// image references, until `want` is reached or none is left. `sizes`:
/// bytes per object key (missing: 0).
#[must_use = "the plan is the images to delete"]
pub fn plan(
    images: &[GcImage],
    sizes: &VecMap<String, u64>,
    want: u64,
    now_ms: i64,
    min_age_ms: u64,
) -> Plan {
    let mut refs: VecMap<&str, usize> = VecMap::new();
    for img in images {
        let own: VecSet<&str> = img.objects.iter().map(String::as_str).collect();
        for o in own {
            *refs.entry(o).or_default() += 1;
        }
    }
    let mut order: Vec<&GcImage> = images
        .iter()
        .filter(|i| i.eligible(now_ms, min_age_ms))
        .collect();
    order.sort_by(|a, b| {
        (a.last_touched_ms(), a.imported_ms, &a.manifest).cmp(&(
            b.last_touched_ms(),
            b.imported_ms,
            &b.manifest,
        ))
    });
    let mut out = Plan::default();
    for img in order {
        let own: VecSet<&str> = img.objects.iter().map(String::as_str).collect();
        let mut frees = 0u64;
        for o in own {
            let n = refs.get_mut(o).expect("counted above");
            *n -= 1;
            if *n == 0 {
                frees = frees.saturating_add(sizes.get(o).copied().unwrap_or(0));
            }
        }
        out.eligible = out.eligible.saturating_add(frees);
        if out.freed < want {
            out.freed = out.freed.saturating_add(frees);
            out.delete.push(img.manifest.clone());
        }
    }
    out
}

/// The kubelet's message when GC cannot free enough
/// (`FreeDiskSpaceFailed`).
pub fn shortfall_message(needed: u64, eligible: u64) -> String {
    format!(
        "Failed to garbage collect required amount of images. Attempted to free {needed} bytes, but only found {eligible} bytes eligible to free."
    )
}

/// When GC runs: one at a time; a threshold GC at most every tick while
/// the last one freed something, else every [`PERIOD_MS`]; under
/// eviction pressure once per tick until one has completed since the
/// pressure began (pods are evicted only after that:
/// [`GcSchedule::may_evict`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcSchedule {
    in_flight: bool,
    in_flight_for_pressure: bool,
    last_done_ms: Option<u64>,
    last_freed: bool,
    /// A GC started under the current pressure has completed.
    pressure_done: bool,
}

impl GcSchedule {
    pub fn new() -> GcSchedule {
        GcSchedule::default()
    }

    /// Whether to start a GC at `now_ms` (mono), wanting `want` bytes
    /// (0: nothing to do), `pressure`: the image filesystem is under
    /// eviction pressure. When true, the caller starts one and later calls
    /// [`GcSchedule::finished`].
    #[must_use = "when true, a GC is to be started, and `finished` called"]
    pub fn start(&mut self, now_ms: u64, want: u64, pressure: bool) -> bool {
        if !pressure {
            self.pressure_done = false;
        }
        if want == 0 || self.in_flight {
            return false;
        }
        let due = pressure && !self.pressure_done
            || self.last_freed
            || self
                .last_done_ms
                .is_none_or(|t| now_ms >= t.saturating_add(PERIOD_MS));
        if due {
            self.in_flight = true;
            self.in_flight_for_pressure = pressure;
        }
        due
    }

    /// The GC started last is done (`freed_any`: it deleted something),
    /// or failed.
    pub fn finished(&mut self, now_ms: u64, freed_any: bool) {
        self.in_flight = false;
        self.last_done_ms = Some(now_ms);
        self.last_freed = freed_any;
        if self.in_flight_for_pressure {
            self.pressure_done = true;
        }
    }

    /// Under pressure: pods may be evicted (a GC has completed since the
    /// pressure began and none runs).
    pub fn may_evict(&self) -> bool {
        !self.in_flight && self.pressure_done
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn img(m: &str, objects: &[&str], imported: i64, used: Option<i64>, in_use: bool) -> GcImage {
        GcImage {
            manifest: m.to_string(),
            references: vec![format!("x.io/{m}:1")],
            objects: objects.iter().map(|o| o.to_string()).collect(),
            imported_ms: imported,
            last_used_ms: used,
            in_use,
        }
    }

    fn sizes(s: &[(&str, u64)]) -> VecMap<String, u64> {
        s.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn fs(total: u64, available: u64) -> FsStats {
        FsStats { total, available }
    }

    #[test]
    fn the_amount_to_free_follows_the_kubelets_thresholds() {
        let p = GcPolicy::default();
        // 84 % used: nothing.
        assert_eq!(bytes_to_free(p, fs(1000, 160)), 0);
        // 85 % used: back to 80 % (200 available).
        assert_eq!(bytes_to_free(p, fs(1000, 150)), 50);
        assert_eq!(bytes_to_free(p, fs(1000, 0)), 200);
        // Usage rounds as the kubelet's: 100 - floor(avail*100/total).
        assert_eq!(bytes_to_free(p, fs(1000, 155)), 45);
        assert_eq!(bytes_to_free(p, fs(1000, 151)), 49);
        assert_eq!(bytes_to_free(p, fs(0, 0)), 0);
        let off = GcPolicy { high_pct: 100, ..p };
        assert_eq!(bytes_to_free(off, fs(1000, 0)), 0);
        // Exhaustively on a small filesystem.
        for high in 1..100u64 {
            for low in 0..=high {
                let p = GcPolicy {
                    high_pct: high,
                    low_pct: low,
                    min_age_ms: 0,
                };
                for avail in 0..=200u64 {
                    let got = bytes_to_free(p, fs(200, avail));
                    let usage = 100 - avail * 100 / 200;
                    if usage < high {
                        assert_eq!(got, 0, "{high} {low} {avail}");
                    } else {
                        assert_eq!(got, (200 * (100 - low) / 100).saturating_sub(avail));
                        // Freeing it brings usage to at most `low`.
                        assert!(100 - (avail + got) * 100 / 200 <= low);
                    }
                }
            }
        }
        // No overflow on huge filesystems.
        assert_eq!(
            bytes_to_free(p, fs(u64::MAX, 0)) as u128,
            u64::MAX as u128 * 20 / 100
        );
    }

    #[test]
    fn least_recently_used_go_first_until_enough_is_freed() {
        let now = 100 * MIN;
        let images = [
            img("a", &["a"], 0, Some(50 * MIN), false),
            img("b", &["b"], 0, Some(10 * MIN), false),
            // Never used: its import time counts.
            img("c", &["c"], 30 * MIN, None, false),
            img("d", &["d"], 0, None, true),
        ];
        let s = sizes(&[("a", 10), ("b", 10), ("c", 10), ("d", 1000)]);
        let p = plan(&images, &s, 15, now, 2 * MIN as u64);
        assert_eq!(p.delete, ["b", "c"]);
        assert_eq!(p.freed, 20);
        assert_eq!(p.eligible, 30);
        let p = plan(&images, &s, 10, now, 2 * MIN as u64);
        assert_eq!(p.delete, ["b"]);
        // Nothing wanted: nothing deleted.
        assert_eq!(plan(&images, &s, 0, now, 0).delete, Vec::<String>::new());
        // Everything: every unused image, never the used one.
        let p = plan(&images, &s, u64::MAX, now, 0);
        assert_eq!(p.delete, ["b", "c", "a"]);
        assert_eq!(p.freed, 30);
    }

    #[test]
    fn images_younger_than_the_minimum_age_stay() {
        let now = 10 * MIN;
        let images = [
            img("old", &["o"], 0, None, false),
            img("fresh", &["f"], 9 * MIN, None, false),
            // Imported long ago but used a minute ago.
            img("recent", &["r"], 0, Some(9 * MIN), false),
            // The boundary: exactly the minimum age is old enough.
            img("edge", &["e"], 8 * MIN, None, false),
        ];
        let s = sizes(&[("o", 1), ("f", 1), ("r", 1), ("e", 1)]);
        let p = plan(&images, &s, u64::MAX, now, 2 * MIN as u64);
        assert_eq!(p.delete, ["old", "edge"]);
        assert_eq!(p.eligible, 2);
        // A clock before the import (stepped back): not eligible.
        assert!(!images[1].eligible(0, 0));
        // In use: never, however old.
        assert!(!img("u", &[], 0, None, true).eligible(i64::MAX, 0));
    }

    #[test]
    fn shared_objects_are_freed_only_with_their_last_image() {
        let now = 100 * MIN;
        // a and b share the base layer; c (in use) shares it too in the
        // second round.
        let images = [
            img("a", &["base", "a1"], 0, Some(MIN), false),
            img("b", &["base", "b1", "b1"], 0, Some(2 * MIN), false),
        ];
        let s = sizes(&[("base", 100), ("a1", 1), ("b1", 2)]);
        let p = plan(&images, &s, 1, now, 0);
        assert_eq!((p.delete.clone(), p.freed), (vec!["a".to_string()], 1));
        // Both: the base goes with the second (listing an object twice
        // counts it once).
        let p = plan(&images, &s, u64::MAX, now, 0);
        assert_eq!((p.delete.len(), p.freed), (2, 103));
        // Wanting 2 bytes: a frees 1, b frees 102.
        let p = plan(&images, &s, 2, now, 0);
        assert_eq!((p.delete.len(), p.freed), (2, 103));
        let mut with_used = images.to_vec();
        with_used.push(img("c", &["base"], 0, None, true));
        let p = plan(&with_used, &s, u64::MAX, now, 0);
        assert_eq!((p.delete.len(), p.freed, p.eligible), (2, 3, 3));
    }

    #[test]
    fn the_order_does_not_depend_on_the_input_order() {
        let now = 100 * MIN;
        let base = [
            img("m3", &["x"], 5, None, false),
            img("m1", &["y"], 5, None, false),
            img("m2", &["z"], 1, Some(5), false),
            img("m0", &["w"], 5, Some(4), false),
        ];
        let s = sizes(&[("x", 1), ("y", 1), ("z", 1), ("w", 1)]);
        // m0 (touched at 5: import 5 > use 4), m1 and m3 (import 5) and
        // m2 (use 5, import 1): ties by touch, then import, then digest.
        let want = ["m2", "m0", "m1", "m3"];
        let perms = [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]];
        for perm in perms {
            let imgs: Vec<GcImage> = perm.iter().map(|&i| base[i].clone()).collect();
            assert_eq!(plan(&imgs, &s, u64::MAX, now, 0).delete, want, "{perm:?}");
        }
    }

    #[test]
    fn the_shortfall_message_is_the_kubelets() {
        assert_eq!(
            shortfall_message(100, 7),
            "Failed to garbage collect required amount of images. Attempted to free 100 bytes, but only found 7 bytes eligible to free."
        );
    }

    #[test]
    fn the_schedule_retries_a_fruitless_gc_only_after_the_period() {
        let mut s = GcSchedule::new();
        assert!(!s.start(0, 0, false));
        assert!(s.start(0, 10, false));
        // One at a time.
        assert!(!s.start(1, 10, false));
        s.finished(5, true);
        // It freed something: again at the next tick if still wanted.
        assert!(s.start(6, 10, false));
        s.finished(7, false);
        // Nothing freed: not before the period.
        assert!(!s.start(8, 10, false));
        assert!(!s.start(7 + PERIOD_MS - 1, 10, false));
        assert!(s.start(7 + PERIOD_MS, 10, false));
        s.finished(7 + PERIOD_MS, false);
        assert!(!s.may_evict());
    }

    #[test]
    fn under_pressure_pods_are_evicted_only_after_a_gc_has_run() {
        let mut s = GcSchedule::new();
        // A threshold GC that freed nothing a moment ago.
        assert!(s.start(0, 10, false));
        s.finished(1, false);
        // Pressure begins: a GC at once despite the period, no eviction
        // until it is done.
        assert!(!s.may_evict());
        assert!(s.start(2, u64::MAX, true));
        assert!(!s.may_evict());
        assert!(!s.start(3, u64::MAX, true));
        assert!(!s.may_evict());
        s.finished(4, false);
        assert!(s.may_evict());
        // Still under pressure, nothing freed: no new GC before the period;
        // eviction goes on.
        assert!(!s.start(5, u64::MAX, true));
        assert!(s.may_evict());
        // It freed something: another round first, eviction waits for it.
        assert!(!s.start(PERIOD_MS + 3, u64::MAX, true));
        assert!(s.start(PERIOD_MS + 4, u64::MAX, true));
        assert!(!s.may_evict());
        s.finished(PERIOD_MS + 5, true);
        assert!(s.may_evict());
        assert!(s.start(PERIOD_MS + 6, u64::MAX, true));
        assert!(!s.may_evict());
        s.finished(PERIOD_MS + 7, false);
        // Pressure over, then back: a new GC first again.
        assert!(!s.start(PERIOD_MS + 8, 0, false));
        assert!(!s.may_evict());
        assert!(s.start(PERIOD_MS + 9, u64::MAX, true));
        assert!(!s.may_evict());
        // A threshold GC in flight when pressure begins does not count.
        let mut s = GcSchedule::new();
        assert!(s.start(0, 10, false));
        assert!(!s.start(1, u64::MAX, true));
        s.finished(2, true);
        assert!(!s.may_evict());
        assert!(s.start(3, u64::MAX, true));
        s.finished(4, false);
        assert!(s.may_evict());
    }
}
