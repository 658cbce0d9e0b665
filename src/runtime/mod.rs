//! Linux: the per-pod shim, namespaces, rootfs, cgroups, security, logs.

pub mod cgroup;
pub mod config;
pub mod container;
pub mod error;
pub mod log;
pub mod namespaces;
pub mod rootfs;
pub mod seccomp;
pub mod security;
pub mod shim;
pub(crate) mod syscall;
