//! The desired document (`kind: DeviceState`): JSON and postcard codecs,
//! format detection and checks. The module doc of [`super`] has the format.

use super::{
    API_VERSION, DESIRED_KIND, DocError, MAX_POD_ERRORS, MAX_REVISION, POSTCARD_MAGIC, SIGNED_KIND,
};
use crate::spec::objects::{config_map_from_value, secret_from_value};
use crate::spec::strict::StrictValue;
use crate::spec::workload::{Workload, WorkloadKey, workload_from_value};
use crate::spec::{ConfigObject, ObjectKind, Pod, SpecError, pod_from_value};
use flate2::{Decompress, FlushDecompress, Status};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A decoded, validated desired document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DesiredDoc {
    pub revision: u64,
    pub pods: Vec<Pod>,
    /// The `configMaps` then the `secrets` of the document.
    pub objects: Vec<ConfigObject>,
    /// The `workloads` (Deployments, DaemonSets, StatefulSets, Jobs,
    /// CronJobs), each with its JSON text.
    pub workloads: Vec<(Workload, String)>,
    /// The `rollout` block: how the device judges and handles this
    /// revision (`None`: absent, [`Rollout::default`] applies).
    pub rollout: Option<Rollout>,
    /// The `registries` block: mirrors and per-registry auth/TLS for the
    /// device's pulls.
    pub registries: Option<RegistriesBlock>,
}

/// A `registries` block (docs/fleet.md, "Registries"): k3s's
/// registries.yaml schema as JSON, PEM given inline, checked as strictly as
/// the device's file. Kept as the JSON given, to encode and merge. Its
/// `Debug` shows the host keys only: it may hold passwords and keys.
#[derive(Clone, PartialEq)]
pub struct RegistriesBlock(Value);

impl std::fmt::Debug for RegistriesBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistriesBlock({})", self.summary())
    }
}

impl RegistriesBlock {
    /// Checks a `registries` block; errors name `registries.<path>`.
    pub fn from_value(v: &Value) -> Result<RegistriesBlock, DocError> {
        if !v.is_object() {
            return Err(DocError::field(
                "registries",
                "must be an object (mirrors, configs)",
            ));
        }
        crate::image::registry::config::Registries::from_fleet(v).map_err(|e| {
            let path = match e.path.is_empty() {
                true => "registries".to_string(),
                false => format!("registries.{}", e.path),
            };
            DocError::field(&path, e.message)
        })?;
        Ok(RegistriesBlock(v.clone()))
    }

    pub fn value(&self) -> &Value {
        &self.0
    }

    /// Its host keys, never a value: `mirrors: docker.io; configs: r.lan`.
    pub fn summary(&self) -> String {
        let keys = |k: &str| -> String {
            let m = self.0[k].as_object();
            let list: Vec<&str> = m
                .into_iter()
                .flat_map(|m| m.keys())
                .map(|k| k.as_str())
                .collect();
            format!("{k}: {}", list.join(", "))
        };
        format!("{}; {}", keys("mirrors"), keys("configs"))
    }
}

/// `rollout` of a desired document (docs/fleet.md, "Deployment records").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// The revision must be `Healthy` this long after it was accepted.
    pub health_deadline_seconds: u32,
    /// Every pod Ready, with no container restart, this long: `Healthy`.
    pub verify_seconds: u32,
    pub on_failure: OnFailure,
}

impl Default for Rollout {
    fn default() -> Rollout {
        Rollout {
            health_deadline_seconds: 300,
            verify_seconds: 30,
            on_failure: OnFailure::Keep,
        }
    }
}

/// `rollout.onFailure`: what the device does with a revision that fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnFailure {
    /// Keep running it; report `Failed`.
    Keep,
    /// Return to the last `Healthy` revision of the same source.
    Rollback,
}

impl OnFailure {
    pub fn name(self) -> &'static str {
        match self {
            OnFailure::Keep => "Keep",
            OnFailure::Rollback => "Rollback",
        }
    }
}

impl Rollout {
    /// The block as JSON (only the fields, all of them).
    pub fn to_value(self) -> Value {
        serde_json::json!({
            "healthDeadlineSeconds": self.health_deadline_seconds,
            "verifySeconds": self.verify_seconds,
            "onFailure": self.on_failure.name(),
        })
    }

    /// Reads and checks a `rollout` block; errors name `rollout.<field>`.
    pub fn from_value(v: &Value) -> Result<Rollout, DocError> {
        let Value::Object(m) = v else {
            return Err(DocError::field(
                "rollout",
                format!("must be an object, got {}", show(v)),
            ));
        };
        const KEYS: [&str; 3] = ["healthDeadlineSeconds", "verifySeconds", "onFailure"];
        if let Some(k) = m.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(DocError::field(
                &format!("rollout.{k}"),
                format!("unknown field (rollout has {})", KEYS.join(", ")),
            ));
        }
        let mut r = Rollout::default();
        for (key, slot) in [
            (KEYS[0], &mut r.health_deadline_seconds),
            (KEYS[1], &mut r.verify_seconds),
        ] {
            match m.get(key) {
                None | Some(Value::Null) => {}
                Some(v) => {
                    *slot = v
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| {
                            DocError::field(
                                &format!("rollout.{key}"),
                                format!("must be a whole number of seconds, got {}", show(v)),
                            )
                        })?
                }
            }
        }
        r.on_failure = match m.get(KEYS[2]) {
            None | Some(Value::Null) => OnFailure::Keep,
            Some(Value::String(s)) if s == "Keep" => OnFailure::Keep,
            Some(Value::String(s)) if s == "Rollback" => OnFailure::Rollback,
            Some(other) => {
                return Err(DocError::field(
                    "rollout.onFailure",
                    format!("{} is neither \"Rollback\" nor \"Keep\"", show(other)),
                ));
            }
        };
        r.check()
    }

    /// The rules both encodings obey.
    fn check(self) -> Result<Rollout, DocError> {
        if self.health_deadline_seconds == 0 {
            return Err(DocError::field(
                "rollout.healthDeadlineSeconds",
                "must be at least 1",
            ));
        }
        if self.verify_seconds >= self.health_deadline_seconds {
            return Err(DocError::field(
                "rollout.verifySeconds",
                format!(
                    "{} must be less than healthDeadlineSeconds ({}): the pods must be verified before the deadline",
                    self.verify_seconds, self.health_deadline_seconds
                ),
            ));
        }
        Ok(self)
    }
}

/// How a document is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Postcard,
    /// A zlib stream (RFC 1950) of a JSON or postcard document.
    Zlib,
}

/// The postcard wire form; the variant is the version (append only).
#[derive(Debug, Serialize, Deserialize)]
enum DesiredWire {
    V1(DesiredV1),
    /// V1 with ConfigMaps and Secrets (written only when there are some).
    V2(DesiredV2),
    /// V2 with workloads (written only when there are some).
    V3(DesiredV3),
    /// V3 with a `rollout` block (written only when there is one).
    V4(DesiredV4),
    /// V3 with a `registries` block (written only when there is one) and
    /// the `rollout` block if any.
    V5(DesiredV5),
}

#[derive(Debug, Serialize, Deserialize)]
struct DesiredV5 {
    v3: DesiredV3,
    rollout: Option<Rollout>,
    /// As JSON text.
    registries: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct DesiredV4 {
    v3: DesiredV3,
    rollout: Rollout,
}

#[derive(Debug, Serialize, Deserialize)]
struct DesiredV3 {
    v2: DesiredV2,
    /// Each as JSON text, as the pods.
    workloads: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct DesiredV2 {
    v1: DesiredV1,
    /// Each as JSON text, as the pods.
    config_maps: Vec<String>,
    secrets: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct DesiredV1 {
    api_version: String,
    kind: String,
    revision: u64,
    /// Each pod as JSON text: postcard cannot carry untagged enums.
    pods: Vec<String>,
}

/// The encoding of `bytes`, from its first byte (see the module doc of [`super`]).
pub fn detect_format(bytes: &[u8]) -> Result<Format, DocError> {
    if bytes.starts_with(&POSTCARD_MAGIC) {
        return Ok(Format::Postcard);
    }
    // A zlib header: CM = 8 (deflate), CINFO ≤ 7, and CMF·256 + FLG a
    // multiple of 31 (RFC 1950 §2.2). Its first byte is never '{', JSON
    // whitespace, a BOM's or the postcard magic's.
    if let [cmf, flg, ..] = *bytes {
        if cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0 {
            return Ok(Format::Zlib);
        }
    }
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    match text
        .iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        None => Err(DocError::Empty),
        Some(b'{') => Ok(Format::Json),
        Some(first) => Err(DocError::Format { first }),
    }
}

/// Parses JSON text without duplicate keys; `path` prefixes errors.
pub(crate) fn parse_json(bytes: &[u8], path: &str) -> Result<Value, DocError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    serde_json::from_slice::<StrictValue>(bytes)
        .map(|v| v.0)
        .map_err(|e| json_error(&e, path))
}

pub(crate) fn json_error(e: &serde_json::Error, path: &str) -> DocError {
    let (line, column) = (e.line(), e.column());
    let text = e.to_string();
    let message = text
        .strip_suffix(&format!(" at line {line} column {column}"))
        .unwrap_or(&text)
        .to_string();
    DocError::Json {
        path: path.to_string(),
        line,
        column,
        message,
    }
}

/// A value for an error message, cut to a sensible length.
pub(crate) fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= 64 {
        return s;
    }
    let cut: String = s.chars().take(60).collect();
    format!("{cut}…")
}

/// Checks `kind` then `apiVersion` of a document that must be `kind`.
pub(crate) fn check_header(map: &Map<String, Value>, kind: &str) -> Result<(), DocError> {
    match map.get("kind") {
        Some(Value::String(k)) if k == kind => {}
        None | Some(Value::Null) => {
            return Err(DocError::field(
                "kind",
                format!("missing (expected {kind})"),
            ));
        }
        Some(other) => {
            return Err(DocError::field(
                "kind",
                format!("{} is not {kind}", show(other)),
            ));
        }
    }
    match map.get("apiVersion") {
        Some(Value::String(v)) if v == API_VERSION => Ok(()),
        None | Some(Value::Null) => Err(DocError::field(
            "apiVersion",
            format!("missing (expected {API_VERSION})"),
        )),
        Some(other) => Err(DocError::field(
            "apiVersion",
            format!("{} is not {API_VERSION}", show(other)),
        )),
    }
}

/// Refuses keys of `map` not in `known`, naming the first such key.
pub(crate) fn check_keys(
    map: &Map<String, Value>,
    known: &[&str],
    kind: &str,
) -> Result<(), DocError> {
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(DocError::field(
            k,
            format!("unknown field (a {kind} has {})", known.join(", ")),
        )),
    }
}

const DESIRED_KEYS: [&str; 9] = [
    "apiVersion",
    "kind",
    "revision",
    "pods",
    "configMaps",
    "secrets",
    "workloads",
    "rollout",
    "registries",
];

/// Decodes an unsigned desired document, JSON or postcard, or either
/// compressed (zlib), inflating at most `max_bytes`. The caller has checked
/// the size of `bytes`. A signed envelope is refused here: it is opened by
/// [`super::decode_desired`].
pub fn decode_unsigned(bytes: &[u8], max_bytes: usize) -> Result<DesiredDoc, DocError> {
    match detect_format(bytes)? {
        Format::Json => from_value(parse_json(bytes, "")?),
        Format::Postcard => decode_postcard(&bytes[POSTCARD_MAGIC.len()..]),
        Format::Zlib => {
            let plain = inflate(bytes, max_bytes)?;
            if detect_format(&plain)? == Format::Zlib {
                return Err(DocError::Zlib(
                    "the inflated document is compressed again (one level is allowed)".into(),
                ));
            }
            decode_unsigned(&plain, max_bytes)
        }
    }
}

/// Inflates the zlib stream `bytes` (all of it: nothing may follow the
/// stream), refusing as soon as the output passes `limit` bytes: the
/// output buffer never grows past `limit + 1` bytes, so a deflate bomb
/// costs at most that much memory.
pub(crate) fn inflate(bytes: &[u8], limit: usize) -> Result<Vec<u8>, DocError> {
    let mut z = Decompress::new(true);
    let cap = limit.saturating_add(1);
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(8).max(4096).min(cap));
    let too_large = || DocError::InflatesTooLarge {
        compressed: bytes.len(),
        limit,
    };
    loop {
        if out.len() == out.capacity() {
            if out.len() > limit {
                return Err(too_large());
            }
            out.reserve_exact(out.len().min(cap - out.len()));
        }
        let (was_in, was_out) = (z.total_in(), out.len());
        let rest = &bytes[(was_in as usize).min(bytes.len())..];
        let status = z
            .decompress_vec(rest, &mut out, FlushDecompress::None)
            .map_err(|e| DocError::Zlib(e.to_string()))?;
        if out.len() > limit {
            return Err(too_large());
        }
        if status == Status::StreamEnd {
            break;
        }
        if z.total_in() == was_in && out.len() == was_out {
            return Err(DocError::Zlib(
                "truncated: the data ends before the end of the stream".into(),
            ));
        }
    }
    let after = bytes.len() - (z.total_in() as usize).min(bytes.len());
    if after > 0 {
        return Err(DocError::Zlib(format!(
            "{after} bytes after the end of the stream"
        )));
    }
    Ok(out)
}

/// The zlib stream (RFC 1950) of `bytes`: what the controller publishes
/// (see the module doc of [`super`]; the encoder is [`super::deflate`]).
pub fn compress(bytes: &[u8]) -> Vec<u8> {
    super::deflate::zlib(bytes)
}

/// A desired document from parsed JSON.
pub(crate) fn from_value(doc: Value) -> Result<DesiredDoc, DocError> {
    let Value::Object(mut map) = doc else {
        return Err(DocError::field(
            "",
            "a desired document must be a JSON object",
        ));
    };
    if map.get("kind").and_then(Value::as_str) == Some(SIGNED_KIND) {
        return Err(DocError::field(
            "kind",
            format!(
                "a {SIGNED_KIND} envelope cannot be inside another envelope nor compressed (compress its payload instead)"
            ),
        ));
    }
    check_header(&map, DESIRED_KIND)?;
    check_keys(&map, &DESIRED_KEYS, DESIRED_KIND)?;
    let revision = match map.get("revision") {
        None | Some(Value::Null) => return Err(DocError::field("revision", "missing")),
        Some(v) => check_revision(v.as_u64().ok_or_else(|| {
            DocError::field(
                "revision",
                format!("must be a non-negative integer, got {}", show(v)),
            )
        })?)?,
    };
    let pods = match map.remove("pods") {
        None | Some(Value::Null) => {
            return Err(DocError::field(
                "pods",
                "missing (an empty list removes every pod)",
            ));
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(DocError::field(
                "pods",
                format!("must be a list of pods, got {}", show(&other)),
            ));
        }
    };
    let pods = load_pods(pods.into_iter().map(Ok).collect())?;
    let mut objects = Vec::new();
    for (field, kind) in [
        ("configMaps", ObjectKind::ConfigMap),
        ("secrets", ObjectKind::Secret),
    ] {
        let items = match map.remove(field) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(DocError::field(
                    field,
                    format!("must be a list of {}s, got {}", kind.name(), show(&other)),
                ));
            }
        };
        objects.extend(load_objects(
            kind,
            field,
            items.into_iter().map(Ok).collect(),
        )?);
    }
    let workloads = match map.remove("workloads") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(DocError::field(
                "workloads",
                format!("must be a list of workloads, got {}", show(&other)),
            ));
        }
    };
    let rollout = match map.get("rollout") {
        None | Some(Value::Null) => None,
        Some(v) => Some(Rollout::from_value(v)?),
    };
    let registries = match map.get("registries") {
        None | Some(Value::Null) => None,
        Some(v) => Some(RegistriesBlock::from_value(v)?),
    };
    Ok(DesiredDoc {
        revision,
        pods,
        objects,
        workloads: load_workloads(workloads.into_iter().map(Ok).collect())?,
        rollout,
        registries,
    })
}

/// Loads the workloads of `workloads` (each with its `apiVersion` and
/// `kind`), all errors collected like the pods'.
fn load_workloads(
    items: Vec<Result<Value, DocError>>,
) -> Result<Vec<(Workload, String)>, DocError> {
    let mut out = Vec::with_capacity(items.len());
    let mut errors: Vec<SpecError> = Vec::new();
    let mut seen: HashMap<WorkloadKey, usize> = HashMap::new();
    for (i, item) in items.into_iter().enumerate() {
        let path = format!("workloads[{i}]");
        let item = item?;
        let text = item.to_string();
        match workload_from_value(item) {
            Err(e) if errors.len() < MAX_POD_ERRORS => errors.push(e.under(&path)),
            Err(_) => {}
            Ok(w) => {
                let key = w.key();
                if let Some(first) = seen.get(&key) {
                    errors.push(SpecError::invalid(
                        format!("{path}.metadata.name"),
                        format!("duplicate {key}: workloads[{first}] has the same kind, namespace and name"),
                    ));
                } else {
                    seen.insert(key, i);
                    out.push((w, text));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(DocError::Pods { errors, more: 0 })
    }
}

/// Loads the ConfigMaps or Secrets of `field`, all errors collected like
/// the pods'. `kind` and `apiVersion` may be left out; when given they
/// must be `v1` and the kind of the list.
fn load_objects(
    kind: ObjectKind,
    field: &str,
    items: Vec<Result<Value, DocError>>,
) -> Result<Vec<ConfigObject>, DocError> {
    let mut out = Vec::with_capacity(items.len());
    let mut errors: Vec<SpecError> = Vec::new();
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for (i, item) in items.into_iter().enumerate() {
        let path = format!("{field}[{i}]");
        let mut item = item?;
        let header = |key: &str, want: &str, v: &Value| match v.get(key) {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(s)) if s == want => Ok(()),
            Some(other) => Err(SpecError::invalid(
                key,
                format!("{} is not {want}", show(other)),
            )),
        };
        let result = header("kind", kind.name(), &item)
            .and_then(|()| header("apiVersion", "v1", &item))
            .and_then(|()| {
                if let Value::Object(m) = &mut item {
                    m.insert("kind".into(), kind.name().into());
                    m.insert("apiVersion".into(), "v1".into());
                }
                match kind {
                    ObjectKind::ConfigMap => config_map_from_value(item),
                    ObjectKind::Secret => secret_from_value(item),
                }
            });
        match result {
            Err(e) if errors.len() < MAX_POD_ERRORS => errors.push(e.under(&path)),
            Err(_) => {}
            Ok(o) => {
                let key = (o.namespace.clone(), o.name.clone());
                if let Some(first) = seen.get(&key) {
                    errors.push(SpecError::invalid(
                        format!("{path}.metadata.name"),
                        format!(
                            "duplicate {} {}/{}: {field}[{first}] has the same namespace and name",
                            kind.name(),
                            key.0,
                            key.1
                        ),
                    ));
                } else {
                    seen.insert(key, i);
                    out.push(o);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(DocError::Pods { errors, more: 0 })
    }
}

/// A ConfigMap or Secret as the API writes it (values base64 where the
/// API has bytes).
pub fn object_value(o: &ConfigObject) -> Value {
    use base64::Engine;
    let b64 = |v: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(v));
    let mut map = Map::new();
    map.insert("apiVersion".into(), "v1".into());
    map.insert("kind".into(), o.kind.name().into());
    let mut meta = Map::new();
    meta.insert("name".into(), o.name.clone().into());
    meta.insert("namespace".into(), o.namespace.clone().into());
    map.insert("metadata".into(), Value::Object(meta));
    let mut data = Map::new();
    let mut binary = Map::new();
    for (k, v) in &o.data {
        match o.kind {
            ObjectKind::Secret => {
                data.insert(k.clone(), b64(v));
            }
            ObjectKind::ConfigMap if o.binary_keys.contains(k) => {
                binary.insert(k.clone(), b64(v));
            }
            ObjectKind::ConfigMap => {
                data.insert(k.clone(), String::from_utf8_lossy(v).into_owned().into());
            }
        }
    }
    map.insert("data".into(), Value::Object(data));
    if !binary.is_empty() {
        map.insert("binaryData".into(), Value::Object(binary));
    }
    if o.kind == ObjectKind::Secret {
        map.insert("type".into(), o.secret_type.clone().into());
    }
    if o.immutable {
        map.insert("immutable".into(), true.into());
    }
    Value::Object(map)
}

fn decode_postcard(body: &[u8]) -> Result<DesiredDoc, DocError> {
    let (wire, rest) = postcard::take_from_bytes::<DesiredWire>(body)
        .map_err(|e| DocError::Postcard(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DocError::Postcard(format!(
            "{} bytes after the end of the document",
            rest.len()
        )));
    }
    let mut registries = None;
    let (v3, rollout) = match wire {
        DesiredWire::V1(v1) => (
            DesiredV3 {
                v2: DesiredV2 {
                    v1,
                    config_maps: Vec::new(),
                    secrets: Vec::new(),
                },
                workloads: Vec::new(),
            },
            None,
        ),
        DesiredWire::V2(v2) => (
            DesiredV3 {
                v2,
                workloads: Vec::new(),
            },
            None,
        ),
        DesiredWire::V3(v3) => (v3, None),
        DesiredWire::V4(v4) => (v4.v3, Some(v4.rollout.check()?)),
        DesiredWire::V5(v5) => {
            let v = parse_json(v5.registries.as_bytes(), "registries")?;
            registries = Some(RegistriesBlock::from_value(&v)?);
            (v5.v3, v5.rollout.map(Rollout::check).transpose()?)
        }
    };
    let (v1, config_maps, secrets, workloads) =
        (v3.v2.v1, v3.v2.config_maps, v3.v2.secrets, v3.workloads);
    let mut header = Map::new();
    header.insert("kind".into(), Value::String(v1.kind));
    header.insert("apiVersion".into(), Value::String(v1.api_version));
    check_header(&header, DESIRED_KIND)?;
    let pods = v1
        .pods
        .iter()
        .enumerate()
        .map(|(i, text)| parse_json(text.as_bytes(), &format!("pods[{i}]")))
        .collect();
    let texts = |list: &[String], field: &str| -> Vec<Result<Value, DocError>> {
        list.iter()
            .enumerate()
            .map(|(i, text)| parse_json(text.as_bytes(), &format!("{field}[{i}]")))
            .collect()
    };
    let mut objects = load_objects(
        ObjectKind::ConfigMap,
        "configMaps",
        texts(&config_maps, "configMaps"),
    )?;
    objects.extend(load_objects(
        ObjectKind::Secret,
        "secrets",
        texts(&secrets, "secrets"),
    )?);
    Ok(DesiredDoc {
        revision: check_revision(v1.revision)?,
        pods: load_pods(pods)?,
        objects,
        workloads: load_workloads(texts(&workloads, "workloads"))?,
        rollout,
        registries,
    })
}

/// Refuses a revision above [`MAX_REVISION`]: past it no newer revision
/// could be sent (and JSON readers lose precision).
pub(crate) fn check_revision(revision: u64) -> Result<u64, DocError> {
    if revision > MAX_REVISION {
        return Err(DocError::field(
            "revision",
            format!(
                "{revision} is above the largest revision allowed, 2^53 = {MAX_REVISION} (the largest integer JSON carries exactly)"
            ),
        ));
    }
    Ok(revision)
}

/// Loads every pod, collecting all errors (up to [`MAX_POD_ERRORS`]); a
/// pod whose JSON text did not parse fails the document at once.
fn load_pods(items: Vec<Result<Value, DocError>>) -> Result<Vec<Pod>, DocError> {
    let mut pods = Vec::with_capacity(items.len());
    let mut errors: Vec<SpecError> = Vec::new();
    let mut more = 0;
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    let mut push = |e: SpecError, errors: &mut Vec<SpecError>| {
        if errors.len() < MAX_POD_ERRORS {
            errors.push(e);
        } else {
            more += 1;
        }
    };
    for (i, item) in items.into_iter().enumerate() {
        let path = format!("pods[{i}]");
        match pod_from_value(item?) {
            Err(e) => push(e.under(&path), &mut errors),
            Ok(pod) => {
                let key = (pod.metadata.namespace.clone(), pod.metadata.name.clone());
                if let Some(first) = seen.get(&key) {
                    let msg = format!(
                        "duplicate pod {}/{}: pods[{first}] has the same namespace and name",
                        key.0, key.1
                    );
                    push(
                        SpecError::invalid(format!("{path}.metadata.name"), msg),
                        &mut errors,
                    );
                } else {
                    seen.insert(key, i);
                    pods.push(pod);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(pods)
    } else {
        Err(DocError::Pods { errors, more })
    }
}

/// A pod as JSON, with `apiVersion: v1` and `kind: Pod` filled in if the
/// caller built it without them.
fn pod_value(pod: &Pod) -> Value {
    let mut v = serde_json::to_value(pod).expect("a Pod always serializes to JSON");
    if let Value::Object(map) = &mut v {
        for (key, value) in [("apiVersion", "v1"), ("kind", "Pod")] {
            if map
                .get(key)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                map.insert(key.to_string(), Value::String(value.to_string()));
            }
        }
    }
    v
}

/// The JSON encoding of `doc`.
pub fn encode_json(doc: &DesiredDoc) -> Vec<u8> {
    let mut map = Map::new();
    map.insert("apiVersion".into(), API_VERSION.into());
    map.insert("kind".into(), DESIRED_KIND.into());
    map.insert("revision".into(), doc.revision.into());
    map.insert(
        "pods".into(),
        Value::Array(doc.pods.iter().map(pod_value).collect()),
    );
    for (field, kind) in [
        ("configMaps", ObjectKind::ConfigMap),
        ("secrets", ObjectKind::Secret),
    ] {
        let list: Vec<Value> = doc
            .objects
            .iter()
            .filter(|o| o.kind == kind)
            .map(object_value)
            .collect();
        if !list.is_empty() {
            map.insert(field.into(), Value::Array(list));
        }
    }
    if !doc.workloads.is_empty() {
        let list: Vec<Value> = doc
            .workloads
            .iter()
            .map(|(_, text)| serde_json::from_str(text).unwrap_or(Value::Null))
            .collect();
        map.insert("workloads".into(), Value::Array(list));
    }
    if let Some(r) = doc.rollout {
        map.insert("rollout".into(), r.to_value());
    }
    if let Some(r) = &doc.registries {
        map.insert("registries".into(), r.0.clone());
    }
    serde_json::to_vec(&Value::Object(map)).expect("a JSON value always serializes")
}

/// The postcard encoding of `doc`: [`POSTCARD_MAGIC`] then the wire form.
pub fn encode_postcard(doc: &DesiredDoc) -> Vec<u8> {
    let v1 = DesiredV1 {
        api_version: API_VERSION.to_string(),
        kind: DESIRED_KIND.to_string(),
        revision: doc.revision,
        pods: doc.pods.iter().map(|p| pod_value(p).to_string()).collect(),
    };
    let texts = |kind: ObjectKind| -> Vec<String> {
        doc.objects
            .iter()
            .filter(|o| o.kind == kind)
            .map(|o| object_value(o).to_string())
            .collect()
    };
    let later = doc.rollout.is_some() || doc.registries.is_some();
    let wire = if doc.objects.is_empty() && doc.workloads.is_empty() && !later {
        DesiredWire::V1(v1)
    } else {
        let v2 = DesiredV2 {
            v1,
            config_maps: texts(ObjectKind::ConfigMap),
            secrets: texts(ObjectKind::Secret),
        };
        if doc.workloads.is_empty() && !later {
            DesiredWire::V2(v2)
        } else {
            let v3 = DesiredV3 {
                v2,
                workloads: doc.workloads.iter().map(|(_, t)| t.clone()).collect(),
            };
            match (&doc.registries, doc.rollout) {
                (Some(r), rollout) => DesiredWire::V5(DesiredV5 {
                    v3,
                    rollout,
                    registries: r.0.to_string(),
                }),
                (None, None) => DesiredWire::V3(v3),
                (None, Some(rollout)) => DesiredWire::V4(DesiredV4 { v3, rollout }),
            }
        }
    };
    let mut out = POSTCARD_MAGIC.to_vec();
    out.extend(postcard::to_stdvec(&wire).expect("strings and integers always serialize"));
    out
}
