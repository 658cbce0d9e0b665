use super::{MINIMAL, load_one};
use crate::spec::*;

fn base() -> Pod {
    load_one(MINIMAL).unwrap()
}

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: "x".into(),
        ..Default::default()
    }
}

fn probe_exec() -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: vec!["true".into()],
        }),
        ..Default::default()
    }
}

/// Asserts that `pod` has an error at `path` whose message contains `fragment`.
#[track_caller]
fn invalid(pod: &Pod, path: &str, fragment: &str) {
    let errs = validate_all(pod);
    assert!(
        errs.iter()
            .any(|e| e.path == path && e.message.contains(fragment)),
        "no error at {path} containing {fragment:?}; got: {:#?}",
        errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
}

#[track_caller]
fn valid(pod: &Pod) {
    let errs = validate_all(pod);
    assert!(
        errs.is_empty(),
        "{:#?}",
        errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
}

#[test]
fn minimal_pod_is_valid() {
    valid(&base());
}

#[test]
fn pod_name_must_be_a_dns_subdomain() {
    let mut p = base();
    p.metadata.name = "web.v1-a".into();
    valid(&p);
    for bad in ["", "Web", "-a", "a-", "a..b", "a_b", &"a".repeat(254)] {
        p.metadata.name = bad.into();
        invalid(&p, "metadata.name", "");
    }
    p.metadata.name = "a".repeat(253);
    valid(&p);
}

#[test]
fn namespace_must_be_a_dns_label() {
    let mut p = base();
    p.metadata.namespace = "kube.system".into();
    invalid(&p, "metadata.namespace", "DNS-1123 label");
    p.metadata.namespace = "a".repeat(64);
    invalid(&p, "metadata.namespace", "63");
}

#[test]
fn labels_and_annotations_keys_and_values_are_checked() {
    let mut p = base();
    p.metadata
        .labels
        .insert("app.kubernetes.io/name".into(), "web_1.x".into());
    p.metadata
        .annotations
        .insert("example.com/note".into(), "any text at all!".into());
    valid(&p);
    p.metadata.labels.insert("bad key".into(), "v".into());
    invalid(&p, "metadata.labels.bad key", "qualified name");
    p.metadata.labels.clear();
    p.metadata.labels.insert("k".into(), "bad value!".into());
    invalid(&p, "metadata.labels.k", "label value");
    p.metadata.labels.clear();
    p.metadata.annotations.insert("/x".into(), "v".into());
    invalid(&p, "metadata.annotations./x", "prefix");
}

#[test]
fn a_pod_needs_a_container() {
    let mut p = base();
    p.spec.containers.clear();
    invalid(&p, "spec.containers", "at least one container");
}

#[test]
fn container_names_are_dns_labels_unique_across_init_and_app() {
    let mut p = base();
    p.spec.init_containers.push(container("c"));
    invalid(
        &p,
        "spec.containers[0].name",
        "duplicate container name \"c\"",
    );
    p.spec.init_containers[0].name = "C".into();
    invalid(&p, "spec.initContainers[0].name", "DNS-1123 label");
    p.spec.init_containers[0].name = "a".repeat(64);
    invalid(&p, "spec.initContainers[0].name", "63");
    p.spec.init_containers[0].name = String::new();
    invalid(&p, "spec.initContainers[0].name", "must not be empty");
}

#[test]
fn image_must_not_be_empty_or_padded() {
    let mut p = base();
    p.spec.containers[0].image = "  ".into();
    invalid(&p, "spec.containers[0].image", "must not be empty");
    p.spec.containers[0].image = " x".into();
    invalid(&p, "spec.containers[0].image", "whitespace");
}

#[test]
fn working_dir_must_be_absolute() {
    let mut p = base();
    p.spec.containers[0].working_dir = Some("tmp".into());
    invalid(&p, "spec.containers[0].workingDir", "absolute");
}

#[test]
fn probes_need_exactly_one_handler() {
    let mut p = base();
    p.spec.containers[0].readiness_probe = Some(Probe::default());
    invalid(
        &p,
        "spec.containers[0].readinessProbe",
        "must specify a handler",
    );
    let mut two = probe_exec();
    two.tcp_socket = Some(TcpSocketAction {
        port: IntOrString::Int(80),
        host: None,
    });
    p.spec.containers[0].readiness_probe = Some(two);
    invalid(
        &p,
        "spec.containers[0].readinessProbe",
        "more than one handler",
    );
    let mut empty_exec = probe_exec();
    empty_exec.exec = Some(ExecAction { command: vec![] });
    p.spec.containers[0].readiness_probe = Some(empty_exec);
    invalid(
        &p,
        "spec.containers[0].readinessProbe.exec.command",
        "must not be empty",
    );
}

#[test]
fn probe_timings_have_kubernetes_minimums() {
    let mut p = base();
    let mut pr = probe_exec();
    pr.initial_delay_seconds = -1;
    pr.period_seconds = Some(0);
    pr.timeout_seconds = Some(0);
    pr.success_threshold = Some(0);
    pr.failure_threshold = Some(0);
    p.spec.containers[0].readiness_probe = Some(pr);
    let at = "spec.containers[0].readinessProbe";
    invalid(
        &p,
        &format!("{at}.initialDelaySeconds"),
        "greater than or equal to 0",
    );
    invalid(
        &p,
        &format!("{at}.periodSeconds"),
        "greater than or equal to 1",
    );
    invalid(
        &p,
        &format!("{at}.timeoutSeconds"),
        "greater than or equal to 1",
    );
    invalid(
        &p,
        &format!("{at}.successThreshold"),
        "greater than or equal to 1",
    );
    invalid(
        &p,
        &format!("{at}.failureThreshold"),
        "greater than or equal to 1",
    );
}

#[test]
fn liveness_and_startup_success_threshold_must_be_one() {
    let mut p = base();
    let mut pr = probe_exec();
    pr.success_threshold = Some(2);
    p.spec.containers[0].readiness_probe = Some(pr.clone());
    valid(&p);
    p.spec.containers[0].liveness_probe = Some(pr.clone());
    p.spec.containers[0].startup_probe = Some(pr);
    invalid(
        &p,
        "spec.containers[0].livenessProbe.successThreshold",
        "must be 1",
    );
    invalid(
        &p,
        "spec.containers[0].startupProbe.successThreshold",
        "must be 1",
    );
}

#[test]
fn init_containers_may_not_have_probes() {
    let mut p = base();
    let mut init = container("init");
    init.liveness_probe = Some(probe_exec());
    p.spec.init_containers.push(init);
    invalid(
        &p,
        "spec.initContainers[0].livenessProbe",
        "init containers",
    );
}

#[test]
fn named_probe_ports_must_exist_and_numbers_be_in_range() {
    let mut p = base();
    let c = &mut p.spec.containers[0];
    c.ports.push(ContainerPort {
        container_port: 8080,
        name: Some("http".into()),
        ..Default::default()
    });
    c.readiness_probe = Some(Probe {
        http_get: Some(HttpGetAction {
            path: None,
            port: IntOrString::String("http".into()),
            host: None,
            scheme: None,
            http_headers: vec![],
        }),
        ..Default::default()
    });
    valid(&p);
    let at = "spec.containers[0].readinessProbe.httpGet.port";
    let set_port = |p: &mut Pod, port: IntOrString| {
        p.spec.containers[0]
            .readiness_probe
            .as_mut()
            .unwrap()
            .http_get
            .as_mut()
            .unwrap()
            .port = port;
    };
    set_port(&mut p, IntOrString::String("metrics".into()));
    invalid(&p, at, "port \"metrics\" not found");
    set_port(&mut p, IntOrString::String("8080".into()));
    invalid(&p, at, "at least one letter");
    set_port(&mut p, IntOrString::Int(0));
    invalid(&p, at, "between 1 and 65535");
    set_port(&mut p, IntOrString::Int(65536));
    invalid(&p, at, "between 1 and 65535");
}

#[test]
fn http_probe_scheme_and_headers_are_checked() {
    let mut p = base();
    p.spec.containers[0].liveness_probe = Some(Probe {
        http_get: Some(HttpGetAction {
            path: Some("/healthz".into()),
            port: IntOrString::Int(80),
            host: None,
            scheme: Some("FTP".into()),
            http_headers: vec![HttpHeader {
                name: "X Bad".into(),
                value: "v".into(),
            }],
        }),
        ..Default::default()
    });
    let at = "spec.containers[0].livenessProbe.httpGet";
    invalid(&p, &format!("{at}.scheme"), "must be HTTP or HTTPS");
    invalid(&p, &format!("{at}.httpHeaders[0].name"), "HTTP header name");
}

#[test]
fn ports_are_in_range_and_names_unique_iana_names() {
    let mut p = base();
    let port = |n: i32, name: Option<&str>| ContainerPort {
        container_port: n,
        name: name.map(Into::into),
        ..Default::default()
    };
    p.spec.containers[0].ports = vec![
        port(0, None),
        port(65536, None),
        port(80, Some("http")),
        port(81, Some("http")),
        port(82, Some("a-very-long-port-name")),
        port(83, Some("-web")),
        port(84, Some("w--b")),
        port(85, Some("Web")),
    ];
    p.spec.containers[0].ports[2].host_port = Some(70000);
    let at = "spec.containers[0].ports";
    invalid(&p, &format!("{at}[0].containerPort"), "between 1 and 65535");
    invalid(&p, &format!("{at}[1].containerPort"), "between 1 and 65535");
    invalid(&p, &format!("{at}[2].hostPort"), "between 0 and 65535");
    invalid(&p, &format!("{at}[3].name"), "duplicate port name");
    invalid(&p, &format!("{at}[4].name"), "1 to 15 characters");
    invalid(&p, &format!("{at}[5].name"), "begin or end");
    invalid(&p, &format!("{at}[6].name"), "consecutive");
    invalid(&p, &format!("{at}[7].name"), "lower case");
}

#[test]
fn host_ports_are_unique_per_protocol_and_match_with_host_network() {
    let mut p = base();
    let hp = |n: i32, proto: Protocol| ContainerPort {
        container_port: n,
        host_port: Some(8080),
        protocol: proto,
        name: None,
    };
    p.spec.containers[0].ports = vec![hp(80, Protocol::Tcp), hp(80, Protocol::Udp)];
    let mut other = container("d");
    other.ports = vec![hp(81, Protocol::Tcp)];
    p.spec.containers.push(other);
    invalid(
        &p,
        "spec.containers[1].ports[0].hostPort",
        "duplicate hostPort 8080/TCP",
    );
    assert_eq!(validate_all(&p).len(), 1);
    p.spec.containers.pop();
    p.spec.host_network = true;
    invalid(
        &p,
        "spec.containers[0].ports[0].hostPort",
        "must match containerPort",
    );
}

#[test]
fn volume_mounts_need_existing_volumes_and_absolute_unique_paths() {
    let mut p = base();
    p.spec.volumes.push(Volume {
        name: "data".into(),
        empty_dir: Some(EmptyDirVolume::default()),
        host_path: None,
    });
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: false,
    };
    p.spec.containers[0].volume_mounts = vec![
        mount("data", "/data"),
        mount("nope", "/nope"),
        mount("data", "rel"),
        mount("data", "/data/"),
        mount("data", "/a/../b"),
    ];
    let at = "spec.containers[0].volumeMounts";
    invalid(&p, &format!("{at}[1].name"), "volume \"nope\" not found");
    invalid(&p, &format!("{at}[2].mountPath"), "absolute");
    invalid(&p, &format!("{at}[3].mountPath"), "unique");
    invalid(&p, &format!("{at}[4].mountPath"), "'..'");
    assert_eq!(validate_all(&p).len(), 4);
}

#[test]
fn volumes_have_label_names_and_exactly_one_valid_source() {
    let mut p = base();
    let vol = |name: &str| Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolume::default()),
        host_path: None,
    };
    p.spec.volumes = vec![
        vol("a"),
        vol("a"),
        vol("B"),
        vol("none"),
        vol("both"),
        vol("mem"),
    ];
    p.spec.volumes[3].empty_dir = None;
    p.spec.volumes[4].host_path = Some(HostPathVolume {
        path: "/x".into(),
        kind: None,
    });
    p.spec.volumes[5].empty_dir = Some(EmptyDirVolume {
        medium: "HugePages".into(),
        size_limit: Some(Quantity("-1Mi".into())),
    });
    invalid(&p, "spec.volumes[1].name", "duplicate volume name");
    invalid(&p, "spec.volumes[2].name", "DNS-1123 label");
    invalid(&p, "spec.volumes[3]", "exactly one volume source");
    invalid(&p, "spec.volumes[4]", "more than one volume source");
    invalid(
        &p,
        "spec.volumes[5].emptyDir.medium",
        "\"HugePages\" is not supported",
    );
    invalid(
        &p,
        "spec.volumes[5].emptyDir.sizeLimit",
        "greater than or equal to 0",
    );
    p.spec.volumes = vec![vol("m")];
    p.spec.volumes[0].empty_dir = Some(EmptyDirVolume {
        medium: "Memory".into(),
        size_limit: Some(Quantity("64Mi".into())),
    });
    valid(&p);
    p.spec.volumes[0].empty_dir.as_mut().unwrap().size_limit = Some(Quantity("64MB".into()));
    invalid(
        &p,
        "spec.volumes[0].emptyDir.sizeLimit",
        "invalid quantity \"64MB\"",
    );
}

#[test]
fn host_path_must_be_absolute_with_a_known_type() {
    let mut p = base();
    p.spec.volumes.push(Volume {
        name: "h".into(),
        empty_dir: None,
        host_path: Some(HostPathVolume {
            path: "var/log".into(),
            kind: Some("Dir".into()),
        }),
    });
    invalid(&p, "spec.volumes[0].hostPath.path", "absolute");
    invalid(
        &p,
        "spec.volumes[0].hostPath.type",
        "\"Dir\" is not supported",
    );
    for t in validate::HOST_PATH_TYPES {
        p.spec.volumes[0].host_path = Some(HostPathVolume {
            path: "/var/log".into(),
            kind: Some(t.into()),
        });
        valid(&p);
    }
}

#[test]
fn env_names_and_field_refs_are_checked() {
    let mut p = base();
    let var = |name: &str| EnvVar {
        name: name.into(),
        value: Some("v".into()),
        value_from: None,
    };
    let field = |path: &str| EnvVar {
        name: "F".into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            },
        }),
    };
    p.spec.containers[0].env = vec![
        var("GOOD_name-1.x"),
        var("1BAD"),
        var(""),
        var(".."),
        field("status.podIP"),
        field("spec.serviceAccountName"),
        EnvVar {
            value: Some("x".into()),
            ..field("metadata.name")
        },
        field("metadata.labels['app']"),
    ];
    let at = "spec.containers[0].env";
    invalid(
        &p,
        &format!("{at}[1].name"),
        "not a valid environment variable name",
    );
    invalid(
        &p,
        &format!("{at}[2].name"),
        "not a valid environment variable name",
    );
    invalid(&p, &format!("{at}[3].name"), "'..'");
    invalid(
        &p,
        &format!("{at}[5].valueFrom.fieldRef.fieldPath"),
        "is not supported",
    );
    invalid(&p, &format!("{at}[6].valueFrom"), "may not be specified");
    assert_eq!(validate_all(&p).len(), 5);
}

#[test]
fn resources_are_cpu_and_memory_with_requests_not_above_limits() {
    let mut p = base();
    let r = &mut p.spec.containers[0].resources;
    let q = |s: &str| Quantity(s.into());
    r.requests.insert("cpu".into(), q("2"));
    r.limits.insert("cpu".into(), q("1500m"));
    r.requests.insert("memory".into(), q("1Gi"));
    r.limits.insert("memory".into(), q("1G"));
    r.limits.insert("hugepages-2Mi".into(), q("2Mi"));
    let at = "spec.containers[0].resources";
    invalid(
        &p,
        &format!("{at}.requests.cpu"),
        "less than or equal to cpu limit",
    );
    invalid(
        &p,
        &format!("{at}.requests.memory"),
        "less than or equal to memory limit",
    );
    invalid(
        &p,
        &format!("{at}.limits.hugepages-2Mi"),
        "unsupported resource",
    );
    let r = &mut p.spec.containers[0].resources;
    r.limits.clear();
    r.requests.clear();
    r.requests.insert("cpu".into(), q("-1"));
    r.limits.insert("memory".into(), q("lots"));
    invalid(
        &p,
        &format!("{at}.requests.cpu"),
        "greater than or equal to 0",
    );
    invalid(
        &p,
        &format!("{at}.limits.memory"),
        "invalid quantity \"lots\"",
    );
}

#[test]
fn termination_grace_period_must_not_be_negative() {
    let mut p = base();
    p.spec.termination_grace_period_seconds = Some(-1);
    invalid(
        &p,
        "spec.terminationGracePeriodSeconds",
        "greater than or equal to 0",
    );
    p.spec.termination_grace_period_seconds = Some(0);
    valid(&p);
}

#[test]
fn hostname_and_node_name_are_dns_names() {
    let mut p = base();
    p.spec.hostname = Some("My_Host".into());
    p.spec.node_name = Some("node_1".into());
    invalid(&p, "spec.hostname", "DNS-1123 label");
    invalid(&p, "spec.nodeName", "DNS-1123 subdomain");
}

#[test]
fn capability_names_are_checked_against_the_linux_list() {
    let mut p = base();
    p.spec.containers[0].security_context = Some(SecurityContext {
        capabilities: Some(Capabilities {
            add: vec![
                "NET_ADMIN".into(),
                "CAP_SYS_TIME".into(),
                "net_raw".into(),
                "CAP_FLY".into(),
            ],
            drop: vec!["ALL".into(), "KILLS".into()],
        }),
        ..Default::default()
    });
    let at = "spec.containers[0].securityContext.capabilities";
    invalid(
        &p,
        &format!("{at}.add[3]"),
        "unknown capability \"CAP_FLY\"",
    );
    invalid(&p, &format!("{at}.drop[1]"), "unknown capability \"KILLS\"");
    assert_eq!(validate_all(&p).len(), 2);
}

#[test]
fn security_context_ids_and_conflicts_are_checked() {
    let mut p = base();
    let sc = |s: SecurityContext| Some(s);
    p.spec.containers[0].security_context = sc(SecurityContext {
        run_as_user: Some(-1),
        run_as_group: Some(1 << 31),
        ..Default::default()
    });
    let at = "spec.containers[0].securityContext";
    invalid(&p, &format!("{at}.runAsUser"), "between 0 and 2147483647");
    invalid(&p, &format!("{at}.runAsGroup"), "between 0 and 2147483647");
    p.spec.containers[0].security_context = sc(SecurityContext {
        privileged: Some(true),
        allow_privilege_escalation: Some(false),
        ..Default::default()
    });
    invalid(&p, &format!("{at}.allowPrivilegeEscalation"), "privileged");
    p.spec.containers[0].security_context = sc(SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            add: vec!["SYS_ADMIN".into()],
            drop: vec![],
        }),
        ..Default::default()
    });
    invalid(
        &p,
        &format!("{at}.allowPrivilegeEscalation"),
        "CAP_SYS_ADMIN",
    );
    p.spec.containers[0].security_context = sc(SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(0),
        ..Default::default()
    });
    invalid(&p, &format!("{at}.runAsNonRoot"), "runAsNonRoot");
}

#[test]
fn validate_returns_the_first_error_in_field_order() {
    let mut p = base();
    p.metadata.name = "BAD".into();
    p.spec.containers[0].image = String::new();
    let first = validate(&p).unwrap_err();
    assert_eq!(first.path, "metadata.name");
    assert_eq!(validate_all(&p).len(), 2);
}
