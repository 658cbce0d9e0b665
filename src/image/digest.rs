//! sha256 digests (`sha256:<64 lowercase hex>`), streaming hashers for
//! readers and writers, and capped reads for JSON documents.

use std::fmt;
use std::io::{self, Read, Write};

use sha2::Digest as _;

use super::ImageError;

/// Largest JSON document (index, manifest, config, `manifest.json`,
/// `/etc/passwd`) the store will read into memory.
pub const JSON_LIMIT: u64 = 1 << 20;

/// A sha256 content digest. Other algorithms are rejected at parse time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parses `sha256:<64 lowercase hex digits>`.
    pub fn parse(s: &str) -> Result<Digest, ImageError> {
        let bad = |reason| ImageError::InvalidDigest {
            digest: s.to_string(),
            reason,
        };
        let (alg, hex) = s.split_once(':').ok_or(bad("expected <algorithm>:<hex>"))?;
        if alg != "sha256" {
            return Err(bad("only sha256 digests are supported"));
        }
        Digest::from_hex(hex).map_err(|_| bad("expected 64 lowercase hex digits"))
    }

    /// Builds a digest from its 64 lowercase hex digits.
    pub fn from_hex(hex: &str) -> Result<Digest, ImageError> {
        let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            return Err(ImageError::InvalidDigest {
                digest: hex.to_string(),
                reason: "expected 64 lowercase hex digits",
            });
        }
        Ok(Digest {
            hex: hex.to_string(),
        })
    }

    /// The digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Digest::from_sha(sha2::Sha256::digest(bytes).as_slice())
    }

    pub(crate) fn from_sha(raw: &[u8]) -> Digest {
        let mut hex = String::with_capacity(64);
        for b in raw {
            hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        Digest { hex }
    }

    /// The 64 hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Errors with [`ImageError::DigestMismatch`] unless `self == expected`.
    pub(crate) fn verify(&self, expected: &Digest, what: &str) -> Result<(), ImageError> {
        if self == expected {
            return Ok(());
        }
        Err(ImageError::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual: self.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

/// A reader that hashes and counts everything read through it.
#[derive(Debug)]
pub(crate) struct HashReader<R> {
    inner: R,
    sha: sha2::Sha256,
    len: u64,
}

impl<R: Read> HashReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashReader {
            inner,
            sha: sha2::Sha256::new(),
            len: 0,
        }
    }

    /// Reads the rest of the stream (e.g. tar padding after the end marker)
    /// and returns the digest and length of everything read.
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::from_sha(self.sha.finalize().as_slice()), self.len))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts everything written through it.
#[derive(Debug)]
pub(crate) struct HashWriter<W> {
    inner: W,
    sha: sha2::Sha256,
    len: u64,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter {
            inner,
            sha: sha2::Sha256::new(),
            len: 0,
        }
    }

    /// Flushes and returns the inner writer with the digest and length.
    pub(crate) fn finish(mut self) -> io::Result<(W, Digest, u64)> {
        self.inner.flush()?;
        let digest = Digest::from_sha(self.sha.finalize().as_slice());
        Ok((self.inner, digest, self.len))
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads all of `reader` but at most `limit` bytes; more is an error
/// naming `what`; the caller attaches its path to I/O errors.
pub(crate) fn read_capped(
    reader: impl Read,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, CappedError> {
    let mut buf = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(CappedError::Io)?;
    if buf.len() as u64 > limit {
        return Err(CappedError::Image(ImageError::TooLarge {
            what: what.to_string(),
            limit,
        }));
    }
    Ok(buf)
}

/// Result of [`read_capped`]: the caller attaches the path to I/O errors.
#[derive(Debug)]
pub(crate) enum CappedError {
    Io(io::Error),
    Image(ImageError),
}

impl CappedError {
    pub(crate) fn with_path(self, path: &std::path::Path) -> ImageError {
        match self {
            CappedError::Io(e) => ImageError::io("read", path)(e),
            CappedError::Image(e) => e,
        }
    }
}

/// Parses a JSON document, naming `what` on error.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, ImageError> {
    #[cfg(test)]
    crate::testutil::fuzz_seed("oci_json", bytes);
    serde_json::from_slice(bytes).map_err(|source| ImageError::Json {
        what: what.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_well_known_sha256() {
        assert_eq!(
            Digest::of_bytes(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn digest_parse_rejects_other_algorithms_and_bad_hex() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(Digest::parse(&format!("sha256:{hex}")).is_ok());
        assert!(Digest::parse(&format!("sha512:{hex}")).is_err());
        assert!(Digest::parse(&format!("sha256:{}", hex.to_uppercase())).is_err());
        assert!(Digest::parse(&format!("sha256:{}", &hex[1..])).is_err());
        let err = Digest::parse("nope").unwrap_err().to_string();
        assert!(err.contains("\"nope\""), "{err}");
    }

    #[test]
    fn hash_reader_and_writer_agree_with_one_shot_digest() {
        let data = vec![7u8; 100_000];
        let mut r = HashReader::new(&data[..]);
        let mut first = [0u8; 10];
        r.read_exact(&mut first).unwrap();
        let (d, n) = r.finish().unwrap();
        assert_eq!((d.clone(), n), (Digest::of_bytes(&data), 100_000));
        let mut w = HashWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (out, d2, n2) = w.finish().unwrap();
        assert_eq!((out, d2, n2), (data, d, 100_000));
    }

    #[test]
    fn read_capped_rejects_one_byte_over_the_limit() {
        assert_eq!(read_capped(&b"abcd"[..], 4, "x").unwrap(), b"abcd");
        match read_capped(&b"abcde"[..], 4, "doc") {
            Err(CappedError::Image(ImageError::TooLarge { what, limit: 4 })) => {
                assert_eq!(what, "doc")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
