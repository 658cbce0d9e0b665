//! `node` of the status document: what this device is.
//!
//! [`NodeInfo::read`] is the only function of [`super`] that does I/O: it
//! reads `/proc/sys/kernel/osrelease`, `/proc/meminfo`, `/proc/uptime`,
//! `/sys/fs/cgroup/cgroup.controllers` and calls `uname(2)`. Each value
//! that cannot be read is left empty (or 0) rather than failing.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The node section of the status document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// `uname -m` (`aarch64`, `armv7l`, `x86_64`).
    pub architecture: String,
    /// The kernel release (`6.6.31+rpt-rpi-v8`).
    pub kernel: String,
    /// `MemTotal` in bytes.
    pub memory_bytes: u64,
    /// `MemAvailable` in bytes, when the status was built.
    #[serde(default)]
    pub memory_available_bytes: u64,
    /// The filesystem of the state directory.
    #[serde(default)]
    pub state_disk: DiskUse,
    /// The filesystem of the image store (`<state>/images`).
    #[serde(default)]
    pub image_disk: DiskUse,
    /// `picolet.io/board` of the node's labels (`picolet check`'s board).
    #[serde(default)]
    pub board: String,
    /// The node's labels (what `nodeSelector` and `--selector` match).
    #[serde(default, skip_serializing_if = "crate::vecmap::VecMap::is_empty")]
    pub labels: crate::vecmap::VecMap<String, String>,
    /// The cgroup v2 controllers available at the root (`cpu`, `memory`, …).
    pub cgroup_controllers: Vec<String>,
    pub picolet_version: String,
    /// Seconds since boot.
    pub uptime_seconds: u64,
}

/// Bytes used and size of a filesystem (`statvfs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskUse {
    pub used_bytes: u64,
    pub size_bytes: u64,
}

impl NodeInfo {
    /// Reads this machine's facts.
    pub fn read() -> NodeInfo {
        Self::read_from(Path::new("/proc"), Path::new("/sys/fs/cgroup"), machine())
    }

    /// Reads the facts from a `/proc` and a cgroup root (tests give
    /// tempdir fixtures); `architecture` is given.
    pub fn read_from(proc: &Path, cgroup_root: &Path, architecture: String) -> NodeInfo {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        NodeInfo {
            architecture,
            kernel: read(&proc.join("sys/kernel/osrelease")).trim().to_string(),
            memory_bytes: mem_total(&read(&proc.join("meminfo"))),
            memory_available_bytes: 0,
            state_disk: DiskUse::default(),
            image_disk: DiskUse::default(),
            board: String::new(),
            labels: Default::default(),
            cgroup_controllers: read(&cgroup_root.join("cgroup.controllers"))
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            picolet_version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: uptime(&read(&proc.join("uptime"))),
        }
    }
}

/// `MemTotal:  3884136 kB` → bytes.
pub(crate) fn mem_total(meminfo: &str) -> u64 {
    meminfo_kb(meminfo, "MemTotal:")
}

/// `MemAvailable` of `/proc/meminfo`, in bytes (0 when unreadable).
pub fn mem_available() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo_kb(&text, "MemAvailable:")
}

/// A `/proc/meminfo` line in kB, as bytes.
fn meminfo_kb(meminfo: &str, key: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb.saturating_mul(1024))
}

/// `12345.67 54321.00` → 12345.
pub(crate) fn uptime(text: &str) -> u64 {
    text.split_whitespace()
        .next()
        .and_then(|s| s.split('.').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `uname(2)`'s machine field.
fn machine() -> String {
    match nix::sys::utsname::uname() {
        Ok(uts) => uts.machine().to_string_lossy().into_owned(),
        Err(_) => std::env::consts::ARCH.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_info_reads_kernel_memory_uptime_and_controllers_from_fixtures() {
        let proc = tempfile::tempdir().unwrap();
        let cg = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(proc.path().join("sys/kernel")).unwrap();
        std::fs::write(proc.path().join("sys/kernel/osrelease"), "6.6.31-v8+\n").unwrap();
        std::fs::write(
            proc.path().join("meminfo"),
            "MemTotal:        3884136 kB\nMemFree:          100 kB\n",
        )
        .unwrap();
        std::fs::write(proc.path().join("uptime"), "12345.67 40000.01\n").unwrap();
        std::fs::write(
            cg.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        let n = NodeInfo::read_from(proc.path(), cg.path(), "aarch64".into());
        assert_eq!(n.kernel, "6.6.31-v8+");
        assert_eq!(n.memory_bytes, 3_884_136 * 1024);
        assert_eq!(n.uptime_seconds, 12345);
        assert_eq!(
            n.cgroup_controllers,
            ["cpuset", "cpu", "io", "memory", "pids"]
        );
        assert_eq!(n.architecture, "aarch64");
        assert_eq!(n.picolet_version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn mem_available_reads_its_line() {
        let text = "MemTotal: 10 kB\nMemFree: 3 kB\nMemAvailable:    7 kB\n";
        assert_eq!(super::meminfo_kb(text, "MemAvailable:"), 7 * 1024);
        assert!(super::mem_available() > 0);
    }

    #[test]
    fn node_info_leaves_unreadable_facts_empty() {
        let empty = tempfile::tempdir().unwrap();
        let n = NodeInfo::read_from(empty.path(), empty.path(), "x".into());
        assert_eq!(
            (n.kernel.as_str(), n.memory_bytes, n.uptime_seconds),
            ("", 0, 0)
        );
        assert!(n.cgroup_controllers.is_empty());
    }

    #[test]
    fn node_info_of_this_machine_has_an_architecture_kernel_and_memory() {
        let n = NodeInfo::read();
        assert!(!n.architecture.is_empty());
        assert!(!n.kernel.is_empty());
        assert!(n.memory_bytes > 0);
    }

    #[test]
    fn json_uses_the_camel_case_names_of_the_status_document() {
        let v = serde_json::to_value(NodeInfo::default()).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "architecture",
                "board",
                "cgroupControllers",
                "imageDisk",
                "kernel",
                "memoryAvailableBytes",
                "memoryBytes",
                "picoletVersion",
                "stateDisk",
                "uptimeSeconds"
            ]
        );
    }
}
