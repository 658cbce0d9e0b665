//! Why a container (or an exec) could not be started: the one error type
//! of the container runtime, shared by the setup steps (rootfs, security,
//! namespaces), the post-clone child's wire record and the shim.

use super::container::sys;

/// Why a container (or an exec) could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// A syscall in the calling process failed (pipe, clone, fork, read, wait).
    #[error("{op}: {}", sys::errno_text(*.errno))]
    Sys { op: &'static str, errno: i32 },
    /// A setup step in the new process failed (cgroup, mounts, pivot_root,
    /// stdio, working directory, capabilities, user).
    #[error("{}", sys::with_errno(.step, *.errno))]
    Setup { step: String, errno: i32 },
    /// `argv[0]` has no '/' and is in no directory of `PATH`.
    #[error("exec: {program:?}: executable file not found in $PATH")]
    NotFound { program: String },
    /// `execve` failed.
    #[error("exec: {program:?}: {}", sys::errno_text(*.errno))]
    Exec { program: String, errno: i32 },
    /// The configuration cannot be applied as given.
    #[error("invalid {field} {value:?}: {why}")]
    InvalidConfig {
        field: &'static str,
        value: String,
        why: &'static str,
    },
    /// A capability name that the kernel does not know.
    #[error("unknown capability {name:?}")]
    UnknownCapability { name: String },
    /// The new process died without reporting success or an error.
    #[error("container process died during setup (wait status {status:#x})")]
    Died { status: i32 },
}

impl ContainerError {
    /// The Kubernetes waiting reason: `StartError` when `execve` failed
    /// (as containerd reports a missing executable), `CreateContainerError`
    /// for everything before it.
    pub fn reason(&self) -> &'static str {
        match self {
            ContainerError::NotFound { .. } | ContainerError::Exec { .. } => "StartError",
            _ => "CreateContainerError",
        }
    }

    pub(crate) fn setup(step: impl Into<String>, errno: i32) -> Self {
        ContainerError::Setup {
            step: step.into(),
            errno,
        }
    }

    /// A failed step, with `errno` taken from the last syscall.
    pub(crate) fn last(step: impl Into<String>) -> Self {
        Self::setup(step, sys::errno())
    }
}

impl From<crate::sys::Error> for ContainerError {
    /// A failed syscall of the calling process (pipe, clone, fork, read, wait).
    fn from(e: crate::sys::Error) -> Self {
        ContainerError::Sys {
            op: e.op_static(),
            errno: e.errno(),
        }
    }
}
