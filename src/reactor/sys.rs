//! The syscalls the reactor needs beyond `std`, from [`crate::sys`]:
//! `O_NONBLOCK`, socket creation, non-blocking `connect` and `SO_ERROR`,
//! as `io::Result`s (the errno survives in `raw_os_error`).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

pub(crate) use crate::sys::net::Connect;
use nix::sys::socket::AddressFamily;

/// Sets `O_NONBLOCK` on the open file description of `fd` (shared with
/// every process that holds a duplicate of it).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(crate::sys::fd::set_nonblocking(fd)?)
}

/// A new non-blocking, close-on-exec `SOCK_STREAM` socket of `domain`.
pub(crate) fn stream_socket(domain: AddressFamily) -> io::Result<OwnedFd> {
    Ok(crate::sys::net::stream_socket(domain)?)
}

/// A new non-blocking TCP socket of the address family of `addr`.
pub(crate) fn tcp_socket(addr: &SocketAddr) -> io::Result<OwnedFd> {
    stream_socket(match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    })
}

/// Starts connecting `fd` (a non-blocking TCP socket) to `addr`.
pub(crate) fn connect_inet(fd: BorrowedFd<'_>, addr: &SocketAddr) -> io::Result<Connect> {
    Ok(crate::sys::net::connect_inet(fd, addr)?)
}

/// Starts connecting `fd` (a non-blocking `AF_UNIX` stream socket) to the
/// socket file at `path`.
pub(crate) fn connect_unix(fd: BorrowedFd<'_>, path: &Path) -> io::Result<Connect> {
    const MAX: usize = 107;
    let len = path.as_os_str().len();
    if len == 0 || len > MAX || path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "unix socket path {} is empty, contains NUL or is longer than {MAX} bytes",
                path.display(),
            ),
        ));
    }
    Ok(crate::sys::net::connect_unix(fd, path)?)
}

/// Reads and clears `SO_ERROR`: the result of a non-blocking connect.
pub(crate) fn take_socket_error(fd: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    Ok(crate::sys::net::take_socket_error(fd)?.map(|e| io::Error::from_raw_os_error(e as i32)))
}
