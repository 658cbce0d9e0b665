//! The one error type of the `image` module. Every variant names the
//! reference, digest, path or tar entry it is about.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the image store, import, unpacking and
/// user resolution.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {reference:?} is not in the store")]
    NotFound { reference: String },

    #[error("image {reference:?} is in use by pod {pod}; delete the pod first")]
    InUse { reference: String, pod: String },

    #[error("the image store is busy: another process (an import) holds {path}; try again later")]
    Busy { path: PathBuf },

    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        digest: String,
        reason: &'static str,
    },

    #[error("{what}: content does not match digest {expected} (computed {actual})")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    #[error("layer {blob}: uncompressed content is {actual} but the image config says {expected}")]
    DiffIdMismatch {
        blob: String,
        expected: String,
        actual: String,
    },

    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("invalid JSON in {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("{what} is larger than the {limit}-byte limit")]
    TooLarge { what: String, limit: u64 },

    #[error(
        "{what}: unpacks to more than {limit} bytes ({}x its {compressed}-byte compressed size + {} MiB); refusing it as a decompression bomb",
        super::budget::MAX_EXPANSION,
        super::budget::EXPANSION_ALLOWANCE >> 20
    )]
    LayerTooLarge {
        what: String,
        limit: u64,
        compressed: u64,
    },

    #[error(
        "not enough free space on the filesystem of {path}: {available} bytes available, {reserve} must stay free"
    )]
    NoSpace {
        path: PathBuf,
        available: u64,
        reserve: u64,
    },

    #[error("layer tar entry {entry:?} rejected: {reason}")]
    UnsafePath { entry: String, reason: &'static str },

    #[error("layer tar entry {entry:?}: {reason}")]
    BadEntry { entry: String, reason: String },

    #[error("{path}: not an OCI image layout, oci-archive or docker-archive ({reason})")]
    UnknownFormat { path: PathBuf, reason: String },

    #[error("{path}: no manifest for platform {wanted} (available: {available})")]
    NoMatchingPlatform {
        path: PathBuf,
        wanted: String,
        available: String,
    },

    #[error("blob {digest} not found in {location}")]
    MissingBlob { digest: String, location: PathBuf },

    #[error("{digest}: unsupported media type {media_type:?}")]
    UnsupportedMediaType { digest: String, media_type: String },

    #[error("layer {digest}: {compression} compression is not supported (only gzip or plain tar)")]
    UnsupportedCompression {
        digest: String,
        compression: &'static str,
    },

    #[error("invalid image {what}: {reason}")]
    InvalidImage { what: String, reason: String },

    #[error("{path}: creating {what} needs root (CAP_MKNOD / CAP_SYS_ADMIN): {source}")]
    NeedsRoot {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("layer directory {path} is missing: re-import the image")]
    LayerMissing { path: PathBuf },

    #[error("{path}: holds {count} images, so it cannot be imported under the single name {name}")]
    AmbiguousName {
        path: PathBuf,
        name: String,
        count: usize,
    },

    #[error("user {user:?}: {reason}")]
    UnknownUser { user: String, reason: String },
}

impl ImageError {
    /// Wraps an I/O error with the operation and path it came from.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| ImageError::Io { op, path, source }
    }
}
