//! The statefulset controller. NOT DONE: a stub that does nothing (the kind is
//! refused by the loader until this is built).

use super::{Cx, PodObs};
use crate::clock::Now;
use crate::spec::workload::statefulset::StatefulSetSpec;
use serde::{Deserialize, Serialize};

/// The controller's saved state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {}

pub(crate) fn sync(_cx: &mut Cx<'_>, _spec: &StatefulSetSpec, _st: &mut State, _pods: &[PodObs]) {}

/// The `status` object, as Kubernetes writes it.
pub(crate) fn status(
    _spec: &StatefulSetSpec,
    _st: &State,
    _pods: &[PodObs],
    _now: Now,
) -> serde_json::Value {
    serde_json::Value::Null
}
