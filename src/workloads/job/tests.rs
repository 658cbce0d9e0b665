//! The Job controller on a simulated node with a virtual clock.

use crate::lifecycle::Phase;
use crate::spec::workload::{WorkloadKey, WorkloadKind};
use crate::workloads::testkit::Sim;
use crate::workloads::{Intent, PodObs};
use serde_json::Value;

fn job(name: &str, spec: &str) -> String {
    format!(
        "
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
{spec}
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: main, image: busybox}}]
"
    )
}

fn key(name: &str) -> WorkloadKey {
    WorkloadKey {
        kind: WorkloadKind::Job,
        namespace: "default".into(),
        name: name.into(),
    }
}

fn status(s: &Sim, name: &str) -> Value {
    let obs: Vec<PodObs> = s.pods.values().map(|(_, o)| o.clone()).collect();
    s.w.view(&key(name), &obs, s.now).unwrap().object["status"].clone()
}

fn conds(s: &Sim, name: &str) -> Vec<String> {
    status(s, name)["conditions"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| {
                    format!(
                        "{}={}/{}",
                        c["type"].as_str().unwrap(),
                        c["status"].as_str().unwrap(),
                        c["reason"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Live pods that run (Pending or Running), by name.
fn running(s: &Sim) -> Vec<String> {
    s.live()
        .iter()
        .filter(|p| matches!(p.phase, Phase::Pending | Phase::Running))
        .map(|p| p.name.clone())
        .collect()
}

fn created(out: &[Intent]) -> usize {
    out.iter()
        .filter(|i| matches!(i, Intent::CreatePod(_)))
        .count()
}

#[test]
fn completions_with_parallelism_run_two_at_a_time_until_five_succeeded() {
    let mut s = Sim::new();
    s.apply(&job("pi", "  completions: 5\n  parallelism: 2"));
    s.sync();
    let pods = running(&s);
    assert_eq!(pods.len(), 2);
    for p in &pods {
        assert!(p.starts_with("pi-") && p.len() == 8, "{p}");
        let l = &s.spec(p).metadata.labels;
        assert_eq!(l["batch.kubernetes.io/job-name"], "pi");
        assert_eq!(l["job-name"], "pi");
        assert_eq!(l["batch.kubernetes.io/controller-uid"], "uid-pi");
        assert_eq!(l["controller-uid"], "uid-pi");
        assert_eq!(s.spec(p).metadata.owner_references[0].kind, "Job");
    }
    assert_eq!(status(&s, "pi")["active"], 2);
    assert!(status(&s, "pi")["startTime"].is_string());
    let mut done = 0;
    while done < 5 {
        let p = running(&s)[0].clone();
        s.exit(&p, 0);
        done += 1;
        s.advance(1000);
        let want = (5 - done).min(2);
        assert_eq!(running(&s).len(), want, "after {done}");
    }
    let st = status(&s, "pi");
    assert_eq!(st["succeeded"], 5);
    assert!(st["completionTime"].is_string());
    assert_eq!(
        conds(&s, "pi"),
        [
            "SuccessCriteriaMet=True/CompletionsReached",
            "Complete=True/CompletionsReached"
        ]
    );
    // Finished pods stay (for their logs); nothing more is created.
    assert_eq!(s.pods.len(), 5);
    assert_eq!(created(&s.advance(60_000)), 0);
}

#[test]
fn an_indexed_job_names_its_pods_and_gives_each_its_index() {
    let mut s = Sim::new();
    s.apply(&job(
        "idx",
        "  completions: 3\n  parallelism: 3\n  completionMode: Indexed",
    ));
    s.sync();
    let mut pods = running(&s);
    pods.sort();
    assert_eq!(pods.len(), 3);
    for (i, p) in pods.iter().enumerate() {
        assert!(p.starts_with(&format!("idx-{i}-")) && p.len() == 11, "{p}");
        let pod = s.spec(p);
        assert_eq!(
            pod.metadata.annotations["batch.kubernetes.io/job-completion-index"],
            i.to_string()
        );
        assert_eq!(
            pod.metadata.labels["batch.kubernetes.io/job-completion-index"],
            i.to_string()
        );
        let env = &pod.spec.containers[0].env;
        assert!(env.iter().any(
            |e| e.name == "JOB_COMPLETION_INDEX" && e.value.as_deref() == Some(&*i.to_string())
        ));
        assert_eq!(pod.spec.hostname.as_deref(), Some(&*format!("idx-{i}")));
    }
    s.exit(&pods[0], 0);
    s.exit(&pods[2], 0);
    s.exit(&pods[1], 1);
    s.advance(1000);
    assert_eq!(status(&s, "idx")["completedIndexes"], "0,2");
    assert_eq!(status(&s, "idx")["failed"], 1);
    // Index 1 again, 10 s after the failure was seen.
    assert!(running(&s).is_empty());
    s.advance(9000);
    assert!(running(&s).is_empty());
    s.advance(1000);
    let again = running(&s);
    assert_eq!(again.len(), 1);
    assert!(again[0].starts_with("idx-1-"), "{again:?}");
    s.exit(&again[0], 0);
    s.advance(1000);
    assert_eq!(status(&s, "idx")["completedIndexes"], "0-2");
    assert_eq!(status(&s, "idx")["succeeded"], 3);
    assert!(conds(&s, "idx").contains(&"Complete=True/CompletionsReached".to_string()));
}

#[test]
fn failures_are_replaced_after_a_doubling_back_off_until_the_backoff_limit() {
    let mut s = Sim::new();
    s.apply(&job("bad", "  backoffLimit: 3"));
    s.sync();
    let mut delays = Vec::new();
    for n in 1..=3 {
        let p = running(&s);
        assert_eq!(p.len(), 1, "attempt {n}");
        s.exit(&p[0], 1);
        s.sync();
        assert!(running(&s).is_empty());
        let mut waited = 0;
        while running(&s).is_empty() {
            assert!(s.w.poll_timeout().is_some(), "a timer for the back-off");
            s.advance(1000);
            waited += 1000;
            assert!(waited <= 400_000);
        }
        delays.push(waited);
    }
    assert_eq!(delays, [10_000, 20_000, 40_000]);
    // The 4th failure is one more than backoffLimit.
    let p = running(&s);
    s.exit(&p[0], 1);
    s.advance(1000);
    assert_eq!(status(&s, "bad")["failed"], 4);
    assert_eq!(
        conds(&s, "bad"),
        [
            "FailureTarget=True/BackoffLimitExceeded",
            "Failed=True/BackoffLimitExceeded"
        ]
    );
    assert_eq!(
        status(&s, "bad")["conditions"][1]["message"],
        "Job has reached the specified backoff limit"
    );
    assert_eq!(created(&s.advance(600_000)), 0);
}

#[test]
fn the_back_off_is_capped_at_six_minutes_and_reset_by_a_success() {
    let mut s = Sim::new();
    s.apply(&job("cap", "  backoffLimit: 20\n  completions: 2"));
    s.sync();
    for _ in 0..7 {
        let p = running(&s);
        s.exit(&p[0], 1);
        s.sync();
        s.advance(360_000);
    }
    // After 7 failures the delay would be 640 s; it is 360 s.
    assert_eq!(running(&s).len(), 1);
    let p = running(&s);
    s.exit(&p[0], 0);
    s.sync();
    assert_eq!(running(&s).len(), 1, "a success resets the back-off");
}

#[test]
fn on_failure_counts_container_restarts_against_the_backoff_limit() {
    let mut s = Sim::new();
    s.apply(&job("crash", "  backoffLimit: 2").replace("Never", "OnFailure"));
    s.sync();
    let p = running(&s)[0].clone();
    s.crash(&p);
    s.sync();
    assert!(conds(&s, "crash").is_empty());
    s.crash(&p);
    s.sync();
    // The running pod is deleted; Failed once it is gone.
    assert!(running(&s).is_empty() || s.pods[&p].1.terminating);
    s.advance(1000);
    assert_eq!(
        conds(&s, "crash"),
        [
            "FailureTarget=True/BackoffLimitExceeded",
            "Failed=True/BackoffLimitExceeded"
        ]
    );
}

#[test]
fn active_deadline_seconds_fails_the_job_and_deletes_its_pods() {
    let mut s = Sim::new();
    s.grace_ms = 5000;
    s.apply(&job(
        "slow",
        "  activeDeadlineSeconds: 30\n  parallelism: 2\n  completions: 2",
    ));
    s.sync();
    s.all_ready();
    s.advance(29_000);
    assert!(conds(&s, "slow").is_empty());
    assert_eq!(s.w.poll_timeout(), Some(s.now.mono_ms + 1000));
    s.advance(1000);
    assert_eq!(conds(&s, "slow"), ["FailureTarget=True/DeadlineExceeded"]);
    assert!(s.live().is_empty(), "pods deleted");
    s.advance(5000);
    assert_eq!(
        conds(&s, "slow"),
        [
            "FailureTarget=True/DeadlineExceeded",
            "Failed=True/DeadlineExceeded"
        ]
    );
    assert_eq!(
        status(&s, "slow")["conditions"][1]["message"],
        "Job was active longer than specified deadline"
    );
    assert!(
        status(&s, "slow").get("failed").is_none(),
        "deleted pods are not failures"
    );
}

const PFP: &str = "  backoffLimit: 6
  podFailurePolicy:
    rules:
    - action: FailJob
      onExitCodes: {containerName: main, operator: In, values: [42]}
    - action: Ignore
      onPodConditions: [{type: DisruptionTarget}]
    - action: Count
      onExitCodes: {operator: NotIn, values: [42]}";

#[test]
fn pod_failure_policy_ignores_disruptions_and_fails_the_job_on_an_exit_code() {
    let mut s = Sim::new();
    s.apply(&job("pfp", PFP));
    s.sync();
    // Evicted: ignored, replaced at once (no back-off, not counted).
    let p = running(&s)[0].clone();
    {
        let o = &mut s.pods.get_mut(&p).unwrap().1;
        o.phase = Phase::Failed;
        o.reason = "Evicted".into();
    }
    s.sync();
    assert_eq!(running(&s).len(), 1);
    assert!(status(&s, "pfp").get("failed").is_none());
    // Exit 3: counted.
    let p = running(&s)[0].clone();
    s.exit(&p, 3);
    s.sync();
    s.advance(10_000);
    assert_eq!(status(&s, "pfp")["failed"], 1);
    // Exit 42 in `main`: the Job fails.
    let p = running(&s)[0].clone();
    s.exit(&p, 42);
    s.sync();
    assert_eq!(
        conds(&s, "pfp"),
        [
            "FailureTarget=True/PodFailurePolicy",
            "Failed=True/PodFailurePolicy"
        ]
    );
    assert_eq!(
        status(&s, "pfp")["conditions"][0]["message"],
        format!(
            "Container main for pod default/{p} failed with exit code 42 matching FailJob rule at index 0"
        )
    );
}

#[test]
fn suspend_deletes_the_active_pods_and_resume_starts_again() {
    let mut s = Sim::new();
    s.apply(&job(
        "sus",
        "  suspend: true\n  parallelism: 2\n  completions: 4",
    ));
    s.sync();
    assert!(s.pods.is_empty());
    assert_eq!(conds(&s, "sus"), ["Suspended=True/JobSuspended"]);
    assert!(status(&s, "sus").get("startTime").is_none());
    s.apply(&job(
        "sus",
        "  suspend: false\n  parallelism: 2\n  completions: 4",
    ));
    s.sync();
    assert_eq!(running(&s).len(), 2);
    assert_eq!(conds(&s, "sus"), ["Suspended=False/JobResumed"]);
    let p = running(&s)[0].clone();
    s.exit(&p, 0);
    s.sync();
    s.apply(&job(
        "sus",
        "  suspend: true\n  parallelism: 2\n  completions: 4",
    ));
    s.sync();
    assert!(running(&s).is_empty());
    assert!(status(&s, "sus").get("startTime").is_none());
    assert_eq!(status(&s, "sus")["succeeded"], 1);
    assert!(status(&s, "sus").get("failed").is_none());
    s.apply(&job(
        "sus",
        "  suspend: false\n  parallelism: 2\n  completions: 4",
    ));
    s.advance(1000);
    assert_eq!(running(&s).len(), 2, "resumed without back-off");
}

#[test]
fn ttl_after_finished_deletes_the_job_and_its_pods() {
    let mut s = Sim::new();
    s.apply(&job("ttl", "  ttlSecondsAfterFinished: 100"));
    s.sync();
    let p = running(&s)[0].clone();
    s.exit(&p, 0);
    s.sync();
    assert!(conds(&s, "ttl").contains(&"Complete=True/CompletionsReached".to_string()));
    s.advance(99_000);
    assert!(s.w.get(&key("ttl")).is_some());
    s.advance(1000);
    assert!(s.w.get(&key("ttl")).is_none());
    assert!(s.pods.is_empty(), "{:?}", s.pods.keys().collect::<Vec<_>>());
    // The same manifest read again (an agent restart) does not run it
    // again; a changed one does.
    s.restart();
    s.apply(&job("ttl", "  ttlSecondsAfterFinished: 100"));
    s.sync();
    assert!(s.w.get(&key("ttl")).is_none());
    assert!(s.pods.is_empty());
    s.apply(&job("ttl", "  ttlSecondsAfterFinished: 50"));
    s.sync();
    assert!(s.w.get(&key("ttl")).is_some());
    assert_eq!(running(&s).len(), 1);
}

#[test]
fn a_work_queue_job_completes_when_one_succeeded_and_none_runs() {
    let mut s = Sim::new();
    s.apply(&job("q", "  parallelism: 2"));
    s.sync();
    let pods = running(&s);
    assert_eq!(pods.len(), 2);
    s.exit(&pods[0], 0);
    s.advance(1000);
    assert_eq!(running(&s).len(), 1, "no new pod after a success");
    assert!(conds(&s, "q").is_empty());
    s.exit(&pods[1], 0);
    s.advance(1000);
    assert_eq!(status(&s, "q")["succeeded"], 2);
    assert!(conds(&s, "q").contains(&"Complete=True/CompletionsReached".to_string()));
}

#[test]
fn a_restart_keeps_the_counts_and_creates_no_duplicate() {
    let mut s = Sim::new();
    s.apply(&job("r", "  completions: 3"));
    s.sync();
    let p = running(&s)[0].clone();
    s.exit(&p, 0);
    s.sync();
    s.restart();
    assert_eq!(created(&s.sync()), 0);
    assert_eq!(status(&s, "r")["succeeded"], 1);
    assert_eq!(running(&s).len(), 1);
}

#[test]
fn disruption_target_false_matches_no_pod_without_the_condition() {
    // Kubernetes: a pod that has no DisruptionTarget condition matches
    // neither `True` nor `False`; picolet's pods have it (True) only when
    // evicted, so `status: "False"` never matches.
    let mut s = Sim::new();
    s.apply(&job(
        "dtf",
        "  backoffLimit: 6
  podFailurePolicy:
    rules:
    - action: FailJob
      onPodConditions: [{type: DisruptionTarget, status: \"False\"}]",
    ));
    s.sync();
    // An ordinary failure: counted (the rule does not match), not FailJob.
    let p = running(&s)[0].clone();
    s.exit(&p, 1);
    s.sync();
    assert_eq!(status(&s, "dtf")["failed"], 1);
    assert!(conds(&s, "dtf").is_empty(), "{:?}", conds(&s, "dtf"));
    s.advance(10_000);
    // An evicted pod (DisruptionTarget=True): no match either.
    let p = running(&s)[0].clone();
    {
        let o = &mut s.pods.get_mut(&p).unwrap().1;
        o.phase = Phase::Failed;
        o.reason = "Evicted".into();
    }
    s.sync();
    assert_eq!(status(&s, "dtf")["failed"], 2);
    assert!(conds(&s, "dtf").is_empty(), "{:?}", conds(&s, "dtf"));
    // `status: "True"` (the default) matches the evicted pod only.
    let mut s = Sim::new();
    s.apply(&job(
        "dtt",
        "  backoffLimit: 6
  podFailurePolicy:
    rules:
    - action: FailJob
      onPodConditions: [{type: DisruptionTarget, status: \"True\"}]",
    ));
    s.sync();
    let p = running(&s)[0].clone();
    s.exit(&p, 1);
    s.sync();
    assert!(conds(&s, "dtt").is_empty());
    s.advance(10_000);
    let p = running(&s)[0].clone();
    s.pods.get_mut(&p).unwrap().1.phase = Phase::Failed;
    s.pods.get_mut(&p).unwrap().1.reason = "Evicted".into();
    s.sync();
    assert_eq!(
        conds(&s, "dtt"),
        [
            "FailureTarget=True/PodFailurePolicy",
            "Failed=True/PodFailurePolicy"
        ]
    );
}
