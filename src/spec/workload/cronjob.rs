//! `batch/v1` CronJob: its spec, field table, defaults and rules. The
//! `jobTemplate.spec` is a Job's spec, checked as a Job's (paths under
//! `spec.jobTemplate.spec`).

use super::job::JobSpec;
use super::job::{boolean, int, string};
use super::{document_table, non_negative};
use crate::spec::error::SpecError;
use crate::spec::schema::{METADATA, Node, Rule};
use crate::spec::types::ObjectMeta;
use crate::workloads::cron::Schedule;
use serde_json::Value;

pub(crate) static DOCUMENT: Node = document_table!(&SPEC);

static SPEC: Node = Node::Object(&[
    ("schedule", Rule::Field(&Node::Scalar)),
    ("timeZone", Rule::Field(&Node::Scalar)),
    ("startingDeadlineSeconds", Rule::Field(&Node::Scalar)),
    ("concurrencyPolicy", Rule::Field(&Node::Scalar)),
    ("suspend", Rule::Field(&Node::Scalar)),
    ("successfulJobsHistoryLimit", Rule::Field(&Node::Scalar)),
    ("failedJobsHistoryLimit", Rule::Field(&Node::Scalar)),
    ("jobTemplate", Rule::Field(&JOB_TEMPLATE)),
]);

static JOB_TEMPLATE: Node = Node::Object(&[
    ("metadata", Rule::Field(&METADATA)),
    ("spec", Rule::Field(&super::job::SPEC)),
]);

/// A CronJob's spec, defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct CronJobSpec {
    pub schedule: Schedule,
    /// As written, for `get`.
    pub schedule_text: String,
    /// An IANA name; `None`: UTC.
    pub time_zone: Option<String>,
    pub starting_deadline_seconds: Option<i64>,
    pub concurrency: Concurrency,
    pub suspend: bool,
    /// Default 3.
    pub successful_jobs_history_limit: i32,
    /// Default 1.
    pub failed_jobs_history_limit: i32,
    /// The Job's spec, checked.
    pub job: JobSpec,
    /// `jobTemplate` as written (`metadata` and `spec`): each Job's
    /// document is made from it.
    pub job_template: Value,
}

/// `concurrencyPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    Allow,
    Forbid,
    Replace,
}

struct Fields {
    schedule: String,
    time_zone: Option<String>,
    starting_deadline_seconds: Option<i64>,
    concurrency_policy: Option<String>,
    suspend: bool,
    successful_jobs_history_limit: Option<i32>,
    failed_jobs_history_limit: Option<i32>,
}

/// Reads `spec` of the CronJob `meta` (walked against [`DOCUMENT`]).
pub(crate) fn from_value(spec: Value, meta: &ObjectMeta) -> Result<CronJobSpec, SpecError> {
    let Value::Object(mut spec) = spec else {
        return Err(SpecError::invalid("spec", "required"));
    };
    if meta.name.len() > 52 {
        return Err(SpecError::invalid(
            "metadata.name",
            "must be no more than 52 characters",
        ));
    }
    let mut job_template = spec.remove("jobTemplate").unwrap_or(Value::Null);
    let job_spec = job_template
        .get_mut("spec")
        .map(Value::take)
        .unwrap_or(Value::Null);
    let job =
        super::job::from_value(job_spec.clone(), meta).map_err(|e| e.under("spec.jobTemplate"))?;
    if let Some(t) = job_template.as_object_mut() {
        t.insert("spec".into(), job_spec);
    }
    let m = &mut spec;
    let f = Fields {
        schedule: string(m, "schedule")?.unwrap_or_default(),
        time_zone: string(m, "timeZone")?,
        starting_deadline_seconds: int(m, "startingDeadlineSeconds")?.map(i64::from),
        concurrency_policy: string(m, "concurrencyPolicy")?,
        suspend: boolean(m, "suspend")?,
        successful_jobs_history_limit: int(m, "successfulJobsHistoryLimit")?,
        failed_jobs_history_limit: int(m, "failedJobsHistoryLimit")?,
    };
    if f.schedule.is_empty() {
        return Err(SpecError::invalid("spec.schedule", "Required value"));
    }
    let schedule =
        Schedule::parse(&f.schedule).map_err(|e| SpecError::invalid("spec.schedule", e))?;
    if f.schedule.contains("TZ") {
        return Err(SpecError::invalid(
            "spec.schedule",
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ));
    }
    if let Some(tz) = &f.time_zone {
        check_time_zone(tz)?;
    }
    if let Some(d) = f.starting_deadline_seconds {
        non_negative(d, "spec.startingDeadlineSeconds")?;
    }
    let concurrency = match f.concurrency_policy.as_deref() {
        None | Some("Allow") => Concurrency::Allow,
        Some("Forbid") => Concurrency::Forbid,
        Some("Replace") => Concurrency::Replace,
        Some(other) => {
            return Err(SpecError::invalid(
                "spec.concurrencyPolicy",
                format!(
                    "Unsupported value: {other:?}: supported values: \"Allow\", \"Forbid\", \"Replace\""
                ),
            ));
        }
    };
    let ok = f.successful_jobs_history_limit.unwrap_or(3);
    non_negative(ok.into(), "spec.successfulJobsHistoryLimit")?;
    let failed = f.failed_jobs_history_limit.unwrap_or(1);
    non_negative(failed.into(), "spec.failedJobsHistoryLimit")?;
    Ok(CronJobSpec {
        schedule,
        schedule_text: f.schedule,
        time_zone: f.time_zone,
        starting_deadline_seconds: f.starting_deadline_seconds,
        concurrency,
        suspend: f.suspend,
        successful_jobs_history_limit: ok,
        failed_jobs_history_limit: failed,
        job,
        job_template,
    })
}

/// `timeZone`: an IANA name (`Europe/Berlin`), as Kubernetes checks it
/// before loading it: each part `[A-Za-z.-_0-9+]{1,14}`, no `..`, and not
/// `Local`. Whether the zone exists is known when the agent reads it.
fn check_time_zone(tz: &str) -> Result<(), SpecError> {
    let at = "spec.timeZone";
    if tz.is_empty() {
        return Err(SpecError::invalid(
            at,
            "timeZone must be nil or non-empty string",
        ));
    }
    if tz.eq_ignore_ascii_case("local") {
        return Err(SpecError::invalid(
            at,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    let ok = tz.split('/').all(|p| {
        (1..=14).contains(&p.len())
            && p != ".."
            && p != "."
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
    });
    if !ok {
        return Err(SpecError::invalid(at, format!("unknown time zone {tz}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
