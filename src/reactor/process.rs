//! Child processes on the reactor: waiting for an exit on a pidfd and
//! reading a piped stdout, without blocking the thread.
//!
//! The agent runs blocking work that it cannot do on its one thread (a
//! getaddrinfo(3) lookup, say) in a short-lived child process instead of a
//! thread: [`output`] starts it, reads what it prints as the reactor says
//! the pipe is readable, and reaps it once its pidfd says it has exited.
//! Dropping the future kills the child and reaps it in a detached task, so a
//! cancelled lookup leaves neither a process nor a zombie behind.

use super::{Async, sleep};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// A pidfd for `pid` (Linux ≥ 5.3): readable once the process has exited.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    Ok(crate::sys::fd::pidfd_open(pid as i32)?)
}

/// Waits until `child` has exited, then reaps it. Uses a pidfd; on kernels
/// without one, polls `try_wait` every 5 ms.
pub async fn wait(child: &mut Child) -> io::Result<ExitStatus> {
    match pidfd_open(child.id()).and_then(Async::new) {
        Ok(pidfd) => pidfd.readable().await?,
        Err(_) => {
            while child.try_wait()?.is_none() {
                sleep(Duration::from_millis(5)).await;
            }
        }
    }
    // The process has exited: this returns at once.
    child.wait()
}

/// Kills and reaps the child if the future owning it is dropped early.
struct Reaped(Option<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            // When the thread itself is exiting (its executor dropping this
            // task), there is no reactor left to wait on: reap if already
            // possible, else leave it to the process's end.
            let _ = child.try_wait();
            super::try_spawn_detached(async move {
                let _ = wait(&mut child).await;
            });
        }
    }
}

/// Runs `cmd` with stdin and stderr on `/dev/null` and returns its exit
/// status and its stdout, which may be at most `limit` bytes (more is an
/// `InvalidData` error, and the child is killed).
pub async fn output(cmd: &mut Command, limit: usize) -> io::Result<(ExitStatus, Vec<u8>)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().map(OwnedFd::from);
    let mut guard = Reaped(Some(child));
    let Some(stdout) = stdout else {
        return Err(io::Error::other("the child's stdout was not piped"));
    };
    let pipe = Async::new(File::from(stdout))?;
    let mut out = Vec::new();
    loop {
        // The read buffer is on `read_with`'s call, not in this future.
        let n = pipe
            .read_with(|f| {
                let mut buf = [0u8; 4096];
                let n = (&*f).read(&mut buf)?;
                if out.len() + n > limit {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the child printed more than {limit} bytes"),
                    ));
                }
                out.extend_from_slice(&buf[..n]);
                Ok(n)
            })
            .await?;
        if n == 0 {
            break;
        }
    }
    let status = wait(guard.0.as_mut().expect("the child is owned until reaped")).await?;
    // Reaped: nothing left for the guard to do.
    guard.0 = None;
    Ok((status, out))
}

/// Runs `cmd` (stdin on `/dev/null`, stderr inherited) and hands each line
/// it prints on stdout, without its `\n`, to `on_line` as it comes; a
/// line longer than 64 KiB is an `InvalidData` error (the child is
/// killed). Returns its exit status.
pub async fn lines(cmd: &mut Command, on_line: &mut dyn FnMut(&[u8])) -> io::Result<ExitStatus> {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().map(OwnedFd::from);
    let mut guard = Reaped(Some(child));
    let Some(stdout) = stdout else {
        return Err(io::Error::other("the child's stdout was not piped"));
    };
    let pipe = Async::new(File::from(stdout))?;
    let mut buf = crate::jsonl::LineBuffer::default();
    loop {
        let n = pipe.read_with(|f| buf.read_from(&mut &*f)).await?;
        while let Some(line) = buf.next_line() {
            on_line(&line);
        }
        if buf.pending() > 64 << 10 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a line over 64 KiB",
            ));
        }
        if n == 0 {
            break;
        }
    }
    let status = wait(guard.0.as_mut().expect("the child is owned until reaped")).await?;
    guard.0 = None;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::{block_on, timeout};
    use std::time::Instant;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn output_returns_the_exit_status_and_what_the_child_printed() {
        let (status, out) = block_on(output(&mut sh("echo one; echo two; exit 3"), 100)).unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(out, b"one\ntwo\n");
    }

    #[test]
    fn lines_hands_over_each_line_as_it_comes_and_the_exit_status() {
        let mut got = Vec::new();
        let script = "printf 'a\\nbb\\n'; sleep 0.1; printf 'c\\nno-newline'; exit 4";
        let status = block_on(lines(&mut sh(script), &mut |l| got.push(l.to_vec()))).unwrap();
        assert_eq!(status.code(), Some(4));
        assert_eq!(got, [b"a".to_vec(), b"bb".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn output_over_the_limit_is_an_error() {
        let e = block_on(output(&mut sh("yes | head -c 5000"), 1000)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_slow_child_does_not_hold_the_thread_and_is_killed_and_reaped_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("echo $$ >{}; exec sleep 30", pidfile.display());
        let t0 = Instant::now();
        // The timer fires while the child sleeps: the thread was free.
        let r = block_on(timeout(
            Duration::from_millis(300),
            output(&mut sh(&script), 100),
        ));
        assert!(r.is_err(), "timed out");
        assert!(t0.elapsed() < Duration::from_secs(5));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The detached reaper runs on the next turns of the reactor.
        let gone = block_on(async {
            for _ in 0..200 {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    return true;
                }
                sleep(Duration::from_millis(10)).await;
            }
            false
        });
        assert!(gone, "child {pid} was neither killed nor reaped");
    }

    #[test]
    fn a_pending_child_dropped_as_its_thread_exits_is_killed_without_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("echo $$ >{}; exec sleep 30", pidfile.display());
        // A thread of its own, whose executor (thread-local) is destroyed
        // with the task still pending: the guard must not touch it then.
        let t = std::thread::spawn(move || {
            block_on(async move {
                crate::reactor::spawn(async move {
                    let _ = output(&mut sh(&script), 100).await;
                })
                .detach();
                sleep(Duration::from_millis(300)).await;
            });
        });
        assert!(t.join().is_ok(), "the thread panicked on exit");
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        // Killed: gone, or a zombie nobody is left to reap. SIGKILL takes
        // effect asynchronously: allow it a moment on a loaded machine.
        let state = || {
            std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                .ok()
                .and_then(|s| s.rsplit(") ").next().and_then(|r| r.chars().next()))
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while matches!(state(), Some(c) if c != 'Z' && c != 'X')
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let last = state();
        assert!(
            matches!(last, None | Some('Z' | 'X')),
            "child {} still alive: {last:?}",
            pid.trim()
        );
    }
}
