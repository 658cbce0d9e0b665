//! cgroup v2 for pods: one cgroup per pod, one leaf per container.
//!
//! Layout under the agent's cgroup root (its own cgroup in the unified
//! hierarchy, e.g. `/sys/fs/cgroup/system.slice/picolet.service` with systemd
//! `Delegate=yes`, or an explicit `--cgroup-root`):
//!
//! ```text
//! <root>/                 controllers enabled for children (cgroup.subtree_control)
//!   agent/                the agent itself, when it started inside <root> ("no internal processes")
//!   pod<uid>/             pod-level limits (Kubernetes pod cgroup rules); controllers enabled for children
//!     shim/               the pod's shim puts itself here
//!     <container>/        one leaf per container, with the container's limits and
//!                         its device allowlist (an eBPF program, see [`devices`])
//! ```
//!
//! What it touches: only files under the root (`cgroup.controllers`,
//! `cgroup.subtree_control`, `cgroup.procs`, and the controller files named in
//! [`cpu`], [`memory`], [`pids`]), plus `/proc/self/cgroup` and
//! `/proc/self/mountinfo` when detecting the root. It opens no long-lived fds,
//! starts no process or thread, and never kills anything: [`CgroupRoot::remove`]
//! only `rmdir`s.
//!
//! Missing controllers (a Raspberry Pi without `cgroup_enable=memory`, a v1/v2
//! hybrid host where memory is bound to v1, a parent that did not delegate) do
//! not stop pods: the files of a missing controller are not written, and
//! [`CgroupRoot::missing`] says what is missing, why, and how to fix it.
//!
//! Conversions from Kubernetes resources to cgroup values are pure functions in
//! [`cpu`] and [`resources`]; every write goes through [`write_file`] so errors
//! carry the path and value. Tests run against tempdir fixtures (plain files
//! standing in for cgroupfs) and once against this machine's real hierarchy.

pub mod controller;
pub mod cpu;
pub mod devices;
pub mod hierarchy;
pub mod holder;
pub mod memory;
pub mod pids;
pub mod resources;
mod root;

pub use controller::{Controller, ControllerSet, Missing, MissingReason};
pub use cpu::{CpuStat, cpu_stat};
pub use memory::{memory_current, oom_kill_count};
pub use pids::PidsMax;
pub use resources::{ContainerResources, PodResources, Setting};
pub use root::{Applied, CgroupRoot, Prepared, is_uuid};

use std::io;
use std::path::{Path, PathBuf};

/// `cgroup.controllers`: controllers available in this cgroup.
pub const CGROUP_CONTROLLERS: &str = "cgroup.controllers";
/// `cgroup.subtree_control`: controllers enabled for this cgroup's children.
pub const CGROUP_SUBTREE_CONTROL: &str = "cgroup.subtree_control";
/// `cgroup.procs`: the processes in this cgroup (write a PID to move one in).
pub const CGROUP_PROCS: &str = "cgroup.procs";
/// Leaf the agent moves itself to when it starts inside its root.
pub const AGENT_LEAF: &str = "agent";
/// Leaf of a pod's cgroup that holds the pod's shim.
pub const SHIM_LEAF: &str = "shim";
/// Prefix of a pod's cgroup name: `pod<uid>`, as the kubelet's cgroupfs driver.
pub const POD_PREFIX: &str = "pod";

/// Errors of the cgroup module; each carries the path or value involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("creating cgroup {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("removing cgroup {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("cgroup {path} still has processes in it (EBUSY); picolet kills nothing on removal")]
    Busy { path: PathBuf },
    #[error(
        "cannot enable controllers in {path}: processes {pids:?} are in it and cgroup v2 allows no \
         processes in a cgroup whose controllers are enabled for children"
    )]
    InternalProcesses { path: PathBuf, pids: Vec<u32> },
    #[error("no cgroup v2 (unified) hierarchy: no `0::` line in {path}")]
    NoUnifiedHierarchy { path: PathBuf },
    #[error("no cgroup2 mount covering cgroup {cgroup:?} in {path}")]
    NoCgroup2Mount { path: PathBuf, cgroup: String },
    #[error("malformed line {line:?} in {path}")]
    Parse { path: PathBuf, line: String },
    #[error("{source}")]
    Devices { path: PathBuf, source: io::Error },
    #[error("invalid cgroup name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
}

/// Reads a whole cgroup (or proc) file.
pub(crate) fn read_file(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `value` to a cgroup file in one `write(2)`, as cgroupfs wants.
/// On a tempdir fixture this replaces the file's contents.
pub(crate) fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

/// Moves process `pid` (all its threads) into the cgroup at `cgroup` by
/// writing it to `cgroup.procs`. The shim uses it for `<pod>/shim`, the
/// container setup for `<pod>/<name>`.
pub fn add_process(cgroup: &Path, pid: u32) -> Result<(), CgroupError> {
    write_file(&cgroup.join(CGROUP_PROCS), &pid.to_string())
}

/// The PIDs listed in `<cgroup>/cgroup.procs` (this cgroup only, not its
/// descendants).
pub fn procs(cgroup: &Path) -> Result<Vec<u32>, CgroupError> {
    let path = cgroup.join(CGROUP_PROCS);
    let text = read_file(&path)?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.parse().map_err(|_| CgroupError::Parse {
                path: path.clone(),
                line: l.to_string(),
            })
        })
        .collect()
}

/// Checks that `name` is a single path component that can be a cgroup name.
fn check_name(name: &str) -> Result<(), CgroupError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name == "." || name == ".." {
        "a relative path component"
    } else if name.contains('/') || name.contains('\0') {
        "contains '/' or NUL"
    } else if name.starts_with("cgroup.") || name.contains('\n') {
        "clashes with cgroupfs interface files"
    } else {
        return Ok(());
    };
    Err(CgroupError::InvalidName {
        name: name.to_string(),
        reason,
    })
}

/// Parses the `key value` lines of a flat-keyed cgroup file (`cpu.stat`,
/// `memory.events`) and returns the value of `key`, if present.
pub(crate) fn flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut it = line.split_whitespace();
        if it.next() == Some(key) {
            it.next().and_then(|v| v.parse().ok())
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against this machine's real cgroup v2 hierarchy.
    mod real;

    #[test]
    fn cgroup_names_must_be_one_plain_component() {
        for bad in ["", ".", "..", "a/b", "/a", "cgroup.procs", "a\nb", "a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["nginx", "pod1234-5678", "shim", "a.b", "c_d"] {
            check_name(good).unwrap();
        }
    }

    #[test]
    fn flat_keyed_finds_exact_keys_only() {
        let text = "usage_usec 10\nnr_throttled 3\nthrottled_usec 44\n";
        assert_eq!(flat_keyed(text, "nr_throttled"), Some(3));
        assert_eq!(flat_keyed(text, "throttled_usec"), Some(44));
        assert_eq!(flat_keyed(text, "throttled"), None);
        assert_eq!(flat_keyed("oom_kill x\n", "oom_kill"), None);
    }

    #[test]
    fn procs_lists_pids_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CGROUP_PROCS), "12\n345\n").unwrap();
        assert_eq!(procs(dir.path()).unwrap(), vec![12, 345]);
        std::fs::write(dir.path().join(CGROUP_PROCS), "12\nabc\n").unwrap();
        assert!(matches!(procs(dir.path()), Err(CgroupError::Parse { .. })));
    }

    #[test]
    fn add_process_writes_the_pid_to_cgroup_procs() {
        let dir = tempfile::tempdir().unwrap();
        add_process(dir.path(), 4242).unwrap();
        let text = std::fs::read_to_string(dir.path().join(CGROUP_PROCS)).unwrap();
        assert_eq!(text, "4242");
    }
}
