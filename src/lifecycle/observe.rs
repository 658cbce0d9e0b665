//! What each runtime answer (sandbox, image, start, exit, probe result)
//! does to a pod's containers.

use super::backoff::next;
use super::container::{Ctr, Instance, Step, Term, container_id, exit_reason};
use super::pod::{PodView, Sandbox, grace_ms};
use super::probe::{probe_of, timing};
use super::pull::{Got, is_progress};
use super::start::{
    Ctx, RESYNC_MS, begin_kill, ensure_image, mark_started, mono_of, resume_probes, run_hook,
};
use super::{EventType, Fx, Now, Output, ProbeKind};
use crate::spec::{Container, RestartPolicy};

impl PodView {
    /// The container record and spec named `name`, and whether it is an init container.
    fn split(&mut self, name: &str) -> Option<(&mut Ctr, &Container, bool)> {
        let spec = &self.spec.spec;
        if let Some(i) = spec.init_containers.iter().position(|c| c.name == name) {
            return Some((&mut self.st.init[i], &spec.init_containers[i], true));
        }
        let i = spec.containers.iter().position(|c| c.name == name)?;
        Some((&mut self.st.app[i], &spec.containers[i], false))
    }

    /// The container `name` whose pull just ended, with the image it
    /// pulled; `None` when it was not pulling, or when its spec's image
    /// changed meanwhile (then the new image's pull is started).
    fn pulled(&mut self, name: &str, fx: &mut Fx, now: Now) -> Option<(&mut Ctr, String)> {
        let label = self.label();
        let uid = self.uid.clone();
        let (c, spec, _) = self.split(name)?;
        let Step::Pulling { image } = &c.step else {
            return None;
        };
        let image = image.clone();
        if image != spec.image {
            let cx = Ctx {
                uid: &uid,
                label: &label,
            };
            ensure_image(c, spec, &cx, fx, now);
            return None;
        }
        Some((c, image))
    }

    pub(crate) fn on_image_ready(
        &mut self,
        name: &str,
        image_id: String,
        got: Got,
        fx: &mut Fx,
        now: Now,
    ) {
        let ready = self.st.sandbox == Sandbox::Ready && self.st.stopping.is_none();
        let uid = self.uid.clone();
        let Some((c, image)) = self.pulled(name, fx, now) else {
            return;
        };
        if is_progress(&c.reason) {
            c.reason = None;
        }
        if !ready {
            c.step = Step::Idle;
            return;
        }
        let (kind, reason, msg) = got.event(&image);
        fx.event(&uid, kind, reason, msg, Some(name));
        c.next_instance += 1;
        let instance = c.next_instance;
        c.step = Step::Starting {
            instance,
            image,
            image_id,
        };
        fx.out.push(Output::StartContainer {
            uid,
            container: name.to_string(),
            instance,
        });
        fx.persist = true;
    }

    pub(crate) fn on_image_failed(
        &mut self,
        name: &str,
        reason: &str,
        message: &str,
        fx: &mut Fx,
        now: Now,
    ) {
        let stopping = self.st.stopping.is_some();
        let uid = self.uid.clone();
        let Some((c, image)) = self.pulled(name, fx, now) else {
            return;
        };
        if stopping {
            c.step = Step::Idle;
            return;
        }
        let t = now.mono_ms;
        let mut entry = c
            .image_backoff
            .take()
            .filter(|(i, _)| *i == image)
            .map(|(_, b)| b);
        next(&mut entry, t, t);
        let b = entry.map_or(0, |b| b.backoff_ms);
        c.image_backoff = entry.map(|b| (image.clone(), b));
        let (shown, event_reason, event_msg) = match reason {
            "ErrImagePull" => {
                let m = format!("Failed to pull image \"{image}\": {message}");
                (m.clone(), "Failed", m)
            }
            "ErrImageNeverPull" => {
                let m =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                (m.clone(), "ErrImageNeverPull", m)
            }
            "InvalidImageName" => {
                let m = format!("Failed to apply default image tag \"{image}\": {message}");
                (m.clone(), "InspectFailed", m)
            }
            _ => (message.to_string(), "Failed", message.to_string()),
        };
        fx.event(
            &uid,
            EventType::Warning,
            event_reason,
            event_msg,
            Some(name),
        );
        fx.event(
            &uid,
            EventType::Warning,
            "Failed",
            format!("Error: {reason}"),
            Some(name),
        );
        c.reason = Some((reason.to_string(), shown));
        let show_at = t + RESYNC_MS;
        c.step = Step::PullBackOff {
            retry_at: t + b,
            show_at: (reason == "ErrImagePull" && show_at < t + b).then_some(show_at),
        };
    }

    pub(crate) fn on_started(
        &mut self,
        name: &str,
        instance: u64,
        started_at_ms: i64,
        fx: &mut Fx,
        now: Now,
    ) {
        let epoch = self.st.sandbox_epoch;
        let uid = self.uid.clone();
        let Some((c, spec, init)) = self.split(name) else {
            return;
        };
        let Some((image, image_id)) = starting_image(c, instance) else {
            return;
        };
        let inst = Instance {
            instance,
            image,
            image_id,
            started_at: started_at_ms,
            started_mono: mono_of(started_at_ms, now),
            epoch,
            term: None,
        };
        c.record_started(inst);
        fx.event(
            &uid,
            EventType::Normal,
            "Created",
            format!("Created container: {name}"),
            Some(name),
        );
        fx.event(
            &uid,
            EventType::Normal,
            "Started",
            format!("Started container {name}"),
            Some(name),
        );
        fx.persist = true;
        // kubelet: the postStart hook runs right after the start; the
        // container is not Running (nor started) until it completed.
        match spec.hook(false) {
            Some(h) => {
                let kind = ProbeKind::PostStart;
                let until = run_hook(c, h, &uid, instance, kind, u64::MAX, fx, now);
                c.post_start = Some(until);
            }
            None => resume_probes(c, spec, init, now),
        }
    }

    pub(crate) fn on_start_failed(
        &mut self,
        name: &str,
        instance: u64,
        reason: &str,
        message: &str,
        fx: &mut Fx,
        now: Now,
    ) {
        let epoch = self.st.sandbox_epoch;
        let uid = self.uid.clone();
        let Some((c, _, _)) = self.split(name) else {
            return;
        };
        let Some((image, image_id)) = starting_image(c, instance) else {
            return;
        };
        fx.event(
            &uid,
            EventType::Warning,
            "Failed",
            format!("Error: {message}"),
            Some(name),
        );
        if reason == "CreateContainerConfigError" || reason == "CreateContainerError" {
            c.reason = Some((reason.to_string(), message.to_string()));
            c.step = Step::StartRetry {
                at: now.mono_ms + RESYNC_MS,
            };
            return;
        }
        let inst = Instance {
            instance,
            image,
            image_id,
            started_at: now.wall_ms,
            started_mono: now.mono_ms,
            epoch,
            term: None,
        };
        c.record_started(inst);
        c.record_exit(Term {
            exit_code: 128,
            signal: None,
            reason: "StartError".into(),
            message: message.to_string(),
            started_at: Some(now.wall_ms),
            finished_at: Some(now.wall_ms),
            finished_mono: now.mono_ms,
            container_id: container_id(&uid, name, instance),
        });
        c.reason = Some(("RunContainerError".into(), message.to_string()));
        fx.persist = true;
    }

    pub(crate) fn on_exited(
        &mut self,
        name: &str,
        instance: u64,
        (exit_code, signal, oom_killed, message): (i32, Option<i32>, bool, String),
        (started_at_ms, finished_at_ms): (i64, i64),
        fx: &mut Fx,
        now: Now,
    ) {
        let starting = self.split(name).is_some_and(
            |(c, _, _)| matches!(c.step, Step::Starting { instance: i, .. } if i == instance),
        );
        if starting {
            // The exit overtook the start report (e.g. across an agent restart).
            self.on_started(name, instance, started_at_ms, fx, now);
        }
        let uid = self.uid.clone();
        let Some((c, _, _)) = self.split(name) else {
            return;
        };
        let Some(cur) = c.current.as_ref() else {
            return;
        };
        if c.step != Step::Running || cur.instance != instance {
            return;
        }
        let finished_mono = mono_of(finished_at_ms, now).max(cur.started_mono);
        c.record_exit(Term {
            exit_code,
            signal,
            reason: exit_reason(exit_code, oom_killed).into(),
            message,
            started_at: Some(started_at_ms),
            finished_at: Some(finished_at_ms),
            finished_mono,
            container_id: container_id(&uid, name, instance),
        });
        fx.persist = true;
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_probe_result(
        &mut self,
        name: &str,
        instance: u64,
        kind: ProbeKind,
        success: bool,
        message: &str,
        fx: &mut Fx,
        now: Now,
    ) {
        let grace = grace_ms(&self.spec.spec);
        let label = self.label();
        let uid = self.uid.clone();
        let policy = self.spec.spec.restart_policy;
        let Some((c, spec, init)) = self.split(name) else {
            return;
        };
        let live = c.current.as_ref().is_some_and(|i| i.instance == instance);
        let cx = Ctx {
            uid: &uid,
            label: &label,
        };
        if matches!(kind, ProbeKind::PostStart | ProbeKind::PreStop) {
            if live {
                hook_result(c, spec, (init, grace), kind, success, message, &cx, fx, now);
            }
            return;
        }
        if init && !spec.is_sidecar() {
            return;
        }
        if c.step != Step::Running || c.kill.is_some() || !live || !c.probes.get(kind).in_flight {
            return;
        }
        let Some(p) = probe_of(spec, kind) else {
            return;
        };
        if !success {
            let msg = format!("{} probe failed: {message}", kind.title());
            fx.event(&uid, EventType::Warning, "Unhealthy", msg, Some(name));
        }
        let result = c
            .probes
            .get_mut(kind)
            .record(success, now.mono_ms, &timing(p));
        match (kind, result) {
            (ProbeKind::Startup, Some(true)) => {
                c.probes.startup.stop();
                mark_started(c, spec, now);
            }
            (ProbeKind::Startup | ProbeKind::Liveness, Some(false)) => {
                let what = if kind == ProbeKind::Startup {
                    "startup"
                } else {
                    "liveness"
                };
                let mut msg = format!("Container {name} failed {what} probe");
                if policy != RestartPolicy::Never {
                    msg.push_str(", will be restarted");
                }
                begin_kill(c, spec, &cx, now.mono_ms + grace, msg, false, fx, now);
            }
            (ProbeKind::Readiness, Some(r)) => c.ready = r,
            _ => {}
        }
    }

    pub(crate) fn on_sandbox_gone(&mut self, fx: &mut Fx, now: Now) {
        if matches!(self.st.sandbox, Sandbox::Removing | Sandbox::Removed) {
            return;
        }
        self.st.sandbox = Sandbox::None;
        fx.persist = true;
        for c in self.st.init.iter_mut().chain(self.st.app.iter_mut()) {
            match c.step {
                Step::Running => c.record_exit(Term {
                    exit_code: 137,
                    signal: None,
                    reason: "ContainerStatusUnknown".into(),
                    message: "The container could not be located when the pod was terminated"
                        .into(),
                    started_at: None,
                    finished_at: None,
                    finished_mono: now.mono_ms,
                    container_id: String::new(),
                }),
                // An answer for the old sandbox must not start anything in the
                // new one before its init containers ran: drop the attempt.
                Step::Starting { .. } | Step::Pulling { .. } => c.step = Step::Idle,
                _ => {}
            }
        }
    }

    pub(crate) fn on_sandbox_failed(&mut self, message: &str, fx: &mut Fx, now: Now) {
        if self.st.sandbox != Sandbox::Creating {
            return;
        }
        let t = now.mono_ms;
        next(&mut self.st.sandbox_backoff, t, t);
        let b = self.st.sandbox_backoff.map_or(0, |b| b.backoff_ms);
        self.st.sandbox = Sandbox::BackOff { retry_at: t + b };
        let msg = format!("Failed to create pod sandbox: {message}");
        fx.event(
            &self.uid,
            EventType::Warning,
            "FailedCreatePodSandBox",
            msg,
            None,
        );
    }
}

/// The result of a hook (`exec`/`httpGet`) of the live instance of `c`.
#[allow(clippy::too_many_arguments)]
fn hook_result(
    c: &mut Ctr,
    spec: &Container,
    (init, grace): (bool, u64),
    kind: ProbeKind,
    success: bool,
    message: &str,
    cx: &Ctx<'_>,
    fx: &mut Fx,
    now: Now,
) {
    let pre_stop = kind == ProbeKind::PreStop;
    let pending = if pre_stop {
        let w = c.kill.as_mut().and_then(|k| k.term.as_mut());
        w.and_then(|w| w.hook_until.take()).is_some()
    } else {
        c.post_start.take().is_some()
    };
    if !pending || c.step != Step::Running {
        return;
    }
    if success {
        if !pre_stop {
            resume_probes(c, spec, init, now);
        }
        return;
    }
    // The kubelet's messages (`handlers.go`).
    let msg = match spec.hook(pre_stop) {
        Some(h) if h.exec.is_some() => format!(
            "Exec lifecycle hook ([{}]) for Container {:?} in Pod {:?} failed - error: {message}",
            h.exec
                .iter()
                .flat_map(|e| &e.command)
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
            c.name,
            cx.label
        ),
        Some(h) => format!(
            "HTTP lifecycle hook ({}) for Container {:?} in Pod {:?} failed - error: {message}",
            h.http_get.as_ref().map_or("/", |g| g.path_or_root()),
            c.name,
            cx.label
        ),
        None => return,
    };
    let reason = if pre_stop {
        "FailedPreStopHook"
    } else {
        "FailedPostStartHook"
    };
    fx.event(cx.uid, EventType::Warning, reason, msg, Some(&c.name));
    if !pre_stop {
        // Killed (its preStop hook runs) and restarted per policy.
        let deadline = now.mono_ms + grace;
        let m = "FailedPostStartHook".to_string();
        begin_kill(c, spec, cx, deadline, m, false, fx, now);
    }
}

/// The image and image ID of `c`'s start of `instance`, when that start is
/// the one under way (a report about an older start is stale).
fn starting_image(c: &Ctr, instance: u64) -> Option<(String, String)> {
    match &c.step {
        Step::Starting {
            instance: i,
            image,
            image_id,
        } if *i == instance => Some((image.clone(), image_id.clone())),
        _ => None,
    }
}
