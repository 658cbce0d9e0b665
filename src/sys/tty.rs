//! Terminals for `picolet exec -it`: a pty pair, window sizes, raw mode,
//! and the controlling terminal of an exec'd command. All over `rustix`'s
//! safe wrappers (no `unsafe` here).

use std::os::fd::{AsFd, OwnedFd};

use rustix::pty::OpenptFlags;
use rustix::termios::{self, OptionalActions, Termios, Winsize};

use super::error::{Op, Result};

/// A new pty pair `(master, slave)` from this mount namespace's
/// `/dev/ptmx`, both close-on-exec and neither the caller's controlling
/// terminal (`O_NOCTTY`). The slave comes from the master itself
/// (`TIOCGPTPEER`, Linux 4.13), not from a path.
pub fn openpty() -> Result<(OwnedFd, OwnedFd)> {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = rustix::pty::openpt(flags).op("open /dev/ptmx")?;
    rustix::pty::unlockpt(&master).op("unlockpt")?;
    let slave = rustix::pty::ioctl_tiocgptpeer(&master, flags).op("ioctl(TIOCGPTPEER)")?;
    Ok((master, slave))
}

/// The window size `(rows, columns)` of terminal `fd`.
pub fn winsize(fd: impl AsFd) -> Result<(u16, u16)> {
    let ws = termios::tcgetwinsize(fd).op("ioctl(TIOCGWINSZ)")?;
    Ok((ws.ws_row, ws.ws_col))
}

/// Sets the window size of terminal `fd` (a pty master: the slave's
/// foreground process group gets `SIGWINCH`).
pub fn set_winsize(fd: impl AsFd, (rows, cols): (u16, u16)) -> Result<()> {
    let ws = Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    termios::tcsetwinsize(fd, ws).op("ioctl(TIOCSWINSZ)")
}

/// runc's console socket, on the command's side (in the container's mount
/// namespace): a pty pair of the container's own devpts (`/dev/ptmx`), of
/// the size waiting on `socket` (rows, columns: 2 × u16 little-endian, the
/// peer wrote them before passing it; read without waiting), whose master
/// goes to the peer (`SCM_RIGHTS`). Returns the slave.
pub fn console(socket: impl AsFd) -> Result<OwnedFd> {
    let (master, slave) = openpty()?;
    let mut b = [0u8; 4];
    let got = rustix::net::recv(&socket, &mut b, rustix::net::RecvFlags::DONTWAIT);
    if let Ok((4, _)) = got {
        let rows = u16::from_le_bytes([b[0], b[1]]);
        set_winsize(&master, (rows, u16::from_le_bytes([b[2], b[3]])))?;
    }
    // Never wait on the peer: the shim waits for this process to exec.
    super::fd::set_nonblocking(socket.as_fd())?;
    let sent = super::net::send_with_fds(socket.as_fd(), b"m", &[master.as_fd()]);
    sent.map_err(|e| {
        super::Error::new(
            "send the pty master",
            super::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        )
    })?;
    Ok(slave)
}

/// Our stdin, a terminal, put in raw mode; its modes come back on drop.
#[derive(Debug)]
pub struct RawStdin(Termios);

impl RawStdin {
    /// Raw mode (as `cfmakeraw`) on stdin, until the guard drops.
    pub fn new() -> Result<RawStdin> {
        let saved = termios::tcgetattr(std::io::stdin()).op("tcgetattr")?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &raw).op("tcsetattr")?;
        Ok(RawStdin(saved))
    }
}

impl Drop for RawStdin {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &self.0);
    }
}

/// In a freshly forked child: a new session whose controlling terminal is
/// `fd` (`setsid` + `TIOCSCTTY`), so that the terminal's Ctrl-C and hang-up
/// reach the session's foreground process group.
pub fn become_session_leader_of(fd: impl AsFd) -> Result<()> {
    rustix::process::setsid().op("setsid")?;
    rustix::process::ioctl_tiocsctty(fd).op("ioctl(TIOCSCTTY)")
}
