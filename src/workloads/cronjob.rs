//! The CronJob controller. NOT DONE: a stub that does nothing (the kind is
//! refused by the loader until this is built).

use super::{Cx, Entry};
use crate::clock::Now;
use crate::spec::workload::cronjob::CronJobSpec;
use serde::{Deserialize, Serialize};

/// The controller's saved state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {}

/// What a CronJob sees of one of its Jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobObs {
    pub name: String,
    pub created_wall_ms: i64,
    /// `Some((complete, wall_ms))` once finished.
    pub finished: Option<(bool, i64)>,
}

impl JobObs {
    pub(crate) fn of(e: &Entry, st: &super::job::State) -> JobObs {
        JobObs {
            name: e.workload.metadata.name.clone(),
            created_wall_ms: e.created_wall_ms,
            finished: super::job::finished(st),
        }
    }
}

pub(crate) fn sync(_cx: &mut Cx<'_>, _spec: &CronJobSpec, _st: &mut State, _jobs: &[JobObs]) {}

/// The `status` object, as Kubernetes writes it.
pub(crate) fn status(
    _spec: &CronJobSpec,
    _st: &State,
    _jobs: &[JobObs],
    _now: Now,
) -> serde_json::Value {
    serde_json::Value::Null
}
