//! The signed envelope (`kind: SignedDeviceState`) and the one entry point
//! for inbound desired payloads, [`decode_desired`]: size cap, format,
//! signature policy, then the document. Format in the module doc of [`super`].

use super::desired::{check_header, check_keys, decode_unsigned, from_value, parse_json, show};
use super::{API_VERSION, DesiredDoc, DocError, Format, MAX_DOC_BYTES, SIGNED_KIND};
use crate::fleet::sign::{PublicKey, SIGNATURE_LEN, SigningKey, base64};
use serde_json::{Map, Value};

/// How inbound payloads are decoded.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions<'a> {
    /// Payloads larger than this are refused before parsing, and a
    /// compressed document may not inflate to more.
    pub max_bytes: usize,
    /// When set, only documents signed by this key are accepted.
    pub fleet_key: Option<&'a PublicKey>,
}

impl Default for DecodeOptions<'_> {
    fn default() -> Self {
        DecodeOptions {
            max_bytes: MAX_DOC_BYTES,
            fleet_key: None,
        }
    }
}

/// What is known about a document's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// A plain document (accepted only without a fleet key).
    Unsigned,
    /// Verified with the fleet key whose id this is.
    Verified { key_id: String },
    /// An envelope opened without a fleet key to check it; `key_id` is what
    /// the envelope claims.
    NotChecked { key_id: String },
}

/// An accepted document and how it was signed.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    pub doc: DesiredDoc,
    pub signature: Signature,
}

const ENVELOPE_KEYS: [&str; 5] = ["apiVersion", "kind", "keyId", "signature", "payload"];

/// Wraps `payload` (the exact bytes of an unsigned JSON or postcard
/// document) in a signed envelope.
pub fn seal_envelope(payload: &[u8], key: &SigningKey) -> Vec<u8> {
    let mut map = Map::new();
    map.insert("apiVersion".into(), API_VERSION.into());
    map.insert("kind".into(), SIGNED_KIND.into());
    map.insert("keyId".into(), key.public_key().key_id().into());
    map.insert(
        "signature".into(),
        base64::encode(&key.sign(payload)).into(),
    );
    map.insert("payload".into(), base64::encode(payload).into());
    serde_json::to_vec(&Value::Object(map)).expect("a JSON value always serializes")
}

fn base64_field(map: &Map<String, Value>, key: &str) -> Result<Vec<u8>, DocError> {
    match map.get(key) {
        None | Some(Value::Null) => Err(DocError::field(key, "missing")),
        Some(Value::String(s)) => {
            base64::decode(s).map_err(|e| DocError::field(key, format!("not base64: {e}")))
        }
        Some(other) => Err(DocError::field(
            key,
            format!("must be a base64 string, got {}", show(other)),
        )),
    }
}

/// The parts of an envelope: (payload bytes, signature bytes, claimed key id).
fn envelope_parts(map: &Map<String, Value>) -> Result<(Vec<u8>, Vec<u8>, String), DocError> {
    check_header(map, SIGNED_KIND)?;
    check_keys(map, &ENVELOPE_KEYS, SIGNED_KIND)?;
    let key_id = match map.get("keyId") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.chars().take(64).collect(),
        Some(other) => {
            return Err(DocError::field(
                "keyId",
                format!("must be a string, got {}", show(other)),
            ));
        }
    };
    let signature = base64_field(map, "signature")?;
    if signature.len() != SIGNATURE_LEN {
        return Err(DocError::field(
            "signature",
            format!(
                "an ed25519 signature is {SIGNATURE_LEN} bytes, got {}",
                signature.len()
            ),
        ));
    }
    let payload = base64_field(map, "payload")?;
    Ok((payload, signature, key_id))
}

/// Opens an envelope already parsed as JSON: checks the signature against
/// `key` (when given) and returns the payload bytes.
pub fn open_envelope(
    envelope: &Value,
    key: Option<&PublicKey>,
) -> Result<(Vec<u8>, Signature), DocError> {
    let Value::Object(map) = envelope else {
        return Err(DocError::field("", "an envelope must be a JSON object"));
    };
    let (payload, sig, claimed) = envelope_parts(map)?;
    let Some(key) = key else {
        return Ok((payload, Signature::NotChecked { key_id: claimed }));
    };
    if !key.verify(&payload, &sig) {
        return Err(DocError::BadSignature {
            key_id: key.key_id(),
            signer: claimed,
        });
    }
    Ok((
        payload,
        Signature::Verified {
            key_id: key.key_id(),
        },
    ))
}

/// Decodes an inbound desired payload: the size cap, then the format, then
/// (for JSON) whether it is a signed envelope. With a fleet key, unsigned
/// documents are refused before their pods are parsed.
pub fn decode_desired(bytes: &[u8], opts: &DecodeOptions<'_>) -> Result<Opened, DocError> {
    if bytes.len() > opts.max_bytes {
        return Err(DocError::TooLarge {
            size: bytes.len(),
            limit: opts.max_bytes,
        });
    }
    let unsigned = |key: &PublicKey| DocError::Unsigned {
        key_id: key.key_id(),
    };
    let value = match super::detect_format(bytes)? {
        // Refused before inflating: a compressed message holds an
        // unsigned document (an envelope compresses its payload).
        Format::Postcard | Format::Zlib => {
            if let Some(key) = opts.fleet_key {
                return Err(unsigned(key));
            }
            return Ok(Opened {
                doc: decode_unsigned(bytes, opts.max_bytes)?,
                signature: Signature::Unsigned,
            });
        }
        Format::Json => parse_json(bytes, "")?,
    };
    if value.get("kind").and_then(Value::as_str) != Some(SIGNED_KIND) {
        if let Some(key) = opts.fleet_key {
            return Err(unsigned(key));
        }
        return Ok(Opened {
            doc: from_value(value)?,
            signature: Signature::Unsigned,
        });
    }
    let (payload, signature) = open_envelope(&value, opts.fleet_key)?;
    drop(value);
    Ok(Opened {
        doc: decode_unsigned(&payload, opts.max_bytes)?,
        signature,
    })
}

/// The message the controller publishes for `doc`: its JSON, compressed
/// (zlib), sealed in an envelope when `key` is given: the signature covers
/// the compressed bytes (see the module doc of [`super`]).
pub fn encode_message(doc: &DesiredDoc, key: Option<&SigningKey>) -> Vec<u8> {
    let payload = super::compress(&super::encode_json(doc));
    match key {
        Some(k) => seal_envelope(&payload, k),
        None => payload,
    }
}
