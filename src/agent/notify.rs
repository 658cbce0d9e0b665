//! sd_notify(3), by hand: one datagram per message to `$NOTIFY_SOCKET` (a
//! path, or an abstract socket name written with a leading `@`).
//!
//! The agent holds a [`Notify`], read from the environment at start; what
//! it sends (systemd/picolet.service is `Type=notify`):
//! - `READY=1` once, after the first reconcile ([`Notify::ready`]);
//! - `STATUS=<n> pods running` when the count changes ([`Notify::pods_running`]), at
//!   most once per [`STATUS_INTERVAL`]; a change inside the interval is sent
//!   when it ends, by a one-shot reactor task;
//! - `WATCHDOG=1` every half of `$WATCHDOG_USEC` from a reactor task started
//!   by [`Notify::ready`], when `$WATCHDOG_PID` is unset or is this process. The task
//!   runs on the agent's one thread, so a main loop that hangs stops the
//!   pings and systemd restarts the agent.
//!
//! fds: one unbound, non-blocking `AF_UNIX` datagram socket, opened at the
//! first message and kept. Without `$NOTIFY_SOCKET` nothing is opened and
//! every call is a no-op. A send that fails (no listener, full buffer) is
//! logged at debug level and dropped: notifications never block the agent.

use crate::reactor;
use std::cell::RefCell;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The shortest time between two `STATUS=` messages.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Errors setting up notifications.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET {addr:?}: {source}")]
    Socket { addr: String, source: io::Error },
    #[error("WATCHDOG_USEC {value:?} is not a number of microseconds")]
    WatchdogUsec { value: String },
}

/// Decides which `STATUS=` text to send when (pure; time is an argument:
/// the caller reads the clock).
#[derive(Debug, Default, Clone)]
pub struct StatusLimiter {
    sent: Option<String>,
    sent_at: Option<Instant>,
    pending: Option<String>,
}

impl StatusLimiter {
    /// Records the wanted status; returns it if it should be sent now.
    #[must_use = "the status returned is to be sent now"]
    pub fn set(&mut self, text: String, now: Instant) -> Option<String> {
        if self.sent.as_deref() == Some(text.as_str()) {
            self.pending = None;
            return None;
        }
        let free = self
            .sent_at
            .is_none_or(|t| now.saturating_duration_since(t) >= STATUS_INTERVAL);
        if free {
            self.pending = None;
            self.mark_sent(text.clone(), now);
            Some(text)
        } else {
            self.pending = Some(text);
            None
        }
    }

    /// The deferred status, if its time has come.
    #[must_use = "the status returned is to be sent now"]
    pub fn due(&mut self, now: Instant) -> Option<String> {
        let at = self.next_due()?;
        if now < at {
            return None;
        }
        let text = self.pending.take()?;
        self.mark_sent(text.clone(), now);
        Some(text)
    }

    /// When the deferred status may be sent. (A status is deferred only
    /// after one was sent: [`set`](Self::set) sends the first at once.)
    #[must_use]
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.as_ref()?;
        Some(self.sent_at? + STATUS_INTERVAL)
    }

    /// The status most recently wanted.
    pub fn current(&self) -> Option<&str> {
        self.pending.as_deref().or(self.sent.as_deref())
    }

    fn mark_sent(&mut self, text: String, now: Instant) {
        self.sent = Some(text);
        self.sent_at = Some(now);
    }
}

/// A connection to systemd's notification socket.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
    watchdog: Option<Duration>,
    ready_sent: bool,
    flush_armed: bool,
    status: StatusLimiter,
}

/// `$NOTIFY_SOCKET` → socket address (`@name` is abstract).
pub fn socket_addr(spec: &str) -> io::Result<SocketAddr> {
    match spec.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(spec),
    }
}

impl Notifier {
    /// A notifier for socket `spec`; `watchdog_usec` is `$WATCHDOG_USEC`
    /// (the pings go at half of it).
    pub fn new(spec: &str, watchdog_usec: Option<u64>) -> Result<Notifier, NotifyError> {
        let err = |source| NotifyError::Socket {
            addr: spec.to_string(),
            source,
        };
        let addr = socket_addr(spec).map_err(err)?;
        let sock = UnixDatagram::unbound().map_err(err)?;
        sock.set_nonblocking(true).map_err(err)?;
        Ok(Notifier {
            sock,
            addr,
            watchdog: watchdog_usec
                .filter(|u| *u > 0)
                .map(|u| Duration::from_micros(u / 2)),
            ready_sent: false,
            flush_armed: false,
            status: StatusLimiter::default(),
        })
    }

    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`; `None`
    /// when not started by systemd with `Type=notify`.
    pub fn from_env() -> Result<Option<Notifier>, NotifyError> {
        let Some(spec) = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty())
        else {
            return Ok(None);
        };
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .is_none_or(|p| p.trim() == std::process::id().to_string());
        let usec = match std::env::var("WATCHDOG_USEC") {
            Ok(v) if for_us => Some(
                v.trim()
                    .parse()
                    .map_err(|_| NotifyError::WatchdogUsec { value: v.clone() })?,
            ),
            _ => None,
        };
        Notifier::new(&spec, usec).map(Some)
    }

    /// Sends one datagram: newline-separated `KEY=value` lines.
    pub fn send(&self, msg: &str) -> io::Result<()> {
        self.sock
            .send_to_addr(msg.as_bytes(), &self.addr)
            .map(|_| ())
    }

    /// How often to send `WATCHDOG=1` (half of `$WATCHDOG_USEC`).
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    fn send_logged(&self, msg: &str) {
        if let Err(e) = self.send(msg) {
            log::debug!("sd_notify {msg:?}: {e}");
        }
    }
}

type Shared = Rc<RefCell<Notifier>>;

/// The notifier's event source in the agent: the notifier shared with its
/// watchdog and status tasks, or nothing without `$NOTIFY_SOCKET`.
#[derive(Debug, Default)]
pub struct Notify {
    notifier: Option<Shared>,
}

impl Notify {
    /// From the environment ([`Notifier::from_env`]); a bad setting is
    /// logged and disables notifications (the agent runs on).
    pub fn from_env() -> Notify {
        let notifier = match Notifier::from_env() {
            Ok(n) => n.map(|n| Rc::new(RefCell::new(n))),
            Err(e) => {
                log::warn!("sd_notify disabled: {e}");
                None
            }
        };
        Notify { notifier }
    }

    /// Sends `READY=1` (once) with the current status, and starts the
    /// watchdog task. Call on the reactor, after the first reconcile.
    pub fn ready(&self) {
        if let Some(n) = &self.notifier {
            ready_on(n);
        }
    }

    /// Updates `STATUS=` to `<n> pods running` (sent on change,
    /// rate-limited). Call on the reactor.
    pub fn pods_running(&self, n: usize) {
        if let Some(notifier) = &self.notifier {
            status_on(notifier, format!("{n} pods running"), Instant::now());
        }
    }
}

/// [`Notify::ready`] for a given notifier.
fn ready_on(n: &Shared) {
    let interval = {
        let mut me = n.borrow_mut();
        if me.ready_sent {
            return;
        }
        me.ready_sent = true;
        let mut msg = String::from("READY=1");
        if let Some(s) = me.status.current() {
            msg.push_str("\nSTATUS=");
            msg.push_str(s);
        }
        me.send_logged(&msg);
        me.watchdog
    };
    if let Some(every) = interval {
        log::info!("systemd watchdog: WATCHDOG=1 every {every:?}");
        reactor::spawn(watchdog_task(n.clone(), every)).detach();
    }
}

/// Sends `WATCHDOG=1` every `every`, forever.
async fn watchdog_task(n: Shared, every: Duration) {
    loop {
        reactor::sleep(every).await;
        n.borrow().send_logged("WATCHDOG=1");
    }
}

/// [`Notify::pods_running`] for a given notifier and time.
fn status_on(n: &Shared, text: String, now: Instant) {
    let mut me = n.borrow_mut();
    if let Some(text) = me.status.set(text, now) {
        me.send_logged(&format!("STATUS={text}"));
        return;
    }
    let Some(at) = me.status.next_due() else {
        return;
    };
    if me.flush_armed {
        return;
    }
    me.flush_armed = true;
    let n = n.clone();
    reactor::spawn(async move {
        reactor::sleep_until(at).await;
        let mut me = n.borrow_mut();
        me.flush_armed = false;
        if let Some(text) = me.status.due(Instant::now()) {
            me.send_logged(&format!("STATUS={text}"));
        }
    })
    .detach();
}

#[cfg(test)]
mod tests {
    use super::{Notifier, STATUS_INTERVAL, StatusLimiter, ready_on, status_on};
    use crate::reactor;
    use std::cell::RefCell;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    /// A bound listener standing in for systemd, and its `$NOTIFY_SOCKET`.
    fn listener() -> (tempfile::TempDir, UnixDatagram, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (dir, sock, path.to_string_lossy().into_owned())
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn pending(sock: &UnixDatagram) -> Vec<String> {
        sock.set_nonblocking(true).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(n) = sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        sock.set_nonblocking(false).unwrap();
        out
    }

    #[test]
    fn one_datagram_reaches_a_path_socket() {
        let (_d, sock, spec) = listener();
        let n = Notifier::new(&spec, None).unwrap();
        n.send("READY=1\nSTATUS=starting").unwrap();
        assert_eq!(recv(&sock), "READY=1\nSTATUS=starting");
        assert_eq!(n.watchdog_interval(), None);
    }

    #[test]
    fn an_at_sign_names_an_abstract_socket() {
        let name = format!("picolet-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier::new(&format!("@{name}"), None).unwrap();
        n.send("WATCHDOG=1").unwrap();
        assert_eq!(recv(&sock), "WATCHDOG=1");
    }

    #[test]
    fn a_missing_listener_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("nobody.sock");
        let n = Notifier::new(&spec.to_string_lossy(), None).unwrap();
        assert!(n.send("READY=1").is_err());
    }

    #[test]
    fn watchdog_interval_is_half_of_watchdog_usec() {
        let (_d, _sock, spec) = listener();
        let n = Notifier::new(&spec, Some(30_000_000)).unwrap();
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(15)));
        let n = Notifier::new(&spec, Some(0)).unwrap();
        assert_eq!(n.watchdog_interval(), None);
    }

    #[test]
    fn status_is_sent_on_change_at_most_once_per_interval() {
        let t0 = Instant::now();
        let mut l = StatusLimiter::default();
        assert_eq!(
            l.set("0 pods running".into(), t0),
            Some("0 pods running".into())
        );
        assert_eq!(
            l.set("0 pods running".into(), t0 + STATUS_INTERVAL * 5),
            None
        );
        let t1 = t0 + STATUS_INTERVAL * 5;
        assert_eq!(
            l.set("1 pods running".into(), t1),
            Some("1 pods running".into())
        );
        // Two changes inside the interval: only the latest goes, when it ends.
        let t2 = t1 + Duration::from_millis(100);
        assert_eq!(l.set("2 pods running".into(), t2), None);
        assert_eq!(l.set("3 pods running".into(), t2), None);
        assert_eq!(l.current(), Some("3 pods running"));
        assert_eq!(l.next_due(), Some(t1 + STATUS_INTERVAL));
        assert_eq!(l.due(t2), None);
        assert_eq!(l.due(t1 + STATUS_INTERVAL), Some("3 pods running".into()));
        assert_eq!(l.due(t1 + STATUS_INTERVAL * 3), None);
        assert_eq!(l.next_due(), None);
        // Going back to the sent value cancels a pending change.
        let t3 = t1 + STATUS_INTERVAL + Duration::from_millis(10);
        assert_eq!(l.set("4 pods running".into(), t3), None);
        assert_eq!(l.set("3 pods running".into(), t3), None);
        assert_eq!(l.next_due(), None);
    }

    #[test]
    fn ready_status_and_watchdog_arrive_from_the_reactor() {
        let (_d, sock, spec) = listener();
        // WATCHDOG_USEC = 200 ms: a ping every 100 ms.
        let n = Rc::new(RefCell::new(Notifier::new(&spec, Some(200_000)).unwrap()));
        let t0 = Instant::now();
        status_on(&n, "0 pods running".into(), t0);
        assert_eq!(recv(&sock), "STATUS=0 pods running");
        reactor::block_on(async {
            ready_on(&n);
            ready_on(&n); // once only
            // A change right after the last STATUS is deferred, then flushed.
            status_on(&n, "2 pods running".into(), Instant::now());
            status_on(&n, "3 pods running".into(), Instant::now());
            reactor::sleep(Duration::from_millis(1450)).await;
        });
        let got = pending(&sock);
        assert_eq!(got[0], "READY=1\nSTATUS=0 pods running", "{got:?}");
        assert_eq!(got.iter().filter(|m| m.starts_with("READY")).count(), 1);
        let statuses: Vec<&String> = got.iter().filter(|m| m.starts_with("STATUS")).collect();
        assert_eq!(statuses, ["STATUS=3 pods running"], "{got:?}");
        // 14 pings in 1.45 s when idle; fewer on a loaded machine, since
        // each sleep starts after the previous ping.
        let pings = got.iter().filter(|m| *m == "WATCHDOG=1").count();
        assert!(
            (5..=15).contains(&pings),
            "{pings} pings in 1.45 s: {got:?}"
        );
        // The STATUS waited for the interval: pings went out before it.
        let at = got.iter().position(|m| m.starts_with("STATUS")).unwrap();
        assert!(at >= 5, "STATUS sent too early: {got:?}");
        assert!(t0.elapsed() >= STATUS_INTERVAL);
    }
}
