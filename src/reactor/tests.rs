use std::cell::RefCell;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use super::*;

const MS: Duration = Duration::from_millis(1);

fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a live array of two c_ints, as pipe2(2) expects.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 succeeded, so fds[0] is open and owned by nobody else.
    let r = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above, for fds[1].
    let w = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    (File::from(r), File::from(w))
}

#[test]
fn timers_fire_in_deadline_order_not_in_spawn_order() {
    let log = Rc::new(RefCell::new(Vec::new()));
    block_on(async {
        let tasks: Vec<_> = [30u32, 10, 20, 0, 25]
            .into_iter()
            .map(|ms| {
                let log = log.clone();
                spawn(async move {
                    sleep(ms * MS).await;
                    log.borrow_mut().push(ms);
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
    });
    assert_eq!(*log.borrow(), vec![0, 10, 20, 25, 30]);
    assert_eq!(pending_timers(), 0);
}

#[test]
fn sleep_waits_at_least_its_duration() {
    let start = Instant::now();
    block_on(sleep(40 * MS));
    let took = start.elapsed();
    assert!(took >= 40 * MS, "slept only {took:?}");
    assert!(took < 1000 * MS, "slept {took:?}");
}

#[test]
fn sleep_until_a_past_deadline_returns_at_once() {
    let start = Instant::now();
    block_on(sleep_until(start - 10 * MS));
    assert!(start.elapsed() < 1000 * MS, "took {:?}", start.elapsed());
}

#[test]
fn timeout_expires_when_the_future_is_slower() {
    let start = Instant::now();
    let r = block_on(timeout(30 * MS, sleep(Duration::from_secs(10))));
    assert_eq!(r, Err(TimedOut));
    let took = start.elapsed();
    assert!(took >= 30 * MS && took < Duration::from_secs(5), "{took:?}");
    assert_eq!(pending_timers(), 0, "both timers are deregistered");
}

#[test]
fn timeout_returns_the_value_when_the_future_is_faster() {
    let r = block_on(timeout(Duration::from_secs(10), async {
        sleep(5 * MS).await;
        7
    }));
    assert_eq!(r, Ok(7));
    assert_eq!(
        pending_timers(),
        0,
        "the 10 s timer is removed when dropped"
    );
}

#[test]
fn readable_wakes_when_the_socketpair_peer_writes() {
    let (a, b) = UnixStream::pair().unwrap();
    let a = Async::new(a).unwrap();
    let start = Instant::now();
    let got = block_on(async {
        let writer = spawn(async move {
            sleep(30 * MS).await;
            (&b).write_all(b"ping").unwrap();
            b
        });
        a.readable().await.unwrap();
        let elapsed = start.elapsed();
        let mut buf = [0u8; 16];
        let n = a.read_with(|s| (&*s).read(&mut buf)).await.unwrap();
        drop(writer.await);
        (elapsed, buf[..n].to_vec())
    });
    assert!(got.0 >= 30 * MS, "readable before the write: {:?}", got.0);
    assert_eq!(got.1, b"ping");
}

#[test]
fn pipe_read_end_yields_data_then_eof_through_async_read() {
    let (r, w) = pipe();
    let mut r = Async::new(r).unwrap();
    let w = Async::new(w).unwrap();
    let data = block_on(async {
        spawn(async move {
            let mut w = w;
            for chunk in [&b"hello "[..], b"from ", b"a pipe"] {
                sleep(2 * MS).await;
                w.write_all(chunk).await.unwrap();
            }
            // Dropping `w` closes the write end: the reader sees EOF.
        })
        .detach();
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        out
    });
    assert_eq!(data, b"hello from a pipe");
}

#[test]
fn read_with_retries_would_block_until_data_arrives() {
    let (a, b) = UnixStream::pair().unwrap();
    let a = Async::new(a).unwrap();
    let calls = Rc::new(RefCell::new(0));
    let n = block_on(async {
        spawn(async move {
            sleep(20 * MS).await;
            (&b).write_all(b"x").unwrap();
            sleep(50 * MS).await;
        })
        .detach();
        let mut buf = [0u8; 4];
        a.read_with(|s| {
            *calls.borrow_mut() += 1;
            (&*s).read(&mut buf)
        })
        .await
        .unwrap()
    });
    assert_eq!(n, 1);
    let calls = *calls.borrow();
    assert!((2..=4).contains(&calls), "op ran {calls} times");
}

#[test]
fn writable_and_readable_can_wait_in_two_tasks_on_one_fd() {
    let (a, b) = UnixStream::pair().unwrap();
    let a = Rc::new(Async::new(a).unwrap());
    let b = Async::new(b).unwrap();
    let echoed = block_on(async {
        // Fill `a`'s send buffer so that writing to it blocks.
        let mut sent = 0usize;
        while let Ok(n) = a.get_ref().write(&[7u8; 65536]) {
            sent += n;
        }
        let writer = {
            let a = a.clone();
            spawn(async move { a.write_with(|s| (&*s).write(b"end")).await.unwrap() })
        };
        let reader = {
            let a = a.clone();
            spawn(async move {
                let mut buf = [0u8; 8];
                let n = a.read_with(|s| (&*s).read(&mut buf)).await.unwrap();
                buf[..n].to_vec()
            })
        };
        sleep(10 * MS).await;
        // Wake the reader, then drain `b` to unblock the writer.
        b.write_with(|s| (&*s).write(b"hi")).await.unwrap();
        let mut drained = 0usize;
        let mut buf = vec![0u8; 65536];
        while drained < sent + 3 {
            drained += (&b).read(&mut buf).await.unwrap();
        }
        assert_eq!(writer.await, 3);
        reader.await
    });
    assert_eq!(echoed, b"hi");
}

#[test]
fn two_tasks_waiting_for_readability_on_one_fd_are_both_woken() {
    let (a, b) = UnixStream::pair().unwrap();
    let a = Rc::new(Async::new(a).unwrap());
    let woken = Rc::new(RefCell::new(0));
    block_on(async {
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (a, woken) = (a.clone(), woken.clone());
                spawn(async move {
                    a.readable().await.unwrap();
                    *woken.borrow_mut() += 1;
                })
            })
            .collect();
        sleep(10 * MS).await;
        assert_eq!(*woken.borrow(), 0);
        (&b).write_all(b"!").unwrap();
        for w in waiters {
            timeout(Duration::from_secs(5), w).await.unwrap();
        }
    });
    assert_eq!(*woken.borrow(), 2);
}

#[test]
fn many_sleeping_tasks_run_concurrently() {
    let start = Instant::now();
    let done = Rc::new(RefCell::new(0));
    block_on(async {
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let done = done.clone();
                spawn(async move {
                    for _ in 0..5 {
                        sleep(10 * MS).await;
                    }
                    *done.borrow_mut() += 1;
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
    });
    assert_eq!(*done.borrow(), 200);
    // Run one after another, 200 tasks x 50 ms would take 10 s.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn tasks_interleave_at_every_await() {
    let log = Rc::new(RefCell::new(Vec::new()));
    block_on(async {
        let (to_b, from_a) = async_channel::bounded::<u32>(1);
        let (to_a, from_b) = async_channel::bounded::<u32>(1);
        let la = log.clone();
        let a = spawn(async move {
            for i in 0..5 {
                la.borrow_mut().push(format!("a{i}"));
                to_b.send(i).await.unwrap();
                from_b.recv().await.unwrap();
            }
        });
        let lb = log.clone();
        let b = spawn(async move {
            for _ in 0..5 {
                let i = from_a.recv().await.unwrap();
                lb.borrow_mut().push(format!("b{i}"));
                to_a.send(i).await.unwrap();
            }
        });
        a.await;
        b.await;
    });
    let expect: Vec<String> = (0..5)
        .flat_map(|i| [format!("a{i}"), format!("b{i}")])
        .collect();
    assert_eq!(*log.borrow(), expect);
}

#[test]
fn a_waker_called_from_another_thread_interrupts_the_wait() {
    let (tx, rx) = async_channel::bounded::<u8>(1);
    // A thread in the test only: the reactor itself must not need one.
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        tx.send_blocking(9).unwrap();
    });
    let start = Instant::now();
    // The only timer is 20 s away: without `Poller::notify` the reactor
    // would sleep until it.
    let got = block_on(timeout(Duration::from_secs(20), rx.recv()));
    assert_eq!(got, Ok(Ok(9)));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    t.join().unwrap();
}

#[test]
fn tcp_connect_reaches_a_listener_served_by_a_reactor_task() {
    let reply = block_on(async {
        let listener = Async::<TcpListener>::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.get_ref().local_addr().unwrap();
        spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            buf.reverse();
            s.write_all(&buf).await.unwrap();
        })
        .detach();
        let mut c = Async::<TcpStream>::connect(addr).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).await.unwrap();
        out
    });
    assert_eq!(reply, b"olleh");
}

#[test]
fn tcp_connect_to_a_closed_port_reports_connection_refused() {
    // Bound but not listening: the port is ours and refuses connections.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = reserved.local_addr().unwrap();
    drop(reserved);
    let err = block_on(Async::<TcpStream>::connect(addr)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn unix_connect_and_accept_exchange_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let got = block_on(async {
        let listener = Async::<UnixListener>::bind(&path).unwrap();
        let server = spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"welcome").await.unwrap();
        });
        let mut c = Async::<UnixStream>::connect(&path).await.unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).await.unwrap();
        server.await;
        out
    });
    assert_eq!(got, b"welcome");
}

#[test]
fn unix_connect_to_a_missing_socket_fails_with_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let err = block_on(Async::<UnixStream>::connect(dir.path().join("none"))).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
}

#[test]
fn dropping_or_unwrapping_an_async_deregisters_its_fd() {
    let before = registered_fds();
    let (a, b) = UnixStream::pair().unwrap();
    let a = Async::new(a).unwrap();
    let b = Async::new(b).unwrap();
    assert_eq!(registered_fds(), before + 2);
    drop(a);
    let b = b.into_inner().unwrap();
    assert_eq!(registered_fds(), before);
    // The fd can be registered again after `into_inner`.
    let b = Async::new(b).unwrap();
    assert_eq!(registered_fds(), before + 1);
    drop(b);
}

#[test]
fn tasks_spawned_before_block_on_run_inside_it() {
    let flag = Rc::new(RefCell::new(false));
    let f = flag.clone();
    let t = spawn(async move { *f.borrow_mut() = true });
    block_on(t);
    assert!(*flag.borrow());
}

#[test]
#[should_panic(expected = "block_on called inside block_on")]
fn block_on_inside_block_on_panics() {
    block_on(async { block_on(async {}) });
}

const CHILD_ENV: &str = "PICOLET_REACTOR_THREAD_CHECK_CHILD";
const THREAD_TEST: &str = "reactor::tests::the_reactor_starts_no_thread";

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Runs timers, sockets, pipes and tasks while sampling the process's thread
/// count. This runs in a child process with one test thread, so nothing else
/// can start or end threads meanwhile.
fn count_threads_while_reactor_runs() {
    let before = thread_count();
    let samples = Rc::new(RefCell::new(Vec::new()));
    block_on(async {
        let listener = Async::<TcpListener>::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.get_ref().local_addr().unwrap();
        let s = samples.clone();
        let server = spawn(async move {
            let (mut c, _) = listener.accept().await.unwrap();
            s.borrow_mut().push(thread_count());
            c.write_all(b"x").await.unwrap();
        });
        let mut tasks = Vec::new();
        for i in 0..10u32 {
            let s = samples.clone();
            tasks.push(spawn(async move {
                sleep(i * MS).await;
                s.borrow_mut().push(thread_count());
                let _ = timeout(MS, sleep(Duration::from_secs(5))).await;
                s.borrow_mut().push(thread_count());
            }));
        }
        let mut c = Async::<TcpStream>::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        c.read_to_end(&mut buf).await.unwrap();
        samples.borrow_mut().push(thread_count());
        let (r, w) = pipe();
        let r = Async::new(r).unwrap();
        (&w).write_all(b"y").unwrap();
        r.readable().await.unwrap();
        samples.borrow_mut().push(thread_count());
        server.await;
        for t in tasks {
            t.await;
        }
    });
    let after = thread_count();
    let samples = samples.borrow();
    println!("threads before={before} after={after} samples={samples:?}");
    assert_eq!(samples.len(), 23);
    assert!(
        samples.iter().all(|&n| n == before) && after == before,
        "the reactor started threads: before={before} after={after} during={samples:?}"
    );
}

#[test]
fn the_reactor_starts_no_thread() {
    if std::env::var_os(CHILD_ENV).is_some() {
        count_threads_while_reactor_runs();
        return;
    }
    if let Some(why) = crate::check::qemu_user() {
        eprintln!(
            "skipped: {why}: the check re-executes this aarch64 test binary, which the \
             kernel cannot exec without binfmt_misc (and qemu-user has threads of its own)"
        );
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([THREAD_TEST, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("threads before=") && stdout.contains("1 passed"),
        "the check did not run in the child:\n{stdout}\n{stderr}"
    );
}
