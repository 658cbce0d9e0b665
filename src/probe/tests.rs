use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::reactor::{Async, block_on, spawn, timeout};

const SEC: Duration = Duration::from_secs(1);

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn sockaddr_in(addr: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(a) = addr else {
        panic!("IPv4 only")
    };
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

/// A TCP socket bound to `addr` (port 0: any) with `listen(backlog)` if
/// given: without it the port is ours and refuses every connection.
fn bound_socket(addr: SocketAddr, backlog: Option<i32>) -> (OwnedFd, SocketAddr) {
    let fd = crate::reactor::new_tcp_socket(&addr).unwrap();
    let sa = sockaddr_in(addr);
    let len = std::mem::size_of_val(&sa) as libc::socklen_t;
    // SAFETY: `sa` is a live sockaddr_in of `len` bytes; bind(2) reads it.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), (&raw const sa).cast(), len) };
    assert_eq!(rc, 0, "bind {addr}: {}", std::io::Error::last_os_error());
    if let Some(backlog) = backlog {
        // SAFETY: listen(2) on a socket we own.
        let rc = unsafe { libc::listen(fd.as_raw_fd(), backlog) };
        assert_eq!(rc, 0, "listen: {}", std::io::Error::last_os_error());
    }
    let stream = TcpStream::from(fd);
    let local = stream.local_addr().unwrap();
    (OwnedFd::from(stream), local)
}

/// Serves one connection per element of `responses` on `listener`, each
/// answering with those bytes after reading the request head; returns the
/// requests seen.
fn serve(
    listener: Async<TcpListener>,
    responses: Vec<&'static [u8]>,
) -> crate::reactor::Task<Vec<String>> {
    spawn(async move {
        let mut seen = Vec::new();
        for response in responses {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            seen.push(String::from_utf8(req).unwrap());
            let _ = s.write_all(response).await;
        }
        seen
    })
}

/// An HTTP GET of `path` at `addr`.
fn plain<'a>(addr: SocketAddr, path: &'a str, headers: &'a [(String, String)]) -> Get<'a> {
    Get {
        addr,
        name: None,
        https: false,
        path,
        headers,
    }
}

fn listener() -> (Async<TcpListener>, SocketAddr) {
    let l = Async::<TcpListener>::bind(loopback(0)).unwrap();
    let addr = l.get_ref().local_addr().unwrap();
    (l, addr)
}

#[test]
fn tcp_probe_succeeds_when_the_port_listens() {
    let l = TcpListener::bind(loopback(0)).unwrap();
    let out = block_on(tcp(None, l.local_addr().unwrap(), SEC));
    assert_eq!(
        out,
        Outcome {
            success: true,
            message: String::new()
        }
    );
}

#[test]
fn tcp_probe_to_a_closed_port_fails_with_connection_refused() {
    let (_reserved, addr) = bound_socket(loopback(0), None);
    let out = block_on(tcp(None, addr, SEC));
    assert!(!out.success);
    assert_eq!(
        out.message,
        format!("dial tcp {addr}: connect: connection refused")
    );
}

#[test]
fn tcp_probe_times_out_when_the_handshake_never_completes() {
    // A listener with a full accept queue that never accepts drops SYNs.
    let (_l, addr) = bound_socket(loopback(0), Some(0));
    let fillers: Vec<_> = (0..4)
        .map(|_| {
            let fd = crate::reactor::new_tcp_socket(&addr).unwrap();
            let sa = sockaddr_in(addr);
            // SAFETY: as in `bound_socket`; a non-blocking connect.
            unsafe {
                libc::connect(
                    fd.as_raw_fd(),
                    (&raw const sa).cast(),
                    std::mem::size_of_val(&sa) as u32,
                )
            };
            fd
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    let out = block_on(tcp(None, addr, Duration::from_millis(300)));
    assert!(!out.success);
    assert_eq!(out.message, format!("dial tcp {addr}: i/o timeout"));
    assert!(start.elapsed() >= Duration::from_millis(300));
    drop(fillers);
}

#[test]
fn http_probe_statuses_200_to_399_succeed_and_others_fail() {
    let (l, addr) = listener();
    let outs = block_on(async {
        let server = serve(
            l,
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                b"HTTP/1.1 301 Moved\r\nLocation: http://elsewhere/\r\n\r\n",
                b"HTTP/1.0 399 Odd\r\n\r\n",
                b"HTTP/1.1 500 Internal Server Error\r\n\r\n",
                b"HTTP/1.1 404 Not Found\r\n\r\n",
                b"HTTP/1.1 199 Early\r\n\r\n",
            ],
        );
        let mut outs = Vec::new();
        for _ in 0..6 {
            outs.push(http_get(None, &plain(addr, "/healthz", &[]), SEC).await);
        }
        server.await;
        outs
    });
    let got: Vec<(bool, &str)> = outs
        .iter()
        .map(|o| (o.success, o.message.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (true, ""),
            (true, ""),
            (true, ""),
            (false, "HTTP probe failed with statuscode: 500"),
            (false, "HTTP probe failed with statuscode: 404"),
            (false, "HTTP probe failed with statuscode: 199"),
        ]
    );
}

#[test]
fn http_probe_sends_the_kubelet_request_with_custom_headers() {
    let (l, addr) = listener();
    let headers = vec![
        ("Host".to_string(), "app.local".to_string()),
        ("X-Probe".to_string(), "yes".to_string()),
    ];
    let (out, seen) = block_on(async {
        let server = serve(l, vec![b"HTTP/1.1 204 No Content\r\n\r\n"]);
        let out = http_get(None, &plain(addr, "ready", &headers), SEC).await;
        (out, server.await)
    });
    assert!(out.success, "{out:?}");
    assert_eq!(
        seen[0],
        "GET /ready HTTP/1.1\r\nHost: app.local\r\nUser-Agent: kube-probe/1.31\r\nAccept: */*\r\n\
         X-Probe: yes\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn http_probe_to_a_closed_port_fails_like_the_kubelet() {
    let (_reserved, addr) = bound_socket(loopback(0), None);
    let out = block_on(http_get(None, &plain(addr, "/", &[]), SEC));
    assert!(!out.success);
    assert_eq!(
        out.message,
        format!("Get \"http://{addr}/\": dial tcp {addr}: connect: connection refused")
    );
}

#[test]
fn http_probe_times_out_when_the_server_never_answers() {
    let (l, addr) = listener();
    let start = Instant::now();
    let out = block_on(async {
        let _hold = spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            crate::reactor::sleep(10 * SEC).await;
            drop(s);
        });
        http_get(None, &plain(addr, "/slow", &[]), Duration::from_millis(200)).await
    });
    assert!(!out.success);
    assert_eq!(
        out.message,
        format!(
            "Get \"http://{addr}/slow\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )
    );
    assert!(start.elapsed() < 5 * SEC);
}

#[test]
fn http_probe_reports_eof_and_malformed_responses() {
    let (l, addr) = listener();
    let outs = block_on(async {
        let server = serve(l, vec![b"", b"SSH-2.0-OpenSSH_9.6\r\n"]);
        let a = http_get(None, &plain(addr, "/", &[]), SEC).await;
        let b = http_get(None, &plain(addr, "/", &[]), SEC).await;
        server.await;
        (a, b)
    });
    assert_eq!(outs.0.message, format!("Get \"http://{addr}/\": EOF"));
    assert!(!outs.1.success);
    assert!(
        outs.1
            .message
            .ends_with("malformed HTTP response \"SSH-2.0-OpenSSH_9.6\""),
        "{}",
        outs.1.message
    );
}

#[test]
fn http_probe_stops_reading_an_endless_response_head() {
    let (l, addr) = listener();
    let out = block_on(async {
        spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n").await;
            let line = [b'a'; 1000];
            // Never ends the head; stops when the client goes away.
            while s.write_all(b"X-Filler: ").await.is_ok() && s.write_all(&line).await.is_ok() {
                let _ = s.write_all(b"\r\n").await;
            }
        })
        .detach();
        http_get(None, &plain(addr, "/", &[]), 5 * SEC).await
    });
    assert!(out.success, "read past the cap until the timeout: {out:?}");
}

/// Kills and reaps the child on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn unshare_net() -> std::io::Result<()> {
    // SAFETY: unshare(2) takes flags only.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A `sleep` process in a new network namespace, with `lo` up.
fn process_in_new_netns() -> (ChildGuard, NetNs) {
    let mut cmd = Command::new("sleep");
    cmd.arg("60");
    // SAFETY: the hook only calls unshare(2), which is async-signal-safe
    // and touches no memory of the parent, between fork and exec.
    unsafe { cmd.pre_exec(unshare_net) };
    let child = ChildGuard(cmd.spawn().unwrap());
    let ns = NetNs::of_pid(child.0.id() as i32).unwrap();
    with_netns(&ns, set_lo_up).unwrap();
    (child, ns)
}

fn set_lo_up() {
    // SAFETY: a plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: `fd` is a fresh socket that we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo") {
        *d = *s as libc::c_char;
    }
    // SAFETY: `req` is a live ifreq, as SIOCGIFFLAGS expects.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) };
    assert_eq!(rc, 0, "SIOCGIFFLAGS: {}", std::io::Error::last_os_error());
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    assert_eq!(
        flags & libc::IFF_UP as libc::c_short,
        0,
        "lo is down in a fresh namespace"
    );
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: as above, for SIOCSIFFLAGS.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCSIFFLAGS as _, &mut req) };
    assert_eq!(rc, 0, "SIOCSIFFLAGS: {}", std::io::Error::last_os_error());
}

#[test]
fn a_listener_inside_a_pod_netns_is_reached_through_netns_only() {
    if crate::testutil::needs_root("creating a network namespace") {
        return;
    }
    let own = NetNs::current().unwrap().id().unwrap();
    let (_child, ns) = process_in_new_netns();
    assert_ne!(ns.id().unwrap(), own);

    // Reserve the port in the host namespace so nothing there listens on it.
    let (_reserved, addr) = bound_socket(loopback(0), None);
    let listener = with_netns(&ns, || TcpListener::bind(addr))
        .unwrap()
        .unwrap();
    assert_eq!(
        NetNs::current().unwrap().id().unwrap(),
        own,
        "back in our namespace"
    );
    let listener = Async::new(listener).unwrap();

    let (inside_tcp, outside_tcp, inside_http, outside_http) = block_on(async {
        let server = spawn(async move {
            // First the tcp probe (it closes at once), then the HTTP probe.
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                if s.read(&mut buf).await.unwrap_or(0) > 0 {
                    s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
                }
            }
        });
        let inside_tcp = tcp(Some(&ns), addr, SEC).await;
        let outside_tcp = tcp(None, addr, SEC).await;
        let inside_http = http_get(Some(&ns), &plain(addr, "/", &[]), SEC).await;
        let outside_http = http_get(None, &plain(addr, "/", &[]), SEC).await;
        timeout(5 * SEC, server).await.unwrap();
        (inside_tcp, outside_tcp, inside_http, outside_http)
    });
    assert!(inside_tcp.success, "{inside_tcp:?}");
    assert!(!outside_tcp.success && outside_tcp.message.ends_with("connection refused"));
    assert!(inside_http.success, "{inside_http:?}");
    assert!(!outside_http.success && outside_http.message.ends_with("connection refused"));
    assert_eq!(NetNs::current().unwrap().id().unwrap(), own);
}

#[test]
fn with_netns_returns_to_the_own_namespace_even_when_the_closure_panics() {
    if crate::testutil::needs_root("creating a network namespace") {
        return;
    }
    let own = NetNs::current().unwrap().id().unwrap();
    let (_child, ns) = process_in_new_netns();
    let inside = with_netns(&ns, || NetNs::current().unwrap().id().unwrap()).unwrap();
    assert_eq!(inside, ns.id().unwrap());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        with_netns(&ns, || panic!("boom")).unwrap();
    }));
    assert!(r.is_err());
    assert_eq!(NetNs::current().unwrap().id().unwrap(), own);
}

#[test]
fn entering_a_namespace_that_is_not_one_fails_without_running_the_closure() {
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    let ns = NetNs::from_fd(file.into());
    let mut ran = false;
    let err = with_netns(&ns, || ran = true).unwrap_err();
    assert!(!ran);
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    let out = block_on(tcp(Some(&ns), loopback(1), SEC));
    assert!(
        out.message
            .contains("cannot enter the pod's network namespace"),
        "{out:?}"
    );
}

#[test]
fn net_ns_of_a_missing_pid_names_the_path() {
    let err = NetNs::of_pid(i32::MAX).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("/proc/{}/ns/net", i32::MAX)),
        "{err}"
    );
}

/// Serves one connection that answers with `pieces`, written one at a time
/// with a pause between them, so that the probe reads each on its own.
fn serve_in_pieces(listener: Async<TcpListener>, pieces: Vec<Vec<u8>>) {
    spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        for piece in pieces {
            if s.write_all(&piece).await.is_err() {
                return;
            }
            crate::reactor::sleep(Duration::from_millis(20)).await;
        }
    })
    .detach();
}

#[test]
fn http_probe_reads_a_response_head_split_across_reads() {
    // Split inside the version, the status code, a header, and the blank
    // line that ends the head (`\r\n\r` then `\n`).
    let splits: [&[&[u8]]; 3] = [
        &[
            b"HTT",
            b"P/1.1 5",
            b"03 Busy\r\nRetry-",
            b"After: 1\r\n\r",
            b"\n",
        ],
        &[b"HTTP/1.1 204 No Content\r\n", b"\r\n"],
        &[b"HTTP/1.0 302 Found\nLocation: /x\n", b"\n"],
    ];
    let mut got = Vec::new();
    for pieces in splits {
        let (l, addr) = listener();
        serve_in_pieces(l, pieces.iter().map(|p| p.to_vec()).collect());
        got.push(block_on(http_get(None, &plain(addr, "/", &[]), 5 * SEC)));
    }
    assert!(!got[0].success);
    assert_eq!(got[0].message, "HTTP probe failed with statuscode: 503");
    assert!(got[1].success, "{:?}", got[1]);
    assert!(got[2].success, "{:?}", got[2]);
}

#[test]
fn http_probe_judges_a_head_over_the_cap_by_its_status_line() {
    // 12 KiB of headers: the head is cut at MAX_RESPONSE, and the status
    // line read decides (the kubelet would have read them all).
    let mut big = b"HTTP/1.1 503 Service Unavailable\r\n".to_vec();
    while big.len() < http::MAX_RESPONSE + 2048 {
        big.extend_from_slice(b"X-Filler: ");
        big.extend_from_slice(&[b'a'; 100]);
        big.extend_from_slice(b"\r\n");
    }
    big.extend_from_slice(b"\r\n");
    let (l, addr) = listener();
    serve_in_pieces(l, vec![big]);
    let out = block_on(http_get(None, &plain(addr, "/", &[]), 5 * SEC));
    assert!(!out.success);
    assert_eq!(out.message, "HTTP probe failed with statuscode: 503");
}

#[test]
fn http_probe_refuses_non_http_replies_and_malformed_header_lines() {
    let replies: [&[u8]; 5] = [
        b"HTTP/2 200\r\n\r\n",
        b"\x15\x03\x01\x00\x02\x02\x46",
        b"hello\n",
        b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n",
    ];
    let mut got = Vec::new();
    for reply in replies {
        let (l, addr) = listener();
        serve_in_pieces(l, vec![reply.to_vec()]);
        let out = block_on(http_get(None, &plain(addr, "/", &[]), 5 * SEC));
        assert!(!out.success, "{reply:?}: {out:?}");
        let prefix =
            format!("Get \"http://{addr}/\": net/http: HTTP/1.x transport connection broken: ");
        got.push(
            out.message
                .strip_prefix(&prefix)
                .unwrap_or(&out.message)
                .to_string(),
        );
    }
    assert_eq!(
        got,
        [
            "malformed HTTP response \"HTTP/2 200\"",
            "malformed HTTP response \"\\u{15}\\u{3}\\u{1}\\0\\u{2}\\u{2}F\"",
            "malformed HTTP response \"hello\"",
            "malformed MIME header: invalid header name",
            "malformed MIME header: invalid header value",
        ]
    );
}
