//! Linux: the per-pod shim, namespaces, rootfs, cgroups, security, logs.

pub mod cgroup;
pub mod shim;
