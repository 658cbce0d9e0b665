//! Linux capabilities: names, numbers, and the set a container gets.
//!
//! Names are accepted as Kubernetes users write them: `NET_ADMIN`,
//! `CAP_NET_ADMIN`, in any case (containerd upper-cases them), plus `ALL`.
//! The effective set follows containerd's CRI plugin: a privileged container
//! gets every capability; others start from the default set, apply `add: [ALL]`
//! and `drop: [ALL]` first, then individual adds, then individual drops.
//! Pure functions, no I/O; the runtime turns the mask into `capset(2)`.

use super::types::SecurityContext;

/// The 41 Linux capabilities, indexed by their number (`CAP_CHOWN` = 0 …
/// `CAP_CHECKPOINT_RESTORE` = 40).
pub const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The highest capability number (`CAP_CHECKPOINT_RESTORE`).
pub const CAP_LAST_CAP: u8 = 40;

/// Mask of every capability in [`CAPABILITIES`].
pub const ALL_CAPABILITIES: u64 = (1u64 << (CAP_LAST_CAP as u64 + 1)) - 1;

/// The capabilities a container gets by default (containerd's and Docker's
/// default set, which Kubernetes pods get).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The number of a capability named `NET_ADMIN` or `CAP_NET_ADMIN` (any
/// case), or `None` for an unknown name (and for `ALL`).
pub fn capability_number(name: &str) -> Option<u8> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAPABILITIES
        .iter()
        .position(|c| &c[4..] == bare)
        .map(|i| i as u8)
}

/// Whether `name` is the `ALL` wildcard (any case).
pub fn is_all(name: &str) -> bool {
    name.eq_ignore_ascii_case("ALL")
}

/// The name of capability number `n` (`12` → `CAP_NET_ADMIN`).
pub fn capability_name(n: u8) -> Option<&'static str> {
    CAPABILITIES.get(usize::from(n)).copied()
}

/// Mask of [`DEFAULT_CAPABILITIES`].
pub fn default_capabilities() -> u64 {
    DEFAULT_CAPABILITIES
        .iter()
        .filter_map(|c| capability_number(c))
        .fold(0, |m, n| m | (1u64 << n))
}

/// The capability mask (bit n = capability n) a container runs with, for
/// its (optional) security context. Unknown names are skipped: validation
/// has refused them already.
pub fn effective_capabilities(sc: Option<&SecurityContext>) -> u64 {
    if sc.and_then(|s| s.privileged).unwrap_or(false) {
        // containerd ignores add/drop for a privileged container.
        return ALL_CAPABILITIES;
    }
    let mut mask = default_capabilities();
    let Some(caps) = sc.and_then(|s| s.capabilities.as_ref()) else {
        return mask;
    };
    if caps.add.iter().any(|c| is_all(c)) {
        mask = ALL_CAPABILITIES;
    }
    if caps.drop.iter().any(|c| is_all(c)) {
        mask = 0;
    }
    for n in caps.add.iter().filter_map(|c| capability_number(c)) {
        mask |= 1u64 << n;
    }
    for n in caps.drop.iter().filter_map(|c| capability_number(c)) {
        mask &= !(1u64 << n);
    }
    mask
}
