//! Adopting a running sandbox the node does not know: [`Input::AdoptPod`](super::Input::AdoptPod).
//!
//! When both state files are lost, the agent finds shims under
//! `<state-dir>/pods/<uid>/`, asks each for its report, and feeds the core
//! `AdoptPod` for those whose `namespace/name` the manifests still define.
//! What the core then believes, kubelet-like (the kubelet rebuilds a pod
//! from the runtime's containers after a restart in much the same way):
//!
//! - The pod is created with the sandbox's uid (`metadata.uid := uid`) and
//!   its sandbox `Ready` (no `CreateSandbox`; sandbox epoch 1). `startTime`
//!   is the earliest reported container start, else `now`.
//! - Instances: the core numbers a container's starts 1, 2, 3, … (one per
//!   `StartContainer`; a `CreateContainerError` also uses one up). So for a
//!   reported container `next_instance` becomes the highest reported
//!   instance (the next start gets a higher one) and `restartCount` becomes
//!   that instance − 1: exact unless some start failed before the container
//!   was created. Containers the report lacks start from instance 1.
//! - A reported running instance is `Running` with its `startedAt`; nothing
//!   is started. Its image is taken to be the spec's (the report does not
//!   say) and its image id is unknown (`""`). Probes start fresh:
//!   readiness is false until the first success, as after a restore.
//! - A reported exit is that instance's exit (`Completed`/`Error`/
//!   `OOMKilled`), so the restart policy applies at once (the back-off has
//!   no history), and an [`Output::AckExit`] follows the `Persist` as for
//!   any exit. When the shim holds two instances of one name (an exit not
//!   yet acknowledged and its successor), the older exit becomes
//!   `lastState`.
//! - Init containers: the shim forgets acknowledged exits, so a completed
//!   init container is usually not reported. If any app container is
//!   reported, every init container counts as done. Otherwise, if the
//!   latest init container in spec order that is reported is the k-th, the
//!   ones before it count as done (they run one at a time, in order, so
//!   they completed for it to start); it counts as done too when it exited
//!   0, and the rest run as usual. Done init containers that were not
//!   reported show `waiting: PodInitializing`, like the kubelet's status of
//!   a garbage-collected init container with no earlier status.
//! - Spec containers the report lacks start as usual (app containers once
//!   init is done). Reported containers the spec lacks are killed
//!   (`Signal` 9, event `Killing`) and their exits are acknowledged.
//! - Refused: when a pod with that `namespace/name` exists already, or the
//!   manifest names another uid. The core then emits an event `Warning`
//!   `AdoptionRefused` (about the adopted uid) and
//!   [`Output::RemoveSandbox`] for the adopted uid, which is not in the
//!   node: the agent stops that shim and cleans its directory as usual, and
//!   the `SandboxRemoved` answer is ignored. An `AdoptPod` for a uid the
//!   node already has is ignored (logged).
//!
//! A later `ApplyPod` of the same spec (with an empty `metadata.uid`) is a
//! no-op: specs are compared without the uid.

use super::container::{Instance, Step, Term, container_id, exit_reason};
use super::pod::{PodView, Sandbox, normalize_ns};
use super::start::{mono_of, resume_probes};
use super::{EventType, Fx, Node, Now, Output};
use crate::spec::Pod;

/// One container instance a shim reported (`proto::ContainerReport`, times in ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptedContainer {
    pub name: String,
    pub instance: u64,
    /// Wall ms.
    pub started_at_ms: i64,
    /// `None` while it runs; an exit the shim has not had acknowledged.
    pub exit: Option<AdoptedExit>,
}

/// How a reported instance ended (`proto::Exit`, time in ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdoptedExit {
    /// The code, or 128 + signal.
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    /// Wall ms.
    pub finished_at_ms: i64,
}

/// The sandbox epoch of an adopted sandbox (as if created once).
const EPOCH: u64 = 1;

impl Node {
    pub(crate) fn adopt_pod(
        &mut self,
        pod: Pod,
        uid: String,
        containers: Vec<AdoptedContainer>,
        fx: &mut Fx,
        now: Now,
    ) {
        let ns = normalize_ns(&pod.metadata.namespace).to_string();
        let name = pod.metadata.name.clone();
        if self.pods.iter().any(|p| p.uid == uid) {
            log::warn!("pod {ns}/{name}: sandbox {uid} is known already; AdoptPod ignored");
            return;
        }
        let existing = self
            .pods
            .iter()
            .find(|p| p.namespace() == ns && p.name() == name);
        let refusal = if let Some(p) = existing {
            Some(format!("pod {ns}/{name} exists already with uid {}", p.uid))
        } else if !pod.metadata.uid.is_empty() && pod.metadata.uid != uid {
            Some(format!(
                "the manifest of {ns}/{name} names uid {}",
                pod.metadata.uid
            ))
        } else {
            None
        };
        if let Some(why) = refusal {
            let msg = format!("Not adopting the running sandbox {uid}: {why}; stopping it");
            fx.event(&uid, EventType::Warning, "AdoptionRefused", msg, None);
            fx.out.push(Output::RemoveSandbox { uid });
            return;
        }
        log::info!("pod {ns}/{name}: adopting the running sandbox {uid}");
        let mut p = PodView::new(pod, uid, now);
        p.adopt(containers, fx, now);
        self.pods.push(p);
        fx.persist = true;
    }
}

fn term(uid: &str, r: &AdoptedContainer, e: AdoptedExit, started_mono: u64, now: Now) -> Term {
    Term {
        exit_code: e.exit_code,
        signal: e.signal,
        reason: exit_reason(e.exit_code, e.oom_killed).into(),
        message: String::new(),
        started_at: Some(r.started_at_ms),
        finished_at: Some(e.finished_at_ms),
        finished_mono: mono_of(e.finished_at_ms, now).max(started_mono),
        container_id: container_id(uid, &r.name, r.instance),
    }
}

impl PodView {
    /// Fills a fresh pod's state from a shim's report (see the module docs).
    fn adopt(&mut self, mut reported: Vec<AdoptedContainer>, fx: &mut Fx, now: Now) {
        reported.sort_by_key(|r| r.instance);
        reported.dedup_by(|a, b| a.name == b.name && a.instance == b.instance);
        self.st.sandbox = Sandbox::Ready;
        self.st.sandbox_epoch = EPOCH;
        if let Some(first) = reported.iter().map(|r| r.started_at_ms).min() {
            self.st.start_time = first.min(now.wall_ms);
        }
        let uid = self.uid.clone();
        for r in &reported {
            if r.exit.is_some() {
                fx.acks.push(Output::AckExit {
                    uid: uid.clone(),
                    container: r.name.clone(),
                    instance: r.instance,
                });
            } else if self.container(&r.name).is_none() {
                let msg = format!("Stopping container {}: it is not in the pod's spec", r.name);
                fx.event(&uid, EventType::Normal, "Killing", msg, Some(&r.name));
                fx.out.push(Output::Signal {
                    uid: uid.clone(),
                    container: r.name.clone(),
                    instance: r.instance,
                    signal: 9,
                });
            }
        }
        let spec = &self.spec.spec;
        let n_init = spec.init_containers.len();
        let specs = spec.init_containers.iter().chain(&spec.containers);
        let ctrs = self.st.init.iter_mut().chain(self.st.app.iter_mut());
        for (i, (c, cs)) in ctrs.zip(specs).enumerate() {
            let mine: Vec<&AdoptedContainer> =
                reported.iter().filter(|r| r.name == c.name).collect();
            let Some(latest) = mine.last().copied() else {
                continue;
            };
            if let Some(prev) = mine.len().checked_sub(2).map(|j| mine[j]) {
                let mono = mono_of(prev.started_at_ms, now);
                c.last_term = prev.exit.map(|e| term(&uid, prev, e, mono, now));
            }
            let started_mono = mono_of(latest.started_at_ms, now);
            c.next_instance = latest.instance;
            c.restart_count = i32::try_from(latest.instance.saturating_sub(1)).unwrap_or(i32::MAX);
            c.current = Some(Instance {
                instance: latest.instance,
                image: cs.image.clone(),
                image_id: String::new(),
                started_at: latest.started_at_ms,
                started_mono,
                epoch: EPOCH,
                term: latest
                    .exit
                    .map(|e| term(&uid, latest, e, started_mono, now)),
            });
            if latest.exit.is_none() {
                c.step = Step::Running;
                resume_probes(c, cs, i < n_init, now);
            }
        }
        self.st.init_done = if self.st.app.iter().any(|c| c.current.is_some()) {
            n_init
        } else {
            match self.st.init.iter().rposition(|c| c.current.is_some()) {
                Some(k) => {
                    let done = self.st.init[k]
                        .latest_term()
                        .is_some_and(|t| t.exit_code == 0);
                    k + usize::from(done)
                }
                None => 0,
            }
        };
    }
}
