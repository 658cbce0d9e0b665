//! Timers: [`sleep`], [`sleep_until`], [`timeout`], [`timeout_at`].

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::driver::Reactor;

/// The error of [`timeout`]: the deadline passed before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out")]
pub struct TimedOut;

impl From<TimedOut> for std::io::Error {
    fn from(_: TimedOut) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, TimedOut)
    }
}

/// Sleeps for `d`. A duration too large to add to `Instant::now()` sleeps
/// forever.
pub async fn sleep(d: Duration) {
    match Instant::now().checked_add(d) {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline` (returns at once if it has passed).
pub async fn sleep_until(deadline: Instant) {
    Sleep {
        deadline,
        timer: None,
    }
    .await
}

/// Runs `fut` for at most `d`.
pub async fn timeout<T>(d: Duration, fut: impl Future<Output = T>) -> Result<T, TimedOut> {
    match Instant::now().checked_add(d) {
        Some(deadline) => timeout_at(deadline, fut).await,
        None => Ok(fut.await),
    }
}

/// Runs `fut` until `deadline` at most. `fut` is polled first, so a future
/// that is ready at the deadline still wins.
pub async fn timeout_at<T>(deadline: Instant, fut: impl Future<Output = T>) -> Result<T, TimedOut> {
    let mut fut = pin!(fut);
    let mut timer = pin!(sleep_until(deadline));
    poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(TimedOut)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// A registered timer; dropping it removes the registration.
struct Sleep {
    deadline: Instant,
    timer: Option<(Rc<Reactor>, u64)>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline;
        if Instant::now() >= deadline {
            if let Some((reactor, id)) = self.timer.take() {
                reactor.remove_timer(deadline, id);
            }
            return Poll::Ready(());
        }
        match &self.timer {
            Some((reactor, id)) => reactor.update_timer(deadline, *id, cx.waker()),
            None => {
                let reactor = Reactor::get().expect("picolet reactor: cannot create the poller");
                let id = reactor.add_timer(deadline, cx.waker());
                self.timer = Some((reactor, id));
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((reactor, id)) = self.timer.take() {
            reactor.remove_timer(self.deadline, id);
        }
    }
}
