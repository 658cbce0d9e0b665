//! A small blocking HTTP/1.1 client for the pull helper process (never
//! the agent): std `TcpStream` (+ rustls with ring for `https`),
//! `httparse` for the response head, Content-Length, chunked and
//! until-close bodies, redirects, and connect/read timeouts.
//!
//! One connection per request (`Connection: close`): a pull makes a few
//! dozen requests at most, each blob is one long response, and no
//! connection pool means no stale-connection retries. Names are resolved
//! with std's `ToSocketAddrs` (getaddrinfo), acceptable in the helper.
//!
//! Body reads fail with `UnexpectedEof` when the peer closes before the
//! announced length (or the last chunk): the caller resumes with `Range`.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::fleet::transport::{NamedPem, TransportError, tls_config_from};
use std::path::PathBuf;

/// Largest response head accepted.
const HEAD_LIMIT: usize = 64 * 1024;
/// Redirects followed per request (Go's `net/http` allows 10).
const MAX_REDIRECTS: usize = 10;

/// `http[s]://host[:port]/path?query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, HttpError> {
        let bad = |reason: &str| HttpError::BadUrl {
            url: s.to_string(),
            reason: reason.to_string(),
        };
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("expected http:// or https://"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err(bad("user:password@ in URLs is not supported"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host or port"))?;
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port = port.unwrap_or(if tls { 443 } else { 80 });
        Ok(Url {
            tls,
            host: host.to_string(),
            port,
            path,
        })
    }

    /// `host[:port]` as in a `Host` header (the port only when not the
    /// scheme's default).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Resolves a `Location` header against this URL.
    pub fn join(&self, location: &str) -> Result<Url, HttpError> {
        if location.starts_with("http://") || location.starts_with("https://") {
            return Url::parse(location);
        }
        if let Some(rest) = location.strip_prefix("//") {
            let scheme = if self.tls { "https" } else { "http" };
            return Url::parse(&format!("{scheme}://{rest}"));
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            let base = self.path.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        Ok(Url {
            path,
            ..self.clone()
        })
    }

    fn same_origin(&self, other: &Url) -> bool {
        self.tls == other.tls && self.host == other.host && self.port == other.port
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return None,
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return None,
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0)?),
        None => None,
    };
    Some((host, port))
}

/// Everything that can fail in a request. [`HttpError::is_unreachable`]
/// tells "the registry cannot be reached" (offline) from the rest.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("invalid URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("TLS configuration for {host}: {reason}")]
    TlsConfig { host: String, reason: String },
    #[error("{url}: {source}")]
    Io { url: String, source: io::Error },
    #[error("{url}: invalid HTTP response: {reason}")]
    Protocol { url: String, reason: String },
    #[error("{url}: more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects { url: String },
}

impl HttpError {
    /// DNS failure, refused/unreachable connection, or a timeout before
    /// any response: the registry is offline from here.
    pub fn is_unreachable(&self) -> bool {
        match self {
            HttpError::Resolve { .. } | HttpError::Connect { .. } => true,
            HttpError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }
}

/// TLS material for one host (`registries.yaml` `configs.<host>.tls`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostTls {
    /// CA certificates to trust; `None`: the system roots.
    pub ca: Option<Pem>,
    /// Client certificate chain (mutual TLS), with `key`.
    pub cert: Option<Pem>,
    pub key: Option<Pem>,
}

/// PEM text: a file (`ca_file`, …) or the text itself (`ca`, …: the
/// fleet's form, docs/images.md). Its `Debug` never shows inline text.
#[derive(Clone, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    /// `field`: where it was given (`configs["h"].tls.key`), for errors.
    Inline {
        field: String,
        text: String,
    },
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(p) => write!(f, "File({p:?})"),
            Pem::Inline { field, .. } => write!(f, "Inline({field}, <redacted>)"),
        }
    }
}

impl Pem {
    /// The text, read from its file if need be, named for errors.
    fn load(&self) -> Result<NamedPem, TransportError> {
        match self {
            Pem::File(path) => std::fs::read(path)
                .map(|pem| NamedPem {
                    name: path.clone(),
                    pem,
                })
                .map_err(|source| TransportError::ReadFile {
                    path: path.clone(),
                    source,
                }),
            Pem::Inline { field, text } => Ok(NamedPem {
                name: field.into(),
                pem: text.as_bytes().to_vec(),
            }),
        }
    }
}

/// The rustls client configuration of `t`.
fn host_config(t: &HostTls) -> Result<Arc<ClientConfig>, TransportError> {
    let load = |p: &Option<Pem>| p.as_ref().map(Pem::load).transpose();
    tls_config_from(load(&t.ca)?, load(&t.cert)?, load(&t.key)?)
}

/// A blocking client; `Sync` (the pull's layer threads share it).
#[derive(Debug)]
pub struct Client {
    timeout: Duration,
    hosts: HashMap<String, HostTls>,
    configs: Mutex<HashMap<String, Arc<ClientConfig>>>,
    user_agent: String,
}

/// Response headers: lowercased names, trimmed values.
pub type ResponseHeaders = Vec<(String, String)>;

/// Request headers, in order.
pub type Headers = Vec<(String, String)>;

impl Client {
    /// `timeout` bounds the connect and every single read and write;
    /// `hosts` holds per-host TLS settings (keyed `host` or `host:port`);
    /// others use the system roots.
    pub fn new(timeout: Duration, hosts: HashMap<String, HostTls>) -> Client {
        Client {
            timeout,
            hosts,
            configs: Mutex::new(HashMap::new()),
            user_agent: format!("picolet/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    fn tls_config(&self, url: &Url) -> Result<Arc<ClientConfig>, HttpError> {
        let key = url.authority();
        let mut cache = self.configs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let with_port = format!("{}:{}", url.host, url.port);
        let settings = self
            .hosts
            .get(&key)
            .or_else(|| self.hosts.get(&with_port))
            .or_else(|| self.hosts.get(&url.host))
            .cloned()
            .unwrap_or_default();
        let config = host_config(&settings).map_err(|e| HttpError::TlsConfig {
            host: key.clone(),
            reason: e.to_string(),
        })?;
        cache.insert(key, config.clone());
        Ok(config)
    }

    /// One request, no redirects followed.
    pub fn send(&self, method: &str, url: &Url, headers: &Headers) -> Result<Response, HttpError> {
        let io_err = |source| HttpError::Io {
            url: url.to_string(),
            source,
        };
        let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|source| HttpError::Resolve {
                host: url.host.clone(),
                source,
            })?
            .collect();
        let mut last = None;
        let mut sock = None;
        for addr in &addrs {
            match TcpStream::connect_timeout(addr, self.timeout) {
                Ok(s) => {
                    sock = Some(s);
                    break;
                }
                Err(e) => last = Some((addr, e)),
            }
        }
        let sock = match (sock, last) {
            (Some(s), _) => s,
            (None, Some((addr, source))) => {
                return Err(HttpError::Connect {
                    addr: addr.to_string(),
                    source,
                });
            }
            (None, None) => {
                return Err(HttpError::Resolve {
                    host: url.host.clone(),
                    source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
                });
            }
        };
        sock.set_read_timeout(Some(self.timeout)).map_err(io_err)?;
        sock.set_write_timeout(Some(self.timeout)).map_err(io_err)?;
        let _ = sock.set_nodelay(true);
        let mut stream = if url.tls {
            let name = ServerName::try_from(url.host.clone()).map_err(|_| HttpError::BadUrl {
                url: url.to_string(),
                reason: "not a valid TLS server name".to_string(),
            })?;
            let conn = ClientConnection::new(self.tls_config(url)?, name).map_err(|e| {
                HttpError::TlsConfig {
                    host: url.authority(),
                    reason: e.to_string(),
                }
            })?;
            Stream::Tls(Box::new(StreamOwned::new(conn, sock)))
        } else {
            Stream::Plain(sock)
        };
        let mut head = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nConnection: close\r\n",
            url.path,
            url.authority(),
            self.user_agent
        );
        for (k, v) in headers {
            if v.contains(['\r', '\n']) || k.contains(['\r', '\n', ':']) {
                return Err(HttpError::BadUrl {
                    url: url.to_string(),
                    reason: format!("header {k:?} has a line break"),
                });
            }
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).map_err(io_err)?;
        stream.flush().map_err(io_err)?;
        let mut reader = BufReader::with_capacity(16 * 1024, stream);
        read_response(&mut reader, method == "HEAD", url).map(|(status, headers, framing)| {
            Response {
                status,
                headers,
                url: url.clone(),
                body: Body {
                    inner: reader,
                    framing,
                },
            }
        })
    }

    /// [`Client::send`], following 301/302/303/307/308 redirects. An
    /// `Authorization` header is dropped when the redirect leaves the
    /// origin (as Go's and curl's clients do: S3 presigned URLs reject
    /// it, and it must not leak to another host).
    pub fn request(
        &self,
        method: &str,
        url: &Url,
        headers: &Headers,
    ) -> Result<Response, HttpError> {
        let mut url = url.clone();
        let mut headers = headers.clone();
        for _ in 0..=MAX_REDIRECTS {
            let resp = self.send(method, &url, &headers)?;
            if !matches!(resp.status, 301 | 302 | 303 | 307 | 308) {
                return Ok(resp);
            }
            let Some(loc) = resp.header("location") else {
                return Ok(resp);
            };
            let next = url.join(loc)?;
            if !next.same_origin(&url) {
                headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
            }
            url = next;
        }
        Err(HttpError::TooManyRedirects {
            url: url.to_string(),
        })
    }
}

/// A plain or TLS socket.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Plain(_) => "Stream::Plain",
            Stream::Tls(_) => "Stream::Tls",
        })
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// How the body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    /// In a chunk with this many bytes left (0: read the next size line).
    Chunked {
        left: u64,
        done: bool,
    },
    UntilClose,
}

/// A response: status, headers (names lowercased) and a streaming body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The URL that answered (after redirects).
    pub url: Url,
    pub body: Body,
}

impl Response {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All headers named `name` (lowercase).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Reads the whole body, at most `limit` bytes (more is an error).
    pub fn read_body(mut self, limit: u64) -> Result<Vec<u8>, HttpError> {
        let mut buf = Vec::new();
        let url = self.url.to_string();
        (&mut self.body)
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|source| HttpError::Io {
                url: url.clone(),
                source,
            })?;
        if buf.len() as u64 > limit {
            return Err(HttpError::Protocol {
                url,
                reason: format!("body larger than {limit} bytes"),
            });
        }
        Ok(buf)
    }
}

/// A response body: reads end at its framing's end.
pub struct Body {
    inner: BufReader<Stream>,
    framing: Framing,
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Body({:?})", self.framing)
    }
}

fn eof(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, what.to_string())
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.framing {
            Framing::Length(0) => Ok(0),
            Framing::Length(left) => {
                let max = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = self.inner.read(&mut buf[..max])?;
                if n == 0 {
                    return Err(eof("connection closed before the end of the body"));
                }
                self.framing = Framing::Length(left - n as u64);
                Ok(n)
            }
            Framing::UntilClose => self.inner.read(buf),
            Framing::Chunked { done: true, .. } => Ok(0),
            Framing::Chunked { left: 0, .. } => {
                let size = read_chunk_size(&mut self.inner)?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    loop {
                        let line = read_line(&mut self.inner)?;
                        if line.is_empty() {
                            break;
                        }
                    }
                    self.framing = Framing::Chunked {
                        left: 0,
                        done: true,
                    };
                    return Ok(0);
                }
                self.framing = Framing::Chunked {
                    left: size,
                    done: false,
                };
                self.read(buf)
            }
            Framing::Chunked { left, .. } => {
                let max = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = self.inner.read(&mut buf[..max])?;
                if n == 0 {
                    return Err(eof("connection closed inside a chunk"));
                }
                let left = left - n as u64;
                if left == 0 {
                    let crlf = read_line(&mut self.inner)?;
                    if !crlf.is_empty() {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "chunk not followed by CRLF",
                        ));
                    }
                }
                self.framing = Framing::Chunked { left, done: false };
                Ok(n)
            }
        }
    }
}

/// One CRLF- (or LF-) terminated line, without the terminator; at most
/// 4 KiB.
fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    let n = r.take(4096).read_until(b'\n', &mut line)?;
    if n == 0 || line.last() != Some(&b'\n') {
        return Err(eof("connection closed in a chunk header"));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))
}

fn read_chunk_size(r: &mut impl BufRead) -> io::Result<u64> {
    let line = read_line(r)?;
    let hex = line.split(';').next().unwrap_or("").trim();
    u64::from_str_radix(hex, 16).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad chunk size {hex:?}"),
        )
    })
}

/// Reads the status line and headers; returns them with the body framing.
fn read_response(
    r: &mut BufReader<Stream>,
    head_request: bool,
    url: &Url,
) -> Result<(u16, ResponseHeaders, Framing), HttpError> {
    let io_err = |source| HttpError::Io {
        url: url.to_string(),
        source,
    };
    let proto = |reason: String| HttpError::Protocol {
        url: url.to_string(),
        reason,
    };
    let mut head = Vec::new();
    loop {
        let n = r
            .by_ref()
            .take(HEAD_LIMIT as u64)
            .read_until(b'\n', &mut head)
            .map_err(io_err)?;
        if n == 0 {
            return Err(io_err(eof("connection closed before a response")));
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
        if head.len() > HEAD_LIMIT {
            return Err(proto(format!("response head over {HEAD_LIMIT} bytes")));
        }
    }
    let mut storage = [httparse::EMPTY_HEADER; 100];
    let mut resp = httparse::Response::new(&mut storage);
    match resp.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(proto("incomplete head".to_string())),
        Err(e) => return Err(proto(e.to_string())),
    }
    let status = resp.code.unwrap_or(0);
    let headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let framing = if head_request || status == 204 || status == 304 || (100..200).contains(&status)
    {
        Framing::Length(0)
    } else if get("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked")) {
        Framing::Chunked {
            left: 0,
            done: false,
        }
    } else if let Some(len) = get("content-length") {
        Framing::Length(
            len.parse()
                .map_err(|_| proto(format!("bad Content-Length {len:?}")))?,
        )
    } else {
        Framing::UntilClose
    };
    Ok((status, headers, framing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn urls_parse_join_and_print() {
        let u = Url::parse("https://registry-1.docker.io/v2/").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port),
            (true, "registry-1.docker.io", 443)
        );
        assert_eq!(u.to_string(), "https://registry-1.docker.io/v2/");
        let u = Url::parse("http://[::1]:5000").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 5000, "/")
        );
        assert_eq!(u.authority(), "[::1]:5000");
        let u = Url::parse("http://h:8080/a/b?x=1").unwrap();
        assert_eq!(u.join("/c").unwrap().to_string(), "http://h:8080/c");
        assert_eq!(u.join("d").unwrap().to_string(), "http://h:8080/a/d");
        assert_eq!(
            u.join("https://s3.example/x?sig=1").unwrap().to_string(),
            "https://s3.example/x?sig=1"
        );
        assert_eq!(u.join("//o:1/p").unwrap().to_string(), "http://o:1/p");
        for bad in [
            "ftp://x",
            "http://",
            "http://h:0/",
            "http://h:99999",
            "http://u:p@h/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    /// A one-shot server answering each connection with the next canned
    /// response; returns the requests it saw.
    fn serve(responses: Vec<Vec<u8>>) -> (u16, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for resp in responses {
                let (mut s, _) = l.accept().unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut req = String::new();
                loop {
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    req.push_str(&line);
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                }
                seen.push(req);
                s.write_all(&resp).unwrap();
            }
            seen
        });
        (port, h)
    }

    fn client() -> Client {
        Client::new(Duration::from_secs(5), HashMap::new())
    }

    #[test]
    fn content_length_chunked_and_until_close_bodies_are_read_to_their_end() {
        let (port, h) = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n".to_vec(),
            b"HTTP/1.0 200 OK\r\n\r\nuntil close".to_vec(),
        ]);
        let url = Url::parse(&format!("http://127.0.0.1:{port}/x")).unwrap();
        let c = client();
        let r = c.send("GET", &url, &vec![]).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.read_body(100).unwrap(), b"hello");
        let r = c.send("GET", &url, &vec![]).unwrap();
        assert_eq!(r.read_body(100).unwrap(), b"abcde");
        let r = c
            .send("GET", &url, &vec![("Range".into(), "bytes=3-".into())])
            .unwrap();
        assert_eq!(r.read_body(100).unwrap(), b"until close");
        let seen = h.join().unwrap();
        assert!(seen[2].contains("Range: bytes=3-\r\n"), "{}", seen[2]);
        assert!(
            seen[0].starts_with("GET /x HTTP/1.1\r\nHost: 127.0.0.1:"),
            "{}",
            seen[0]
        );
    }

    #[test]
    fn a_body_cut_short_is_an_unexpected_eof_not_a_short_success() {
        let (port, h) = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab".to_vec(),
        ]);
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let c = client();
        for _ in 0..2 {
            let mut r = c.send("GET", &url, &vec![]).unwrap();
            let mut buf = Vec::new();
            let e = r.body.read_to_end(&mut buf).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        }
        h.join().unwrap();
    }

    #[test]
    fn redirects_to_another_host_drop_authorization_and_same_host_keeps_it() {
        let (p2, h2) = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        ]);
        // "localhost" and 127.0.0.1 are different origins.
        let (p1, h1) = serve(vec![
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n".to_string()
                .into_bytes(),
            format!("HTTP/1.1 302 Found\r\nLocation: http://localhost:{p2}/blob?sig=x\r\nContent-Length: 0\r\n\r\n")
                .into_bytes(),
        ]);
        let url = Url::parse(&format!("http://127.0.0.1:{p1}/start")).unwrap();
        let auth = vec![("Authorization".to_string(), "Bearer secret".to_string())];
        let r = client().request("GET", &url, &auth).unwrap();
        assert_eq!(r.url.path, "/blob?sig=x");
        assert_eq!(r.read_body(10).unwrap(), b"ok");
        let first = h1.join().unwrap();
        assert!(first[1].starts_with("GET /next "), "{}", first[1]);
        assert!(
            first[1].contains("Authorization: Bearer secret"),
            "{}",
            first[1]
        );
        let second = h2.join().unwrap();
        assert!(!second[0].contains("Authorization"), "{}", second[0]);
    }

    #[test]
    fn a_refused_connection_is_unreachable_and_a_404_is_not_an_error_here() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let e = client().send("GET", &url, &vec![]).unwrap_err();
        assert!(e.is_unreachable(), "{e}");
        let e = client()
            .send(
                "GET",
                &Url::parse("http://no-such-host.invalid/").unwrap(),
                &vec![],
            )
            .unwrap_err();
        assert!(e.is_unreachable(), "{e}");
        let (port, h) = serve(vec![
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ]);
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        assert_eq!(client().send("HEAD", &url, &vec![]).unwrap().status, 404);
        h.join().unwrap();
    }

    #[test]
    fn a_silent_server_times_out_as_unreachable() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let c = Client::new(Duration::from_millis(300), HashMap::new());
        let e = c.send("GET", &url, &vec![]).unwrap_err();
        assert!(e.is_unreachable(), "{e}");
        drop(l);
    }
}
