//! One pod: its sandbox, its containers, and the kubelet's per-pod sync
//! (`computePodActions`): create the sandbox, run the init containers one at
//! a time, start the app containers, restart per policy, and tear the pod
//! down on deletion, replacement or a terminal phase.

use super::backoff::Backoff;
use super::container::{Ctr, Step};
use super::start::{Ctx, begin_kill, release_term, start_attempt};
use super::status::{Phase, PodStatus};
use super::{EventType, Fx, Now, Output};
use crate::spec::{Container, Pod, PodSpec, RestartPolicy};

/// The pod's sandbox (its shim) as the core knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sandbox {
    /// None exists (not yet created, or it vanished).
    None,
    Creating,
    Ready,
    /// Creation failed; try again at `retry_at`.
    BackOff {
        retry_at: u64,
    },
    Removing,
    Removed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopWhy {
    /// Deleted from the desired set: removed from the node at the end.
    Delete,
    /// Replaced by a pod with another spec, created at the end.
    Replace,
    /// Succeeded or Failed: the sandbox goes, the pod stays listed.
    Terminal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stopping {
    pub why: StopWhy,
    /// Mono time at which SIGKILL replaces SIGTERM.
    pub deadline: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PodState {
    pub sandbox: Sandbox,
    /// Increases with every `CreateSandbox`: init containers rerun in a new sandbox.
    pub sandbox_epoch: u64,
    pub sandbox_backoff: Option<Backoff>,
    pub pod_ip: Option<String>,
    /// Wall ms when the pod was accepted (`startTime`).
    pub start_time: i64,
    /// Init containers completed in the current sandbox.
    pub init_done: usize,
    pub init: Vec<Ctr>,
    pub app: Vec<Ctr>,
    pub stopping: Option<Stopping>,
    pub replacement: Option<(Pod, String)>,
    /// The phase once it became Succeeded or Failed (it never goes back).
    pub terminal: Option<Phase>,
    /// Status reason and message of a pod the node failed: `Evicted`, or
    /// `DeadlineExceeded`. Not in the state file: after an agent restart
    /// the pod stays Failed but without the reason.
    pub failure: Option<(&'static str, String)>,
    /// Mono time at which `activeDeadlineSeconds` is over.
    pub active_deadline: Option<u64>,
    /// (type, status, lastTransitionTime wall ms).
    pub conditions: Vec<(String, bool, i64)>,
}

/// One pod as the agent sees it: identity, spec and last computed status.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    pub uid: String,
    /// The pod as applied, with `metadata.uid` filled in.
    pub spec: Pod,
    /// The status as of the last `handle`.
    pub status: PodStatus,
    pub(crate) st: PodState,
}

/// One container's runtime facts, for the agent (logs, reconciliation with
/// a shim's report after a restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub name: String,
    pub init: bool,
    /// The latest instance that was started, and whether it still runs.
    pub instance: Option<u64>,
    pub running: bool,
    /// An instance for which `StartContainer` is out.
    pub starting: Option<u64>,
    pub image_id: Option<String>,
    pub restart_count: i32,
}

pub(crate) fn normalize_ns(ns: &str) -> &str {
    if ns.is_empty() { "default" } else { ns }
}

pub(crate) fn grace_ms(spec: &PodSpec) -> u64 {
    spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64 * 1000
}

/// `Same`, only images differ, or anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Same,
    ImagesOnly,
    Other,
}

pub(crate) fn classify(old: &PodSpec, new: &PodSpec) -> Change {
    if old == new {
        return Change::Same;
    }
    let blank = |s: &PodSpec| {
        let mut s = s.clone();
        for c in s.containers.iter_mut().chain(s.init_containers.iter_mut()) {
            c.image.clear();
        }
        s
    };
    if blank(old) == blank(new) {
        Change::ImagesOnly
    } else {
        Change::Other
    }
}

impl PodView {
    /// Whether the pod is on its way out: stopping to be deleted or
    /// replaced by a pod with another spec.
    pub fn is_leaving(&self) -> bool {
        self.st.replacement.is_some()
            || self.st.stopping.is_some_and(|s| s.why != StopWhy::Terminal)
    }

    pub(crate) fn new(mut pod: Pod, uid: String, now: Now) -> PodView {
        pod.metadata.uid = uid.clone();
        let st = PodState {
            sandbox: Sandbox::None,
            sandbox_epoch: 0,
            sandbox_backoff: None,
            pod_ip: None,
            start_time: now.wall_ms,
            init_done: 0,
            init: pod
                .spec
                .init_containers
                .iter()
                .map(|c| Ctr::new(&c.name))
                .collect(),
            app: pod
                .spec
                .containers
                .iter()
                .map(|c| Ctr::new(&c.name))
                .collect(),
            stopping: None,
            replacement: None,
            terminal: None,
            failure: None,
            active_deadline: None,
            conditions: Vec::new(),
        };
        let mut view = PodView {
            uid,
            spec: pod,
            status: PodStatus::default(),
            st,
        };
        view.arm_deadline(now);
        view
    }

    /// `activeDeadlineSeconds` counts from `startTime`.
    pub(crate) fn arm_deadline(&mut self, now: Now) {
        let start = super::start::mono_of(self.st.start_time, now);
        self.st.active_deadline = (self.spec.spec.active_deadline_seconds)
            .map(|s| start.saturating_add(s.max(0) as u64 * 1000));
    }

    /// The node fails the pod (eviction, `activeDeadlineSeconds`): phase
    /// `Failed` with `reason` and `message`, a Warning event, its
    /// containers stopped. Not for a pod already terminal or stopping.
    pub(crate) fn fail(
        &mut self,
        reason: &'static str,
        message: String,
        container: Option<&str>,
        fx: &mut Fx,
        now: Now,
    ) {
        if self.st.terminal.is_some() || self.st.stopping.is_some() {
            return;
        }
        let uid = self.uid.clone();
        fx.event(&uid, EventType::Warning, reason, message.clone(), container);
        self.st.terminal = Some(Phase::Failed);
        self.st.failure = Some((reason, message));
        self.stop(StopWhy::Terminal, fx, now);
    }

    pub fn namespace(&self) -> &str {
        normalize_ns(&self.spec.metadata.namespace)
    }

    pub fn name(&self) -> &str {
        &self.spec.metadata.name
    }

    /// The container spec (init or app) named `name`.
    pub fn container(&self, name: &str) -> Option<&Container> {
        let s = &self.spec.spec;
        s.init_containers
            .iter()
            .chain(&s.containers)
            .find(|c| c.name == name)
    }

    /// The image id to start `name` with (the one `ImageReady` gave for the
    /// pending start, else the running instance's).
    pub fn image_id(&self, name: &str) -> Option<&str> {
        let c = self.ctrs().find(|(c, _)| c.name == name)?.0;
        match &c.step {
            Step::Starting { image_id, .. } => Some(image_id),
            _ => c.current.as_ref().map(|i| i.image_id.as_str()),
        }
    }

    /// Deleted or being replaced (its containers are being stopped).
    pub fn is_terminating(&self) -> bool {
        self.st.stopping.is_some_and(|s| s.why != StopWhy::Terminal)
    }

    /// Runtime facts of every container, init containers first.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        self.ctrs()
            .map(|(c, init)| ContainerInfo {
                name: c.name.clone(),
                init,
                instance: c.current.as_ref().map(|i| i.instance),
                running: c.step == Step::Running,
                starting: match c.step {
                    Step::Starting { instance, .. } => Some(instance),
                    _ => None,
                },
                image_id: c.current.as_ref().map(|i| i.image_id.clone()),
                restart_count: c.restart_count,
            })
            .collect()
    }

    pub(crate) fn ctrs(&self) -> impl Iterator<Item = (&Ctr, bool)> {
        let init = self.st.init.iter().map(|c| (c, true));
        init.chain(self.st.app.iter().map(|c| (c, false)))
    }

    /// `name_namespace(uid)`, as the kubelet's `format.Pod` prints a pod.
    pub(crate) fn label(&self) -> String {
        format!("{}_{}({})", self.name(), self.namespace(), self.uid)
    }

    /// For a pod being deleted, or stopped to be replaced by a pod with
    /// another spec (its recreate after a manifest edit: Kubernetes deletes
    /// the old pod, then creates the new one), the mono ms at which its
    /// grace period ends (what Kubernetes shows as
    /// `metadata.deletionTimestamp`, and kubectl as `Terminating`). Not for
    /// a pod stopped because it reached Succeeded or Failed.
    #[must_use]
    pub fn deletion_deadline(&self) -> Option<u64> {
        self.st
            .stopping
            .filter(|s| s.why != StopWhy::Terminal)
            .map(|s| s.deadline)
    }

    pub(crate) fn any_active(&self) -> bool {
        self.ctrs().any(|(c, _)| c.active())
    }

    /// Starts tearing the pod down (SIGTERM now, SIGKILL after the grace period).
    pub(crate) fn stop(&mut self, why: StopWhy, fx: &mut Fx, now: Now) {
        match &mut self.st.stopping {
            Some(s) => s.why = why,
            None => {
                let deadline = now.mono_ms + grace_ms(&self.spec.spec);
                self.st.stopping = Some(Stopping { why, deadline });
            }
        }
        fx.persist = true;
    }

    /// Runs the pod's sync until nothing more changes. Returns true when the
    /// pod is gone and must be removed from the node.
    pub(crate) fn sync(&mut self, fx: &mut Fx, now: Now) -> bool {
        if self.st.stopping.is_some() {
            return self.sync_stopping(fx, now);
        }
        match self.st.sandbox {
            Sandbox::Ready => {}
            Sandbox::None => {
                if self.wants_sandbox() {
                    self.st.sandbox = Sandbox::Creating;
                    self.st.sandbox_epoch += 1;
                    self.st.init_done = 0;
                    fx.out.push(Output::CreateSandbox {
                        uid: self.uid.clone(),
                    });
                    fx.persist = true;
                }
                return false;
            }
            _ => return false,
        }
        self.kill_changed(fx, now);
        self.release_terms(fx, now);
        if self.sync_init(fx, now) {
            self.sync_app(fx, now);
            // kubelet: once no app container runs or will restart, the pod
            // is killed, its sidecars too (they never keep it alive).
            let sidecar_runs = self.st.init.iter().any(Ctr::active);
            if sidecar_runs && self.apps_finished() {
                self.stop(StopWhy::Terminal, fx, now);
                return self.sync_stopping(fx, now);
            }
        }
        false
    }

    /// `restartPolicy` is not `Always` and every app container exited for
    /// good.
    fn apps_finished(&self) -> bool {
        let policy = self.spec.spec.restart_policy;
        policy != RestartPolicy::Always
            && self.st.app.iter().all(|c| {
                c.step == Step::Idle && c.latest_term().is_some() && !should_restart(c, policy)
            })
    }

    /// Sends the SIGTERMs that kills held back (preStop hook ended; a
    /// sidecar's turn: every app and regular init container, and every
    /// later sidecar, has exited).
    fn release_terms(&mut self, fx: &mut Fx, now: Now) {
        let spec = &self.spec.spec;
        let inits = self.st.init.iter().zip(&spec.init_containers);
        let mut later_active = self.st.app.iter().any(Ctr::active)
            || inits.clone().any(|(c, s)| !s.is_sidecar() && c.active());
        for c in &mut self.st.app {
            release_term(c, &self.uid, true, fx, now);
        }
        for (c, s) in self.st.init.iter_mut().zip(&spec.init_containers).rev() {
            release_term(c, &self.uid, !later_active, fx, now);
            later_active |= s.is_sidecar() && c.active();
        }
    }

    /// kubelet: recreate a vanished sandbox unless nothing would run in it.
    fn wants_sandbox(&self) -> bool {
        if self.ctrs().all(|(c, _)| c.current.is_none()) {
            return true;
        }
        match self.spec.spec.restart_policy {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => self
                .st
                .app
                .iter()
                .any(|c| c.latest_term().is_none_or(|t| t.exit_code != 0)),
            RestartPolicy::Always => true,
        }
    }

    /// App containers running an image the spec no longer names are killed
    /// and restarted ("definition changed").
    fn kill_changed(&mut self, fx: &mut Fx, now: Now) {
        let label = self.label();
        let grace = grace_ms(&self.spec.spec);
        let cx = Ctx {
            uid: &self.uid,
            label: &label,
        };
        for (c, spec) in self.st.app.iter_mut().zip(&self.spec.spec.containers) {
            let changed = c.current.as_ref().is_some_and(|i| i.image != spec.image);
            if c.step == Step::Running && c.kill.is_none() && changed {
                c.force_restart = true;
                let msg = format!("Container {} definition changed, will be restarted", c.name);
                begin_kill(c, spec, &cx, now.mono_ms + grace, msg, false, fx, now);
            }
        }
    }

    /// Init containers in order. Returns true when all have completed.
    fn sync_init(&mut self, fx: &mut Fx, now: Now) -> bool {
        let label = self.label();
        let spec = &self.spec.spec;
        let cx = Ctx {
            uid: &self.uid,
            label: &label,
        };
        // Sidecars already started keep running: restarted on every exit,
        // whatever the pod's restartPolicy, until the app containers finished.
        let finished = self.apps_finished();
        let pairs = self.st.init.iter_mut().zip(&spec.init_containers);
        for (c, cs) in pairs.take(self.st.init_done) {
            if cs.is_sidecar() && c.step == Step::Idle && !finished {
                start_attempt(c, cs, &cx, fx, now);
            }
        }
        let epoch = self.st.sandbox_epoch;
        while self.st.init_done < spec.init_containers.len() {
            let i = self.st.init_done;
            let c = &mut self.st.init[i];
            if spec.init_containers[i].is_sidecar() {
                // The next container waits until the sidecar is started
                // (its startupProbe passed and its postStart hook ran).
                let here = c.current.as_ref().is_some_and(|x| x.epoch == epoch);
                if c.step == Step::Running && c.started && here {
                    self.st.init_done += 1;
                    fx.persist = true;
                    continue;
                }
                if c.step == Step::Idle {
                    start_attempt(c, &spec.init_containers[i], &cx, fx, now);
                }
                return false;
            }
            if c.step != Step::Idle {
                return false;
            }
            let ran_here = c
                .current
                .as_ref()
                .is_some_and(|inst| inst.epoch == self.st.sandbox_epoch);
            match c.latest_term().filter(|_| ran_here).map(|t| t.exit_code) {
                Some(0) => {
                    self.st.init_done += 1;
                    fx.persist = true;
                }
                Some(_) if spec.restart_policy == RestartPolicy::Never => {
                    c.reason = None;
                    return false;
                }
                _ => {
                    start_attempt(c, &spec.init_containers[i], &cx, fx, now);
                    return false;
                }
            }
        }
        true
    }

    fn sync_app(&mut self, fx: &mut Fx, now: Now) {
        let label = self.label();
        let spec = &self.spec.spec;
        let cx = Ctx {
            uid: &self.uid,
            label: &label,
        };
        for (c, cs) in self.st.app.iter_mut().zip(&spec.containers) {
            if c.step != Step::Idle {
                continue;
            }
            if should_restart(c, spec.restart_policy) {
                start_attempt(c, cs, &cx, fx, now);
            } else {
                c.reason = None;
            }
        }
    }

    fn sync_stopping(&mut self, fx: &mut Fx, now: Now) -> bool {
        let Some(stop) = self.st.stopping else {
            return false;
        };
        let label = self.label();
        let cx = Ctx {
            uid: &self.uid,
            label: &label,
        };
        let spec = &self.spec.spec;
        let specs = spec.init_containers.iter().chain(&spec.containers);
        let ctrs = self.st.init.iter_mut().chain(self.st.app.iter_mut());
        for (c, cs) in ctrs.zip(specs) {
            match c.step {
                Step::Running => {
                    if c.kill.is_none() {
                        let msg = format!("Stopping container {}", c.name);
                        let ordered = cs.is_sidecar();
                        begin_kill(c, cs, &cx, stop.deadline, msg, ordered, fx, now);
                    }
                }
                Step::Starting { .. } => {}
                _ => c.step = Step::Idle,
            }
        }
        self.release_terms(fx, now);
        if self.any_active() {
            return false;
        }
        match self.st.sandbox {
            Sandbox::Creating | Sandbox::Removing => false,
            Sandbox::Removed => stop.why != StopWhy::Terminal,
            Sandbox::None | Sandbox::Ready | Sandbox::BackOff { .. } => {
                self.st.sandbox = Sandbox::Removing;
                fx.out.push(Output::RemoveSandbox {
                    uid: self.uid.clone(),
                });
                fx.persist = true;
                false
            }
        }
    }

    /// An update that changes only images: the changed containers start
    /// afresh (a new spec hash is a new back-off key for the kubelet);
    /// running app containers are restarted by [`Self::kill_changed`].
    pub(crate) fn apply_images(&mut self, new: Pod, fx: &mut Fx) {
        let old = &self.spec.spec;
        let pairs = old.init_containers.iter().zip(&new.spec.init_containers);
        let pairs = pairs.chain(old.containers.iter().zip(&new.spec.containers));
        let ctrs = self.st.init.iter_mut().chain(self.st.app.iter_mut());
        for (c, (o, n)) in ctrs.zip(pairs) {
            if o.image == n.image {
                continue;
            }
            c.backoff = None;
            if matches!(
                c.step,
                Step::BackOff { .. } | Step::PullBackOff { .. } | Step::StartRetry { .. }
            ) {
                c.step = Step::Idle;
                c.reason = None;
            }
        }
        self.spec = new;
        self.spec.metadata.uid = self.uid.clone();
        fx.persist = true;
    }
}

/// The kubelet's `ShouldContainerBeRestarted` for an app container that is
/// not running (the pod is not being torn down).
pub(crate) fn should_restart(c: &Ctr, policy: RestartPolicy) -> bool {
    let Some(term) = c.latest_term() else {
        return true;
    };
    if c.force_restart {
        return true;
    }
    match policy {
        RestartPolicy::Never => false,
        RestartPolicy::OnFailure => term.exit_code != 0,
        RestartPolicy::Always => true,
    }
}
