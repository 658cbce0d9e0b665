//! `picolet cgroup-holder`: the one process of `picolet-pods.service`, the
//! systemd unit whose delegated cgroup holds every pod.
//!
//! Why a unit of its own: once the agent enables controllers for the pods
//! in a cgroup, that cgroup may hold no process (cgroup v2's
//! no-internal-process rule). systemd before 254 (Debian 12 and Raspberry Pi
//! OS bookworm ship 252) starts a unit's main process in the unit's own
//! cgroup, so a restart of a unit whose cgroup holds the pods fails with
//! `219/CGROUP` (EBUSY) for as long as a pod runs (systemd issue #24064;
//! `DelegateSubgroup=` fixed it in 254). The agent's unit restarts often;
//! this one does not: it exists so that the pods have a delegated cgroup
//! that outlives every agent. Stopping it stops every pod, as systemd kills
//! the whole cgroup.
//!
//! The holder moves itself into the leaf `<unit cgroup>/holder`, which
//! leaves the unit's cgroup empty for the agent to enable controllers in and
//! create `pod<uid>` cgroups beside the leaf, then sends `READY=1` (the unit
//! is `Type=notify` and the agent's unit starts `After=` it) and sleeps
//! until a signal ends it.

use super::hierarchy::{Mounts, PROC_SELF_CGROUP, PROC_SELF_MOUNTINFO, unified_path};
use super::{CgroupError, add_process, read_file};
use std::path::{Path, PathBuf};

/// The leaf the holder moves itself to.
pub const HOLDER_LEAF: &str = "holder";

/// This process's cgroup directory in the unified hierarchy, the parent
/// when it already sits in the [`HOLDER_LEAF`].
pub fn own_unit_cgroup() -> Result<PathBuf, CgroupError> {
    let cgroup_path = Path::new(PROC_SELF_CGROUP);
    let own =
        unified_path(&read_file(cgroup_path)?).ok_or_else(|| CgroupError::NoUnifiedHierarchy {
            path: cgroup_path.to_path_buf(),
        })?;
    let mountinfo = Path::new(PROC_SELF_MOUNTINFO);
    let mounts = Mounts::parse(&read_file(mountinfo)?);
    let (dir, _) = mounts
        .resolve(&own)
        .ok_or_else(|| CgroupError::NoCgroup2Mount {
            path: mountinfo.to_path_buf(),
            cgroup: own.clone(),
        })?;
    Ok(match dir.file_name() {
        Some(n) if n == HOLDER_LEAF => dir.parent().map_or(dir.clone(), Path::to_path_buf),
        _ => dir,
    })
}

/// Moves this process into `<its unit cgroup>/holder`; returns the unit's
/// cgroup (where the agent's `--cgroup-root` must point).
pub fn enter_leaf() -> Result<PathBuf, CgroupError> {
    let unit = own_unit_cgroup()?;
    let leaf = unit.join(HOLDER_LEAF);
    match std::fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(CgroupError::Create { path: leaf, source }),
    }
    add_process(&leaf, std::process::id())?;
    Ok(unit)
}

/// Sleeps until a signal ends the process (SIGTERM from systemd keeps its
/// default action: the process exits).
pub fn wait_for_signal() -> ! {
    crate::sys::process::pause_forever()
}
