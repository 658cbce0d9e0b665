//! `batch/v1` Job: its spec, field table, defaults and rules.

use super::{LabelSelector, PodTemplate, SELECTOR, TEMPLATE, document_table, non_negative, typed};
use crate::spec::error::{ErrorKind, SpecError};
use crate::spec::schema::{Node, Rule};
use crate::spec::types::{ObjectMeta, RestartPolicy};
use serde_json::Value;

pub(crate) static DOCUMENT: Node = document_table!(&SPEC);

const PER_INDEX: &str = "backoffLimitPerIndex (and maxFailedIndexes) is not supported";

pub(crate) static SPEC: Node = Node::Object(&[
    ("parallelism", Rule::Field(&Node::Scalar)),
    ("completions", Rule::Field(&Node::Scalar)),
    ("completionMode", Rule::Field(&Node::Scalar)),
    ("backoffLimit", Rule::Field(&Node::Scalar)),
    ("activeDeadlineSeconds", Rule::Field(&Node::Scalar)),
    ("ttlSecondsAfterFinished", Rule::Field(&Node::Scalar)),
    ("suspend", Rule::Field(&Node::Scalar)),
    ("podFailurePolicy", Rule::Field(&POD_FAILURE_POLICY)),
    ("podReplacementPolicy", Rule::Field(&Node::Scalar)),
    ("manualSelector", Rule::Field(&Node::Scalar)),
    ("selector", Rule::Field(&SELECTOR)),
    ("template", TEMPLATE),
    ("backoffLimitPerIndex", Rule::Unsupported(PER_INDEX)),
    ("maxFailedIndexes", Rule::Unsupported(PER_INDEX)),
    (
        "successPolicy",
        Rule::Unsupported("successPolicy is not supported"),
    ),
    (
        "managedBy",
        Rule::IgnoreIf(
            |v, _| v.as_str() == Some("kubernetes.io/job-controller"),
            "managedBy: only the built-in job controller (kubernetes.io/job-controller) runs Jobs here",
        ),
    ),
]);

static POD_FAILURE_POLICY: Node = Node::Object(&[("rules", Rule::Field(&Node::List(&PFP_RULE)))]);

static PFP_RULE: Node = Node::Object(&[
    ("action", Rule::Field(&Node::Scalar)),
    ("onExitCodes", Rule::Field(&ON_EXIT_CODES)),
    (
        "onPodConditions",
        Rule::Field(&Node::List(&ON_POD_CONDITION)),
    ),
]);

static ON_EXIT_CODES: Node = Node::Object(&[
    ("containerName", Rule::Field(&Node::Scalar)),
    ("operator", Rule::Field(&Node::Scalar)),
    ("values", Rule::Field(&Node::Scalar)),
]);

static ON_POD_CONDITION: Node = Node::Object(&[
    ("type", Rule::Field(&Node::Scalar)),
    ("status", Rule::Field(&Node::Scalar)),
]);

/// A Job's spec, defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// Default 1.
    pub parallelism: i32,
    /// `None`: a work queue (done when one pod succeeded and none runs).
    pub completions: Option<i32>,
    pub indexed: bool,
    /// Default 6.
    pub backoff_limit: i32,
    pub active_deadline_seconds: Option<i64>,
    pub ttl_seconds_after_finished: Option<i32>,
    pub suspend: bool,
    pub pod_failure_policy: Vec<FailureRule>,
    /// Only with `manualSelector: true`; else the controller's.
    pub selector: LabelSelector,
    pub template: PodTemplate,
}

/// A `podFailurePolicy` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureRule {
    pub action: FailureAction,
    pub on: FailureMatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAction {
    FailJob,
    Ignore,
    Count,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FailureMatch {
    /// `onExitCodes`: a container (or any) that exited non-zero with a code
    /// `In` (true) or `NotIn` (false) `values`.
    ExitCodes {
        container: Option<String>,
        is_in: bool,
        values: Vec<i32>,
    },
    /// `onPodConditions` (type `DisruptionTarget`, the one picolet sets:
    /// on an evicted pod): `status` True, False or Unknown.
    DisruptionTarget(Vec<String>),
}

struct Fields {
    parallelism: Option<i32>,
    completions: Option<i32>,
    completion_mode: Option<String>,
    backoff_limit: Option<i32>,
    active_deadline_seconds: Option<i32>,
    ttl_seconds_after_finished: Option<i32>,
    suspend: bool,
    pod_replacement_policy: Option<String>,
    manual_selector: bool,
    selector: LabelSelector,
}

fn type_error(key: &str, what: &str) -> SpecError {
    SpecError::new(
        ErrorKind::Type,
        format!("spec.{key}"),
        format!("must be {what}"),
    )
}

/// Takes the optional integer (int32) `spec.<key>` (read without serde:
/// smaller code than a derived deserializer).
pub(crate) fn int(
    m: &mut serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<i32>, SpecError> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .map(Some)
            .ok_or_else(|| type_error(key, "an integer")),
    }
}

/// Takes the optional boolean `spec.<key>`.
pub(crate) fn boolean(
    m: &mut serde_json::Map<String, Value>,
    key: &str,
) -> Result<bool, SpecError> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(b),
        Some(_) => Err(type_error(key, "a boolean")),
    }
}

/// Takes the optional string `spec.<key>`.
pub(crate) fn string(
    m: &mut serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<String>, SpecError> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(type_error(key, "a string")),
    }
}

/// Reads `spec` of the Job `meta` (walked against [`DOCUMENT`]).
pub(crate) fn from_value(spec: Value, meta: &ObjectMeta) -> Result<JobSpec, SpecError> {
    let Value::Object(mut spec) = spec else {
        return Err(SpecError::invalid("spec", "required"));
    };
    let template = PodTemplate::from_value(
        spec.remove("template").unwrap_or(Value::Null),
        meta,
        "spec.template",
    )?;
    let pfp = spec.remove("podFailurePolicy");
    let m = &mut spec;
    let f = Fields {
        parallelism: int(m, "parallelism")?,
        completions: int(m, "completions")?,
        completion_mode: string(m, "completionMode")?,
        backoff_limit: int(m, "backoffLimit")?,
        active_deadline_seconds: int(m, "activeDeadlineSeconds")?,
        ttl_seconds_after_finished: int(m, "ttlSecondsAfterFinished")?,
        suspend: boolean(m, "suspend")?,
        pod_replacement_policy: string(m, "podReplacementPolicy")?,
        manual_selector: boolean(m, "manualSelector")?,
        selector: match m.remove("selector") {
            Some(v) if !v.is_null() => typed(v, "spec.selector")?,
            _ => LabelSelector::default(),
        },
    };
    if f.manual_selector {
        super::check_selector(&f.selector, &template, "spec.selector", "spec.template")?;
    } else if !f.selector.is_empty() {
        return Err(SpecError::invalid(
            "spec.selector",
            "`selector` not auto-generated: set `manualSelector: true` to use your own",
        ));
    }
    let restart = template.pod.spec.restart_policy;
    if restart == RestartPolicy::Always {
        return Err(SpecError::invalid(
            "spec.template.spec.restartPolicy",
            "Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
        ));
    }
    let parallelism = f.parallelism.unwrap_or(1);
    non_negative(parallelism.into(), "spec.parallelism")?;
    if let Some(c) = f.completions {
        non_negative(c.into(), "spec.completions")?;
    }
    let indexed = match f.completion_mode.as_deref() {
        None | Some("NonIndexed") => false,
        Some("Indexed") => true,
        Some(other) => {
            return Err(SpecError::invalid(
                "spec.completionMode",
                format!(
                    "Unsupported value: {other:?}: supported values: \"NonIndexed\", \"Indexed\""
                ),
            ));
        }
    };
    if indexed && f.completions.is_none() {
        return Err(SpecError::invalid(
            "spec.completions",
            "Required value: when completion mode is Indexed",
        ));
    }
    if indexed && f.completions.unwrap_or(0) > 100_000 {
        return Err(SpecError::invalid(
            "spec.completions",
            "must be less than or equal to 100000 when completion mode is Indexed",
        ));
    }
    let backoff_limit = f.backoff_limit.unwrap_or(6);
    non_negative(backoff_limit.into(), "spec.backoffLimit")?;
    if let Some(d) = f.active_deadline_seconds {
        non_negative(d.into(), "spec.activeDeadlineSeconds")?;
    }
    if let Some(t) = f.ttl_seconds_after_finished {
        non_negative(t.into(), "spec.ttlSecondsAfterFinished")?;
    }
    let pod_failure_policy = match pfp {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => failure_policy(v, &template)?,
    };
    if !pod_failure_policy.is_empty() && restart != RestartPolicy::Never {
        return Err(SpecError::invalid(
            "spec.template.spec.restartPolicy",
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
    // The default is the only policy this controller has: a pod is
    // replaced once it is Failed (with a podFailurePolicy), or once it is
    // terminating or failed (without).
    let default = if pod_failure_policy.is_empty() {
        "TerminatingOrFailed"
    } else {
        "Failed"
    };
    if let Some(p) = f.pod_replacement_policy.filter(|p| p != default) {
        return Err(SpecError::new(
            ErrorKind::Unsupported,
            "spec.podReplacementPolicy",
            format!("{p:?} is not supported: only the default ({default:?} here)"),
        ));
    }
    Ok(JobSpec {
        parallelism,
        completions: f.completions,
        indexed,
        backoff_limit,
        active_deadline_seconds: f.active_deadline_seconds.map(i64::from),
        ttl_seconds_after_finished: f.ttl_seconds_after_finished,
        suspend: f.suspend,
        pod_failure_policy,
        selector: f.selector,
        template,
    })
}

fn failure_policy(v: Value, template: &PodTemplate) -> Result<Vec<FailureRule>, SpecError> {
    let at = "spec.podFailurePolicy.rules";
    let rules = match v.get("rules") {
        Some(Value::Array(r)) => r.clone(),
        _ => return Err(SpecError::invalid(at, "Required value")),
    };
    if rules.len() > 20 {
        return Err(SpecError::invalid(
            at,
            "Too many: must have at most 20 items",
        ));
    }
    let mut out = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let action = match r.get("action").and_then(Value::as_str) {
            Some("FailJob") => FailureAction::FailJob,
            Some("Ignore") => FailureAction::Ignore,
            Some("Count") => FailureAction::Count,
            Some("FailIndex") => {
                return Err(SpecError::invalid(
                    format!("{at}.action"),
                    "FailIndex needs backoffLimitPerIndex, which is not supported",
                ));
            }
            other => {
                return Err(SpecError::invalid(
                    format!("{at}.action"),
                    format!(
                        "Unsupported value: {}: supported values: \"Count\", \"FailJob\", \"Ignore\"",
                        other.map_or("missing".into(), |o| format!("{o:?}"))
                    ),
                ));
            }
        };
        let on = match (r.get("onExitCodes"), r.get("onPodConditions")) {
            (Some(e), None) => exit_codes(e, template, &format!("{at}.onExitCodes"))?,
            (None, Some(Value::Array(c))) => {
                let mut statuses = Vec::new();
                for (j, c) in c.iter().enumerate() {
                    let at = format!("{at}.onPodConditions[{j}]");
                    if c.get("type").and_then(Value::as_str) != Some("DisruptionTarget") {
                        return Err(SpecError::new(
                            ErrorKind::Unsupported,
                            format!("{at}.type"),
                            "only DisruptionTarget is supported (the condition of an evicted pod)",
                        ));
                    }
                    let s = c.get("status").and_then(Value::as_str).unwrap_or("True");
                    if !["True", "False", "Unknown"].contains(&s) {
                        return Err(SpecError::invalid(
                            format!("{at}.status"),
                            format!(
                                "Unsupported value: {s:?}: supported values: \"True\", \"False\", \"Unknown\""
                            ),
                        ));
                    }
                    statuses.push(s.to_string());
                }
                FailureMatch::DisruptionTarget(statuses)
            }
            (Some(_), Some(_)) => {
                return Err(SpecError::invalid(
                    at,
                    "specifying both OnExitCodes and OnPodConditions is not supported",
                ));
            }
            _ => {
                return Err(SpecError::invalid(
                    at,
                    "specifying one of OnExitCodes and OnPodConditions is required",
                ));
            }
        };
        out.push(FailureRule { action, on });
    }
    Ok(out)
}

fn exit_codes(v: &Value, template: &PodTemplate, at: &str) -> Result<FailureMatch, SpecError> {
    let container = v
        .get("containerName")
        .and_then(Value::as_str)
        .map(String::from);
    if let Some(c) = &container {
        let spec = &template.pod.spec;
        if !spec
            .containers
            .iter()
            .chain(&spec.init_containers)
            .any(|x| &x.name == c)
        {
            return Err(SpecError::invalid(
                format!("{at}.containerName"),
                format!(
                    "{c:?}: must be one of the container or initContainer names in the pod template"
                ),
            ));
        }
    }
    let is_in = match v.get("operator").and_then(Value::as_str) {
        Some("In") => true,
        Some("NotIn") => false,
        other => {
            return Err(SpecError::invalid(
                format!("{at}.operator"),
                format!(
                    "Unsupported value: {}: supported values: \"In\", \"NotIn\"",
                    other.map_or("missing".into(), |o| format!("{o:?}"))
                ),
            ));
        }
    };
    let vat = format!("{at}.values");
    let values: Vec<i32> = match v.get("values") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_i64().and_then(|i| i32::try_from(i).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| SpecError::new(ErrorKind::Type, &vat, "must be a list of integers"))?,
        _ => Vec::new(),
    };
    if values.is_empty() || values.len() > 255 {
        return Err(SpecError::invalid(vat, "must have between 1 and 255 items"));
    }
    for (i, w) in values.iter().enumerate() {
        if is_in && *w == 0 {
            return Err(SpecError::invalid(
                format!("{vat}[{i}]"),
                "must not be 0 for the In operator",
            ));
        }
        if i > 0 && values[i - 1] >= *w {
            return Err(SpecError::invalid(
                format!("{vat}[{i}]"),
                if values[i - 1] == *w {
                    "Duplicate value"
                } else {
                    "must be ordered"
                },
            ));
        }
    }
    Ok(FailureMatch::ExitCodes {
        container,
        is_in,
        values,
    })
}
