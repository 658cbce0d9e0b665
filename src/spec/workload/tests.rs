//! Loading workload documents: kinds, field paths, defaults.

use super::deployment::Strategy;
use super::*;

fn load(text: &str) -> Result<Workload, SpecError> {
    let v: Value = crate::yaml::parse(text).0[0].to_value().unwrap();
    workload_from_value(v)
}

/// The Kubernetes docs' Deployment (nginx), busybox image
/// (`tests/k8s-docs/`, which `tests/workloads.rs` also runs).
const DEPLOYMENT: &str = include_str!("../../../tests/k8s-docs/nginx-deployment.yaml");

#[test]
fn the_kubernetes_docs_deployment_loads_with_its_defaults() {
    let w = load(DEPLOYMENT).unwrap();
    assert_eq!(w.kind(), WorkloadKind::Deployment);
    assert_eq!(w.metadata.namespace, "default");
    let WorkloadSpec::Deployment(d) = &w.spec else {
        panic!()
    };
    assert_eq!(d.replicas, 3);
    assert_eq!(d.revision_history_limit, 10);
    assert_eq!(d.progress_deadline_seconds, 600);
    assert_eq!(
        d.strategy,
        Strategy::RollingUpdate {
            max_surge: IntOrPercent::Percent(25),
            max_unavailable: IntOrPercent::Percent(25)
        }
    );
    assert_eq!(d.template.pod.metadata.name, "nginx-deployment");
    assert_eq!(d.template.hash.len(), 10, "{}", d.template.hash);
    assert!(d.template.hash.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
}

#[test]
fn errors_name_the_field_under_the_template() {
    let e = load(&DEPLOYMENT.replace(
        "image: busybox:1.36",
        "image: busybox:1.36\n        bogus: 1",
    ))
    .unwrap_err();
    assert_eq!(e.path, "spec.template.spec.containers[0].bogus", "{e}");
    let e = load(&DEPLOYMENT.replace("  replicas: 3", "  replicas: 3\n  typo: 1")).unwrap_err();
    assert_eq!(e.path, "spec.typo", "{e}");
    let e = load(&DEPLOYMENT.replace(
        "      app: nginx\n  template",
        "      app: other\n  template",
    ))
    .unwrap_err();
    assert_eq!(e.path, "spec.template.metadata.labels", "{e}");
    let e = load(&DEPLOYMENT.replace("apps/v1", "extensions/v1beta1")).unwrap_err();
    assert_eq!(e.path, "apiVersion", "{e}");
    let e = load(&DEPLOYMENT.replace("replicas: 3", "replicas: -1")).unwrap_err();
    assert_eq!(e.path, "spec.replicas", "{e}");
}

#[test]
fn a_template_carries_image_pull_secrets_checked_under_its_path() {
    let text = DEPLOYMENT.replace(
        "      containers:",
        "      imagePullSecrets: [{name: regcred}]\n      containers:",
    );
    let WorkloadSpec::Deployment(d) = load(&text).unwrap().spec else {
        panic!()
    };
    assert_eq!(d.template.pod.spec.image_pull_secrets[0].name, "regcred");
    let e = load(&text.replace("{name: regcred}", "{}")).unwrap_err();
    assert_eq!(e.path, "spec.template.spec.imagePullSecrets[0].name", "{e}");
}

#[test]
fn strategy_rules() {
    let with =
        |s: &str| load(&DEPLOYMENT.replace("  replicas: 3\n", &format!("  replicas: 3\n{s}")));
    let e =
        with("  strategy:\n    type: Recreate\n    rollingUpdate: {maxSurge: 1}\n").unwrap_err();
    assert_eq!(e.path, "spec.strategy.rollingUpdate", "{e}");
    let e = with("  strategy:\n    rollingUpdate: {maxSurge: 0, maxUnavailable: 0}\n").unwrap_err();
    assert_eq!(e.path, "spec.strategy.rollingUpdate.maxUnavailable", "{e}");
    let e = with("  strategy:\n    rollingUpdate: {maxSurge: 'x%'}\n").unwrap_err();
    assert_eq!(e.path, "spec.strategy.rollingUpdate.maxSurge", "{e}");
    let w = with("  strategy:\n    rollingUpdate: {maxSurge: 1, maxUnavailable: '50%'}\n").unwrap();
    let WorkloadSpec::Deployment(d) = w.spec else {
        panic!()
    };
    assert_eq!(
        d.strategy,
        Strategy::RollingUpdate {
            max_surge: IntOrPercent::Int(1),
            max_unavailable: IntOrPercent::Percent(50)
        }
    );
}

#[test]
fn the_hash_follows_the_template_only() {
    let a = load(DEPLOYMENT).unwrap();
    let b = load(&DEPLOYMENT.replace("replicas: 3", "replicas: 5")).unwrap();
    let c = load(&DEPLOYMENT.replace("busybox:1.36", "busybox:1.37")).unwrap();
    let h = |w: &Workload| match &w.spec {
        WorkloadSpec::Deployment(d) => d.template.hash.clone(),
        _ => panic!(),
    };
    assert_eq!(h(&a), h(&b));
    assert_ne!(h(&a), h(&c));
}

#[test]
fn percentages_round_as_kubernetes_does() {
    assert_eq!(IntOrPercent::Percent(25).scaled(3, true), 1);
    assert_eq!(IntOrPercent::Percent(25).scaled(3, false), 0);
    assert_eq!(IntOrPercent::Percent(25).scaled(4, false), 1);
    assert_eq!(IntOrPercent::Int(2).scaled(3, true), 2);
}

#[test]
fn selectors_match_as_kubernetes_does() {
    let s: LabelSelector = serde_json::from_str(
        r#"{"matchLabels":{"app":"a"},"matchExpressions":[{"key":"tier","operator":"In","values":["x","y"]},{"key":"gone","operator":"DoesNotExist"}]}"#,
    )
    .unwrap();
    let l = |p: &[(&str, &str)]| {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert!(s.matches(&l(&[("app", "a"), ("tier", "x")])));
    assert!(!s.matches(&l(&[("app", "a"), ("tier", "z")])));
    assert!(!s.matches(&l(&[("app", "a"), ("tier", "x"), ("gone", "1")])));
    assert_eq!(s.display(), "app=a,tier in (x,y),!gone");
}

#[test]
fn kubectl_resource_names() {
    for (s, k) in [
        ("deploy", WorkloadKind::Deployment),
        ("deployments.apps", WorkloadKind::Deployment),
        ("ds", WorkloadKind::DaemonSet),
        ("sts", WorkloadKind::StatefulSet),
        ("jobs", WorkloadKind::Job),
        ("cj", WorkloadKind::CronJob),
    ] {
        assert_eq!(WorkloadKind::from_resource(s), Some(k));
    }
    assert_eq!(WorkloadKind::from_resource("pods"), None);
    assert_eq!(WorkloadKind::Deployment.resource(), "deployment.apps");
}
