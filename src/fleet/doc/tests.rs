//! Tests of the fleet documents, one file per submodule, plus a randomized
//! mutation test of the desired-document decoder (`fuzz`).

mod desired;
mod envelope;
mod events;
mod fuzz;
mod merge;
mod status;
mod zlib;

use super::*;
use serde_json::{Value, json};

/// A minimal valid pod named `name`, with extra JSON merged into `spec`.
pub(super) fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}
    })
}

/// The JSON text of a desired document.
pub(super) fn doc_json(revision: u64, pods: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "picolet.io/v1",
        "kind": "DeviceState",
        "revision": revision,
        "pods": pods,
    }))
    .unwrap()
}

/// Decodes without a fleet key and the default size cap.
pub(super) fn decode(bytes: &[u8]) -> Result<DesiredDoc, DocError> {
    decode_desired(bytes, &DecodeOptions::default()).map(|o| o.doc)
}

/// The error message of decoding `bytes`.
pub(super) fn error(bytes: &[u8]) -> String {
    decode(bytes).unwrap_err().to_string()
}

/// A postcard desired document built by hand, as another controller would.
pub(super) fn postcard_doc(kind: &str, revision: u64, pods: &[&str]) -> Vec<u8> {
    #[derive(serde::Serialize)]
    enum Wire<'a> {
        V1(&'a str, &'a str, u64, Vec<&'a str>),
    }
    let wire = Wire::V1("picolet.io/v1", kind, revision, pods.to_vec());
    let mut out = POSTCARD_MAGIC.to_vec();
    out.extend(postcard::to_stdvec(&wire).unwrap());
    out
}
