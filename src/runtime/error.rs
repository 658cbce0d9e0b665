//! Why a container (or an exec) could not be started: the one error type
//! of the container runtime, shared by the setup steps (rootfs, security,
//! namespaces), the post-clone child's wire record and the shim.

/// Why a container (or an exec) could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// A syscall in the calling process failed (pipe, clone, fork, read, wait).
    #[error("{op}: {}", errno_text(*.errno))]
    Sys { op: &'static str, errno: i32 },
    /// A setup step in the new process failed (cgroup, mounts, pivot_root,
    /// stdio, working directory, capabilities, user).
    #[error("{}", with_errno(.step, *.errno))]
    Setup { step: String, errno: i32 },
    /// `argv[0]` has no '/' and is in no directory of `PATH`.
    #[error("exec: {program:?}: executable file not found in $PATH")]
    NotFound { program: String },
    /// `execve` failed.
    #[error("exec: {program:?}: {}", errno_text(*.errno))]
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

/// The text of an errno without Rust's " (os error N)" suffix, lower-case
/// like Go's (`no such file or directory`).
pub(crate) fn errno_text(errno: i32) -> String {
    let full = std::io::Error::from_raw_os_error(errno).to_string();
    let text = match full.find(" (os error") {
        Some(i) => &full[..i],
        None => &full,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `step: error text`, or only `step` when there is no errno.
pub(crate) fn with_errno(step: &str, errno: i32) -> String {
    if errno == 0 {
        step.to_string()
    } else {
        format!("{step}: {}", errno_text(errno))
    }
}
