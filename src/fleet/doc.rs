//! Fleet documents (DESIGN §5, `docs/fleet.md`): what the controller sends and
//! what the agent reports. Pure, except [`NodeInfo::read`].
//!
//! # Desired state (`<prefix>/devices/<id>/desired`, `<prefix>/groups/<g>/desired`)
//! ```json
//! {"apiVersion":"picolet.io/v1","kind":"DeviceState","revision":7,"pods":[<Kubernetes Pod>…]}
//! ```
//! `revision` is an integer from 0 to 2^53 ([`MAX_REVISION`]); `pods` is required (`[]` removes
//! every pod); no other key is accepted. Each pod goes through
//! [`crate::spec::pod_from_value`], so errors carry the field path under
//! `pods[i]`. Two pods with the same namespace/name make the whole document
//! invalid. Duplicate JSON keys are refused anywhere in the document.
//!
//! The same document can be sent as **postcard** ([`encode_postcard`]):
//! the 4 bytes [`POSTCARD_MAGIC`] (`0x89 'P' 'L' 'D'`), then
//! `postcard(enum DesiredWire { V1 { apiVersion: String, kind: String,
//! revision: u64, pods: Vec<String> } })`, with nothing after it. The
//! variant is the wire version (append only). postcard is not
//! self-describing, so it cannot carry the Pod's untagged enums
//! (`IntOrString`): each pod travels as its **JSON text** inside the
//! postcard document.
//!
//! Either can be sent **compressed**: a zlib stream (RFC 1950: deflate
//! with a 2-byte header and an Adler-32 trailer; [`compress`] writes one
//! with fixed Huffman codes, any zlib writer's is read) of the
//! document's bytes, nothing after it, one level only. What the controller
//! publishes is compressed JSON ([`encode_message`]); devices take both
//! forms. The size cap applies to the message as received and again to the
//! inflated bytes, *while* inflating: the output never grows past the cap,
//! so a deflate bomb is refused ([`DocError::InflatesTooLarge`], reason
//! `TooLarge`) having cost at most the cap in memory.
//!
//! **Telling them apart:** [`POSTCARD_MAGIC`] means postcard (its first
//! byte, 0x89, is neither `{`, whitespace nor valid UTF-8 at the start of
//! text); a zlib header (first byte `0x?8` with `?` ≤ 7, the first two
//! bytes a multiple of 31 big-endian: `78 da`, `78 9c`, …) means
//! compressed; after an optional UTF-8 BOM and JSON whitespace, `{` means
//! JSON; anything else is refused. The size cap ([`MAX_DOC_BYTES`] by
//! default) is checked before any parsing.
//!
//! # Signed envelope
//! ```json
//! {"apiVersion":"picolet.io/v1","kind":"SignedDeviceState","keyId":"<16 hex>",
//!  "signature":"<base64 of 64 bytes>","payload":"<base64 of the payload bytes>"}
//! ```
//! The payload is an unsigned desired document, JSON or postcard, maybe
//! compressed, and the signature is ed25519 over its **exact bytes** (what
//! the base64 decodes to): over the *compressed* bytes when it is
//! compressed. So the device verifies before it inflates (no unsigned byte
//! reaches the inflater), and the signature still covers all the device
//! acts on: inflating is a function of the signed bytes (the Adler-32
//! trailer checks the result). A compressed message holding an envelope is
//! refused: the envelope compresses its payload instead. `keyId` ([`PublicKey::key_id`](crate::fleet::sign::PublicKey::key_id))
//! only helps humans: the device always verifies with its own key. With a
//! fleet key configured, unsigned documents and bad signatures are refused
//! before any pod is parsed; without one, an envelope is opened without
//! checking ([`Signature::NotChecked`]).
//!
//! # Revisions
//! Documents are whole states. Per source (the device topic, each group
//! topic) a document whose revision is at or below the last accepted one is
//! [`Stale`] and ignored: the broker re-sends the retained document on every
//! reconnect. [`ObservedRevision`] holds the last accepted revision per
//! source; it is both the agent's record and the status document's
//! `observedRevision`:
//! `{"device": 7 | null, "groups": {"kitchen": 3}}`. Device and group
//! revisions are separate counters, so it cannot be a single number:
//! `picolet apply --device` waits for `observedRevision.device ≥ N`,
//! `--group G` for `observedRevision.groups.G ≥ N` ([`ObservedRevision::reached`]).
//!
//! # Status and events
//! See [`status`] (`<prefix>/devices/<id>/status`, retained) and [`events`]
//! (`<prefix>/devices/<id>/events`).

mod deflate;
mod desired;
mod envelope;
pub mod events;
mod merge;
mod node;
pub mod status;

#[cfg(test)]
mod tests;

use crate::spec::SpecError;

pub(crate) use desired::inflate;
pub use desired::{
    DesiredDoc, Format, OnFailure, RegistriesBlock, Rollout, compress, decode_unsigned,
    detect_format, encode_json, encode_postcard,
};
pub use envelope::{
    DecodeOptions, Opened, Signature, decode_desired, encode_message, open_envelope, seal_envelope,
};
pub use events::{EventAggregator, EventDoc, ObjectRef};
pub(crate) use merge::device_first;
pub use merge::{Clash, Merged, ObservedRevision, SourcedPod, Stale, merge};
pub(crate) use node::mem_total;
pub use node::{DiskUse, NodeInfo, mem_available};
pub use status::{DeviceStatus, ErrorLog, PodReport, StatusError, WorkloadReport};

/// `apiVersion` of every picolet document.
pub const API_VERSION: &str = "picolet.io/v1";
/// `kind` of a desired document.
pub const DESIRED_KIND: &str = "DeviceState";
/// `kind` of a signed envelope.
pub const SIGNED_KIND: &str = "SignedDeviceState";
/// `kind` of a status document.
pub const STATUS_KIND: &str = "DeviceStatus";
/// Default cap on a document's size, checked before parsing.
pub const MAX_DOC_BYTES: usize = 1024 * 1024;
/// The largest revision a desired document may carry: 2^53, the largest
/// integer that JSON readers (IEEE doubles) carry exactly. A revision above
/// it is refused (`revision: … is above …`), so a document can never take a
/// source to a revision after which no newer one is possible.
pub const MAX_REVISION: u64 = 1 << 53;
/// First bytes of a postcard desired document.
pub const POSTCARD_MAGIC: [u8; 4] = *b"\x89PLD";
/// At most this many pod errors are kept in one [`DocError::Pods`].
pub const MAX_POD_ERRORS: usize = 20;

/// Why a document was refused. Every variant names the problem, and the
/// field path where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    #[error("the document is empty")]
    Empty,
    #[error("the document is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// A compressed document whose inflated bytes pass the limit (inflating
    /// stopped there).
    #[error(
        "the compressed document ({compressed} bytes) inflates to more than the limit of {limit} bytes"
    )]
    InflatesTooLarge { compressed: usize, limit: usize },
    #[error(
        "unknown document format: first byte 0x{first:02x} is neither '{{' (JSON), the postcard magic nor a zlib header"
    )]
    Format { first: u8 },
    #[error("malformed compressed (zlib) document: {0}")]
    Zlib(String),
    /// `path` is empty for the document itself, `pods[i]` for a pod's JSON
    /// text inside a postcard document.
    #[error("{}malformed JSON at line {line} column {column}: {message}", prefix(.path))]
    Json {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("malformed postcard document: {0}")]
    Postcard(String),
    /// A problem with a field of the document itself (`kind`, `revision`, …).
    #[error("{}{message}", prefix(.path))]
    Field { path: String, message: String },
    /// Pods that failed to load, paths under `pods[i]`; `more` counts the
    /// errors left out after [`MAX_POD_ERRORS`].
    #[error("{}", pod_errors(.errors, *.more))]
    Pods { errors: Vec<SpecError>, more: usize },
    #[error(
        "unsigned document refused: this device only accepts documents signed with fleet key {key_id}"
    )]
    Unsigned { key_id: String },
    #[error("signature does not verify with fleet key {key_id}{}", signer_note(.signer, .key_id))]
    BadSignature { key_id: String, signer: String },
}

fn prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

fn pod_errors(errors: &[SpecError], more: usize) -> String {
    let mut out = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if more > 0 {
        out.push_str(&format!("; and {more} more"));
    }
    out
}

fn signer_note(signer: &str, key_id: &str) -> String {
    if signer.is_empty() || signer == key_id {
        String::new()
    } else {
        format!(" (the document names key {signer})")
    }
}

impl DocError {
    /// A short CamelCase reason for status errors and events.
    pub fn reason(&self) -> &'static str {
        match self {
            DocError::Empty | DocError::Format { .. } => "Malformed",
            DocError::Json { .. } | DocError::Postcard(_) | DocError::Zlib(_) => "Malformed",
            DocError::TooLarge { .. } | DocError::InflatesTooLarge { .. } => "TooLarge",
            DocError::Field { .. } | DocError::Pods { .. } => "Invalid",
            DocError::Unsigned { .. } => "Unsigned",
            DocError::BadSignature { .. } => "BadSignature",
        }
    }

    pub(crate) fn field(path: &str, message: impl Into<String>) -> DocError {
        DocError::Field {
            path: path.to_string(),
            message: message.into(),
        }
    }
}
