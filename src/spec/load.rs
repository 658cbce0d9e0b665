//! Reading Pod manifests: YAML or JSON text, one or more documents.
//!
//! Steps for each document: parse it to a `serde_json::Value`; check
//! `kind: Pod` and `apiVersion: v1` (a `kind: List` of pods, as
//! `kubectl get pods -o yaml` writes, or a `PodList`, is read item by item); walk it
//! against the field tables in `schema` (unknown and unsupported fields
//! are refused with their path, informational ones dropped); deserialize
//! into [`Pod`] with [`crate::serde_path`] so type errors carry their path
//! too; default `metadata.namespace`; and [`validate`].
//!
//! [`load_file`] reads one file (at most [`MAX_MANIFEST_BYTES`]); everything
//! else is pure.

use super::defaults::DEFAULT_NAMESPACE;
use super::error::{ErrorKind, Origin, SpecError};
use super::normalize::normalize_pod;
use super::objects::{ConfigObject, ObjectKind, config_map_from_value, secret_from_value};
use super::strict::StrictValue;
use super::types::Pod;
use super::validate::validate;
use serde_json::Value;
use std::io::Read;
use std::path::Path;

/// Manifest files larger than this are refused: Kubernetes' own object
/// limit, 1.5 MiB (pods are a few KiB). It also bounds how long parsing a
/// file can take on the agent's thread (tens of ms for a flat 1.5 MiB file
/// on a Pi 4; nesting is bounded by [`MAX_NESTING`]).
pub const MAX_MANIFEST_BYTES: u64 = 1536 * 1024;

/// Text nested deeper than this is refused before it is parsed. A real pod
/// nests about 15 levels (a List item's probe header is 10 deep); parsers
/// recurse or keep a stack per level, and libyaml's flow-level bookkeeping
/// is quadratic in the depth: 100,000 nested `[` took 40 s to refuse.
pub const MAX_NESTING: usize = 100;

/// One result per Pod found in the file, in order. `Err` only when the file
/// cannot be read, is too large or is not UTF-8.
pub fn load_file(path: &Path) -> Result<Vec<Result<Pod, SpecError>>, SpecError> {
    let source = path.display().to_string();
    Ok(load_str(&read_capped(path)?, &source))
}

/// [`load_file`] for the manifests directory: Pods, ConfigMaps and Secrets.
pub fn load_manifests_file(path: &Path) -> Result<Vec<Result<Manifest, SpecError>>, SpecError> {
    let source = path.display().to_string();
    Ok(load_manifests_str(&read_capped(path)?, &source))
}

/// One document of the manifests directory.
#[derive(Debug, Clone)]
pub enum Manifest {
    Pod(Box<Pod>),
    Object(ConfigObject),
    /// A workload, with its document as JSON text (what the state file
    /// keeps, and `get -o yaml` shows).
    Workload(Box<super::workload::Workload>, String),
}

/// [`load_str`] for the manifests directory: `kind: ConfigMap` and
/// `kind: Secret` (v1) documents and the workload kinds too, checked the
/// same strict way.
pub fn load_manifests_str(text: &str, source: &str) -> Vec<Result<Manifest, SpecError>> {
    parse_documents(text, source, |doc, origin| {
        if super::workload::workload_kind(&doc).is_some() {
            let text = serde_json::to_string(&doc).unwrap_or_default();
            return vec![
                super::workload::workload_from_value(doc)
                    .map(|w| Manifest::Workload(Box::new(w), text))
                    .map_err(|e| e.with_origin(origin)),
            ];
        }
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        let object = match kind {
            "ConfigMap" => Some(ObjectKind::ConfigMap),
            "Secret" => Some(ObjectKind::Secret),
            _ => None,
        };
        let Some(object) = object else {
            return load_value(doc, origin)
                .into_iter()
                .map(|r| r.map(|p| Manifest::Pod(Box::new(p))))
                .collect();
        };
        let result = check_api_version(&doc, kind).and_then(|()| match object {
            ObjectKind::ConfigMap => config_map_from_value(doc),
            ObjectKind::Secret => secret_from_value(doc),
        });
        vec![
            result
                .map(Manifest::Object)
                .map_err(|e| e.with_origin(origin)),
        ]
    })
}

/// The text of a manifest file of at most [`MAX_MANIFEST_BYTES`].
fn read_capped(path: &Path) -> Result<String, SpecError> {
    let source = path.display().to_string();
    let io = |e: std::io::Error| SpecError::new(ErrorKind::Io, "", format!("{source}: {e}"));
    let file = std::fs::File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(SpecError::new(
            ErrorKind::Io,
            "",
            format!("{source}: larger than {MAX_MANIFEST_BYTES} bytes"),
        ));
    }
    String::from_utf8(buf).map_err(|e| {
        SpecError::new(
            ErrorKind::Syntax,
            "",
            format!(
                "{source}: not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// One result per Pod in `text`, in order. `source` names the text in
/// errors (a file name, an MQTT topic). Empty documents are skipped; a
/// syntax error ends the stream, since the parser cannot resynchronise.
///
/// Text whose first non-blank character is `{` is read as a stream of JSON
/// objects (or, if that fails at once, as a YAML flow mapping), anything
/// else as YAML documents separated by `---`. Duplicate keys are syntax
/// errors.
pub fn load_str(text: &str, source: &str) -> Vec<Result<Pod, SpecError>> {
    parse_documents(text, source, load_value)
}

/// Parses `text` into documents and gives each to `each`.
fn parse_documents<T>(
    text: &str,
    source: &str,
    each: impl Fn(Value, &Origin) -> Vec<Result<T, SpecError>>,
) -> Vec<Result<T, SpecError>> {
    #[cfg(test)]
    crate::testutil::fuzz_seed("manifest", text.as_bytes());
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Err(e) = check_nesting(text) {
        return vec![Err(e.with_origin(&Origin {
            source: source.to_string(),
            document: 1,
        }))];
    }
    let (docs, failure) = if text.trim_start().starts_with('{') {
        match json_documents(text) {
            (_, Some((0, _))) if yaml_documents(text).1.is_none() => yaml_documents(text),
            json => json,
        }
    } else {
        yaml_documents(text)
    };
    let origin = |i: usize| Origin {
        source: source.to_string(),
        document: i + 1,
    };
    let mut out = Vec::new();
    for (i, doc) in docs {
        out.extend(each(doc, &origin(i)));
    }
    if let Some((i, e)) = failure {
        out.push(Err(e.with_origin(&origin(i))));
    }
    out
}

/// An upper estimate of how deep `text` nests, by one pass over its bytes
/// (no parsing): open flow brackets (`[`, `{`, counted wherever they are,
/// quoted or not, so no quoting trick can hide them), plus for YAML that
/// does not start with `{` the block levels: twice the number of open
/// indentation levels (a mapping and a sequence may share an indentation)
/// plus the `- ` entries that open a line (`- - - x` nests three deep).
/// Refused when over [`MAX_NESTING`].
pub fn check_nesting(text: &str) -> Result<(), SpecError> {
    let json = text.trim_start().starts_with('{');
    let mut flow: usize = 0;
    let mut indents: Vec<usize> = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        let mut block = 0;
        if !json {
            let body = line.trim_start_matches(' ');
            if !body.trim().is_empty() && !body.starts_with('#') {
                let indent = line.len() - body.len();
                while indents.last().is_some_and(|&i| i > indent) {
                    indents.pop();
                }
                if indents.last().is_none_or(|&i| i < indent) {
                    indents.push(indent);
                }
                let mut rest = body;
                let mut dashes = 0;
                while let Some(r) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("? ")) {
                    dashes += 1;
                    rest = r.trim_start_matches(' ');
                }
                block = 2 * indents.len() + dashes;
            }
        }
        for b in line.bytes() {
            match b {
                b'[' | b'{' => flow += 1,
                b']' | b'}' => flow = flow.saturating_sub(1),
                _ => continue,
            }
            if flow + block > MAX_NESTING {
                return Err(too_deep(n + 1));
            }
        }
        if flow + block > MAX_NESTING {
            return Err(too_deep(n + 1));
        }
    }
    Ok(())
}

fn too_deep(line: usize) -> SpecError {
    SpecError::new(
        ErrorKind::Syntax,
        "",
        format!("nested more than {MAX_NESTING} levels deep (line {line}); refused before parsing"),
    )
}

/// Parsed documents with their 0-based index, and the syntax error (with
/// its document index) that ended the stream, if any.
type Documents = (Vec<(usize, Value)>, Option<(usize, SpecError)>);

fn syntax_error(path: &str, message: &str) -> SpecError {
    SpecError::new(ErrorKind::Syntax, path, message)
}

fn json_documents(text: &str) -> Documents {
    let mut docs = Vec::new();
    // `from_slice`, not `from_str`: the fleet documents' parser reads
    // `StrictValue` from bytes too, so one instantiation serves both; the
    // result is the same for UTF-8 text (binary size).
    let stream = serde_json::Deserializer::from_slice(text.as_bytes()).into_iter::<StrictValue>();
    for (i, doc) in stream.enumerate() {
        match doc {
            Ok(StrictValue(v)) => docs.push((i, v)),
            Err(e) => return (docs, Some((i, syntax_error("", &e.to_string())))),
        }
    }
    (docs, None)
}

fn yaml_documents(text: &str) -> Documents {
    #[cfg(test)]
    crate::yaml::tests::against_norway(text);
    let (docs, error) = crate::yaml::parse(text);
    let mut out = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        match doc.to_value() {
            Ok(Value::Null) => {}
            Ok(v) => out.push((i, v)),
            Err(e) => return (out, Some((i, syntax_error(e.path(), &e.message())))),
        }
    }
    (
        out,
        error.map(|e| (docs.len(), syntax_error("", &e.message()))),
    )
}

/// The pods of one parsed document: a `Pod`, or each item of a `v1` `List`
/// or `PodList`.
/// Errors carry `origin`; errors inside a list item have paths starting
/// with `items[i]`.
pub fn load_value(doc: Value, origin: &Origin) -> Vec<Result<Pod, SpecError>> {
    let kind = match doc.get("kind").and_then(Value::as_str) {
        Some(k @ ("List" | "PodList")) => k.to_string(),
        _ => return vec![pod_from_value(doc).map_err(|e| e.with_origin(origin))],
    };
    if let Err(e) = check_api_version(&doc, &kind) {
        return vec![Err(e.with_origin(origin))];
    }
    match doc {
        Value::Object(mut map) => match map.remove("items") {
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    pod_from_value(item)
                        .map_err(|e| e.under(&format!("items[{i}]")).with_origin(origin))
                })
                .collect(),
            Some(Value::Null) | None => Vec::new(),
            Some(_) => vec![Err(SpecError::new(
                ErrorKind::Type,
                "items",
                "must be a list of pods",
            )
            .with_origin(origin))],
        },
        _ => Vec::new(),
    }
}

fn not_a_pod(path: &str, message: String) -> SpecError {
    SpecError::new(ErrorKind::NotAPod, path, message)
}

fn check_api_version(doc: &Value, kind: &str) -> Result<(), SpecError> {
    match doc.get("apiVersion") {
        Some(Value::String(v)) if v == "v1" => Ok(()),
        None | Some(Value::Null) => Err(not_a_pod(
            "apiVersion",
            format!("missing: {kind} is apiVersion v1"),
        )),
        Some(other) => Err(not_a_pod(
            "apiVersion",
            format!("{other} is not supported: {kind} is apiVersion v1"),
        )),
    }
}

/// One Pod from one parsed document (a Kubernetes object as JSON), checked
/// and validated. The error has no origin; the caller adds it.
pub fn pod_from_value(mut doc: Value) -> Result<Pod, SpecError> {
    if !doc.is_object() {
        return Err(SpecError::new(
            ErrorKind::Type,
            "",
            "a manifest must be a mapping with apiVersion, kind, metadata and spec",
        ));
    }
    match doc.get("kind") {
        Some(Value::String(k)) if k == "Pod" => {}
        None | Some(Value::Null) => {
            return Err(not_a_pod(
                "kind",
                "missing: picolet runs kind Pod".to_string(),
            ));
        }
        Some(other) => {
            return Err(not_a_pod(
                "kind",
                format!("{other} is not supported: picolet runs kind Pod"),
            ));
        }
    }
    check_api_version(&doc, "Pod")?;
    normalize_pod(&mut doc)?;
    let mut pod: Pod = crate::serde_path::from_value(doc).map_err(type_error)?;
    if pod.metadata.namespace.is_empty() {
        pod.metadata.namespace = DEFAULT_NAMESPACE.to_string();
    }
    validate(&pod)?;
    Ok(pod)
}

fn type_error(e: crate::serde_path::Error) -> SpecError {
    let path = e.field();
    let mut message = e.message().to_string();
    if message.contains("untagged enum IntOrString") {
        message = "must be a port number or a port name".to_string();
    }
    SpecError::new(ErrorKind::Type, path, message)
}
