//! Time as the pure cores see it.
//!
//! The cores never read a clock: the I/O shell passes a [`Now`] into every
//! call. `mono_ms` comes from `CLOCK_BOOTTIME` (it keeps counting across
//! suspend and is shared by the agent and its shims, so it survives an agent
//! restart within one boot); `wall_ms` is the Unix time used only for display
//! (`startedAt`, `finishedAt`, condition transition times).

use serde::{Deserialize, Serialize};

/// A point in time, as handed to the pure cores.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Now {
    /// Milliseconds of `CLOCK_BOOTTIME`: use this for every timer.
    pub mono_ms: u64,
    /// Milliseconds since the Unix epoch: display only.
    pub wall_ms: i64,
}

impl Now {
    /// Reads both clocks.
    pub fn read() -> Now {
        Now {
            mono_ms: boottime_ms(),
            wall_ms: wall_ms(),
        }
    }

    /// This instant plus `ms` milliseconds on both clocks (virtual clocks in tests).
    pub fn plus_ms(self, ms: u64) -> Now {
        Now {
            mono_ms: self.mono_ms + ms,
            wall_ms: self.wall_ms + ms as i64,
        }
    }
}

/// `CLOCK_BOOTTIME` in milliseconds.
pub fn boottime_ms() -> u64 {
    // BOOTTIME always exists on Linux ≥ 2.6.39.
    let Ok(ts) = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME) else {
        return 0;
    };
    ts.tv_sec() as u64 * 1000 + ts.tv_nsec() as u64 / 1_000_000
}

/// Unix time in milliseconds.
pub fn wall_ms() -> i64 {
    wall_ns() / 1_000_000
}

/// Unix time in nanoseconds.
pub fn wall_ns() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(_) => 0,
    }
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn split(ns: i64) -> (i64, u32, u32, u32, u32, u32, u32, i64) {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    (
        y,
        mo,
        d,
        (sod / 3600) as u32,
        (sod % 3600 / 60) as u32,
        (sod % 60) as u32,
        0,
        frac,
    )
}

/// RFC 3339 with seconds precision, as Kubernetes prints `metav1.Time`
/// (`2026-11-22T10:00:00Z`).
pub fn rfc3339(wall_ms: i64) -> String {
    let (y, mo, d, h, mi, s, _, _) = split(wall_ms * 1_000_000);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// RFC 3339 with nanoseconds, as the CRI log format writes it
/// (`2026-11-22T10:00:00.123456789Z`).
pub fn rfc3339_nano(wall_ns: i64) -> String {
    let (y, mo, d, h, mi, s, _, frac) = split(wall_ns);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:09}Z")
}

/// Parses what [`rfc3339`] and [`rfc3339_nano`] print (UTC only) back to
/// Unix milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    parse_rfc3339_ns(s).map(|ns| ns.div_euclid(1_000_000))
}

/// Parses what [`rfc3339`] and [`rfc3339_nano`] print (UTC only) back to
/// Unix nanoseconds.
pub fn parse_rfc3339_ns(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, sec) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // days_from_civil
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let mut ns = ((days * 86_400) + h * 3600 + mi * 60 + sec) * 1_000_000_000;
    if b[19] == b'.' {
        let frac = s.get(20..s.len() - 1)?;
        if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let mut digits = frac.to_string();
        while digits.len() < 9 {
            digits.push('0');
        }
        ns += digits.parse::<i64>().ok()?;
    } else if b.len() != 20 {
        return None;
    }
    Some(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(
            rfc3339_nano(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn rfc3339_round_trips() {
        for ms in [0, 951_782_400_000, 1_700_000_000_123, 4_102_444_800_999] {
            assert_eq!(parse_rfc3339_ms(&rfc3339_nano(ms * 1_000_000)), Some(ms));
        }
        assert_eq!(parse_rfc3339_ms("garbage"), None);
        let ns = 1_700_000_000_123_456_789;
        assert_eq!(parse_rfc3339_ns(&rfc3339_nano(ns)), Some(ns));
    }

    #[test]
    fn boottime_is_monotonic() {
        let a = boottime_ms();
        let b = boottime_ms();
        assert!(b >= a);
    }
}
