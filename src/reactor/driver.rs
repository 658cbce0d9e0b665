//! The thread-local driver: one [`polling::Poller`], the table of registered
//! fds ([`Source`]) and the timers.
//!
//! Every registration is *oneshot*: when the kernel reports an event for an fd,
//! epoll disables the fd until it is re-armed with `Poller::modify`. A
//! [`Source`] re-arms itself when a future asks for readiness again, and the
//! driver re-arms the other direction after an event if a waker still waits
//! on it.

use crate::vecmap::VecMap;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use polling::{Event, Events, Poller};

/// Index of the read direction in [`Source`]'s state.
pub(crate) const READ: usize = 0;
/// Index of the write direction in [`Source`]'s state.
pub(crate) const WRITE: usize = 1;

thread_local! {
    static REACTOR: RefCell<Option<Rc<Reactor>>> = const { RefCell::new(None) };
}

/// The per-thread reactor state.
pub(crate) struct Reactor {
    poller: Arc<Poller>,
    sources: RefCell<HashMap<usize, Rc<Source>>>,
    next_key: Cell<usize>,
    /// Timers ordered by deadline; the `u64` makes keys unique and keeps
    /// equal deadlines in registration order. A sorted map rather than a
    /// `BinaryHeap` so that a dropped `sleep` (e.g. a `timeout` whose future
    /// finished first) removes its entry at once instead of leaking it until
    /// its deadline.
    timers: RefCell<VecMap<(Instant, u64), Waker>>,
    next_timer: Cell<u64>,
    events: RefCell<Events>,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("sources", &self.sources.borrow().len())
            .field("timers", &self.timers.borrow().len())
            .finish()
    }
}

/// One registered fd. Each direction keeps the wakers of every task that
/// waits on it; an event wakes them all.
#[derive(Debug)]
pub(crate) struct Source {
    raw: RawFd,
    key: usize,
    dirs: RefCell<[Direction; 2]>,
    /// The interest currently armed in the poller, `(read, write)`.
    armed: Cell<(bool, bool)>,
    /// The `since` ticks of the poll-based (`AsyncRead`/`AsyncWrite`)
    /// callers, which have nowhere else to keep them.
    poll_since: Cell<[Option<u64>; 2]>,
}

#[derive(Debug, Default)]
struct Direction {
    /// Incremented on every event for this direction.
    tick: u64,
    /// Wakers of the tasks waiting; a waker of a task that stopped waiting
    /// stays until the next event and costs one spurious wake.
    wakers: Vec<Waker>,
}

impl Reactor {
    /// The reactor of the calling thread, created on first use.
    pub(crate) fn get() -> io::Result<Rc<Reactor>> {
        REACTOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if let Some(r) = slot.as_ref() {
                return Ok(r.clone());
            }
            let r = Rc::new(Reactor {
                poller: Arc::new(Poller::new()?),
                sources: RefCell::new(HashMap::new()),
                next_key: Cell::new(0),
                timers: RefCell::new(VecMap::new()),
                next_timer: Cell::new(0),
                events: RefCell::new(Events::new()),
            });
            *slot = Some(r.clone());
            Ok(r)
        })
    }

    pub(crate) fn poller(&self) -> &Arc<Poller> {
        &self.poller
    }

    /// Registers `fd` with no interest yet.
    ///
    /// The caller must call [`Reactor::remove_source`] before `fd` is closed.
    pub(crate) fn insert_source(&self, fd: BorrowedFd<'_>) -> io::Result<Rc<Source>> {
        let key = self.next_key.get();
        self.next_key.set(key + 1);
        // SAFETY: `polling` requires the fd to be deleted from the poller
        // before it is closed; `Async` (the only caller) calls
        // `remove_source` in `Drop`/`into_inner` before it drops the I/O
        // object that owns the fd.
        unsafe { self.poller.add(fd.as_raw_fd(), Event::none(key))? };
        let source = Rc::new(Source {
            raw: fd.as_raw_fd(),
            key,
            dirs: RefCell::new([Direction::default(), Direction::default()]),
            armed: Cell::new((false, false)),
            poll_since: Cell::new([None, None]),
        });
        self.sources.borrow_mut().insert(key, source.clone());
        Ok(source)
    }

    /// Deregisters a source; `fd` must be the fd it was registered with.
    pub(crate) fn remove_source(&self, source: &Source, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.sources.borrow_mut().remove(&source.key);
        self.poller.delete(fd)
    }

    pub(crate) fn source_count(&self) -> usize {
        self.sources.borrow().len()
    }

    /// Registers a timer and returns its id.
    pub(crate) fn add_timer(&self, deadline: Instant, waker: &Waker) -> u64 {
        let id = self.next_timer.get();
        self.next_timer.set(id + 1);
        self.timers
            .borrow_mut()
            .insert((deadline, id), waker.clone());
        id
    }

    /// Replaces the waker of a registered timer (re-registers it if it has
    /// already fired).
    pub(crate) fn update_timer(&self, deadline: Instant, id: u64, waker: &Waker) {
        let mut timers = self.timers.borrow_mut();
        match timers.get(&(deadline, id)) {
            Some(w) if w.will_wake(waker) => {}
            _ => {
                timers.insert((deadline, id), waker.clone());
            }
        }
    }

    pub(crate) fn remove_timer(&self, deadline: Instant, id: u64) {
        self.timers.borrow_mut().remove(&(deadline, id));
    }

    pub(crate) fn timer_count(&self) -> usize {
        self.timers.borrow().len()
    }

    /// Waits for I/O events (blocking only if `signal` is not woken, and
    /// only until the next timer), then wakes the wakers of ready fds and of
    /// expired timers.
    pub(crate) fn react(&self, signal: &Signal) -> io::Result<()> {
        let mut wakers = Vec::new();
        {
            let mut events = self.events.borrow_mut();
            events.clear();
            signal.parked.store(true, Ordering::SeqCst);
            let deadline = if signal.woken.load(Ordering::SeqCst) {
                Some(Instant::now())
            } else {
                self.timers.borrow().keys().next().map(|k| k.0)
            };
            let res = match deadline {
                Some(d) => self.poller.wait_deadline(&mut events, d),
                None => self.poller.wait(&mut events, None),
            };
            signal.parked.store(false, Ordering::SeqCst);
            res?;

            let sources = self.sources.borrow();
            for ev in events.iter() {
                let Some(source) = sources.get(&ev.key) else {
                    continue;
                };
                source.dispatch(&self.poller, ev.readable, ev.writable, &mut wakers)?;
            }
        }
        let now = Instant::now();
        {
            let mut timers = self.timers.borrow_mut();
            let due = timers.keys().take_while(|k| k.0 <= now).count();
            wakers.extend(timers.drain_first(due).map(|(_, w)| w));
        }
        for w in wakers {
            w.wake();
        }
        Ok(())
    }
}

impl Source {
    fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: a `Source` lives in the reactor only while its `Async`
        // owns the fd; `Async` removes it before closing the fd, and no
        // `BorrowedFd` made here outlives the call that made it.
        unsafe { BorrowedFd::borrow_raw(self.raw) }
    }

    /// Arms the poller for the directions that have a waker.
    fn rearm(&self, poller: &Poller) -> io::Result<()> {
        let want = {
            let dirs = self.dirs.borrow();
            (
                !dirs[READ].wakers.is_empty(),
                !dirs[WRITE].wakers.is_empty(),
            )
        };
        if want != self.armed.get() {
            poller.modify(self.fd(), Event::new(self.key, want.0, want.1))?;
            self.armed.set(want);
        }
        Ok(())
    }

    /// Records an event (epoll disabled the fd: oneshot) and collects the
    /// wakers to wake; re-arms a direction that still has a waiter.
    fn dispatch(
        &self,
        poller: &Poller,
        readable: bool,
        writable: bool,
        wakers: &mut Vec<Waker>,
    ) -> io::Result<()> {
        self.armed.set((false, false));
        {
            let mut dirs = self.dirs.borrow_mut();
            for (dir, hit) in [(READ, readable), (WRITE, writable)] {
                if hit {
                    dirs[dir].tick = dirs[dir].tick.wrapping_add(1);
                    wakers.append(&mut dirs[dir].wakers);
                }
            }
        }
        self.rearm(poller)
    }

    /// Ready once an event for `dir` arrived after the `Pending` that set
    /// `*since` (the caller's own state, `None` at first). Readiness is a
    /// hint: the operation may still return `WouldBlock`, and the caller
    /// then asks again.
    pub(crate) fn poll_ready(
        &self,
        reactor: &Reactor,
        dir: usize,
        since: &mut Option<u64>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        {
            let mut dirs = self.dirs.borrow_mut();
            let d = &mut dirs[dir];
            if let Some(s) = *since {
                if d.tick != s {
                    *since = None;
                    return Poll::Ready(Ok(()));
                }
            }
            if !d.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                d.wakers.push(cx.waker().clone());
            }
            if since.is_none() {
                *since = Some(d.tick);
            }
        }
        self.rearm(&reactor.poller)?;
        Poll::Pending
    }

    /// [`Source::poll_ready`] for callers without state of their own (the
    /// `AsyncRead`/`AsyncWrite` impls): one such caller per direction.
    pub(crate) fn poll_ready_shared(
        &self,
        reactor: &Reactor,
        dir: usize,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let mut all = self.poll_since.get();
        let res = self.poll_ready(reactor, dir, &mut all[dir], cx);
        self.poll_since.set(all);
        res
    }
}

/// The waker of `block_on`'s top-level future. `woken` says the future must
/// be polled again; `parked` says the thread is (about to be) blocked in
/// `Poller::wait`, in which case a wake must interrupt it with
/// `Poller::notify`. Wakes from the reactor's own thread happen while it is
/// not parked and cost no syscall.
#[derive(Debug)]
pub(crate) struct Signal {
    pub(crate) woken: AtomicBool,
    pub(crate) parked: AtomicBool,
    poller: Arc<Poller>,
}

impl Signal {
    pub(crate) fn new(poller: Arc<Poller>) -> Signal {
        Signal {
            woken: AtomicBool::new(true),
            parked: AtomicBool::new(false),
            poller,
        }
    }
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::SeqCst) && self.parked.load(Ordering::SeqCst) {
            // A failed notify can only mean the eventfd is gone, i.e. the
            // poller is being dropped: nothing is waiting then.
            let _ = self.poller.notify();
        }
    }
}
