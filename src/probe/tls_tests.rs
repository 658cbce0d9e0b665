//! HTTPS probes against a real TLS server (rustls' server side, on a
//! thread, with a certificate from an unknown CA for another name: the
//! probe must not care), and against servers that do not speak TLS.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};

use super::*;
use crate::fleet::test_broker::Pki;
use crate::reactor::block_on;

const SEC: Duration = Duration::from_secs(1);

/// What the server saw of one connection: the SNI and the request head.
type Seen = (Option<String>, String);

/// A TLS server for `wrong-name.crt` (signed by a CA the probe does not
/// know, for `wrong.example`), answering one connection per response.
fn tls_server(
    pki: &Pki,
    tls12_only: bool,
    responses: Vec<&'static [u8]>,
) -> (SocketAddr, JoinHandle<Vec<Seen>>) {
    let pem = std::fs::read(pki.path("wrong-name.crt")).unwrap();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .unwrap();
    let key =
        PrivateKeyDer::from_pem_slice(&std::fs::read(pki.path("wrong-name.key")).unwrap()).unwrap();
    let builder =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()));
    let builder = if tls12_only {
        builder.with_protocol_versions(&[&rustls::version::TLS12])
    } else {
        builder.with_safe_default_protocol_versions()
    }
    .unwrap();
    let config = Arc::new(
        builder
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for response in responses {
            let (s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(5 * SEC)).unwrap();
            let conn = ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, s);
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = tls.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            let sni = tls.conn.server_name().map(str::to_string);
            tls.write_all(response).unwrap();
            tls.conn.send_close_notify();
            tls.flush().unwrap();
            seen.push((sni, String::from_utf8(req).unwrap()));
        }
        seen
    });
    (addr, server)
}

fn https<'a>(addr: SocketAddr, name: Option<&'a str>, path: &'a str) -> Get<'a> {
    Get {
        addr,
        name,
        https: true,
        path,
        headers: &[],
    }
}

#[test]
fn https_probe_skips_verification_and_judges_the_status_like_http() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pki) = Pki::generate(dir.path()) else {
        return;
    };
    for tls12_only in [false, true] {
        let responses: Vec<&'static [u8]> = vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 503 Service Unavailable\r\n\r\n",
        ];
        let (addr, server) = tls_server(&pki, tls12_only, responses);
        let ok = block_on(http_get(None, &https(addr, None, "/healthz"), 5 * SEC));
        let busy = block_on(http_get(None, &https(addr, None, "/"), 5 * SEC));
        let seen = server.join().unwrap();
        assert_eq!(ok, Outcome::success(""), "TLS 1.2 only: {tls12_only}");
        assert_eq!(
            busy,
            Outcome::failure("HTTP probe failed with statuscode: 503")
        );
        // An IP address as the URL's host: no SNI, Host is the address.
        assert_eq!(seen[0].0, None);
        assert!(
            seen[0]
                .1
                .starts_with(&format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n")),
            "{seen:?}"
        );
    }
}

#[test]
fn https_probe_to_a_name_sends_it_as_sni_and_host() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pki) = Pki::generate(dir.path()) else {
        return;
    };
    let (addr, server) = tls_server(&pki, false, vec![b"HTTP/1.0 302 Found\r\n\r\n"]);
    let out = block_on(http_get(None, &https(addr, Some("web.test"), "/"), 5 * SEC));
    let seen = server.join().unwrap();
    assert!(out.success, "{out:?}");
    assert_eq!(seen[0].0.as_deref(), Some("web.test"));
    let host = format!("\r\nHost: web.test:{}\r\n", addr.port());
    assert!(seen[0].1.contains(&host), "{seen:?}");
}

/// Accepts one connection, reads once and answers with `reply` (if any),
/// then closes.
fn raw_server(reply: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        if !reply.is_empty() {
            let _ = s.write_all(reply);
        }
        // Let the client read before the close.
        std::thread::sleep(Duration::from_millis(100));
    });
    addr
}

#[test]
fn https_probe_handshake_failures_read_like_go() {
    let cases: [(&[u8], &str); 4] = [
        (
            b"HTTP/1.1 400 Bad Request\r\n\r\n",
            "http: server gave HTTP response to HTTPS client",
        ),
        (
            b"SSH-2.0-OpenSSH_9.6\r\n",
            "tls: first record does not look like a TLS handshake",
        ),
        // A fatal handshake_failure alert (TLS 1.2 record).
        (
            b"\x15\x03\x03\x00\x02\x02\x28",
            "remote error: tls: handshake failure",
        ),
        (b"", "EOF"),
    ];
    for (reply, want) in cases {
        let addr = raw_server(reply);
        let out = block_on(http_get(None, &https(addr, None, "/"), 5 * SEC));
        assert_eq!(
            out,
            Outcome::failure(format!("Get \"https://{addr}/\": {want}")),
            "{reply:?}"
        );
    }
}

#[test]
fn server_names_are_dns_names_or_ip_addresses() {
    use rustls::pki_types::ServerName;
    assert!(matches!(
        tls::server_name("10.0.0.5"),
        Some(ServerName::IpAddress(_))
    ));
    assert!(matches!(
        tls::server_name("[::1]"),
        Some(ServerName::IpAddress(_))
    ));
    assert!(matches!(
        tls::server_name("web.test"),
        Some(ServerName::DnsName(_))
    ));
    assert!(tls::server_name("not a name").is_none());
}
