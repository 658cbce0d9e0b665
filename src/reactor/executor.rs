//! The reactor's task executor: one thread, no `unsafe`.
//!
//! A task is a boxed future in a slot of this thread's table. Its waker is
//! an `Arc` (std's [`Wake`]) that puts the slot's `(index, generation)` on
//! a ready queue and wakes `block_on`'s top-level waker; [`Run`] (the
//! future `block_on` polls) polls the main future, then the tasks that
//! were ready when it started, once each. A future is taken out of its
//! slot while it is polled, so it may spawn, cancel or finish other tasks
//! (or drop its own handle) without re-entering a borrow.
//!
//! [`Task`] is the handle: awaiting it gives the output, dropping it
//! cancels the task (its future is dropped at once, or right after the
//! poll that is running it), and [`Task::detach`] lets it run on its own.
//! A slot's generation changes when it is reused, so a stale waker or
//! handle never touches a newer task.
//!
//! This replaces `async-executor` (with `async-task`, `concurrent-queue`,
//! `slab` and `fastrand`): the agent needs neither work stealing nor
//! `Send` tasks, and those crates were about 27 KB of the static binary
//! (docs/design-deviations.md §12).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

type Boxed = Pin<Box<dyn Future<Output = ()>>>;

/// A task's slot index and the slot's generation when it was spawned.
type Id = (usize, u64);

/// Ready tasks, and the waker of the `Run` future that polls them. Shared
/// with the tasks' wakers, which another thread may call.
#[derive(Default)]
struct Queue {
    inner: Mutex<(VecDeque<Id>, Option<Waker>)>,
}

impl Queue {
    fn push(&self, id: Id) {
        let main = {
            let mut q = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            q.0.push_back(id);
            q.1.clone()
        };
        if let Some(w) = main {
            w.wake();
        }
    }
}

struct TaskWaker {
    id: Id,
    queued: AtomicBool,
    queue: Arc<Queue>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::SeqCst) {
            self.queue.push(self.id);
        }
    }
}

struct Slot {
    generation: u64,
    /// `None` while the future is being polled, or once the slot is free.
    future: Option<Boxed>,
    waker: Option<Arc<TaskWaker>>,
    live: bool,
    /// The handle was dropped while the future was being polled.
    cancelled: bool,
}

/// The per-thread table of tasks.
pub(crate) struct Executor {
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<usize>>,
    queue: Arc<Queue>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field(
                "tasks",
                &self.slots.borrow().iter().filter(|s| s.live).count(),
            )
            .finish()
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Dropped with the thread: the futures go outside the borrow (a
        // future's drop may drop other tasks' handles; those find the
        // thread-local gone and do nothing).
        let futures: Vec<Boxed> = self
            .slots
            .get_mut()
            .iter_mut()
            .filter_map(|s| s.future.take())
            .collect();
        drop(futures);
    }
}

/// The output slot a task and its handle share.
struct Join<T> {
    output: Cell<Option<T>>,
    done: Cell<bool>,
    waiter: Cell<Option<Waker>>,
}

/// The handle of a spawned task (see the module docs).
#[must_use = "a Task is cancelled when dropped; call .detach() to let it run"]
pub struct Task<T> {
    id: Id,
    join: Rc<Join<T>>,
    detached: bool,
}

impl<T> std::fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("done", &self.join.done.get())
            .finish()
    }
}

impl<T> Task<T> {
    /// Lets the task run to completion without a handle.
    pub fn detach(mut self) {
        self.detached = true;
    }

    /// Whether the task has finished (its output may still be awaited).
    pub fn is_finished(&self) -> bool {
        self.join.done.get()
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if self.join.done.get() {
            if let Some(v) = self.join.output.take() {
                return Poll::Ready(v);
            }
            panic!("picolet reactor: a Task polled after it completed");
        }
        self.join.waiter.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if self.detached || self.join.done.get() {
            return;
        }
        let id = self.id;
        // The thread-local is gone when the thread exits: nothing to cancel.
        let _ = super::EXECUTOR.try_with(|ex| ex.cancel(id));
    }
}

impl Executor {
    pub(crate) fn new() -> Executor {
        Executor {
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            queue: Arc::new(Queue::default()),
        }
    }

    pub(crate) fn spawn<T: 'static>(&self, fut: impl Future<Output = T> + 'static) -> Task<T> {
        let join = Rc::new(Join {
            output: Cell::new(None),
            done: Cell::new(false),
            waiter: Cell::new(None),
        });
        let j = join.clone();
        let future: Boxed = Box::pin(async move {
            let v = fut.await;
            j.output.set(Some(v));
            j.done.set(true);
            if let Some(w) = j.waiter.take() {
                w.wake();
            }
        });
        let id = self.insert(future);
        Task {
            id,
            join,
            detached: false,
        }
    }

    fn insert(&self, future: Boxed) -> Id {
        let mut slots = self.slots.borrow_mut();
        let index = match self.free.borrow_mut().pop() {
            Some(i) => i,
            None => {
                slots.push(Slot {
                    generation: 0,
                    future: None,
                    waker: None,
                    live: false,
                    cancelled: false,
                });
                slots.len() - 1
            }
        };
        let slot = &mut slots[index];
        slot.generation += 1;
        let id = (index, slot.generation);
        let waker = Arc::new(TaskWaker {
            id,
            queued: AtomicBool::new(false),
            queue: self.queue.clone(),
        });
        slot.future = Some(future);
        slot.live = true;
        slot.cancelled = false;
        // A new task is polled once, soon.
        waker.wake_by_ref();
        slot.waker = Some(waker);
        id
    }

    /// Frees a slot; its future (if any) is returned, to be dropped by the
    /// caller outside the borrow.
    fn release(&self, slots: &mut [Slot], index: usize) -> Option<Boxed> {
        let slot = &mut slots[index];
        slot.live = false;
        slot.waker = None;
        self.free.borrow_mut().push(index);
        slot.future.take()
    }

    fn cancel(&self, (index, generation): Id) {
        let dropped = {
            let mut slots = self.slots.borrow_mut();
            match slots.get_mut(index) {
                Some(s) if s.live && s.generation == generation => {
                    if s.future.is_none() {
                        // Being polled right now: dropped after the poll.
                        s.cancelled = true;
                        None
                    } else {
                        self.release(&mut slots, index)
                    }
                }
                _ => None,
            }
        };
        drop(dropped);
    }

    /// Polls the tasks that are ready now, once each. Says whether more
    /// became ready meanwhile.
    fn tick(&self) -> bool {
        let ready: Vec<Id> = {
            let mut q = self.queue.inner.lock().unwrap_or_else(|e| e.into_inner());
            q.0.drain(..).collect()
        };
        for (index, generation) in ready {
            let taken = {
                let mut slots = self.slots.borrow_mut();
                match slots.get_mut(index) {
                    Some(s) if s.live && s.generation == generation => {
                        s.future.take().zip(s.waker.clone())
                    }
                    _ => None,
                }
            };
            let Some((mut future, waker)) = taken else {
                continue;
            };
            waker.queued.store(false, Ordering::SeqCst);
            let w = Waker::from(waker);
            let done = future
                .as_mut()
                .poll(&mut Context::from_waker(&w))
                .is_ready();
            let dropped = {
                let mut slots = self.slots.borrow_mut();
                let s = &mut slots[index];
                if done || s.cancelled {
                    self.release(&mut slots, index);
                    Some(future)
                } else {
                    s.future = Some(future);
                    None
                }
            };
            drop(dropped);
        }
        !self
            .queue
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .is_empty()
    }

    /// Number of tasks not yet finished (for tests).
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.slots.borrow().iter().filter(|s| s.live).count()
    }

    /// The future that runs `fut` and, alongside it, this thread's tasks.
    pub(crate) fn run<'a, F: Future>(&'a self, fut: Pin<&'a mut F>) -> Run<'a, F> {
        Run { ex: self, fut }
    }
}

/// See [`Executor::run`].
pub(crate) struct Run<'a, F> {
    ex: &'a Executor,
    fut: Pin<&'a mut F>,
}

impl<F: Future> Future for Run<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        {
            let mut q = this
                .ex
                .queue
                .inner
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if !q.1.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                q.1 = Some(cx.waker().clone());
            }
        }
        if let Poll::Ready(v) = this.fut.as_mut().poll(cx) {
            return Poll::Ready(v);
        }
        if this.ex.tick() {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use crate::reactor::{EXECUTOR, block_on, sleep, spawn};
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::time::Duration;

    fn live() -> usize {
        EXECUTOR.with(|ex| ex.live())
    }

    /// Sets its flag when dropped.
    struct Guard(Rc<Cell<bool>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }

    #[test]
    fn a_task_gives_its_output_and_frees_its_slot() {
        let v = block_on(async {
            let t = spawn(async { 40 + 2 });
            t.await
        });
        assert_eq!(v, 42);
        assert_eq!(live(), 0);
    }

    #[test]
    fn dropping_a_handle_cancels_the_task_and_drops_its_future_at_once() {
        block_on(async {
            let dropped = Rc::new(Cell::new(false));
            let g = Guard(dropped.clone());
            let t = spawn(async move {
                let _g = g;
                sleep(Duration::from_secs(60)).await;
            });
            sleep(Duration::from_millis(5)).await;
            assert!(!dropped.get());
            drop(t);
            assert!(dropped.get());
        });
        assert_eq!(live(), 0);
    }

    #[test]
    fn a_detached_task_runs_to_completion() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        block_on(async move {
            spawn(async move {
                sleep(Duration::from_millis(5)).await;
                l.borrow_mut().push("detached");
            })
            .detach();
            sleep(Duration::from_millis(30)).await;
        });
        assert_eq!(*log.borrow(), ["detached"]);
    }

    #[test]
    fn tasks_spawn_and_cancel_tasks_and_a_reused_slot_ignores_stale_handles() {
        block_on(async {
            // A task that spawns another and awaits it.
            let outer = spawn(async { spawn(async { 7 }).await * 6 });
            assert_eq!(outer.await, 42);
            // A task cancelled while it is being polled (it drops its own
            // handle through a shared cell).
            let cell: Rc<RefCell<Option<crate::reactor::Task<()>>>> = Rc::default();
            let c = cell.clone();
            let dropped = Rc::new(Cell::new(false));
            let g = Guard(dropped.clone());
            let t = spawn(async move {
                let _g = g;
                drop(c.borrow_mut().take());
                sleep(Duration::from_secs(60)).await;
            });
            *cell.borrow_mut() = Some(t);
            sleep(Duration::from_millis(5)).await;
            assert!(dropped.get(), "cancelled during its own poll");
            // The freed slot is reused; a finished task's handle dropped
            // late does not cancel the new occupant.
            let first = spawn(async { 1 });
            sleep(Duration::from_millis(1)).await;
            assert!(first.is_finished());
            let second = spawn(async {
                sleep(Duration::from_millis(5)).await;
                2
            });
            drop(first);
            assert_eq!(second.await, 2);
        });
        assert_eq!(live(), 0);
    }

    #[test]
    fn a_wake_from_another_thread_runs_the_task() {
        let v = block_on(async {
            let (tx, rx) = async_channel::bounded::<u32>(1);
            let t = spawn(async move { rx.recv().await.unwrap() });
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                tx.send_blocking(5).unwrap();
            });
            t.await
        });
        assert_eq!(v, 5);
    }
}
