//! The per-pod shim process (DESIGN §1): `picolet shim --config <pod-dir>/shim.json`.
//!
//! [`run`] is the whole program. The process the agent starts:
//!
//! 1. reads the [`PodConfig`] JSON;
//! 2. `unshare`s the pod's IPC and UTS namespaces, its network namespace
//!    unless `host_network`, and its PID namespace when `share_pid` (then the
//!    next child becomes PID 1 of the pod); sets the host name and brings
//!    `lo` up;
//! 3. forks the shim proper and waits on a pipe until the shim says it is
//!    ready (exit 0) or failed (its error on stderr, exit 1).
//!
//! The forked shim (not the agent's child: its parent exited) calls
//! `setsid`, points fd 0 at `/dev/null` and fds 1, 2 at `shim_log`, moves
//! itself into `<cgroup>/shim`, becomes a child subreaper, installs its
//! signal handling, binds `<pod_dir>/shim.sock`, reports ready and serves the
//! [`proto`] protocol in a single-threaded `poll(2)` loop ([`server`]).
//!
//! # Processes, fds and files
//!
//! - Processes: the shim; each container's init process and each exec
//!   process are its children (spawned by [`crate::runtime::container`]);
//!   orphans of a shared PID namespace, which it reaps.
//! - Fds (all `O_CLOEXEC`): the listening socket, at most one agent
//!   connection, a signalfd, and per container the read ends of its stdout
//!   and stderr pipes, per exec one output pipe; fds 0–2 as above.
//! - Files: `<pod_dir>/shim.sock` (removed on `Shutdown`), `shim_log`
//!   (append), every container's CRI log ([`crate::runtime::log`]), and
//!   `<cgroup>/shim/` (created, never removed: the agent removes the pod
//!   cgroup after the shim has exited).
//!
//! # Signals
//!
//! `SIGCHLD`, `SIGTERM`, `SIGINT` and `SIGHUP` are blocked and read from the
//! signalfd; all but `SIGCHLD` are ignored (only `Shutdown` ends the shim;
//! `SIGKILL` still does, and as PID 1 it takes the pod's processes with it).
//! They and `SIGPIPE` get do-nothing handlers rather than `SIG_IGN`, so that
//! `execve` resets them for containers; the mask is emptied while a
//! container is spawned, for the same reason. Socket writes use
//! `MSG_NOSIGNAL`: the shim survives the agent dying at any moment.

pub mod proto;

mod children;
mod conn;
mod server;
mod sys;

#[cfg(test)]
mod tests;

use proto::{Event, PodConfig};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Name of the socket inside the pod directory.
pub const SOCKET_NAME: &str = "shim.sock";
/// Name of the leaf cgroup the shim moves itself into, under the pod cgroup.
pub const CGROUP_LEAF: &str = "shim";

/// The environment variable that carries the shim's config path, so that
/// its command line (`ps`) is `picolet shim <namespace>/<pod>`.
pub const CONFIG_ENV: &str = "PICOLET_SHIM_CONFIG";

pub use server::{
    CREATE_CONTAINER_ERROR, EXEC_CANNOT_RUN, EXEC_NOT_FOUND, EXEC_NOT_STARTED, exec_failure_code,
};

/// Errors that stop the shim from starting.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("read config {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parse config {path}: {source}")]
    ParseConfig {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("unshare namespaces {flags:#x}: {source}")]
    Unshare { flags: i32, source: std::io::Error },
    #[error("set host name {name:?}: {source}")]
    Hostname {
        name: String,
        source: std::io::Error,
    },
    #[error("bring up lo: {source}")]
    Loopback { source: std::io::Error },
    #[error("sysctl {sysctl}: {source}")]
    Sysctl {
        sysctl: String,
        source: std::io::Error,
    },
    #[error("{op}: {source}")]
    Sys {
        op: &'static str,
        source: std::io::Error,
    },
    #[error("open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("join cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("socket {path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("socket {path}: another shim is listening on it")]
    SocketInUse { path: PathBuf },
    #[error("shim failed to start: {0}")]
    Child(String),
}

fn sys_err<E: Into<std::io::Error>>(op: &'static str) -> impl FnOnce(E) -> ShimError {
    move |source| ShimError::Sys {
        op,
        source: source.into(),
    }
}

/// The start time (clock ticks after boot, `/proc/<pid>/stat` field 22) of
/// process `pid`, as a shim's `Hello` reports its own: with the PID, what
/// tells a shim from a later process that reused its PID.
pub fn process_start_time(pid: libc::pid_t) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    sys::parse_stat(&stat).map(|(_, start)| start)
}

/// Runs `picolet shim --config <config_path>`; returns the process exit code.
///
/// In the process the agent started, this returns 0 once the shim is ready
/// to accept connections, or 1 after printing why it is not. In the forked
/// shim it returns when the shim ends (0 after `Shutdown`). The caller must
/// exit with the returned code in both cases.
#[inline(never)] // own stack frame: see docs/design-deviations.md §13
pub fn run(config_path: &Path) -> i32 {
    match launch(config_path) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("picolet shim: {e}");
            1
        }
    }
}

fn launch(config_path: &Path) -> Result<i32, ShimError> {
    let text = std::fs::read(config_path).map_err(|source| ShimError::ReadConfig {
        path: config_path.to_path_buf(),
        source,
    })?;
    let pod: PodConfig =
        serde_json::from_slice(&text).map_err(|source| ShimError::ParseConfig {
            path: config_path.to_path_buf(),
            source,
        })?;
    drop(text);
    enter_namespaces(&pod)?;
    let (ready_r, ready_w) = sys::pipe().map_err(sys_err("pipe"))?;
    if sys::fork().map_err(sys_err("fork"))? != 0 {
        drop(ready_w);
        return wait_ready(ready_r);
    }
    drop(ready_r);
    let server = match daemonize(pod) {
        Ok(s) => s,
        Err(e) => {
            let _ = File::from(ready_w).write_all(e.to_string().as_bytes());
            return Ok(1);
        }
    };
    let _ = File::from(ready_w).write_all(b"ok");
    Ok(server.run())
}

/// Creates the pod's namespaces (in this process; PID: for its children).
fn enter_namespaces(pod: &PodConfig) -> Result<(), ShimError> {
    let mut flags = libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if !pod.host_network {
        flags |= libc::CLONE_NEWNET;
    }
    if pod.share_pid {
        flags |= libc::CLONE_NEWPID;
    }
    sys::unshare(flags).map_err(|source| ShimError::Unshare {
        flags,
        source: source.into(),
    })?;
    if !pod.hostname.is_empty() {
        sys::sethostname(&pod.hostname).map_err(|source| ShimError::Hostname {
            name: pod.hostname.clone(),
            source: source.into(),
        })?;
    }
    if !pod.host_network {
        sys::loopback_up().map_err(|source| ShimError::Loopback {
            source: source.into(),
        })?;
    }
    // `/proc/sys/net` and the IPC sysctls are those of the writer's
    // namespaces: these are the pod's, which no other pod shares.
    for s in &pod.sysctls {
        let (name, value) = s.split_once('=').unwrap_or((s, ""));
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        std::fs::write(path, value).map_err(|source| ShimError::Sysctl {
            sysctl: s.clone(),
            source,
        })?;
    }
    Ok(())
}

/// In the agent's child: waits for the shim's verdict.
fn wait_ready(ready: OwnedFd) -> Result<i32, ShimError> {
    let mut msg = Vec::new();
    File::from(ready)
        .read_to_end(&mut msg)
        .map_err(sys_err("read readiness pipe"))?;
    match msg.as_slice() {
        b"ok" => Ok(0),
        b"" => Err(ShimError::Child("exited before it was ready".into())),
        m => Err(ShimError::Child(String::from_utf8_lossy(m).into_owned())),
    }
}

/// In the shim proper: everything up to a bound socket.
fn daemonize(pod: PodConfig) -> Result<server::Server, ShimError> {
    sys::setsid().map_err(sys_err("setsid"))?;
    redirect_stdio(&pod.shim_log)?;
    std::env::set_current_dir("/").map_err(sys_err("chdir /"))?;
    if let Some(cg) = &pod.cgroup {
        join_cgroup(&cg.join(CGROUP_LEAF))?;
    }
    sys::set_child_subreaper().map_err(sys_err("PR_SET_CHILD_SUBREAPER"))?;
    let caught = [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP];
    sys::set_noop_handlers(&caught).map_err(sys_err("sigaction"))?;
    sys::set_noop_handlers(&[libc::SIGPIPE]).map_err(sys_err("sigaction"))?;
    let signals = sys::signalfd(&caught).map_err(sys_err("signalfd"))?;
    let socket_path = pod.pod_dir.join(SOCKET_NAME);
    let listener = bind(&socket_path)?;
    let (pid, start_time) = sys::self_stat().map_err(sys_err("/proc/self/stat"))?;
    let hello = Event::Hello {
        pid,
        start_time,
        uid: pod.uid.clone(),
    };
    eprintln!(
        "picolet shim: pod {} ({}) ready, pid {pid}",
        pod.name, pod.uid
    );
    Ok(server::Server::new(
        pod,
        socket_path,
        listener,
        signals,
        hello,
    ))
}

fn redirect_stdio(log: &Path) -> Result<(), ShimError> {
    let open_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ShimError::Open { path, source }
    };
    let null = File::open("/dev/null").map_err(open_err(Path::new("/dev/null")))?;
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(open_err(dir))?;
    }
    let out = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .map_err(open_err(log))?;
    sys::dup2(null.as_fd(), 0).map_err(sys_err("dup2"))?;
    sys::dup2(out.as_fd(), 1).map_err(sys_err("dup2"))?;
    sys::dup2(out.as_fd(), 2).map_err(sys_err("dup2"))?;
    Ok(())
}

/// Moves this process into the leaf cgroup `dir`, creating it.
fn join_cgroup(dir: &Path) -> Result<(), ShimError> {
    let err = |source| ShimError::Cgroup {
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(e)),
    }
    std::fs::write(dir.join("cgroup.procs"), b"0").map_err(err)
}

/// Binds the pod socket (mode 0600), replacing a stale one but never a live one.
fn bind(path: &Path) -> Result<UnixListener, ShimError> {
    let err = |source| ShimError::Socket {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(ShimError::SocketInUse {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    Ok(listener)
}
