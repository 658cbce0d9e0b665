//! A removed pod's cgroup, until it is gone, and the sweep at start.
//!
//! When a pod is removed its shim has been told to shut down (it kills its
//! containers) and has hung up; but the shim itself, or the last processes
//! of a container's PID namespace, may still be exiting, and `rmdir` of
//! the pod's cgroup then fails with `EBUSY`. picolet kills nothing here:
//! it waits. A task waits for the shim's exit on its pidfd (when the agent
//! knows the shim: its PID and start time from `Hello`), then the agent
//! retries the `rmdir` with back-off (10 ms doubling to 10 s, on reactor
//! timers; never a sleep on the agent's thread) until it succeeds. A retry
//! is dropped when the pod owns that cgroup again (a new sandbox for the
//! same uid).
//!
//! At start, after re-adopting the shims, [`Agent::sweep_pod_cgroups`]
//! removes the pod cgroups left by an agent that stopped while retrying:
//! only `pod<uuid>` directories under the cgroup root (picolet's naming),
//! only those no pod and no adopted shim owns, and only empty ones
//! (`populated 0`); a populated one is logged and left alone.
//!
//! The agent holds a [`PodCgroups`]: the cgroup root (none when cgroups
//! are disabled) and the cgroups whose removal is being retried.

use super::statefile::SandboxRecord;
use super::{Agent, Msg};
use crate::reactor;
use crate::runtime::cgroup::devices::DeviceFilter;
use crate::runtime::cgroup::{CgroupError, CgroupRoot};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The first retry's delay; each next one doubles, up to [`MAX_DELAY`].
pub(super) const FIRST_DELAY: Duration = Duration::from_millis(10);
/// The longest delay between two retries.
pub(super) const MAX_DELAY: Duration = Duration::from_secs(10);
/// How long the shim's exit is waited for before retrying anyway.
const SHIM_EXIT_WAIT: Duration = Duration::from_secs(10);
/// After this many retries (about 30 s), a warning says the cgroup is
/// still busy (once per cgroup).
const WARN_AFTER: u32 = 12;

/// The delay before retry number `attempt` (0-based).
pub(super) fn backoff(attempt: u32) -> Duration {
    FIRST_DELAY
        .checked_mul(1u32 << attempt.min(20))
        .map_or(MAX_DELAY, |d| d.min(MAX_DELAY))
}

/// The pods' cgroups as the agent knows them (see the module doc).
#[derive(Debug, Default)]
pub(super) struct PodCgroups {
    root: Option<CgroupRoot>,
    /// Removed pods' cgroups whose `rmdir` is being retried.
    retrying: HashSet<PathBuf>,
}

impl PodCgroups {
    /// Finds and prepares the cgroup root (`--cgroup-root`, or the
    /// agent's own cgroup), with the device allowlist; without one, pods
    /// run without cgroups (logged).
    pub(super) fn detect(cgroup_root: Option<PathBuf>) -> PodCgroups {
        let root = match CgroupRoot::detect(cgroup_root) {
            Ok(mut root) => {
                root.log_missing_once();
                match root.prepare() {
                    Ok(_) => {
                        match DeviceFilter::load() {
                            Ok(f) => root.set_device_filter(f),
                            Err(e) => log::warn!(
                                "no device allowlist for containers ({e}): a container with \
                                 CAP_MKNOD can make and open any device node in its /dev; \
                                 `picolet check` explains"
                            ),
                        }
                        Some(root)
                    }
                    Err(e) => {
                        log::warn!("cgroups disabled: {e}");
                        None
                    }
                }
            }
            Err(e) => {
                log::warn!("cgroups disabled: {e}");
                None
            }
        };
        PodCgroups {
            root,
            retrying: HashSet::new(),
        }
    }

    /// The cgroup root, unless cgroups are disabled.
    pub(super) fn root(&self) -> Option<&CgroupRoot> {
        self.root.as_ref()
    }
}

impl Agent {
    /// Removes a removed pod's cgroup now, or, when processes are still in
    /// it, once they are gone (see the module doc). `shim` is the pod's
    /// shim as last seen.
    pub(super) fn remove_pod_cgroup(
        &mut self,
        uid: &str,
        cgroup: PathBuf,
        shim: Option<SandboxRecord>,
    ) {
        match CgroupRoot::remove(&cgroup) {
            Ok(()) => {}
            Err(CgroupError::Busy { path }) => {
                log::debug!(
                    "pod {uid}: {} still has processes; waiting for the shim's exit",
                    path.display()
                );
                if self.cgroups.retrying.insert(cgroup.clone()) {
                    let tx = self.tx.clone();
                    let uid = uid.to_string();
                    reactor::spawn(async move {
                        if let Some(rec) = shim {
                            wait_exit(rec).await;
                        }
                        let _ = tx
                            .send(Msg::CgroupRetry {
                                uid,
                                cgroup,
                                attempt: 0,
                            })
                            .await;
                    })
                    .detach();
                }
            }
            Err(e) => log::warn!("pod {uid}: {e}"),
        }
    }

    /// A retry of a pod cgroup's removal is due.
    pub(super) fn on_cgroup_retry(&mut self, uid: String, cgroup: PathBuf, attempt: u32) {
        if self.owns_cgroup(&uid, &cgroup) {
            // A new sandbox of the same pod took it again.
            self.cgroups.retrying.remove(&cgroup);
            return;
        }
        match CgroupRoot::remove(&cgroup) {
            Ok(()) => {
                self.cgroups.retrying.remove(&cgroup);
                if attempt >= WARN_AFTER {
                    log::info!("pod {uid}: {} removed at last", cgroup.display());
                }
            }
            Err(CgroupError::Busy { path }) => {
                if attempt + 1 == WARN_AFTER {
                    log::warn!(
                        "pod {uid}: {} still has processes after its shim exited; \
                         retrying every {} s (picolet kills nothing on removal)",
                        path.display(),
                        MAX_DELAY.as_secs()
                    );
                }
                let delay = backoff(attempt);
                let tx = self.tx.clone();
                reactor::spawn(async move {
                    reactor::sleep(delay).await;
                    let _ = tx
                        .send(Msg::CgroupRetry {
                            uid,
                            cgroup,
                            attempt: attempt.saturating_add(1),
                        })
                        .await;
                })
                .detach();
            }
            Err(e) => {
                self.cgroups.retrying.remove(&cgroup);
                log::warn!("pod {uid}: {e}");
            }
        }
    }

    /// Whether pod `uid` (still, or again) uses `cgroup`.
    fn owns_cgroup(&self, uid: &str, cgroup: &Path) -> bool {
        self.shims
            .pods
            .get(uid)
            .is_some_and(|p| p.cgroup.as_deref() == Some(cgroup))
    }

    /// Removes the empty pod cgroups that no pod and no adopted shim owns
    /// (see the module doc). Called once at start, after adoption.
    pub(super) fn sweep_pod_cgroups(&mut self) {
        let Some(root) = self.cgroups.root() else {
            return;
        };
        for (uid, path) in root.pod_cgroups() {
            let owned =
                self.node.pod(&uid).is_some()
                    || self.shims.pods.get(&uid).is_some_and(|p| {
                        p.conn.is_some() || p.cgroup.is_some() || p.record.is_some()
                    });
            if owned {
                continue;
            }
            match CgroupRoot::populated(&path) {
                Some(false) => match CgroupRoot::remove(&path) {
                    Ok(()) => log::info!(
                        "removed the empty cgroup {} of a pod that is gone",
                        path.display()
                    ),
                    Err(e) => log::warn!("sweeping pod cgroups: {e}"),
                },
                Some(true) => log::warn!(
                    "cgroup {} belongs to no pod but has processes; left alone",
                    path.display()
                ),
                None => {}
            }
        }
    }
}

/// Waits (at most [`SHIM_EXIT_WAIT`]) until the shim `rec` has exited, on
/// a pidfd. Returns at once when it is gone already or its PID is now
/// another process's.
async fn wait_exit(rec: SandboxRecord) {
    let Ok(fd) = reactor::process::pidfd_open(rec.pid as u32) else {
        return;
    };
    // The pidfd is checked after it was opened: the PID was the shim's then.
    if crate::runtime::shim::process_start_time(rec.pid) != Some(rec.start_time) {
        return;
    }
    let Ok(fd) = reactor::Async::new(fd) else {
        return;
    };
    let _ = reactor::timeout(SHIM_EXIT_WAIT, fd.readable()).await;
}

#[cfg(test)]
mod tests {
    use super::{MAX_DELAY, WARN_AFTER, backoff};
    use std::time::Duration;

    #[test]
    fn retries_back_off_from_10_ms_doubling_to_10_s() {
        let ms: Vec<u128> = (0..13).map(|a| backoff(a).as_millis()).collect();
        assert_eq!(
            ms,
            [
                10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10_000, 10_000, 10_000
            ]
        );
        assert_eq!(backoff(u32::MAX), MAX_DELAY);
        // About 30 s of retries before the warning.
        let before: Duration = (0..WARN_AFTER).map(backoff).sum();
        assert!(before >= Duration::from_secs(20) && before <= Duration::from_secs(45));
    }
}
