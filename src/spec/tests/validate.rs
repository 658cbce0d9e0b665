use super::{MINIMAL, load_one};
use crate::spec::*;

pub(super) fn base() -> Pod {
    load_one(MINIMAL).unwrap()
}

pub(super) fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: "x".into(),
        ..Default::default()
    }
}

pub(super) fn probe_exec() -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: vec!["true".into()],
        }),
        ..Default::default()
    }
}

/// Asserts that `pod` has an error at `path` whose message contains `fragment`.
#[track_caller]
pub(super) fn invalid(pod: &Pod, path: &str, fragment: &str) {
    let errs = validate_all(pod);
    assert!(
        errs.iter()
            .any(|e| e.path == path && e.message.contains(fragment)),
        "no error at {path} containing {fragment:?}; got: {:#?}",
        errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
}

#[track_caller]
pub(super) fn valid(pod: &Pod) {
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
fn volume_mounts_need_existing_volumes_and_absolute_unique_paths() {
    let mut p = base();
    p.spec.volumes.push(Volume {
        name: "data".into(),
        empty_dir: Some(EmptyDirVolume::default()),
        host_path: None,
        ..Default::default()
    });
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: false,
        ..Default::default()
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
        ..Default::default()
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
    // A disk-backed one's is enforced by eviction (lifecycle::eviction).
    p.spec.volumes[0].empty_dir.as_mut().unwrap().medium = String::new();
    valid(&p);
    p.spec.volumes[0].empty_dir.as_mut().unwrap().medium = "Memory".into();
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
        ..Default::default()
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
fn validate_returns_the_first_error_in_field_order() {
    let mut p = base();
    p.metadata.name = "BAD".into();
    p.spec.containers[0].image = String::new();
    let first = validate(&p).unwrap_err();
    assert_eq!(first.path, "metadata.name");
    assert_eq!(validate_all(&p).len(), 2);
}

#[test]
fn priority_classes_are_the_built_in_ones_and_agree_with_priority() {
    let mut p = base();
    p.spec.priority = Some(-7);
    assert!(validate(&p).is_ok());
    assert_eq!(p.spec.priority_value(), -7);
    p.spec.priority_class_name = Some("high".into());
    invalid(
        &p,
        "spec.priorityClassName",
        "no PriorityClass with name high was found",
    );
    p.spec.priority_class_name = Some("system-node-critical".into());
    invalid(&p, "spec.priority", "must not be provided in pod spec");
    p.spec.priority = Some(2_000_001_000);
    assert!(validate(&p).is_ok());
    p.spec.priority = None;
    assert_eq!(p.spec.priority_value(), 2_000_001_000);
    assert!(p.spec.is_node_critical());
    p.spec.priority_class_name = Some("system-cluster-critical".into());
    assert!(p.spec.is_critical() && !p.spec.is_node_critical());
    assert_eq!(
        crate::spec::defaulted(&p).spec.priority,
        Some(2_000_000_000)
    );
}

#[test]
fn image_pull_secrets_are_read_and_a_missing_or_empty_name_is_refused_at_its_path() {
    let with = |list: &str| {
        MINIMAL.replace(
            "  containers:",
            &format!("  imagePullSecrets: {list}\n  containers:"),
        )
    };
    let p = super::load_one(&with("[{name: regcred}, {name: other}]")).unwrap();
    let names: Vec<_> = p
        .spec
        .image_pull_secrets
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["regcred", "other"]);
    for (list, path) in [
        ("[{name: a}, {}]", "spec.imagePullSecrets[1].name"),
        ("[{name: ''}]", "spec.imagePullSecrets[0].name"),
        ("[{name: Bad_Name}]", "spec.imagePullSecrets[0].name"),
        (
            "[{name: a, optional: true}]",
            "spec.imagePullSecrets[0].optional",
        ),
    ] {
        let e = super::load_err(&with(list));
        assert_eq!(e.path, path, "{list}: {e}");
    }
    assert!(
        super::load_err(&with("[{}]"))
            .message
            .contains("must not be empty")
    );
}
