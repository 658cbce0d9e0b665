//! Code that runs in the new process after `clone`/`fork`. Every entry
//! point ends in `execve` or `_exit`; errors go to the error pipe.

use std::ffi::CString;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use super::super::{namespaces, rootfs};
use super::{ContainerError, Never, Prepared, Stdio, join_cgroup, sys, wire};

/// Writes `result`'s error to the error pipe and exits 127.
pub(crate) fn fail(errfd: RawFd, result: Never) -> ! {
    let err = match result {
        Ok(never) => match never {},
        Err(e) => e,
    };
    sys::write_all(errfd, &wire::encode(&err));
    // SAFETY: _exit never returns and runs no destructors or atexit hooks.
    unsafe { libc::_exit(127) }
}

/// The error pipe's fd, moved to 3 or above if it is 0, 1 or 2 (so that
/// installing stdio cannot overwrite it).
pub(crate) fn above_stdio(fd: RawFd) -> RawFd {
    if fd > 2 {
        return fd;
    }
    // SAFETY: duplicating an open fd.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 { fd } else { new }
}

/// The container's first process: steps 1–9 of the container setup.
pub(crate) fn container_main(
    cgroup: Option<&Path>,
    rootfs_plan: &rootfs::Plan,
    prepared: &Prepared,
    stdio: &Stdio,
    errfd: RawFd,
) -> Never {
    reset_signals();
    // SAFETY: umask has no preconditions. 0 while creating device nodes
    // and mount points, so their modes are exact.
    unsafe { libc::umask(0) };
    if let Some(cg) = cgroup {
        join_cgroup(cg)?;
    }
    set_oom_score_adj(prepared.oom_score_adj)?;
    rootfs::setup(rootfs_plan)?;
    install_stdio(stdio, errfd)?;
    chdir(&prepared.cwd)?;
    let program = lookup(&prepared.argv0, &prepared.path_var)?;
    prepared.security.apply()?;
    exec(&program, prepared)
}

/// The intermediate process of an exec: joins the cgroup and the target's
/// PID and mount namespaces, forks the command, then relays its exit.
pub(crate) fn exec_main(
    cgroup: Option<&Path>,
    ns_dir: &str,
    prepared: &Prepared,
    stdio: &Stdio,
    errfd: RawFd,
) -> Never {
    reset_signals();
    if let Some(cg) = cgroup {
        join_cgroup(cg)?;
    }
    // While /proc is still the host's (the container's does not show this process).
    set_oom_score_adj(prepared.oom_score_adj)?;
    let pid_ns = namespaces::open_ns(ns_dir, "pid")?;
    let mnt_ns = namespaces::open_ns(ns_dir, "mnt")?;
    namespaces::join(&pid_ns, libc::CLONE_NEWPID, "pid")?;
    namespaces::join(&mnt_ns, libc::CLONE_NEWNS, "mnt")?;
    drop((pid_ns, mnt_ns));
    install_stdio(stdio, errfd)?;
    let child = namespaces::fork()?;
    if child == 0 {
        fail(errfd, exec_command(prepared))
    }
    // Close the error pipe (the command holds its own copy) and the
    // command's stdio, so that readers see EOF when the command ends.
    for fd in [errfd, 0, 1, 2] {
        // SAFETY: closing fds this process owns.
        unsafe { libc::close(fd) };
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

fn exec_command(prepared: &Prepared) -> Never {
    // SIGKILL on the intermediate then also ends the command.
    let r = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
    sys::check(r, || "prctl(PR_SET_PDEATHSIG)".to_string())?;
    chdir(&prepared.cwd)?;
    let program = lookup(&prepared.argv0, &prepared.path_var)?;
    prepared.security.apply()?;
    exec(&program, prepared)
}

static EXEC_CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = EXEC_CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe; `pid` is our own child.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Forwards termination signals to `child`, waits for it and exits the
/// same way: the same code, or killed by the same signal.
fn relay(child: libc::pid_t) -> ! {
    EXEC_CHILD.store(child, Ordering::Relaxed);
    for sig in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: installing an async-signal-safe handler.
        unsafe { libc::signal(sig, forward_signal as *const () as libc::sighandler_t) };
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child with a valid out-pointer.
        let r = unsafe { libc::waitpid(child, &mut status, 0) };
        if r == child {
            break;
        }
        if r < 0 && sys::errno() != libc::EINTR {
            // SAFETY: _exit never returns.
            unsafe { libc::_exit(127) }
        }
    }
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: lowering our own core limit with a valid struct.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
        // Die the same way as the command: default action, nothing blocked.
        reset_signals();
        // SAFETY: signalling ourselves.
        unsafe { libc::kill(std::process::id() as libc::pid_t, sig) };
        // SAFETY: _exit never returns.
        unsafe { libc::_exit(128 + sig) }
    }
    // SAFETY: _exit never returns.
    unsafe { libc::_exit(libc::WEXITSTATUS(status)) }
}

/// The kernel's `struct sigaction` for `rt_sigaction` (same field order
/// on x86_64, aarch64 and arm).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Default dispositions and an empty signal mask: the shim blocks signals
/// for its signalfd and ignores SIGPIPE, and both would survive `execve`.
/// Raw syscalls, because libc refuses to touch its reserved signals
/// (32, 33), which an ignoring ancestor may have left ignored.
fn reset_signals() {
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction with a valid kernel sigaction and the
        // kernel's sigset size; no old action requested.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
    }
    let empty: u64 = 0;
    // SAFETY: rt_sigprocmask(SIG_SETMASK) with an 8-byte empty set.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty,
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
}

/// Moves `stdio` onto fds 0, 1, 2 and closes every other fd except the
/// error pipe (which is close-on-exec).
fn install_stdio(stdio: &Stdio, errfd: RawFd) -> Result<(), ContainerError> {
    let sources = [
        stdio.stdin.as_raw_fd(),
        stdio.stdout.as_raw_fd(),
        stdio.stderr.as_raw_fd(),
    ];
    let mut high = [0; 3];
    for (i, fd) in sources.into_iter().enumerate() {
        // SAFETY: duplicating an open fd to a number >= 3, so no source is
        // overwritten by the dup2 calls below.
        high[i] = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        sys::check(high[i], || "duplicate stdio fd".to_string())?;
    }
    for (target, fd) in high.into_iter().enumerate() {
        // SAFETY: dup2 onto 0/1/2; the copy is not close-on-exec.
        let r = unsafe { libc::dup2(fd, target as RawFd) };
        sys::check(r, || format!("dup2 onto fd {target}"))?;
    }
    close_fds_from(3, errfd);
    Ok(())
}

/// Closes every fd >= `first` except `keep`.
fn close_fds_from(first: u32, keep: RawFd) {
    let keep = keep as u32;
    let ranges = [(first, keep.saturating_sub(1)), (keep + 1, u32::MAX)];
    for (lo, hi) in ranges {
        if lo > hi {
            continue;
        }
        // SAFETY: close_range only closes fds of this process.
        let r = unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0u32) };
        if r == 0 {
            continue;
        }
        // Kernels before 5.9: close one by one up to the fd limit.
        // SAFETY: sysconf has no preconditions.
        let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.clamp(1024, 1 << 20) as u32;
        for fd in lo..=hi.min(max) {
            // SAFETY: closing an fd number of this process; EBADF is fine.
            unsafe { libc::close(fd as RawFd) };
        }
    }
}

fn chdir(dir: &str) -> Result<(), ContainerError> {
    let c = sys::cstr_of("workingDir", dir)?;
    // SAFETY: chdir to a NUL-terminated path.
    let r = unsafe { libc::chdir(c.as_ptr()) };
    sys::check(r, || format!("chdir to working directory {dir:?}")).map(|_| ())
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
        // SAFETY: an all-zero stat is a valid out-buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: stat of a NUL-terminated path into `st`.
        if unsafe { libc::stat(candidate.as_ptr(), &mut st) } != 0 {
            continue;
        }
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
    // SAFETY: umask has no preconditions; containers start with 022.
    unsafe { libc::umask(0o022) };
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
