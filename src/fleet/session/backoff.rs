//! Reconnect back-off: exponential from `min_ms` doubling to `max_ms`, with
//! deterministic jitter from a seeded xorshift64*.
//!
//! The attempt `n` (0-based, counted since the last accepted CONNACK) waits
//! `base(n) = min(min_ms · 2ⁿ, max_ms)` minus a jitter drawn uniformly from
//! `[0, base(n) / 4]`, so every wait lies in `[¾·base, base]`: never more
//! than `max_ms`, and devices that lost the broker together spread out.

/// xorshift64* (Vigna): small, fast, deterministic for a given seed.
#[derive(Debug, Clone)]
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> XorShift {
        // The state must never be 0; mix the seed so that small seeds
        // (0, 1, 2…) still give unrelated sequences.
        let s = seed ^ 0x9E37_79B9_7F4A_7C15;
        XorShift(if s == 0 { 0x2545_F491_4F6C_DD1D } else { s })
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Attempt counter plus the jitter source.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min_ms: u64,
    max_ms: u64,
    attempt: u32,
    rng: XorShift,
}

impl Backoff {
    pub(crate) fn new(min_ms: u64, max_ms: u64, seed: u64) -> Backoff {
        let min_ms = min_ms.max(1);
        Backoff {
            min_ms,
            max_ms: max_ms.max(min_ms),
            attempt: 0,
            rng: XorShift::new(seed),
        }
    }

    /// The un-jittered wait of attempt `n`.
    pub(crate) fn base_ms(&self, n: u32) -> u64 {
        let doubled = self.min_ms.checked_shl(n.min(63)).unwrap_or(u64::MAX);
        // checked_shl does not catch bits shifted out: compare back.
        let doubled = if doubled >> n.min(63) == self.min_ms {
            doubled
        } else {
            u64::MAX
        };
        doubled.min(self.max_ms)
    }

    /// The wait before the next attempt; counts the attempt.
    pub(crate) fn next_delay_ms(&mut self) -> u64 {
        let base = self.base_ms(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = self.rng.next_u64() % (base / 4 + 1);
        base - jitter
    }

    /// A connection was accepted: the next wait starts again at `min_ms`.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_doubles_from_one_second_and_caps_at_sixty() {
        let b = Backoff::new(1000, 60_000, 1);
        let bases: Vec<u64> = (0..9).map(|n| b.base_ms(n)).collect();
        assert_eq!(
            bases,
            [
                1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000
            ]
        );
        assert_eq!(
            b.base_ms(200),
            60_000,
            "huge attempt counts do not overflow"
        );
    }

    #[test]
    fn same_seed_gives_the_same_delays_and_other_seeds_differ() {
        let run = |seed| {
            let mut b = Backoff::new(1000, 60_000, seed);
            (0..10).map(|_| b.next_delay_ms()).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
