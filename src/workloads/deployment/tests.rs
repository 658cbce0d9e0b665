//! The Deployment controller on a simulated node with a virtual clock.

use super::*;
use crate::spec::workload::{WorkloadKey, WorkloadKind};
use crate::vecmap::VecMap;
use crate::workloads::testkit::Sim;
use crate::workloads::{Intent, State as AnyState};

/// A Deployment `web`: `strategy` (flow YAML), `extra` lines under `spec`,
/// `ann`: more metadata annotations, `ports`: a container's ports.
fn web(replicas: i32, image: &str, strategy: &str, extra: &str, ann: &str, ports: &str) -> String {
    format!(
        "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {{kubernetes.io/change-cause: \"image {image}\"{ann}}}
spec:
  replicas: {replicas}
  strategy: {strategy}
  selector: {{matchLabels: {{app: web}}}}
{extra}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: main, image: \"{image}\"{ports}}}]
"
    )
}

fn simple(replicas: i32, image: &str, extra: &str, ann: &str) -> String {
    web(replicas, image, "{}", extra, ann, "")
}

fn key() -> WorkloadKey {
    WorkloadKey {
        kind: WorkloadKind::Deployment,
        namespace: "default".into(),
        name: "web".into(),
    }
}

fn st(s: &Sim) -> &State {
    match &s.w.get(&key()).unwrap().state {
        AnyState::Deployment(st) => st,
        _ => unreachable!(),
    }
}

fn image(s: &Sim, name: &str) -> String {
    s.spec(name).spec.containers[0].image.clone()
}

/// Live pods by image.
fn images(s: &Sim) -> VecMap<String, usize> {
    let mut m = VecMap::new();
    for p in s.live() {
        *m.entry(image(s, &p.name)).or_default() += 1;
    }
    m
}

fn available_now(s: &Sim, min_ready_ms: u64) -> usize {
    s.live()
        .iter()
        .filter(|p| available(p, min_ready_ms, s.now.mono_ms))
        .count()
}

fn done(s: &Sim) -> bool {
    s.w.rollout_status(&key(), &s.obs(), s.now).map(|r| r.1) == Ok(true)
}

fn cond(s: &Sim) -> (String, String) {
    let c = st(s).progressing.clone().unwrap();
    (c.status().to_string(), c.reason)
}

/// Runs `ticks` seconds: one sync per tick, `check` after each; the pods
/// that existed before a sync become ready after it, unless their image
/// is in `never`.
fn drive(s: &mut Sim, ticks: usize, never: &[&str], check: &mut dyn FnMut(&Sim)) {
    for _ in 0..ticks {
        let before: Vec<String> = s.live().iter().map(|p| p.name.clone()).collect();
        s.step();
        check(s);
        for n in before {
            if s.pods.get(&n).is_some_and(|p| !p.1.terminating)
                && !never.contains(&image(s, &n).as_str())
            {
                s.ready(&n);
            }
        }
        s.now = s.now.plus_ms(1000);
    }
}

/// Applies and runs until the rollout is done (every pod ready).
fn settle(s: &mut Sim, yaml: &str) {
    s.apply(yaml);
    for _ in 0..100 {
        s.sync();
        if done(s) {
            return;
        }
        s.all_ready();
        s.now = s.now.plus_ms(1000);
    }
    panic!("never rolled out: {:?}", st(s));
}

#[test]
fn rolling_updates_keep_availability_and_surge_bounds_at_every_sync() {
    let mut cases = 0;
    for replicas in [1, 2, 3, 4, 5, 10] {
        for surge in ["0", "1", "2", "25%", "50%", "100%"] {
            for unavail in ["0", "1", "25%", "50%", "100%"] {
                for min_ready in [0u64, 2] {
                    let (sv, uv) = (surge.trim_end_matches('%'), unavail.trim_end_matches('%'));
                    if sv == "0" && uv == "0" {
                        continue;
                    }
                    cases += 1;
                    let q = |v: &str| {
                        if v.ends_with('%') {
                            format!("'{v}'")
                        } else {
                            v.to_string()
                        }
                    };
                    let strategy = format!(
                        "{{type: RollingUpdate, rollingUpdate: {{maxSurge: {}, maxUnavailable: {}}}}}",
                        q(surge),
                        q(unavail)
                    );
                    let extra = format!("  minReadySeconds: {min_ready}");
                    let mut s = Sim::new();
                    s.grace_ms = 3000;
                    settle(&mut s, &web(replicas, "v1", &strategy, &extra, "", ""));
                    let pct = |v: &str, up: bool| -> i32 {
                        match v.strip_suffix('%') {
                            Some(p) => {
                                let x = p.parse::<i32>().unwrap() * replicas;
                                if up { (x + 99) / 100 } else { x / 100 }
                            }
                            None => v.parse().unwrap(),
                        }
                    };
                    let max_surge = pct(surge, true);
                    let mut max_unavail = pct(unavail, false);
                    if max_surge == 0 && max_unavail == 0 {
                        max_unavail = 1;
                    }
                    let max_unavail = max_unavail.min(replicas);
                    s.apply(&web(replicas, "v2", &strategy, &extra, "", ""));
                    let ms = min_ready * 1000;
                    let what = format!("{replicas} {surge} {unavail} {min_ready}");
                    let mut steps = 0;
                    while !done(&s) {
                        steps += 1;
                        assert!(steps < 200, "{what}: stuck: {:?}", images(&s));
                        drive(&mut s, 1, &[], &mut |s| {
                            let live = s.live().len() as i32;
                            assert!(live <= replicas + max_surge, "{what}: {live} pods");
                            let a = available_now(s, ms) as i32;
                            assert!(a >= replicas - max_unavail, "{what}: {a} available");
                        });
                    }
                    assert_eq!(images(&s), VecMap::from([("v2".into(), replicas as usize)]));
                    s.sync();
                    let revs = &st(&s).revisions;
                    assert_eq!(revs.len(), 2);
                    assert_eq!((revs[0].replicas, revs[1].replicas), (0, replicas));
                    assert_eq!(cond(&s), ("True".into(), "NewReplicaSetAvailable".into()));
                }
            }
        }
    }
    assert!(cases > 300);
}

#[test]
fn recreate_deletes_all_old_pods_and_waits_until_they_are_gone() {
    let mut s = Sim::new();
    s.grace_ms = 5000;
    let y = |img| web(3, img, "{type: Recreate}", "", "", "");
    settle(&mut s, &y("v1"));
    s.apply(&y("v2"));
    s.sync();
    assert!(s.live().is_empty(), "all old pods deleted at once");
    assert_eq!(s.pods.len(), 3, "terminating ones still there");
    s.now = s.now.plus_ms(4000);
    s.sync();
    assert!(s.live().is_empty(), "nothing new while old pods terminate");
    s.now = s.now.plus_ms(1000);
    s.sync();
    assert_eq!(images(&s), VecMap::from([("v2".into(), 3)]));
    let created = s
        .log
        .iter()
        .position(|i| matches!(i, Intent::CreatePod(p) if p.spec.containers[0].image == "v2"))
        .unwrap();
    assert!(
        s.log[created..]
            .iter()
            .all(|i| !matches!(i, Intent::DeletePod { .. }))
    );
}

#[test]
fn min_ready_seconds_gates_the_scale_down_and_sets_a_timer() {
    let mut s = Sim::new();
    let y = |img| simple(1, img, "  minReadySeconds: 10", "");
    settle(&mut s, &y("v1"));
    s.apply(&y("v2"));
    s.sync();
    assert_eq!(s.live().len(), 2, "surge 25% of 1 rounds up to 1");
    let new = s
        .live()
        .into_iter()
        .find(|p| p.ready_since_ms.is_none())
        .unwrap()
        .name
        .clone();
    s.ready(&new);
    let t = s.now.mono_ms;
    s.sync();
    assert_eq!(s.w.poll_timeout(), Some(t + 10_000));
    s.now = s.now.plus_ms(9_999);
    s.sync();
    assert_eq!(s.live().len(), 2, "not available yet: the old pod stays");
    s.now = s.now.plus_ms(1);
    s.sync();
    assert_eq!(images(&s), VecMap::from([("v2".into(), 1)]));
}

#[test]
fn revision_history_limit_keeps_that_many_old_revisions() {
    let mut s = Sim::new();
    for i in 1..=5 {
        settle(
            &mut s,
            &simple(2, &format!("v{i}"), "  revisionHistoryLimit: 2", ""),
        );
    }
    let h = s.w.rollout_history(&key()).unwrap();
    assert_eq!(
        h,
        vec![
            (3, "image v3".to_string()),
            (4, "image v4".to_string()),
            (5, "image v5".to_string())
        ]
    );
    // The claimed hashes are those of the kept revisions only.
    assert_eq!(owned_hashes(st(&s)).count(), 3);
}

#[test]
fn an_old_template_again_reuses_its_revision_with_the_next_number() {
    let mut s = Sim::new();
    settle(&mut s, &simple(2, "v1", "", ""));
    let h1 = st(&s).revisions[0].hash.clone();
    settle(&mut s, &simple(2, "v2", "", ""));
    settle(&mut s, &simple(2, "v1", "", ""));
    let revs = &st(&s).revisions;
    assert_eq!(revs.len(), 2);
    assert_eq!((revs[1].number, revs[1].hash.as_str()), (3, h1.as_str()));
    let view = s.w.view(&key(), &s.obs(), s.now).unwrap();
    assert_eq!(view.object["metadata"]["annotations"][REVISION], "3");
}

#[test]
fn status_counts_and_conditions_follow_kubernetes() {
    let mut s = Sim::new();
    s.apply(&simple(2, "v1", "", ""));
    s.step();
    assert_eq!(cond(&s).1, "NewReplicaSetCreated");
    s.step();
    assert_eq!(
        cond(&s).1,
        "ReplicaSetUpdated",
        "the pods are counted: progress"
    );
    let view = s.w.view(&key(), &s.obs(), s.now).unwrap();
    let status = &view.object["status"];
    assert_eq!(status["replicas"], 2);
    assert_eq!(status["updatedReplicas"], 2);
    assert_eq!(status["unavailableReplicas"], 2);
    assert!(
        status.get("availableReplicas").is_none(),
        "zero counts left out"
    );
    assert_eq!(
        status["conditions"][0]["reason"],
        "MinimumReplicasUnavailable"
    );
    assert_eq!(
        s.w.rollout_status(&key(), &s.obs(), s.now).unwrap().0,
        "Waiting for deployment \"web\" rollout to finish: 0 of 2 updated replicas are available..."
    );
    let first = s.live()[0].name.clone();
    s.ready(&first);
    let before = st(&s).progressing.clone().unwrap();
    s.now = s.now.plus_ms(1000);
    s.sync();
    let after = st(&s).progressing.clone().unwrap();
    assert_eq!(after.reason, "ReplicaSetUpdated");
    assert_eq!(
        after.update_ms,
        before.update_ms + 1000,
        "progress: updated"
    );
    assert_eq!(after.transition_ms, before.transition_ms);
    s.all_ready();
    s.sync();
    assert_eq!(cond(&s), ("True".into(), "NewReplicaSetAvailable".into()));
    let view = s.w.view(&key(), &s.obs(), s.now).unwrap();
    let c = &view.object["status"]["conditions"];
    assert_eq!(c[0]["type"], "Available");
    assert_eq!(c[0]["reason"], "MinimumReplicasAvailable");
    assert_eq!(
        c[1]["message"],
        format!(
            "ReplicaSet \"web-{}\" has successfully progressed.",
            st(&s).revisions[0].hash
        )
    );
    assert_eq!(
        s.w.rollout_status(&key(), &s.obs(), s.now).unwrap(),
        ("deployment \"web\" successfully rolled out".into(), true)
    );
    // A steady state changes nothing.
    s.w.take_dirty();
    s.now = s.now.plus_ms(60_000);
    let out = s.sync();
    assert!(out.is_empty(), "{out:?}");
    assert!(!s.w.take_dirty());
}

#[test]
fn progress_deadline_exceeded_without_auto_rollback_keeps_the_old_pods() {
    let mut s = Sim::new();
    let y = |img| simple(3, img, "  progressDeadlineSeconds: 30", "");
    settle(&mut s, &y("v1"));
    s.apply(&y("bad"));
    drive(&mut s, 29, &["bad"], &mut |s| {
        assert!(available_now(s, 0) >= 3)
    });
    assert_eq!(cond(&s).1, "ReplicaSetUpdated");
    assert!(s.w.poll_timeout().is_some());
    drive(&mut s, 4, &["bad"], &mut |_| {});
    assert_eq!(
        cond(&s),
        ("False".into(), "ProgressDeadlineExceeded".into())
    );
    assert_eq!(
        images(&s),
        VecMap::from([("v1".into(), 3), ("bad".into(), 1)])
    );
    assert_eq!(
        s.w.rollout_status(&key(), &s.obs(), s.now),
        Err("deployment \"web\" exceeded its progress deadline".into())
    );
}

fn rolled_back(s: &Sim) -> Vec<String> {
    s.log
        .iter()
        .filter_map(|i| match i {
            Intent::Event {
                kind: EventType::Warning,
                reason,
                message,
                ..
            } if reason == "RolledBack" => Some(message.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn auto_rollback_of_a_never_ready_revision_and_the_pin() {
    let mut s = Sim::new();
    let ann = ", picolet.io/auto-rollback: \"true\"";
    let y = |img| simple(3, img, "  progressDeadlineSeconds: 30", ann);
    settle(&mut s, &y("v1"));
    s.apply(&y("bad"));
    drive(&mut s, 40, &["bad"], &mut |s| {
        assert!(available_now(s, 0) >= 3, "the old pods keep serving");
    });
    let ev = rolled_back(&s);
    assert_eq!(ev.len(), 1, "{ev:?}");
    let h = &st(&s).revisions;
    let msg = format!(
        "Rolled back from revision 2 (\"web-{}\": no progress within 30s) to revision 1 (\"web-{}\"), now revision 3",
        h[0].hash, h[1].hash
    );
    assert_eq!(ev[0], msg);
    assert_eq!(cond(&s), ("False".into(), "RolledBack".into()));
    assert_eq!(st(&s).progressing.as_ref().unwrap().message, msg);
    assert_eq!(images(&s), VecMap::from([("v1".into(), 3)]));
    assert!(
        s.w.rollout_status(&key(), &s.obs(), s.now)
            .unwrap_err()
            .contains("rolled back")
    );
    // The same failing template again: pinned, not retried.
    s.apply(&y("bad"));
    drive(&mut s, 100, &["bad"], &mut |_| {});
    assert_eq!(images(&s), VecMap::from([("v1".into(), 3)]));
    assert_eq!(rolled_back(&s).len(), 1);
    // A new template is rolled out.
    settle(&mut s, &y("v3"));
    assert_eq!(images(&s), VecMap::from([("v3".into(), 3)]));
    assert_eq!(cond(&s).1, "NewReplicaSetAvailable");
}

#[test]
fn auto_rollback_of_a_crash_looping_revision_from_the_node_default() {
    let mut s = Sim::new();
    s.env.auto_rollback = true;
    let y = |img| {
        simple(
            2,
            img,
            "  progressDeadlineSeconds: 60\n  minReadySeconds: 5",
            "",
        )
    };
    settle(&mut s, &y("v1"));
    s.apply(&y("crash"));
    for t in 0..120 {
        s.step();
        assert!(available_now(&s, 5000) >= 2, "the old pods keep serving");
        // The new pods are ready for 2 s, then crash, again and again.
        let crashing: Vec<String> = s
            .live()
            .iter()
            .filter(|p| image(&s, &p.name) == "crash")
            .map(|p| p.name.clone())
            .collect();
        for n in crashing {
            if t % 3 == 0 {
                s.ready(&n);
            } else if t % 3 == 2 {
                s.crash(&n);
            }
        }
        s.now = s.now.plus_ms(1000);
    }
    assert_eq!(rolled_back(&s).len(), 1);
    assert_eq!(images(&s), VecMap::from([("v1".into(), 2)]));
    // The annotation "false" overrides the node default.
    let mut s2 = Sim::new();
    s2.env.auto_rollback = true;
    let y = |img| {
        simple(
            2,
            img,
            "  progressDeadlineSeconds: 20",
            ", picolet.io/auto-rollback: \"false\"",
        )
    };
    settle(&mut s2, &y("v1"));
    s2.apply(&y("bad"));
    drive(&mut s2, 30, &["bad"], &mut |_| {});
    assert!(rolled_back(&s2).is_empty());
    assert_eq!(cond(&s2).1, "ProgressDeadlineExceeded");
}

#[test]
fn no_rollback_without_a_healthy_revision() {
    let mut s = Sim::new();
    s.env.auto_rollback = true;
    s.apply(&simple(2, "bad", "  progressDeadlineSeconds: 20", ""));
    drive(&mut s, 30, &["bad"], &mut |_| {});
    assert!(rolled_back(&s).is_empty());
    assert_eq!(cond(&s).1, "ProgressDeadlineExceeded");
}

#[test]
fn rollout_undo_and_restart() {
    let mut s = Sim::new();
    let k = key();
    assert_eq!(
        s.w.rollout_undo(&k, None, s.now),
        Err("deployments.apps \"web\" not found in namespace \"default\"".into())
    );
    settle(&mut s, &simple(2, "v1", "", ""));
    assert_eq!(
        s.w.rollout_undo(&k, None, s.now),
        Err("no rollout history found for deployment \"web\"".into())
    );
    settle(&mut s, &simple(2, "v2", "", ""));
    assert_eq!(
        s.w.rollout_undo(&k, None, s.now).unwrap(),
        "deployment.apps/web rolled back"
    );
    for _ in 0..10 {
        s.sync();
        s.all_ready();
        s.now = s.now.plus_ms(1000);
    }
    assert_eq!(images(&s), VecMap::from([("v1".into(), 2)]));
    assert_eq!(
        s.w.rollout_history(&k).unwrap(),
        vec![(2, "image v2".into()), (3, "image v1".into())]
    );
    assert_eq!(
        history_text(&k, &[(2, "image v2".into()), (13, String::new())]),
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n2         image v2\n13        <none>\n"
    );
    assert_eq!(
        s.w.rollout_undo(&k, Some(3), s.now).unwrap(),
        "deployment.apps/web skipped rollback (current template already matches revision 3)"
    );
    assert_eq!(
        s.w.rollout_undo(&k, Some(9), s.now),
        Err("unable to find specified revision 9 in history".into())
    );
    // Back to the source's own template: the override goes.
    assert_eq!(
        s.w.rollout_undo(&k, Some(2), s.now).unwrap(),
        "deployment.apps/web rolled back"
    );
    assert!(st(&s).over.is_none());
    for _ in 0..10 {
        s.sync();
        s.all_ready();
        s.now = s.now.plus_ms(1000);
    }
    assert_eq!(images(&s), VecMap::from([("v2".into(), 2)]));
    // restart: a new revision with restartedAt.
    assert_eq!(
        s.w.rollout_restart(&k, s.now).unwrap(),
        "deployment.apps/web restarted"
    );
    let at = crate::clock::rfc3339(s.now.wall_ms);
    for _ in 0..10 {
        s.sync();
        s.all_ready();
        s.now = s.now.plus_ms(1000);
    }
    let live = s.live();
    assert_eq!(live.len(), 2);
    for p in live {
        assert_eq!(s.spec(&p.name).metadata.annotations[RESTARTED_AT], at);
        assert_eq!(image(&s, &p.name), "v2");
    }
    assert_eq!(st(&s).revisions.last().unwrap().number, 5);
    // The source's template changing ends the override.
    settle(&mut s, &simple(2, "v3", "", ""));
    assert!(st(&s).over.is_none());
    for p in s.live() {
        assert!(
            !s.spec(&p.name)
                .metadata
                .annotations
                .contains_key(RESTARTED_AT)
        );
    }
    // A paused Deployment refuses both.
    settle(&mut s, &simple(2, "v3", "  paused: true", ""));
    assert!(
        s.w.rollout_restart(&k, s.now)
            .unwrap_err()
            .contains("paused")
    );
    assert!(
        s.w.rollout_undo(&k, None, s.now)
            .unwrap_err()
            .contains("paused")
    );
}

#[test]
fn an_agent_restart_mid_rollout_continues_without_duplicates() {
    let mut s = Sim::new();
    s.grace_ms = 2000;
    let y = |img| simple(4, img, "", "");
    settle(&mut s, &y("v1"));
    s.apply(&y("v2"));
    for round in 0..30 {
        s.sync();
        s.restart();
        let out = s.step();
        assert!(
            out.iter().all(|i| matches!(i, Intent::Event { .. })),
            "round {round}: a restart alone changes nothing: {out:?}"
        );
        assert!(s.live().len() <= 5);
        s.all_ready();
        s.now = s.now.plus_ms(1000);
    }
    assert!(done(&s));
    assert_eq!(images(&s), VecMap::from([("v2".into(), 4)]));
}

#[test]
fn a_host_port_forces_surge_zero_and_waits_for_the_port() {
    let mut s = Sim::new();
    s.grace_ms = 3000;
    let y = |img| {
        web(
            2,
            img,
            "{}",
            "",
            "",
            ", ports: [{containerPort: 80, hostPort: 8080}]",
        )
    };
    settle(&mut s, &y("v1"));
    s.apply(&y("v2"));
    let mut creates_while_terminating = 0;
    let mut steps = 0;
    let mut deleted: Vec<u64> = Vec::new();
    while !done(&s) {
        steps += 1;
        assert!(steps < 100);
        let now = s.now.mono_ms;
        let terminating = deleted.iter().any(|t| now < t + 3000);
        let out = s.step();
        assert!(s.live().len() <= 2, "no surge");
        for i in &out {
            match i {
                Intent::CreatePod(_) if terminating => creates_while_terminating += 1,
                Intent::DeletePod { .. } => deleted.push(now),
                _ => {}
            }
        }
        s.all_ready();
        s.now = s.now.plus_ms(1000);
    }
    assert_eq!(creates_while_terminating, 0);
    assert_eq!(images(&s), VecMap::from([("v2".into(), 2)]));
}

#[test]
fn paused_scales_but_does_not_roll_out() {
    let mut s = Sim::new();
    settle(&mut s, &simple(2, "v1", "", ""));
    s.apply(&simple(3, "v2", "  paused: true", ""));
    for _ in 0..5 {
        s.sync();
        s.all_ready();
        s.now = s.now.plus_ms(1000);
    }
    assert_eq!(images(&s), VecMap::from([("v1".into(), 3)]));
    assert_eq!(st(&s).revisions.len(), 1);
    assert_eq!(cond(&s), ("Unknown".into(), "DeploymentPaused".into()));
    settle(&mut s, &simple(3, "v2", "", ""));
    assert_eq!(images(&s), VecMap::from([("v2".into(), 3)]));
}

#[test]
fn scaling_the_current_revision_and_replacing_failed_pods() {
    let mut s = Sim::new();
    settle(&mut s, &simple(3, "v1", "", ""));
    settle(&mut s, &simple(5, "v1", "", ""));
    assert_eq!(images(&s), VecMap::from([("v1".into(), 5)]));
    settle(&mut s, &simple(1, "v1", "", ""));
    assert_eq!(images(&s), VecMap::from([("v1".into(), 1)]));
    // A failed pod (evicted) goes and is replaced, after the failed-pod
    // back-off (1 s).
    let n = s.live()[0].name.clone();
    s.exit(&n, 137);
    s.sync();
    assert!(s.pods.get(&n).is_none_or(|p| p.1.terminating));
    s.advance(999);
    assert_eq!(s.live().len(), 0);
    s.advance(1);
    assert_eq!(s.live().len(), 1);
    assert_eq!(st(&s).revisions.len(), 1);
}

#[test]
fn a_saved_template_rebuilds_to_its_hash() {
    let (w, _) = crate::workloads::testkit::workload(&web(
        1,
        "v1",
        "{}",
        "",
        "",
        ", ports: [{containerPort: 80, hostPort: 8080}], env: [{name: A, value: b}]",
    ));
    let crate::spec::workload::WorkloadSpec::Deployment(d) = w.spec else {
        unreachable!()
    };
    let json = serde_json::to_string(&d.template.pod).unwrap();
    let t = PodTemplate::from_json(&json, &d.template.hash).unwrap();
    assert_eq!(
        crate::spec::workload::template_hash(&t.pod),
        d.template.hash
    );
    assert_eq!(t, d.template);
}

#[test]
fn the_auto_rollback_annotation_is_true_or_false() {
    let v = crate::yaml::parse(&simple(1, "v1", "", ", picolet.io/auto-rollback: \"yes\"")).0[0]
        .to_value()
        .unwrap();
    let e = crate::spec::workload::workload_from_value(v).unwrap_err();
    assert!(
        e.to_string()
            .contains("metadata.annotations.picolet.io/auto-rollback"),
        "{e}"
    );
}

#[test]
fn unhealthy_old_pods_go_first() {
    let mut s = Sim::new();
    let strategy = "{rollingUpdate: {maxSurge: 0, maxUnavailable: 1}}";
    settle(&mut s, &web(3, "v1", strategy, "", "", ""));
    let sick = s.live()[1].name.clone();
    s.crash(&sick);
    s.apply(&web(3, "v2", strategy, "", "", ""));
    let out = s.step();
    let deleted: Vec<&str> = out
        .iter()
        .filter_map(|i| match i {
            Intent::DeletePod { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, [sick.as_str()], "{out:?}");
    assert_eq!(available_now(&s, 0), 2, "the ready ones stay");
}
