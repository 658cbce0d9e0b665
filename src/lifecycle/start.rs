//! Starting and stopping containers: the kubelet's `start()` (`doBackOff`,
//! `EnsureImageExists`, create+start) and `killContainer`.

use super::backoff::{go_duration, in_backoff_since, in_backoff_since_update, next};
use super::container::{Ctr, Kill, Step};
use super::probe::{probe_of, timing};
use super::{EventType, Fx, Now, Output, ProbeKind};
use crate::spec::Container;

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

/// Kills the running instance: SIGTERM now and SIGKILL at `deadline`, or
/// SIGKILL at once when the deadline is not in the future (grace 0).
pub(crate) fn begin_kill(
    c: &mut Ctr,
    cx: &Ctx<'_>,
    deadline: u64,
    message: String,
    fx: &mut Fx,
    now: Now,
) {
    let Some(instance) = c.current.as_ref().map(|i| i.instance) else {
        return;
    };
    fx.event(cx.uid, EventType::Normal, "Killing", message, Some(&c.name));
    c.probes.stop_all();
    let immediate = deadline <= now.mono_ms;
    fx.out.push(Output::Signal {
        uid: cx.uid.to_string(),
        container: c.name.clone(),
        instance,
        signal: if immediate { 9 } else { 15 },
    });
    c.kill = Some(Kill {
        sigkill_at: (!immediate).then_some(deadline),
    });
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
pub(crate) fn resume_probes(c: &mut Ctr, spec: &Container, init: bool, now: Now) {
    if init {
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
