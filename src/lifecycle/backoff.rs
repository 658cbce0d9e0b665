//! kubelet's `flowcontrol.Backoff` for one key, without jitter, on the
//! monotonic clock (milliseconds).
//!
//! The kubelet keeps one entry per container (`getStableKey`: pod, container
//! and the container's spec hash, so a spec change starts afresh) for crash
//! loops, and one per pod+image for image pulls. The same 10 s → 300 s
//! doubling is used for sandbox creation here.

/// First back-off: `backOffPeriod` = 10 s.
pub(crate) const INITIAL_MS: u64 = 10_000;
/// Cap: `MaxContainerBackOff` = 300 s.
pub(crate) const MAX_MS: u64 = 300_000;

/// One entry of `flowcontrol.Backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// Current back-off window.
    pub backoff_ms: u64,
    /// Mono time of the last `next`.
    pub last_update: u64,
}

impl Backoff {
    /// `hasExpired`: the item has been stable for twice the cap.
    fn expired(&self, event: u64) -> bool {
        event.saturating_sub(self.last_update) > 2 * MAX_MS
    }
}

/// `IsInBackOffSince(id, eventTime)`: true while `now - event` is inside the
/// current window (and the entry has not expired at `event`).
pub(crate) fn in_backoff_since(entry: Option<&Backoff>, event: u64, now: u64) -> bool {
    match entry {
        None => false,
        Some(e) if e.expired(event) => false,
        Some(e) => now.saturating_sub(event) < e.backoff_ms,
    }
}

/// `IsInBackOffSinceUpdate(id, now)`: true while `now - lastUpdate` is
/// inside the current window (image pulls, sandbox creation).
pub(crate) fn in_backoff_since_update(entry: Option<&Backoff>, now: u64) -> bool {
    match entry {
        None => false,
        Some(e) if e.expired(now) => false,
        Some(e) => now.saturating_sub(e.last_update) < e.backoff_ms,
    }
}

/// `Next(id, eventTime)`: a missing or expired entry starts at 10 s,
/// otherwise the window doubles up to 300 s; `lastUpdate = now`.
pub(crate) fn next(entry: &mut Option<Backoff>, event: u64, now: u64) {
    match entry {
        Some(e) if !e.expired(event) => {
            e.backoff_ms = (e.backoff_ms * 2).min(MAX_MS);
            e.last_update = now;
        }
        _ => {
            *entry = Some(Backoff {
                backoff_ms: INITIAL_MS,
                last_update: now,
            })
        }
    }
}

/// A duration as Go's `time.Duration.String()` prints it, for whole
/// milliseconds: `10s`, `1m20s`, `5m0s`, `1.5s`, `250ms`, `0s`.
pub(crate) fn go_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let mut secs = s.to_string();
    if frac != 0 {
        let f = format!("{frac:03}");
        secs.push('.');
        secs.push_str(f.trim_end_matches('0'));
    }
    if h > 0 {
        format!("{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{m}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_starts_at_ten_seconds_and_doubles_to_the_cap() {
        let mut e = None;
        let mut seen = Vec::new();
        for i in 0..9 {
            next(&mut e, i * 1000, i * 1000);
            seen.push(e.unwrap().backoff_ms / 1000);
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300, 300, 300]);
    }

    #[test]
    fn entry_expires_after_twice_the_cap_without_an_update() {
        let mut e = None;
        next(&mut e, 0, 0);
        next(&mut e, 0, 0);
        assert_eq!(e.unwrap().backoff_ms, 20_000);
        // exactly 600 s later is not yet expired
        assert!(in_backoff_since(e.as_ref(), 600_000, 600_000));
        assert!(!in_backoff_since(e.as_ref(), 600_001, 600_001));
        next(&mut e, 600_001, 600_001);
        assert_eq!(e.unwrap().backoff_ms, 10_000);
    }

    #[test]
    fn in_backoff_since_measures_from_the_event() {
        let e = Some(Backoff {
            backoff_ms: 10_000,
            last_update: 0,
        });
        assert!(in_backoff_since(e.as_ref(), 5_000, 14_999));
        assert!(!in_backoff_since(e.as_ref(), 5_000, 15_000));
        assert!(in_backoff_since_update(e.as_ref(), 9_999));
        assert!(!in_backoff_since_update(e.as_ref(), 10_000));
        assert!(!in_backoff_since(None, 0, 0));
    }

    #[test]
    fn go_duration_matches_go_formatting() {
        assert_eq!(go_duration(10_000), "10s");
        assert_eq!(go_duration(80_000), "1m20s");
        assert_eq!(go_duration(160_000), "2m40s");
        assert_eq!(go_duration(300_000), "5m0s");
        assert_eq!(go_duration(1_500), "1.5s");
        assert_eq!(go_duration(1_234), "1.234s");
        assert_eq!(go_duration(250), "250ms");
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(3_723_000), "1h2m3s");
    }
}
