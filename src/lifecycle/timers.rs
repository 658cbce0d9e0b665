//! The pod's timers: sandbox retry, SIGKILL after the grace period,
//! CrashLoopBackOff and image back-off, start retries, and probe runs.

use super::container::Step;
use super::pod::{PodView, Sandbox};
use super::probe::{probe_of, timing};
use super::start::resume_probes;
use super::{EventType, Fx, Now, Output, ProbeKind};

impl PodView {
    /// Fires every timer due at `now`.
    pub(crate) fn fire_timers(&mut self, fx: &mut Fx, now: Now) {
        let t = now.mono_ms;
        if let Sandbox::BackOff { retry_at } = self.st.sandbox {
            if retry_at <= t {
                self.st.sandbox = Sandbox::None;
            }
        }
        if self.st.active_deadline.is_some_and(|d| d <= t) {
            self.st.active_deadline = None;
            let msg = "Pod was active on the node longer than the specified deadline";
            self.fail("DeadlineExceeded", msg.into(), None, fx, now);
        }
        let uid = self.uid.clone();
        let spec = &self.spec.spec;
        let n_init = spec.init_containers.len();
        let specs = spec.init_containers.iter().chain(&spec.containers);
        let ctrs = self.st.init.iter_mut().chain(self.st.app.iter_mut());
        for (i, (c, cs)) in ctrs.zip(specs).enumerate() {
            if c.post_start.is_some_and(|at| at <= t) {
                // A `sleep` postStart hook ended.
                c.post_start = None;
                resume_probes(c, cs, i < n_init, now);
            }
            if let Some(w) = c.kill.as_mut().and_then(|k| k.term.as_mut()) {
                // The preStop hook ran out of time (or its sleep ended):
                // the pod's sync sends SIGTERM.
                w.hook_until = w.hook_until.filter(|&h| h > t);
            }
            if let (Some(kill), Some(cur)) = (c.kill.as_mut(), c.current.as_ref()) {
                if kill.sigkill_at.is_some_and(|at| at <= t) {
                    kill.sigkill_at = None;
                    fx.out.push(Output::Signal {
                        uid: uid.clone(),
                        container: c.name.clone(),
                        instance: cur.instance,
                        signal: 9,
                    });
                }
            }
            match c.step {
                Step::BackOff { until } if until <= t => c.step = Step::Idle,
                Step::StartRetry { at } if at <= t => c.step = Step::Idle,
                Step::PullBackOff { retry_at, show_at } => {
                    if show_at.is_some_and(|s| s <= t) {
                        c.step = Step::PullBackOff {
                            retry_at,
                            show_at: None,
                        };
                        let msg = format!("Back-off pulling image \"{}\"", cs.image);
                        c.reason = Some(("ImagePullBackOff".into(), msg.clone()));
                        fx.event(&uid, EventType::Normal, "BackOff", msg, Some(&c.name));
                        let err = "Error: ImagePullBackOff".to_string();
                        fx.event(&uid, EventType::Warning, "Failed", err, Some(&c.name));
                    }
                    if retry_at <= t {
                        c.step = Step::Idle;
                    }
                }
                Step::Running if c.kill.is_none() => {
                    for kind in [
                        ProbeKind::Startup,
                        ProbeKind::Liveness,
                        ProbeKind::Readiness,
                    ] {
                        let Some(p) = probe_of(cs, kind) else {
                            continue;
                        };
                        let Some(cur) = c.current.as_ref() else {
                            continue;
                        };
                        let w = c.probes.get_mut(kind);
                        if w.due(t) {
                            w.sent();
                            fx.out.push(Output::RunProbe {
                                uid: uid.clone(),
                                container: c.name.clone(),
                                instance: cur.instance,
                                kind,
                                probe: p.clone(),
                                timeout_ms: timing(p).timeout_ms,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The earliest mono time at which a timer of this pod is due.
    #[must_use]
    pub(crate) fn next_timeout(&self) -> Option<u64> {
        let mut t: Option<u64> = None;
        let mut at = |v: u64| t = Some(t.map_or(v, |t| t.min(v)));
        if let Sandbox::BackOff { retry_at } = self.st.sandbox {
            at(retry_at);
        }
        if let Some(d) = self.st.active_deadline {
            at(d);
        }
        for (c, _) in self.ctrs() {
            if let Some(k) = c.kill.and_then(|k| k.sigkill_at) {
                at(k);
            }
            if let Some(w) = c.kill.and_then(|k| k.term) {
                match w.hook_until {
                    Some(h) => at(h),
                    None if w.ordered => at(w.deadline),
                    None => {}
                }
            }
            if let Some(p) = c.post_start.filter(|&p| p != u64::MAX) {
                at(p);
            }
            match c.step {
                Step::BackOff { until } => at(until),
                Step::StartRetry { at: a } => at(a),
                Step::PullBackOff { retry_at, show_at } => {
                    at(retry_at);
                    if let Some(s) = show_at {
                        at(s);
                    }
                }
                Step::Running if c.kill.is_none() => {
                    if let Some(p) = c.probes.next_at() {
                        at(p);
                    }
                }
                _ => {}
            }
        }
        t
    }
}
