//! Per-container rules: names, image, env, ports, resources, probes,
//! security context and volume mounts.

use super::{Errors, clean_absolute};
use crate::spec::caps;
use crate::spec::defaults::{resolve_port, signal_number};
use crate::spec::env::{FieldPath, expanded_len};
use crate::spec::error::{ErrorKind, SpecError};
use crate::spec::names;
use crate::spec::schema::RESOURCE_NAMES;
use crate::spec::types::*;
use crate::vecmap::VecMap;
use crate::vecmap::VecSet;
use std::collections::HashMap;

/// A container may not be named this: each pod's shim runs in the leaf
/// cgroup `<pod-cgroup>/shim`, next to one leaf per container
/// (docs/design-deviations.md, item 4). A container of that name would
/// share the shim's cgroup and run without the container's limits.
pub const RESERVED_CONTAINER_NAME: &str = "shim";

/// The most bytes a container's `command`, `args` and `env` may take once
/// `$(VAR)` references are expanded, counted as execve(2) counts them: each
/// string plus its NUL, `NAME=value` for a variable. Linux refuses a single
/// argument or variable over `MAX_ARG_STRLEN` (128 KiB) and the whole
/// argv + envp over `ARG_MAX` (a quarter of the stack limit: 2 MiB with
/// the usual 8 MiB); 128 KiB for the whole lot is far above what real pods
/// use (a few KiB) and keeps every `Start` request to the shim, and the
/// state file that keeps the spec, small.
pub const MAX_ARGV_ENV_BYTES: usize = 128 * 1024;

/// Upper bounds of a `fieldRef` value the node fills in at start.
const MAX_NODE_NAME: usize = 253;
const MAX_IP_TEXT: usize = 45;
const UID_LEN: usize = 36;

/// Checks init and app containers, and rules that span them (unique names,
/// unique host ports).
pub(super) fn containers(pod: &Pod, volumes: &VecSet<String>, errs: &mut Errors) {
    let mut names_seen = VecSet::new();
    let mut host_ports: VecMap<(i32, &str), String> = VecMap::new();
    let lists = [
        ("spec.initContainers", &pod.spec.init_containers, true),
        ("spec.containers", &pod.spec.containers, false),
    ];
    for (list, cs, init) in lists {
        for (i, c) in cs.iter().enumerate() {
            let path = format!("{list}[{i}]");
            if !c.name.is_empty() && !names_seen.insert(c.name.clone()) {
                errs.add(
                    format!("{path}.name"),
                    format!("duplicate container name {:?}", c.name),
                );
            }
            container(pod, c, &path, init, volumes, errs);
            for (j, p) in c.ports.iter().enumerate() {
                let hp = p.host_port.unwrap_or(0);
                if hp == 0 {
                    continue;
                }
                let here = format!("{path}.ports[{j}].hostPort");
                let proto = protocol_name(p.protocol);
                if let Some(first) = host_ports.get(&(hp, proto)) {
                    errs.add(
                        &here,
                        format!("duplicate hostPort {hp}/{proto}, also used at {first}"),
                    );
                } else {
                    host_ports.insert((hp, proto), here);
                }
            }
        }
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

fn container(
    pod: &Pod,
    c: &Container,
    path: &str,
    init: bool,
    volumes: &VecSet<String>,
    errs: &mut Errors,
) {
    if c.name.is_empty() {
        errs.add(format!("{path}.name"), "must not be empty");
    } else if c.name == RESERVED_CONTAINER_NAME {
        errs.add(
            format!("{path}.name"),
            format!(
                "{RESERVED_CONTAINER_NAME:?} is reserved: the pod's shim runs in the cgroup \
                 <pod>/{RESERVED_CONTAINER_NAME}, so a container of that name would run without its limits"
            ),
        );
    } else {
        errs.check(format!("{path}.name"), names::dns1123_label(&c.name));
    }
    if c.image.trim().is_empty() {
        errs.add(format!("{path}.image"), "must not be empty");
    } else if c.image.trim() != c.image {
        errs.add(
            format!("{path}.image"),
            "must not have leading or trailing whitespace",
        );
    }
    if let Some(w) = c.working_dir.as_deref().filter(|w| !w.is_empty()) {
        if !w.starts_with('/') {
            errs.add(
                format!("{path}.workingDir"),
                format!("{w:?} must be an absolute path"),
            );
        }
    }
    let t = c.termination_message_path();
    if !t.starts_with('/') || t.split('/').any(|s| s == "..") || t.trim_end_matches('/').is_empty()
    {
        errs.add(
            format!("{path}.terminationMessagePath"),
            format!("{t:?} must be an absolute path to a file, without \"..\""),
        );
    }
    env(pod, c, &c.env, path, errs);
    env_from(c, path, errs);
    argv_env_size(pod, c, path, errs);
    ports(pod, c, path, errs);
    resources(&c.resources, &format!("{path}.resources"), errs);
    let probes = [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ];
    for (field, probe) in probes {
        let Some(p) = probe else { continue };
        let ppath = format!("{path}.{field}");
        if init && !c.is_sidecar() {
            errs.add(ppath, "must not be set for init containers");
        } else {
            self::probe(c, p, &ppath, field != "readinessProbe", errs);
        }
    }
    if let Some(sc) = &c.security_context {
        security_context(sc, &format!("{path}.securityContext"), errs);
    }
    lifecycle(pod, c, path, init, errs);
    mounts(c, path, volumes, errs);
}

/// `command` + `args` + `env`, expanded, within [`MAX_ARGV_ENV_BYTES`].
/// The error names the field that holds the most bytes.
fn argv_env_size(pod: &Pod, c: &Container, path: &str, errs: &mut Errors) {
    let strings = |v: &Option<Vec<String>>| v.iter().flatten().map(|s| s.len() + 1).sum::<usize>();
    // As written first: cheap, and it bounds the work below.
    let written_env: usize = c
        .env
        .iter()
        .map(|v| v.name.len() + 2 + v.value.as_deref().map_or(0, str::len))
        .sum();
    let mut parts = [
        ("command", strings(&c.command)),
        ("args", strings(&c.args)),
        ("env", written_env),
    ];
    let written: usize = parts.iter().map(|p| p.1).sum();
    if written <= MAX_ARGV_ENV_BYTES {
        // `$(VAR)` expansion can multiply the size: count it (lengths
        // only, variable by variable as the agent expands them).
        let mut len_of: HashMap<&str, usize> = HashMap::new();
        let mut env_total: usize = 0;
        for v in &c.env {
            let value = match &v.value_from {
                // ConfigMap and Secret values are counted when the
                // container starts (the agent refuses an oversized env).
                Some(from) => from
                    .field_ref
                    .as_ref()
                    .map_or(20, |fr| field_ref_len(pod, &fr.field_path)),
                None => expanded_len(v.value.as_deref().unwrap_or(""), |n| len_of.get(n).copied()),
            };
            len_of.insert(&v.name, value);
            env_total = env_total
                .saturating_add(v.name.len() + 2)
                .saturating_add(value);
        }
        let expanded = |v: &Option<Vec<String>>| {
            v.iter().flatten().fold(0usize, |n, s| {
                n.saturating_add(expanded_len(s, |name| len_of.get(name).copied()) + 1)
            })
        };
        parts = [
            ("command", expanded(&c.command)),
            ("args", expanded(&c.args)),
            ("env", env_total),
        ];
    }
    let total = parts.iter().fold(0usize, |n, p| n.saturating_add(p.1));
    if total > MAX_ARGV_ENV_BYTES {
        let (field, _) = parts
            .iter()
            .max_by_key(|p| p.1)
            .copied()
            .unwrap_or(("command", 0));
        let split = parts
            .iter()
            .map(|(f, n)| format!("{f} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        errs.add(
            format!("{path}.{field}"),
            format!(
                "too long: command, args and env take {total} bytes ({split}) once $(VAR) \
                 references are expanded, must be no more than {MAX_ARGV_ENV_BYTES}"
            ),
        );
    }
}

/// The longest value a `fieldRef` can have for `pod` on any node.
fn field_ref_len(pod: &Pod, field_path: &str) -> usize {
    let meta = &pod.metadata;
    match FieldPath::parse(field_path) {
        Some(FieldPath::Name) => meta.name.len(),
        Some(FieldPath::Namespace) => meta.namespace_or_default().len(),
        Some(FieldPath::Uid) => meta.uid.len().max(UID_LEN),
        Some(FieldPath::NodeName) | Some(FieldPath::ServiceAccountName) => MAX_NODE_NAME,
        Some(FieldPath::PodIp) | Some(FieldPath::HostIp) => MAX_IP_TEXT,
        Some(FieldPath::Label(k)) => meta.labels.get(&k).map_or(0, String::len),
        Some(FieldPath::Annotation(k)) => meta.annotations.get(&k).map_or(0, String::len),
        None => 0,
    }
}

fn env_from(c: &Container, path: &str, errs: &mut Errors) {
    for (i, e) in c.env_from.iter().enumerate() {
        let p = format!("{path}.envFrom[{i}]");
        if !e.prefix.is_empty() {
            errs.check(format!("{p}.prefix"), names::env_var_name(&e.prefix));
        }
        match (&e.config_map_ref, &e.secret_ref) {
            (Some(_), Some(_)) => {
                errs.add(&p, "may not have more than one field specified at a time")
            }
            (None, None) => errs.add(&p, "must specify one of: `configMapRef` or `secretRef`"),
            (Some(r), None) => errs.check(format!("{p}.configMapRef.name"), object_name(&r.name)),
            (None, Some(r)) => errs.check(format!("{p}.secretRef.name"), object_name(&r.name)),
        }
    }
}

/// A ConfigMap's or Secret's name: a DNS-1123 subdomain.
pub(super) fn object_name(n: &str) -> Result<(), String> {
    if n.is_empty() {
        return Err("must not be empty".into());
    }
    names::dns1123_subdomain(n)
}

fn env(pod: &Pod, c: &Container, vars: &[EnvVar], path: &str, errs: &mut Errors) {
    for (i, v) in vars.iter().enumerate() {
        let p = format!("{path}.env[{i}]");
        errs.check(format!("{p}.name"), names::env_var_name(&v.name));
        let Some(from) = &v.value_from else { continue };
        if v.value.as_deref().is_some_and(|s| !s.is_empty()) {
            errs.add(
                format!("{p}.valueFrom"),
                "may not be specified when `value` is not empty",
            );
        }
        let set = [
            from.field_ref.is_some(),
            from.config_map_key_ref.is_some(),
            from.secret_key_ref.is_some(),
            from.resource_field_ref.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set != 1 {
            errs.add(
                format!("{p}.valueFrom"),
                "must specify exactly one of: `fieldRef`, `resourceFieldRef`, \
                 `configMapKeyRef` or `secretKeyRef`",
            );
            continue;
        }
        for (field, sel) in [
            ("configMapKeyRef", &from.config_map_key_ref),
            ("secretKeyRef", &from.secret_key_ref),
        ] {
            let Some(sel) = sel else { continue };
            errs.check(
                format!("{p}.valueFrom.{field}.name"),
                object_name(&sel.name),
            );
            errs.check(
                format!("{p}.valueFrom.{field}.key"),
                crate::spec::objects::config_key(&sel.key),
            );
        }
        if let Some(rf) = &from.resource_field_ref {
            let rp = format!("{p}.valueFrom.resourceFieldRef");
            resource_field_ref(pod, Some(c), rf, &rp, errs);
        }
        let Some(fr) = &from.field_ref else { continue };
        if FieldPath::parse(&fr.field_path).is_none() {
            errs.add(
                format!("{p}.valueFrom.fieldRef.fieldPath"),
                format!(
                    "{:?} is not supported: use metadata.name, metadata.namespace, metadata.uid, \
                     metadata.labels['…'], metadata.annotations['…'], spec.nodeName, \
                     spec.serviceAccountName, status.podIP or status.hostIP",
                    fr.field_path
                ),
            );
        }
        if let Some(v) = fr
            .api_version
            .as_deref()
            .filter(|v| !v.is_empty() && *v != "v1")
        {
            errs.add(
                format!("{p}.valueFrom.fieldRef.apiVersion"),
                format!("{v:?} is not supported: must be v1"),
            );
        }
    }
}

fn ports(pod: &Pod, c: &Container, path: &str, errs: &mut Errors) {
    let mut seen = VecSet::new();
    for (i, p) in c.ports.iter().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        if !(1..=65535).contains(&p.container_port) {
            errs.add(
                format!("{pp}.containerPort"),
                format!("{} must be between 1 and 65535", p.container_port),
            );
        }
        if let Some(hp) = p.host_port {
            if !(0..=65535).contains(&hp) {
                errs.add(
                    format!("{pp}.hostPort"),
                    format!("{hp} must be between 0 and 65535"),
                );
            } else if pod.spec.host_network && hp != 0 && hp != p.container_port {
                errs.add(
                    format!("{pp}.hostPort"),
                    "must match containerPort when hostNetwork is true",
                );
            }
        }
        if let Some(ip) = p.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
            if ip.parse::<std::net::Ipv4Addr>().is_err() {
                errs.add(
                    format!("{pp}.hostIP"),
                    format!("{ip:?} must be a valid IPv4 address"),
                );
            } else if p.host_port.unwrap_or(0) == 0 {
                errs.add(format!("{pp}.hostIP"), "requires a hostPort");
            }
        }
        if let Some(name) = &p.name {
            errs.check(format!("{pp}.name"), names::iana_svc_name(name));
            if !seen.insert(name.as_str()) {
                errs.add(
                    format!("{pp}.name"),
                    format!("duplicate port name {name:?}"),
                );
            }
        }
    }
}

fn resources(r: &Resources, path: &str, errs: &mut Errors) {
    let mut parsed = VecMap::new();
    for (field, list) in [("requests", &r.requests), ("limits", &r.limits)] {
        for (key, q) in list {
            let p = format!("{path}.{field}.{key}");
            if !RESOURCE_NAMES.contains(&key.as_str()) {
                errs.push(SpecError::new(
                    ErrorKind::Unsupported,
                    p,
                    format!("unsupported resource {key:?}: picolet enforces cpu, memory and ephemeral-storage only"),
                ));
                continue;
            }
            match q.parsed() {
                Err(e) => errs.push(e.under(&p)),
                Ok(v) if v.is_negative() => {
                    errs.add(p, format!("{:?} must be greater than or equal to 0", q.0))
                }
                Ok(v) => {
                    parsed.insert((field, key.as_str()), v);
                }
            }
        }
    }
    for key in RESOURCE_NAMES {
        if let (Some(req), Some(lim)) =
            (parsed.get(&("requests", key)), parsed.get(&("limits", key)))
        {
            if req > lim {
                errs.add(
                    format!("{path}.requests.{key}"),
                    format!(
                        "{:?} must be less than or equal to {key} limit {:?}",
                        r.requests[key].0, r.limits[key].0
                    ),
                );
            }
        }
    }
}

fn probe(c: &Container, p: &Probe, path: &str, success_must_be_one: bool, errs: &mut Errors) {
    match p.handler_count() {
        0 => errs.add(
            path,
            "must specify a handler: exec, tcpSocket, httpGet or grpc",
        ),
        1 => {}
        _ => errs.add(path, "may not specify more than one handler"),
    }
    if let Some(e) = &p.exec {
        if e.command.is_empty() {
            errs.add(format!("{path}.exec.command"), "must not be empty");
        }
    }
    if let Some(t) = &p.tcp_socket {
        if let Err(e) = resolve_port(c, &t.port) {
            errs.push(e.under(&format!("{path}.tcpSocket.port")));
        }
    }
    if let Some(g) = &p.grpc {
        if !(1..=65535).contains(&g.port) {
            errs.add(
                format!("{path}.grpc.port"),
                format!("{} must be between 1 and 65535, inclusive", g.port),
            );
        }
    }
    if let Some(h) = &p.http_get {
        let hp = format!("{path}.httpGet");
        if let Err(e) = resolve_port(c, &h.port) {
            errs.push(e.under(&format!("{hp}.port")));
        }
        match h.scheme.as_deref() {
            None | Some("") | Some("HTTP") | Some("HTTPS") => {}
            Some(s) => errs.add(
                format!("{hp}.scheme"),
                format!("{s:?} must be HTTP or HTTPS"),
            ),
        }
        for (i, hdr) in h.http_headers.iter().enumerate() {
            errs.check(
                format!("{hp}.httpHeaders[{i}].name"),
                names::http_header_name(&hdr.name),
            );
        }
    }
    let at_least = |errs: &mut Errors, field: &str, v: Option<i32>, min: i32| {
        if let Some(v) = v {
            if v < min {
                errs.add(
                    format!("{path}.{field}"),
                    format!("{v} must be greater than or equal to {min}"),
                );
            }
        }
    };
    at_least(
        errs,
        "initialDelaySeconds",
        Some(p.initial_delay_seconds),
        0,
    );
    at_least(errs, "periodSeconds", p.period_seconds, 1);
    at_least(errs, "timeoutSeconds", p.timeout_seconds, 1);
    at_least(errs, "successThreshold", p.success_threshold, 1);
    at_least(errs, "failureThreshold", p.failure_threshold, 1);
    if success_must_be_one {
        if let Some(s) = p.success_threshold.filter(|&s| s != 1) {
            errs.add(format!("{path}.successThreshold"), format!("{s} must be 1"));
        }
    }
}

/// A user or group id: 0 to 2^31 − 1, as Kubernetes.
fn id(errs: &mut Errors, path: String, id: Option<i64>) {
    if let Some(id) = id.filter(|i| !(0..=i64::from(i32::MAX)).contains(i)) {
        errs.add(path, format!("{id} must be between 0 and 2147483647"));
    }
}

/// `runAsUser`, `runAsGroup`, `runAsNonRoot` and `seccompProfile`, the
/// fields pod and container contexts share.
fn user_and_seccomp(
    user: Option<i64>,
    group: Option<i64>,
    non_root: Option<bool>,
    seccomp: Option<&VecMap<String, String>>,
    path: &str,
    errs: &mut Errors,
) {
    id(errs, format!("{path}.runAsUser"), user);
    id(errs, format!("{path}.runAsGroup"), group);
    if non_root == Some(true) && user == Some(0) {
        errs.add(
            format!("{path}.runAsNonRoot"),
            "runAsUser 0 (root) breaks runAsNonRoot: true",
        );
    }
    let Some(sp) = seccomp else { return };
    let at = format!("{path}.seccompProfile");
    let kind = sp.get("type").map_or("", String::as_str);
    match kind {
        "RuntimeDefault" | "Unconfined" => {}
        "" => errs.add(format!("{at}.type"), "Required value"),
        "Localhost" => errs.push(SpecError::new(
            ErrorKind::Unsupported,
            format!("{at}.type"),
            "unsupported field: Localhost seccomp profiles are not supported (only RuntimeDefault and Unconfined)",
        )),
        k => errs.add(
            format!("{at}.type"),
            format!("Unsupported value: {k:?}: supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\""),
        ),
    }
    if sp.contains_key("localhostProfile") && kind != "Localhost" {
        errs.add(
            format!("{at}.localhostProfile"),
            "can only be set for type Localhost",
        );
    }
}

/// The kubelet's safe sysctls: namespaced (per pod), isolated from other
/// pods and the host (`pkg/kubelet/sysctl/safe_sysctls.go`).
pub const SAFE_SYSCTLS: [&str; 12] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// A sysctl name in its dotted form (`net/ipv4/x` is also accepted, as by
/// the kubelet).
pub fn sysctl_name(name: &str) -> String {
    if name.contains('/') {
        name.replace('/', ".")
    } else {
        name.to_string()
    }
}

/// The pod-level `securityContext`.
pub(super) fn pod_security_context(pod: &Pod, errs: &mut Errors) {
    let Some(sc) = &pod.spec.security_context else {
        return;
    };
    let path = "spec.securityContext";
    user_and_seccomp(
        sc.run_as_user,
        sc.run_as_group,
        sc.run_as_non_root,
        sc.seccomp_profile.as_ref(),
        path,
        errs,
    );
    for (i, g) in sc.supplemental_groups.iter().enumerate() {
        id(errs, format!("{path}.supplementalGroups[{i}]"), Some(*g));
    }
    id(errs, format!("{path}.fsGroup"), sc.fs_group);
    for (field, value, allowed) in [
        (
            "supplementalGroupsPolicy",
            &sc.supplemental_groups_policy,
            ["Merge", "Strict"],
        ),
        (
            "fsGroupChangePolicy",
            &sc.fs_group_change_policy,
            ["Always", "OnRootMismatch"],
        ),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !allowed.contains(v)) {
            errs.add(
                format!("{path}.{field}"),
                format!(
                    "Unsupported value: {v:?}: supported values: {:?}, {:?}",
                    allowed[0], allowed[1]
                ),
            );
        }
    }
    let mut seen = VecSet::new();
    for (i, s) in sc.sysctls.iter().enumerate() {
        let at = format!("{path}.sysctls[{i}].name");
        let name = sysctl_name(&s.name);
        if !SAFE_SYSCTLS.contains(&name.as_str()) {
            errs.add(
                at,
                format!(
                    "forbidden sysctl: {:?} not allowlisted (only the kubelet's safe, namespaced sysctls are allowed)",
                    s.name
                ),
            );
        } else if pod.spec.host_network && name.starts_with("net.") {
            errs.add(
                at,
                format!(
                    "forbidden sysctl: {:?} not allowed with host net enabled (hostNetwork: it would change the host's)",
                    s.name
                ),
            );
        } else if !seen.insert(name) {
            errs.add(at, format!("duplicate sysctl {:?}", s.name));
        }
    }
}

fn security_context(sc: &SecurityContext, path: &str, errs: &mut Errors) {
    user_and_seccomp(
        sc.run_as_user,
        sc.run_as_group,
        sc.run_as_non_root,
        sc.seccomp_profile.as_ref(),
        path,
        errs,
    );
    let no_escalation = sc.allow_privilege_escalation == Some(false);
    if no_escalation && sc.privileged == Some(true) {
        errs.add(
            format!("{path}.allowPrivilegeEscalation"),
            "cannot be false when privileged is true",
        );
    }
    let Some(cp) = &sc.capabilities else { return };
    for (field, list) in [("add", &cp.add), ("drop", &cp.drop)] {
        for (i, name) in list.iter().enumerate() {
            if !caps::is_all(name) && caps::capability_number(name).is_none() {
                errs.add(
                    format!("{path}.capabilities.{field}[{i}]"),
                    format!("unknown capability {name:?}"),
                );
            }
        }
    }
    let adds_sys_admin = cp
        .add
        .iter()
        .any(|c| caps::capability_number(c) == Some(21));
    if no_escalation && adds_sys_admin {
        errs.add(
            format!("{path}.allowPrivilegeEscalation"),
            "cannot be false when adding CAP_SYS_ADMIN",
        );
    }
}

/// A `resourceFieldRef` (env: `c` is the container, `containerName` may be
/// empty; volumes: `None`, `containerName` required).
pub(super) fn resource_field_ref(
    pod: &Pod,
    c: Option<&Container>,
    rf: &ResourceFieldSelector,
    path: &str,
    errs: &mut Errors,
) {
    if rf.container_name.is_empty() {
        if c.is_none() {
            errs.add(format!("{path}.containerName"), "must not be empty");
        }
    } else if pod.container(&rf.container_name).is_none() {
        errs.add(
            format!("{path}.containerName"),
            format!("container {:?} not found in the pod", rf.container_name),
        );
    }
    errs.check(
        format!("{path}.resource"),
        crate::spec::refs::check_resource_field(&rf.resource, None),
    );
    if let Some(d) = &rf.divisor {
        if crate::spec::refs::RESOURCE_FIELDS.contains(&rf.resource.as_str()) {
            errs.check(
                format!("{path}.divisor"),
                crate::spec::refs::check_resource_field(&rf.resource, Some(d)),
            );
        }
    }
}

fn mounts(c: &Container, path: &str, volumes: &VecSet<String>, errs: &mut Errors) {
    let mut seen = VecSet::new();
    for (i, m) in c.volume_mounts.iter().enumerate() {
        let mp = format!("{path}.volumeMounts[{i}]");
        if !volumes.contains(&m.name) {
            errs.add(
                format!("{mp}.name"),
                format!("volume {:?} not found in spec.volumes", m.name),
            );
        }
        errs.check(format!("{mp}.mountPath"), clean_absolute(&m.mount_path));
        if !m.sub_path.is_empty() {
            errs.check(
                format!("{mp}.subPath"),
                crate::spec::refs::local_descending_path(&m.sub_path),
            );
            if !m.sub_path_expr.is_empty() {
                errs.add(
                    format!("{mp}.subPathExpr"),
                    "subPathExpr and subPath are mutually exclusive",
                );
            }
        }
        if !m.sub_path_expr.is_empty() && m.sub_path_expr.starts_with('/') {
            errs.add(
                format!("{mp}.subPathExpr"),
                format!("{:?} must be a relative path", m.sub_path_expr),
            );
        }
        if !seen.insert(m.mount_path.trim_end_matches('/')) {
            errs.add(
                format!("{mp}.mountPath"),
                format!("{:?} must be unique", m.mount_path),
            );
        }
    }
}

/// `restartPolicy` (sidecars) and `lifecycle`: hooks and `stopSignal`.
fn lifecycle(pod: &Pod, c: &Container, path: &str, init: bool, errs: &mut Errors) {
    match c.restart_policy {
        None | Some(RestartPolicy::Always) if init => {}
        None => {}
        Some(_) if !init => errs.add(
            format!("{path}.restartPolicy"),
            "may not be set for non-init containers",
        ),
        Some(p) => errs.add(
            format!("{path}.restartPolicy"),
            format!("unsupported value \"{p:?}\": supported values: \"Always\""),
        ),
    }
    let Some(l) = &c.lifecycle else { return };
    if init && !c.is_sidecar() {
        errs.add(
            format!("{path}.lifecycle"),
            "must not be set for init containers",
        );
        return;
    }
    let grace = pod.spec.termination_grace_period_seconds.unwrap_or(30);
    for (field, h) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
        let Some(h) = h else { continue };
        let hp = format!("{path}.lifecycle.{field}");
        let n = usize::from(h.exec.is_some())
            + usize::from(h.http_get.is_some())
            + usize::from(h.sleep.is_some());
        match n {
            0 => errs.add(hp, "must specify a handler: exec, httpGet or sleep"),
            1 => match &h.sleep {
                Some(s) if s.seconds < 0 || s.seconds > grace => errs.add(
                    format!("{hp}.sleep.seconds"),
                    format!(
                        "{} must be non-negative and less than terminationGracePeriodSeconds ({grace})",
                        s.seconds
                    ),
                ),
                Some(_) => {}
                None => probe(c, h, &hp, false, errs),
            },
            _ => errs.add(hp, "may not specify more than one handler"),
        }
    }
    if let Some(sig) = &l.stop_signal {
        if !sig.starts_with("SIG") || signal_number(sig).is_none() {
            errs.add(
                format!("{path}.lifecycle.stopSignal"),
                format!("{sig:?} is not a signal name (SIGTERM, SIGUSR1, SIGRTMIN+1, ...)"),
            );
        }
    }
}
