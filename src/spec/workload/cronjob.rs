//! `CronJob`: its spec, field table, defaults and rules.
//!
//! NOT DONE: only `selector` and `template` are read so far; the kind's
//! other fields are refused as unknown until this file implements them.

use super::{
    LabelSelector, PodTemplate, SELECTOR, TEMPLATE, check_selector, document_table, typed,
};
use crate::spec::error::SpecError;
use crate::spec::schema::{Node, Rule};
use crate::spec::types::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

pub(crate) static DOCUMENT: Node = document_table!(&SPEC);

static SPEC: Node = Node::Object(&[("selector", Rule::Field(&SELECTOR)), ("template", TEMPLATE)]);

/// A CronJob's spec, defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct CronJobSpec {
    pub selector: LabelSelector,
    pub template: PodTemplate,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fields {
    #[serde(default)]
    selector: LabelSelector,
}

/// Reads `spec` of the CronJob `meta` (walked against [`DOCUMENT`]).
pub(crate) fn from_value(spec: Value, meta: &ObjectMeta) -> Result<CronJobSpec, SpecError> {
    let Value::Object(mut spec) = spec else {
        return Err(SpecError::invalid("spec", "required"));
    };
    let template = PodTemplate::from_value(
        spec.remove("template").unwrap_or(Value::Null),
        meta,
        "spec.jobTemplate.spec.template",
    )?;
    let f: Fields = typed(Value::Object(spec), "spec")?;
    check_selector(&f.selector, &template, "spec.selector", "spec.template")?;
    Ok(CronJobSpec {
        selector: f.selector,
        template,
    })
}
