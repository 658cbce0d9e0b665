//! `grpc` probes against a real gRPC health server: grpcio's own
//! `grpc.health.v1` servicer (tests/grpc/health_server.py, from the venv
//! scripts/test.sh makes in target/grpc-venv), started once per test
//! binary; and against servers that misbehave.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::*;
use crate::reactor::block_on;

const SEC: Duration = Duration::from_secs(1);

/// The health server's Python: `$PICOLET_GRPC_PYTHON`, else the venv.
fn python() -> Option<std::path::PathBuf> {
    let p = std::env::var_os("PICOLET_GRPC_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/grpc-venv/bin/python")
        });
    if p.exists() {
        Some(p)
    } else {
        crate::fleet::test_broker::skip_or_fail(&format!(
            "{} is missing (scripts/test.sh installs tests/grpc/requirements.txt there)",
            p.display()
        ))
    }
}

/// Starts tests/grpc/health_server.py with `args`; returns it and its port.
/// It exits when its stdin (held by the child handle) closes.
fn start_server(args: &[&str]) -> Option<(Child, u16)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc/health_server.py");
    let mut child = Command::new(python()?)
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("health_server.py printed {line:?}, not a port")
    });
    Some((child, port))
}

/// The shared health server's address (started at the first call).
fn health_server() -> Option<SocketAddr> {
    static SERVER: OnceLock<Option<(Mutex<Child>, u16)>> = OnceLock::new();
    let server = SERVER.get_or_init(|| start_server(&[]).map(|(c, p)| (Mutex::new(c), p)));
    server
        .as_ref()
        .map(|(_, port)| SocketAddr::from((Ipv4Addr::LOCALHOST, *port)))
}

#[test]
fn grpc_probe_succeeds_only_on_serving() {
    let Some(addr) = health_server() else { return };
    let run = |service: &str| block_on(grpc(None, addr, service, 5 * SEC));
    assert_eq!(run(""), Outcome::success(""));
    assert_eq!(run("ok"), Outcome::success(""));
    assert_eq!(
        run("down"),
        Outcome::failure("service unhealthy (responded with \"NOT_SERVING\")")
    );
    // grpcio's servicer sets NOT_FOUND without a message.
    assert_eq!(
        run("no-such-service"),
        Outcome::failure("error: health rpc probe failed: rpc error: code = NotFound desc = ")
    );
}

#[test]
fn grpc_probe_of_a_server_without_the_health_service_says_so() {
    let Some((mut child, port)) = start_server(&["--no-health"]) else {
        return;
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let out = block_on(grpc(None, addr, "", 5 * SEC));
    let _ = child.kill();
    let _ = child.wait();
    // grpc-core's trailer `grpc-message: Method not found!`, decoded.
    assert_eq!(
        out,
        Outcome::failure(
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): Method not found!"
        )
    );
}

#[test]
fn grpc_probe_of_a_closed_port_fails_at_once() {
    // A port that was free a moment ago.
    let addr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    let out = block_on(grpc(None, addr, "", 5 * SEC));
    assert_eq!(
        out,
        Outcome::failure(format!(
            "error: failed to connect service at \"{addr}\": dial tcp {addr}: connect: connection refused"
        ))
    );
}

/// A server that reads what comes and answers with `reply` once, then
/// holds the connection open for `hold`.
fn raw_server(reply: Vec<u8>, hold: Duration) -> SocketAddr {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let _ = s.write_all(&reply);
        std::thread::sleep(hold);
    });
    addr
}

#[test]
fn grpc_probe_bounds_frames_and_times_out_like_the_kubelet() {
    // A frame header announcing 16 KiB + 1 bytes.
    let big = vec![0, 0x40, 0x01, 0, 0, 0, 0, 0, 1];
    let addr = raw_server(big, Duration::from_millis(500));
    let out = block_on(grpc(None, addr, "", 5 * SEC));
    assert_eq!(
        out.message,
        "error: health rpc probe failed: rpc error: code = Internal desc = frame of 16385 bytes is larger than the 16384-byte limit"
    );
    // Endless PINGs: answered, but the total read is bounded.
    let mut pings = Vec::new();
    while pings.len() <= grpc::MAX_READ {
        pings.extend_from_slice(&[0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    }
    let addr = raw_server(pings, Duration::from_millis(500));
    let out = block_on(grpc(None, addr, "", 5 * SEC));
    assert!(
        out.message.ends_with(&format!(
            "desc = the response is larger than {} bytes",
            grpc::MAX_READ
        )),
        "{out:?}"
    );
    // A server that never answers: the call's timeout.
    let addr = raw_server(Vec::new(), 3 * SEC);
    let start = Instant::now();
    let out = block_on(grpc(None, addr, "", SEC));
    assert_eq!(
        out,
        Outcome::failure("timeout: health rpc did not complete within 1s")
    );
    assert!(start.elapsed() >= SEC && start.elapsed() < 3 * SEC);
    // A plain HTTP/1.1 server closes after its answer.
    let addr = raw_server(
        b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n".to_vec(),
        Duration::ZERO,
    );
    let out = block_on(grpc(None, addr, "", 5 * SEC));
    assert!(!out.success);
    assert!(
        out.message
            .starts_with("error: health rpc probe failed: rpc error: code = "),
        "{out:?}"
    );
}
