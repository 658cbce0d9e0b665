//! rustls client configuration from PEM files, and the handshake driven on
//! the reactor.

use std::fs;
use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::{TlsSettings, TransportError};
use crate::reactor::Async;

/// Where distributions keep the CA bundle, after `$SSL_CERT_FILE`.
const SYSTEM_BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // RHEL 7+
    "/etc/ssl/ca-bundle.pem",             // openSUSE
    "/etc/ssl/cert.pem",                  // Alpine, BSDs
];

/// Builds the client configuration (TLS 1.2 and 1.3; ring, with P-256 from
/// `p256`: [`super::crypto`]).
pub(super) fn client_config(s: &TlsSettings) -> Result<Arc<ClientConfig>, TransportError> {
    let named = |p: &Option<PathBuf>| match p {
        Some(p) => read(p).map(|pem| {
            Some(NamedPem {
                name: p.clone(),
                pem,
            })
        }),
        None => Ok(None),
    };
    config_from(
        named(&s.ca_file)?,
        named(&s.client_cert)?,
        named(&s.client_key)?,
    )
}

/// PEM text and what to call it in errors: its file, or the field that
/// gave it inline (a fleet document's `registries`).
pub(crate) struct NamedPem {
    pub name: PathBuf,
    pub pem: Vec<u8>,
}

/// [`client_config`] from PEM text: the CA certificates to trust (`None`:
/// the system roots), and the client certificate chain and key.
pub(crate) fn config_from(
    ca: Option<NamedPem>,
    cert: Option<NamedPem>,
    key: Option<NamedPem>,
) -> Result<Arc<ClientConfig>, TransportError> {
    let roots = match &ca {
        Some(ca) => pem_roots(ca)?,
        None => system_roots()?,
    };
    let provider = Arc::new(super::crypto::provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TransportError::Config)?
        .with_root_certificates(roots);
    let config = match (&cert, &key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(certificates_in(cert)?, private_key_in(key)?)
            .map_err(TransportError::Config)?,
        _ => return Err(TransportError::ClientAuthIncomplete),
    };
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<Vec<u8>, TransportError> {
    fs::read(path).map_err(|source| TransportError::ReadFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in a PEM file (at least one).
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    certificates_in(&NamedPem {
        name: path.to_path_buf(),
        pem: read(path)?,
    })
}

/// Every certificate in PEM text (at least one).
pub(crate) fn certificates_in(
    p: &NamedPem,
) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let certs = CertificateDer::pem_slice_iter(&p.pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TransportError::Pem {
            path: p.name.clone(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TransportError::NoCertificate {
            path: p.name.clone(),
        });
    }
    Ok(certs)
}

/// The private key in PEM text (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn private_key_in(p: &NamedPem) -> Result<PrivateKeyDer<'static>, TransportError> {
    PrivateKeyDer::from_pem_slice(&p.pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TransportError::NoKey {
            path: p.name.clone(),
        },
        e => TransportError::Pem {
            path: p.name.clone(),
            reason: e.to_string(),
        },
    })
}

/// The CA's certificates; each must be usable as a trust anchor.
fn pem_roots(ca: &NamedPem) -> Result<RootCertStore, TransportError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates_in(ca)? {
        roots
            .add(cert)
            .map_err(|source| TransportError::BadCaCertificate {
                path: ca.name.clone(),
                source,
            })?;
    }
    Ok(roots)
}

/// The system bundle: `$SSL_CERT_FILE`, else the first of
/// [`SYSTEM_BUNDLES`] with a usable certificate. Unparsable entries of a
/// bundle are skipped, as every TLS library does.
pub(super) fn system_roots() -> Result<RootCertStore, TransportError> {
    let mut tried = Vec::new();
    let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let candidates = env
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from));
    for path in candidates {
        tried.push(path.display().to_string());
        let Ok(certs) = certificates(&path) else {
            continue;
        };
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added > 0 {
            return Ok(roots);
        }
    }
    Err(TransportError::NoSystemRoots {
        tried: tried.join(", "),
    })
}

/// Runs the TLS handshake over `sock` until rustls says it is done and its
/// last flight (the client's Finished) is written.
///
/// With TLS 1.3 the client finishes before the server has checked the
/// client certificate: a refused (or missing) certificate shows up as an
/// alert at the first read, not here.
pub(super) async fn handshake(
    sock: &Async<TcpStream>,
    config: Arc<ClientConfig>,
    host: &str,
    peer: &str,
) -> Result<ClientConnection, TransportError> {
    let name = ServerName::try_from(host.to_string()).map_err(|_| TransportError::ServerName {
        host: host.to_string(),
    })?;
    let mut conn = ClientConnection::new(config, name).map_err(TransportError::Config)?;
    let io_err = |source: io::Error| TransportError::Handshake {
        peer: peer.to_string(),
        source,
    };
    loop {
        if conn.wants_write() {
            sock.write_with(|s| conn.write_tls(&mut &*s))
                .await
                .map_err(io_err)?;
            continue;
        }
        if !conn.is_handshaking() {
            return Ok(conn);
        }
        let n = sock
            .read_with(|s| conn.read_tls(&mut &*s))
            .await
            .map_err(io_err)?;
        if n == 0 {
            let eof = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            );
            return Err(io_err(eof));
        }
        if let Err(source) = conn.process_new_packets() {
            // Best effort: send the alert rustls queued, then give up.
            let _ = conn.write_tls(&mut sock.get_ref());
            return Err(TransportError::Tls {
                peer: peer.to_string(),
                source,
            });
        }
    }
}
