//! Start one container process inside a pod, or run a command inside a
//! running container. Called by the shim, which is single-threaded and
//! synchronous and already lives in the pod's net/ipc/uts namespaces.
//!
//! # Processes and fds
//!
//! [`spawn`] creates the container's first process with a raw `clone`
//! (fork semantics, new mount namespace, new PID namespace unless the pod
//! shares one). The child sets up the rootfs ([`super::rootfs`]), stdio,
//! the working directory and the security settings ([`super::security`]),
//! then `execve`s. Parent and child share one `O_CLOEXEC` *error pipe*: when
//! `execve` succeeds the write end closes and the parent reads EOF; when
//! anything fails the child writes a [`wire`] record, `_exit`s, and the
//! parent reaps it and returns the error. The parent closes the [`Stdio`]
//! fds it was given (they live on as fds 0/1/2 of the container) and keeps
//! nothing else.
//!
//! [`exec_in`] forks an *intermediate* process that joins the container's
//! cgroup and mount + PID namespaces, then forks the command itself (a
//! PID-namespace join only applies to children). The intermediate relays
//! the command's exit status as its own and forwards SIGTERM-like signals;
//! the command gets `PR_SET_PDEATHSIG(SIGKILL)`, so SIGKILL on the pid
//! returned by `exec_in` ends both.
//!
//! Child code never returns into the caller: every path ends in `execve`
//! or `_exit`.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use super::config::{ContainerConfig, PodConfig};
use super::{namespaces, rootfs, security};
use crate::sys::process::ChildGuard;

pub use super::error::ContainerError;

pub(crate) mod child;
pub(crate) mod sys;
pub(crate) mod wire;

#[cfg(test)]
mod tests;

/// The container's standard streams, installed as its fds 0, 1 and 2.
#[derive(Debug)]
pub struct Stdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// `picolet exec -it`: instead of the three above, a pty of the
    /// container's devpts made in its mount namespace, whose master goes to
    /// this console socket (runc's `--console-socket`), of the size the
    /// socket holds; the command runs in a new session with the slave as
    /// its 0, 1, 2 and controlling terminal.
    pub console: Option<OwnedFd>,
}

/// Everything the new process needs, converted in the parent so that the
/// child does little more than syscalls.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub argv0: String,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    /// `PATH` from `env` (or the containerd default).
    pub path_var: String,
    pub cwd: String,
    pub security: security::Plan,
    pub oom_score_adj: Option<i32>,
}

impl Prepared {
    fn new(cfg: &ContainerConfig, argv: &[String]) -> Result<Self, ContainerError> {
        let argv0 = match argv.first() {
            Some(a) if !a.is_empty() => a.clone(),
            _ => {
                return Err(ContainerError::InvalidConfig {
                    field: "argv",
                    value: format!("{argv:?}"),
                    why: "no command to run",
                });
            }
        };
        if !cfg.cwd.starts_with('/') {
            return Err(ContainerError::InvalidConfig {
                field: "workingDir",
                value: cfg.cwd.clone(),
                why: "must be an absolute path",
            });
        }
        let path_var = cfg
            .env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_string();
        Ok(Prepared {
            argv0,
            argv: cstrings("argv", argv)?,
            env: cstrings("env", &cfg.env)?,
            path_var,
            cwd: cfg.cwd.clone(),
            security: security::Plan::new(cfg)?,
            oom_score_adj: cfg.oom_score_adj,
        })
    }
}

/// containerd's default `PATH` when neither the image nor the pod sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn cstrings(field: &'static str, items: &[String]) -> Result<Vec<CString>, ContainerError> {
    items
        .iter()
        .map(|s| sys::cstr_of(field, s))
        .collect::<Result<Vec<_>, _>>()
}

/// Starts the container's first process and returns its host PID once it
/// has exec'd the command. On error nothing is left behind: the child has
/// been reaped, and its mounts died with its mount namespace.
///
/// Call it from a single-threaded process (the shim): the child is made
/// by a raw `clone` and allocates. The caller must not reap children
/// concurrently (it is synchronous, so it does not).
pub fn spawn(
    pod: &PodConfig,
    cfg: &ContainerConfig,
    stdio: Stdio,
) -> Result<libc::pid_t, ContainerError> {
    let prepared = Prepared::new(cfg, &cfg.argv)?;
    let rootfs_plan = rootfs::Plan::new(pod, cfg)?;
    let (rd, wr) = sys::pipe()?;
    let mut flags = libc::CLONE_NEWNS | libc::SIGCHLD;
    if !pod.share_pid {
        flags |= libc::CLONE_NEWPID;
    }
    let pid = namespaces::clone_fork(flags)?;
    if pid == 0 {
        drop(rd);
        let errfd = child::above_stdio(wr);
        let cgroup = cfg.cgroup.as_deref();
        let result = child::container_main(cgroup, &rootfs_plan, &prepared, &stdio, &errfd);
        child::fail(&errfd, result)
    }
    let child = ChildGuard::new(pid);
    drop(wr);
    drop(stdio);
    wait_for_exec(rd, child)
}

/// Runs `argv` inside the running container whose init process is
/// `target_pid` (host PID): its cgroup, mount and PID namespaces, working
/// directory, user, capabilities and `no_new_privs`, with `cfg.env`.
/// Returns the PID to wait on; its exit status is the command's (or it
/// dies by the same signal). SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1/2
/// sent to it are forwarded; SIGKILL kills the command too.
///
/// The pod's net/ipc/uts namespaces are the caller's own, so `pod` is not
/// needed today; it stays in the signature for symmetry with [`spawn`].
pub fn exec_in(
    pod: &PodConfig,
    cfg: &ContainerConfig,
    target_pid: libc::pid_t,
    argv: &[String],
    stdio: Stdio,
) -> Result<libc::pid_t, ContainerError> {
    let _ = pod;
    let prepared = Prepared::new(cfg, argv)?;
    let ns_dir = format!("/proc/{target_pid}/ns");
    let (rd, wr) = sys::pipe()?;
    let pid = namespaces::fork()?;
    if pid == 0 {
        drop(rd);
        let errfd = child::above_stdio(wr);
        let cgroup = cfg.cgroup.as_deref();
        let result = child::exec_main(cgroup, &ns_dir, &prepared, &stdio, &errfd);
        child::fail(&errfd, result)
    }
    let child = ChildGuard::new(pid);
    drop(wr);
    drop(stdio);
    wait_for_exec(rd, child)
}

/// Reads the error pipe until EOF. Empty: the process exec'd. Otherwise
/// decode the error, reap the child and return it. The child is held by a
/// [`ChildGuard`]: any early return kills and reaps it.
fn wait_for_exec(rd: OwnedFd, child: ChildGuard) -> Result<libc::pid_t, ContainerError> {
    let mut buf = Vec::new();
    sys::read_to_end(rd.as_fd(), &mut buf, wire::MAX_LEN)?;
    drop(rd);
    if buf.is_empty() {
        return Ok(child.release());
    }
    let status = child.reap();
    Err(wire::decode(&buf).unwrap_or(ContainerError::Died { status }))
}

/// Moves this process into `cgroup` (a cgroup v2 directory).
pub(crate) fn join_cgroup(cgroup: &Path) -> Result<(), ContainerError> {
    let procs = cgroup.join("cgroup.procs");
    std::fs::write(&procs, b"0").map_err(|e| {
        ContainerError::setup(
            format!("join cgroup {:?}", procs.display().to_string()),
            e.raw_os_error().unwrap_or(libc::EIO),
        )
    })
}

/// Used by child code: a `Result` that can only be an error.
pub(crate) type Never = Result<Infallible, ContainerError>;
