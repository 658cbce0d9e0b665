//! Terminals for `picolet exec -it`: a pty pair, window sizes, raw mode,
//! and the controlling terminal of an exec'd command. All over `rustix`'s
//! safe wrappers (no `unsafe` here).

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::{self, OptionalActions, Termios, Winsize};

use super::error::{Op, Result};

/// A new pty pair `(master, slave)`, both close-on-exec and neither the
/// caller's controlling terminal (`O_NOCTTY`).
pub fn openpty() -> Result<(OwnedFd, OwnedFd)> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .op("open /dev/ptmx")?;
    rustix::pty::grantpt(&master).op("grantpt")?;
    rustix::pty::unlockpt(&master).op("unlockpt")?;
    let name = rustix::pty::ptsname(&master, Vec::new()).op("ptsname")?;
    let flags = OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC;
    let slave = rustix::fs::open(name.as_c_str(), flags, Mode::empty()).op("open pty slave")?;
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
/// `size`, whose master goes to the peer of `socket` (`SCM_RIGHTS`).
/// Returns the slave.
pub fn console(socket: impl AsFd, size: (u16, u16)) -> Result<OwnedFd> {
    let (master, slave) = openpty()?;
    set_winsize(&master, size)?;
    let sent = super::net::send_with_fds(socket.as_fd(), b"m", &[master.as_fd()]);
    sent.map_err(|e| {
        super::Error::new(
            "send the pty master",
            super::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        )
    })?;
    Ok(slave)
}

/// A terminal put in raw mode; its modes come back on drop.
#[derive(Debug)]
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Raw mode (as `cfmakeraw`) on `fd`, until the guard drops.
    pub fn new(fd: impl AsFd) -> Result<RawMode> {
        let fd = fd.as_fd().try_clone_to_owned().map_err(|e| {
            super::Error::new("dup", super::Errno::from_raw(e.raw_os_error().unwrap_or(0)))
        })?;
        let saved = termios::tcgetattr(&fd).op("tcgetattr")?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(&fd, OptionalActions::Flush, &raw).op("tcsetattr")?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(&self.fd, OptionalActions::Now, &self.saved);
    }
}

/// In a freshly forked child: a new session whose controlling terminal is
/// `fd` (`setsid` + `TIOCSCTTY`), so that the terminal's Ctrl-C and hang-up
/// reach the session's foreground process group.
pub fn become_session_leader_of(fd: impl AsFd) -> Result<()> {
    rustix::process::setsid().op("setsid")?;
    rustix::process::ioctl_tiocsctty(fd).op("ioctl(TIOCSCTTY)")
}
