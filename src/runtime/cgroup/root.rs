//! [`CgroupRoot`]: the cgroup the agent manages pods under — detecting it,
//! preparing it (agent leaf, controllers for children), creating pod and
//! container cgroups with their limits, and removing them.

use super::controller::{Controller, ControllerSet, Missing, MissingReason};
use super::devices::DeviceFilter;
use super::hierarchy::{Mounts, PROC_SELF_CGROUP, PROC_SELF_MOUNTINFO, unified_path};
use super::memory;
use super::resources::{ContainerResources, PodResources, Setting};
use super::{
    AGENT_LEAF, CGROUP_CONTROLLERS, CGROUP_SUBTREE_CONTROL, CgroupError, POD_PREFIX, SHIM_LEAF,
    add_process, check_name, procs, read_file, write_file,
};
use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};

/// The cgroup picolet creates pods in, and what it can do there.
#[derive(Debug)]
pub struct CgroupRoot {
    path: PathBuf,
    /// Every name in `<root>/cgroup.controllers`, as the kernel listed them.
    available: Vec<String>,
    /// The controllers pods get: wanted ∩ available, minus any that failed to enable.
    controllers: ControllerSet,
    missing: Vec<Missing>,
    warned: Cell<bool>,
    /// The device allowlist attached to every container cgroup, once
    /// [`CgroupRoot::set_device_filter`] has given it.
    devices: Option<DeviceFilter>,
}

/// What [`CgroupRoot::prepare`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prepared {
    /// The leaf the agent moved itself to, when it was inside the root.
    pub moved_to: Option<PathBuf>,
    /// Controllers this call enabled in `<root>/cgroup.subtree_control`.
    pub enabled: ControllerSet,
    /// Controllers that were enabled already (nothing written for them).
    pub already_enabled: ControllerSet,
}

/// Which files a [`CgroupRoot::apply`] wrote and which it skipped because
/// their controller is missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub written: Vec<&'static str>,
    pub skipped: Vec<&'static str>,
}

impl CgroupRoot {
    /// Finds the root: `explicit` if given (created if missing when it lies
    /// inside a cgroup2 mount; its parent must exist), else the agent's own cgroup in the unified hierarchy from
    /// `/proc/self/cgroup` and `/proc/self/mountinfo`. When the agent's own
    /// cgroup is already `<root>/agent` (a restarted agent), the root is its
    /// parent.
    pub fn detect(explicit: Option<PathBuf>) -> Result<CgroupRoot, CgroupError> {
        let mountinfo_path = Path::new(PROC_SELF_MOUNTINFO);
        let mounts = Mounts::parse(&read_file(mountinfo_path)?);
        let (path, top) = match explicit {
            Some(path) => {
                let top = mounts
                    .cgroup2
                    .iter()
                    .filter(|m| path.is_absolute() && path.starts_with(&m.mount_point))
                    .max_by_key(|m| m.mount_point.as_os_str().len())
                    .map(|m| m.mount_point.clone());
                // Create it only inside a cgroup2 mount, never a stray directory
                // elsewhere; anywhere else it must already be a cgroup.
                if top.is_some() {
                    mkdir_existing_ok(&path)?;
                }
                (path, top)
            }
            None => {
                let cgroup_path = Path::new(PROC_SELF_CGROUP);
                let own = unified_path(&read_file(cgroup_path)?).ok_or_else(|| {
                    CgroupError::NoUnifiedHierarchy {
                        path: cgroup_path.to_path_buf(),
                    }
                })?;
                let own = root_of_own_cgroup(&own);
                let (dir, top) =
                    mounts
                        .resolve(own)
                        .ok_or_else(|| CgroupError::NoCgroup2Mount {
                            path: mountinfo_path.to_path_buf(),
                            cgroup: own.to_string(),
                        })?;
                (dir, Some(top))
            }
        };
        CgroupRoot::open(path, &mounts, top.as_deref())
    }

    /// Opens `path` as the root, reading `<path>/cgroup.controllers`. `mounts`
    /// and `top` (the cgroup2 mount point) only explain missing controllers.
    pub fn open(
        path: PathBuf,
        mounts: &Mounts,
        top: Option<&Path>,
    ) -> Result<CgroupRoot, CgroupError> {
        let text = read_file(&path.join(CGROUP_CONTROLLERS))?;
        let available: Vec<String> = text.split_whitespace().map(str::to_string).collect();
        let controllers = ControllerSet::parse(&text);
        let top_controllers = top
            .and_then(|t| std::fs::read_to_string(t.join(CGROUP_CONTROLLERS)).ok())
            .map(|t| ControllerSet::parse(&t))
            .unwrap_or_default();
        let missing = ControllerSet::all()
            .difference(controllers)
            .iter()
            .map(|c| Missing {
                controller: c,
                reason: match mounts.v1_mount(c) {
                    Some(m) => MissingReason::BoundToV1 {
                        mount: m.to_path_buf(),
                    },
                    None if top_controllers.contains(c) => MissingReason::NotDelegated,
                    None => MissingReason::NotInKernel,
                },
            })
            .collect();
        Ok(CgroupRoot {
            path,
            available,
            controllers,
            missing,
            warned: Cell::new(false),
            devices: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every controller the kernel lists in `<root>/cgroup.controllers`.
    pub fn available(&self) -> &[String] {
        &self.available
    }

    /// The controllers pods get.
    pub fn controllers(&self) -> ControllerSet {
        self.controllers
    }

    /// The controllers pods run without, with the reason and fix.
    pub fn missing(&self) -> &[Missing] {
        &self.missing
    }

    /// The files not written because their controller is missing.
    pub fn skipped_files(&self) -> Vec<&'static str> {
        self.missing
            .iter()
            .flat_map(|m| m.controller.files().iter().copied())
            .collect()
    }

    /// Logs one warning per missing controller, the first time it is called.
    /// Returns whether it logged (false on later calls).
    pub fn log_missing_once(&self) -> bool {
        if self.warned.replace(true) {
            return false;
        }
        for m in &self.missing {
            log::warn!("{}", m.warning());
        }
        let skipped = self.skipped_files();
        if !skipped.is_empty() {
            log::warn!(
                "cgroup root {}: not writing {}",
                self.path.display(),
                skipped.join(", ")
            );
        }
        true
    }

    /// Makes the root usable for pods: if the agent is inside it, moves the
    /// agent to `<root>/agent` (cgroup v2 allows no processes in a cgroup that
    /// enables controllers for its children), then enables the available
    /// controllers in `<root>/cgroup.subtree_control`. Writes nothing for
    /// controllers that are already enabled. A controller that cannot be
    /// enabled becomes [`MissingReason::EnableFailed`] instead of an error.
    pub fn prepare(&mut self) -> Result<Prepared, CgroupError> {
        self.prepare_for(std::process::id())
    }

    /// [`prepare`](Self::prepare) with the agent's PID given (tests use a child).
    pub(super) fn prepare_for(&mut self, agent_pid: u32) -> Result<Prepared, CgroupError> {
        let mut out = Prepared::default();
        if procs(&self.path)?.contains(&agent_pid) {
            let leaf = self.path.join(AGENT_LEAF);
            mkdir_existing_ok(&leaf)?;
            add_process(&leaf, agent_pid)?;
            log::info!("moved the agent (pid {agent_pid}) to {}", leaf.display());
            out.moved_to = Some(leaf);
        }
        let current = read_set(&self.path.join(CGROUP_SUBTREE_CONTROL))?;
        out.already_enabled = self.controllers.intersection(current);
        let to_enable = self.controllers.difference(current);
        if to_enable.is_empty() {
            return Ok(out);
        }
        let file = self.path.join(CGROUP_SUBTREE_CONTROL);
        if write_file(&file, &to_enable.enable_line()).is_ok() {
            out.enabled = to_enable;
            return Ok(out);
        }
        // One at a time, so one bad controller does not cost the others.
        for c in to_enable.iter() {
            match write_file(&file, &format!("+{c}")) {
                Ok(()) => out.enabled.insert(c),
                Err(e) => self.enable_failed(c, e),
            }
        }
        Ok(out)
    }

    fn enable_failed(&mut self, c: Controller, e: CgroupError) {
        let busy = matches!(&e, CgroupError::Write { source, .. }
            if source.raw_os_error() == Some(libc::EBUSY));
        let error = match procs(&self.path) {
            Ok(pids) if busy && !pids.is_empty() => CgroupError::InternalProcesses {
                path: self.path.clone(),
                pids,
            }
            .to_string(),
            _ => e.to_string(),
        };
        log::warn!(
            "cgroup: cannot enable {c} in {}: {error}",
            self.path.display()
        );
        self.controllers.remove(c);
        self.missing.push(Missing {
            controller: c,
            reason: MissingReason::EnableFailed { error },
        });
    }

    /// The cgroup directory of pod `uid`: `<root>/pod<uid>`.
    pub fn pod_path(&self, uid: &str) -> PathBuf {
        self.path.join(format!("{POD_PREFIX}{uid}"))
    }

    /// Creates (or reuses) `<root>/pod<uid>`, writes the pod-level limits and
    /// enables the controllers for its children. Idempotent: an agent that
    /// restarts calls it again for the pods it re-adopts.
    pub fn create_pod(&self, uid: &str, r: &PodResources) -> Result<PathBuf, CgroupError> {
        check_name(uid)?;
        let dir = self.pod_path(uid);
        mkdir_existing_ok(&dir)?;
        let applied = self.apply(&dir, &r.settings())?;
        log_skipped(&dir, &applied);
        let file = dir.join(CGROUP_SUBTREE_CONTROL);
        let to_enable = self.controllers.difference(read_set(&file)?);
        if !to_enable.is_empty() {
            write_file(&file, &to_enable.enable_line())?;
        }
        Ok(dir)
    }

    /// Creates (or reuses) the leaf `<pod>/shim` the pod's shim moves into.
    pub fn create_shim(&self, pod: &Path) -> Result<PathBuf, CgroupError> {
        let dir = pod.join(SHIM_LEAF);
        mkdir_existing_ok(&dir)?;
        Ok(dir)
    }

    /// From now on, every container cgroup gets `filter`'s device
    /// allowlist (see [`super::devices`]).
    pub fn set_device_filter(&mut self, filter: DeviceFilter) {
        self.devices = Some(filter);
    }

    /// Whether containers get the device allowlist.
    pub fn has_device_filter(&self) -> bool {
        self.devices.is_some()
    }

    /// Creates (or reuses) the leaf `<pod>/<name>`, writes the container's
    /// limits and, with a device filter set, attaches its allowlist (none
    /// for a `privileged` container). `name` must not be [`SHIM_LEAF`].
    pub fn create_container(
        &self,
        pod: &Path,
        name: &str,
        r: &ContainerResources,
        privileged: bool,
    ) -> Result<PathBuf, CgroupError> {
        check_name(name)?;
        if name == SHIM_LEAF {
            return Err(CgroupError::InvalidName {
                name: name.to_string(),
                reason: "reserved for the pod's shim leaf",
            });
        }
        let dir = pod.join(name);
        mkdir_existing_ok(&dir)?;
        let applied = self.apply(&dir, &r.settings())?;
        log_skipped(&dir, &applied);
        if let Some(filter) = &self.devices {
            filter
                .apply(&dir, privileged)
                .map_err(|source| CgroupError::Devices {
                    path: dir.clone(),
                    source,
                })?;
        }
        Ok(dir)
    }

    /// Writes each setting whose controller pods get; skips the others.
    /// A file the kernel may lack although its controller is there
    /// ([`memory::is_optional`]) is skipped too when absent.
    pub fn apply(&self, dir: &Path, settings: &[Setting]) -> Result<Applied, CgroupError> {
        let mut out = Applied::default();
        for s in settings {
            if !self.controllers.contains(s.controller) {
                out.skipped.push(s.file);
                continue;
            }
            match write_file(&dir.join(s.file), &s.value) {
                Ok(()) => out.written.push(s.file),
                Err(CgroupError::Write { source, .. })
                    if memory::is_optional(s.file) && source.kind() == io::ErrorKind::NotFound =>
                {
                    out.skipped.push(s.file)
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Whether the cgroup at `path` or one below it has processes
    /// (`populated 1` in its `cgroup.events`); `None` when that cannot be
    /// read (no such cgroup, or a fixture without the file).
    pub fn populated(path: &Path) -> Option<bool> {
        let text = std::fs::read_to_string(path.join("cgroup.events")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("populated "))
            .map(|v| v.trim() != "0")
    }

    /// The pod cgroups under the root: `(uid, path)` for each `pod<uid>`
    /// directory whose uid has the form picolet gives (a UUID: 8-4-4-4-12
    /// lowercase hex digits). Other names are never returned.
    pub fn pod_cgroups(&self) -> Vec<(String, PathBuf)> {
        let Ok(rd) = std::fs::read_dir(&self.path) else {
            return Vec::new();
        };
        let mut out: Vec<(String, PathBuf)> = rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                let uid = name.strip_prefix(POD_PREFIX)?;
                is_uuid(uid).then(|| (uid.to_string(), e.path()))
            })
            .collect();
        out.sort();
        out
    }

    /// Removes the cgroup at `path` and every cgroup below it, deepest first,
    /// with `rmdir` only: nothing is killed. A cgroup that still has processes
    /// fails with [`CgroupError::Busy`] naming it. A missing `path` is fine.
    pub fn remove(path: &Path) -> Result<(), CgroupError> {
        let entries = match std::fs::read_dir(path) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        for entry in entries {
            let entry = entry.map_err(|source| CgroupError::Remove {
                path: path.to_path_buf(),
                source,
            })?;
            // file_type() does not follow symlinks.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                CgroupRoot::remove(&entry.path())?;
            }
        }
        match std::fs::remove_dir(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(CgroupError::Busy {
                path: path.to_path_buf(),
            }),
            Err(source) => Err(CgroupError::Remove {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

/// `8-4-4-4-12` lowercase hex digits, as [`crate::agent::new_uid`] makes.
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// The root for an agent whose own cgroup is `own`: its parent when the agent
/// already sits in the `agent` leaf.
fn root_of_own_cgroup(own: &str) -> &str {
    match own.strip_suffix(AGENT_LEAF) {
        Some(parent) if parent.ends_with('/') => {
            let p = parent.trim_end_matches('/');
            if p.is_empty() { "/" } else { p }
        }
        _ => own,
    }
}

fn mkdir_existing_ok(path: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::Create {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A controller list file; a missing file (only on fixtures) reads as empty.
fn read_set(path: &Path) -> Result<ControllerSet, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(ControllerSet::parse(&t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ControllerSet::EMPTY),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn log_skipped(dir: &Path, applied: &Applied) {
    if !applied.skipped.is_empty() {
        log::debug!(
            "cgroup {}: skipped {} (controller missing)",
            dir.display(),
            applied.skipped.join(", ")
        );
    }
}

#[cfg(test)]
mod tests;
