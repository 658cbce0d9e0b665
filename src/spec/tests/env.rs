use super::{load_one, with_container_lines};
use crate::spec::env::FieldPath;
use crate::spec::*;
use crate::vecmap::VecMap;

fn expand_with(input: &str, vars: &[(&str, &str)]) -> String {
    let map: VecMap<&str, &str> = vars.iter().copied().collect();
    expand(input, |k| map.get(k).map(|v| v.to_string()))
}

#[test]
fn expansion_follows_kubernetes_rules() {
    let vars = [("VAR_A", "A"), ("VAR_B", "B"), ("EMPTY", "")];
    let table = [
        ("$(VAR_A)", "A"),
        ("___$(VAR_A)___", "___A___"),
        ("$(VAR_A)-$(VAR_B)", "A-B"),
        ("$(UNKNOWN)", "$(UNKNOWN)"),
        ("$$(VAR_A)", "$(VAR_A)"),
        ("$$$(VAR_A)", "$A"),
        ("$$$$(VAR_A)", "$$(VAR_A)"),
        ("$$", "$"),
        ("$", "$"),
        ("x$", "x$"),
        ("$VAR_A", "$VAR_A"),
        ("$(VAR_A", "$(VAR_A"),
        ("$(", "$("),
        ("$()", "$()"),
        ("$(EMPTY)x", "x"),
        ("$(VAR_A)$(VAR_A)", "AA"),
        ("((VAR_A))", "((VAR_A))"),
        ("ünï$(VAR_A)çødé$é", "ünïAçødé$é"),
        ("", ""),
    ];
    for (input, want) in table {
        assert_eq!(expand_with(input, &vars), want, "expand({input:?})");
    }
}

#[test]
fn field_paths_parse_including_label_subscripts() {
    assert_eq!(FieldPath::parse("metadata.name"), Some(FieldPath::Name));
    assert_eq!(FieldPath::parse("status.podIP"), Some(FieldPath::PodIp));
    assert_eq!(
        FieldPath::parse("metadata.labels['app.kubernetes.io/name']"),
        Some(FieldPath::Label("app.kubernetes.io/name".into()))
    );
    assert_eq!(
        FieldPath::parse("metadata.annotations['a']"),
        Some(FieldPath::Annotation("a".into()))
    );
    assert_eq!(FieldPath::parse("metadata.labels['']"), None);
    assert_eq!(FieldPath::parse("metadata.labels"), None);
    assert_eq!(
        FieldPath::parse("spec.serviceAccountName"),
        Some(FieldPath::ServiceAccountName)
    );
    assert_eq!(FieldPath::parse("spec.schedulerName"), None);
}

const ENV_POD: &str = "    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: HOST_IP, valueFrom: {fieldRef: {apiVersion: v1, fieldPath: status.hostIP}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: URL, value: 'http://$(POD_IP):8080/$(LATER)'}
    - {name: LATER, value: late}
    - {name: LITERAL, value: '$$(POD_IP)'}
    - {name: POD_NAME, value: 'renamed-$(POD_NAME)'}
    - {name: EMPTY}
    command: [sh, -c, 'echo $(URL) $(LATER)']
    args: ['$(POD_NAME)', '$(NOPE)']
";

#[test]
fn container_env_resolves_field_refs_and_earlier_variables() {
    let pod = load_one(&with_container_lines(ENV_POD)).unwrap();
    let ctx = EnvContext {
        pod_ip: "10.88.0.2",
        host_ip: "192.168.1.10",
        node_name: "pi-1",
        ..Default::default()
    };
    let env = container_env(&pod, &pod.spec.containers[0], &ctx).unwrap();
    let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        got,
        [
            ("POD_NAME", "renamed-p"),
            ("POD_NS", "default"),
            ("POD_IP", "10.88.0.2"),
            ("HOST_IP", "192.168.1.10"),
            ("NODE", "pi-1"),
            ("URL", "http://10.88.0.2:8080/$(LATER)"),
            ("LATER", "late"),
            ("LITERAL", "$(POD_IP)"),
            ("EMPTY", ""),
        ]
    );
    let argv = container_argv(
        &pod.spec.containers[0],
        &env,
        &["/entry".into()],
        &["cmd".into()],
    )
    .unwrap();
    assert_eq!(
        argv,
        [
            "sh",
            "-c",
            "echo http://10.88.0.2:8080/$(LATER) late",
            "renamed-p",
            "$(NOPE)"
        ]
    );
}

#[test]
fn node_name_falls_back_to_the_pod_spec() {
    let mut pod = load_one(&with_container_lines(ENV_POD)).unwrap();
    pod.spec.node_name = Some("from-spec".into());
    let v = field_ref_value(&pod, "spec.nodeName", &EnvContext::default()).unwrap();
    assert_eq!(v, "from-spec");
    pod.metadata.labels.insert("app".into(), "web".into());
    let v = field_ref_value(&pod, "metadata.labels['app']", &EnvContext::default()).unwrap();
    assert_eq!(v, "web");
    assert!(field_ref_value(&pod, "spec.bogus", &EnvContext::default()).is_err());
}

#[test]
fn the_service_account_name_defaults_to_default_or_its_deprecated_alias() {
    let mut pod = load_one(&with_container_lines(ENV_POD)).unwrap();
    let sa = |pod: &Pod| {
        field_ref_value(pod, "spec.serviceAccountName", &EnvContext::default()).unwrap()
    };
    assert_eq!(sa(&pod), "default");
    pod.spec.service_account = Some("old".into());
    assert_eq!(sa(&pod), "old");
    pod.spec.service_account_name = Some("new".into());
    assert_eq!(sa(&pod), "new");
}

#[test]
fn argv_combines_command_args_and_image_config_like_containerd() {
    let entry = vec!["/bin/entry".to_string()];
    let cmd = vec!["--default".to_string()];
    let mut c = Container::default();
    let argv = |c: &Container| container_argv(c, &[], &entry, &cmd).unwrap();
    assert_eq!(argv(&c), ["/bin/entry", "--default"]);
    c.args = Some(vec!["--mine".into()]);
    assert_eq!(argv(&c), ["/bin/entry", "--mine"]);
    c.command = Some(vec!["/bin/sh".into()]);
    assert_eq!(argv(&c), ["/bin/sh", "--mine"]);
    c.args = None;
    assert_eq!(argv(&c), ["/bin/sh"]);
    c.command = Some(vec![]);
    assert_eq!(argv(&c), ["/bin/entry", "--default"]);
    assert!(container_argv(&Container::default(), &[], &[], &[]).is_err());
}
