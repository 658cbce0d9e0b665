//! ConfigMaps and Secrets (v1): checked, decoded, and kept by
//! `namespace/name` in an [`Objects`] set that pods read through volumes
//! and env. Pure, no I/O.
//!
//! A Secret's values never reach a log or an error message: [`ConfigObject`]'s
//! `Debug` prints its keys only, and errors name keys and paths, never
//! values.

use super::defaults::DEFAULT_NAMESPACE;
use super::error::{ErrorKind, SpecError};
use super::names;
use super::normalize::normalize_object;
use super::schema;
use super::types::{ConfigMap, ObjectMeta, Secret};
use crate::image::registry::auth::AuthFile;
use crate::vecmap::VecMap;
use crate::vecmap::VecSet;
use base64::Engine;
use serde_json::Value;

/// Kubernetes' limit on a ConfigMap's or a Secret's data (`MaxSecretSize`).
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// Which kind of object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    ConfigMap,
    Secret,
}

impl ObjectKind {
    /// `ConfigMap` / `Secret`, as in `kind:` and the kubelet's messages.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "ConfigMap",
            ObjectKind::Secret => "Secret",
        }
    }

    /// `configmap` / `secret`: the kubelet's "… not found" wording.
    pub fn resource(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "configmap",
            ObjectKind::Secret => "secret",
        }
    }
}

/// A ConfigMap or a Secret, decoded: every value as bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigObject {
    pub kind: ObjectKind,
    pub namespace: String,
    pub name: String,
    /// Every key: a ConfigMap's `data` and `binaryData`; a Secret's `data`
    /// (decoded) with `stringData` over it.
    pub data: VecMap<String, Vec<u8>>,
    /// The ConfigMap keys that came from `binaryData` (not usable as env,
    /// as with the kubelet).
    pub binary_keys: VecSet<String>,
    /// A Secret's `type` (`Opaque` when not set).
    pub secret_type: String,
    pub immutable: bool,
}

impl std::fmt::Debug for ConfigObject {
    /// Keys only: a Secret's values must never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigObject")
            .field("kind", &self.kind)
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ConfigObject {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The value of `key` usable as an env var (a ConfigMap's `data` or a
    /// Secret's value), as text.
    pub fn env_value(&self, key: &str) -> Option<String> {
        if self.binary_keys.contains(key) {
            return None;
        }
        self.data
            .get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The keys usable as env vars, in order.
    pub fn env_keys(&self) -> impl Iterator<Item = &String> {
        self.data.keys().filter(|k| !self.binary_keys.contains(*k))
    }
}

/// `IsConfigMapKey`: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.`,
/// `..` or starting with `..`.
pub fn config_key(k: &str) -> Result<(), String> {
    if k.is_empty() || k.len() > 253 {
        return Err(format!("{k:?} must be 1 to 253 characters long"));
    }
    if !k
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(format!(
            "{k:?} is not a valid config key: it must consist of alphanumeric characters, \
             '-', '_' or '.'"
        ));
    }
    if k == "." || k.starts_with("..") {
        return Err(format!("{k:?} must not be '.' or '..' or start with '..'"));
    }
    Ok(())
}

fn invalid(path: String, message: String) -> SpecError {
    SpecError::new(ErrorKind::Invalid, path, message)
}

fn metadata(m: &mut ObjectMeta) -> Result<(), SpecError> {
    if m.name.is_empty() {
        return Err(invalid("metadata.name".into(), "must not be empty".into()));
    }
    names::dns1123_subdomain(&m.name).map_err(|e| invalid("metadata.name".into(), e))?;
    if m.namespace.is_empty() {
        m.namespace = DEFAULT_NAMESPACE.to_string();
    }
    names::dns1123_label(&m.namespace).map_err(|e| invalid("metadata.namespace".into(), e))
}

fn decode(field: &str, k: &str, v: &str) -> Result<Vec<u8>, SpecError> {
    // Kubernetes' `[]byte` JSON decoding: standard alphabet, padded.
    base64::engine::general_purpose::STANDARD
        .decode(v.as_bytes())
        .map_err(|e| {
            invalid(
                format!("{field}.{k}"),
                format!("not valid base64 ({e}); values of {field} are base64-encoded"),
            )
        })
}

fn check_keys<'a>(field: &str, keys: impl Iterator<Item = &'a String>) -> Result<(), SpecError> {
    for k in keys {
        config_key(k).map_err(|e| invalid(format!("{field}.{k}"), e))?;
    }
    Ok(())
}

fn check_size(data: &VecMap<String, Vec<u8>>) -> Result<(), SpecError> {
    let total: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_DATA_BYTES {
        return Err(invalid(
            "data".into(),
            format!("too long: {total} bytes, must be no more than {MAX_DATA_BYTES}"),
        ));
    }
    Ok(())
}

fn typed<T: serde::de::DeserializeOwned>(doc: Value) -> Result<T, SpecError> {
    crate::serde_path::from_value(doc).map_err(|e| {
        // serde's messages name the expected type, never the value given.
        SpecError::new(ErrorKind::Type, e.field(), e.message())
    })
}

/// A ConfigMap from one parsed document (kind and apiVersion checked by
/// the caller). The error has no origin.
pub fn config_map_from_value(mut doc: Value) -> Result<ConfigObject, SpecError> {
    normalize_object(&mut doc, &schema::CONFIG_MAP)?;
    let mut cm: ConfigMap = typed(doc)?;
    metadata(&mut cm.metadata)?;
    check_keys("data", cm.data.keys())?;
    check_keys("binaryData", cm.binary_data.keys())?;
    let mut data = VecMap::new();
    let mut binary_keys = VecSet::new();
    for (k, v) in cm.binary_data {
        if cm.data.contains_key(&k) {
            return Err(invalid(
                format!("data.{k}"),
                "duplicate of key present in binaryData".into(),
            ));
        }
        data.insert(k.clone(), decode("binaryData", &k, &v)?);
        binary_keys.insert(k);
    }
    for (k, v) in cm.data {
        data.insert(k, v.into_bytes());
    }
    check_size(&data)?;
    Ok(ConfigObject {
        kind: ObjectKind::ConfigMap,
        namespace: cm.metadata.namespace,
        name: cm.metadata.name,
        data,
        binary_keys,
        secret_type: String::new(),
        immutable: cm.immutable == Some(true),
    })
}

/// A Secret from one parsed document (kind and apiVersion checked by the
/// caller). The error has no origin and never holds a value.
pub fn secret_from_value(mut doc: Value) -> Result<ConfigObject, SpecError> {
    normalize_object(&mut doc, &schema::SECRET)?;
    let mut s: Secret = typed(doc)?;
    metadata(&mut s.metadata)?;
    check_keys("data", s.data.keys())?;
    check_keys("stringData", s.string_data.keys())?;
    let mut data = VecMap::new();
    for (k, v) in &s.data {
        data.insert(k.clone(), decode("data", k, v)?);
    }
    for (k, v) in s.string_data {
        data.insert(k, v.into_bytes());
    }
    check_size(&data)?;
    // The API server's checks of the registry-credential types: the key
    // present, valid JSON (and here: credentials picolet can use).
    if let Some(Err((path, m))) = AuthFile::from_secret(&s.kind_of, &data) {
        return Err(invalid(path, m));
    }
    Ok(ConfigObject {
        kind: ObjectKind::Secret,
        namespace: s.metadata.namespace,
        name: s.metadata.name,
        data,
        binary_keys: VecSet::new(),
        secret_type: if s.kind_of.is_empty() {
            "Opaque".into()
        } else {
            s.kind_of
        },
        immutable: s.immutable == Some(true),
    })
}

/// Every ConfigMap and Secret the node knows, by kind and `namespace/name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Objects {
    map: VecMap<(ObjectKind, String, String), ConfigObject>,
}

impl Objects {
    /// Adds `o` unless an object of its kind and name is there already
    /// (the first source wins); returns whether it was added.
    pub fn insert_first(&mut self, o: ConfigObject) -> bool {
        let key = (o.kind, o.namespace.clone(), o.name.clone());
        if self.map.contains_key(&key) {
            return false;
        }
        self.map.insert(key, o);
        true
    }

    /// Kubernetes' immutability: an object of `old` with `immutable: true`
    /// keeps its content when its new version differs (it may still be
    /// deleted, and created again). Returns the API server's error for each
    /// refused change.
    pub fn keep_immutable(&mut self, old: &Objects) -> Vec<String> {
        let mut refused = Vec::new();
        for (key, was) in old.map.iter().filter(|(_, o)| o.immutable) {
            let Some(now) = self.map.get_mut(key) else {
                continue;
            };
            let field = if now.data != was.data || now.binary_keys != was.binary_keys {
                "data"
            } else if now.immutable != was.immutable {
                "immutable"
            } else if now.secret_type != was.secret_type {
                "type"
            } else {
                continue;
            };
            let kind = match was.kind {
                ObjectKind::ConfigMap => "ConfigMap",
                ObjectKind::Secret => "Secret",
            };
            refused.push(format!(
                "The {kind} \"{}\" is invalid: {field}: Forbidden: field is immutable when `immutable` is set (namespace {}; the previous content stays)",
                was.name, was.namespace
            ));
            *now = was.clone();
        }
        refused
    }

    pub fn get(&self, kind: ObjectKind, namespace: &str, name: &str) -> Option<&ConfigObject> {
        self.map
            .get(&(kind, namespace.to_string(), name.to_string()))
    }

    pub fn iter(&self) -> impl Iterator<Item = &ConfigObject> {
        self.map.values()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
