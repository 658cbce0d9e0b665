//! Loading Jobs and CronJobs: the Kubernetes docs' examples, defaults,
//! and refusals with their paths.

use crate::spec::SpecError;
use crate::spec::workload::Workload;
use crate::spec::workload::job::{FailureAction, FailureMatch};
use crate::spec::workload::{WorkloadSpec, workload_from_value};

fn load(text: &str) -> Result<Workload, SpecError> {
    workload_from_value(crate::yaml::parse(text).0[0].to_value().unwrap())
}

/// kubernetes.io/docs/concepts/workloads/controllers/job/ (busybox;
/// `tests/k8s-docs/`, which `tests/workloads.rs` also runs).
const PI: &str = include_str!("../../../../tests/k8s-docs/pi-job.yaml");

/// kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/
/// (`tests/k8s-docs/`, which `tests/workloads.rs` also runs).
const HELLO: &str = include_str!("../../../../tests/k8s-docs/hello-cronjob.yaml");

fn path(text: &str) -> String {
    let e = load(text).unwrap_err();
    format!("{}: {}", e.path, e.message)
}

#[test]
fn the_docs_job_and_cronjob_load_with_their_defaults() {
    let WorkloadSpec::Job(j) = load(PI).unwrap().spec else {
        panic!()
    };
    assert_eq!(
        (j.parallelism, j.completions, j.backoff_limit),
        (1, None, 4)
    );
    assert!(!j.indexed && !j.suspend && j.pod_failure_policy.is_empty());
    let WorkloadSpec::CronJob(c) = load(HELLO).unwrap().spec else {
        panic!()
    };
    assert_eq!(c.schedule_text, "* * * * *");
    assert_eq!(
        (c.successful_jobs_history_limit, c.failed_jobs_history_limit),
        (3, 1)
    );
    assert_eq!(c.job.backoff_limit, 6);
    assert!(c.time_zone.is_none());
}

#[test]
fn a_pod_failure_policy_loads_and_its_mistakes_are_refused() {
    let pfp = PI.replace(
        "  backoffLimit: 4",
        "  backoffLimit: 4
  podFailurePolicy:
    rules:
    - action: FailJob
      onExitCodes: {containerName: pi, operator: In, values: [1, 42]}
    - action: Ignore
      onPodConditions: [{type: DisruptionTarget}]",
    );
    let WorkloadSpec::Job(j) = load(&pfp).unwrap().spec else {
        panic!()
    };
    assert_eq!(j.pod_failure_policy[0].action, FailureAction::FailJob);
    assert_eq!(
        j.pod_failure_policy[1].on,
        FailureMatch::DisruptionTarget(vec!["True".into()])
    );
    for (from, to, want) in [
        (
            "[1, 42]",
            "[42, 1]",
            "spec.podFailurePolicy.rules[0].onExitCodes.values[1]: must be ordered",
        ),
        (
            "[1, 42]",
            "[0, 1]",
            "values[0]: must not be 0 for the In operator",
        ),
        (
            "containerName: pi",
            "containerName: nope",
            "onExitCodes.containerName",
        ),
        (
            "operator: In",
            "operator: Maybe",
            "onExitCodes.operator: Unsupported value",
        ),
        (
            "action: FailJob",
            "action: FailIndex",
            "rules[0].action: FailIndex needs backoffLimitPerIndex",
        ),
        (
            "type: DisruptionTarget",
            "type: Ready",
            "rules[1].onPodConditions[0].type",
        ),
        (
            "restartPolicy: Never",
            "restartPolicy: OnFailure",
            "spec.template.spec.restartPolicy: only \"Never\"",
        ),
    ] {
        let p = path(&pfp.replace(from, to));
        assert!(p.contains(want), "{to}: {p}");
    }
}

#[test]
fn job_fields_picolet_does_not_run_are_refused_with_their_path() {
    for (add, want) in [
        ("  backoffLimitPerIndex: 1", "spec.backoffLimitPerIndex"),
        ("  maxFailedIndexes: 1", "spec.maxFailedIndexes"),
        ("  successPolicy: {rules: []}", "spec.successPolicy"),
        ("  managedBy: example.com/other", "spec.managedBy"),
        (
            "  podReplacementPolicy: Failed",
            "spec.podReplacementPolicy",
        ),
        (
            "  completionMode: Indexed",
            "spec.completions: Required value",
        ),
        ("  completionMode: Sideways", "spec.completionMode"),
        (
            "  selector: {matchLabels: {a: b}}",
            "spec.selector: `selector` not auto-generated",
        ),
        ("  parallelism: -1", "spec.parallelism"),
        ("  bogus: 1", "spec.bogus"),
        (
            "  completions: three",
            "spec.completions: must be an integer",
        ),
        ("  suspend: 1", "spec.suspend: must be a boolean"),
    ] {
        let p = path(&PI.replace("  backoffLimit: 4", add));
        assert!(p.starts_with(want), "{add}: {p}");
    }
    // The defaults are accepted.
    load(&PI.replace(
        "  backoffLimit: 4",
        "  managedBy: kubernetes.io/job-controller\n  podReplacementPolicy: TerminatingOrFailed",
    ))
    .unwrap();
    let p = path(&PI.replace("restartPolicy: Never", "restartPolicy: Always"));
    assert!(p.starts_with("spec.template.spec.restartPolicy"), "{p}");
    // A manual selector must select the template's labels.
    let manual = PI.replace(
        "  backoffLimit: 4",
        "  manualSelector: true\n  selector: {matchLabels: {app: pi}}",
    );
    assert!(path(&manual).starts_with("spec.template.metadata.labels"));
    load(&manual.replace(
        "  template:\n",
        "  template:\n    metadata: {labels: {app: pi}}\n",
    ))
    .unwrap();
}

#[test]
fn cronjob_schedules_zones_and_templates_are_checked_with_their_paths() {
    for (from, to, want) in [
        (
            "\"* * * * *\"",
            "\"61 * * * *\"",
            "spec.schedule: end of range (61) above maximum (59)",
        ),
        (
            "\"* * * * *\"",
            "\"CRON_TZ=UTC * * * * *\"",
            "spec.schedule",
        ),
        ("\"* * * * *\"", "\"TZ=UTC 0 * * * *\"", "spec.schedule"),
        (
            "\"* * * * *\"",
            "\"@reboot\"",
            "spec.schedule: unrecognized descriptor",
        ),
        (
            "  jobTemplate:",
            "  timeZone: Local\n  jobTemplate:",
            "spec.timeZone",
        ),
        (
            "  jobTemplate:",
            "  timeZone: ../../etc/passwd\n  jobTemplate:",
            "spec.timeZone",
        ),
        (
            "  jobTemplate:",
            "  concurrencyPolicy: Sometimes\n  jobTemplate:",
            "spec.concurrencyPolicy",
        ),
        (
            "  jobTemplate:",
            "  startingDeadlineSeconds: -1\n  jobTemplate:",
            "spec.startingDeadlineSeconds",
        ),
        (
            "  jobTemplate:",
            "  successfulJobsHistoryLimit: -1\n  jobTemplate:",
            "spec.successfulJobsHistoryLimit",
        ),
        (
            "restartPolicy: OnFailure",
            "restartPolicy: Always",
            "spec.jobTemplate.spec.template.spec.restartPolicy",
        ),
        (
            "imagePullPolicy: IfNotPresent",
            "imagePullPolicy: IfNotPresent\n            bogus: 1",
            "spec.jobTemplate.spec.template.spec.containers[0].bogus",
        ),
        (
            "    spec:\n      template:",
            "    spec:\n      backoffLimitPerIndex: 1\n      template:",
            "spec.jobTemplate.spec.backoffLimitPerIndex",
        ),
        (
            "name: hello\n",
            "name: a-name-that-is-longer-than-fifty-two-characters-in-all\n",
            "metadata.name: must be no more than 52",
        ),
    ] {
        let p = path(&HELLO.replace(from, to));
        assert!(p.starts_with(want) || p.contains(want), "{to}: {p}");
    }
    let WorkloadSpec::CronJob(c) = load(&HELLO.replace(
        "  jobTemplate:",
        "  timeZone: Europe/Berlin\n  concurrencyPolicy: Forbid\n  jobTemplate:",
    ))
    .unwrap()
    .spec
    else {
        panic!()
    };
    assert_eq!(c.time_zone.as_deref(), Some("Europe/Berlin"));
}
