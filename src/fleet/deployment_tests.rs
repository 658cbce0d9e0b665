use super::*;

fn at(s: u64) -> Now {
    Now {
        mono_ms: s * 1000,
        wall_ms: 1_700_000_000_000 + (s * 1000) as i64,
    }
}

fn g() -> Source {
    Source::Group("kitchen".into())
}

fn rollout(deadline: u32, verify: u32, on_failure: OnFailure) -> Option<Rollout> {
    Some(Rollout {
        health_deadline_seconds: deadline,
        verify_seconds: verify,
        on_failure,
    })
}

fn ready(restarts: u64) -> Health {
    Health {
        ready: true,
        restarts,
        failure: None,
    }
}

fn not_ready() -> Health {
    Health::default()
}

fn failing(reason: &str) -> Health {
    Health {
        ready: false,
        restarts: 0,
        failure: Some((
            reason.into(),
            "container c: boom".into(),
            "default/web".into(),
        )),
    }
}

fn state(d: &Deployments) -> State {
    d.record(&g()).unwrap().state
}

fn doc(revision: u64) -> SavedDoc {
    SavedDoc {
        revision,
        payload: format!("doc {revision}").into_bytes(),
    }
}

/// A record of revision 1 made Healthy and kept, then revision 2 accepted
/// at t=100 with `r`.
fn healthy_then(r: Option<Rollout>) -> Deployments {
    let mut d = Deployments::default();
    d.accepted(&g(), 1, None, at(0));
    assert_eq!(d.observe(&g(), &ready(0), at(1)), None);
    assert_eq!(d.tick(at(31)), vec![Intent::Keep(g())]);
    d.keep(&g(), doc(1));
    d.accepted(&g(), 2, r, at(100));
    d
}

#[test]
fn accepted_is_applying_then_healthy_after_the_verify_window() {
    let mut d = Deployments::default();
    d.accepted(&g(), 1, rollout(60, 10, OnFailure::Keep), at(0));
    assert!(d.take_changed());
    assert_eq!(state(&d), State::Applying);
    assert_eq!(d.poll_timeout(), Some(60_000));
    assert_eq!(d.observe(&g(), &ready(0), at(5)), None);
    assert_eq!(d.poll_timeout(), Some(15_000));
    assert!(d.tick(at(14)).is_empty());
    assert_eq!(state(&d), State::Applying);
    assert!(!d.take_changed(), "nothing changed while waiting");
    assert_eq!(d.tick(at(15)), vec![Intent::Keep(g())]);
    assert_eq!(state(&d), State::Healthy);
    assert!(d.take_changed());
    assert_eq!(d.poll_timeout(), None, "no timer once settled");
    d.keep(&g(), doc(1));
    assert_eq!(d.kept(&g()), Some(&doc(1)));
}

#[test]
fn a_pod_not_ready_or_a_restart_in_the_window_starts_it_again() {
    let mut d = Deployments::default();
    d.accepted(&g(), 1, rollout(60, 10, OnFailure::Keep), at(0));
    let _ = d.observe(&g(), &ready(2), at(1));
    let _ = d.observe(&g(), &ready(3), at(8)); // restarted
    assert!(d.tick(at(11)).is_empty());
    assert_eq!(d.poll_timeout(), Some(18_000));
    let _ = d.observe(&g(), &not_ready(), at(12));
    assert_eq!(d.poll_timeout(), Some(60_000));
    let _ = d.observe(&g(), &ready(3), at(20));
    assert!(d.tick(at(29)).is_empty());
    assert_eq!(d.observe(&g(), &ready(3), at(30)), Some(Intent::Keep(g())));
    assert_eq!(state(&d), State::Healthy);
}

#[test]
fn the_deadline_fails_a_revision_kept_with_on_failure_keep() {
    let mut d = Deployments::default();
    d.accepted(&g(), 1, None, at(0)); // defaults: 300 s, Keep
    let _ = d.observe(&g(), &not_ready(), at(5));
    assert!(d.tick(at(299)).is_empty());
    assert!(d.tick(at(300)).is_empty(), "Keep: nothing to do");
    let r = d.record(&g()).unwrap();
    assert_eq!(r.state, State::Failed);
    assert_eq!(r.reason, "HealthDeadlineExceeded");
    assert_eq!(r.message, "not Healthy within healthDeadlineSeconds (300s)");
    assert_eq!(d.poll_timeout(), None);
    // Failed is final: pods becoming ready later change nothing.
    assert_eq!(d.observe(&g(), &ready(0), at(400)), None);
    assert!(d.tick(at(1000)).is_empty());
    assert_eq!(state(&d), State::Failed);
}

#[test]
fn a_hard_failure_fails_at_once_with_the_reason_and_the_pod() {
    let mut d = Deployments::default();
    d.accepted(&g(), 1, None, at(0));
    assert_eq!(d.observe(&g(), &failing("CrashLoopBackOff"), at(3)), None);
    let r = d.record(&g()).unwrap();
    assert_eq!(
        (r.state, r.reason.as_str(), r.pod.as_str()),
        (State::Failed, "CrashLoopBackOff", "default/web")
    );
}

#[test]
fn rollback_returns_to_the_last_healthy_revision() {
    let mut d = healthy_then(rollout(20, 5, OnFailure::Rollback));
    let _ = d.observe(&g(), &not_ready(), at(101));
    assert_eq!(d.tick(at(120)), vec![Intent::Rollback(g())]);
    assert_eq!(d.kept(&g()), Some(&doc(1)));
    assert!(!d.pinned(&g()));
    d.rollback_done(&g(), Ok(()), at(120));
    let r = d.record(&g()).unwrap();
    assert_eq!(r.state, State::FailedRollbackComplete);
    assert_eq!(r.revision, Some(2));
    assert_eq!(r.rolled_back_to, Some(1));
    assert_eq!(
        r.message,
        "not Healthy within healthDeadlineSeconds (20s): rolled back to revision 1; \
         revision 2 is not tried again until a newer revision arrives"
    );
    assert!(d.pinned(&g()));
    // Not tried again: no timer, observations change nothing.
    assert_eq!(d.poll_timeout(), None);
    assert_eq!(d.observe(&g(), &ready(0), at(200)), None);
    assert!(d.tick(at(10_000)).is_empty());
    // A newer revision clears the block.
    d.accepted(&g(), 3, None, at(300));
    assert_eq!(state(&d), State::Applying);
    assert!(!d.pinned(&g()));
}

#[test]
fn a_hard_failure_with_rollback_rolls_back_at_once() {
    let mut d = healthy_then(rollout(300, 5, OnFailure::Rollback));
    assert_eq!(
        d.observe(&g(), &failing("ImagePullBackOff"), at(102)),
        Some(Intent::Rollback(g()))
    );
}

#[test]
fn rollback_without_a_healthy_revision_or_failing_to_apply_it_is_unable_to_rollback() {
    let mut d = Deployments::default();
    d.accepted(&g(), 1, rollout(10, 1, OnFailure::Rollback), at(0));
    assert!(d.tick(at(10)).is_empty());
    let r = d.record(&g()).unwrap();
    assert_eq!(r.state, State::FailedUnableToRollback);
    assert!(
        r.message
            .ends_with("there is no Healthy revision of this source to return to"),
        "{}",
        r.message
    );
    let mut d = healthy_then(rollout(10, 1, OnFailure::Rollback));
    assert_eq!(d.tick(at(110)), vec![Intent::Rollback(g())]);
    d.rollback_done(&g(), Err("signature does not verify".into()), at(110));
    let r = d.record(&g()).unwrap();
    assert_eq!(r.state, State::FailedUnableToRollback);
    assert!(
        r.message
            .ends_with(": re-applying revision 1 failed: signature does not verify")
    );
    assert!(!d.pinned(&g()));
}

#[test]
fn a_refusal_is_shown_until_the_record_changes_and_keeps_the_record_running() {
    let mut d = Deployments::default();
    d.accepted(&g(), 1, rollout(60, 10, OnFailure::Keep), at(0));
    let _ = d.take_changed();
    d.refused(&g(), Some(1), "Stale", "not newer", at(2));
    assert!(d.take_changed());
    d.refused(&g(), Some(1), "Stale", "not newer", at(3));
    assert!(!d.take_changed(), "the same refusal again changes nothing");
    let shown: Vec<(&Source, State)> = d.shown().map(|(s, r)| (s, r.state)).collect();
    assert_eq!(shown, [(&g(), State::Rejected)]);
    // The record underneath still runs its health gate.
    let _ = d.observe(&g(), &ready(0), at(4));
    assert_eq!(d.tick(at(14)), vec![Intent::Keep(g())]);
    let shown: Vec<State> = d.shown().map(|(_, r)| r.state).collect();
    assert_eq!(shown, [State::Healthy]);
    // A refusal on a source without a record.
    let dev = Source::Device("pi".into());
    d.refused(&dev, None, "Malformed", "x", at(20));
    assert_eq!(d.shown().count(), 2);
}

#[test]
fn clearing_an_override_reports_rolled_back_or_applies_the_group_document() {
    let mut d = Deployments::default();
    d.accepted(&g(), 5, None, at(0));
    d.cleared(&g(), Some((4, None)), at(10));
    let r = d.record(&g()).unwrap();
    assert_eq!(
        (r.state, r.revision, r.rolled_back_to),
        (State::RolledBack, Some(5), Some(4))
    );
    assert_eq!(d.poll_timeout(), None);
    // Same revision (the rollout ended with the group document): unchanged.
    let mut d = Deployments::default();
    d.accepted(&g(), 5, None, at(0));
    let _ = d.take_changed();
    d.cleared(&g(), Some((5, None)), at(10));
    assert!(!d.take_changed());
    assert_eq!(state(&d), State::Applying);
    // Newer: applying it.
    d.cleared(&g(), Some((6, None)), at(11));
    assert_eq!(d.record(&g()).unwrap().revision, Some(6));
    // No group document: no record.
    d.cleared(&g(), None, at(12));
    assert!(d.record(&g()).is_none());
}

#[test]
fn a_restored_deadline_survives_a_restart_and_restarts_after_a_reboot() {
    let mut d = Deployments::default();
    d.accepted(&g(), 1, rollout(60, 10, OnFailure::Keep), at(100));
    let snap = d.snapshot().clone();
    // The agent restarted (mono time goes on): same deadline.
    let d = Deployments::restore(snap.clone(), at(130));
    assert_eq!(d.poll_timeout(), Some(160_000));
    // The machine rebooted (mono time went back): from now.
    let d = Deployments::restore(snap, at(5));
    assert_eq!(d.poll_timeout(), Some(65_000));
}

#[test]
fn retain_drops_the_sources_no_longer_there() {
    let mut d = healthy_then(None);
    let _ = d.take_changed();
    d.retain(|s| *s != g());
    assert!(d.take_changed());
    assert!(d.record(&g()).is_none() && d.kept(&g()).is_none());
}
