//! The syscalls the reactor needs beyond `std`: `O_NONBLOCK`, socket
//! creation, non-blocking `connect` and `SO_ERROR`.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Sets `O_NONBLOCK` on the open file description of `fd`.
///
/// Note that the flag belongs to the file description, so it is shared with
/// every process that holds a duplicate of it (e.g. an inherited stdio pipe).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL on a valid borrowed fd has no memory effects.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK != 0 {
        return Ok(());
    }
    // SAFETY: F_SETFL on a valid borrowed fd has no memory effects.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A new non-blocking, close-on-exec `SOCK_STREAM` socket of `domain`.
pub(crate) fn stream_socket(domain: libc::c_int) -> io::Result<OwnedFd> {
    let ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket(2) has no memory effects; the result is checked.
    let fd = unsafe { libc::socket(domain, ty, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A new non-blocking TCP socket of the address family of `addr`.
pub(crate) fn tcp_socket(addr: &SocketAddr) -> io::Result<OwnedFd> {
    stream_socket(match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    })
}

/// Outcome of starting a non-blocking `connect(2)`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Connect {
    /// Connected already.
    Done,
    /// `EINPROGRESS`: wait for writability, then read `SO_ERROR`.
    InProgress,
    /// `EAGAIN` (Unix sockets: the listener's backlog is full): try again.
    Again,
}

fn connect_raw(
    fd: BorrowedFd<'_>,
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
) -> io::Result<Connect> {
    // SAFETY: the callers pass a pointer to a live, initialized sockaddr of
    // `len` bytes; connect(2) only reads it.
    let rc = unsafe { libc::connect(fd.as_raw_fd(), addr, len) };
    if rc == 0 {
        return Ok(Connect::Done);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINPROGRESS) => Ok(Connect::InProgress),
        Some(libc::EAGAIN) => Ok(Connect::Again),
        _ => Err(err),
    }
}

/// Starts connecting `fd` (a non-blocking TCP socket) to `addr`.
pub(crate) fn connect_inet(fd: BorrowedFd<'_>, addr: &SocketAddr) -> io::Result<Connect> {
    match addr {
        SocketAddr::V4(a) => {
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            let len = mem::size_of_val(&sa) as libc::socklen_t;
            connect_raw(fd, (&raw const sa).cast(), len)
        }
        SocketAddr::V6(a) => {
            let sa = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            let len = mem::size_of_val(&sa) as libc::socklen_t;
            connect_raw(fd, (&raw const sa).cast(), len)
        }
    }
}

/// Starts connecting `fd` (a non-blocking `AF_UNIX` stream socket) to the
/// socket file at `path`.
pub(crate) fn connect_unix(fd: BorrowedFd<'_>, path: &Path) -> io::Result<Connect> {
    let bytes = path.as_os_str().as_bytes();
    let mut sa = libc::sockaddr_un {
        sun_family: libc::AF_UNIX as libc::sa_family_t,
        sun_path: [0; 108],
    };
    // Keep one NUL at the end: paths must be shorter than `sun_path`.
    if bytes.is_empty() || bytes.len() >= sa.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "unix socket path {} is empty, contains NUL or is longer than {} bytes",
                path.display(),
                sa.sun_path.len() - 1
            ),
        ));
    }
    for (dst, src) in sa.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = mem::size_of_val(&sa) as libc::socklen_t;
    connect_raw(fd, (&raw const sa).cast(), len)
}

/// Reads and clears `SO_ERROR`: the result of a non-blocking connect.
pub(crate) fn take_socket_error(fd: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    let mut err: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are live locals of the sizes getsockopt(2)
    // expects for SO_ERROR.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut err).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
}
