//! The revisions' replica counts: Kubernetes' `rolloutRolling`, `scale`
//! (paused) and their bounds, on one node.

use super::{Obs, State, rs_name};
use crate::lifecycle::EventType;
use crate::spec::workload::PodTemplate;
use crate::spec::workload::deployment::{DeploymentSpec, Strategy};
use crate::workloads::Cx;

/// `maxSurge` (rounded up) and `maxUnavailable` (down) for `replicas`,
/// as `ResolveFenceposts`; a hostPort forces the surge to 0. Recreate:
/// (0, 0).
pub(super) fn fenceposts(spec: &DeploymentSpec, template: &PodTemplate) -> (i32, i32) {
    let Strategy::RollingUpdate {
        max_surge,
        max_unavailable,
    } = spec.strategy
    else {
        return (0, 0);
    };
    let mut surge = max_surge.scaled(spec.replicas, true);
    if host_port(template) {
        surge = 0;
    }
    let mut unavailable = max_unavailable.scaled(spec.replicas, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// `MaxUnavailable`: at most `replicas`; 0 for Recreate.
pub(super) fn max_unavailable(spec: &DeploymentSpec, template: &PodTemplate) -> i32 {
    match spec.strategy {
        Strategy::Recreate => 0,
        _ => fenceposts(spec, template).1.min(spec.replicas),
    }
}

pub(super) fn host_port(t: &PodTemplate) -> bool {
    t.pod
        .spec
        .containers
        .iter()
        .any(|c| c.ports.iter().any(|p| p.host_port.is_some_and(|h| h > 0)))
}

/// Scales revision `i` to `to`, with Kubernetes' event.
pub(super) fn scale(cx: &mut Cx<'_>, st: &mut State, i: usize, to: i32) {
    let r = &mut st.revisions[i];
    let from = r.replicas;
    if from == to {
        return;
    }
    r.replicas = to;
    let name = rs_name(cx, &r.hash);
    let way = if to > from { "up" } else { "down" };
    cx.event(
        EventType::Normal,
        "ScalingReplicaSet",
        format!("Scaled {way} replica set {name} from {from} to {to}"),
    );
}

/// `rolloutRolling` on one node: the new revision up to `replicas +
/// surge` pods in all, the old ones down while `replicas - unavailable`
/// stay available, their unavailable pods first.
pub(super) fn rolling(
    cx: &mut Cx<'_>,
    st: &mut State,
    obs: &[Obs<'_>],
    n: usize,
    desired: i32,
    surge: i32,
    unavailable: i32,
) {
    let nr = st.revisions[n].replicas;
    let total: i32 = st.revisions.iter().map(|r| r.replicas).sum();
    if nr > desired {
        scale(cx, st, n, desired);
    } else if nr < desired && total < desired + surge {
        scale(cx, st, n, nr + (desired + surge - total).min(desired - nr));
    }
    let olds: Vec<usize> = (0..st.revisions.len()).filter(|&i| i != n).collect();
    let all: i32 = st.revisions.iter().map(|r| r.replicas).sum();
    let min_available = desired - unavailable;
    let new_unavailable = st.revisions[n].replicas - obs[n].available;
    let max_down = all - min_available - new_unavailable;
    if olds.iter().all(|&i| st.revisions[i].replicas == 0) || max_down <= 0 {
        return;
    }
    let mut cleaned = 0;
    for &i in &olds {
        let (r, a) = (st.revisions[i].replicas, obs[i].available);
        if cleaned < max_down && r > a {
            let c = (max_down - cleaned).min(r - a);
            scale(cx, st, i, r - c);
            cleaned += c;
        }
    }
    let available: i32 = obs.iter().map(|o| o.available).sum();
    let mut down = available - min_available;
    for &i in &olds {
        let r = st.revisions[i].replicas;
        if down > 0 && r > 0 {
            let c = r.min(down);
            scale(cx, st, i, r - c);
            down -= c;
        }
    }
}

/// `scale` (paused): one active revision (or else the current, or the
/// newest) takes `replicas`; several share a change of `replicas`
/// proportionally, the newest taking the rest.
pub(super) fn scale_paused(
    cx: &mut Cx<'_>,
    st: &mut State,
    new: Option<usize>,
    desired: i32,
    surge: i32,
) {
    let active: Vec<usize> = (0..st.revisions.len())
        .filter(|&i| st.revisions[i].replicas > 0)
        .collect();
    match active[..] {
        [] => {
            if let Some(i) = new.or(st.revisions.len().checked_sub(1)) {
                scale(cx, st, i, desired);
            }
        }
        [i] => scale(cx, st, i, desired),
        [.., last] if st.desired != desired => {
            let total: i32 = active.iter().map(|&i| st.revisions[i].replicas).sum();
            let add = desired + surge - total;
            let mut left = add;
            for &i in &active[..active.len() - 1] {
                let r = st.revisions[i].replicas;
                let to = (r + (i64::from(r) * i64::from(add) / i64::from(total)) as i32).max(0);
                left -= to - r;
                scale(cx, st, i, to);
            }
            let r = st.revisions[last].replicas;
            scale(cx, st, last, (r + left).max(0));
        }
        _ => {}
    }
}
