use super::{ApiServer, Conns, Limits, spawn_at};
use crate::agent::Msg;
use crate::api::{Request, Response};
use crate::reactor;
use std::io::{BufRead, BufReader};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;
use std::time::Instant;

#[test]
fn at_the_cap_the_oldest_reading_connection_makes_room() {
    let mut c = Conns::default();
    let rx: Vec<_> = (0..3).map(|_| c.admit(3).unwrap()).collect();
    assert_eq!(c.live.len(), 3);
    c.request_read(0);
    // 0 is being answered: 1 is the oldest still reading.
    let (id, _) = c.admit(3).unwrap();
    assert_eq!(id, 3);
    assert!(c.live.contains_key(&0) && !c.live.contains_key(&1));
    assert!(rx[1].1.is_closed(), "the evicted connection is told");
    assert!(!rx[0].1.is_closed());
    for id in [2, 3] {
        c.request_read(id);
    }
    // All three are being answered: no room.
    assert!(c.admit(3).is_none());
    assert_eq!(c.live.len(), 3);
}

/// Runs the server with `limits` and a stand-in agent that answers
/// `GetPods` at once, `Exec` with the number of fds that came with it,
/// answers an `Exec` of `late` after 1 s, never answers `Describe` or an
/// `Exec` of `hold`, and runs `client`
/// on another thread against it.
fn with_server(limits: Limits, client: impl FnOnce(&Path) + Send + 'static) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let (tx, rx) = async_channel::unbounded();
    let (done_tx, done_rx) = async_channel::bounded::<std::thread::Result<()>>(1);
    let p = path.clone();
    reactor::block_on(async move {
        spawn_at(&p, tx, limits).unwrap();
        let agent = reactor::spawn(async move {
            let mut held = Vec::new();
            while let Ok(msg) = rx.recv().await {
                if let Msg::Api { req, fds, reply } = msg {
                    match req {
                        Request::GetPods => {
                            let _ = reply.try_send(Response::Logs { files: Vec::new() });
                        }
                        Request::Exec { argv, .. } if argv == ["late"] => {
                            reactor::spawn(async move {
                                reactor::sleep(Duration::from_secs(1)).await;
                                let _ = reply.try_send(Response::Error("late".into()));
                            })
                            .detach();
                        }
                        Request::Exec { argv, .. } if argv != ["hold"] => {
                            let n = fds.len();
                            let _ = reply.try_send(Response::Error(format!("{n} fds")));
                        }
                        _ => held.push(reply),
                    }
                }
            }
        });
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| client(&p)));
            let _ = done_tx.send_blocking(r);
        });
        let r = done_rx.recv().await.unwrap();
        drop(agent);
        if let Err(panic) = r {
            std::panic::resume_unwind(panic);
        }
    });
    drop(dir);
}

fn get_pods(path: &Path) -> String {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"\"GetPods\"\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

/// Reads until EOF (or a reset); what was read.
fn read_to_close(s: &mut UnixStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn small() -> Limits {
    Limits {
        max_request: 1024,
        max_conns: 4,
        request_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_secs(2),
    }
}

#[test]
fn an_idle_connection_is_closed_after_the_request_timeout() {
    with_server(small(), |path| {
        let mut idle = UnixStream::connect(path).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t = Instant::now();
        let got = read_to_close(&mut idle);
        let waited = t.elapsed();
        assert!(got.contains("no complete request within 0.3 s"), "{got}");
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        // A trickle of bytes without a newline does not extend it.
        let mut slow = UnixStream::connect(path).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t = Instant::now();
        for _ in 0..10 {
            if slow.write_all(b"x").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        read_to_close(&mut slow);
        assert!(t.elapsed() < Duration::from_secs(3));
        assert!(get_pods(path).contains("Logs"));
    });
}

#[test]
fn an_oversized_request_line_is_refused_after_max_bytes() {
    with_server(small(), |path| {
        let mut s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // Without a newline: the agent stops at 1 KiB.
        let _ = s.write_all(&[b'x'; 4096]);
        let got = read_to_close(&mut s);
        assert!(got.contains("request line over 1024 bytes"), "{got}");
        // A line of exactly the limit is read (and is malformed JSON).
        let mut s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut line = vec![b' '; 1023];
        line.push(b'\n');
        s.write_all(&line).unwrap();
        assert!(read_to_close(&mut s).contains("malformed request"));
    });
}

#[test]
fn idle_connections_at_the_cap_make_room_and_busy_ones_refuse() {
    with_server(small(), |path| {
        // Twice the cap of idle connections: the oldest are closed as
        // new ones arrive, and a real request still gets its answer.
        let mut idle: Vec<UnixStream> =
            (0..8).map(|_| UnixStream::connect(path).unwrap()).collect();
        assert!(get_pods(path).contains("Logs"));
        let t = Instant::now();
        let first = &mut idle[0];
        first
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(read_to_close(first), "", "evicted without a word");
        assert!(
            t.elapsed() < Duration::from_millis(250),
            "evicted, not timed out"
        );
        drop(idle);
        // Four requests the agent does not answer hold every slot.
        let busy: Vec<UnixStream> = (0..4)
            .map(|_| {
                let mut s = UnixStream::connect(path).unwrap();
                let req = r#"{"Describe":{"namespace":"default","name":"x"}}"#;
                s.write_all(format!("{req}\n").as_bytes()).unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let mut extra = UnixStream::connect(path).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let got = read_to_close(&mut extra);
        assert!(got.contains("answering 4 requests already"), "{got}");
        drop(busy);
    });
}

fn exec_line() -> Vec<u8> {
    let req = Request::Exec {
        namespace: "default".into(),
        name: "p".into(),
        container: None,
        argv: vec!["true".into()],
        stdin: true,
        tty: false,
    };
    let mut line = serde_json::to_vec(&req).unwrap();
    line.push(b'\n');
    line
}

fn send_fds(path: &Path, line: &[u8], n: usize) -> String {
    let (r, w) = crate::sys::fd::pipe().unwrap();
    let fds: Vec<_> = (0..n)
        .map(|i| if i % 2 == 0 { r.as_fd() } else { w.as_fd() })
        .collect();
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let sent = crate::sys::net::send_with_fds(s.as_fd(), line, &fds).unwrap();
    let _ = s.write_all(&line[sent..]);
    read_to_close(&mut s)
}

#[test]
fn fds_come_with_their_request_and_more_than_three_are_refused() {
    with_server(small(), |path| {
        assert!(send_fds(path, &exec_line(), 3).contains("3 fds"));
        // A request without fds: none.
        assert!(send_fds(path, &exec_line(), 0).contains("0 fds"));
        let got = send_fds(path, &exec_line(), 4);
        assert!(got.contains("more than 3 fds with a request"), "{got}");
        assert!(get_pods(path).contains("Logs"));
    });
}

#[test]
fn a_client_that_hangs_up_while_its_exec_runs_frees_its_slot_at_once() {
    with_server(small(), |path| {
        let describe = |_| {
            let mut s = UnixStream::connect(path).unwrap();
            let req =
                r#"{"Exec":{"namespace":"default","name":"x","container":null,"argv":["hold"]}}"#;
            s.write_all(format!("{req}\n").as_bytes()).unwrap();
            s
        };
        // Every slot waits for an exec to end; then their clients go away
        // (Ctrl-C on a long `exec`).
        let busy: Vec<UnixStream> = (0..4).map(describe).collect();
        std::thread::sleep(Duration::from_millis(100));
        drop(busy);
        std::thread::sleep(Duration::from_millis(100));
        // Well within the request timeout: the slots are free again.
        assert!(get_pods(path).contains("Logs"));
        let busy: Vec<UnixStream> = (0..3).map(describe).collect();
        assert!(get_pods(path).contains("Logs"));
        drop(busy);
    });
}

#[test]
fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    with_server(small(), |path| {
        let mut s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"\"GetPods\"\n").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(read_to_close(&mut s).contains("Logs"));
    });
}

#[test]
fn an_exec_answered_after_the_request_timeout_still_gets_its_answer() {
    with_server(small(), |path| {
        let mut s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = r#"{"Exec":{"namespace":"default","name":"x","container":null,"argv":["late"]}}"#;
        s.write_all(format!("{req}\n").as_bytes()).unwrap();
        let t = Instant::now();
        let got = read_to_close(&mut s);
        assert!(got.contains("late"), "{got}");
        // Over three times the 0.3 s request timeout.
        assert!(
            t.elapsed() >= Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
    });
}

#[test]
fn a_waiting_exec_is_answered_by_its_exec_done_or_told_when_its_pod_s_shim_goes() {
    let dir = tempfile::tempdir().unwrap();
    let mut api = ApiServer::new(dir.path());
    assert_eq!(api.path(), crate::api::socket_path(dir.path()));
    let (ran, ran_rx) = async_channel::bounded(1);
    let (never, never_rx) = async_channel::bounded(1);
    let (gone, gone_rx) = async_channel::bounded(1);
    let (other, other_rx) = async_channel::bounded(1);
    api.wait_exec(1, "pod-a", ran);
    api.wait_exec(2, "pod-a", never);
    api.wait_exec(3, "pod-a", gone);
    api.wait_exec(4, "pod-b", other);
    // A command that ran: its exit code; its output went to the CLI's pipes.
    api.exec_done(1, 3, "ignored".into(), false);
    assert!(matches!(
        ran_rx.try_recv(),
        Ok(Response::Exec {
            exit_code: 3,
            error: None
        })
    ));
    // One that never started (an older shim says -1): 126, and why.
    api.exec_done(2, -1, "no such file".into(), false);
    match never_rx.try_recv() {
        Ok(Response::Exec { exit_code, error }) => {
            assert_eq!(exit_code, crate::runtime::shim::EXEC_CANNOT_RUN);
            assert_eq!(error.as_deref(), Some("no such file"));
        }
        r => panic!("{r:?}"),
    }
    // An exec id that is not a CLI's (a probe's) changes nothing.
    api.exec_done(9, 0, String::new(), false);
    // pod-a's shim goes: its CLI is told; pod-b's still waits.
    api.shim_gone("pod-a");
    match gone_rx.try_recv() {
        Ok(Response::Error(e)) => assert!(e.contains("shim went away"), "{e}"),
        r => panic!("{r:?}"),
    }
    assert!(other_rx.try_recv().is_err());
    api.exec_done(4, 0, String::new(), true);
    assert!(matches!(
        other_rx.try_recv(),
        Ok(Response::Exec {
            exit_code: 0,
            error: Some(_)
        })
    ));
}
