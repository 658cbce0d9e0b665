use super::{MINIMAL, load_err, load_one, with_container_lines};
use crate::spec::ErrorKind;

/// Asserts that `text` is refused as unsupported at `path`.
fn refused(text: &str, path: &str) {
    let e = load_err(text);
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert_eq!(e.path, path, "{e}");
    assert!(e.message.starts_with("unsupported"), "{e}");
}

fn pod_lines(extra: &str) -> String {
    MINIMAL.replace("  containers:", &format!("{extra}  containers:"))
}

#[test]
fn a_grpc_probe_loads_and_a_grpc_hook_is_an_unknown_field() {
    let pod = load_one(&with_container_lines(
        "    livenessProbe:\n      grpc: {port: 9000, service: db}\n",
    ))
    .unwrap();
    let g = pod.spec.containers[0].liveness_probe.as_ref().unwrap();
    let g = g.grpc.as_ref().unwrap();
    assert_eq!((g.port, g.service.as_deref()), (9000, Some("db")));
    // Kubernetes' LifecycleHandler has no grpc.
    let e = load_err(&with_container_lines(
        "    lifecycle:\n      preStop: {grpc: {port: 9000}}\n",
    ));
    assert_eq!(e.kind, ErrorKind::UnknownField, "{e}");
    assert_eq!(e.path, "spec.containers[0].lifecycle.preStop.grpc", "{e}");
}

#[test]
fn a_tcp_socket_lifecycle_hook_is_refused_at_its_path() {
    refused(
        &with_container_lines("    lifecycle:\n      preStop: {tcpSocket: {port: 80}}\n"),
        "spec.containers[0].lifecycle.preStop.tcpSocket",
    );
}

#[test]
fn container_features_picolet_lacks_are_refused() {
    let cases = [
        (
            "    volumeDevices:\n    - {name: x, devicePath: /dev/x}\n",
            "volumeDevices",
        ),
        (
            "    resizePolicy:\n    - {resourceName: cpu, restartPolicy: NotRequired}\n",
            "resizePolicy",
        ),
        ("    stdin: true\n", "stdin"),
        ("    tty: true\n", "tty"),
    ];
    for (lines, field) in cases {
        refused(
            &with_container_lines(lines),
            &format!("spec.containers[0].{field}"),
        );
    }
}

#[test]
fn pod_features_picolet_lacks_are_refused() {
    let cases = [
        ("  hostPID: true\n", "spec.hostPID"),
        ("  hostIPC: true\n", "spec.hostIPC"),
        (
            "  securityContext:\n    seLinuxOptions: {level: 's0:c1'}\n",
            "spec.securityContext.seLinuxOptions",
        ),
        (
            "  securityContext:\n    seccompProfile: {type: Localhost, localhostProfile: p.json}\n",
            "spec.securityContext.seccompProfile.type",
        ),
        ("  hostUsers: false\n", "spec.hostUsers"),
        ("  os: {name: windows}\n", "spec.os"),
        ("  runtimeClassName: kata\n", "spec.runtimeClassName"),
        ("  overhead:\n    cpu: 250m\n", "spec.overhead"),
    ];
    for (lines, path) in cases {
        refused(&pod_lines(lines), path);
    }
}

#[test]
fn volume_kinds_picolet_lacks_are_refused() {
    for (kind, body) in [
        ("persistentVolumeClaim", "{claimName: c}"),
        ("ephemeral", "{volumeClaimTemplate: {}}"),
        ("nfs", "{server: s, path: /}"),
    ] {
        let text = format!("{MINIMAL}  volumes:\n  - name: v\n    {kind}: {body}\n");
        refused(&text, &format!("spec.volumes[0].{kind}"));
    }
}

#[test]
fn probe_features_picolet_lacks_are_refused() {
    refused(
        &with_container_lines(
            "    livenessProbe:\n      exec: {command: [true]}\n      terminationGracePeriodSeconds: 5\n",
        ),
        "spec.containers[0].livenessProbe.terminationGracePeriodSeconds",
    );
}

#[test]
fn security_context_features_picolet_lacks_are_refused() {
    let cases = [
        ("seccompProfile: {type: Localhost}", "seccompProfile.type"),
        ("seLinuxOptions: {level: 's0:c1'}", "seLinuxOptions"),
        ("procMount: Unmasked", "procMount"),
        ("appArmorProfile: {type: RuntimeDefault}", "appArmorProfile"),
    ];
    for (line, field) in cases {
        refused(
            &with_container_lines(&format!("    securityContext:\n      {line}\n")),
            &format!("spec.containers[0].securityContext.{field}"),
        );
    }
}

#[test]
fn env_from_a_file_is_refused() {
    refused(
        &with_container_lines(
            "    env:\n    - name: A\n      valueFrom:\n        fileKeyRef: {volumeName: v, path: p, key: k}\n",
        ),
        "spec.containers[0].env[0].valueFrom.fileKeyRef",
    );
}

#[test]
fn projected_service_account_tokens_are_refused() {
    let text = format!(
        "{MINIMAL}    volumeMounts:\n    - {{name: v, mountPath: /v}}\n  volumes:\n  - name: v\n    projected:\n      sources:\n      - serviceAccountToken: {{path: token}}\n"
    );
    refused(
        &text,
        "spec.volumes[0].projected.sources[0].serviceAccountToken",
    );
}

#[test]
fn resources_other_than_cpu_and_memory_are_refused() {
    let e = load_err(&with_container_lines(
        "    resources:\n      limits:\n        nvidia.com/gpu: 1\n",
    ));
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert_eq!(e.path, "spec.containers[0].resources.limits.nvidia.com/gpu");
    refused(
        &with_container_lines("    resources:\n      requests: {hugepages-2Mi: 1Gi}\n"),
        "spec.containers[0].resources.requests.hugepages-2Mi",
    );
}

#[test]
fn ephemeral_storage_is_accepted_and_checked_like_cpu_and_memory() {
    let pod = load_one(&with_container_lines(
        "    resources:\n      limits: {ephemeral-storage: 10Mi}\n      requests: {ephemeral-storage: 1Mi}\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let r = &pod.spec.containers[0].resources;
    assert_eq!(r.limit("ephemeral-storage").unwrap().value(), 10 << 20);
    assert_eq!(r.request("ephemeral-storage").unwrap().value(), 1 << 20);
    let e = load_err(&with_container_lines(
        "    resources:\n      limits: {ephemeral-storage: 1Mi}\n      requests: {ephemeral-storage: 2Mi}\n",
    ));
    assert_eq!(
        e.path,
        "spec.containers[0].resources.requests.ephemeral-storage"
    );
    let e = load_err(&with_container_lines(
        "    resources:\n      limits: {ephemeral-storage: -1}\n",
    ));
    assert_eq!(
        e.path,
        "spec.containers[0].resources.limits.ephemeral-storage"
    );
}

#[test]
fn mount_features_picolet_lacks_are_refused() {
    let text = format!(
        "{MINIMAL}    volumeMounts:\n    - {{name: v, mountPath: /v, mountPropagation: Bidirectional}}\n  volumes:\n  - name: v\n    emptyDir: {{}}\n"
    );
    refused(&text, "spec.containers[0].volumeMounts[0].mountPropagation");
}

#[test]
fn unknown_fields_are_named_with_a_hint() {
    let e = load_err(&with_container_lines("    imagepullpolicy: Always\n"));
    assert_eq!(e.kind, ErrorKind::UnknownField);
    assert_eq!(e.path, "spec.containers[0].imagepullpolicy");
    assert_eq!(
        e.message,
        r#"unknown field (did you mean "imagePullPolicy"?)"#
    );
    let e = load_err(&MINIMAL.replace("metadata:", "extra: 1\nmetadata:"));
    assert_eq!(
        (e.kind, e.path.as_str()),
        (ErrorKind::UnknownField, "extra")
    );
    assert_eq!(e.message, "unknown field");
}

#[test]
fn no_op_values_of_unsupported_fields_are_ignored() {
    let pod = pod_lines(
        "  securityContext: {}\n  hostPID: false\n  hostIPC: false\n  hostUsers: true\n  os: {name: linux}\n  ephemeralContainers: []\n",
    );
    let text = format!(
        "{pod}    stdin: false\n    tty: false\n    envFrom: []\n    lifecycle: {{}}\n    securityContext:\n      procMount: Default\n      seccompProfile: {{type: Unconfined}}\n      windowsOptions: {{}}\n"
    );
    load_one(&text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn informational_fields_are_ignored() {
    let text = MINIMAL
        .replace(
            "  name: p\n",
            "  name: p\n  generateName: p-\n  resourceVersion: '1'\n  generation: 2\n  selfLink: /x\n  finalizers: [a]\n  deletionTimestamp: '2024-01-01T00:00:00Z'\n  deletionGracePeriodSeconds: 30\n",
        )
        .replace(
            "  containers:",
            "  dnsPolicy: ClusterFirst\n  schedulerName: s\n  priorityClassName: system-cluster-critical\n  automountServiceAccountToken: false\n  imagePullSecrets: [{name: r}]\n  containers:",
        );
    let text = format!(
        "{text}    terminationMessagePath: /dev/termination-log\n    terminationMessagePolicy: FallbackToLogsOnError\nstatus:\n  phase: Pending\n"
    );
    load_one(&text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn generate_name_without_name_is_refused() {
    let text = MINIMAL.replace("  name: p\n", "  generateName: p-\n");
    refused(&text, "metadata.generateName");
}

#[test]
fn service_account_mount_alone_is_dropped_but_user_volumes_stay() {
    // An old-style token secret volume mounted at the service-account path.
    let text = format!(
        "{MINIMAL}    volumeMounts:\n    - {{name: default-token-abc, mountPath: /var/run/secrets/kubernetes.io/serviceaccount}}\n  volumes:\n  - name: default-token-abc\n    secret: {{secretName: default-token-abc}}\n"
    );
    let pod = load_one(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(pod.spec.volumes.is_empty());
    assert!(pod.spec.containers[0].volume_mounts.is_empty());
    // A secret volume mounted elsewhere stays.
    let text = text.replace(
        "/var/run/secrets/kubernetes.io/serviceaccount",
        "/etc/secret",
    );
    let pod = load_one(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pod.spec.volumes.len(), 1);
}

/// Asserts that `text` is refused as invalid at `path`.
fn invalid(text: &str, path: &str) {
    let e = load_err(text);
    assert_eq!(e.kind, ErrorKind::Invalid, "{e}");
    assert_eq!(e.path, path, "{e}");
}

#[test]
fn dns_policy_and_dns_config_are_validated_as_the_api_server_does() {
    for policy in ["ClusterFirst", "ClusterFirstWithHostNet", "Default"] {
        let pod = load_one(&pod_lines(&format!("  dnsPolicy: {policy}\n")))
            .unwrap_or_else(|e| panic!("{policy}: {e}"));
        assert_eq!(pod.spec.dns_policy.as_deref(), Some(policy));
    }
    let text = pod_lines("  dnsPolicy: Cluster\n");
    invalid(&text, "spec.dnsPolicy");
    assert!(load_err(&text).message.contains("supported values"));
    // None needs dnsConfig with a nameserver.
    invalid(&pod_lines("  dnsPolicy: None\n"), "spec.dnsConfig");
    let none = |cfg: &str| pod_lines(&format!("  dnsPolicy: None\n  dnsConfig:\n{cfg}"));
    invalid(
        &none("    searches: [a.example]\n"),
        "spec.dnsConfig.nameservers",
    );
    let pod = load_one(&none(
        "    nameservers: [1.1.1.1]\n    searches: [a.example, b.example.]\n    options:\n    - {name: ndots, value: '2'}\n    - name: edns0\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let c = pod.spec.dns_config.unwrap();
    assert_eq!(c.nameservers, ["1.1.1.1"]);
    assert_eq!(c.options[0].value.as_deref(), Some("2"));
    assert_eq!(c.options[1].value, None);
    // The limits, each naming its field.
    invalid(
        &none("    nameservers: [1.1.1.1, 1.1.1.2, 1.1.1.3, 1.1.1.4]\n"),
        "spec.dnsConfig.nameservers",
    );
    invalid(
        &none("    nameservers: [one]\n"),
        "spec.dnsConfig.nameservers[0]",
    );
    let many: Vec<String> = (0..33).map(|i| format!("d{i}.example")).collect();
    let text = none(&format!(
        "    nameservers: [1.1.1.1]\n    searches: [{}]\n",
        many.join(", ")
    ));
    invalid(&text, "spec.dnsConfig.searches");
    assert!(load_err(&text).message.contains("32 search paths"));
    let long: Vec<String> = (0..10)
        .map(|i| format!("{}.example", "a".repeat(200 + i)))
        .collect();
    let text = none(&format!(
        "    nameservers: [1.1.1.1]\n    searches: [{}]\n",
        long.join(", ")
    ));
    assert!(load_err(&text).message.contains("2048 characters"));
    invalid(
        &none("    nameservers: [1.1.1.1]\n    searches: [Bad_Name]\n"),
        "spec.dnsConfig.searches[0]",
    );
    invalid(
        &none("    nameservers: [1.1.1.1]\n    options: [{name: ''}]\n"),
        "spec.dnsConfig.options[0].name",
    );
    let e = load_err(&none(
        "    nameservers: [1.1.1.1]\n    options: [{value: '1'}]\n",
    ));
    assert!(
        e.to_string().contains("spec.dnsConfig.options[0]") && e.to_string().contains("name"),
        "{e}"
    );
    // valueFrom is an env var's, not an option's.
    let e = load_err(&none(
        "    nameservers: [1.1.1.1]\n    options: [{name: a, valueFrom: {}}]\n",
    ));
    assert_eq!(e.path, "spec.dnsConfig.options[0].valueFrom", "{e}");
    // dnsConfig with another policy is appended to the host's resolver.
    let pod = load_one(&pod_lines("  dnsConfig:\n    searches: [a.example]\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pod.spec.dns_config.unwrap().searches, ["a.example"]);
}

#[test]
fn pod_security_context_is_checked_field_by_field() {
    let ok = pod_lines(
        "  securityContext:\n    runAsUser: 1000\n    runAsGroup: 3000\n    fsGroup: 2000\n    \
         supplementalGroups: [4000]\n    fsGroupChangePolicy: OnRootMismatch\n    \
         seccompProfile: {type: RuntimeDefault}\n    \
         sysctls: [{name: net.ipv4.ping_group_range, value: '0 2147483647'}, {name: kernel/shm_rmid_forced, value: '1'}]\n",
    );
    let p = load_one(&ok).unwrap();
    let sc = p.spec.security_context.unwrap();
    assert_eq!((sc.run_as_user, sc.fs_group), (Some(1000), Some(2000)));
    assert_eq!(sc.sysctls.len(), 2);
    for (lines, path, message) in [
        (
            "    sysctls: [{name: kernel.msgmax, value: '1'}]\n",
            "spec.securityContext.sysctls[0].name",
            "forbidden sysctl: \"kernel.msgmax\" not allowlisted",
        ),
        (
            "    fsGroup: -1\n",
            "spec.securityContext.fsGroup",
            "-1 must be between 0 and 2147483647",
        ),
        (
            "    supplementalGroups: [1, 4294967296]\n",
            "spec.securityContext.supplementalGroups[1]",
            "must be between",
        ),
        (
            "    fsGroupChangePolicy: Sometimes\n",
            "spec.securityContext.fsGroupChangePolicy",
            "Unsupported value: \"Sometimes\"",
        ),
        (
            "    seccompProfile: {type: Chaos}\n",
            "spec.securityContext.seccompProfile.type",
            "Unsupported value: \"Chaos\"",
        ),
        (
            "    runAsNonRoot: true\n    runAsUser: 0\n",
            "spec.securityContext.runAsNonRoot",
            "breaks runAsNonRoot",
        ),
    ] {
        let e = load_err(&pod_lines(&format!("  securityContext:\n{lines}")));
        assert_eq!(e.path, path, "{e}");
        assert!(e.message.contains(message), "{e}");
    }
    // net.* sysctls would change the host's network with hostNetwork.
    let e = load_err(&pod_lines(
        "  hostNetwork: true\n  securityContext:\n    sysctls: [{name: net.ipv4.tcp_syncookies, value: '1'}]\n",
    ));
    assert_eq!(e.path, "spec.securityContext.sysctls[0].name", "{e}");
    assert!(e.message.contains("not allowed with host net"), "{e}");
}
