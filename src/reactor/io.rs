//! [`Async`]: an fd registered with the thread's reactor.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{self as unix, UnixListener, UnixStream};
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};

use super::driver::{READ, Reactor, Source, WRITE};
use super::sys;

/// An I/O object (anything that owns an fd) registered with the calling
/// thread's reactor, with `O_NONBLOCK` set.
///
/// Any number of tasks may wait on it at once (all are woken by an event).
/// The `AsyncRead`/`AsyncWrite` impls keep their wait state in the source,
/// so use them from one reader and one writer task at a time (e.g. `&Async`
/// in two tasks); `readable`/`read_with` and friends have no such limit.
///
/// `Async<T>` is `!Send`: it belongs to the reactor of the thread that made it.
pub struct Async<T: AsFd> {
    reactor: Rc<Reactor>,
    source: Rc<Source>,
    /// `None` only after `into_inner` or during `Drop`.
    io: Option<T>,
}

impl<T: AsFd + fmt::Debug> fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Async").field("io", &self.io).finish()
    }
}

impl<T: AsFd> Async<T> {
    /// Sets `O_NONBLOCK` on `io`'s fd and registers it with the reactor.
    ///
    /// `O_NONBLOCK` is a property of the open file description: it is seen
    /// by every holder of a duplicate of the fd (e.g. an inherited pipe).
    pub fn new(io: T) -> io::Result<Async<T>> {
        sys::set_nonblocking(io.as_fd())?;
        let reactor = Reactor::get()?;
        let source = reactor.insert_source(io.as_fd())?;
        Ok(Async {
            reactor,
            source,
            io: Some(io),
        })
    }

    /// The inner I/O object.
    pub fn get_ref(&self) -> &T {
        self.io.as_ref().expect("Async: I/O object taken")
    }

    /// The inner I/O object, mutably. Do not replace or close its fd.
    pub fn get_mut(&mut self) -> &mut T {
        self.io.as_mut().expect("Async: I/O object taken")
    }

    /// Deregisters the fd and returns the I/O object (still non-blocking).
    pub fn into_inner(mut self) -> io::Result<T> {
        let io = self.io.take().expect("Async: I/O object taken");
        self.reactor.remove_source(&self.source, io.as_fd())?;
        Ok(io)
    }

    /// Waits until the fd is readable (or at least was since the last
    /// wait: readiness is a hint, the read may still return `WouldBlock`).
    pub async fn readable(&self) -> io::Result<()> {
        let mut since = None;
        poll_fn(|cx| self.source.poll_ready(&self.reactor, READ, &mut since, cx)).await
    }

    /// Waits until the fd is writable (a hint, like [`Async::readable`]).
    pub async fn writable(&self) -> io::Result<()> {
        let mut since = None;
        poll_fn(|cx| self.source.poll_ready(&self.reactor, WRITE, &mut since, cx)).await
    }

    /// Runs `op` until it returns something other than `WouldBlock`,
    /// waiting for readability in between.
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        let mut since = None;
        poll_fn(|cx| self.poll_op(READ, Some(&mut since), cx, &mut op)).await
    }

    /// Runs `op` until it returns something other than `WouldBlock`,
    /// waiting for writability in between.
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        let mut since = None;
        poll_fn(|cx| self.poll_op(WRITE, Some(&mut since), cx, &mut op)).await
    }

    /// Runs `op` until it does not return `WouldBlock`. `since` is the
    /// caller's wait state, or `None` for the source's shared one.
    fn poll_op<R>(
        &self,
        dir: usize,
        mut since: Option<&mut Option<u64>>,
        cx: &mut Context<'_>,
        op: &mut impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                res => return Poll::Ready(res),
            }
            let ready = match since.as_deref_mut() {
                Some(since) => self.source.poll_ready(&self.reactor, dir, since, cx),
                None => self.source.poll_ready_shared(&self.reactor, dir, cx),
            };
            match ready {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T: AsFd> AsFd for Async<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<T: AsFd> Drop for Async<T> {
    fn drop(&mut self) {
        if let Some(io) = self.io.take() {
            // Deleting can only fail if the fd was closed behind our back;
            // there is nothing left to undo then.
            let _ = self.reactor.remove_source(&self.source, io.as_fd());
        }
    }
}

impl<T: AsFd> Async<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read_inner(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_op(READ, None, cx, &mut |mut io: &T| io.read(buf))
    }
}

impl<T: AsFd> Async<T>
where
    for<'a> &'a T: Write,
{
    fn poll_write_inner(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_op(WRITE, None, cx, &mut |mut io: &T| io.write(buf))
    }

    fn poll_flush_inner(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_op(WRITE, None, cx, &mut |mut io: &T| io.flush())
    }
}

/// `AsyncRead` and `AsyncWrite` for `Async<T>` and for `&Async<T>` alike:
/// both forward to the `poll_*_inner` methods above.
macro_rules! async_read_write {
    ($($ty:ty),*) => {$(
        impl<T: AsFd> AsyncRead for $ty
        where
            for<'a> &'a T: Read,
        {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.poll_read_inner(cx, buf)
            }
        }

        impl<T: AsFd> AsyncWrite for $ty
        where
            for<'a> &'a T: Write,
        {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.poll_write_inner(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.poll_flush_inner(cx)
            }

            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.poll_flush_inner(cx)
            }
        }
    )*};
}

async_read_write!(Async<T>, &Async<T>);

impl Async<TcpStream> {
    /// Connects to `addr` without blocking: starts the connect, waits for
    /// writability and checks `SO_ERROR`.
    pub async fn connect(addr: SocketAddr) -> io::Result<Async<TcpStream>> {
        Async::connect_socket(sys::tcp_socket(&addr)?, addr).await
    }

    /// Connects an existing, unconnected TCP socket to `addr`. For sockets
    /// made elsewhere, e.g. inside another network namespace (see
    /// [`new_tcp_socket`]): a socket keeps the namespace it was created in.
    pub async fn connect_socket(socket: OwnedFd, addr: SocketAddr) -> io::Result<Async<TcpStream>> {
        let stream = Async::new(TcpStream::from(socket))?;
        if sys::connect_inet(stream.as_fd(), &addr)? == sys::Connect::Done {
            return Ok(stream);
        }
        loop {
            stream.writable().await?;
            if let Some(err) = sys::take_socket_error(stream.as_fd())? {
                return Err(err);
            }
            match stream.get_ref().peer_addr() {
                Ok(_) => return Ok(stream),
                // Woken before the handshake finished: wait again.
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// A new unconnected, non-blocking, close-on-exec TCP socket of `addr`'s
/// address family, in the calling thread's network namespace. Pass it to
/// [`Async::<TcpStream>::connect_socket`].
pub fn new_tcp_socket(addr: &SocketAddr) -> io::Result<OwnedFd> {
    sys::tcp_socket(addr)
}

impl Async<UnixStream> {
    /// Connects to the Unix stream socket at `path` without blocking. A full
    /// listen backlog (`EAGAIN`) is retried every 5 ms, up to 1 s.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<Async<UnixStream>> {
        let path = path.as_ref();
        let mut again = 0;
        loop {
            let stream = Async::new(UnixStream::from(sys::stream_socket(
                nix::sys::socket::AddressFamily::Unix,
            )?))?;
            match sys::connect_unix(stream.as_fd(), path)? {
                sys::Connect::Done => return Ok(stream),
                sys::Connect::InProgress => {
                    stream.writable().await?;
                    return match sys::take_socket_error(stream.as_fd())? {
                        Some(err) => Err(err),
                        None => Ok(stream),
                    };
                }
                sys::Connect::Again if again < 200 => {
                    again += 1;
                    super::sleep(Duration::from_millis(5)).await;
                }
                sys::Connect::Again => {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!("connect {}: listen backlog stayed full", path.display()),
                    ));
                }
            }
        }
    }
}

impl Async<TcpListener> {
    /// Binds a TCP listener (std defaults: `SO_REUSEADDR`, backlog 128).
    pub fn bind(addr: SocketAddr) -> io::Result<Async<TcpListener>> {
        Async::new(TcpListener::bind(addr)?)
    }

    /// Accepts one connection.
    pub async fn accept(&self) -> io::Result<(Async<TcpStream>, SocketAddr)> {
        let (stream, addr) = self.read_with(|l| l.accept()).await?;
        Ok((Async::new(stream)?, addr))
    }
}

impl Async<UnixListener> {
    /// Binds a Unix stream listener at `path` (which must not exist).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<Async<UnixListener>> {
        Async::new(UnixListener::bind(path)?)
    }

    /// Accepts one connection.
    pub async fn accept(&self) -> io::Result<(Async<UnixStream>, unix::SocketAddr)> {
        let (stream, addr) = self.read_with(|l| l.accept()).await?;
        Ok((Async::new(stream)?, addr))
    }
}
