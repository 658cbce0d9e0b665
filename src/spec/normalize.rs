//! Walks a manifest document (as a `serde_json::Value`) against the tables
//! in `schema`: refuses unknown and unsupported fields with their path,
//! drops ignored ones and `null`s, and turns numeric quantities into strings
//! (`cpu: 1` → `"1"`) so the document deserializes into the typed `Pod`.
//! Pure, no I/O.

use super::error::{ErrorKind, SpecError, join};
use super::schema::{self, Node, RESOURCE_NAMES, Rule, is_empty};
use crate::vecmap::VecSet;
use serde_json::Value;

/// Where Kubernetes mounts the service-account token.
pub(crate) const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Normalizes one Pod document in place.
pub(crate) fn normalize_pod(doc: &mut Value) -> Result<(), SpecError> {
    drop_service_account_token(doc);
    walk(doc, &schema::POD, "")
}

/// Normalizes a ConfigMap or Secret document (`node`: its table) in place.
pub(crate) fn normalize_object(doc: &mut Value, node: &'static Node) -> Result<(), SpecError> {
    walk(doc, node, "")
}

/// Removes the token volume that the service-account admission plugin adds
/// to every pod (`kube-api-access-*` projected volumes, or the older
/// `*-token-*` secret volumes): every mount at [`SERVICE_ACCOUNT_MOUNT`], and
/// the projected/secret volumes that only those mounts used.
fn drop_service_account_token(doc: &mut Value) {
    let Some(spec) = doc.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let mut token_volumes = VecSet::new();
    let mut other_volumes = VecSet::new();
    for list in ["containers", "initContainers"] {
        for c in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for m in c
                .get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = m.get("name").and_then(Value::as_str).unwrap_or("");
                let path = m.get("mountPath").and_then(Value::as_str).unwrap_or("");
                if path.trim_end_matches('/') == SERVICE_ACCOUNT_MOUNT {
                    token_volumes.insert(name.to_string());
                } else {
                    other_volumes.insert(name.to_string());
                }
            }
        }
    }
    let droppable: VecSet<String> = token_volumes.difference(&other_volumes).cloned().collect();
    if let Some(Value::Array(volumes)) = spec.get_mut("volumes") {
        volumes.retain(|v| {
            let name = v.get("name").and_then(Value::as_str).unwrap_or("");
            let token_kind = v.get("projected").is_some() || v.get("secret").is_some();
            !(token_kind && droppable.contains(name))
        });
    }
    for list in ["containers", "initContainers"] {
        let Some(Value::Array(containers)) = spec.get_mut(list) else {
            continue;
        };
        for c in containers.iter_mut() {
            if let Some(Value::Array(mounts)) = c.get_mut("volumeMounts") {
                mounts.retain(|m| {
                    let path = m.get("mountPath").and_then(Value::as_str).unwrap_or("");
                    path.trim_end_matches('/') != SERVICE_ACCOUNT_MOUNT
                });
            }
        }
    }
}

fn unsupported(path: String, why: &str) -> SpecError {
    SpecError::new(
        ErrorKind::Unsupported,
        path,
        format!("unsupported field: {why}"),
    )
}

/// A number where a quantity string is expected becomes its decimal text.
fn quantity_to_string(v: &mut Value) {
    if let Value::Number(n) = v {
        *v = Value::String(n.to_string());
    }
}

enum Action {
    Walk(&'static Node),
    Drop,
    Refuse(SpecError),
}

fn walk(v: &mut Value, node: &'static Node, path: &str) -> Result<(), SpecError> {
    match node {
        Node::Scalar => Ok(()),
        Node::Quantity => {
            quantity_to_string(v);
            Ok(())
        }
        Node::Mode => {
            if let Value::String(text) = v {
                let digits = text.strip_prefix("0o").or_else(|| text.strip_prefix('0'));
                if let Some(n) = digits.and_then(|d| u32::from_str_radix(d, 8).ok()) {
                    *v = Value::from(n);
                }
            }
            Ok(())
        }
        Node::List(item) => {
            if let Value::Array(items) = v {
                for (i, it) in items.iter_mut().enumerate() {
                    walk(it, item, &format!("{path}[{i}]"))?;
                }
            }
            Ok(())
        }
        Node::ResourceList => {
            if let Value::Object(map) = v {
                map.retain(|_, val| !val.is_null());
                for (key, val) in map.iter_mut() {
                    if !RESOURCE_NAMES.contains(&key.as_str()) {
                        return Err(SpecError::new(
                            ErrorKind::Unsupported,
                            join(path, key),
                            format!(
                                "unsupported resource {key:?}: picolet enforces cpu, memory and ephemeral-storage only"
                            ),
                        ));
                    }
                    quantity_to_string(val);
                }
            }
            Ok(())
        }
        Node::Object(rules) => {
            // Anything but an object is left for the typed deserializer to report.
            let Value::Object(map) = v else {
                return Ok(());
            };
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child = join(path, &key);
                let value = &map[&key];
                let action = match rules.iter().find(|(k, _)| *k == key) {
                    _ if value.is_null() => Action::Drop,
                    None => Action::Refuse(unknown_field(child.clone(), &key, rules)),
                    Some((_, rule)) => match rule {
                        Rule::Field(n) => Action::Walk(n),
                        Rule::Ignore => Action::Drop,
                        Rule::IgnoreIfEmpty(why) if !is_empty(value) => {
                            Action::Refuse(unsupported(child.clone(), why))
                        }
                        Rule::IgnoreIfEmpty(_) => Action::Drop,
                        Rule::IgnoreIf(pred, why) if !pred(value, map) => {
                            Action::Refuse(unsupported(child.clone(), why))
                        }
                        Rule::IgnoreIf(..) => Action::Drop,
                        Rule::Unsupported(why) => Action::Refuse(unsupported(child.clone(), why)),
                    },
                };
                match action {
                    Action::Walk(n) => {
                        if let Some(inner) = map.get_mut(&key) {
                            walk(inner, n, &child)?;
                        }
                    }
                    Action::Drop => {
                        map.remove(&key);
                    }
                    Action::Refuse(e) => return Err(e),
                }
            }
            Ok(())
        }
    }
}

fn unknown_field(path: String, key: &str, rules: &[(&str, Rule)]) -> SpecError {
    let hint = rules
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(k, _)| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default();
    SpecError::new(
        ErrorKind::UnknownField,
        path,
        format!("unknown field{hint}"),
    )
}
