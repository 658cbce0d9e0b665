//! ed25519 signatures for desired documents (`docs/fleet.md`), with `ring`.
//!
//! # Key files
//! Both are PEM, as OpenSSL writes them, so either side can be made or used
//! with `openssl genpkey -algorithm ed25519` / `openssl pkeyutl -rawin`:
//! - **private key** `<name>.key`, mode 0600:
//!   `-----BEGIN PRIVATE KEY-----`, the PKCS#8 DER (v2 from `ring`, v1 from
//!   OpenSSL) in base64 wrapped at 64 columns, `-----END PRIVATE KEY-----`.
//! - **public key** `<name>.pub`: `-----BEGIN PUBLIC KEY-----`, the
//!   SubjectPublicKeyInfo DER (12-byte ed25519 header + the 32 key bytes) in
//!   base64, `-----END PUBLIC KEY-----`.
//!
//! Readers also take the bare base64 of the same DER, and for a public key
//! the bare base64 of its 32 bytes (one line, for pasting). Blank lines and
//! lines starting with `#` are skipped. PEM blocks are decoded by rustls'
//! `pki_types::pem`, bare base64 by the `base64` crate ([`base64`]); the
//! formats are those of the hand-written code they replaced (fixtures in
//! `sign/fixtures/`).
//!
//! A key's **key id** is the hex of the first 8 bytes of SHA-256 over its 32
//! public key bytes; it names the key in envelopes and errors, it is never
//! trusted.
//!
//! I/O: [`keygen`], [`read_private_key`] and [`read_public_key`] touch the
//! files named; everything else is pure. Randomness comes from
//! `getrandom(2)` through `ring::rand::SystemRandom`.

pub mod base64;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Length of an ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// DER header of an ed25519 SubjectPublicKeyInfo (RFC 8410), before the key.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Errors of key handling.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("generating an ed25519 key failed: no system randomness")]
    Generate,
    #[error("{what}: {message}")]
    Format { what: String, message: String },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: already exists, refusing to overwrite a key", .0.display())]
    Exists(PathBuf),
}

fn format_err(what: &str, message: impl Into<String>) -> SignError {
    SignError::Format {
        what: what.to_string(),
        message: message.into(),
    }
}

/// An ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    /// Whether `sig` is a valid signature of exactly `payload` by this key.
    pub fn verify(&self, payload: &[u8], sig: &[u8]) -> bool {
        verify(&self.0, payload, sig)
    }

    /// The key id: hex of the first 8 bytes of SHA-256 of the key.
    pub fn key_id(&self) -> String {
        Sha256::digest(self.0)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A private key, ready to sign.
#[derive(Debug)]
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// A key from PKCS#8 DER (v1 or v2).
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, SignError> {
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(|pair| SigningKey { pair })
            .map_err(|e| format_err("private key", format!("not an ed25519 PKCS#8 key ({e})")))
    }

    pub fn public_key(&self) -> PublicKey {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(out)
    }

    /// The signature of exactly `payload`.
    pub fn sign(&self, payload: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(self.pair.sign(payload).as_ref());
        out
    }
}

/// A new key pair: (PKCS#8 v2 DER of the private key, public key bytes).
pub fn generate_keypair() -> Result<(Vec<u8>, [u8; PUBLIC_KEY_LEN]), SignError> {
    let rng = ring::rand::SystemRandom::new();
    let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| SignError::Generate)?;
    let key = SigningKey::from_pkcs8(doc.as_ref())?;
    Ok((doc.as_ref().to_vec(), key.public_key().0))
}

/// Signs `payload` with a PKCS#8 private key.
pub fn sign(pkcs8_private: &[u8], payload: &[u8]) -> Result<[u8; SIGNATURE_LEN], SignError> {
    Ok(SigningKey::from_pkcs8(pkcs8_private)?.sign(payload))
}

/// Whether `sig` is a valid ed25519 signature of exactly `payload` by `public`.
pub fn verify(public: &[u8; PUBLIC_KEY_LEN], payload: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public)
        .verify(payload, sig)
        .is_ok()
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The text of a private key file (PEM `PRIVATE KEY`).
pub fn encode_private_key_file(pkcs8: &[u8]) -> String {
    pem("PRIVATE KEY", pkcs8)
}

/// The text of a public key file (PEM `PUBLIC KEY`, SubjectPublicKeyInfo).
pub fn encode_public_key_file(public: &PublicKey) -> String {
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(&public.0);
    pem("PUBLIC KEY", &der)
}

/// A key file's text as read: the bare base64 of the DER, or one PEM block.
enum Armor {
    Bare(Vec<u8>),
    /// The block's label, and its text from the BEGIN to the END line
    /// without the comment and blank lines.
    Pem {
        label: String,
        block: String,
    },
}

/// Splits a key file's text into [`Armor`]: blank lines and `#` comments are
/// skipped; a PEM block must be the whole rest of the file.
fn unarmor(text: &str, what: &str) -> Result<Armor, SignError> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let first = lines
        .first()
        .ok_or_else(|| format_err(what, "the file holds no key"))?;
    let Some(label) = first
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
    else {
        let der = base64::decode(&lines.concat()).map_err(|e| format_err(what, e))?;
        return Ok(Armor::Bare(der));
    };
    let end = format!("-----END {label}-----");
    let Some(at) = lines.iter().position(|l| *l == end) else {
        return Err(format_err(what, format!("no {end:?} line")));
    };
    if at + 1 != lines.len() {
        return Err(format_err(what, format!("text after {end:?}")));
    }
    Ok(Armor::Pem {
        label: label.to_string(),
        block: lines.join("\n"),
    })
}

/// The DER in a PEM `block` labelled as `T` is, decoded by rustls'
/// `pki_types::pem`. A bad body is worded by [`base64::decode`], which names
/// the character and its offset.
fn pem_der<T: PemObject>(
    block: &str,
    what: &str,
    der: impl FnOnce(&T) -> &[u8],
) -> Result<Vec<u8>, SignError> {
    T::from_pem_slice(block.as_bytes())
        .map(|item| der(&item).to_vec())
        .map_err(|e| {
            // `block` is the BEGIN line, the body, then the END line.
            let lines: Vec<&str> = block.lines().collect();
            let body = lines[1..lines.len() - 1].concat();
            match (&e, base64::decode(&body)) {
                (pem::Error::Base64Decode(_), Err(detail)) => format_err(what, detail),
                _ => format_err(what, format!("bad PEM: {e}")),
            }
        })
}

/// PKCS#8 DER from a private key file's text; checked to be an ed25519 key.
/// `what` names the file in errors.
pub fn parse_private_key_file(text: &str, what: &str) -> Result<Vec<u8>, SignError> {
    let der = match unarmor(text, what)? {
        Armor::Bare(der) => der,
        Armor::Pem { label, block } => match label.as_str() {
            "PRIVATE KEY" => pem_der(&block, what, PrivatePkcs8KeyDer::secret_pkcs8_der)?,
            "ENCRYPTED PRIVATE KEY" => {
                return Err(format_err(what, "encrypted private keys are not supported"));
            }
            other => {
                return Err(format_err(
                    what,
                    format!("a {other:?} PEM block is not an ed25519 PRIVATE KEY"),
                ));
            }
        },
    };
    SigningKey::from_pkcs8(&der).map_err(|e| match e {
        SignError::Format { message, .. } => format_err(what, message),
        other => other,
    })?;
    Ok(der)
}

/// The public key in a public key file's text. `what` names the file in errors.
pub fn parse_public_key_file(text: &str, what: &str) -> Result<PublicKey, SignError> {
    let (der, armored) = match unarmor(text, what)? {
        Armor::Bare(der) => (der, false),
        Armor::Pem { label, block } if label == "PUBLIC KEY" => (
            pem_der(&block, what, |k: &SubjectPublicKeyInfoDer<'_>| k.as_ref())?,
            true,
        ),
        Armor::Pem { label, .. } => {
            return Err(format_err(
                what,
                format!("a {label:?} PEM block is not an ed25519 PUBLIC KEY"),
            ));
        }
    };
    let raw = match der.strip_prefix(&SPKI_PREFIX[..]) {
        Some(raw) => raw,
        None if !armored => &der[..],
        None => return Err(format_err(what, "not an ed25519 SubjectPublicKeyInfo")),
    };
    let key: [u8; PUBLIC_KEY_LEN] = raw.try_into().map_err(|_| {
        format_err(
            what,
            format!(
                "an ed25519 public key is 32 bytes (or a 44-byte SubjectPublicKeyInfo), got {}",
                der.len()
            ),
        )
    })?;
    Ok(PublicKey(key))
}

/// Files larger than this are not key files.
const MAX_KEY_FILE: u64 = 16 * 1024;

fn read_text(path: &Path) -> Result<String, SignError> {
    let io = |source| SignError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_KEY_FILE {
        return Err(format_err(
            &path.display().to_string(),
            format!("{} bytes is too large for a key file", meta.len()),
        ));
    }
    std::fs::read_to_string(path).map_err(io)
}

/// Reads a private key file (see the module doc); returns PKCS#8 DER.
pub fn read_private_key(path: &Path) -> Result<Vec<u8>, SignError> {
    parse_private_key_file(&read_text(path)?, &path.display().to_string())
}

/// Reads a public key file (see the module doc).
pub fn read_public_key(path: &Path) -> Result<PublicKey, SignError> {
    parse_public_key_file(&read_text(path)?, &path.display().to_string())
}

/// What [`keygen`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    pub private_path: PathBuf,
    pub public_path: PathBuf,
    pub public: PublicKey,
}

/// The file name used by [`keygen`] when it is given a directory.
pub const DEFAULT_KEY_NAME: &str = "fleet";

/// `picolet keygen`: makes a key pair and writes `<prefix>.key` (mode 0600)
/// and `<prefix>.pub` (mode 0644). If `dir_or_prefix` is an existing
/// directory, the files are `<dir>/fleet.key` and `<dir>/fleet.pub`.
/// Existing files are never overwritten: if either exists, nothing is written.
pub fn keygen(dir_or_prefix: &Path) -> Result<KeyFiles, SignError> {
    let base = if dir_or_prefix.is_dir() {
        dir_or_prefix.join(DEFAULT_KEY_NAME)
    } else {
        dir_or_prefix.to_path_buf()
    };
    let with_ext = |ext: &str| {
        let mut name = base.clone().into_os_string();
        name.push(ext);
        PathBuf::from(name)
    };
    let (private_path, public_path) = (with_ext(".key"), with_ext(".pub"));
    for p in [&private_path, &public_path] {
        if p.symlink_metadata().is_ok() {
            return Err(SignError::Exists(p.clone()));
        }
    }
    let (pkcs8, public) = generate_keypair()?;
    let public = PublicKey(public);
    write_new(
        &private_path,
        0o600,
        encode_private_key_file(&pkcs8).as_bytes(),
    )?;
    if let Err(e) = write_new(
        &public_path,
        0o644,
        encode_public_key_file(&public).as_bytes(),
    ) {
        let _ = std::fs::remove_file(&private_path);
        return Err(e);
    }
    Ok(KeyFiles {
        private_path,
        public_path,
        public,
    })
}

/// Creates `path` (which must not exist) with `mode` and writes `data`.
fn write_new(path: &Path, mode: u32, data: &[u8]) -> Result<(), SignError> {
    let io = |source| SignError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => SignError::Exists(path.to_path_buf()),
            _ => io(e),
        })?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests;
