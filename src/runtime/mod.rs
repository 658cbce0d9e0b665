//! Linux: the per-pod shim, namespaces, rootfs, cgroups, security, logs.

pub mod log;
pub mod shim;
