//! The byte stream under the MQTT session, on the project's reactor.
//!
//! `mqtt://host[:1883]` is a plain TCP connection (`Async<TcpStream>`,
//! `TCP_NODELAY`). `mqtts://host[:8883]` adds rustls (TLS 1.2 and 1.3;
//! ring, with P-256 from RustCrypto's `p256`: [`crypto`]) driven by hand:
//! `read_tls`/`process_new_packets`/`write_tls` whenever the reactor says
//! the socket is readable or writable. No tokio, no thread, no blocking.
//!
//! Fds: one TCP socket per [`Transport`], registered with the calling
//! thread's reactor and closed when the last clone is dropped. Files: the
//! CA file or the system roots, and the client certificate and key, read on
//! every [`connect`] (so renewed certificates are used from the next
//! reconnect on).
//!
//! Name resolution: IP literals and `localhost` (127.0.0.1, then ::1) are
//! taken as they are. Any other host name is looked up by getaddrinfo(3) in
//! a child process, `/proc/self/exe resolve HOST PORT` ([`lookup_main`]),
//! whose output the reactor reads: a stalled DNS server delays the
//! connection, never the agent's thread, and the session's connect timeout
//! cancels the lookup (the child is killed and reaped). The child costs one
//! fork and exec of this binary per connection attempt by name.
//!
//! [`connect`] has no timeout of its own: the session's connect timeout
//! bounds it (the shell drops the future on `SessionOutput::Close`).
//!
//! A [`Transport`] is a cheap handle (`Rc`): clone it to read in one task
//! and write in another. Use at most one reader and one writer at a time.

pub(crate) mod crypto;
mod tls;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::str::FromStr;

use rustls::ClientConnection;

use crate::reactor::Async;

/// The rustls client configuration from PEM text (TLS 1.2/1.3, [`crypto`]),
/// shared with the registry client (`crate::image::registry::http`).
pub(crate) use tls::{NamedPem, certificates_in, config_from as tls_config_from, private_key_in};

pub const MQTT_PORT: u16 = 1883;
pub const MQTTS_PORT: u16 = 8883;

/// `mqtt://host[:port]` or `mqtts://host[:port]`; IPv6 literals in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<BrokerUrl, TransportError> {
        let bad = |reason| TransportError::BadUrl {
            url: url.to_string(),
            reason,
        };
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(bad("the scheme must be mqtt:// or mqtts://"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad("only host and port are allowed"));
        }
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (host, after) = r.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address in brackets"));
            }
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
                ),
            }
        } else {
            match rest.split_once(':') {
                Some((_, p)) if p.contains(':') => {
                    return Err(bad("put IPv6 addresses in brackets"));
                }
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None if tls => MQTTS_PORT,
            None => MQTT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => return Err(bad("the port must be 1-65535")),
            },
        };
        Ok(BrokerUrl {
            tls,
            host: host.to_string(),
            port,
        })
    }
}

impl FromStr for BrokerUrl {
    type Err = TransportError;
    fn from_str(s: &str) -> Result<BrokerUrl, TransportError> {
        BrokerUrl::parse(s)
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// TLS files for `mqtts://` (ignored for `mqtt://`). The server's name is
/// always verified against the URL's host (an IP literal against the
/// certificate's IP SANs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM CA certificates to trust; `None`: the system roots
    /// (`$SSL_CERT_FILE`, else the distribution's bundle).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain for mTLS, leaf first. Needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `client_cert`.
    pub client_key: Option<PathBuf>,
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("bad broker URL {url:?}: {reason}")]
    BadUrl { url: String, reason: &'static str },
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("cannot read {}: {source}", path.display())]
    ReadFile { path: PathBuf, source: io::Error },
    #[error("{}: bad PEM: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("{}: no certificate in it", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no private key in it", path.display())]
    NoKey { path: PathBuf },
    #[error("{}: unusable CA certificate: {source}", path.display())]
    BadCaCertificate {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("no system CA certificates (tried {tried})")]
    NoSystemRoots { tried: String },
    #[error("mTLS needs both a client certificate and its key")]
    ClientAuthIncomplete,
    #[error("{host:?} is not a valid TLS server name")]
    ServerName { host: String },
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
    #[error("TLS with {peer}: {source}")]
    Tls { peer: String, source: rustls::Error },
    #[error("TLS handshake with {peer}: {source}")]
    Handshake { peer: String, source: io::Error },
}

/// Opens a connection to the broker: resolves, connects (trying each
/// address in turn) and, for `mqtts://`, completes the TLS handshake.
pub async fn connect(url: &BrokerUrl, tls: &TlsSettings) -> Result<Transport, TransportError> {
    // Load the TLS files first: a config error needs no network.
    let config = if url.tls {
        Some(tls::client_config(tls)?)
    } else {
        None
    };
    let mut last_err = None;
    let mut stream = None;
    for addr in resolve(&url.host, url.port).await? {
        match Async::<TcpStream>::connect(addr).await {
            Ok(s) => {
                stream = Some((s, addr));
                break;
            }
            Err(source) => last_err = Some(TransportError::Connect { addr, source }),
        }
    }
    let Some((sock, addr)) = stream else {
        return Err(last_err.unwrap_or_else(|| TransportError::NoAddress {
            host: url.host.clone(),
        }));
    };
    // MQTT packets are small and latency matters more than segment count.
    let _ = sock.get_ref().set_nodelay(true);
    let peer = addr.to_string();
    let tls = match config {
        None => None,
        Some(config) => Some(RefCell::new(
            tls::handshake(&sock, config, &url.host, &peer).await?,
        )),
    };
    Ok(Transport {
        inner: Rc::new(Inner { sock, tls, peer }),
    })
}

/// The program that [`resolve`] runs as `PROGRAM resolve HOST PORT`.
const RESOLVER: &str = "/proc/self/exe";
/// The most a lookup may print (a few hundred addresses).
const LOOKUP_OUTPUT_MAX: usize = 16 * 1024;

/// The addresses of `host`: see the module docs.
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, TransportError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(vec![
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
        ]);
    }
    lookup_with(Path::new(RESOLVER), host, port).await
}

/// Runs `program resolve HOST PORT` and reads its answer: one socket
/// address per line, or one `error: …` line and a failure status.
pub async fn lookup_with(
    program: &Path,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, TransportError> {
    let err = |source| TransportError::Resolve {
        host: host.to_string(),
        source,
    };
    match run_resolver(program, host, port).await.map_err(err)? {
        Resolved::Addrs(addrs) => Ok(addrs),
        Resolved::Failed(why, status) => Err(err(io::Error::other(format!("{why} ({status})")))),
        Resolved::Garbled(l) => Err(err(io::Error::other(format!("lookup printed {l:?}")))),
    }
}

/// What the `resolve` child answered.
#[derive(Debug)]
pub enum Resolved {
    /// Its addresses, in its order.
    Addrs(Vec<SocketAddr>),
    /// Its reason (without `error: `) and exit status.
    Failed(String, std::process::ExitStatus),
    /// A line that is not a socket address.
    Garbled(String),
}

/// Runs `program resolve HOST PORT` on the reactor (the broker's lookup
/// and a probe's host): the one reader of [`lookup_main`]'s output.
pub async fn run_resolver(program: &Path, host: &str, port: u16) -> io::Result<Resolved> {
    let mut cmd = std::process::Command::new(program);
    cmd.arg("resolve").arg(host).arg(port.to_string());
    let (status, out) = crate::reactor::process::output(&mut cmd, LOOKUP_OUTPUT_MAX).await?;
    let text = String::from_utf8_lossy(&out);
    if !status.success() {
        let why = text.trim().strip_prefix("error: ").unwrap_or(text.trim());
        return Ok(Resolved::Failed(why.to_string(), status));
    }
    let mut addrs = Vec::new();
    for l in text.lines() {
        match l.trim().parse::<SocketAddr>() {
            Ok(a) => addrs.push(a),
            Err(_) => return Ok(Resolved::Garbled(l.trim().to_string())),
        }
    }
    Ok(Resolved::Addrs(addrs))
}

/// `picolet resolve HOST PORT`, the child of [`resolve`]: getaddrinfo(3)
/// and the addresses on stdout, one per line. Returns the exit code.
pub fn lookup_main(args: &[String]) -> i32 {
    let (Some(host), Some(port), None) = (args.first(), args.get(1), args.get(2)) else {
        println!("error: usage: picolet resolve HOST PORT");
        return 2;
    };
    let Ok(port) = port.parse::<u16>() else {
        println!("error: port {port:?} is not a number from 0 to 65535");
        return 2;
    };
    match (host.as_str(), port).to_socket_addrs() {
        Ok(addrs) => {
            for a in addrs {
                println!("{a}");
            }
            0
        }
        Err(e) => {
            println!("error: {e}");
            1
        }
    }
}

/// An open broker connection: see the module docs.
#[derive(Clone)]
pub struct Transport {
    inner: Rc<Inner>,
}

struct Inner {
    sock: Async<TcpStream>,
    /// Borrowed only inside synchronous sections, never across an await.
    tls: Option<RefCell<ClientConnection>>,
    peer: String,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("peer", &self.inner.peer)
            .field("tls", &self.inner.tls.is_some())
            .finish()
    }
}

impl Transport {
    /// The broker's address, `ip:port`.
    pub fn peer(&self) -> &str {
        &self.inner.peer
    }

    pub fn is_tls(&self) -> bool {
        self.inner.tls.is_some()
    }

    /// Reads some bytes; `Ok(0)` at the end of the stream (a TLS peer that
    /// closes without close_notify gives `UnexpectedEof`).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let sock = &self.inner.sock;
        let Some(tls) = &self.inner.tls else {
            return sock.read_with(|s| (&*s).read(&mut *buf)).await;
        };
        loop {
            match tls.borrow_mut().reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                res => return res,
            }
            // Records we owe the peer (alerts, key updates) go out first.
            self.flush_tls(tls).await?;
            sock.read_with(|s| tls.borrow_mut().read_tls(&mut &*s))
                .await?;
            let processed = tls.borrow_mut().process_new_packets();
            if let Err(e) = processed {
                // Best effort: tell the peer why (the alert is queued).
                let _ = tls.borrow_mut().write_tls(&mut sock.get_ref());
                return Err(self.tls_error(e));
            }
        }
    }

    /// Writes all of `data` (encrypted, for TLS).
    pub async fn write_all(&self, data: &[u8]) -> io::Result<()> {
        let sock = &self.inner.sock;
        let Some(tls) = &self.inner.tls else {
            let mut rest = data;
            while !rest.is_empty() {
                let n = sock.write_with(|s| (&*s).write(rest)).await?;
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                rest = &rest[n..];
            }
            return Ok(());
        };
        let mut rest = data;
        while !rest.is_empty() {
            // Takes what fits under rustls' buffer limit.
            let n = tls.borrow_mut().writer().write(rest)?;
            rest = &rest[n..];
            self.flush_tls(tls).await?;
        }
        Ok(())
    }

    /// Ends the stream politely: TLS close_notify, then a TCP half-close.
    pub async fn close(&self) -> io::Result<()> {
        if let Some(tls) = &self.inner.tls {
            tls.borrow_mut().send_close_notify();
            self.flush_tls(tls).await?;
        }
        self.inner.sock.get_ref().shutdown(Shutdown::Write)
    }

    async fn flush_tls(&self, tls: &RefCell<ClientConnection>) -> io::Result<()> {
        let sock = &self.inner.sock;
        while tls.borrow().wants_write() {
            sock.write_with(|s| tls.borrow_mut().write_tls(&mut &*s))
                .await?;
        }
        Ok(())
    }

    fn tls_error(&self, source: rustls::Error) -> io::Error {
        let kind = io::ErrorKind::InvalidData;
        let peer = self.inner.peer.clone();
        io::Error::new(kind, TransportError::Tls { peer, source })
    }
}
