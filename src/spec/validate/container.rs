//! Per-container rules: names, image, env, ports, resources, probes,
//! security context and volume mounts.

use super::{Errors, clean_absolute};
use crate::spec::caps;
use crate::spec::defaults::resolve_port;
use crate::spec::env::FieldPath;
use crate::spec::error::{ErrorKind, SpecError};
use crate::spec::names;
use crate::spec::schema::RESOURCE_NAMES;
use crate::spec::types::*;
use std::collections::{BTreeMap, BTreeSet};

/// Checks init and app containers, and rules that span them (unique names,
/// unique host ports).
pub(super) fn containers(pod: &Pod, volumes: &BTreeSet<String>, errs: &mut Errors) {
    let mut names_seen = BTreeSet::new();
    let mut host_ports: BTreeMap<(i32, &str), String> = BTreeMap::new();
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
    volumes: &BTreeSet<String>,
    errs: &mut Errors,
) {
    if c.name.is_empty() {
        errs.add(format!("{path}.name"), "must not be empty");
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
    env(&c.env, path, errs);
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
        if init {
            errs.add(ppath, "must not be set for init containers");
        } else {
            self::probe(c, p, &ppath, field != "readinessProbe", errs);
        }
    }
    if let Some(sc) = &c.security_context {
        security_context(sc, &format!("{path}.securityContext"), errs);
    }
    mounts(c, path, volumes, errs);
}

fn env(vars: &[EnvVar], path: &str, errs: &mut Errors) {
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
        let fr = &from.field_ref;
        if FieldPath::parse(&fr.field_path).is_none() {
            errs.add(
                format!("{p}.valueFrom.fieldRef.fieldPath"),
                format!(
                    "{:?} is not supported: use metadata.name, metadata.namespace, metadata.uid, \
                     metadata.labels['…'], metadata.annotations['…'], spec.nodeName, \
                     status.podIP or status.hostIP",
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
    let mut seen = BTreeSet::new();
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
    let mut parsed = BTreeMap::new();
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
        0 => errs.add(path, "must specify a handler: exec, tcpSocket or httpGet"),
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
    if let Some(h) = &p.http_get {
        let hp = format!("{path}.httpGet");
        if let Err(e) = resolve_port(c, &h.port) {
            errs.push(e.under(&format!("{hp}.port")));
        }
        match h.scheme.as_deref() {
            None | Some("") | Some("HTTP") => {}
            Some("HTTPS") => errs.push(SpecError::new(
                ErrorKind::Unsupported,
                format!("{hp}.scheme"),
                "unsupported value \"HTTPS\": picolet probes speak plain HTTP only",
            )),
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

fn security_context(sc: &SecurityContext, path: &str, errs: &mut Errors) {
    for (field, id) in [
        ("runAsUser", sc.run_as_user),
        ("runAsGroup", sc.run_as_group),
    ] {
        if let Some(id) = id {
            if !(0..=i64::from(i32::MAX)).contains(&id) {
                errs.add(
                    format!("{path}.{field}"),
                    format!("{id} must be between 0 and 2147483647"),
                );
            }
        }
    }
    if sc.run_as_non_root == Some(true) && sc.run_as_user == Some(0) {
        errs.add(
            format!("{path}.runAsNonRoot"),
            "runAsUser 0 (root) breaks runAsNonRoot: true",
        );
    }
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

fn mounts(c: &Container, path: &str, volumes: &BTreeSet<String>, errs: &mut Errors) {
    let mut seen = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().enumerate() {
        let mp = format!("{path}.volumeMounts[{i}]");
        if !volumes.contains(&m.name) {
            errs.add(
                format!("{mp}.name"),
                format!("volume {:?} not found in spec.volumes", m.name),
            );
        }
        errs.check(format!("{mp}.mountPath"), clean_absolute(&m.mount_path));
        if !seen.insert(m.mount_path.trim_end_matches('/')) {
            errs.add(
                format!("{mp}.mountPath"),
                format!("{:?} must be unique", m.mount_path),
            );
        }
    }
}
