//! Capabilities, user and `no_new_privs` of a container process.
//!
//! [`capability_set`] turns a pod's `securityContext.capabilities` into the
//! capability numbers of [`ContainerConfig::capabilities`]. [`Plan::apply`]
//! runs in the new process right before `execve`: the supplementary
//! groups, bounding set reduced to the set, then gid/uid, then
//! effective = permitted = the set, inheritable and ambient empty. For a
//! non-root uid `execve` then clears effective/permitted, so only the
//! bounding set remains (as with containerd). The `RuntimeDefault` seccomp
//! filter ([`crate::runtime::seccomp`]) comes last, after `no_new_privs`;
//! without `no_new_privs` it must be installed while `CAP_SYS_ADMIN` is
//! still held, so before the uid changes (as runc does).
//!
//! Reads `/proc/sys/kernel/cap_last_cap` and `/proc/self/status`.

use nix::errno::Errno;

use super::config::ContainerConfig;
use super::container::{ContainerError, sys};
use super::syscall::Syscall;
use crate::spec::caps;
use crate::spec::{Capabilities, SecurityContext};

/// containerd's default capabilities as numbers, ascending (the names and
/// the Kubernetes rules live in [`crate::spec::caps`]).
pub fn default_caps() -> Vec<u8> {
    bits_to_vec(caps::default_capabilities())
}

/// `SYS_ADMIN`-style name of a capability number (for messages).
fn capability_name(cap: u8) -> Option<&'static str> {
    caps::capability_name(cap).map(|n| n.trim_start_matches("CAP_"))
}

/// The highest capability the running kernel knows.
pub fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .map_or(caps::CAP_LAST_CAP, |n| n.min(63))
}

/// The bounding set of this process (`CapBnd` in `/proc/self/status`).
fn current_bounding() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(u64::MAX)
}

/// Every capability this runtime can hand out: the kernel's (up to
/// `cap_last_cap`) that are still in our own bounding set. On a normal
/// host that is all of them; inside a restricted sandbox, asking for more
/// would make `capset` fail (containerd uses its current caps likewise).
fn all_caps(last: u8) -> u64 {
    mask_upto(last) & current_bounding()
}

fn mask_upto(last: u8) -> u64 {
    if last >= 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    }
}

fn bits_to_vec(bits: u64) -> Vec<u8> {
    (0u8..64).filter(|c| bits & (1u64 << c) != 0).collect()
}

/// The capabilities of a container as Kubernetes with containerd computes
/// them ([`caps::effective_capabilities`]), limited to what this host can
/// hand out. A named capability that is unknown, or that this host's kernel
/// or our own bounding set lacks, is an error. Sorted ascending.
pub fn capability_set(
    add: &[String],
    drop: &[String],
    privileged: bool,
) -> Result<Vec<u8>, ContainerError> {
    let host = all_caps(last_cap());
    for name in add.iter().chain(drop).filter(|n| !caps::is_all(n.trim())) {
        let known = caps::capability_number(name.trim());
        let available = known.is_some_and(|c| host & (1u64 << c) != 0);
        let adding = add.contains(name);
        if known.is_none() || (adding && !privileged && !available) {
            return Err(ContainerError::UnknownCapability { name: name.clone() });
        }
    }
    let trimmed = |v: &[String]| v.iter().map(|n| n.trim().to_string()).collect();
    let sc = SecurityContext {
        privileged: Some(privileged),
        capabilities: Some(Capabilities {
            add: trimmed(add),
            drop: trimmed(drop),
        }),
        ..Default::default()
    };
    Ok(bits_to_vec(caps::effective_capabilities(Some(&sc)) & host))
}

/// The security settings of one process, computed before `clone`.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    caps: u64,
    last_cap: u8,
    no_new_privs: bool,
    /// `RuntimeDefault`: the filter, built before `clone`.
    seccomp: Option<Vec<crate::runtime::seccomp::SockFilter>>,
}

impl Plan {
    pub(crate) fn new(cfg: &ContainerConfig) -> Result<Self, ContainerError> {
        let last_cap = last_cap();
        let mut caps = 0u64;
        for &c in &cfg.capabilities {
            if c > last_cap {
                return Err(ContainerError::UnknownCapability {
                    name: capability_name(c).map_or_else(|| c.to_string(), str::to_string),
                });
            }
            caps |= 1u64 << c;
        }
        Ok(Plan {
            uid: cfg.uid,
            gid: cfg.gid,
            groups: cfg.groups.clone(),
            caps,
            last_cap,
            no_new_privs: cfg.no_new_privs,
            seccomp: cfg.seccomp.then(|| crate::runtime::seccomp::program(caps)),
        })
    }

    /// Applies groups, bounding set, gid/uid, capabilities, ambient and
    /// `no_new_privs` to the calling (single-threaded) process.
    pub(crate) fn apply(&self, sc: &dyn Syscall) -> Result<(), ContainerError> {
        sys::step(sc.setgroups(&self.groups), || {
            format!("setgroups({:?})", self.groups)
        })?;
        // The bounding set must shrink while CAP_SETPCAP is still effective,
        // i.e. before changing to a non-root uid.
        for cap in 0..=self.last_cap {
            if self.caps & (1u64 << cap) != 0 {
                continue;
            }
            match sc.drop_bounding(cap) {
                Ok(()) | Err(Errno::EINVAL) => {}
                Err(e) => {
                    return Err(ContainerError::setup(
                        format!(
                            "drop capability {} from the bounding set",
                            capability_name(cap).unwrap_or("?")
                        ),
                        e as i32,
                    ));
                }
            }
        }
        // Without no_new_privs the filter needs CAP_SYS_ADMIN, which a
        // non-root uid loses below: install it now (runc's order). The
        // remaining calls are all in the profile.
        if !self.no_new_privs {
            self.install_seccomp(sc)?;
        }
        sys::step(sc.prctl(libc::PR_SET_KEEPCAPS, 1), || {
            "prctl(PR_SET_KEEPCAPS)".to_string()
        })?;
        sys::step(sc.setresgid(self.gid), || {
            format!("setresgid({})", self.gid)
        })?;
        sys::step(sc.setresuid(self.uid), || {
            format!("setresuid({})", self.uid)
        })?;
        sys::step(sc.capset(self.caps), || {
            format!("capset(effective=permitted={:#x})", self.caps)
        })?;
        match sc.clear_ambient() {
            Ok(()) | Err(Errno::EINVAL) => {}
            Err(e) => {
                return Err(ContainerError::setup(
                    "clear ambient capabilities",
                    e as i32,
                ));
            }
        }
        if self.no_new_privs {
            sys::step(sc.prctl(libc::PR_SET_NO_NEW_PRIVS, 1), || {
                "prctl(PR_SET_NO_NEW_PRIVS)".to_string()
            })?;
            // The last step before execve.
            self.install_seccomp(sc)?;
        }
        Ok(())
    }

    fn install_seccomp(&self, sc: &dyn Syscall) -> Result<(), ContainerError> {
        match &self.seccomp {
            Some(prog) => sys::step(sc.seccomp(prog), || {
                "install the RuntimeDefault seccomp filter".to_string()
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_caps_are_containerds_fourteen_as_the_well_known_mask() {
        let mask = default_caps().iter().fold(0u64, |m, c| m | 1 << c);
        assert_eq!(mask, 0xa80425fb);
        assert_eq!(capability_name(0), Some("CHOWN"));
        assert_eq!(capability_set(&[], &[], false).unwrap(), default_caps());
    }

    #[test]
    fn capability_names_are_accepted_with_or_without_cap_prefix_in_any_case() {
        let set = capability_set(
            &names(&["CAP_NET_ADMIN", "sys_time"]),
            &names(&["KILL"]),
            false,
        )
        .unwrap();
        assert!(set.contains(&12) && set.contains(&25));
        assert!(!set.contains(&5));
        assert_eq!(set.len(), 15);
    }

    #[test]
    fn drop_all_keeps_only_the_named_adds() {
        let set = capability_set(&names(&["NET_BIND_SERVICE"]), &names(&["ALL"]), false).unwrap();
        assert_eq!(set, vec![10]);
        let set = capability_set(&names(&["ALL"]), &names(&["all"]), false).unwrap();
        assert!(set.is_empty());
    }

    #[test]
    fn add_all_gives_every_available_capability_minus_named_drops() {
        let all = bits_to_vec(all_caps(last_cap()));
        let set = capability_set(&names(&["ALL"]), &names(&["CHOWN"]), false).unwrap();
        assert_eq!(set.len(), all.len() - 1);
        assert!(!set.contains(&0));
        assert_eq!(
            capability_set(&[], &names(&["NET_RAW"]), true).unwrap(),
            all
        );
    }

    #[test]
    fn unknown_capability_names_are_rejected_with_the_name() {
        let err = capability_set(&names(&["FLY"]), &[], false).unwrap_err();
        assert_eq!(err.to_string(), "unknown capability \"FLY\"");
        assert_eq!(err.reason(), "CreateContainerError");
        assert!(capability_set(&[], &names(&["CAP_NOPE"]), false).is_err());
    }
}
