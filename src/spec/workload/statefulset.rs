//! `apps/v1` StatefulSet: its spec, field table, defaults and rules.
//!
//! `volumeClaimTemplates` become directories under the state dir, one per
//! claim and ordinal; the pod template's `volumeMounts` name them as
//! volumes. The template is loaded with a placeholder volume for each
//! claim, which the controller makes a `persistentVolumeClaim` volume of
//! the ordinal's claim (`<claim>-<set>-<ordinal>`). A manifest cannot
//! write such a volume itself (the loader refuses it).

use super::daemonset::{STRATEGY, strategy};
use super::{LabelSelector, PodTemplate, SELECTOR, TEMPLATE, document_table};
use super::{check_always_template, non_negative, take, typed};
use crate::spec::error::{ErrorKind, SpecError};
use crate::spec::names;
use crate::spec::schema::{METADATA, Node, Rule};
use crate::spec::types::{ClaimVolume, ObjectMeta};
use serde_json::Value;

pub(crate) static DOCUMENT: Node = document_table!(&SPEC);

static SPEC: Node = Node::Object(&[
    ("replicas", Rule::Field(&Node::Scalar)),
    ("selector", Rule::Field(&SELECTOR)),
    ("template", TEMPLATE),
    ("serviceName", Rule::Field(&Node::Scalar)),
    ("podManagementPolicy", Rule::Field(&Node::Scalar)),
    ("updateStrategy", Rule::Field(&STRATEGY)),
    ("minReadySeconds", Rule::Field(&Node::Scalar)),
    ("revisionHistoryLimit", Rule::Field(&Node::Scalar)),
    ("volumeClaimTemplates", Rule::Field(&Node::List(&CLAIM))),
    (
        "persistentVolumeClaimRetentionPolicy",
        Rule::Field(&Node::Object(&[
            ("whenDeleted", Rule::Field(&Node::Scalar)),
            ("whenScaled", Rule::Field(&Node::Scalar)),
        ])),
    ),
    (
        "ordinals",
        Rule::Field(&Node::Object(&[("start", Rule::Field(&Node::Scalar))])),
    ),
]);

static CLAIM: Node = Node::Object(&[
    ("apiVersion", Rule::Field(&Node::Scalar)),
    ("kind", Rule::Field(&Node::Scalar)),
    ("metadata", Rule::Field(&METADATA)),
    ("spec", Rule::Field(&CLAIM_SPEC)),
    ("status", Rule::Ignore),
]);

const ONE_DIR: &str =
    "a claim is a directory under the state dir: no selector, data source or volume attributes";

static CLAIM_SPEC: Node = Node::Object(&[
    ("accessModes", Rule::Field(&Node::Scalar)),
    (
        "resources",
        Rule::Field(&Node::Object(&[
            ("requests", Rule::Field(&Node::Scalar)),
            ("limits", Rule::Field(&Node::Scalar)),
        ])),
    ),
    // One storage class on one node: the state dir's filesystem.
    ("storageClassName", Rule::Ignore),
    ("volumeMode", Rule::Field(&Node::Scalar)),
    ("selector", Rule::Unsupported(ONE_DIR)),
    ("dataSource", Rule::Unsupported(ONE_DIR)),
    ("dataSourceRef", Rule::Unsupported(ONE_DIR)),
    ("volumeName", Rule::Unsupported(ONE_DIR)),
    ("volumeAttributesClassName", Rule::Unsupported(ONE_DIR)),
]);

/// A StatefulSet's spec, defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct StatefulSetSpec {
    /// Default 1.
    pub replicas: i32,
    pub selector: LabelSelector,
    /// Its claim volumes have an empty `claimName`.
    pub template: PodTemplate,
    pub service_name: String,
    /// `podManagementPolicy: Parallel` (default `OrderedReady`).
    pub parallel: bool,
    /// `None`: `OnDelete`; else `RollingUpdate` with this `partition`.
    pub partition: Option<i32>,
    pub min_ready_seconds: i32,
    /// Accepted (default 10); picolet keeps the current and the update
    /// revision only.
    pub revision_history_limit: i32,
    /// The claims' names (`metadata.name` of each template).
    pub claims: Vec<String>,
    /// `persistentVolumeClaimRetentionPolicy.whenDeleted: Delete`.
    pub delete_claims_when_deleted: bool,
    /// `persistentVolumeClaimRetentionPolicy.whenScaled: Delete`.
    pub delete_claims_when_scaled: bool,
    /// `ordinals.start` (default 0).
    pub start: i32,
}

fn object(v: Option<Value>) -> serde_json::Map<String, Value> {
    match v {
        Some(Value::Object(m)) => m,
        _ => Default::default(),
    }
}

/// Reads `spec` of the StatefulSet `meta` (walked against [`DOCUMENT`]).
pub(crate) fn from_value(spec: Value, meta: &ObjectMeta) -> Result<StatefulSetSpec, SpecError> {
    let Value::Object(mut spec) = spec else {
        return Err(SpecError::invalid("spec", "required"));
    };
    let mut template = spec.remove("template").unwrap_or(Value::Null);
    let (kind, mut ru) = strategy(spec.remove("updateStrategy"))?;
    let replicas: Option<i32> = take(&mut spec, "replicas", "spec")?;
    let selector: Option<LabelSelector> = take(&mut spec, "selector", "spec")?;
    let service_name: Option<String> = take(&mut spec, "serviceName", "spec")?;
    let policy: Option<String> = take(&mut spec, "podManagementPolicy", "spec")?;
    let min_ready_seconds: Option<i32> = take(&mut spec, "minReadySeconds", "spec")?;
    let history: Option<i32> = take(&mut spec, "revisionHistoryLimit", "spec")?;
    let mut retention = object(spec.remove("persistentVolumeClaimRetentionPolicy"));
    let mut ordinals = object(spec.remove("ordinals"));
    let templates = match spec.remove("volumeClaimTemplates") {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    let mut claims = Vec::new();
    for (i, c) in templates.into_iter().enumerate() {
        let at = format!("spec.volumeClaimTemplates[{i}]");
        let name = c
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = &name;
        let mut cs = object(c.get("spec").cloned());
        let access_modes: Option<Vec<String>> =
            take(&mut cs, "accessModes", &format!("{at}.spec"))?;
        let volume_mode: Option<String> = take(&mut cs, "volumeMode", &format!("{at}.spec"))?;
        names::dns1123_label(name)
            .map_err(|e| SpecError::invalid(format!("{at}.metadata.name"), e))?;
        if claims.contains(name) {
            return Err(SpecError::invalid(
                format!("{at}.metadata.name"),
                format!("Duplicate value: {name:?}"),
            ));
        }
        for (j, m) in access_modes.iter().flatten().enumerate() {
            if !["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"].contains(&m.as_str()) {
                return Err(SpecError::invalid(
                    format!("{at}.spec.accessModes[{j}]"),
                    format!(
                        "Unsupported value: {m:?}: supported values: \"ReadWriteOnce\", \
                         \"ReadWriteOncePod\", \"ReadWriteMany\" (a claim is a writable directory)"
                    ),
                ));
            }
        }
        if volume_mode.as_deref().is_some_and(|m| m != "Filesystem") {
            return Err(SpecError::invalid(
                format!("{at}.spec.volumeMode"),
                "Unsupported value: only \"Filesystem\" is supported",
            ));
        }
        claims.push(name.clone());
    }
    // Each claim is a volume of the template (replacing one of its name,
    // as Kubernetes does): a placeholder while the template loads.
    if let Some(Value::Object(pod_spec)) = template.get_mut("spec") {
        let vols = pod_spec
            .entry("volumes")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(vols) = vols {
            vols.retain(|v| {
                !v.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| claims.iter().any(|c| c == n))
            });
            vols.extend(
                claims
                    .iter()
                    .map(|c| serde_json::json!({"name": c, "emptyDir": {}})),
            );
        }
    }
    let mut template = PodTemplate::from_value(template, meta, "spec.template")?;
    for v in &mut template.pod.spec.volumes {
        if claims.contains(&v.name) {
            v.empty_dir = None;
            v.persistent_volume_claim = Some(ClaimVolume::default());
        }
    }
    let selector = selector.unwrap_or_default();
    check_always_template(&selector, &template)?;
    let at = "spec.updateStrategy.rollingUpdate";
    if let Some((k, _)) = ru
        .iter()
        .find(|(k, _)| *k != "partition" && *k != "maxUnavailable")
    {
        return Err(SpecError::new(
            ErrorKind::UnknownField,
            format!("{at}.{k}"),
            "unknown field: a StatefulSet's rolling update has partition and maxUnavailable",
        ));
    }
    if ru.get("maxUnavailable").is_some_and(|v| v != 1) {
        return Err(SpecError::new(
            ErrorKind::Unsupported,
            format!("{at}.maxUnavailable"),
            "only 1 is supported (pods are updated one at a time)",
        ));
    }
    let partition = match kind.as_str() {
        "OnDelete" => None,
        _ => {
            let p: Option<i32> = typed(ru.remove("partition").unwrap_or(Value::Null), at)?;
            let p = p.unwrap_or(0);
            non_negative(p.into(), &format!("{at}.partition"))?;
            Some(p)
        }
    };
    let service_name = service_name.unwrap_or_default();
    if !service_name.is_empty() {
        names::dns1123_label(&service_name)
            .map_err(|e| SpecError::invalid("spec.serviceName", e))?;
    }
    let parallel = match policy.as_deref() {
        None | Some("OrderedReady") => false,
        Some("Parallel") => true,
        Some(o) => {
            return Err(SpecError::invalid(
                "spec.podManagementPolicy",
                format!(
                    "Unsupported value: {o:?}: supported values: \"OrderedReady\", \"Parallel\""
                ),
            ));
        }
    };
    let mut policy = |key: &str| match take::<Option<String>>(
        &mut retention,
        key,
        "spec.persistentVolumeClaimRetentionPolicy",
    )?
    .as_deref()
    {
        None | Some("Retain") => Ok(false),
        Some("Delete") => Ok(true),
        Some(o) => Err(SpecError::invalid(
            format!("spec.persistentVolumeClaimRetentionPolicy.{key}"),
            format!("Unsupported value: {o:?}: supported values: \"Delete\", \"Retain\""),
        )),
    };
    let replicas = replicas.unwrap_or(1);
    non_negative(replicas.into(), "spec.replicas")?;
    let min_ready_seconds = min_ready_seconds.unwrap_or(0);
    non_negative(min_ready_seconds.into(), "spec.minReadySeconds")?;
    let revision_history_limit = history.unwrap_or(10);
    non_negative(revision_history_limit.into(), "spec.revisionHistoryLimit")?;
    let start: Option<i32> = take(&mut ordinals, "start", "spec.ordinals")?;
    let start = start.unwrap_or(0);
    non_negative(start.into(), "spec.ordinals.start")?;
    Ok(StatefulSetSpec {
        replicas,
        selector,
        template,
        service_name,
        parallel,
        partition,
        min_ready_seconds,
        revision_history_limit,
        claims,
        delete_claims_when_deleted: policy("whenDeleted")?,
        delete_claims_when_scaled: policy("whenScaled")?,
        start,
    })
}
