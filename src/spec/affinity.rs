//! `nodeSelector` and node affinity (`requiredDuringSchedulingIgnoredDuringExecution`)
//! against this node's labels, and the node's labels themselves. Pure.
//!
//! On one node, "scheduling" is admission: a bare Pod that does not match
//! is rejected by the lifecycle core (`NodeAffinity`), and a DaemonSet
//! that does not match runs nothing here. `preferred…` terms and
//! `podAffinity`/`podAntiAffinity` only rank or spread pods between
//! nodes: they are accepted and ignored (docs/pod-fields.md).

use super::names;
use super::validate::Errors;
use crate::vecmap::VecMap;
use serde::{Deserialize, Serialize};

/// `spec.affinity`: only `nodeAffinity` is kept.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Affinity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<NodeAffinity>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeAffinity {
    #[serde(
        default,
        rename = "requiredDuringSchedulingIgnoredDuringExecution",
        skip_serializing_if = "Option::is_none"
    )]
    pub required: Option<NodeSelector>,
}

/// `v1.NodeSelector`: the terms are ORed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelector {
    #[serde(default)]
    pub node_selector_terms: Vec<NodeSelectorTerm>,
}

/// One term: all its requirements are ANDed; an empty term matches nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelectorTerm {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<Requirement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_fields: Vec<Requirement>,
}

/// `v1.NodeSelectorRequirement`; `operator` is `In`, `NotIn`, `Exists`,
/// `DoesNotExist`, `Gt` or `Lt` (checked by [`validate`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Requirement {
    pub key: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl Requirement {
    fn matches(&self, value: Option<&String>) -> bool {
        let int = |s: &str| s.parse::<i64>().ok();
        let cmp = |v: Option<&String>| Some((int(v?)?, int(self.values.first()?)?));
        match self.operator.as_str() {
            "In" => value.is_some_and(|v| self.values.contains(v)),
            "NotIn" => value.is_none_or(|v| !self.values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            "Gt" => cmp(value).is_some_and(|(a, b)| a > b),
            "Lt" => cmp(value).is_some_and(|(a, b)| a < b),
            _ => false,
        }
    }
}

/// Whether a pod with `node_selector` and `affinity` may run on the node
/// `node_name` with `labels` (the scheduler's `NodeAffinity` filter).
pub fn matches(
    node_selector: &VecMap<String, String>,
    affinity: Option<&Affinity>,
    node_name: &str,
    labels: &VecMap<String, String>,
) -> bool {
    let name = node_name.to_string();
    node_selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        && affinity
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| n.required.as_ref())
            .is_none_or(|sel| {
                sel.node_selector_terms.iter().any(|t| {
                    !(t.match_expressions.is_empty() && t.match_fields.is_empty())
                        && t.match_expressions
                            .iter()
                            .all(|r| r.matches(labels.get(&r.key)))
                        && t.match_fields.iter().all(|r| r.matches(Some(&name)))
                })
            })
}

/// Kubernetes' rules on `spec.nodeSelector` and `spec.affinity`.
pub(crate) fn validate(
    node_selector: &VecMap<String, String>,
    affinity: Option<&Affinity>,
    errs: &mut Errors,
) {
    for (k, v) in node_selector {
        errs.check("spec.nodeSelector", names::qualified_name(k));
        errs.check(format!("spec.nodeSelector.{k}"), names::label_value(v));
    }
    let Some(sel) = affinity
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.required.as_ref())
    else {
        return;
    };
    let at = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution";
    if sel.node_selector_terms.is_empty() {
        errs.add(
            format!("{at}.nodeSelectorTerms"),
            "must have at least one node selector term",
        );
    }
    for (i, t) in sel.node_selector_terms.iter().enumerate() {
        for (field, reqs) in [
            ("matchExpressions", &t.match_expressions),
            ("matchFields", &t.match_fields),
        ] {
            for (j, r) in reqs.iter().enumerate() {
                let p = format!("{at}.nodeSelectorTerms[{i}].{field}[{j}]");
                requirement(r, field == "matchFields", &p, errs);
            }
        }
    }
}

fn requirement(r: &Requirement, field: bool, p: &str, errs: &mut Errors) {
    let n = r.values.len();
    let bad = match r.operator.as_str() {
        "In" | "NotIn" if field && n != 1 => Some(
            "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
        ),
        "In" | "NotIn" if n == 0 => Some("must be specified when `operator` is 'In' or 'NotIn'"),
        "In" | "NotIn" => None,
        "Exists" | "DoesNotExist" if !field => {
            (n > 0).then_some("may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
        }
        "Gt" | "Lt" if !field => (n != 1 || r.values[0].parse::<i64>().is_err())
            .then_some("must be specified single value when `operator` is 'Lt' or 'Gt'"),
        op => {
            let ops = if field {
                "\"In\", \"NotIn\""
            } else {
                "\"DoesNotExist\", \"Exists\", \"Gt\", \"In\", \"Lt\", \"NotIn\""
            };
            errs.add(
                format!("{p}.operator"),
                format!("Unsupported value: {op:?}: supported values: {ops}"),
            );
            None
        }
    };
    if let Some(m) = bad {
        errs.add(format!("{p}.values"), m);
    }
    if field {
        if r.key != "metadata.name" {
            errs.add(
                format!("{p}.key"),
                format!(
                    "Unsupported value: {:?}: supported values: \"metadata.name\"",
                    r.key
                ),
            );
        }
    } else {
        errs.check(format!("{p}.key"), names::qualified_name(&r.key));
    }
}

/// The board label: `picolet.io/board=<board file name>`.
pub const BOARD_LABEL: &str = "picolet.io/board";

/// This node's labels, as the kubelet sets them (`kubernetes.io/hostname`,
/// `kubernetes.io/os`, `kubernetes.io/arch` from Rust's `arch`: amd64,
/// arm64, arm), then `picolet.io/board` (the detected board's id), then
/// the configured ones (`nodeLabels`, `--node-label`), which win.
pub fn node_labels(
    node_name: &str,
    arch: &str,
    board: Option<&str>,
    configured: &VecMap<String, String>,
) -> VecMap<String, String> {
    let arch = match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        a => a,
    };
    let mut l = VecMap::new();
    l.insert("kubernetes.io/hostname".into(), node_name.to_string());
    l.insert("kubernetes.io/os".into(), "linux".into());
    l.insert("kubernetes.io/arch".into(), arch.to_string());
    if let Some(b) = board {
        l.insert(BOARD_LABEL.into(), b.to_string());
    }
    l.extend(configured.iter().map(|(k, v)| (k.clone(), v.clone())));
    l
}

/// Checks configured node labels (`k=v` keys and values as Kubernetes'
/// labels); `at`: where they come from, for the message.
pub fn check_labels(labels: &VecMap<String, String>, at: &str) -> Result<(), String> {
    for (k, v) in labels {
        names::qualified_name(k).map_err(|e| format!("{at}: label key {k:?}: {e}"))?;
        names::label_value(v).map_err(|e| format!("{at}: label {k}: value {v:?}: {e}"))?;
    }
    Ok(())
}
