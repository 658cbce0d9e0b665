use super::*;

const R: u64 = 8;
const P: u64 = 7;
const S: i64 = 1000; // one second, in ms

fn opts(canary: usize, deadline: u64) -> Options {
    Options {
        canary,
        batch: "2".into(),
        max_failures: "1".into(),
        verify_seconds: 5,
        health_deadline_seconds: deadline,
        selector: vec![],
    }
}

fn progress(n: usize, canary: usize, batch: Count, max_failures: Count) -> Progress {
    let ids = (0..n).map(|i| format!("pi-{i}")).collect();
    Progress::new(
        "g",
        R,
        P,
        "d".into(),
        ids,
        opts(canary, 60),
        batch,
        max_failures,
        "2026-12-06T10:00:00Z".into(),
    )
}

/// A simulated fleet: each device takes an override at once and reports
/// `Healthy` (or, bad, `FailedRollbackComplete`) at the next step; a
/// cleared device reports the previous revision again.
#[derive(Default)]
struct Fleet {
    reports: VecMap<String, Report>,
    bad: Vec<String>,
    /// Devices that do not answer at all.
    silent: Vec<String>,
    published: Vec<String>,
    cleared: Vec<String>,
    group_published: usize,
    saves: usize,
}

impl Fleet {
    fn new(n: usize) -> Fleet {
        let mut f = Fleet::default();
        for i in 0..n {
            f.reports.insert(
                format!("pi-{i}"),
                Report {
                    online: Some(true),
                    observed: Some(P),
                    deployment: Some((P, "Healthy".into())),
                    ..Default::default()
                },
            );
        }
        f
    }

    /// Carries out the actions; `None` until `Done`.
    fn act(&mut self, acts: Vec<Action>) -> Option<Phase> {
        let mut done = None;
        for a in acts {
            match a {
                Action::Publish(d) => {
                    if !self.silent.contains(&d) {
                        let r = self.reports.get_mut(&d).unwrap();
                        r.observed = Some(R);
                        r.deployment = Some((R, "Applying".into()));
                    }
                    self.published.push(d);
                }
                Action::Clear(d) => {
                    if !self.silent.contains(&d) {
                        let r = self.reports.get_mut(&d).unwrap();
                        if r.observed == Some(R) && self.group_published == 0 {
                            r.observed = Some(P);
                            r.deployment = Some((R, "RolledBack".into()));
                        }
                    }
                    self.cleared.push(d);
                }
                Action::PublishGroup => self.group_published += 1,
                Action::Save => self.saves += 1,
                Action::Done(p) => done = Some(p),
            }
        }
        done
    }

    /// Devices that took R settle.
    fn settle(&mut self) {
        for (id, r) in self.reports.iter_mut() {
            if r.deployment == Some((R, "Applying".into())) {
                let s = if self.bad.contains(id) {
                    "FailedRollbackComplete"
                } else {
                    "Healthy"
                };
                r.deployment = Some((R, s.into()));
            }
        }
    }
}

/// Runs `p` on `f` until done, one step a second; the final phase.
fn run(p: &mut Progress, f: &mut Fleet, mut now: i64) -> (Phase, i64) {
    for _ in 0..1000 {
        let acts = step(p, &f.reports, now);
        if let Some(done) = f.act(acts) {
            return (done, now);
        }
        f.settle();
        now += S;
    }
    panic!("no end: {p:?}");
}

#[test]
fn counts_are_numbers_or_percentages_rounded_up_and_at_least_one() {
    assert_eq!(Count::parse("batch", "10%"), Ok(Count::Percent(10)));
    assert_eq!(Count::parse("batch", "3"), Ok(Count::N(3)));
    assert_eq!(Count::Percent(10).of(6), 1);
    assert_eq!(Count::Percent(34).of(6), 3);
    assert_eq!(Count::Percent(5).of(6), 1);
    assert_eq!(Count::Percent(5).of(0), 1);
    assert_eq!(Count::Percent(50).of(5), 3);
    assert_eq!(Count::Percent(100).of(7), 7);
    assert_eq!(Count::N(4).of(2), 4);
    for bad in ["0", "0%", "x", "-1", "1.5", "%", "101%"] {
        let e = Count::parse("max-failures", bad).unwrap_err();
        assert!(e.starts_with("--max-failures"), "{e}");
    }
}

#[test]
fn batches_are_the_canary_then_runs_of_the_batch_size_in_id_order() {
    let p = progress(6, 1, Count::N(2), Count::N(1));
    assert_eq!(p.devices[0].id, "pi-0");
    assert_eq!(p.devices[5].id, "pi-5");
    assert_eq!(p.batches(), vec![0..1, 1..3, 3..5, 5..6]);
    assert_eq!(
        progress(5, 0, Count::Percent(50), Count::N(1)).batches(),
        vec![0..3, 3..5]
    );
    assert_eq!(
        progress(2, 5, Count::N(1), Count::N(1)).batches(),
        vec![0..2]
    );
    assert_eq!(
        progress(3, 1, Count::N(1), Count::Percent(5)).failure_limit,
        1
    );
}

#[test]
fn a_healthy_rollout_goes_batch_by_batch_then_publishes_the_group_and_clears() {
    let mut p = progress(6, 1, Count::N(2), Count::N(1));
    let mut f = Fleet::new(6);
    // The canary alone first, saved before it is published.
    let acts = step(&mut p, &f.reports, 0);
    assert_eq!(acts, [Action::Save, Action::Publish("pi-0".into())]);
    f.act(acts);
    // Applying: nothing to do.
    assert_eq!(step(&mut p, &f.reports, S), []);
    f.settle();
    let acts = step(&mut p, &f.reports, 2 * S);
    assert_eq!(
        acts,
        [
            Action::Save,
            Action::Publish("pi-1".into()),
            Action::Publish("pi-2".into())
        ]
    );
    assert_eq!(p.devices[0].state, DevState::Healthy);
    assert_eq!(p.batch, 2);
    f.act(acts);
    // One of the batch Healthy, the other still Applying: wait.
    f.reports.get_mut("pi-1").unwrap().deployment = Some((R, "Healthy".into()));
    assert_eq!(step(&mut p, &f.reports, 3 * S), [Action::Save]);
    assert_eq!(step(&mut p, &f.reports, 4 * S), []);
    let (end, _) = run(&mut p, &mut f, 5 * S);
    assert_eq!(end, Phase::Complete);
    assert_eq!(p.phase, Phase::Complete);
    assert_eq!(
        f.published,
        ["pi-0", "pi-1", "pi-2", "pi-3", "pi-4", "pi-5"]
    );
    assert_eq!(f.group_published, 1);
    assert_eq!(f.cleared.len(), 6);
    assert_eq!(p.count(DevState::Healthy), 6);
    // Done stays done.
    assert_eq!(
        step(&mut p, &f.reports, 99 * S),
        [Action::Done(Phase::Complete)]
    );
}

#[test]
fn the_group_document_goes_out_before_the_overrides_are_cleared_and_saved_last() {
    let mut p = progress(1, 1, Count::N(1), Count::N(1));
    let mut f = Fleet::new(1);
    f.act(step(&mut p, &f.reports, 0));
    f.settle();
    let acts = step(&mut p, &f.reports, S);
    assert_eq!(
        acts,
        [
            Action::PublishGroup,
            Action::Clear("pi-0".into()),
            Action::Save,
            Action::Done(Phase::Complete)
        ]
    );
}

#[test]
fn one_bad_device_with_max_failures_1_rolls_back_every_updated_device() {
    let mut p = progress(6, 1, Count::N(2), Count::N(1));
    let mut f = Fleet::new(6);
    f.bad.push("pi-2".into());
    let (end, _) = run(&mut p, &mut f, 0);
    assert_eq!(end, Phase::RolledBack);
    // The canary and batch 1 were published; batch 2 never.
    assert_eq!(f.published, ["pi-0", "pi-1", "pi-2"]);
    assert_eq!(f.cleared, ["pi-0", "pi-1", "pi-2"]);
    assert_eq!(f.group_published, 0);
    let states: Vec<DevState> = p.devices.iter().map(|d| d.state).collect();
    use DevState::*;
    assert_eq!(
        states,
        [Reverted, Reverted, Reverted, Pending, Pending, Pending]
    );
    assert_eq!(p.devices[2].reason, "FailedRollbackComplete");
    for id in ["pi-0", "pi-1", "pi-2"] {
        assert_eq!(f.reports[id].observed, Some(P), "{id}");
    }
}

#[test]
fn failures_below_the_limit_do_not_stop_the_rollout() {
    let mut p = progress(6, 1, Count::N(2), Count::N(2));
    let mut f = Fleet::new(6);
    f.bad.push("pi-3".into());
    let (end, _) = run(&mut p, &mut f, 0);
    assert_eq!(end, Phase::Complete);
    assert_eq!(p.count(DevState::Healthy), 5);
    assert_eq!(p.devices[3].state, DevState::Failed);
    // Two failures reach a limit of 2.
    let mut p = progress(6, 1, Count::N(2), Count::N(2));
    let mut f = Fleet::new(6);
    f.bad.extend(["pi-3".into(), "pi-5".into()]);
    assert_eq!(run(&mut p, &mut f, 0).0, Phase::RolledBack);
    assert_eq!(f.cleared.len(), 6);
}

#[test]
fn every_failed_state_of_the_revision_counts_and_older_revisions_do_not() {
    for state in FAILED_STATES {
        let mut p = progress(2, 1, Count::N(1), Count::N(1));
        let mut f = Fleet::new(2);
        f.act(step(&mut p, &f.reports, 0));
        f.reports.get_mut("pi-0").unwrap().deployment = Some((R, state.to_string()));
        let acts = step(&mut p, &f.reports, S);
        assert_eq!(
            acts,
            [Action::Save, Action::Clear("pi-0".into())],
            "{state}"
        );
        assert_eq!(p.phase, Phase::RollingBack);
        assert_eq!(p.devices[0].reason, *state);
    }
    // A Healthy or Failed record of another revision is not R's.
    let mut p = progress(2, 1, Count::N(1), Count::N(1));
    let mut f = Fleet::new(2);
    f.act(step(&mut p, &f.reports, 0));
    for other in [(P, "Healthy"), (P, "Failed"), (R + 1, "Healthy")] {
        f.reports.get_mut("pi-0").unwrap().deployment = Some((other.0, other.1.into()));
        assert_eq!(step(&mut p, &f.reports, S), [], "{other:?}");
        assert_eq!(p.devices[0].state, DevState::Updating);
    }
}

#[test]
fn a_device_not_healthy_by_the_deadline_plus_the_margin_fails_saying_why() {
    for (online, reason) in [
        (Some(true), "NotHealthyInTime"),
        (None, "NotHealthyInTime"),
        (Some(false), "Offline"),
    ] {
        let mut p = progress(3, 1, Count::N(1), Count::N(2));
        let mut f = Fleet::new(3);
        let t0 = 5 * S;
        f.act(step(&mut p, &f.reports, t0));
        f.reports.get_mut("pi-0").unwrap().online = online;
        let due = t0 + 60 * S + MARGIN_MS;
        assert_eq!(step(&mut p, &f.reports, due - 1), []);
        let acts = step(&mut p, &f.reports, due);
        assert_eq!(acts[..2], [Action::Save, Action::Publish("pi-1".into())]);
        assert_eq!(p.devices[0].state, DevState::Failed);
        assert_eq!(p.devices[0].reason, reason);
    }
    // A device without any status at all counts the same.
    let mut p = progress(1, 1, Count::N(1), Count::N(1));
    assert_eq!(step(&mut p, &VecMap::new(), 0).len(), 2);
    let acts = step(&mut p, &VecMap::new(), 60 * S + MARGIN_MS);
    assert_eq!(acts, [Action::Save, Action::Clear("pi-0".into())]);
}

#[test]
fn a_device_that_does_not_come_back_is_not_reverted_after_the_deadline() {
    let mut p = progress(3, 1, Count::N(2), Count::N(1));
    let mut f = Fleet::new(3);
    f.act(step(&mut p, &f.reports, 0));
    f.settle();
    f.act(step(&mut p, &f.reports, S));
    // pi-1 fails, pi-2 goes silent and offline (still reporting R).
    f.reports.get_mut("pi-1").unwrap().deployment = Some((R, "Failed".into()));
    f.silent.push("pi-2".into());
    f.reports.get_mut("pi-2").unwrap().online = Some(false);
    let t = 2 * S;
    let acts = step(&mut p, &f.reports, t);
    assert_eq!(
        acts,
        [
            Action::Save,
            Action::Clear("pi-0".into()),
            Action::Clear("pi-1".into()),
            Action::Clear("pi-2".into())
        ]
    );
    f.act(acts);
    assert_eq!(step(&mut p, &f.reports, t + S), [Action::Save]);
    assert_eq!(p.count(DevState::Reverted), 2);
    let due = t + 60 * S + MARGIN_MS;
    assert_eq!(step(&mut p, &f.reports, due - 1), []);
    assert_eq!(
        step(&mut p, &f.reports, due),
        [Action::Save, Action::Done(Phase::RolledBack)]
    );
    assert_eq!(p.devices[2].state, DevState::NotReverted);
    assert_eq!(p.devices[2].reason, "Offline");
}

#[test]
fn an_abort_request_rolls_back_and_ends_aborted() {
    let mut p = progress(6, 1, Count::N(2), Count::N(1));
    let mut f = Fleet::new(6);
    f.act(step(&mut p, &f.reports, 0));
    f.settle();
    f.act(step(&mut p, &f.reports, S));
    assert!(p.request_abort());
    assert!(!p.request_abort(), "only once, from Running");
    assert_eq!(p.phase, Phase::AbortRequested);
    let acts = step(&mut p, &f.reports, 2 * S);
    assert_eq!(acts[0], Action::Save);
    assert_eq!(acts.len(), 4, "{acts:?}");
    assert_eq!(p.phase, Phase::Aborting);
    f.act(acts);
    assert_eq!(run(&mut p, &mut f, 3 * S).0, Phase::Aborted);
    assert_eq!(p.count(DevState::Reverted), 3);
    assert_eq!(p.count(DevState::Pending), 3);
    // Abort before anything was published: aborted at once.
    let mut p = progress(2, 1, Count::N(1), Count::N(1));
    p.request_abort();
    assert_eq!(
        step(&mut p, &VecMap::new(), 0),
        [Action::Save, Action::Done(Phase::Aborted)]
    );
    // A rollback under way is not turned into an abort.
    let mut p = progress(2, 1, Count::N(1), Count::N(1));
    p.phase = Phase::RollingBack;
    assert!(!p.request_abort());
}

/// Kills the controller after every step of a run (the progress goes
/// through its JSON form, as on the broker) and resumes: the same end, no
/// device published twice except those `Updating` at the kill, and the
/// group document once.
#[test]
fn a_rollout_resumes_from_every_step_of_every_phase() {
    for bad in [None, Some("pi-2")] {
        let mut reference = progress(6, 1, Count::N(2), Count::N(1));
        let mut rf = Fleet::new(6);
        rf.bad.extend(bad.map(String::from));
        let (want, _) = run(&mut reference, &mut rf, 0);
        for kill_at in 0..12 {
            let mut p = progress(6, 1, Count::N(2), Count::N(1));
            let mut f = Fleet::new(6);
            f.bad.extend(bad.map(String::from));
            let mut now = 0;
            let mut done = None;
            for _ in 0..kill_at {
                done = f.act(step(&mut p, &f.reports, now));
                if done.is_some() {
                    break;
                }
                f.settle();
                now += S;
            }
            if done.is_some() {
                continue;
            }
            let mut q = Progress::from_json(&p.to_json()).unwrap();
            assert_eq!(q, p);
            let again = resume(&q);
            for a in &again {
                match a {
                    Action::Publish(d) => {
                        assert_eq!(
                            q.devices.iter().find(|x| &x.id == d).unwrap().state,
                            DevState::Updating
                        )
                    }
                    Action::Clear(d) => {
                        assert_eq!(
                            q.devices.iter().find(|x| &x.id == d).unwrap().state,
                            DevState::Reverting
                        )
                    }
                    other => panic!("resume sends {other:?}"),
                }
            }
            let before = f.published.len();
            f.act(again);
            let (end, _) = run(&mut q, &mut f, now);
            assert_eq!(end, want, "bad {bad:?}, killed at {kill_at}");
            assert_eq!(q.devices, {
                let mut r = reference.devices.clone();
                for (a, b) in r.iter_mut().zip(&q.devices) {
                    a.since = b.since;
                }
                r
            });
            // Nothing Healthy was published again.
            let republished = &f.published[before..];
            let mut seen = crate::vecmap::VecSet::new();
            for d in &f.published {
                assert!(
                    seen.insert(d) || republished.contains(d),
                    "{d} published twice"
                );
            }
            assert!(f.group_published <= 1);
        }
    }
    // A finished rollout resumes with nothing to send.
    let mut p = progress(1, 1, Count::N(1), Count::N(1));
    p.phase = Phase::Complete;
    assert_eq!(resume(&p), []);
}

#[test]
fn resuming_publishes_again_to_updating_devices_only() {
    let mut p = progress(4, 1, Count::N(2), Count::N(3));
    p.batch = 2;
    use DevState::*;
    for (d, s) in p
        .devices
        .iter_mut()
        .zip([Healthy, Updating, Updating, Pending])
    {
        d.state = s;
    }
    assert_eq!(
        resume(&p),
        [
            Action::Publish("pi-1".into()),
            Action::Publish("pi-2".into())
        ]
    );
    p.phase = Phase::Aborting;
    p.devices[1].state = Reverting;
    assert_eq!(resume(&p), [Action::Clear("pi-1".into())]);
}

#[test]
fn the_progress_json_names_its_fields_and_every_phase_and_state_reads_back() {
    let mut p = progress(7, 1, Count::N(2), Count::N(1));
    p.options.selector = vec!["board=rpi5".into()];
    for (i, s) in STATES.iter().enumerate() {
        p.devices[i].state = *s;
        p.devices[i].reason = format!("r{i}");
    }
    for phase in PHASES {
        p.phase = phase;
        assert_eq!(Progress::from_json(&p.to_json()).unwrap(), p);
    }
    let v: Value = serde_json::from_slice(&p.to_json()).unwrap();
    assert_eq!(v["phase"], "Aborted");
    assert_eq!(v["options"]["maxFailures"], "1");
    assert_eq!(v["options"]["healthDeadlineSeconds"], 60);
    assert_eq!(v["batchSize"], 2);
    assert_eq!(v["devices"][1]["state"], "Updating");
    let mut bad = v.clone();
    bad["phase"] = "Paused".into();
    let e = Progress::from_json(&serde_json::to_vec(&bad).unwrap()).unwrap_err();
    assert_eq!(e, "phase: unknown value \"Paused\"");
    let mut bad = v;
    bad["options"]["verifySeconds"] = "x".into();
    let e = Progress::from_json(&serde_json::to_vec(&bad).unwrap()).unwrap_err();
    assert_eq!(e, "verifySeconds: expected a number");
}
