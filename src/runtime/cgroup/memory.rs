//! The `memory` controller: `memory.max`, `memory.swap.max`, and the
//! `memory.events` / `memory.current` readers the agent uses to report
//! `OOMKilled` and usage.

use super::flat_keyed;
use std::path::Path;

/// `memory.max`: hard limit in bytes, or `max`.
pub const MEMORY_MAX: &str = "memory.max";
/// `memory.swap.max`: swap limit in bytes, or `max`.
pub const MEMORY_SWAP_MAX: &str = "memory.swap.max";
/// `memory.events`: `low`, `high`, `max`, `oom`, `oom_kill`, … counters.
pub const MEMORY_EVENTS: &str = "memory.events";
/// `memory.current`: bytes in use by the cgroup and its descendants.
pub const MEMORY_CURRENT: &str = "memory.current";

/// Whether the kernel may lack `file` even with the memory controller on:
/// `memory.swap.*` exist only on kernels with swap (`CONFIG_SWAP`) and swap
/// accounting. Such a file is skipped, not an error, when absent.
pub fn is_optional(file: &str) -> bool {
    file == MEMORY_SWAP_MAX
}

/// The `memory.max` value for a limit in bytes (`None` or 0: no limit).
pub fn memory_max_value(limit_bytes: Option<u64>) -> String {
    match limit_bytes {
        Some(b) if b > 0 => b.to_string(),
        _ => "max".to_string(),
    }
}

/// How many processes the kernel's OOM killer killed in `cgroup` (and its
/// descendants), from `memory.events`' `oom_kill` line; 0 when the file is
/// missing (no memory controller) or has no such line.
pub fn oom_kill_count(cgroup: &Path) -> u64 {
    std::fs::read_to_string(cgroup.join(MEMORY_EVENTS))
        .ok()
        .and_then(|text| flat_keyed(&text, "oom_kill"))
        .unwrap_or(0)
}

/// Bytes in use from `memory.current`; `None` when the file is missing or
/// unreadable (no memory controller).
pub fn memory_current(cgroup: &Path) -> Option<u64> {
    std::fs::read_to_string(cgroup.join(MEMORY_CURRENT))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_max_is_bytes_or_max() {
        assert_eq!(memory_max_value(None), "max");
        assert_eq!(memory_max_value(Some(0)), "max");
        assert_eq!(memory_max_value(Some(134_217_728)), "134217728");
    }

    #[test]
    fn oom_kill_count_reads_memory_events_and_is_zero_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(oom_kill_count(dir.path()), 0);
        std::fs::write(
            dir.path().join(MEMORY_EVENTS),
            "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n",
        )
        .unwrap();
        assert_eq!(oom_kill_count(dir.path()), 2);
        std::fs::write(dir.path().join(MEMORY_EVENTS), "low 0\noom 1\n").unwrap();
        assert_eq!(oom_kill_count(dir.path()), 0);
    }

    #[test]
    fn memory_current_parses_bytes_or_returns_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(memory_current(dir.path()), None);
        std::fs::write(dir.path().join(MEMORY_CURRENT), "8192\n").unwrap();
        assert_eq!(memory_current(dir.path()), Some(8192));
        std::fs::write(dir.path().join(MEMORY_CURRENT), "junk\n").unwrap();
        assert_eq!(memory_current(dir.path()), None);
    }
}
