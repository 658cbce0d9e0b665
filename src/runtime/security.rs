//! Capabilities, user and `no_new_privs` of a container process.
//!
//! [`capability_set`] turns a pod's `securityContext.capabilities` into the
//! capability numbers of [`ContainerConfig::capabilities`]. [`Plan::apply`]
//! runs in the new process right before `execve`: empty supplementary
//! groups, bounding set reduced to the set, then gid/uid, then
//! effective = permitted = the set, inheritable and ambient empty. For a
//! non-root uid `execve` then clears effective/permitted, so only the
//! bounding set remains (as with containerd).
//!
//! Reads `/proc/sys/kernel/cap_last_cap` and `/proc/self/status`.

use super::container::{ContainerError, sys};
use super::shim::proto::ContainerConfig;

/// Capability names, indexed by number (without `CAP_`).
const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// containerd's default capabilities, in its order: CHOWN, DAC_OVERRIDE,
/// FSETID, FOWNER, MKNOD, NET_RAW, SETGID, SETUID, SETFCAP, SETPCAP,
/// NET_BIND_SERVICE, SYS_CHROOT, KILL, AUDIT_WRITE.
pub const DEFAULT_CAPS: [u8; 14] = [0, 1, 4, 3, 27, 13, 6, 7, 31, 8, 10, 18, 5, 29];

/// `CAP_SYS_ADMIN`-style name of a capability number.
pub fn capability_name(cap: u8) -> Option<&'static str> {
    NAMES.get(usize::from(cap)).copied()
}

/// Number of a capability name, with or without `CAP_`, any case.
pub fn capability_number(name: &str) -> Option<u8> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    NAMES.iter().position(|n| *n == bare).map(|i| i as u8)
}

/// The highest capability the running kernel knows.
pub fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .map_or(NAMES.len() as u8 - 1, |n| n.min(63))
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
/// them: privileged gets every capability (add/drop ignored); otherwise
/// start from [`DEFAULT_CAPS`], `ALL` in `add` means every capability,
/// `ALL` in `drop` means none (and wins over `add: [ALL]`), then the named
/// adds, then the named drops. Sorted ascending.
pub fn capability_set(
    add: &[String],
    drop: &[String],
    privileged: bool,
) -> Result<Vec<u8>, ContainerError> {
    let last = last_cap();
    if privileged {
        return Ok(bits_to_vec(all_caps(last)));
    }
    let is_all = |s: &String| s.trim().eq_ignore_ascii_case("ALL");
    let mut set: u64 = DEFAULT_CAPS.iter().fold(0, |m, c| m | 1u64 << c);
    if add.iter().any(is_all) {
        set = all_caps(last);
    }
    if drop.iter().any(is_all) {
        set = 0;
    }
    for name in add.iter().filter(|s| !is_all(s)) {
        match capability_number(name) {
            Some(c) if c <= last => set |= 1u64 << c,
            _ => {
                return Err(ContainerError::UnknownCapability { name: name.clone() });
            }
        }
    }
    for name in drop.iter().filter(|s| !is_all(s)) {
        match capability_number(name) {
            Some(c) => set &= !(1u64 << c),
            None => {
                return Err(ContainerError::UnknownCapability { name: name.clone() });
            }
        }
    }
    Ok(bits_to_vec(set))
}

/// The security settings of one process, computed before `clone`.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    uid: u32,
    gid: u32,
    caps: u64,
    last_cap: u8,
    no_new_privs: bool,
}

const CAP_V3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
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
            caps,
            last_cap,
            no_new_privs: cfg.no_new_privs,
        })
    }

    /// Applies groups, bounding set, gid/uid, capabilities, ambient and
    /// `no_new_privs` to the calling (single-threaded) process.
    pub(crate) fn apply(&self) -> Result<(), ContainerError> {
        // SAFETY: an empty group list with a NULL pointer is valid.
        let r = unsafe { libc::setgroups(0, std::ptr::null()) };
        sys::check(r, || "setgroups(0)".to_string())?;
        // The bounding set must shrink while CAP_SETPCAP is still effective,
        // i.e. before changing to a non-root uid.
        for cap in 0..=self.last_cap {
            if self.caps & (1u64 << cap) != 0 {
                continue;
            }
            let r = sys::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap));
            if r < 0 && sys::errno() != libc::EINVAL {
                return Err(ContainerError::last(format!(
                    "drop capability {} from the bounding set",
                    capability_name(cap).unwrap_or("?")
                )));
            }
        }
        let r = sys::prctl(libc::PR_SET_KEEPCAPS, 1);
        sys::check(r, || "prctl(PR_SET_KEEPCAPS)".to_string())?;
        // SAFETY: plain id arguments.
        let r = unsafe { libc::setresgid(self.gid, self.gid, self.gid) };
        sys::check(r, || format!("setresgid({})", self.gid))?;
        // SAFETY: plain id arguments.
        let r = unsafe { libc::setresuid(self.uid, self.uid, self.uid) };
        sys::check(r, || format!("setresuid({})", self.uid))?;
        self.capset()?;
        let r = sys::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        );
        if r < 0 && sys::errno() != libc::EINVAL {
            return Err(ContainerError::last("clear ambient capabilities"));
        }
        if self.no_new_privs {
            let r = sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1);
            sys::check(r, || "prctl(PR_SET_NO_NEW_PRIVS)".to_string())?;
        }
        Ok(())
    }

    fn capset(&self) -> Result<(), ContainerError> {
        let mut header = CapHeader {
            version: CAP_V3,
            pid: 0,
        };
        let word = |i: u32| {
            let w = (self.caps >> (32 * i)) as u32;
            CapData {
                effective: w,
                permitted: w,
                inheritable: 0,
            }
        };
        let data = [word(0), word(1)];
        // SAFETY: v3 header and a two-element data array, as capset(2) wants.
        let r = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
        if r < 0 {
            return Err(ContainerError::last(format!(
                "capset(effective=permitted={:#x})",
                self.caps
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn sorted_defaults() -> Vec<u8> {
        let mut d = DEFAULT_CAPS.to_vec();
        d.sort_unstable();
        d
    }

    #[test]
    fn default_caps_are_containerds_fourteen_as_the_well_known_mask() {
        let mask = DEFAULT_CAPS.iter().fold(0u64, |m, c| m | 1 << c);
        assert_eq!(mask, 0xa80425fb);
        let listed: Vec<&str> = DEFAULT_CAPS
            .iter()
            .map(|c| capability_name(*c).unwrap())
            .collect();
        assert_eq!(listed[0], "CHOWN");
        assert_eq!(listed[13], "AUDIT_WRITE");
        assert_eq!(capability_set(&[], &[], false).unwrap(), sorted_defaults());
    }

    #[test]
    fn capability_names_are_accepted_with_or_without_cap_prefix_in_any_case() {
        assert_eq!(capability_number("NET_ADMIN"), Some(12));
        assert_eq!(capability_number("cap_net_admin"), Some(12));
        assert_eq!(capability_number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(capability_number("NET_ADMINX"), None);
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
