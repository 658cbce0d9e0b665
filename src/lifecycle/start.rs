//! Starting and stopping containers: the kubelet's `start()` (`doBackOff`,
//! `EnsureImageExists`, create+start) and `killContainer`.

use super::backoff::{go_duration, in_backoff_since, in_backoff_since_update, next};
use super::container::{Ctr, Kill, Step, TermWait};
use super::probe::{probe_of, timing};
use super::{EventType, Fx, Now, Output, ProbeKind};
use crate::spec::{Container, Probe};

/// Kubelet's pod worker retries a failed sync after `backOffPeriod`.
pub(crate) const RESYNC_MS: u64 = 10_000;

/// What container actions need to know about their pod.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub uid: &'a str,
    /// `name_namespace(uid)`.
    pub label: &'a str,
}

/// Mono time of a wall-clock instant in the past, clamped to `[0, now]`.
pub(crate) fn mono_of(wall_ms: i64, now: Now) -> u64 {
    let age = now.wall_ms.saturating_sub(wall_ms).max(0) as u64;
    now.mono_ms.saturating_sub(age)
}

/// One start attempt (kubelet `start()`): `doBackOff` on the latest exit,
/// then the image, then `StartContainer` once the image is ready.
pub(crate) fn start_attempt(c: &mut Ctr, spec: &Container, cx: &Ctx<'_>, fx: &mut Fx, now: Now) {
    if let Some(ts) = c.latest_term().map(|t| t.finished_mono) {
        if in_backoff_since(c.backoff.as_ref(), ts, now.mono_ms) {
            let b = c.backoff.map_or(0, |b| b.backoff_ms);
            c.step = Step::BackOff { until: ts + b };
            let msg = format!(
                "back-off {} restarting failed container={} pod={}",
                go_duration(b),
                c.name,
                cx.label
            );
            c.reason = Some(("CrashLoopBackOff".into(), msg));
            let ev = format!(
                "Back-off restarting failed container {} in pod {}",
                c.name, cx.label
            );
            fx.event(cx.uid, EventType::Warning, "BackOff", ev, Some(&c.name));
            fx.persist = true;
            return;
        }
        next(&mut c.backoff, ts, now.mono_ms);
        fx.persist = true;
    }
    c.force_restart = false;
    ensure_image(c, spec, cx, fx, now);
}

/// `EnsureImageExists`, unless the image is in pull back-off.
pub(crate) fn ensure_image(c: &mut Ctr, spec: &Container, cx: &Ctx<'_>, fx: &mut Fx, now: Now) {
    let entry = c
        .image_backoff
        .as_ref()
        .filter(|(img, _)| *img == spec.image)
        .map(|(_, b)| *b);
    if let Some(b) = entry.filter(|b| in_backoff_since_update(Some(b), now.mono_ms)) {
        c.step = Step::PullBackOff {
            retry_at: b.last_update + b.backoff_ms,
            show_at: None,
        };
        let sticky = c
            .reason
            .as_ref()
            .is_some_and(|(r, _)| r == "ErrImageNeverPull" || r == "InvalidImageName");
        if !sticky {
            let msg = format!("Back-off pulling image \"{}\"", spec.image);
            c.reason = Some(("ImagePullBackOff".into(), msg.clone()));
            fx.event(cx.uid, EventType::Normal, "BackOff", msg, Some(&c.name));
        }
        return;
    }
    c.step = Step::Pulling {
        image: spec.image.clone(),
    };
    fx.out.push(Output::EnsureImage {
        uid: cx.uid.to_string(),
        container: c.name.clone(),
        image: spec.image.clone(),
        policy: spec.pull_policy(),
    });
}

/// The kubelet's minimum shutdown window after SIGTERM once a preStop
/// hook or a sidecar's turn used the grace period up
/// (`minimumGracePeriodInSeconds`).
pub(crate) const MIN_GRACE_MS: u64 = 2_000;

/// Kills the running instance (kubelet `killContainer`): the preStop hook
/// first, if any, then SIGTERM (the shim sends the container's stop
/// signal instead) and SIGKILL at `deadline`; SIGKILL at once when the
/// deadline is not in the future (grace 0, no hook). `ordered`: a sidecar
/// stopped with its pod, whose SIGTERM waits for its turn
/// ([`release_term`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn begin_kill(
    c: &mut Ctr,
    spec: &Container,
    cx: &Ctx<'_>,
    deadline: u64,
    message: String,
    ordered: bool,
    fx: &mut Fx,
    now: Now,
) {
    let Some(instance) = c.current.as_ref().map(|i| i.instance) else {
        return;
    };
    fx.event(cx.uid, EventType::Normal, "Killing", message, Some(&c.name));
    c.probes.stop_all();
    c.post_start = None;
    if deadline <= now.mono_ms {
        signal(c, cx.uid, instance, 9, fx);
        c.kill = Some(Kill {
            sigkill_at: None,
            term: None,
        });
        return;
    }
    let hook_until = spec.hook(true).map(|h| {
        run_hook(
            c,
            h,
            cx.uid,
            instance,
            ProbeKind::PreStop,
            deadline,
            fx,
            now,
        )
    });
    if hook_until.is_none() && !ordered {
        signal(c, cx.uid, instance, 15, fx);
    }
    c.kill = Some(Kill {
        sigkill_at: (hook_until.is_none() && !ordered).then_some(deadline),
        term: (hook_until.is_some() || ordered).then_some(TermWait {
            deadline,
            hook_until,
            ordered,
        }),
    });
}

fn signal(c: &Ctr, uid: &str, instance: u64, signal: i32, fx: &mut Fx) {
    fx.out.push(Output::Signal {
        uid: uid.to_string(),
        container: c.name.clone(),
        instance,
        signal,
    });
}

/// Starts the hook `h` of the running `instance`: a `sleep` ends at its
/// time (capped at `cap`) in the core; `exec` and `httpGet` run as a probe
/// of `kind` whose result comes as [`super::Input::ProbeResult`]. Returns
/// the mono time the hook ends at the latest.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_hook(
    c: &Ctr,
    h: &Probe,
    uid: &str,
    instance: u64,
    kind: ProbeKind,
    cap: u64,
    fx: &mut Fx,
    now: Now,
) -> u64 {
    if let Some(s) = &h.sleep {
        return (now.mono_ms + s.seconds.max(0) as u64 * 1000).min(cap);
    }
    // An exec hook has no timeout of its own (kubelet); a preStop one
    // ends with the grace period, an httpGet postStart after an hour.
    let timeout_ms = match (kind, &h.exec) {
        (ProbeKind::PreStop, _) => cap.saturating_sub(now.mono_ms) + 1000,
        (_, Some(_)) => 0,
        _ => 3_600_000,
    };
    fx.out.push(Output::RunProbe {
        uid: uid.to_string(),
        container: c.name.clone(),
        instance,
        kind,
        probe: h.clone(),
        timeout_ms,
    });
    cap
}

/// Sends the SIGTERM a kill holds back, once its preStop hook ended and,
/// for an ordered sidecar, `turn` came or the grace period is over;
/// SIGKILL follows at the end of the grace period, at least
/// [`MIN_GRACE_MS`] later.
pub(crate) fn release_term(c: &mut Ctr, uid: &str, turn: bool, fx: &mut Fx, now: Now) {
    let (Some(k), Some(cur)) = (c.kill.as_mut(), c.current.as_ref()) else {
        return;
    };
    let Some(w) = k.term else { return };
    let over = w.deadline <= now.mono_ms;
    if w.hook_until.is_some() || (w.ordered && !turn && !over) {
        return;
    }
    k.term = None;
    k.sigkill_at = Some(w.deadline.max(now.mono_ms + MIN_GRACE_MS));
    let instance = cur.instance;
    signal(c, uid, instance, 15, fx);
}

/// Liveness and readiness start once the container counts as started.
pub(crate) fn mark_started(c: &mut Ctr, spec: &Container, now: Now) {
    c.started = true;
    c.ready = spec.readiness_probe.is_none();
    let Some(started) = c.current.as_ref().map(|i| i.started_mono) else {
        return;
    };
    for kind in [ProbeKind::Liveness, ProbeKind::Readiness] {
        if let Some(p) = probe_of(spec, kind) {
            let at = (started + timing(p).initial_delay_ms).max(now.mono_ms);
            c.probes.get_mut(kind).schedule(at);
        }
    }
}

/// Sets up the probes of a freshly started (or restored) running
/// instance: the startup probe first, else liveness and readiness.
/// `init`: a regular init container (a sidecar is probed as an app
/// container is).
pub(crate) fn resume_probes(c: &mut Ctr, spec: &Container, init: bool, now: Now) {
    if init && !spec.is_sidecar() {
        c.started = true;
        return;
    }
    match &spec.startup_probe {
        Some(p) => {
            let started = c.current.as_ref().map_or(now.mono_ms, |i| i.started_mono);
            let at = (started + timing(p).initial_delay_ms).max(now.mono_ms);
            c.probes.startup.schedule(at);
        }
        None => mark_started(c, spec, now),
    }
}
