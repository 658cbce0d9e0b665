//! The job controller. NOT DONE: a stub that does nothing (the kind is
//! refused by the loader until this is built).

use super::{Cx, PodObs};
use crate::clock::Now;
use crate::spec::workload::job::JobSpec;
use serde::{Deserialize, Serialize};

/// The controller's saved state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {}

pub(crate) fn sync(_cx: &mut Cx<'_>, _spec: &JobSpec, _st: &mut State, _pods: &[PodObs]) {}

/// The `status` object, as Kubernetes writes it.
pub(crate) fn status(
    _spec: &JobSpec,
    _st: &State,
    _pods: &[PodObs],
    _now: Now,
) -> serde_json::Value {
    serde_json::Value::Null
}

/// Whether the Job finished: `Some((true, wall_ms))` Complete,
/// `Some((false, wall_ms))` Failed.
pub fn finished(_st: &State) -> Option<(bool, i64)> {
    None
}
