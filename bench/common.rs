//! Helpers shared by the benches (`mod common;` in each bench's root).
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

/// A numeric env setting, or its default.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Polls `f` every millisecond until it returns Some; panics after `secs`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A `Key: N kB` field of /proc/<pid>/<file>.
pub fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// The `p` quantile (0..=1) of `v` (sorted in place).
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Unix ns of the first CRI log line in a container's log dir.
pub fn first_line_ns(dir: &Path) -> Option<i64> {
    let e = std::fs::read_dir(dir).ok()?.flatten().next()?;
    let text = std::fs::read_to_string(e.path()).ok()?;
    let ts = text.lines().next()?.split(' ').next()?;
    picolet::clock::parse_rfc3339_ns(ts)
}
