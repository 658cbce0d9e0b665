//! The configuration of a pod sandbox and of one container, as the agent
//! computes it and the shim receives it (JSON: the shim's `--config` file
//! and `Request::Start`, see [`super::shim::proto`]). The container runtime
//! ([`super::container`], [`super::rootfs`], [`super::security`]) reads
//! only these types, so it does not depend on the shim's protocol.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Pod-level settings, given to the shim on its command line as JSON
/// (`picolet shim --config <pod-dir>/shim.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodConfig {
    /// The pod's uid.
    pub uid: String,
    /// `namespace/name`, for messages.
    pub name: String,
    /// The pod directory (`<state-dir>/pods/<uid>`): the socket lives here.
    pub pod_dir: PathBuf,
    /// Host name set in the pod's UTS namespace.
    pub hostname: String,
    /// `hostNetwork`: keep the host's network namespace.
    pub host_network: bool,
    /// `shareProcessNamespace`: the shim becomes PID 1 of one pod PID namespace.
    pub share_pid: bool,
    /// The pod cgroup, if cgroups are in use (created by the agent). The
    /// shim moves itself into `<cgroup>/shim` (a leaf), because a cgroup
    /// with controllers enabled may not hold processes itself.
    pub cgroup: Option<PathBuf>,
    /// Where the shim writes its own diagnostics (in the run dir, i.e. RAM).
    pub shim_log: PathBuf,
    /// `securityContext.sysctls` as `name=value` (dotted names, checked
    /// against the safe set), written in the pod's new namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<String>,
}

/// One mount into a container, applied in order after the rootfs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path inside the container.
    pub destination: String,
    pub kind: MountKind,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MountKind {
    /// Bind mount of a host path (emptyDir on disk, hostPath, /etc/hosts …).
    Bind { source: PathBuf },
    /// A fresh tmpfs (emptyDir `Memory`); `size` in bytes, 0 = kernel default.
    Tmpfs { size: u64 },
}

/// The rootfs of one container: an overlay of read-only layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rootfs {
    /// Unpacked layer directories, **top-most first** (overlayfs `lowerdir` order).
    pub layers: Vec<PathBuf>,
    /// Upper and work dir; `None` for `readOnlyRootFilesystem`.
    pub upper: Option<(PathBuf, PathBuf)>,
    /// Where the overlay is mounted.
    pub target: PathBuf,
}

/// Everything the shim needs to start one container. Fully resolved by the
/// agent: image config merged, env expanded, user resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// Container name, unique in the pod.
    pub name: String,
    /// Increases with every start of this container (restartCount-like).
    pub instance: u64,
    pub rootfs: Rootfs,
    /// argv[0] is resolved against `PATH` from `env` inside the rootfs.
    pub argv: Vec<String>,
    /// `KEY=VALUE`.
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (containerd's: the primary gid, the image's
    /// `/etc/group` memberships, `fsGroup`, `supplementalGroups`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<u32>,
    /// Effective/permitted/bounding capability numbers (`CAP_*` values).
    pub capabilities: Vec<u8>,
    /// Set `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
    /// Install containerd's default seccomp profile (`RuntimeDefault`).
    #[serde(default)]
    pub seccomp: bool,
    /// No masked or read-only paths, /sys writable.
    pub privileged: bool,
    pub mounts: Vec<Mount>,
    /// The container's own cgroup (child of the pod cgroup), if any.
    pub cgroup: Option<PathBuf>,
    /// CRI log file: `<dir>/<instance>.log`.
    pub log_path: PathBuf,
    /// Rotate when the file reaches this many bytes.
    pub log_max_bytes: u64,
    /// Keep this many files in all (current + rotated).
    pub log_max_files: u32,
    /// Written to `/proc/self/oom_score_adj` of the container's processes
    /// (and of its exec sessions); `None` keeps the shim's.
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    /// Sent instead of SIGTERM when the agent asks for a graceful stop
    /// (`lifecycle.stopSignal`, else the image's `STOPSIGNAL`).
    #[serde(default)]
    pub stop_signal: Option<i32>,
}
