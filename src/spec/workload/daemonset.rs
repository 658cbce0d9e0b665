//! `apps/v1` DaemonSet: its spec, field table, defaults and rules.

use super::{IntOrPercent, LabelSelector, PodTemplate, SELECTOR, TEMPLATE, document_table};
use super::{check_always_template, int_or_percent, non_negative, take, take_or_default};
use crate::spec::error::SpecError;
use crate::spec::schema::{Node, Rule};
use crate::spec::types::ObjectMeta;
use serde_json::Value;

pub(crate) static DOCUMENT: Node = document_table!(&SPEC);

static SPEC: Node = Node::Object(&[
    ("selector", Rule::Field(&SELECTOR)),
    ("template", TEMPLATE),
    ("updateStrategy", Rule::Field(&STRATEGY)),
    ("minReadySeconds", Rule::Field(&Node::Scalar)),
    ("revisionHistoryLimit", Rule::Field(&Node::Scalar)),
]);

/// `updateStrategy` of a DaemonSet and (with `partition`) a StatefulSet.
pub(crate) static STRATEGY: Node = Node::Object(&[
    ("type", Rule::Field(&Node::Scalar)),
    ("rollingUpdate", Rule::Field(&ROLLING_UPDATE)),
]);

static ROLLING_UPDATE: Node = Node::Object(&[
    ("maxSurge", Rule::Field(&Node::Scalar)),
    ("maxUnavailable", Rule::Field(&Node::Scalar)),
    ("partition", Rule::Field(&Node::Scalar)),
]);

/// A DaemonSet's spec, defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonSetSpec {
    pub selector: LabelSelector,
    pub template: PodTemplate,
    /// `None`: `OnDelete`.
    pub rolling_update: Option<RollingUpdate>,
    pub min_ready_seconds: i32,
    /// Accepted (Kubernetes' default 10); picolet keeps no old revisions
    /// of a DaemonSet (there is no `rollout undo` for one).
    pub revision_history_limit: i32,
}

/// `updateStrategy.rollingUpdate`, defaulted (`maxUnavailable` 1,
/// `maxSurge` 0). On one node: with a surge the new pod starts before the
/// old one goes, else the old one goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollingUpdate {
    pub max_surge: IntOrPercent,
    pub max_unavailable: IntOrPercent,
}

/// Reads `spec` of the DaemonSet `meta` (walked against [`DOCUMENT`]).
pub(crate) fn from_value(spec: Value, meta: &ObjectMeta) -> Result<DaemonSetSpec, SpecError> {
    let Value::Object(mut spec) = spec else {
        return Err(SpecError::invalid("spec", "required"));
    };
    let template = PodTemplate::from_value(
        spec.remove("template").unwrap_or(Value::Null),
        meta,
        "spec.template",
    )?;
    let (kind, mut ru) = strategy(spec.remove("updateStrategy"))?;
    // In key order, as a derived deserializer reads them.
    let m = &mut spec;
    let min_ready_seconds: Option<i32> = take(m, "minReadySeconds", "spec")?;
    let revision_history_limit: Option<i32> = take(m, "revisionHistoryLimit", "spec")?;
    let selector: LabelSelector = take_or_default(m, "selector", "spec")?;
    check_always_template(&selector, &template)?;
    let at = "spec.updateStrategy.rollingUpdate";
    if ru.remove("partition").is_some() {
        return Err(SpecError::new(
            crate::spec::ErrorKind::UnknownField,
            format!("{at}.partition"),
            "unknown field: a DaemonSet's rolling update has maxSurge and maxUnavailable",
        ));
    }
    let rolling_update = match kind.as_str() {
        "OnDelete" => None,
        _ => {
            let max_surge =
                int_or_percent(&mut ru, "maxSurge", at)?.unwrap_or(IntOrPercent::Int(0));
            let max_unavailable =
                int_or_percent(&mut ru, "maxUnavailable", at)?.unwrap_or(IntOrPercent::Int(1));
            for (name, v) in [("maxSurge", max_surge), ("maxUnavailable", max_unavailable)] {
                if matches!(v, IntOrPercent::Percent(p) if p > 100) {
                    return Err(SpecError::invalid(
                        format!("{at}.{name}"),
                        "must not be greater than 100%",
                    ));
                }
            }
            if max_surge.is_zero() && max_unavailable.is_zero() {
                return Err(SpecError::invalid(
                    format!("{at}.maxUnavailable"),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
            Some(RollingUpdate {
                max_surge,
                max_unavailable,
            })
        }
    };
    let min_ready_seconds = min_ready_seconds.unwrap_or(0);
    non_negative(min_ready_seconds.into(), "spec.minReadySeconds")?;
    let revision_history_limit = revision_history_limit.unwrap_or(10);
    non_negative(revision_history_limit.into(), "spec.revisionHistoryLimit")?;
    Ok(DaemonSetSpec {
        selector,
        template,
        rolling_update,
        min_ready_seconds,
        revision_history_limit,
    })
}

/// Reads `updateStrategy`: its `type` (`RollingUpdate` by default, or
/// `OnDelete`; `rollingUpdate` not allowed with `OnDelete`) and the keys
/// of `rollingUpdate`.
pub(crate) fn strategy(
    v: Option<Value>,
) -> Result<(String, serde_json::Map<String, Value>), SpecError> {
    let at = "spec.updateStrategy";
    let mut s = match v {
        Some(Value::Object(s)) => s,
        _ => serde_json::Map::new(),
    };
    let kind = match s.remove("type") {
        None | Some(Value::Null) => "RollingUpdate".to_string(),
        Some(Value::String(t)) if t == "RollingUpdate" || t == "OnDelete" => t,
        Some(other) => {
            return Err(SpecError::invalid(
                format!("{at}.type"),
                format!(
                    "Unsupported value: {other}: supported values: \"OnDelete\", \"RollingUpdate\""
                ),
            ));
        }
    };
    let ru = match s.remove("rollingUpdate") {
        Some(Value::Object(r)) => r,
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(_) => {
            return Err(SpecError::invalid(
                format!("{at}.rollingUpdate"),
                "must be a mapping",
            ));
        }
    };
    if kind == "OnDelete" && !ru.is_empty() {
        return Err(SpecError::invalid(
            format!("{at}.rollingUpdate"),
            "may not be specified when strategy `type` is 'OnDelete'",
        ));
    }
    Ok((kind, ru))
}
