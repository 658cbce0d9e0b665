//! The `httpGet` probe: one HTTP/1.1 GET with `Connection: close`, over
//! TCP or, for `scheme: HTTPS`, TLS without certificate verification.
//!
//! Like the kubelet: `User-Agent: kube-probe/1.31` and `Accept: */*` unless
//! the probe sets them, a custom `Host` header replaces the default one, and
//! a status of 200..=399 is a success. Unlike the kubelet, redirects are
//! never followed: any 3xx is a success. Only the response head is read
//! (at most [`MAX_RESPONSE`] bytes) and parsed with `httparse`; the body is
//! ignored.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use super::tls::{TlsError, TlsStream};
use super::{DialError, NetNs, Outcome, connect, os_text};
use crate::reactor::{self, Async};

/// The `User-Agent` the kubelet 1.31 sends.
pub const USER_AGENT: &str = "kube-probe/1.31";
/// At most this many bytes of a response are read.
pub const MAX_RESPONSE: usize = 10 * 1024;

/// Why a GET produced no status, worded like Go's `net/http` client.
#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("write tcp {addr}: write: {}", os_text(.source))]
    Write {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("read tcp {addr}: read: {}", os_text(.source))]
    Read {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("EOF")]
    Eof,
    #[error("net/http: HTTP/1.x transport connection broken: malformed HTTP response {0:?}")]
    Malformed(String),
    #[error("net/http: HTTP/1.x transport connection broken: malformed MIME header: {0}")]
    MalformedHeader(String),
    #[error("net/http: invalid header field {0:?}")]
    InvalidHeader(String),
}

/// What an `httpGet` probe asks for.
#[derive(Debug, Clone, Copy)]
pub struct Get<'a> {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The probe's `host` when it is a name (resolved to `addr`): the URL's
    /// host, so also the default `Host` header and, for HTTPS, the SNI.
    /// `None`: the URL's host is `addr`'s IP address.
    pub name: Option<&'a str>,
    /// `scheme: HTTPS`: TLS without certificate verification ([`super::tls`]).
    pub https: bool,
    pub path: &'a str,
    /// The probe's `httpHeaders`.
    pub headers: &'a [(String, String)],
}

impl Get<'_> {
    /// `host:port` of the URL, as Go's `net.JoinHostPort` writes it.
    fn authority(&self) -> String {
        match self.name {
            Some(name) => format!("{name}:{}", self.addr.port()),
            None => self.addr.to_string(),
        }
    }
}

/// An `httpGet` probe of `get` from inside `ns` (`None`: the agent's own
/// namespace). `timeout` bounds the whole exchange, TLS handshake included.
pub async fn http_get(ns: Option<&NetNs>, get: &Get<'_>, timeout: Duration) -> Outcome {
    let path = encode_path(get.path);
    let authority = get.authority();
    let scheme = if get.https { "https" } else { "http" };
    let url = format!("{scheme}://{authority}{path}");
    let result = match build_request(&authority, &path, get.headers) {
        Ok(request) => reactor::timeout(timeout, exchange(ns, get, &request)).await,
        Err(e) => Ok(Err(e)),
    };
    match result {
        Ok(Ok(status)) if (200..400).contains(&status) => Outcome::success(""),
        Ok(Ok(status)) => Outcome::failure(format!("HTTP probe failed with statuscode: {status}")),
        Ok(Err(e)) => Outcome::failure(format!("Get {url:?}: {e}")),
        Err(reactor::TimedOut) => Outcome::failure(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

/// A connection, plain or TLS.
enum Conn {
    Plain(Async<TcpStream>),
    Tls(Box<TlsStream>),
}

impl Conn {
    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(buf).await,
            Conn::Tls(s) => s.write_all(buf).await,
        }
    }

    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf).await,
            Conn::Tls(s) => s.read(buf).await,
        }
    }
}

/// Connects (and for HTTPS, shakes hands), sends `request`, reads the
/// response head and returns the status.
async fn exchange(ns: Option<&NetNs>, get: &Get<'_>, request: &[u8]) -> Result<u16, HttpError> {
    let addr = get.addr;
    let stream = connect(ns, addr).await?;
    let mut stream = if get.https {
        let host = get
            .name
            .map_or_else(|| addr.ip().to_string(), str::to_string);
        Conn::Tls(Box::new(TlsStream::handshake(stream, &host, addr).await?))
    } else {
        Conn::Plain(stream)
    };
    stream
        .write_all(request)
        .await
        .map_err(|source| HttpError::Write { addr, source })?;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    while head.len() < MAX_RESPONSE {
        let want = chunk.len().min(MAX_RESPONSE - head.len());
        let n = stream
            .read(&mut chunk[..want])
            .await
            .map_err(|source| HttpError::Read { addr, source })?;
        if n == 0 {
            break;
        }
        // Only the new bytes (and the 3 before them) can end the head.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if has_end_of_head(&head[from..]) {
            break;
        }
    }
    parse_status(&head)
}

fn has_end_of_head(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n")
}

/// The status of a response head, parsed by `httparse`: the status line
/// (`HTTP/1.x NNN reason`) and the header lines read. A head cut short (by
/// [`MAX_RESPONSE`] or by the server closing) is judged by its status line,
/// as before; a malformed header line read is an error, as in Go.
fn parse_status(head: &[u8]) -> Result<u16, HttpError> {
    if head.is_empty() {
        return Err(HttpError::Eof);
    }
    let malformed = || {
        let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
        let line = String::from_utf8_lossy(&head[..line_end]);
        HttpError::Malformed(line.trim_end_matches('\r').chars().take(64).collect())
    };
    // Every header line ends with a newline: the count bounds the headers.
    let lines = head.iter().filter(|&&b| b == b'\n').count();
    let mut headers = vec![httparse::EMPTY_HEADER; lines];
    let mut response = httparse::Response::new(&mut headers);
    let parsed = httparse::ParserConfig::default()
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response(&mut response, head);
    match parsed {
        // Complete, or cut short: `code` is set once the status line's
        // three digits are read.
        Ok(_) => {}
        Err(httparse::Error::Version | httparse::Error::Status) => return Err(malformed()),
        Err(e) => return Err(HttpError::MalformedHeader(e.to_string())),
    }
    match response.code {
        Some(status) if status >= 100 => Ok(status),
        _ => Err(malformed()),
    }
}

/// `path` as a request target: leading `/`, and spaces, controls and
/// non-ASCII bytes percent-encoded (as Go's URL does).
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        out.push('/');
    }
    for b in path.bytes() {
        if b <= b' ' || b >= 0x7f {
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(b as char);
        }
    }
    out
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The request bytes; custom headers replace the defaults of the same name.
fn build_request(
    host: &str,
    path: &str,
    headers: &[(String, String)],
) -> Result<Vec<u8>, HttpError> {
    for (name, value) in headers {
        if !is_token(name) || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(HttpError::InvalidHeader(name.clone()));
        }
    }
    if host.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(HttpError::InvalidHeader("Host".into()));
    }
    let custom = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
    let host = custom("Host").map_or(host, |(_, v)| v.as_str());
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    if custom("User-Agent").is_none() {
        let _ = write!(req, "User-Agent: {USER_AGENT}\r\n");
    }
    if custom("Accept").is_none() {
        req.push_str("Accept: */*\r\n");
    }
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("Host") && !name.eq_ignore_ascii_case("Connection") {
            let _ = write!(req, "{name}: {}\r\n", value.trim());
        }
    }
    req.push_str("Connection: close\r\n\r\n");
    Ok(req.into_bytes())
}

#[cfg(test)]
mod unit {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn the_request_carries_kubelet_defaults() {
        let req = build_request("10.0.0.5:8080", "/healthz", &[]).unwrap();
        assert_eq!(
            String::from_utf8(req).unwrap(),
            "GET /healthz HTTP/1.1\r\nHost: 10.0.0.5:8080\r\nUser-Agent: kube-probe/1.31\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn custom_headers_replace_host_user_agent_and_accept() {
        let headers = h(&[
            ("host", "example.test"),
            ("User-Agent", "mine"),
            ("X-A", " 1 "),
        ]);
        let req = String::from_utf8(build_request("1.2.3.4:80", "/", &headers).unwrap()).unwrap();
        assert!(
            req.starts_with("GET / HTTP/1.1\r\nHost: example.test\r\n"),
            "{req}"
        );
        assert!(
            !req.contains("kube-probe") && !req.contains("1.2.3.4"),
            "{req}"
        );
        assert!(
            req.contains("User-Agent: mine\r\n") && req.contains("X-A: 1\r\n"),
            "{req}"
        );
        assert!(req.contains("Accept: */*\r\n") && req.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn header_injection_is_refused() {
        assert!(build_request("h", "/", &h(&[("X", "a\r\nEvil: 1")])).is_err());
        assert!(build_request("h", "/", &h(&[("Bad Name", "v")])).is_err());
        assert!(build_request("h\r\nX: y", "/", &[]).is_err());
    }

    #[test]
    fn paths_get_a_slash_and_percent_encoding() {
        assert_eq!(encode_path(""), "/");
        assert_eq!(encode_path("healthz"), "/healthz");
        assert_eq!(encode_path("/a b?x=1"), "/a%20b?x=1");
        assert_eq!(encode_path("/é\r\n"), "/%C3%A9%0D%0A");
    }

    #[test]
    fn status_lines_parse_or_fail_like_go() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n\r\n").unwrap(), 200);
        assert_eq!(parse_status(b"HTTP/1.0 302\r\n").unwrap(), 302);
        assert_eq!(
            parse_status(b"HTTP/1.1 503 Service Unavailable").unwrap(),
            503
        );
        assert!(matches!(parse_status(b""), Err(HttpError::Eof)));
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n"[..],
            b"HTTP/1.1 20 OK\r\n",
            b"HTTP/1.1 2000\r\n",
            b"HTTP/2 200\r\n",
        ] {
            assert!(
                matches!(parse_status(bad), Err(HttpError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn header_lines_are_parsed_and_checked() {
        // Many headers, a folded (obsolete) header line, bare `\n` ends.
        let mut many = b"HTTP/1.1 204 No Content\r\n".to_vec();
        for i in 0..500 {
            many.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_status(&many).unwrap(), 204);
        assert_eq!(
            parse_status(b"HTTP/1.1 200 OK\r\nX: a\r\n  b\r\n\r\n").unwrap(),
            200
        );
        assert_eq!(
            parse_status(b"HTTP/1.0 301 Moved\nLocation: /\n\n").unwrap(),
            301
        );
        // A head cut short inside a header: the status line decides.
        assert_eq!(parse_status(b"HTTP/1.1 500 Oops\r\nX-Fill").unwrap(), 500);
        for bad in [
            &b"HTTP/1.1 200 OK\r\nNo Colon Here\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n",
        ] {
            assert!(
                matches!(parse_status(bad), Err(HttpError::MalformedHeader(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_status(b"HTTP/1.1 099 Low\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
    }
}
