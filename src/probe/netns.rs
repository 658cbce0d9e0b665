//! Network namespaces for probes: [`NetNs`] and [`with_netns`].
//!
//! A socket belongs to the network namespace of the thread that created it,
//! for its whole life. So to open a socket inside a pod's namespace the
//! agent's (only) thread briefly enters it: `setns(pod, CLONE_NEWNET)`,
//! `socket()`, `setns(own, CLONE_NEWNET)`. Nothing else runs in between —
//! the closure is synchronous and the agent has exactly one thread — which is
//! what makes this safe. In a multi-threaded process only the calling thread
//! switches (setns is per-thread), so this is also fine in tests.
//!
//! Files: `/proc/<pid>/ns/net` of the pod's shim (opened by
//! [`NetNs::of_pid`]), and `/proc/thread-self/ns/net`, opened once per thread
//! and kept open to return to the thread's own namespace.

use std::cell::OnceCell;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// An open network namespace (an fd of an `nsfs` file).
#[derive(Debug)]
pub struct NetNs {
    fd: OwnedFd,
}

thread_local! {
    /// The namespace this thread had when it first entered another one.
    static OWN_NS: OnceCell<NetNs> = const { OnceCell::new() };
}

impl NetNs {
    /// The network namespace of process `pid` (`/proc/<pid>/ns/net`).
    /// The caller must make sure `pid` is the process it means (the shim's
    /// PID and start time).
    pub fn of_pid(pid: i32) -> io::Result<NetNs> {
        NetNs::open(format!("/proc/{pid}/ns/net"))
    }

    /// The calling thread's network namespace.
    pub fn current() -> io::Result<NetNs> {
        NetNs::open("/proc/thread-self/ns/net")
    }

    /// A network namespace file, e.g. a bind mount under `/run/netns/`.
    pub fn open(path: impl AsRef<Path>) -> io::Result<NetNs> {
        let path = path.as_ref();
        let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let f = File::open(path).map_err(with_path)?;
        Ok(NetNs::from_fd(f.into()))
    }

    /// Wraps an fd that refers to a network namespace.
    pub fn from_fd(fd: OwnedFd) -> NetNs {
        NetNs { fd }
    }

    /// `(device, inode)` of the namespace: equal for the same namespace.
    pub fn id(&self) -> io::Result<(u64, u64)> {
        let m = File::from(self.fd.try_clone()?).metadata()?;
        Ok((m.dev(), m.ino()))
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn setns(fd: BorrowedFd<'_>) -> io::Result<()> {
    nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET)?;
    Ok(())
}

/// Returns the thread to its own namespace when dropped (also on panic).
struct Restore<'a>(BorrowedFd<'a>);

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        if let Err(e) = setns(self.0) {
            // Going on in a pod's namespace would send the agent's own
            // traffic (MQTT, registry) through the pod: stop instead.
            eprintln!("picolet: cannot return to the agent's network namespace: {e}");
            std::process::abort();
        }
    }
}

/// Runs `f` with the calling thread inside `ns`, then returns to the
/// thread's own namespace. `f` must be short and must not block: it is
/// meant to create sockets (which stay in `ns`).
///
/// Fails if `ns` cannot be entered (then `f` does not run). Aborts the
/// process if the thread cannot return to its own namespace.
pub fn with_netns<R>(ns: &NetNs, f: impl FnOnce() -> R) -> io::Result<R> {
    OWN_NS.with(|own| {
        let own = match own.get() {
            Some(own) => own,
            None => {
                let current = NetNs::current()?;
                own.get_or_init(|| current)
            }
        };
        setns(ns.as_fd())?;
        let _restore = Restore(own.as_fd());
        Ok(f())
    })
}
