//! TLS for `httpGet` probes and hooks with `scheme: HTTPS`, as the kubelet
//! does it: the server's certificate is not verified (Go's
//! `InsecureSkipVerify`), but the handshake signature still is, with the
//! certificate's key (Go checks it too). TLS 1.2 and 1.3, the rustls
//! provider of the MQTT and registry clients
//! ([`crate::fleet::transport::crypto`]). SNI is the URL's host when it is
//! a name, none for an IP address (Go takes it from the URL, not from a
//! `Host` header). No session resumption: each probe is a new handshake,
//! like the kubelet's transport without keep-alives.
//!
//! [`TlsStream`] drives rustls' `ClientConnection` over the reactor's
//! non-blocking socket: `write_tls` when writable, `read_tls` and
//! `process_new_packets` when readable. Nothing blocks.

use std::cell::OnceCell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use crate::reactor::Async;

/// Accepts any certificate; checks the handshake signature with its key.
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

thread_local! {
    static CONFIG: OnceCell<Arc<ClientConfig>> = const { OnceCell::new() };
}

/// The probes' client configuration, built once per thread.
fn config() -> Arc<ClientConfig> {
    CONFIG.with(|c| {
        c.get_or_init(|| {
            let provider = Arc::new(crate::fleet::transport::crypto::provider());
            let mut config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("the provider supports TLS 1.2 and 1.3")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
                .with_no_client_auth();
            config.resumption = Resumption::disabled();
            Arc::new(config)
        })
        .clone()
    })
}

/// The server name for SNI: `host` as a DNS name, or an IP address (for
/// which rustls sends no SNI). `None` if it is neither.
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Some(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_string()).ok()
}

/// Why a TLS handshake failed, worded like Go's `crypto/tls` and
/// `net/http` errors.
#[derive(Debug, thiserror::Error)]
pub(super) enum TlsError {
    #[error("EOF")]
    Eof,
    #[error("write tcp {addr}: write: {}", super::os_text(.source))]
    Write { addr: SocketAddr, source: io::Error },
    #[error("read tcp {addr}: read: {}", super::os_text(.source))]
    Read { addr: SocketAddr, source: io::Error },
    #[error("http: server gave HTTP response to HTTPS client")]
    HttpServer,
    #[error("tls: first record does not look like a TLS handshake")]
    NotTls,
    #[error("remote error: tls: {0}")]
    Alert(String),
    #[error("tls: {0}")]
    Local(rustls::Error),
    #[error("tls: invalid server name {0:?}")]
    ServerName(String),
}

/// Keeps the first bytes the server sent, to explain a failed handshake.
struct Recorder<'a> {
    inner: &'a TcpStream,
    first: &'a mut Vec<u8>,
}

impl Read for Recorder<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut inner = self.inner;
        let n = inner.read(buf)?;
        let want = 5usize.saturating_sub(self.first.len()).min(n);
        self.first.extend_from_slice(&buf[..want]);
        Ok(n)
    }
}

/// An alert's name as Go prints it: `HandshakeFailure` → `handshake failure`.
fn alert_text(a: rustls::AlertDescription) -> String {
    let mut out = String::new();
    for c in format!("{a:?}").chars() {
        if c.is_ascii_uppercase() && !out.is_empty() {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A TLS client connection over a connected socket.
pub(super) struct TlsStream {
    sock: Async<TcpStream>,
    conn: ClientConnection,
}

impl TlsStream {
    /// Runs the handshake with `host` (see [`server_name`]) over `sock`.
    pub async fn handshake(
        sock: Async<TcpStream>,
        host: &str,
        addr: SocketAddr,
    ) -> Result<TlsStream, TlsError> {
        let name = server_name(host).ok_or_else(|| TlsError::ServerName(host.to_string()))?;
        let mut conn = ClientConnection::new(config(), name).map_err(TlsError::Local)?;
        let mut first = Vec::with_capacity(5);
        loop {
            while conn.wants_write() {
                sock.write_with(|s| conn.write_tls(&mut &*s))
                    .await
                    .map_err(|source| TlsError::Write { addr, source })?;
            }
            if !conn.is_handshaking() {
                return Ok(TlsStream { sock, conn });
            }
            let n = sock
                .read_with(|s| {
                    conn.read_tls(&mut Recorder {
                        inner: s,
                        first: &mut first,
                    })
                })
                .await
                .map_err(|source| TlsError::Read { addr, source })?;
            if n == 0 {
                return Err(TlsError::Eof);
            }
            if let Err(e) = conn.process_new_packets() {
                // Best effort: send the alert rustls queued.
                let _ = conn.write_tls(&mut sock.get_ref());
                return Err(match e {
                    _ if first.starts_with(b"HTTP/") => TlsError::HttpServer,
                    // Neither a handshake (22) nor an alert (21) record.
                    _ if !matches!(first.first(), Some(21 | 22)) => TlsError::NotTls,
                    rustls::Error::AlertReceived(a) => TlsError::Alert(alert_text(a)),
                    e => TlsError::Local(e),
                });
            }
        }
    }

    /// Sends all of `buf` (encrypted).
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.conn.writer().write_all(buf)?;
        while self.conn.wants_write() {
            let conn = &mut self.conn;
            self.sock.write_with(|s| conn.write_tls(&mut &*s)).await?;
        }
        Ok(())
    }

    /// Reads decrypted bytes into `buf`; 0 at the end of the stream (also
    /// when the server closes without a `close_notify`, as servers do).
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            while self.conn.wants_write() {
                let conn = &mut self.conn;
                self.sock.write_with(|s| conn.write_tls(&mut &*s)).await?;
            }
            let conn = &mut self.conn;
            // At the end (0 bytes) the reader says so next time round:
            // Ok(0) after a close_notify, UnexpectedEof without one.
            self.sock.read_with(|s| conn.read_tls(&mut &*s)).await?;
            if let Err(e) = self.conn.process_new_packets() {
                let _ = self.conn.write_tls(&mut self.sock.get_ref());
                let text = match e {
                    rustls::Error::AlertReceived(a) => {
                        format!("remote error: tls: {}", alert_text(a))
                    }
                    e => format!("tls: {e}"),
                };
                return Err(io::Error::new(io::ErrorKind::InvalidData, text));
            }
        }
    }
}
