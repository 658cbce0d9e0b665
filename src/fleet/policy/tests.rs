use super::*;
use crate::spec::load_str;

fn pod(extra_spec: &str, container_extra: &str) -> Pod {
    let text = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
{extra_spec}
  initContainers:
  - name: init
    image: busybox:1
  containers:
  - name: c
    image: busybox:1
{container_extra}
"
    );
    let mut all = load_str(&text, "test.yaml");
    assert_eq!(all.len(), 1);
    all.remove(0).unwrap()
}

fn paths(r: Result<(), Vec<PolicyViolation>>) -> Vec<String> {
    r.err()
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.path)
        .collect()
}

#[test]
fn default_policy_accepts_a_plain_pod() {
    assert_eq!(NodePolicy::default().check(&pod("", "")), Ok(()));
}

#[test]
fn default_policy_refuses_a_privileged_container_naming_the_field_and_the_setting() {
    let p = pod("", "    securityContext:\n      privileged: true");
    let err = NodePolicy::default().check(&p).unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(
        err[0].to_string(),
        "spec.containers[0].securityContext.privileged: privileged containers are not allowed \
         by this device's policy (allow with policy.allowPrivileged)"
    );
    let allowed = NodePolicy {
        allow_privileged: true,
        ..NodePolicy::default()
    };
    assert_eq!(allowed.check(&p), Ok(()));
}

#[test]
fn default_policy_refuses_host_path_volumes_and_host_network() {
    let p = pod(
        "  hostNetwork: true
  volumes:
  - name: scratch
    emptyDir: {}
  - name: dev
    hostPath:
      path: /dev",
        "",
    );
    let err = NodePolicy::default().check(&p).unwrap_err();
    assert_eq!(
        err.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "spec.hostNetwork: the host's network namespace is not allowed by this device's \
             policy (allow with policy.allowHostNetwork)",
            "spec.volumes[1].hostPath: hostPath volumes are not allowed by this device's \
             policy (allow with policy.allowHostPath)",
        ]
    );
    let only_net = NodePolicy {
        allow_host_network: true,
        ..NodePolicy::default()
    };
    assert_eq!(paths(only_net.check(&p)), ["spec.volumes[1].hostPath"]);
    let both = NodePolicy {
        allow_host_network: true,
        allow_host_path: true,
        ..NodePolicy::default()
    };
    assert_eq!(both.check(&p), Ok(()));
}

#[test]
fn added_capabilities_need_the_allow_list_unless_in_the_default_set() {
    let p = pod(
        "",
        "    securityContext:
      capabilities:
        add: [CHOWN, NET_ADMIN, cap_sys_time]
        drop: [ALL]",
    );
    let default = NodePolicy::default();
    assert_eq!(
        paths(default.check(&p)),
        [
            "spec.containers[0].securityContext.capabilities.add[1]",
            "spec.containers[0].securityContext.capabilities.add[2]",
        ]
    );
    let err = default.check(&p).unwrap_err();
    assert!(
        err[0]
            .message
            .starts_with("adding capability NET_ADMIN is not allowed")
    );
    assert!(
        err[0]
            .message
            .ends_with("(allow with policy.allowCapabilities)")
    );
    let some = NodePolicy {
        allow_capabilities: vec!["CAP_NET_ADMIN".into()],
        ..NodePolicy::default()
    };
    assert_eq!(
        paths(some.check(&p)),
        ["spec.containers[0].securityContext.capabilities.add[2]"]
    );
    let all = NodePolicy {
        allow_capabilities: vec!["all".into()],
        ..NodePolicy::default()
    };
    assert_eq!(all.check(&p), Ok(()));
}

#[test]
fn adding_all_capabilities_needs_all_in_the_allow_list() {
    let p = pod(
        "",
        "    securityContext:\n      capabilities:\n        add: [ALL]",
    );
    let net = NodePolicy {
        allow_capabilities: vec!["NET_ADMIN".into()],
        ..NodePolicy::default()
    };
    assert_eq!(
        paths(net.check(&p)),
        ["spec.containers[0].securityContext.capabilities.add[0]"]
    );
    assert_eq!(NodePolicy::allow_all().check(&p), Ok(()));
}

#[test]
fn init_containers_are_checked_too() {
    let text = "apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers:
  - name: setup
    image: busybox:1
    securityContext: {privileged: true}
  containers:
  - name: c
    image: busybox:1
    securityContext: {privileged: true}
";
    let p = load_str(text, "t").remove(0).unwrap();
    let err = NodePolicy::default().check(&p).unwrap_err();
    assert_eq!(
        paths(Err(err.clone())),
        [
            "spec.initContainers[0].securityContext.privileged",
            "spec.containers[0].securityContext.privileged",
        ]
    );
    assert!(describe(&err).contains("; spec.containers[0]"));
}

#[test]
fn policy_reads_from_camel_case_yaml_and_refuses_unknown_keys() {
    let p: NodePolicy = serde_norway::from_str(
        "allowPrivileged: true\nallowHostPID: true\nallowCapabilities: [NET_RAW]\n",
    )
    .unwrap();
    assert!(p.allow_privileged && p.allow_host_pid && !p.allow_host_path);
    assert_eq!(p.allow_capabilities, ["NET_RAW"]);
    let err = serde_norway::from_str::<NodePolicy>("allowPrivilegd: true\n").unwrap_err();
    assert!(
        err.to_string().contains("unknown field `allowPrivilegd`"),
        "{err}"
    );
}

#[test]
fn unknown_capability_names_in_the_policy_are_reported_with_their_index() {
    let p = NodePolicy {
        allow_capabilities: vec!["NET_ADMIN".into(), "FLY".into()],
        ..NodePolicy::default()
    };
    let err = p.validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "policy.allowCapabilities[1]: unknown capability \"FLY\""
    );
    assert!(NodePolicy::allow_all().validate().is_ok());
}

#[test]
fn no_new_privileges_sets_unset_escalation_to_false_and_refuses_true() {
    let p = NodePolicy {
        no_new_privileges: true,
        allow_privileged: true,
        ..NodePolicy::default()
    };
    let mut plain = pod("", "");
    assert_eq!(p.check(&plain), Ok(()));
    p.harden(&mut plain);
    for c in plain
        .spec
        .init_containers
        .iter()
        .chain(&plain.spec.containers)
    {
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
    }
    // Privileged containers are left alone (allowPrivileged governs them).
    let mut privileged = pod("", "    securityContext: {privileged: true}");
    p.harden(&mut privileged);
    let sc = privileged.spec.containers[0]
        .security_context
        .as_ref()
        .unwrap();
    assert_eq!(sc.allow_privilege_escalation, None);
    let escalating = pod("", "    securityContext: {allowPrivilegeEscalation: true}");
    assert_eq!(
        paths(p.check(&escalating)),
        ["spec.containers[0].securityContext.allowPrivilegeEscalation"]
    );
    // Without the setting nothing changes.
    let mut untouched = pod("", "");
    NodePolicy::default().harden(&mut untouched);
    assert_eq!(untouched, pod("", ""));
    assert_eq!(NodePolicy::default().check(&escalating), Ok(()));
}
