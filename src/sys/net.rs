//! Sockets: non-blocking stream sockets, non-blocking `connect`, fd
//! passing over Unix sockets (`SCM_RIGHTS`),
//! `SO_ERROR`, and bringing an interface up.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, SockaddrLike, UnixAddr,
};

use super::error::{Errno, Error, Op, Result};

/// A new non-blocking, close-on-exec `SOCK_STREAM` socket of `domain`.
pub fn stream_socket(domain: AddressFamily) -> Result<OwnedFd> {
    nix::sys::socket::socket(
        domain,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .op("socket")
}

/// Outcome of starting a non-blocking `connect(2)`.
#[derive(Debug, PartialEq, Eq)]
pub enum Connect {
    /// Connected already.
    Done,
    /// `EINPROGRESS`: wait for writability, then read `SO_ERROR`.
    InProgress,
    /// `EAGAIN` (Unix sockets: the listener's backlog is full): try again.
    Again,
}

fn connect(fd: BorrowedFd<'_>, addr: &dyn SockaddrLike) -> Result<Connect> {
    match nix::sys::socket::connect(fd.as_raw_fd(), addr) {
        Ok(()) => Ok(Connect::Done),
        Err(Errno::EINPROGRESS) => Ok(Connect::InProgress),
        Err(Errno::EAGAIN) => Ok(Connect::Again),
        Err(e) => Err(Error::new("connect", e)),
    }
}

/// Starts connecting `fd` (a non-blocking TCP socket) to `addr`.
pub fn connect_inet(fd: BorrowedFd<'_>, addr: &SocketAddr) -> Result<Connect> {
    match addr {
        SocketAddr::V4(a) => connect(fd, &SockaddrIn::from(*a)),
        SocketAddr::V6(a) => connect(fd, &SockaddrIn6::from(*a)),
    }
}

/// Starts connecting `fd` (a non-blocking `AF_UNIX` stream socket) to the
/// socket file at `path`.
pub fn connect_unix(fd: BorrowedFd<'_>, path: &Path) -> Result<Connect> {
    let addr = UnixAddr::new(path).op("unix socket path")?;
    connect(fd, &addr)
}

/// Reads and clears `SO_ERROR`: the result of a non-blocking connect.
pub fn take_socket_error(fd: BorrowedFd<'_>) -> Result<Option<Errno>> {
    let err = nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::SocketError)
        .op("getsockopt(SO_ERROR)")?;
    Ok((err != 0).then(|| Errno::from_raw(err)))
}

/// Writes all of `buf` to the connected stream socket `fd` with
/// `MSG_NOSIGNAL`: a peer that has gone away is an `EPIPE` error, never a
/// `SIGPIPE` (the local commands run with `SIGPIPE`'s default action, see
/// [`super::signal::default_sigpipe`]).
pub fn send_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> std::io::Result<()> {
    use nix::sys::socket::MsgFlags;
    while !buf.is_empty() {
        match nix::sys::socket::send(fd.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(std::io::Error::from_raw_os_error(e as i32)),
        }
    }
    Ok(())
}

/// Sets `IFF_UP` on the interface `name` of the current network namespace
/// (`SIOCGIFFLAGS`, then `SIOCSIFFLAGS`).
pub fn interface_up(name: &str) -> Result<()> {
    let sock = nix::sys::socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .op("socket")?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(Error::new("interface name", Errno::EINVAL));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads and writes the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) } < 0 {
        return Err(Error::last("ioctl(SIOCGIFFLAGS)"));
    }
    // SAFETY: after SIOCGIFFLAGS the union holds ifru_flags.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) } < 0 {
        return Err(Error::last("ioctl(SIOCSIFFLAGS)"));
    }
    Ok(())
}

/// Most fds [`recv_with_fds`] takes from one `recvmsg(2)`; more in one
/// message are a protocol error (the kernel closes those that do not fit).
pub const MAX_FDS_PER_MESSAGE: usize = 4;

/// `sendmsg(2)` of `data` on a stream Unix socket with `fds` attached
/// (`SCM_RIGHTS`), `MSG_NOSIGNAL`. The fds travel with the first byte
/// sent: the caller sends the rest of `data` (if the count returned is
/// short) with plain writes. `WouldBlock` on a non-blocking socket means
/// nothing, fds included, was sent.
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<usize> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("at most {MAX_FDS_PER_MESSAGE} fds per message"),
        ));
    }
    let iov = [std::io::IoSlice::new(data)];
    loop {
        match sendmsg(sock, &iov, &mut control, SendFlags::NOSIGNAL) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map_err(std::io::Error::from),
        }
    }
}

/// `recvmsg(2)` into `buf` from a stream Unix socket; fds that came with
/// the bytes (`SCM_RIGHTS`, close-on-exec) are appended to `fds`. Returns
/// the byte count (0 at end of file). More than [`MAX_FDS_PER_MESSAGE`]
/// fds in one message is an `InvalidData` error (those received are
/// closed, as are those the kernel could not fit).
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> std::io::Result<usize> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, recvmsg};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Err(rustix::io::Errno::INTR) => continue,
            r => break r.map_err(std::io::Error::from)?,
        }
    };
    let mut got = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            got.extend(rights);
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) || got.len() > MAX_FDS_PER_MESSAGE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("more than {MAX_FDS_PER_MESSAGE} fds in one message"),
        ));
    }
    fds.extend(got);
    Ok(msg.bytes)
}

/// Netlink protocols picolet speaks (see `crate::net`).
#[derive(Debug, Clone, Copy)]
pub enum Netlink {
    /// `NETLINK_ROUTE`: links, addresses, routes.
    Route,
    /// `NETLINK_NETFILTER`: nftables batches.
    Netfilter,
}

/// A close-on-exec `AF_NETLINK` raw socket of `proto`, in the calling
/// thread's network namespace (where it stays for its whole life).
pub fn netlink_socket(proto: Netlink) -> Result<OwnedFd> {
    use nix::sys::socket::SockProtocol;
    let p = match proto {
        Netlink::Route => SockProtocol::NetlinkRoute,
        Netlink::Netfilter => SockProtocol::NetlinkNetFilter,
    };
    nix::sys::socket::socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        p,
    )
    .op("socket(AF_NETLINK)")
}

/// Sends one datagram of netlink messages to the kernel. The kernel
/// handles a request inside this call, so its replies are queued on
/// the socket when it returns.
pub fn netlink_send(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<()> {
    use nix::sys::socket::{MsgFlags, NetlinkAddr, sendto};
    loop {
        match sendto(
            fd.as_raw_fd(),
            buf,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        ) {
            Ok(n) if n == buf.len() => return Ok(()),
            Ok(_) => return Err(Error::new("sendto(netlink): short send", Errno::EMSGSIZE)),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::new("sendto(netlink)", e)),
        }
    }
}

/// Receives one queued datagram without waiting: `Ok(None)` when none is
/// queued (`EAGAIN`). A datagram longer than `buf` is an error.
pub fn netlink_recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Option<usize>> {
    use nix::sys::socket::MsgFlags;
    loop {
        match nix::sys::socket::recv(
            fd.as_raw_fd(),
            buf,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
        ) {
            Ok(n) if n > buf.len() => {
                return Err(Error::new(
                    "recv(netlink): message truncated",
                    Errno::EMSGSIZE,
                ));
            }
            Ok(n) => return Ok(Some(n)),
            Err(Errno::EAGAIN) => return Ok(None),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::new("recv(netlink)", e)),
        }
    }
}

/// The PID of the process at the other end of the connected Unix socket
/// `fd` (`SO_PEERCRED`: the process that bound/connected it), in this
/// process's PID namespace.
pub fn peer_pid(fd: BorrowedFd<'_>) -> Result<i32> {
    nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::PeerCredentials)
        .op("getsockopt(SO_PEERCRED)")
        .map(|c| c.pid())
}
