use super::*;
use std::io::{BufRead, BufReader};
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
/// `GetPods` at once and never answers `Describe`, and runs `client`
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
                if let Msg::Api { req, reply } = msg {
                    match req {
                        Request::GetPods => {
                            let _ = reply.try_send(Response::Logs { files: Vec::new() });
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
