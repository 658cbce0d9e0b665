use super::validate::{base, container, invalid, probe_exec, valid};
use crate::spec::*;

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
fn termination_message_paths_are_absolute_and_the_policy_is_known() {
    let mut p = base();
    for bad in ["dev/termination-log", "/", "/dev/../etc/passwd"] {
        p.spec.containers[0].termination_message_path = Some(bad.into());
        invalid(&p, "spec.containers[0].terminationMessagePath", "absolute");
    }
    p.spec.containers[0].termination_message_path = Some(String::new());
    assert_eq!(
        p.spec.containers[0].termination_message_path(),
        "/dev/termination-log"
    );
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
fn grpc_probe_ports_are_1_to_65535_and_one_handler_among_the_others() {
    let mut p = base();
    let grpc = |port: i32| {
        Some(Probe {
            grpc: Some(GrpcAction {
                port,
                service: Some("db".into()),
            }),
            ..Default::default()
        })
    };
    for ok in [1, 9000, 65535] {
        p.spec.containers[0].liveness_probe = grpc(ok);
        valid(&p);
    }
    for bad in [0, -1, 65536] {
        p.spec.containers[0].liveness_probe = grpc(bad);
        invalid(
            &p,
            "spec.containers[0].livenessProbe.grpc.port",
            "must be between 1 and 65535",
        );
    }
    let mut two = probe_exec();
    two.grpc = grpc(9000).unwrap().grpc;
    p.spec.containers[0].liveness_probe = Some(two);
    invalid(
        &p,
        "spec.containers[0].livenessProbe",
        "more than one handler",
    );
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
    for ok in ["HTTP", "HTTPS"] {
        let h = p.spec.containers[0].liveness_probe.as_mut().unwrap();
        let h = h.http_get.as_mut().unwrap();
        h.http_headers.clear();
        h.scheme = Some(ok.into());
        valid(&p);
    }
}

#[test]
fn probe_hosts_are_addresses_or_names_looked_up_at_run_time() {
    let mut p = base();
    let probe = |host: &str| {
        Some(Probe {
            tcp_socket: Some(TcpSocketAction {
                port: IntOrString::Int(80),
                host: Some(host.into()),
            }),
            ..Default::default()
        })
    };
    for ok in ["", "localhost", "127.0.0.1", "::1", "db.example.com", "web"] {
        p.spec.containers[0].liveness_probe = probe(ok);
        valid(&p);
    }
    p.spec.containers[0].liveness_probe = Some(Probe {
        http_get: Some(HttpGetAction {
            path: None,
            port: IntOrString::Int(80),
            host: Some("web".into()),
            scheme: Some("HTTPS".into()),
            http_headers: vec![],
        }),
        ..Default::default()
    });
    valid(&p);
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
        host_ip: None,
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
    // hostIP: an IPv4 address, and only with a hostPort.
    p.spec.containers[0].ports[1].host_ip = Some("10.0.0.300".into());
    invalid(
        &p,
        "spec.containers[0].ports[1].hostIP",
        "must be a valid IPv4 address",
    );
    p.spec.containers[0].ports[1].host_ip = Some("10.0.0.3".into());
    p.spec.containers[0].ports[1].host_port = None;
    invalid(
        &p,
        "spec.containers[0].ports[1].hostIP",
        "requires a hostPort",
    );
    p.spec.containers[0].ports[1].host_port = Some(8080);
    assert!(validate_all(&p).is_empty());
    p.spec.host_network = true;
    invalid(
        &p,
        "spec.containers[0].ports[0].hostPort",
        "must match containerPort",
    );
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
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            }),
            ..Default::default()
        }),
    };
    p.spec.containers[0].env = vec![
        var("GOOD_name-1.x"),
        var("1BAD"),
        var(""),
        var(".."),
        field("status.podIP"),
        field("spec.nodeNames"),
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
