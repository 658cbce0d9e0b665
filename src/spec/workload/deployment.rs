//! `apps/v1` Deployment: its spec, field table, defaults and rules.

use super::{IntOrPercent, LabelSelector, PodTemplate, SELECTOR, TEMPLATE, document_table};
use super::{check_always_template, int_or_percent, non_negative, take, take_or_default};
use crate::spec::error::SpecError;
use crate::spec::schema::{Node, Rule};
use crate::spec::types::ObjectMeta;
use serde_json::Value;

pub(crate) static DOCUMENT: Node = document_table!(&SPEC);

static SPEC: Node = Node::Object(&[
    ("replicas", Rule::Field(&Node::Scalar)),
    ("selector", Rule::Field(&SELECTOR)),
    ("template", TEMPLATE),
    ("strategy", Rule::Field(&STRATEGY)),
    ("minReadySeconds", Rule::Field(&Node::Scalar)),
    ("revisionHistoryLimit", Rule::Field(&Node::Scalar)),
    ("progressDeadlineSeconds", Rule::Field(&Node::Scalar)),
    ("paused", Rule::Field(&Node::Scalar)),
]);

static STRATEGY: Node = Node::Object(&[
    ("type", Rule::Field(&Node::Scalar)),
    ("rollingUpdate", Rule::Field(&ROLLING_UPDATE)),
]);

static ROLLING_UPDATE: Node = Node::Object(&[
    ("maxSurge", Rule::Field(&Node::Scalar)),
    ("maxUnavailable", Rule::Field(&Node::Scalar)),
]);

/// A Deployment's spec, defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentSpec {
    /// Default 1.
    pub replicas: i32,
    pub selector: LabelSelector,
    pub template: PodTemplate,
    pub strategy: Strategy,
    pub min_ready_seconds: i32,
    /// Default 10.
    pub revision_history_limit: i32,
    /// Default 600.
    pub progress_deadline_seconds: i32,
    pub paused: bool,
}

/// `spec.strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Recreate,
    /// Defaults 25 % and 25 %.
    RollingUpdate {
        max_surge: IntOrPercent,
        max_unavailable: IntOrPercent,
    },
}

/// Reads `spec` of the Deployment `meta` (walked against [`DOCUMENT`]).
pub(crate) fn from_value(spec: Value, meta: &ObjectMeta) -> Result<DeploymentSpec, SpecError> {
    let Value::Object(mut spec) = spec else {
        return Err(SpecError::invalid("spec", "required"));
    };
    let template = PodTemplate::from_value(
        spec.remove("template").unwrap_or(Value::Null),
        meta,
        "spec.template",
    )?;
    let strategy = strategy(spec.remove("strategy"))?;
    // In key order, as a derived deserializer reads them (the first
    // error is the same).
    let m = &mut spec;
    let min_ready_seconds: Option<i32> = take(m, "minReadySeconds", "spec")?;
    let paused: bool = take_or_default(m, "paused", "spec")?;
    let progress_deadline_seconds: Option<i32> = take(m, "progressDeadlineSeconds", "spec")?;
    let replicas: Option<i32> = take(m, "replicas", "spec")?;
    let revision_history_limit: Option<i32> = take(m, "revisionHistoryLimit", "spec")?;
    let selector: LabelSelector = take_or_default(m, "selector", "spec")?;
    check_always_template(&selector, &template)?;
    let auto = "picolet.io/auto-rollback";
    if meta
        .annotations
        .get(auto)
        .is_some_and(|v| v != "true" && v != "false")
    {
        return Err(SpecError::invalid(
            format!("metadata.annotations.{auto}"),
            "must be \"true\" or \"false\"",
        ));
    }
    let replicas = replicas.unwrap_or(1);
    non_negative(replicas.into(), "spec.replicas")?;
    let min_ready_seconds = min_ready_seconds.unwrap_or(0);
    non_negative(min_ready_seconds.into(), "spec.minReadySeconds")?;
    let revision_history_limit = revision_history_limit.unwrap_or(10);
    non_negative(revision_history_limit.into(), "spec.revisionHistoryLimit")?;
    let progress_deadline_seconds = progress_deadline_seconds.unwrap_or(600);
    non_negative(
        progress_deadline_seconds.into(),
        "spec.progressDeadlineSeconds",
    )?;
    if progress_deadline_seconds <= min_ready_seconds {
        return Err(SpecError::invalid(
            "spec.progressDeadlineSeconds",
            "must be greater than minReadySeconds",
        ));
    }
    Ok(DeploymentSpec {
        replicas,
        selector,
        template,
        strategy,
        min_ready_seconds,
        revision_history_limit,
        progress_deadline_seconds,
        paused,
    })
}

fn strategy(v: Option<Value>) -> Result<Strategy, SpecError> {
    let at = "spec.strategy";
    let mut s = match v {
        Some(Value::Object(s)) => s,
        _ => serde_json::Map::new(),
    };
    let kind = match s.remove("type") {
        None | Some(Value::Null) => "RollingUpdate".to_string(),
        Some(Value::String(t)) => t,
        Some(_) => return Err(SpecError::invalid(format!("{at}.type"), "must be a string")),
    };
    let mut ru = match s.remove("rollingUpdate") {
        Some(Value::Object(r)) => Some(r),
        None | Some(Value::Null) => None,
        Some(_) => {
            return Err(SpecError::invalid(
                format!("{at}.rollingUpdate"),
                "must be a mapping",
            ));
        }
    };
    match kind.as_str() {
        "Recreate" => {
            if ru.is_some() {
                return Err(SpecError::invalid(
                    format!("{at}.rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
            Ok(Strategy::Recreate)
        }
        "RollingUpdate" => {
            let at = format!("{at}.rollingUpdate");
            let (surge, unavailable) = match ru.as_mut() {
                Some(r) => (
                    int_or_percent(r, "maxSurge", &at)?,
                    int_or_percent(r, "maxUnavailable", &at)?,
                ),
                None => (None, None),
            };
            let max_surge = surge.unwrap_or(IntOrPercent::Percent(25));
            let max_unavailable = unavailable.unwrap_or(IntOrPercent::Percent(25));
            for (name, v) in [("maxSurge", max_surge), ("maxUnavailable", max_unavailable)] {
                if matches!(v, IntOrPercent::Percent(p) if p > 100) && name == "maxUnavailable" {
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
            Ok(Strategy::RollingUpdate {
                max_surge,
                max_unavailable,
            })
        }
        other => Err(SpecError::invalid(
            format!("{at}.type"),
            format!(
                "Unsupported value: {other:?}: supported values: \"Recreate\", \"RollingUpdate\""
            ),
        )),
    }
}
