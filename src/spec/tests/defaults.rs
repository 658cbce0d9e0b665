use super::{MINIMAL, load_one, with_container_lines};
use crate::spec::defaults::image_tag_and_digest;
use crate::spec::*;

fn with_image(image: &str, policy: Option<PullPolicy>) -> Container {
    Container {
        name: "c".into(),
        image: image.into(),
        image_pull_policy: policy,
        ..Default::default()
    }
}

#[test]
fn pull_policy_defaults_follow_the_tag() {
    let table = [
        ("busybox", PullPolicy::Always),
        ("busybox:latest", PullPolicy::Always),
        ("docker.io/library/busybox", PullPolicy::Always),
        ("localhost:5000/busybox", PullPolicy::Always),
        ("localhost:5000/busybox:1.36", PullPolicy::IfNotPresent),
        ("picolet.test/busybox:1", PullPolicy::IfNotPresent),
        ("busybox@sha256:abcd", PullPolicy::IfNotPresent),
        ("busybox:latest@sha256:abcd", PullPolicy::Always),
        ("busybox:1@sha256:abcd", PullPolicy::IfNotPresent),
    ];
    for (image, want) in table {
        assert_eq!(with_image(image, None).pull_policy(), want, "{image}");
    }
    assert_eq!(
        with_image("busybox", Some(PullPolicy::Never)).pull_policy(),
        PullPolicy::Never
    );
}

#[test]
fn image_references_split_into_tag_and_digest() {
    assert_eq!(image_tag_and_digest("a/b:c"), (Some("c"), None));
    assert_eq!(image_tag_and_digest("h:1/b"), (None, None));
    assert_eq!(
        image_tag_and_digest("b@sha256:00"),
        (None, Some("sha256:00"))
    );
}

#[test]
fn probe_timing_applies_kubernetes_defaults() {
    let t = Probe::default().timing();
    assert_eq!(
        t,
        ProbeTiming {
            initial_delay_s: 0,
            period_s: 10,
            timeout_s: 1,
            success_threshold: 1,
            failure_threshold: 3,
        }
    );
    let p = Probe {
        initial_delay_seconds: 5,
        period_seconds: Some(2),
        timeout_seconds: Some(3),
        success_threshold: Some(2),
        failure_threshold: Some(7),
        ..Default::default()
    };
    assert_eq!(
        p.timing(),
        ProbeTiming {
            initial_delay_s: 5,
            period_s: 2,
            timeout_s: 3,
            success_threshold: 2,
            failure_threshold: 7,
        }
    );
}

#[test]
fn probe_timing_clamps_values_validation_refuses() {
    let p = Probe {
        initial_delay_seconds: -4,
        period_seconds: Some(0),
        timeout_seconds: Some(-1),
        ..Default::default()
    };
    let t = p.timing();
    assert_eq!((t.initial_delay_s, t.period_s, t.timeout_s), (0, 1, 1));
}

#[test]
fn probe_handler_returns_the_one_action() {
    let pod = load_one(&with_container_lines(
        "    ports: [{name: web, containerPort: 8080}]\n    readinessProbe:\n      httpGet: {port: web}\n    livenessProbe:\n      tcpSocket: {port: 8080}\n    startupProbe:\n      exec: {command: [cat, /ready]}\n",
    ))
    .unwrap();
    let c = &pod.spec.containers[0];
    match c.readiness_probe.as_ref().unwrap().handler() {
        Some(ProbeHandler::HttpGet(h)) => {
            assert_eq!(resolve_port(c, &h.port).unwrap(), 8080);
            assert_eq!(h.path_or_root(), "/");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.liveness_probe.as_ref().unwrap().handler(),
        Some(ProbeHandler::TcpSocket(_))
    ));
    match c.startup_probe.as_ref().unwrap().handler() {
        Some(ProbeHandler::Exec(e)) => assert_eq!(e.command, ["cat", "/ready"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(Probe::default().handler(), None);
}

#[test]
fn resolve_port_reports_missing_and_out_of_range_ports() {
    let mut c = with_image("x", None);
    c.ports.push(ContainerPort {
        container_port: 9000,
        name: Some("metrics".into()),
        ..Default::default()
    });
    assert_eq!(resolve_port(&c, &IntOrString::Int(80)).unwrap(), 80);
    assert_eq!(
        resolve_port(&c, &IntOrString::String("metrics".into())).unwrap(),
        9000
    );
    let e = resolve_port(&c, &IntOrString::String("web".into())).unwrap_err();
    assert!(e.message.contains("port \"web\" not found"), "{e}");
    assert!(resolve_port(&c, &IntOrString::Int(-1)).is_err());
    assert!(resolve_port(&c, &IntOrString::Int(70000)).is_err());
}

#[test]
fn termination_grace_period_defaults_to_thirty_seconds() {
    let mut pod = load_one(MINIMAL).unwrap();
    assert_eq!(pod.spec.termination_grace_period_s(), 30);
    pod.spec.termination_grace_period_seconds = Some(0);
    assert_eq!(pod.spec.termination_grace_period_s(), 0);
}

#[test]
fn requests_default_to_limits() {
    let pod = load_one(&with_container_lines(
        "    resources:\n      limits: {cpu: 250m, memory: 64Mi}\n      requests: {cpu: 100m}\n",
    ))
    .unwrap();
    let r = &pod.spec.containers[0].resources;
    assert_eq!(r.cpu_request_millis(), Some(100));
    assert_eq!(r.memory_request_bytes(), Some(64 << 20));
    assert_eq!(r.memory_limit_bytes(), Some(64 << 20));
    assert_eq!(Resources::default().cpu_limit_millis(), None);
}

#[test]
fn defaulted_writes_out_every_default() {
    let pod = load_one(&format!(
        "{}    ports: [{{containerPort: 80}}]\n    readinessProbe:\n      httpGet: {{port: 80}}\n  hostNetwork: true\n",
        MINIMAL.replace("busybox:1", "busybox")
    ))
    .unwrap();
    let mut raw = pod.clone();
    raw.metadata.namespace.clear();
    let d = defaulted(&raw);
    assert_eq!(d.metadata.namespace, "default");
    assert_eq!(d.spec.termination_grace_period_seconds, Some(30));
    let c = &d.spec.containers[0];
    assert_eq!(c.image_pull_policy, Some(PullPolicy::Always));
    assert_eq!(c.ports[0].host_port, Some(80));
    let p = c.readiness_probe.as_ref().unwrap();
    assert_eq!(
        (
            p.period_seconds,
            p.timeout_seconds,
            p.success_threshold,
            p.failure_threshold
        ),
        (Some(10), Some(1), Some(1), Some(3))
    );
    let h = p.http_get.as_ref().unwrap();
    assert_eq!(
        (h.path.as_deref(), h.scheme.as_deref()),
        (Some("/"), Some("HTTP"))
    );
    assert!(validate_all(&d).is_empty());
    assert_eq!(defaulted(&d), d, "defaulting is idempotent");
}

#[test]
fn pod_lists_init_containers_before_app_containers() {
    let pod = load_one(&MINIMAL.replace(
        "  containers:",
        "  initContainers:\n  - {name: i, image: x}\n  containers:",
    ))
    .unwrap();
    let names: Vec<_> = pod.all_containers().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["i", "c"]);
    assert_eq!(pod.container("i").unwrap().image, "x");
    assert!(pod.container("z").is_none());
}
