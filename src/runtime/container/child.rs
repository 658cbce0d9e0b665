//! Code that runs in the new process after `clone`/`fork`. Every entry
//! point ends in `execve` or `_exit`; errors go to the error pipe.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::stat::Mode;

use crate::runtime::syscall::Linux;
use crate::sys::process::exit_now;

use super::super::{namespaces, rootfs};
use super::{ContainerError, Never, Prepared, Stdio, join_cgroup, sys, wire};

/// Writes `result`'s error to the error pipe and exits 127.
pub(crate) fn fail(errfd: &OwnedFd, result: Never) -> ! {
    let err = match result {
        Ok(never) => match never {},
        Err(e) => e,
    };
    sys::write_all(errfd.as_fd(), &wire::encode(&err));
    exit_now(127)
}

/// The error pipe's fd, moved to 3 or above if it is 0, 1 or 2 (so that
/// installing stdio cannot overwrite it).
pub(crate) fn above_stdio(fd: OwnedFd) -> OwnedFd {
    if fd.as_raw_fd() > 2 {
        return fd;
    }
    crate::sys::fd::dup_at_least(fd.as_fd(), 3).unwrap_or(fd)
}

/// The container's first process: steps 1–9 of the container setup.
pub(crate) fn container_main(
    cgroup: Option<&Path>,
    rootfs_plan: &rootfs::Plan,
    prepared: &Prepared,
    stdio: &Stdio,
    errfd: &OwnedFd,
) -> Never {
    reset_signals();
    // 0 while creating device nodes and mount points, so their modes are exact.
    nix::sys::stat::umask(Mode::empty());
    if let Some(cg) = cgroup {
        join_cgroup(cg)?;
    }
    set_oom_score_adj(prepared.oom_score_adj)?;
    rootfs::setup(&Linux, rootfs_plan)?;
    install_stdio([&stdio.stdin, &stdio.stdout, &stdio.stderr], errfd)?;
    chdir(&prepared.cwd)?;
    let program = lookup(&prepared.argv0, &prepared.path_var)?;
    prepared.security.apply(&Linux)?;
    exec(&program, prepared)
}

/// The intermediate process of an exec: joins the cgroup and the target's
/// PID and mount namespaces, forks the command, then relays its exit.
pub(crate) fn exec_main(
    cgroup: Option<&Path>,
    ns_dir: &str,
    prepared: &Prepared,
    stdio: &Stdio,
    errfd: &OwnedFd,
) -> Never {
    reset_signals();
    if let Some(cg) = cgroup {
        join_cgroup(cg)?;
    }
    // While /proc is still the host's (the container's does not show this process).
    set_oom_score_adj(prepared.oom_score_adj)?;
    let pid_ns = namespaces::open_ns(ns_dir, "pid")?;
    let mnt_ns = namespaces::open_ns(ns_dir, "mnt")?;
    namespaces::join(&Linux, &pid_ns, libc::CLONE_NEWPID, "pid")?;
    namespaces::join(&Linux, &mnt_ns, libc::CLONE_NEWNS, "mnt")?;
    drop((pid_ns, mnt_ns));
    // runc's console socket: the pty is the container's own (its devpts),
    // so `tty` names it inside.
    let slave = match &stdio.console {
        Some(socket) => Some(crate::sys::tty::console(socket)?),
        None => None,
    };
    let fds = match &slave {
        Some(s) => [s, s, s],
        None => [&stdio.stdin, &stdio.stdout, &stdio.stderr],
    };
    install_stdio(fds, errfd)?;
    // `install_stdio` closed every other fd: this one is gone already.
    let _ = slave.map(std::os::fd::IntoRawFd::into_raw_fd);
    let child = namespaces::fork()?;
    if child == 0 {
        fail(errfd, exec_command(prepared, stdio.console.is_some()))
    }
    // Close the error pipe (the command holds its own copy) and the
    // command's stdio, so that readers see EOF when the command ends.
    for fd in [errfd.as_raw_fd(), 0, 1, 2] {
        crate::sys::fd::close_raw(fd);
    }
    relay(child)
}

/// Writes `/proc/self/oom_score_adj`, which every process started from here
/// on inherits (the kubelet's per-QoS value). Lowering it needs
/// CAP_SYS_RESOURCE: without it (a restricted sandbox) the refusal is not
/// an error and the container keeps the shim's value, as rootless
/// containerd clamps it.
fn set_oom_score_adj(adj: Option<i32>) -> Result<(), ContainerError> {
    let Some(adj) = adj else {
        return Ok(());
    };
    match std::fs::write("/proc/self/oom_score_adj", adj.to_string()) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => Ok(()),
        Err(e) => Err(ContainerError::Sys {
            op: "write /proc/self/oom_score_adj",
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        }),
    }
}

fn exec_command(prepared: &Prepared, tty: bool) -> Never {
    if tty {
        // As runc for a terminal: Ctrl-C on the pty signals the command's
        // foreground process group, its exit hangs the session up.
        crate::sys::tty::become_session_leader_of(std::io::stdin())?;
    }
    // SIGKILL on the intermediate then also ends the command.
    sys::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        "prctl(PR_SET_PDEATHSIG)",
    )?;
    chdir(&prepared.cwd)?;
    let program = lookup(&prepared.argv0, &prepared.path_var)?;
    prepared.security.apply(&Linux)?;
    exec(&program, prepared)
}

static EXEC_CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = EXEC_CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // kill(2) is async-signal-safe; `pid` is our own child.
        let _ = crate::sys::process::kill(pid, sig);
    }
}

/// Forwards termination signals to `child`, waits for it and exits the
/// same way: the same code, or killed by the same signal.
fn relay(child: libc::pid_t) -> ! {
    EXEC_CHILD.store(child, Ordering::Relaxed);
    let forwarded = [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ];
    let _ = crate::sys::signal::set_handlers(&forwarded, forward_signal);
    let Ok(status) = crate::sys::process::wait(child) else {
        exit_now(127)
    };
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let _ = crate::sys::process::no_core_dumps();
        // Die the same way as the command: default action, nothing blocked.
        reset_signals();
        let _ = crate::sys::process::kill(std::process::id() as libc::pid_t, sig);
        exit_now(128 + sig)
    }
    exit_now(libc::WEXITSTATUS(status))
}

/// Default dispositions and an empty signal mask: the shim blocks signals
/// for its signalfd and ignores SIGPIPE, and both would survive `execve`.
fn reset_signals() {
    crate::sys::signal::reset_all();
}

/// Moves `stdio` onto fds 0, 1, 2 and closes every other fd except the
/// error pipe (which is close-on-exec).
fn install_stdio(stdio: [&OwnedFd; 3], errfd: &OwnedFd) -> Result<(), ContainerError> {
    // Duplicates numbered >= 3 first, so no source is overwritten by the
    // dup2 calls below.
    let mut high = Vec::with_capacity(3);
    for fd in stdio {
        let dup = crate::sys::fd::dup_at_least(fd.as_fd(), 3)
            .map_err(|e| ContainerError::setup("duplicate stdio fd", e.errno()))?;
        high.push(dup);
    }
    for (target, fd) in high.iter().enumerate() {
        // dup2 onto 0/1/2; the copy is not close-on-exec.
        let r = match target {
            0 => nix::unistd::dup2_stdin(fd),
            1 => nix::unistd::dup2_stdout(fd),
            _ => nix::unistd::dup2_stderr(fd),
        };
        sys::step(r, || format!("dup2 onto fd {target}"))?;
    }
    drop(high);
    crate::sys::fd::close_from(3, errfd.as_raw_fd());
    Ok(())
}

fn chdir(dir: &str) -> Result<(), ContainerError> {
    let c = sys::cstr_of("workingDir", dir)?;
    sys::step(nix::unistd::chdir(c.as_c_str()), || {
        format!("chdir to working directory {dir:?}")
    })
}

/// Finds `argv0` like Go's `exec.LookPath`: a name with '/' is used as is;
/// otherwise the first `PATH` entry holding a non-directory with an
/// execute bit wins (an empty entry means ".").
pub(crate) fn lookup(argv0: &str, path_var: &str) -> Result<CString, ContainerError> {
    if argv0.contains('/') {
        return sys::cstr_of("argv", argv0);
    }
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = sys::cstr_of("PATH", &format!("{dir}/{argv0}"))?;
        let Ok(st) = nix::sys::stat::stat(candidate.as_c_str()) else {
            continue;
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR && st.st_mode & 0o111 != 0 {
            return Ok(candidate);
        }
    }
    Err(ContainerError::NotFound {
        program: argv0.to_string(),
    })
}

fn exec(program: &CString, prepared: &Prepared) -> Never {
    let mut argv: Vec<*const libc::c_char> = prepared.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = prepared.env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // Containers start with umask 022.
    nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
    // SAFETY: NULL-terminated arrays of NUL-terminated strings that outlive the call.
    unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Err(ContainerError::Exec {
        program: prepared.argv0.clone(),
        errno: sys::errno(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_searches_path_in_order_and_skips_non_executables() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(b.join("tool")).unwrap();
        std::fs::write(a.join("plain"), b"").unwrap();
        std::fs::write(b.join("plain"), b"").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(b.join("plain"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", a.display(), b.display());
        let found = lookup("plain", &path).unwrap();
        assert_eq!(found.to_str().unwrap(), format!("{}/plain", b.display()));
        let err = lookup("tool", &path).unwrap_err();
        assert_eq!(
            err.to_string(),
            "exec: \"tool\": executable file not found in $PATH"
        );
        assert_eq!(lookup("/x/y", &path).unwrap().to_str().unwrap(), "/x/y");
    }
}
