//! What pods read from outside their own container spec, resolved the way
//! the kubelet does: `resourceFieldRef` values, downward API files
//! (labels and annotations in the kubelet's `key="value"` format), and the
//! files of `configMap`, `secret`, `downwardAPI` and `projected` volumes.
//! Pure: the ConfigMaps and Secrets come in as [`Objects`], the node's
//! allocatable resources as [`Allocatable`].

use super::env::{EnvContext, field_ref_value};
use super::objects::{ObjectKind, Objects};
use super::quantity::ParsedQuantity;
use super::types::{
    Container, DownwardApiFile, KeyToPath, Pod, Quantity, ResourceFieldSelector, Volume,
};

/// The default file mode of configMap, downwardAPI and projected volumes
/// (`0644`, Kubernetes' `DefaultMode`).
pub const DEFAULT_MODE: u32 = 0o644;

/// The default file mode of Secret files: owner-only (picolet's choice,
/// docs/config-and-secrets.md; Kubernetes uses 0644). `defaultMode` or an
/// item's `mode` overrides it.
pub const SECRET_DEFAULT_MODE: u32 = 0o600;

/// The node's allocatable resources: what a `limits.*` reference gives
/// when the container sets no limit (the kubelet's
/// `MergeContainerResourceLimits`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allocatable {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub ephemeral_bytes: i64,
}

/// The resources a `resourceFieldRef` may name.
pub const RESOURCE_FIELDS: [&str; 6] = [
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];

const CPU_DIVISORS: [&str; 2] = ["1m", "1"];
const BYTE_DIVISORS: [&str; 13] = [
    "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
];

/// Checks a `resourceFieldRef`'s resource and divisor (Kubernetes'
/// `validateContainerResourceDivisor`).
pub fn check_resource_field(resource: &str, divisor: Option<&Quantity>) -> Result<(), String> {
    if !RESOURCE_FIELDS.contains(&resource) {
        return Err(format!(
            "{resource:?} is not supported: must be one of {}",
            RESOURCE_FIELDS.join(", ")
        ));
    }
    let Some(d) = divisor else { return Ok(()) };
    let parsed = d.parsed().map_err(|e| e.message)?;
    let allowed: &[&str] = if resource.ends_with(".cpu") {
        &CPU_DIVISORS
    } else {
        &BYTE_DIVISORS
    };
    let ok = allowed.iter().any(|a| {
        Quantity((*a).into())
            .parsed()
            .is_ok_and(|q| q.nano_value() == parsed.nano_value())
    }) || parsed.is_zero();
    if ok {
        Ok(())
    } else {
        let what = resource.split('.').nth(1).unwrap_or(resource);
        Err(format!(
            "only divisor's values {} are supported with the {what} resource",
            allowed.join(", ")
        ))
    }
}

/// The value of a `resourceFieldRef` for container `c`: the quantity
/// divided by the divisor (default 1), rounded up (the kubelet's
/// `convertResource*ToString`). An unset limit is the node's allocatable.
pub fn resource_field_value(
    c: &Container,
    sel: &ResourceFieldSelector,
    alloc: &Allocatable,
) -> Result<String, String> {
    check_resource_field(&sel.resource, sel.divisor.as_ref())?;
    let divisor = sel
        .divisor
        .as_ref()
        .and_then(|d| d.parsed().ok())
        .filter(|d| !d.is_zero());
    let (which, name) = sel.resource.split_once('.').unwrap_or(("", ""));
    let r = &c.resources;
    let q: Option<ParsedQuantity> = if which == "limits" {
        r.limit(name)
    } else {
        r.request(name)
    };
    let value = if name == "cpu" {
        let millis = match q {
            Some(q) => q.milli_value(),
            None if which == "limits" => alloc.cpu_millis,
            None => 0,
        };
        let d = divisor.map_or(1000, |d| d.milli_value()).max(1);
        ceil_div(millis, d)
    } else {
        let bytes = match q {
            Some(q) => q.value(),
            None if which == "limits" && name == "memory" => alloc.memory_bytes,
            None if which == "limits" => alloc.ephemeral_bytes,
            None => 0,
        };
        let d = divisor.map_or(1, |d| d.value()).max(1);
        ceil_div(bytes, d)
    };
    Ok(value.to_string())
}

fn ceil_div(a: i64, b: i64) -> i64 {
    if a <= 0 {
        return a / b;
    }
    a / b + i64::from(a % b != 0)
}

/// Go's `strconv.Quote`: the kubelet writes label and annotation values
/// with `%q`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() || c == '\u{feff}' => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The kubelet's `fieldpath.FormatMap`: `key="value"` lines in key order,
/// without a final newline.
pub fn format_map(m: &crate::vecmap::VecMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The field paths a downwardAPI *file* may read.
pub fn check_volume_field_path(path: &str) -> Result<(), String> {
    let ok = matches!(
        path,
        "metadata.name"
            | "metadata.namespace"
            | "metadata.uid"
            | "metadata.labels"
            | "metadata.annotations"
    ) || ((path.starts_with("metadata.labels['")
        || path.starts_with("metadata.annotations['"))
        && super::env::FieldPath::parse(path).is_some());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{path:?} is not supported in a downwardAPI volume: use metadata.name, \
             metadata.namespace, metadata.uid, metadata.labels, metadata.annotations, \
             metadata.labels['…'] or metadata.annotations['…']"
        ))
    }
}

/// The text of one downward API file.
pub fn downward_file_value(
    pod: &Pod,
    f: &DownwardApiFile,
    alloc: &Allocatable,
) -> Result<String, String> {
    if let Some(fr) = &f.field_ref {
        check_volume_field_path(&fr.field_path)?;
        return match fr.field_path.as_str() {
            "metadata.labels" => Ok(format_map(&pod.metadata.labels)),
            "metadata.annotations" => Ok(format_map(&pod.metadata.annotations)),
            p => field_ref_value(pod, p, &EnvContext::default()).map_err(|e| e.message),
        };
    }
    if let Some(rf) = &f.resource_field_ref {
        let c = pod
            .all_containers()
            .find(|c| c.name == rf.container_name)
            .ok_or_else(|| format!("container {:?} not found", rf.container_name))?;
        return resource_field_value(c, rf, alloc);
    }
    Err(format!(
        "{:?}: neither fieldRef nor resourceFieldRef",
        f.path
    ))
}

/// One file of a volume, relative to its root.
#[derive(Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

impl std::fmt::Debug for File {
    /// No contents: they may be a Secret's.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "File({:?}, {} bytes, {:o})",
            self.path,
            self.data.len(),
            self.mode
        )
    }
}

/// Whether `v` is one of the volume kinds whose files picolet writes
/// (configMap, secret, downwardAPI, projected).
pub fn is_projected(v: &Volume) -> bool {
    v.config_map.is_some()
        || v.secret.is_some()
        || v.downward_api.is_some()
        || v.projected.is_some()
}

/// Whether any file of `v` may come from a Secret (it then lives on tmpfs).
pub fn holds_secrets(v: &Volume) -> bool {
    v.secret.is_some()
        || v.projected
            .as_ref()
            .is_some_and(|p| p.sources.iter().any(|s| s.secret.is_some()))
}

/// The ConfigMaps and Secrets a pod names (volumes, env, envFrom), as
/// (kind, name).
pub fn referenced_objects(pod: &Pod) -> Vec<(ObjectKind, String)> {
    let mut out = Vec::new();
    for v in &pod.spec.volumes {
        if let Some(cm) = &v.config_map {
            out.push((ObjectKind::ConfigMap, cm.name.clone()));
        }
        if let Some(s) = &v.secret {
            out.push((ObjectKind::Secret, s.secret_name.clone()));
        }
        for src in v.projected.iter().flat_map(|p| p.sources.iter()) {
            if let Some(cm) = &src.config_map {
                out.push((ObjectKind::ConfigMap, cm.name.clone()));
            }
            if let Some(s) = &src.secret {
                out.push((ObjectKind::Secret, s.name.clone()));
            }
        }
    }
    for c in pod.all_containers() {
        for e in &c.env_from {
            if let Some(r) = &e.config_map_ref {
                out.push((ObjectKind::ConfigMap, r.name.clone()));
            }
            if let Some(r) = &e.secret_ref {
                out.push((ObjectKind::Secret, r.name.clone()));
            }
        }
        for e in c.env.iter().filter_map(|e| e.value_from.as_ref()) {
            if let Some(r) = &e.config_map_key_ref {
                out.push((ObjectKind::ConfigMap, r.name.clone()));
            }
            if let Some(r) = &e.secret_key_ref {
                out.push((ObjectKind::Secret, r.name.clone()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The files of one object's keys (all keys, or `items`), into `out`.
/// `Ok(false)`: an optional object that does not exist.
#[allow(clippy::too_many_arguments)]
fn object_files(
    pod: &Pod,
    objects: &Objects,
    kind: ObjectKind,
    name: &str,
    items: &[KeyToPath],
    optional: bool,
    mode: u32,
    out: &mut Vec<File>,
) -> Result<(), String> {
    let ns = pod.metadata.namespace_or_default();
    let Some(o) = objects.get(kind, ns, name) else {
        if optional {
            return Ok(());
        }
        return Err(format!("{} {name:?} not found", kind.resource()));
    };
    if items.is_empty() {
        for (k, v) in &o.data {
            out.push(File {
                path: k.clone(),
                data: v.clone(),
                mode,
            });
        }
        return Ok(());
    }
    for it in items {
        match o.data.get(&it.key) {
            Some(v) => out.push(File {
                path: it.path.clone(),
                data: v.clone(),
                mode: it.mode.map_or(mode, |m| m as u32),
            }),
            None if optional => {}
            None => {
                return Err(match kind {
                    ObjectKind::ConfigMap => {
                        format!("configmap references non-existent config key: {}", it.key)
                    }
                    ObjectKind::Secret => {
                        format!("references non-existent secret key: {}", it.key)
                    }
                });
            }
        }
    }
    Ok(())
}

fn downward_files(
    pod: &Pod,
    items: &[DownwardApiFile],
    mode: u32,
    alloc: &Allocatable,
    out: &mut Vec<File>,
) -> Result<(), String> {
    for f in items {
        out.push(File {
            path: f.path.clone(),
            data: downward_file_value(pod, f, alloc)?.into_bytes(),
            mode: f.mode.map_or(mode, |m| m as u32),
        });
    }
    Ok(())
}

/// The files of a configMap, secret, downwardAPI or projected volume, in
/// path order. The error is the kubelet's message (`configmap "x" not
/// found`, …). `None`: not one of these kinds.
pub fn volume_files(
    pod: &Pod,
    v: &Volume,
    objects: &Objects,
    alloc: &Allocatable,
) -> Option<Result<Vec<File>, String>> {
    let mut out = Vec::new();
    let mode = |m: Option<i32>, default: u32| m.map_or(default, |m| m as u32);
    let result = if let Some(cm) = &v.config_map {
        object_files(
            pod,
            objects,
            ObjectKind::ConfigMap,
            &cm.name,
            &cm.items,
            cm.optional == Some(true),
            mode(cm.default_mode, DEFAULT_MODE),
            &mut out,
        )
    } else if let Some(s) = &v.secret {
        object_files(
            pod,
            objects,
            ObjectKind::Secret,
            &s.secret_name,
            &s.items,
            s.optional == Some(true),
            mode(s.default_mode, SECRET_DEFAULT_MODE),
            &mut out,
        )
    } else if let Some(d) = &v.downward_api {
        downward_files(
            pod,
            &d.items,
            mode(d.default_mode, DEFAULT_MODE),
            alloc,
            &mut out,
        )
    } else if let Some(p) = &v.projected {
        p.sources.iter().try_for_each(|src| {
            if let Some(cm) = &src.config_map {
                object_files(
                    pod,
                    objects,
                    ObjectKind::ConfigMap,
                    &cm.name,
                    &cm.items,
                    cm.optional == Some(true),
                    mode(p.default_mode, DEFAULT_MODE),
                    &mut out,
                )
            } else if let Some(s) = &src.secret {
                object_files(
                    pod,
                    objects,
                    ObjectKind::Secret,
                    &s.name,
                    &s.items,
                    s.optional == Some(true),
                    mode(p.default_mode, SECRET_DEFAULT_MODE),
                    &mut out,
                )
            } else if let Some(d) = &src.downward_api {
                downward_files(
                    pod,
                    &d.items,
                    mode(p.default_mode, DEFAULT_MODE),
                    alloc,
                    &mut out,
                )
            } else {
                Ok(())
            }
        })
    } else {
        return None;
    };
    Some(result.map(|()| {
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out.dedup_by(|b, a| a.path == b.path);
        out
    }))
}

/// Checks a volume item path or subPath: relative, no `..` component, not
/// starting with `..` (Kubernetes' `validateLocalDescendingPath`).
pub fn local_descending_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("must not be empty".into());
    }
    if p.starts_with('/') {
        return Err(format!("{p:?} must be a relative path"));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(format!("{p:?} must not contain '..'"));
    }
    if p.starts_with("..") {
        return Err(format!("{p:?} must not start with '..'"));
    }
    Ok(())
}
