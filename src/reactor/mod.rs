//! The agent's single-threaded reactor (DESIGN §2).
//!
//! Owns, per OS thread that uses it (the agent uses exactly one):
//! - one [`polling::Poller`] (an epoll fd, plus the eventfd and timerfd that
//!   `polling` keeps for `notify` and precise deadlines) — **no threads**;
//! - the table of registered fds ([`Async`]), each registered *oneshot* and
//!   re-armed with `Poller::modify` when a task waits on it again;
//! - the timers ([`sleep`], [`timeout`]): an ordered map of
//!   `(deadline, seq) → Waker`; the next deadline bounds the poller's wait;
//! - a thread-local executor ([`executor`]) that runs the tasks made by
//!   [`spawn`].
//!
//! [`block_on`] drives everything: it polls the main future (which runs the
//! executor's tasks), then waits in the poller until an fd is ready, a timer
//! is due, or a waker fired. Wakers called on this thread just set a flag;
//! a waker called from another thread interrupts the wait with
//! `Poller::notify`.
//!
//! Never mix in `async-io`/smol's reactor, `smol::spawn`, `unblock`,
//! `async-process` or `async-fs`: they start threads.

mod driver;
mod executor;
mod io;
pub mod process;
mod sys;
mod time;

#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use executor::Executor;
pub use executor::Task;

use driver::{Reactor, Signal};

pub use io::{Async, new_tcp_socket};
pub use time::{TimedOut, sleep, sleep_until, timeout, timeout_at};

thread_local! {
    static EXECUTOR: Executor = Executor::new();
    static IN_BLOCK_ON: Cell<bool> = const { Cell::new(false) };
}

/// Spawns `fut` on the calling thread's executor. It runs while some
/// [`block_on`] runs on this thread. Dropping the [`Task`] cancels it; call
/// `.detach()` to let it run to completion on its own.
pub fn spawn<T: 'static>(fut: impl Future<Output = T> + 'static) -> Task<T> {
    EXECUTOR.with(|ex| ex.spawn(fut))
}

/// Spawns `fut` and detaches it, unless this thread's executor is gone or
/// going (a task dropped while the thread exits): then `fut` is dropped and
/// `false` returned. For use in `Drop` implementations.
pub fn try_spawn_detached(fut: impl Future<Output = ()> + 'static) -> bool {
    EXECUTOR.try_with(|ex| ex.spawn(fut).detach()).is_ok()
}

/// Runs the reactor and the executor on the calling thread until `fut`
/// completes, and returns its output. Tasks still pending afterwards stay
/// on the executor and go on at the next `block_on`.
///
/// # Panics
/// When called inside another `block_on` on the same thread, or when the
/// poller cannot be created or waited on (out of fds, or a bug).
pub fn block_on<T>(fut: impl Future<Output = T>) -> T {
    let reactor = Reactor::get().expect("picolet reactor: cannot create the poller");
    let _guard = EnterGuard::enter();
    let signal = Arc::new(Signal::new(reactor.poller().clone()));
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    EXECUTOR.with(|ex| {
        let fut = pin!(fut);
        let mut fut = pin!(ex.run(fut));
        loop {
            if signal.woken.swap(false, Ordering::SeqCst) {
                if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                    return v;
                }
            }
            if let Err(e) = reactor.react(&signal) {
                panic!("picolet reactor: waiting for events failed: {e}");
            }
        }
    })
}

/// Marks the thread as inside `block_on` (nesting would deadlock).
struct EnterGuard;

impl EnterGuard {
    fn enter() -> EnterGuard {
        if IN_BLOCK_ON.with(|f| f.replace(true)) {
            panic!("picolet reactor: block_on called inside block_on");
        }
        EnterGuard
    }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        IN_BLOCK_ON.with(|f| f.set(false));
    }
}

/// Number of fds registered with this thread's reactor (for tests and
/// leak checks).
pub fn registered_fds() -> usize {
    Reactor::get().map(|r| r.source_count()).unwrap_or(0)
}

/// Number of pending timers on this thread's reactor (for tests and leak
/// checks).
pub fn pending_timers() -> usize {
    Reactor::get().map(|r| r.timer_count()).unwrap_or(0)
}
