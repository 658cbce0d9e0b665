//! The Deployment controller on one node. FIRST CUT: keeps `replicas`
//! pods of the current template and deletes the others at once (no
//! rolling update, no revisions history, no rollback yet).

use super::{Cx, PodObs, replica_set_uid};
use crate::clock::Now;
use crate::spec::workload::deployment::DeploymentSpec;
use serde::{Deserialize, Serialize};

/// `pod-template-hash`.
pub const HASH_LABEL: &str = "pod-template-hash";

/// The controller's saved state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// One per template seen, oldest first (Kubernetes' ReplicaSets).
    pub revisions: Vec<Revision>,
}

/// A template the Deployment ran (a ReplicaSet `<deployment>-<hash>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    pub number: i64,
    pub hash: String,
}

/// The template hashes whose pods this Deployment owns.
pub fn owned_hashes(st: &State) -> impl Iterator<Item = &str> {
    st.revisions.iter().map(|r| r.hash.as_str())
}

pub(crate) fn sync(cx: &mut Cx<'_>, spec: &DeploymentSpec, st: &mut State, pods: &[PodObs]) {
    let hash = spec.template.hash.clone();
    if !st.revisions.iter().any(|r| r.hash == hash) {
        let number = st.revisions.iter().map(|r| r.number).max().unwrap_or(0) + 1;
        st.revisions.push(Revision {
            number,
            hash: hash.clone(),
        });
    }
    let rs_name = format!("{}-{hash}", cx.meta.name);
    let rs_uid = replica_set_uid(cx.uid, &hash);
    let mut current: Vec<&PodObs> = Vec::new();
    for p in pods.iter().filter(|p| !p.terminating) {
        if p.owner_uid == rs_uid {
            current.push(p);
        } else {
            cx.delete_pod(&p.name);
        }
    }
    let want = spec.replicas.max(0) as usize;
    for _ in current.len()..want {
        let name = loop {
            let n = format!("{rs_name}-{}", cx.suffix());
            if !pods.iter().any(|p| p.name == n) {
                break n;
            }
        };
        let pod = cx.pod(
            &spec.template,
            name,
            &[(HASH_LABEL, &hash)],
            Some(("ReplicaSet", &rs_name, &rs_uid)),
        );
        cx.create_pod(pod);
    }
    for p in current.iter().skip(want) {
        cx.delete_pod(&p.name);
    }
}

/// The `status` object, as Kubernetes writes it.
pub(crate) fn status(
    spec: &DeploymentSpec,
    _st: &State,
    pods: &[PodObs],
    _now: Now,
) -> serde_json::Value {
    let live: Vec<&PodObs> = pods.iter().filter(|p| !p.terminating).collect();
    let updated = live
        .iter()
        .filter(|p| p.labels.get(HASH_LABEL) == Some(&spec.template.hash))
        .count();
    let ready = live.iter().filter(|p| p.ready).count();
    serde_json::json!({
        "replicas": live.len(),
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": ready,
    })
}
