//! Container environment and argv, resolved the way the kubelet does.
//!
//! - `valueFrom.fieldRef` reads a pod field ([`FieldPath`]); values known
//!   only at run time (pod IP, host IP, node name) come from [`EnvContext`].
//! - `$(VAR)` in an env `value` refers to variables defined *earlier* in the
//!   same container's `env`; in `command`/`args` it refers to the whole
//!   `env`. `$$` is a literal `$`, and an unknown `$(X)` stays as written
//!   (Kubernetes `third_party/forked/golang/expansion`).
//! - argv: `command` replaces the image entrypoint, `args` replaces the
//!   image cmd (containerd's rules).
//!
//! Pure functions, no I/O.

use super::error::SpecError;
use super::objects::{ObjectKind, Objects};
use super::refs::{Allocatable, resource_field_value};
use super::types::{Container, EnvVar, EnvVarSource, Pod};

/// Run-time values that `fieldRef`s and the other env sources may read.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvContext<'a> {
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
    /// This node's name; when empty, the pod's `spec.nodeName` is used.
    pub node_name: &'a str,
    /// The ConfigMaps and Secrets (`configMapKeyRef`, `secretKeyRef`,
    /// `envFrom`); `None`: none known.
    pub objects: Option<&'a Objects>,
    /// What `resourceFieldRef` gives for an unset limit.
    pub alloc: Allocatable,
}

/// A `fieldRef.fieldPath` picolet can resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldPath {
    Name,
    Namespace,
    Uid,
    NodeName,
    ServiceAccountName,
    PodIp,
    HostIp,
    /// `metadata.labels['key']`
    Label(String),
    /// `metadata.annotations['key']`
    Annotation(String),
}

impl FieldPath {
    /// Parses `metadata.name`, `metadata.namespace`, `metadata.uid`,
    /// `spec.nodeName`, `status.podIP`, `status.podIPs`, `status.hostIP`,
    /// `status.hostIPs`, `metadata.labels['k']`, `metadata.annotations['k']`.
    pub fn parse(path: &str) -> Option<FieldPath> {
        let subscript = |prefix: &str| {
            let inner = path.strip_prefix(prefix)?.strip_prefix("['")?;
            let key = inner.strip_suffix("']")?;
            (!key.is_empty()).then(|| key.to_string())
        };
        Some(match path {
            "metadata.name" => FieldPath::Name,
            "metadata.namespace" => FieldPath::Namespace,
            "metadata.uid" => FieldPath::Uid,
            "spec.nodeName" => FieldPath::NodeName,
            "spec.serviceAccountName" => FieldPath::ServiceAccountName,
            "status.podIP" | "status.podIPs" => FieldPath::PodIp,
            "status.hostIP" | "status.hostIPs" => FieldPath::HostIp,
            _ => {
                if let Some(k) = subscript("metadata.labels") {
                    FieldPath::Label(k)
                } else {
                    FieldPath::Annotation(subscript("metadata.annotations")?)
                }
            }
        })
    }
}

/// The value of a `fieldRef` field path for `pod`. The error has an empty path.
pub fn field_ref_value(
    pod: &Pod,
    field_path: &str,
    ctx: &EnvContext<'_>,
) -> Result<String, SpecError> {
    let fp = FieldPath::parse(field_path)
        .ok_or_else(|| SpecError::invalid("", format!("unsupported fieldPath {field_path:?}")))?;
    let meta = &pod.metadata;
    Ok(match fp {
        FieldPath::Name => meta.name.clone(),
        FieldPath::Namespace => meta.namespace_or_default().to_string(),
        FieldPath::Uid => meta.uid.clone(),
        FieldPath::NodeName if ctx.node_name.is_empty() => {
            pod.spec.node_name.clone().unwrap_or_default()
        }
        FieldPath::NodeName => ctx.node_name.to_string(),
        // The API server defaults it to `default`.
        FieldPath::ServiceAccountName => {
            [&pod.spec.service_account_name, &pod.spec.service_account]
                .into_iter()
                .flatten()
                .find(|s| !s.is_empty())
                .cloned()
                .unwrap_or_else(|| "default".to_string())
        }
        FieldPath::PodIp => ctx.pod_ip.to_string(),
        FieldPath::HostIp => ctx.host_ip.to_string(),
        FieldPath::Label(k) => meta.labels.get(&k).cloned().unwrap_or_default(),
        FieldPath::Annotation(k) => meta.annotations.get(&k).cloned().unwrap_or_default(),
    })
}

/// Kubernetes `$(VAR)` expansion. `lookup` returns a variable's value;
/// unknown references stay literal, `$$` becomes `$`, and a `$` not followed
/// by `(` or `$` is kept.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(input.len());
    walk(input, |piece| match piece {
        Piece::Literal(b) => out.extend_from_slice(b),
        Piece::Ref(name, raw) => match lookup(name) {
            Some(v) => out.extend_from_slice(v.as_bytes()),
            None => out.extend_from_slice(raw),
        },
    });
    // Only whole UTF-8 sequences of `input` and `lookup` results were copied.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The length in bytes that [`expand`] would return, without building it
/// (saturating): `lookup` gives a variable's expanded length. Validation
/// uses it to bound `$(VAR)` expansion, which can double a value per
/// variable (`B=$(A)$(A)`, `C=$(B)$(B)`, …).
pub fn expanded_len(input: &str, lookup: impl Fn(&str) -> Option<usize>) -> usize {
    let mut n: usize = 0;
    walk(input, |piece| {
        let add = match piece {
            Piece::Literal(b) => b.len(),
            Piece::Ref(name, raw) => lookup(name).unwrap_or(raw.len()),
        };
        n = n.saturating_add(add);
    });
    n
}

/// A piece of a string under `$(VAR)` expansion.
enum Piece<'a> {
    Literal(&'a [u8]),
    /// A reference: the name, and the text as written (kept when unknown).
    Ref(&'a str, &'a [u8]),
}

fn walk<'a>(input: &'a str, mut f: impl FnMut(Piece<'a>)) {
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' || i + 1 == bytes.len() {
            let end = bytes[i + 1..]
                .iter()
                .position(|&b| b == b'$')
                .map_or(bytes.len(), |p| i + 1 + p);
            f(Piece::Literal(&bytes[i..end]));
            i = end;
            continue;
        }
        match bytes[i + 1] {
            b'$' => {
                f(Piece::Literal(b"$"));
                i += 2;
            }
            b'(' => match bytes[i + 2..].iter().position(|&b| b == b')') {
                Some(len) => {
                    // '(' and ')' are ASCII, so these are char boundaries.
                    let name = &input[i + 2..i + 2 + len];
                    f(Piece::Ref(name, &bytes[i..i + 3 + len]));
                    i += 3 + len;
                }
                None => {
                    // Unterminated reference: kept as written.
                    f(Piece::Literal(b"$("));
                    i += 2;
                }
            },
            _ => {
                f(Piece::Literal(&bytes[i..i + 2]));
                i += 2;
            }
        }
    }
}

fn lookup_in(env: &[(String, String)]) -> impl Fn(&str) -> Option<String> + '_ {
    // An index, not a linear search per reference: a container may have
    // thousands of variables (bounded only by validation's byte limit).
    let index: std::collections::HashMap<&str, &str> = env
        .iter()
        .rev()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    move |name| index.get(name).map(|v| v.to_string())
}

/// The value of one env var, given the variables resolved before it.
pub fn env_value(
    pod: &Pod,
    var: &EnvVar,
    ctx: &EnvContext<'_>,
    earlier: &[(String, String)],
) -> Result<String, SpecError> {
    if let Some(from) = &var.value_from {
        // A container-less lookup: `resourceFieldRef` needs its container.
        return source_value(pod, None, from, ctx).map(Option::unwrap_or_default);
    }
    let value = var.value.as_deref().unwrap_or("");
    Ok(expand(value, lookup_in(earlier)))
}

/// The kubelet's error for a missing object: `configmap "x" not found`.
fn not_found(kind: ObjectKind, name: &str) -> SpecError {
    SpecError::invalid("", format!("{} {name:?} not found", kind.resource()))
}

/// The value of a `valueFrom`; `None`: an optional reference that is
/// missing (the variable is left out, as with the kubelet). Errors for
/// missing objects and keys carry the kubelet's message and no path.
fn source_value(
    pod: &Pod,
    c: Option<&Container>,
    from: &EnvVarSource,
    ctx: &EnvContext<'_>,
) -> Result<Option<String>, SpecError> {
    if let Some(fr) = &from.field_ref {
        return field_ref_value(pod, &fr.field_path, ctx).map(Some);
    }
    if let Some(rf) = &from.resource_field_ref {
        let target = match (rf.container_name.as_str(), c) {
            ("", Some(c)) => Some(c),
            (name, _) => pod.all_containers().find(|c| c.name == name),
        };
        let target = target.ok_or_else(|| {
            SpecError::invalid("", format!("container {:?} not found", rf.container_name))
        })?;
        return resource_field_value(target, rf, &ctx.alloc)
            .map(Some)
            .map_err(|m| SpecError::invalid("", m));
    }
    let (kind, sel) = match (&from.config_map_key_ref, &from.secret_key_ref) {
        (Some(s), _) => (ObjectKind::ConfigMap, s),
        (None, Some(s)) => (ObjectKind::Secret, s),
        (None, None) => return Err(SpecError::invalid("valueFrom", "no source set")),
    };
    let optional = sel.optional == Some(true);
    let ns = pod.metadata.namespace_or_default();
    let Some(o) = ctx.objects.and_then(|o| o.get(kind, ns, &sel.name)) else {
        return if optional {
            Ok(None)
        } else {
            Err(not_found(kind, &sel.name))
        };
    };
    match o.env_value(&sel.key) {
        Some(v) => Ok(Some(v)),
        None if optional => Ok(None),
        None => Err(SpecError::invalid(
            "",
            format!(
                "couldn't find key {} in {} {ns}/{}",
                sel.key,
                kind.name(),
                sel.name
            ),
        )),
    }
}

/// `envFrom`'s variables and the warnings about skipped keys.
pub type EnvFrom = (Vec<(String, String)>, Vec<String>);

/// The variables `envFrom` gives, in order, and the kubelet's warning for
/// keys skipped because they are not valid variable names (one message
/// per source).
pub fn env_from_vars(
    pod: &Pod,
    container: &Container,
    ctx: &EnvContext<'_>,
) -> Result<EnvFrom, SpecError> {
    let mut vars = Vec::new();
    let mut warnings = Vec::new();
    let ns = pod.metadata.namespace_or_default();
    for (i, src) in container.env_from.iter().enumerate() {
        let (kind, r) = match (&src.config_map_ref, &src.secret_ref) {
            (Some(r), _) => (ObjectKind::ConfigMap, r),
            (None, Some(r)) => (ObjectKind::Secret, r),
            (None, None) => {
                return Err(SpecError::invalid(format!("envFrom[{i}]"), "no source set"));
            }
        };
        let Some(o) = ctx.objects.and_then(|o| o.get(kind, ns, &r.name)) else {
            if r.optional == Some(true) {
                continue;
            }
            return Err(not_found(kind, &r.name));
        };
        let mut invalid = Vec::new();
        for k in o.env_keys() {
            let name = format!("{}{k}", src.prefix);
            if super::names::env_var_name(&name).is_err() {
                invalid.push(name);
                continue;
            }
            vars.push((name, o.env_value(k).unwrap_or_default()));
        }
        if !invalid.is_empty() {
            warnings.push(format!(
                "Keys [{}] from the EnvFrom {} {ns}/{} were skipped since they are considered \
                 invalid environment variable names.",
                invalid.join(", "),
                kind.resource(),
                r.name
            ));
        }
    }
    Ok((vars, warnings))
}

/// The container's environment in `env` order. A name defined twice keeps
/// its first position and its last value, as with the kubelet.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    ctx: &EnvContext<'_>,
) -> Result<Vec<(String, String)>, SpecError> {
    let mut env: Vec<(String, String)> = Vec::with_capacity(container.env.len());
    let mut slot_of: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    // envFrom first; `env` overrides it (the kubelet's order).
    for (name, value) in env_from_vars(pod, container, ctx)?.0 {
        match slot_of.get(&name) {
            Some(&j) => env[j].1 = value,
            None => {
                slot_of.insert(name.clone(), env.len());
                env.push((name, value));
            }
        }
    }
    for (i, var) in container.env.iter().enumerate() {
        let value = match &var.value_from {
            Some(from) => match source_value(pod, Some(container), from, ctx) {
                // The kubelet's messages for missing references have no path.
                Err(e) if e.path.is_empty() => return Err(e),
                r => r,
            },
            None => {
                let lookup = |name: &str| slot_of.get(name).map(|&j| env[j].1.clone());
                Ok(Some(expand(var.value.as_deref().unwrap_or(""), lookup)))
            }
        }
        .map_err(|e| e.under(&format!("env[{i}]")))?;
        let Some(value) = value else { continue };
        match slot_of.get(&var.name) {
            Some(&j) => env[j].1 = value,
            None => {
                slot_of.insert(var.name.clone(), env.len());
                env.push((var.name.clone(), value));
            }
        }
    }
    Ok(env)
}

/// The argv the container runs: `command` (or the image entrypoint) followed
/// by `args` (or, only when neither `command` nor `args` is set, the image
/// cmd), with `$(VAR)` expanded from `env` in `command` and `args`.
/// Fails when the result is empty.
pub fn container_argv(
    container: &Container,
    env: &[(String, String)],
    image_entrypoint: &[String],
    image_cmd: &[String],
) -> Result<Vec<String>, SpecError> {
    let lookup = lookup_in(env);
    let expanded = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter().flatten().map(|s| expand(s, &lookup)).collect()
    };
    let command = expanded(&container.command);
    let args = expanded(&container.args);
    let argv: Vec<String> = if !command.is_empty() {
        command.into_iter().chain(args).collect()
    } else if !args.is_empty() {
        image_entrypoint.iter().cloned().chain(args).collect()
    } else {
        image_entrypoint
            .iter()
            .chain(image_cmd.iter())
            .cloned()
            .collect()
    };
    if argv.is_empty() {
        return Err(SpecError::invalid(
            "command",
            format!(
                "container {:?}: no command: neither the container nor its image sets one",
                container.name
            ),
        ));
    }
    Ok(argv)
}
