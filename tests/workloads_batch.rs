//! Jobs end to end (real agent, busybox): completions with parallelism,
//! backoffLimit with a failing pod, and an Indexed Job's
//! `JOB_COMPLETION_INDEX` read from its pods' logs; and a CronJob firing
//! at the next minute on an agent told its clock is right
//! (`--assume-clock-synchronized`: the build machine's clock may read as
//! unsynchronized). The rest of CronJob (missed runs, clock jumps, time
//! zones) is covered by the pure tests with a virtual clock.

mod support;
use serde_json::Value;
use support::*;

fn job(name: &str, spec: &str, script: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{spec}
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {IMAGE}
        command: ["sh", "-c", {script:?}]
"#
    )
}

/// The Job's pods (not deleted), by the `job-name` label.
fn pods_of(a: &Agent, job: &str) -> Vec<Value> {
    a.pods()
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["job-name"] == job)
        .collect()
}

fn phase_count(pods: &[Value], phase: &str) -> usize {
    pods.iter()
        .filter(|p| p["status"]["phase"] == phase)
        .count()
}

/// `get jobs NAME -o yaml`.
fn yaml(a: &Agent, name: &str) -> String {
    let out = a.cli(&["get", &format!("job/{name}"), "-o", "yaml"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn jobs_complete_fail_at_their_backoff_limit_and_index_their_pods() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply(
        "work.yaml",
        &job(
            "work",
            "  completions: 4\n  parallelism: 2",
            "sleep 1; echo done",
        ),
    );
    a.apply(
        "bad.yaml",
        &job("bad", "  backoffLimit: 1", "echo failing; exit 3"),
    );
    a.apply(
        "idx.yaml",
        &job(
            "idx",
            "  completions: 3\n  parallelism: 3\n  completionMode: Indexed",
            "echo index=$JOB_COMPLETION_INDEX host=$(hostname)",
        ),
    );
    // completions 4, parallelism 2: never more than 2 running.
    let mut most = 0;
    wait_for(90, "work: 4 succeeded pods", || {
        let p = pods_of(&a, "work");
        most = most.max(phase_count(&p, "Running") + phase_count(&p, "Pending"));
        (phase_count(&p, "Succeeded") == 4).then_some(())
    });
    assert!(most <= 2, "{most} pods of work at once");
    let y = wait_for(30, "work Complete", || {
        let y = yaml(&a, "work");
        y.contains("type: Complete").then_some(y)
    });
    assert!(y.contains("succeeded: 4"), "{y}");
    assert_eq!(pods_of(&a, "work").len(), 4, "no extra pod");
    let out = a.cli(&["get", "jobs"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("work ") && l.contains("4/4")),
        "{table}"
    );

    // The Indexed Job: each pod's log says its index and hostname.
    wait_for(60, "idx: 3 succeeded pods", || {
        (phase_count(&pods_of(&a, "idx"), "Succeeded") == 3).then_some(())
    });
    for p in pods_of(&a, "idx") {
        let name = p["metadata"]["name"].as_str().unwrap();
        let i = &p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"];
        let i = i.as_str().unwrap();
        assert!(name.starts_with(&format!("idx-{i}-")), "{name}");
        let log = String::from_utf8(a.cli(&["logs", name]).stdout).unwrap();
        assert_eq!(log.trim(), format!("index={i} host=idx-{i}"), "{name}");
    }
    let y = wait_for(10, "idx Complete", || {
        let y = yaml(&a, "idx");
        y.contains("type: Complete").then_some(y)
    });
    assert!(y.contains("completedIndexes: '0-2'"), "{y}");

    // backoffLimit 1: two failed pods (10 s apart), then Failed.
    let y = wait_for(60, "bad Failed", || {
        let y = yaml(&a, "bad");
        y.contains("type: Failed").then_some(y)
    });
    assert!(y.contains("reason: BackoffLimitExceeded"), "{y}");
    assert!(y.contains("failed: 2"), "{y}");
    let p = pods_of(&a, "bad");
    assert_eq!(phase_count(&p, "Failed"), 2, "{p:?}");
    // Nothing more is created.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(pods_of(&a, "bad").len(), 2);

    // Removing the manifest deletes the Job and its pods.
    a.remove("work.yaml");
    wait_for(30, "work's pods gone", || {
        pods_of(&a, "work").is_empty().then_some(())
    });
}

#[test]
fn a_cronjob_runs_its_job_at_the_next_minute_once() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start_with(&["--assume-clock-synchronized"]);
    a.apply(
        "tick.yaml",
        &format!(
            r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - name: main
            image: {IMAGE}
            command: ["sh", "-c", "echo tick"]
"#
        ),
    );
    let jobs = |a: &Agent| -> Vec<Value> {
        let out = a.cli(&["get", "jobs", "-o", "json"]);
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v["items"].as_array().cloned())
            .unwrap_or_default()
    };
    let done = wait_for(90, "the CronJob's first Job complete", || {
        let js = jobs(&a);
        js.iter()
            .find(|j| {
                j["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Complete"))
            })
            .cloned()
    });
    let name = done["metadata"]["name"].as_str().unwrap().to_string();
    // `<cronjob>-<scheduled time in minutes>`, owned by the CronJob.
    let minutes: i64 = name.strip_prefix("tick-").unwrap().parse().unwrap();
    assert!(minutes > 29_000_000, "{name}");
    assert_eq!(done["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    // One Job per minute: none other for the same minute.
    let same: Vec<Value> = jobs(&a)
        .into_iter()
        .filter(|j| j["metadata"]["name"] == name.as_str())
        .collect();
    assert_eq!(same.len(), 1);
    let out = a.cli(&["get", "cronjobs"]);
    let table = String::from_utf8_lossy(&out.stdout);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[0], "tick", "{table}");
    assert_ne!(
        row[row.len() - 2],
        "<none>",
        "LAST SCHEDULE is set:\n{table}"
    );
    a.assert_one_thread();
}

fn zoned_cronjob(name: &str, zone: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: {name}
spec:
  schedule: "0 9 * * *"
  timeZone: {zone}
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: {IMAGE}
            command: ["true"]
"#
    )
}

/// A CronJob's `timeZone` is checked when its manifest is applied, in the
/// agent's tz database (`TZDIR` here): a missing database and an unknown
/// zone are errors naming `spec.timeZone`; a zone the database has runs.
#[test]
fn a_cronjob_time_zone_must_be_in_the_devices_tz_database() {
    if !root_or_skip() {
        return;
    }
    let tz = tempfile::tempdir().unwrap();
    let db = tz.path().join("zoneinfo");
    let a = Agent::start_env(&[("TZDIR", db.to_str().unwrap())]);
    let refusal = |file: &str| {
        wait_for(20, &format!("the refusal of {file}"), || {
            let out = a.cli(&["get", "pods"]);
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            err.lines()
                .find(|l| l.contains(file) && l.contains("spec.timeZone"))
                .map(str::to_string)
        })
    };
    a.apply("berlin.yaml", &zoned_cronjob("berlin", "Europe/Berlin"));
    let e = refusal("berlin.yaml");
    assert!(
        e.contains(&format!(
            "spec.timeZone: unknown time zone Europe/Berlin: the time zone database {} is missing on this device (install tzdata)",
            db.display()
        )),
        "{e}"
    );
    let cronjobs = |a: &Agent| {
        let out = a.cli(&["get", "cronjobs"]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(!cronjobs(&a).contains("berlin"));

    // The database appears (tzdata installed): the same manifest applies.
    std::fs::create_dir_all(db.join("Europe")).unwrap();
    std::fs::copy(
        "/usr/share/zoneinfo/Europe/Berlin",
        db.join("Europe/Berlin"),
    )
    .unwrap();
    a.apply("berlin.yaml", &zoned_cronjob("berlin", "Europe/Berlin"));
    wait_for(20, "berlin applied", || {
        cronjobs(&a).contains("berlin").then_some(())
    });
    a.apply("mars.yaml", &zoned_cronjob("mars", "Mars/Olympus"));
    let e = refusal("mars.yaml");
    assert!(
        e.contains(&format!(
            "spec.timeZone: unknown time zone Mars/Olympus: {}/Mars/Olympus: No such file or directory",
            db.display()
        )),
        "{e}"
    );
    assert!(!cronjobs(&a).contains("mars"));
}
