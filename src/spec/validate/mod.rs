//! Validation of a typed `Pod`, with Kubernetes' rules and field paths.
//!
//! The loader runs [`validate`] on every pod; pods that arrive another way
//! (built in code, read back from the state file) can be checked the same
//! way. Every rule reports `<path>: <message>`; [`validate_all`] returns all
//! of them, [`validate`] the first. Pod-level rules live here, per-container
//! rules in `container`. Pure, no I/O.

mod container;
mod projected;

pub use container::{MAX_ARGV_ENV_BYTES, RESERVED_CONTAINER_NAME, SAFE_SYSCTLS, sysctl_name};

use super::error::SpecError;
use super::names;
use super::types::{Pod, Volume};
use crate::vecmap::VecSet;

/// Values of `hostPath.type`.
pub const HOST_PATH_TYPES: [&str; 8] = [
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
];

/// Values of `emptyDir.medium`.
pub const EMPTY_DIR_MEDIA: [&str; 2] = ["", "Memory"];

/// Kubernetes' limit on the total size of a pod's annotations.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// The most bytes a pod may take as JSON: the Kubernetes API server's
/// object limit (etcd's request limit), 1.5 MiB. The shim's request lines
/// (4 MiB) and the state file (16 MiB, [`crate::store::DEFAULT_MAX_SIZE`])
/// hold specs as JSON, so a pod within this limit always fits them.
pub const MAX_POD_BYTES: usize = 1536 * 1024;

/// The size of `pod` as compact JSON: the length of the text the state
/// file stores for it ([`crate::lifecycle`]'s `serde_json::to_string`).
/// Built through `to_vec`, the instantiation that text and the JSON-lines
/// framing use: a counting writer would link a second copy of the whole
/// `Pod` serializer (about 7 KB of the static binary) to save one
/// short-lived buffer the size of the pod, which the state file holds anyway.
pub fn json_size(pod: &Pod) -> usize {
    serde_json::to_vec(pod).map_or(usize::MAX, |text| text.len())
}

/// The resolver's limits (glibc's, as Kubernetes validates them): at most
/// this many nameservers, search paths, and characters in the search line.
pub const MAX_DNS_NAMESERVERS: usize = 3;
pub const MAX_DNS_SEARCH_PATHS: usize = 32;
pub const MAX_DNS_SEARCH_LIST_CHARS: usize = 2048;

/// `dnsPolicy` and `dnsConfig`, as the API server validates them.
fn dns(spec: &super::types::PodSpec, errs: &mut Errors) {
    const POLICIES: [&str; 4] = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    if !POLICIES.contains(&policy) {
        errs.add(
            "spec.dnsPolicy",
            format!("unsupported value {policy:?}: supported values: {POLICIES:?}"),
        );
    }
    let none = policy == "None";
    let Some(c) = &spec.dns_config else {
        if none {
            errs.add(
                "spec.dnsConfig",
                "must provide dnsConfig when dnsPolicy is None",
            );
        }
        return;
    };
    let at = "spec.dnsConfig.nameservers";
    if none && c.nameservers.is_empty() {
        errs.add(
            at,
            "must provide at least one DNS nameserver when dnsPolicy is None",
        );
    }
    if c.nameservers.len() > MAX_DNS_NAMESERVERS {
        errs.add(
            at,
            format!("must not have more than {MAX_DNS_NAMESERVERS} nameservers"),
        );
    }
    for (i, ns) in c.nameservers.iter().enumerate() {
        if ns.parse::<std::net::IpAddr>().is_err() {
            errs.add(
                format!("{at}[{i}]"),
                format!("{ns:?} must be a valid IP address"),
            );
        }
    }
    let at = "spec.dnsConfig.searches";
    if c.searches.len() > MAX_DNS_SEARCH_PATHS {
        errs.add(
            at,
            format!("must not have more than {MAX_DNS_SEARCH_PATHS} search paths"),
        );
    }
    if c.searches.join(" ").len() > MAX_DNS_SEARCH_LIST_CHARS {
        errs.add(
            at,
            format!("must not have more than {MAX_DNS_SEARCH_LIST_CHARS} characters (including spaces) in the search list"),
        );
    }
    for (i, d) in c.searches.iter().enumerate() {
        let d = d.strip_suffix('.').unwrap_or(d);
        errs.check(format!("{at}[{i}]"), names::dns1123_subdomain(d));
    }
    for (i, o) in c.options.iter().enumerate() {
        if o.name.is_empty() {
            errs.add(
                format!("spec.dnsConfig.options[{i}].name"),
                "required value",
            );
        }
    }
}

/// Collects errors with their paths.
#[derive(Debug, Default)]
pub(crate) struct Errors(pub(crate) Vec<SpecError>);

impl Errors {
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(SpecError::invalid(path, message));
    }

    pub(crate) fn check(&mut self, path: impl Into<String>, result: Result<(), String>) {
        if let Err(m) = result {
            self.add(path, m);
        }
    }

    pub(crate) fn push(&mut self, e: SpecError) {
        self.0.push(e);
    }
}

/// Checks every rule; `Ok` or the first error.
pub fn validate(pod: &Pod) -> Result<(), SpecError> {
    match validate_all(pod).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Checks every rule and returns all errors, in field order.
pub fn validate_all(pod: &Pod) -> Vec<SpecError> {
    let mut errs = Errors::default();
    metadata(pod, &mut errs);
    let spec = &pod.spec;
    if spec.containers.is_empty() {
        errs.add("spec.containers", "must have at least one container");
    }
    if let Some(h) = &spec.hostname {
        errs.check("spec.hostname", names::dns1123_label(h));
    }
    for (i, a) in spec.host_aliases.iter().enumerate() {
        let at = format!("spec.hostAliases[{i}]");
        if a.ip.parse::<std::net::IpAddr>().is_err() {
            errs.add(
                format!("{at}.ip"),
                format!("{:?} must be a valid IP address", a.ip),
            );
        }
        for (j, h) in a.hostnames.iter().enumerate() {
            errs.check(format!("{at}.hostnames[{j}]"), names::dns1123_subdomain(h));
        }
    }
    for (i, r) in spec.image_pull_secrets.iter().enumerate() {
        errs.check(
            format!("spec.imagePullSecrets[{i}].name"),
            container::object_name(&r.name),
        );
    }
    dns(spec, &mut errs);
    if let Some(s) = &spec.subdomain {
        errs.check("spec.subdomain", names::dns1123_label(s));
    }
    crate::spec::affinity::validate(&spec.node_selector, spec.affinity.as_ref(), &mut errs);
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        errs.check("spec.nodeName", names::dns1123_subdomain(n));
    }
    if let Some(g) = spec.termination_grace_period_seconds {
        if g < 0 {
            errs.add(
                "spec.terminationGracePeriodSeconds",
                format!("{g} must be greater than or equal to 0"),
            );
        }
    }
    if let Some(class) = spec
        .priority_class_name
        .as_deref()
        .filter(|c| !c.is_empty())
    {
        match crate::spec::defaults::priority_class_value(class) {
            None => errs.add(
                "spec.priorityClassName",
                format!(
                    "no PriorityClass with name {class} was found: picolet knows only the built-in system-node-critical and system-cluster-critical (set spec.priority instead)"
                ),
            ),
            Some(v) if spec.priority.is_some_and(|p| p != v) => errs.add(
                "spec.priority",
                format!(
                    "the integer value of priority ({}) must not be provided in pod spec; priority admission controller computed {v} from the given PriorityClass name",
                    spec.priority.unwrap_or_default()
                ),
            ),
            Some(_) => {}
        }
    }
    if let Some(d) = spec.active_deadline_seconds {
        if !(1..=i64::from(u32::MAX)).contains(&d) {
            errs.add(
                "spec.activeDeadlineSeconds",
                format!("{d} must be between 1 and {}, inclusive", u32::MAX),
            );
        }
    }
    container::pod_security_context(pod, &mut errs);
    let volumes = volumes(pod, &spec.volumes, &mut errs);
    container::containers(pod, &volumes, &mut errs);
    let size = json_size(pod);
    if size > MAX_POD_BYTES {
        errs.add(
            "",
            format!(
                "the pod is {size} bytes as JSON, must be no more than {MAX_POD_BYTES} \
                 (1.5 MiB, the Kubernetes API server's object limit)"
            ),
        );
    }
    errs.0
}

fn metadata(pod: &Pod, errs: &mut Errors) {
    let m = &pod.metadata;
    if m.name.is_empty() {
        errs.add("metadata.name", "must not be empty");
    } else {
        errs.check("metadata.name", names::dns1123_subdomain(&m.name));
    }
    if !m.namespace.is_empty() {
        errs.check("metadata.namespace", names::dns1123_label(&m.namespace));
    }
    for (k, v) in &m.labels {
        let path = format!("metadata.labels.{k}");
        errs.check(&path, names::qualified_name(k));
        errs.check(&path, names::label_value(v));
    }
    let mut total = 0;
    for (k, v) in &m.annotations {
        errs.check(
            format!("metadata.annotations.{k}"),
            names::qualified_name(k),
        );
        total += k.len() + v.len();
    }
    if total > MAX_ANNOTATIONS_BYTES {
        errs.add(
            "metadata.annotations",
            format!("too long: {total} bytes, must be no more than {MAX_ANNOTATIONS_BYTES}"),
        );
    }
}

/// Whether `p` is absolute and has no `..` component.
pub(crate) fn clean_absolute(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} must be an absolute path"));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(format!("{p:?} must not contain '..'"));
    }
    Ok(())
}

/// Checks the volumes and returns their names.
fn volumes(pod: &Pod, volumes: &[Volume], errs: &mut Errors) -> VecSet<String> {
    let mut seen = VecSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let path = format!("spec.volumes[{i}]");
        if v.name.is_empty() {
            errs.add(format!("{path}.name"), "must not be empty");
        } else {
            errs.check(format!("{path}.name"), names::dns1123_label(&v.name));
        }
        if !seen.insert(v.name.clone()) {
            errs.add(
                format!("{path}.name"),
                format!("duplicate volume name {:?}", v.name),
            );
        }
        let sources = [
            v.empty_dir.is_some(),
            v.host_path.is_some(),
            v.config_map.is_some(),
            v.secret.is_some(),
            v.downward_api.is_some(),
            v.projected.is_some(),
            v.persistent_volume_claim.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        match sources {
            0 => errs.add(
                &path,
                "must specify exactly one volume source (emptyDir, hostPath, configMap, secret, \
                 downwardAPI or projected)",
            ),
            1 => {}
            _ => errs.add(&path, "may not specify more than one volume source"),
        }
        projected::volume(pod, v, &path, errs);
        if let Some(e) = &v.empty_dir {
            if !EMPTY_DIR_MEDIA.contains(&e.medium.as_str()) {
                errs.add(
                    format!("{path}.emptyDir.medium"),
                    format!(
                        "{:?} is not supported: must be \"\" or \"Memory\"",
                        e.medium
                    ),
                );
            }
            if let Some(q) = &e.size_limit {
                let p = format!("{path}.emptyDir.sizeLimit");
                match q.parsed() {
                    Err(err) => errs.push(err.under(&p)),
                    Ok(parsed) if parsed.is_negative() => {
                        errs.add(p, format!("{:?} must be greater than or equal to 0", q.0))
                    }
                    Ok(_) => {}
                }
            }
        }
        if let Some(h) = &v.host_path {
            errs.check(format!("{path}.hostPath.path"), clean_absolute(&h.path));
            if let Some(t) = &h.kind {
                if !HOST_PATH_TYPES.contains(&t.as_str()) {
                    errs.add(
                        format!("{path}.hostPath.type"),
                        format!(
                            "{t:?} is not supported: must be one of {}",
                            HOST_PATH_TYPES[1..].join(", ")
                        ),
                    );
                }
            }
        }
    }
    seen
}
