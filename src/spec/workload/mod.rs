//! Workload objects: `apps/v1` Deployment, DaemonSet and StatefulSet,
//! `batch/v1` Job and CronJob. Checked as strictly as Pods: every key is
//! walked against a table (unknown and unsupported fields refused with
//! their path), and the pod template is loaded as a Pod would be, its
//! errors under `spec.template` (`spec.jobTemplate.spec.template` for a
//! CronJob). Pure, no I/O.
//!
//! One file per kind holds its spec type, its field table, its defaults
//! and its rules; this file holds what they share: the kind, the pod
//! template, label selectors and `IntOrString` percentages.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod job;
pub mod statefulset;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_sets;

use super::defaults::DEFAULT_NAMESPACE;
use super::error::{ErrorKind, SpecError};
use super::load::pod_from_value;
use super::names;
use super::normalize::normalize_object;
use super::schema::{self, Node, Rule};
use super::types::{ObjectMeta, Pod};
use crate::vecmap::VecMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The workload kinds picolet runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    DaemonSet,
    StatefulSet,
    Job,
    CronJob,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 5] = [
        WorkloadKind::Deployment,
        WorkloadKind::DaemonSet,
        WorkloadKind::StatefulSet,
        WorkloadKind::Job,
        WorkloadKind::CronJob,
    ];

    /// `kind:` as written.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            WorkloadKind::Job | WorkloadKind::CronJob => "batch/v1",
            _ => "apps/v1",
        }
    }

    /// kubectl's resource name (`deployments`), as `get` prints it in
    /// `deployment.apps/web`.
    pub fn plural(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::DaemonSet => "daemonsets",
            WorkloadKind::StatefulSet => "statefulsets",
            WorkloadKind::Job => "jobs",
            WorkloadKind::CronJob => "cronjobs",
        }
    }

    /// `deployment.apps`, `job.batch`: kubectl's prefix for names.
    pub fn resource(self) -> String {
        let group = self.api_version().split('/').next().unwrap_or("");
        format!("{}.{group}", self.name().to_ascii_lowercase())
    }

    /// Reads kubectl's names of the resource: `deployments`, `deployment`,
    /// `deploy`, `Deployment`, `deployment.apps`, and the short names
    /// `ds`, `sts`, `cj`.
    pub fn from_resource(s: &str) -> Option<WorkloadKind> {
        let s = s.to_ascii_lowercase();
        let s = s.split('.').next().unwrap_or("");
        Some(match s {
            "deployment" | "deployments" | "deploy" => WorkloadKind::Deployment,
            "daemonset" | "daemonsets" | "ds" => WorkloadKind::DaemonSet,
            "statefulset" | "statefulsets" | "sts" => WorkloadKind::StatefulSet,
            "job" | "jobs" => WorkloadKind::Job,
            "cronjob" | "cronjobs" | "cj" => WorkloadKind::CronJob,
            _ => return None,
        })
    }

    fn from_kind(kind: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL.into_iter().find(|k| k.name() == kind)
    }
}

/// A checked workload object.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub metadata: ObjectMeta,
    pub spec: WorkloadSpec,
}

/// The spec of each kind.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkloadSpec {
    Deployment(Box<deployment::DeploymentSpec>),
    DaemonSet(Box<daemonset::DaemonSetSpec>),
    StatefulSet(Box<statefulset::StatefulSetSpec>),
    Job(Box<job::JobSpec>),
    CronJob(Box<cronjob::CronJobSpec>),
}

impl Workload {
    pub fn kind(&self) -> WorkloadKind {
        match &self.spec {
            WorkloadSpec::Deployment(_) => WorkloadKind::Deployment,
            WorkloadSpec::DaemonSet(_) => WorkloadKind::DaemonSet,
            WorkloadSpec::StatefulSet(_) => WorkloadKind::StatefulSet,
            WorkloadSpec::Job(_) => WorkloadKind::Job,
            WorkloadSpec::CronJob(_) => WorkloadKind::CronJob,
        }
    }

    /// Its pod template (a CronJob's: its Job template's), to check and
    /// harden by the fleet's node policy.
    pub fn template_mut(&mut self) -> Option<&mut PodTemplate> {
        Some(match &mut self.spec {
            WorkloadSpec::Deployment(s) => &mut s.template,
            WorkloadSpec::DaemonSet(s) => &mut s.template,
            WorkloadSpec::StatefulSet(s) => &mut s.template,
            WorkloadSpec::Job(s) => &mut s.template,
            WorkloadSpec::CronJob(s) => &mut s.job.template,
        })
    }

    /// `Kind/namespace/name`: the key of a workload everywhere.
    pub fn key(&self) -> WorkloadKey {
        WorkloadKey {
            kind: self.kind(),
            namespace: self.metadata.namespace.clone(),
            name: self.metadata.name.clone(),
        }
    }
}

/// Which workload: kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkloadKey {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for WorkloadKey {
    /// `deployment.apps/web` in namespace `default` is `Deployment default/web`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind.name(), self.namespace, self.name)
    }
}

/// `kind` of a document, when it is a workload kind.
pub fn workload_kind(doc: &Value) -> Option<WorkloadKind> {
    WorkloadKind::from_kind(doc.get("kind")?.as_str()?)
}

/// One workload from one parsed document whose `kind` is a workload kind
/// ([`workload_kind`]). The error has no origin; the caller adds it.
pub fn workload_from_value(mut doc: Value) -> Result<Workload, SpecError> {
    let kind = workload_kind(&doc)
        .ok_or_else(|| SpecError::new(ErrorKind::NotAPod, "kind", "not a workload kind"))?;
    match doc.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v == kind.api_version() => {}
        other => {
            return Err(SpecError::new(
                ErrorKind::NotAPod,
                "apiVersion",
                format!(
                    "{}: {} is apiVersion {}",
                    other.map_or("missing".to_string(), |v| format!("{v:?} is not supported")),
                    kind.name(),
                    kind.api_version()
                ),
            ));
        }
    }
    let table = match kind {
        WorkloadKind::Deployment => &deployment::DOCUMENT,
        WorkloadKind::DaemonSet => &daemonset::DOCUMENT,
        WorkloadKind::StatefulSet => &statefulset::DOCUMENT,
        WorkloadKind::Job => &job::DOCUMENT,
        WorkloadKind::CronJob => &cronjob::DOCUMENT,
    };
    normalize_object(&mut doc, table)?;
    let Value::Object(mut map) = doc else {
        return Err(SpecError::new(ErrorKind::Type, "", "must be a mapping"));
    };
    let mut metadata: ObjectMeta =
        typed(map.remove("metadata").unwrap_or(Value::Null), "metadata")?;
    check_metadata(&mut metadata)?;
    let spec = map.remove("spec").unwrap_or(Value::Null);
    let spec = match kind {
        WorkloadKind::Deployment => {
            WorkloadSpec::Deployment(Box::new(deployment::from_value(spec, &metadata)?))
        }
        WorkloadKind::DaemonSet => {
            WorkloadSpec::DaemonSet(Box::new(daemonset::from_value(spec, &metadata)?))
        }
        WorkloadKind::StatefulSet => {
            WorkloadSpec::StatefulSet(Box::new(statefulset::from_value(spec, &metadata)?))
        }
        WorkloadKind::Job => WorkloadSpec::Job(Box::new(job::from_value(spec, &metadata)?)),
        WorkloadKind::CronJob => {
            WorkloadSpec::CronJob(Box::new(cronjob::from_value(spec, &metadata)?))
        }
    };
    Ok(Workload { metadata, spec })
}

fn check_metadata(m: &mut ObjectMeta) -> Result<(), SpecError> {
    if m.name.is_empty() {
        return Err(SpecError::invalid("metadata.name", "must not be empty"));
    }
    names::dns1123_subdomain(&m.name).map_err(|e| SpecError::invalid("metadata.name", e))?;
    if m.namespace.is_empty() {
        m.namespace = DEFAULT_NAMESPACE.to_string();
    }
    names::dns1123_label(&m.namespace).map_err(|e| SpecError::invalid("metadata.namespace", e))
}

/// Deserializes `v` (already walked against its table), with error paths
/// under `at`.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(v: Value, at: &str) -> Result<T, SpecError> {
    crate::serde_path::from_value(v)
        .map_err(|e| SpecError::new(ErrorKind::Type, e.field(), e.message()).under(at))
}

/// Takes `key` of `obj` (at `at`) as a `T` (absent: `null`). Read field
/// by field: no serde type of its own per kind (size).
pub(crate) fn take<T: serde::de::DeserializeOwned>(
    obj: &mut serde_json::Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<T, SpecError> {
    typed(
        obj.remove(key).unwrap_or(Value::Null),
        &format!("{at}.{key}"),
    )
}

/// As [`take`], with `T`'s default when `key` is absent (`null` is read
/// as a `T`: serde's `#[serde(default)]`).
pub(crate) fn take_or_default<T: serde::de::DeserializeOwned + Default>(
    obj: &mut serde_json::Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<T, SpecError> {
    match obj.remove(key) {
        None => Ok(T::default()),
        Some(v) => typed(v, &format!("{at}.{key}")),
    }
}

/// The field table of a whole workload document whose spec table is `spec`.
macro_rules! document_table {
    ($spec:expr) => {
        $crate::spec::schema::Node::Object(&[
            (
                "apiVersion",
                $crate::spec::schema::Rule::Field(&$crate::spec::schema::Node::Scalar),
            ),
            (
                "kind",
                $crate::spec::schema::Rule::Field(&$crate::spec::schema::Node::Scalar),
            ),
            (
                "metadata",
                $crate::spec::schema::Rule::Field(&$crate::spec::schema::METADATA),
            ),
            ("spec", $crate::spec::schema::Rule::Field($spec)),
            ("status", $crate::spec::schema::Rule::Ignore),
        ])
    };
}
pub(crate) use document_table;

/// `spec.template` in a kind's table: walked later, as a Pod.
pub(crate) const TEMPLATE: Rule = Rule::Field(&Node::Scalar);

/// `selector` in a kind's table.
pub(crate) static SELECTOR: Node = Node::Object(&[
    ("matchLabels", Rule::Field(&Node::Scalar)),
    (
        "matchExpressions",
        Rule::Field(&Node::List(&SELECTOR_REQUIREMENT)),
    ),
]);

static SELECTOR_REQUIREMENT: Node = Node::Object(&[
    ("key", Rule::Field(&Node::Scalar)),
    ("operator", Rule::Field(&Node::Scalar)),
    ("values", Rule::Field(&Node::Scalar)),
]);

/// A pod template, loaded as a Pod named after its workload: every Pod
/// rule applies, and errors carry their path under the template's.
#[derive(Debug, Clone, PartialEq)]
pub struct PodTemplate {
    /// The template as a Pod: `metadata.name` is the workload's name,
    /// `metadata.namespace` its namespace; labels and annotations are the
    /// template's.
    pub pod: Pod,
    /// The Kubernetes-style hash of the template (`pod-template-hash`,
    /// `controller-revision-hash` suffix): FNV-1a 32 of its JSON, in
    /// `rand.SafeEncodeString`'s alphabet.
    pub hash: String,
}

impl PodTemplate {
    /// Loads `template` (the value at `at`, e.g. `spec.template`) for the
    /// workload `owner`.
    pub fn from_value(
        template: Value,
        owner: &ObjectMeta,
        at: &str,
    ) -> Result<PodTemplate, SpecError> {
        let Value::Object(mut t) = template else {
            return Err(SpecError::new(
                ErrorKind::Type,
                at,
                "required: the pod template",
            ));
        };
        let mut metadata = match t.remove("metadata") {
            Some(Value::Object(m)) => m,
            Some(Value::Null) | None => serde_json::Map::new(),
            Some(_) => {
                return Err(SpecError::new(
                    ErrorKind::Type,
                    format!("{at}.metadata"),
                    "must be a mapping",
                ));
            }
        };
        for (key, why) in [
            ("name", "is set from the workload"),
            ("namespace", "is the workload's"),
        ] {
            if metadata.get(key).is_some_and(|v| !schema::is_empty(v)) {
                let ok = metadata.get(key).and_then(Value::as_str)
                    == Some(if key == "name" {
                        owner.name.as_str()
                    } else {
                        owner.namespace.as_str()
                    });
                if !ok {
                    return Err(SpecError::invalid(
                        format!("{at}.metadata.{key}"),
                        format!("must not be set: a pod's {key} {why}"),
                    ));
                }
            }
        }
        metadata.insert("name".into(), Value::String(owner.name.clone()));
        metadata.insert("namespace".into(), Value::String(owner.namespace.clone()));
        let mut doc = serde_json::Map::new();
        doc.insert("apiVersion".into(), Value::String("v1".into()));
        doc.insert("kind".into(), Value::String("Pod".into()));
        doc.insert("metadata".into(), Value::Object(metadata));
        doc.insert("spec".into(), t.remove("spec").unwrap_or(Value::Null));
        if let Some((k, _)) = t.iter().next() {
            return Err(SpecError::new(
                ErrorKind::UnknownField,
                format!("{at}.{k}"),
                "unknown field: a pod template has metadata and spec",
            ));
        }
        let pod = pod_from_value(Value::Object(doc)).map_err(|e| e.under(at))?;
        let hash = template_hash(&pod);
        Ok(PodTemplate { pod, hash })
    }

    /// A template saved as its Pod's JSON (a Deployment's revision) with
    /// its hash.
    pub fn from_json(pod: &str, hash: &str) -> Option<PodTemplate> {
        // Through a `Value` and the loader's deserializer: a direct
        // `from_str::<Pod>` would add a second copy of Pod's deserializer.
        let pod = crate::serde_path::from_value(serde_json::from_str(pod).ok()?).ok()?;
        Some(PodTemplate {
            pod,
            hash: hash.into(),
        })
    }

    /// The template's labels.
    pub fn labels(&self) -> &VecMap<String, String> {
        &self.pod.metadata.labels
    }
}

/// FNV-1a 32 of the template's JSON (name and namespace left out, so a
/// renamed workload keeps its hash), in `rand.SafeEncodeString`'s
/// alphabet, as Kubernetes writes `pod-template-hash`.
pub fn template_hash(pod: &Pod) -> String {
    let mut p = pod.clone();
    p.metadata.name.clear();
    p.metadata.namespace.clear();
    let json = serde_json::to_vec(&p).unwrap_or_default();
    safe_encode(&fnv1a32(&json).to_string())
}

/// FNV-1a, 32 bits.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Kubernetes' alphabet for generated names: no vowels, no confusable
/// characters (`rand.SafeEncodeString`).
pub const SAFE_ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";

/// `rand.SafeEncodeString`: each byte mapped into [`SAFE_ALPHABET`].
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| SAFE_ALPHABET[b as usize % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// `metav1.LabelSelector`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "VecMap::is_empty")]
    pub match_labels: VecMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<SelectorRequirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    /// Whether `labels` match (an empty selector matches everything, as in
    /// `metav1.LabelSelectorAsSelector`).
    pub fn matches(&self, labels: &VecMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let v = labels.get(&r.key);
                match r.operator {
                    SelectorOperator::In => v.is_some_and(|v| r.values.contains(v)),
                    SelectorOperator::NotIn => v.is_none_or(|v| !r.values.contains(v)),
                    SelectorOperator::Exists => v.is_some(),
                    SelectorOperator::DoesNotExist => v.is_none(),
                }
            })
    }

    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Kubernetes' rules on a selector (`at`: its path).
    pub fn validate(&self, at: &str) -> Result<(), SpecError> {
        for (k, v) in &self.match_labels {
            names::qualified_name(k)
                .map_err(|e| SpecError::invalid(format!("{at}.matchLabels"), e))?;
            names::label_value(v)
                .map_err(|e| SpecError::invalid(format!("{at}.matchLabels.{k}"), e))?;
        }
        for (i, r) in self.match_expressions.iter().enumerate() {
            let p = format!("{at}.matchExpressions[{i}]");
            names::qualified_name(&r.key).map_err(|e| SpecError::invalid(format!("{p}.key"), e))?;
            let needs_values = matches!(r.operator, SelectorOperator::In | SelectorOperator::NotIn);
            if needs_values == r.values.is_empty() {
                return Err(SpecError::invalid(
                    format!("{p}.values"),
                    if needs_values {
                        "must be specified when `operator` is 'In' or 'NotIn'"
                    } else {
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                    },
                ));
            }
        }
        Ok(())
    }

    /// The selector as kubectl prints it (`app=web,tier in (a,b)`).
    pub fn display(&self) -> String {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for r in &self.match_expressions {
            parts.push(match r.operator {
                SelectorOperator::In => format!("{} in ({})", r.key, r.values.join(",")),
                SelectorOperator::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
                SelectorOperator::Exists => r.key.clone(),
                SelectorOperator::DoesNotExist => format!("!{}", r.key),
            });
        }
        parts.join(",")
    }
}

/// What a controller of long-running pods (Deployment, DaemonSet,
/// StatefulSet) checks of its template: the selector matches its labels,
/// and its pods restart `Always`.
pub(crate) fn check_always_template(
    selector: &LabelSelector,
    template: &PodTemplate,
) -> Result<(), SpecError> {
    check_selector(selector, template, "spec.selector", "spec.template")?;
    if template.pod.spec.restart_policy != crate::spec::types::RestartPolicy::Always {
        return Err(SpecError::invalid(
            "spec.template.spec.restartPolicy",
            "Unsupported value: only \"Always\" is supported",
        ));
    }
    Ok(())
}

/// `spec.selector` must be set, non-empty and select the template's
/// labels (`metav1` and `apps` validation).
pub(crate) fn check_selector(
    selector: &LabelSelector,
    template: &PodTemplate,
    at: &str,
    template_at: &str,
) -> Result<(), SpecError> {
    if selector.is_empty() {
        return Err(SpecError::invalid(
            at,
            "empty selector is invalid for deployment",
        ));
    }
    selector.validate(at)?;
    if !selector.matches(template.labels()) {
        return Err(SpecError::invalid(
            format!("{template_at}.metadata.labels"),
            format!(
                "`selector` does not match template `labels` ({})",
                selector.display()
            ),
        ));
    }
    Ok(())
}

/// `intstr.IntOrString` where a string is a percentage (`25%`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntOrPercent {
    Int(i32),
    Percent(i32),
}

impl IntOrPercent {
    /// Reads `3` or `"25%"` at `at`.
    pub fn from_value(v: &Value, at: &str) -> Result<IntOrPercent, SpecError> {
        let bad = || SpecError::invalid(at, "must be an integer or a percentage (e.g. '25%')");
        match v {
            Value::Number(n) => {
                let i = n
                    .as_i64()
                    .filter(|i| i32::try_from(*i).is_ok())
                    .ok_or_else(bad)?;
                if i < 0 {
                    return Err(SpecError::invalid(at, "must be greater than or equal to 0"));
                }
                Ok(IntOrPercent::Int(i as i32))
            }
            Value::String(s) => {
                let p: i32 = s
                    .strip_suffix('%')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(bad)?;
                if p < 0 {
                    return Err(SpecError::invalid(at, "must be greater than or equal to 0"));
                }
                Ok(IntOrPercent::Percent(p))
            }
            _ => Err(bad()),
        }
    }

    /// `intstr.GetScaledValueFromIntOrPercent`: a percentage of `total`,
    /// rounded up or down.
    pub fn scaled(self, total: i32, round_up: bool) -> i32 {
        match self {
            IntOrPercent::Int(i) => i,
            IntOrPercent::Percent(p) => {
                let x = i64::from(p) * i64::from(total);
                (if round_up { (x + 99) / 100 } else { x / 100 }) as i32
            }
        }
    }

    pub fn is_zero(self) -> bool {
        matches!(self, IntOrPercent::Int(0) | IntOrPercent::Percent(0))
    }

    /// As written: `1` or `25%`.
    pub fn display(self) -> String {
        match self {
            IntOrPercent::Int(i) => i.to_string(),
            IntOrPercent::Percent(p) => format!("{p}%"),
        }
    }
}

/// Takes the optional field `key` of `spec`, as an [`IntOrPercent`].
pub(crate) fn int_or_percent(
    spec: &mut serde_json::Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<IntOrPercent>, SpecError> {
    match spec.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => IntOrPercent::from_value(&v, &format!("{at}.{key}")).map(Some),
    }
}

/// A non-negative integer field (`at`: its path).
pub(crate) fn non_negative(v: i64, at: &str) -> Result<(), SpecError> {
    if v < 0 {
        return Err(SpecError::invalid(at, "must be greater than or equal to 0"));
    }
    Ok(())
}
