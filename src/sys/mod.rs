//! The system-call seam: every raw system call of picolet goes through
//! here, over `nix` (and `rustix`, already in the tree through `polling`,
//! for `pidfd_open`, xattrs and random bytes), with `caps` for
//! capabilities. Every `unsafe` block of the crate outside the post-clone
//! child path lives here with its `// SAFETY:` argument; callers see
//! `OwnedFd`/`BorrowedFd` and one error type, [`Error`], that names the
//! operation and the errno. `scripts/count-unsafe.sh` counts them.
//!
//! - [`fd`]: pipes, `O_NONBLOCK`, pidfds, `poll`.
//! - [`process`]: fork, the raw clone, `_exit`, waits, kill, ids, limits,
//!   the [`process::ChildGuard`] that kills and reaps on drop.
//! - [`signal`]: signalfd, masks, handlers, the post-clone reset.
//! - [`net`]: non-blocking sockets and connect, `SIOCSIFFLAGS`, fd passing
//!   (`SCM_RIGHTS`) for `picolet exec`'s stdio, `SO_PEERCRED`, and the
//!   netlink sockets of the pod network ([`crate::net`]).
//! - [`fs`]: private directories, xattrs, times, `statvfs`, `flock`, inotify.
//! - [`bpf`]: the eBPF device-cgroup program.
//! - [`seccomp`]: installing a container's seccomp filter.
//! - [`tty`]: pty pairs, window sizes, raw mode, the controlling terminal.
//! - [`time`]: the clock's NTP sync state (`adjtimex`), the time zone database.

pub mod bpf;
pub mod error;
pub mod fd;
pub mod fs;
pub mod net;
pub mod process;
pub mod seccomp;
pub mod signal;
pub mod time;
pub mod tty;

pub use error::{Errno, Error, Op, Result};
