//! Loading DaemonSets and StatefulSets: the Kubernetes docs' examples,
//! defaults, and the errors with their paths.

use super::daemonset::RollingUpdate;
use super::*;

fn load(text: &str) -> Result<Workload, SpecError> {
    let v: Value = crate::yaml::parse(text).0[0].to_value().unwrap();
    workload_from_value(v)
}

/// The Kubernetes docs' DaemonSet (fluentd-elasticsearch), busybox image
/// (`tests/k8s-docs/`, which `tests/workloads.rs` also runs).
const DS: &str = include_str!("../../../tests/k8s-docs/fluentd-elasticsearch.yaml");

#[test]
fn the_kubernetes_docs_daemonset_loads_with_its_defaults() {
    let w = load(DS).unwrap_or_else(|e| panic!("{e}"));
    let WorkloadSpec::DaemonSet(d) = &w.spec else {
        panic!()
    };
    assert_eq!(
        d.rolling_update,
        Some(RollingUpdate {
            max_surge: IntOrPercent::Int(0),
            max_unavailable: IntOrPercent::Int(1)
        })
    );
    assert_eq!(d.min_ready_seconds, 0);
    let on_delete = DS.replace(
        "spec:\n  selector:",
        "spec:\n  updateStrategy: {type: OnDelete}\n  selector:",
    );
    let WorkloadSpec::DaemonSet(d) = load(&on_delete).unwrap().spec else {
        panic!()
    };
    assert_eq!(d.rolling_update, None);
}

#[test]
fn daemonset_errors_name_their_field() {
    let with = |s: &str| DS.replace("spec:\n  selector:", &format!("spec:\n  {s}\n  selector:"));
    for (text, path) in [
        (
            with("updateStrategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}"),
            "spec.updateStrategy.rollingUpdate.maxUnavailable",
        ),
        (
            with("updateStrategy: {type: OnDelete, rollingUpdate: {maxSurge: 1}}"),
            "spec.updateStrategy.rollingUpdate",
        ),
        (
            with("updateStrategy: {type: Recreate}"),
            "spec.updateStrategy.type",
        ),
        (
            with("updateStrategy: {rollingUpdate: {partition: 1}}"),
            "spec.updateStrategy.rollingUpdate.partition",
        ),
        (
            with("updateStrategy: {rollingUpdate: {maxUnavailable: 150%}}"),
            "spec.updateStrategy.rollingUpdate.maxUnavailable",
        ),
        (with("minReadySeconds: -1"), "spec.minReadySeconds"),
        (
            DS.replace(
                "      terminationGracePeriodSeconds: 30",
                "      restartPolicy: Never",
            ),
            "spec.template.spec.restartPolicy",
        ),
        (
            DS.replace(
                "      terminationGracePeriodSeconds: 30",
                "      nodeSelector: {'a b': c}",
            ),
            "spec.template.spec.nodeSelector",
        ),
    ] {
        let e = load(&text).unwrap_err();
        assert_eq!(e.path, path, "{e}");
    }
}

/// The Kubernetes docs' StatefulSet (nginx), busybox image
/// (`tests/k8s-docs/`, which `tests/workloads.rs` also runs).
const STS: &str = include_str!("../../../tests/k8s-docs/web-statefulset.yaml");

#[test]
fn the_kubernetes_docs_statefulset_loads_with_its_defaults_and_claim_volumes() {
    let w = load(STS).unwrap_or_else(|e| panic!("{e}"));
    let WorkloadSpec::StatefulSet(s) = &w.spec else {
        panic!()
    };
    assert_eq!(s.replicas, 3);
    assert_eq!(s.service_name, "nginx");
    assert!(!s.parallel);
    assert_eq!(s.partition, Some(0));
    assert_eq!(s.min_ready_seconds, 10);
    assert_eq!(s.claims, ["www"]);
    assert!(!s.delete_claims_when_deleted && !s.delete_claims_when_scaled);
    assert_eq!(s.start, 0);
    let v = &s.template.pod.spec.volumes;
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].name, "www");
    assert!(v[0].persistent_volume_claim.is_some() && v[0].empty_dir.is_none());
    // A template volume of the claim's name is replaced by the claim.
    let shadow = STS.replace(
        "      terminationGracePeriodSeconds: 10\n",
        "      terminationGracePeriodSeconds: 10\n      volumes: [{name: www, emptyDir: {}}]\n",
    );
    let WorkloadSpec::StatefulSet(s) = load(&shadow).unwrap().spec else {
        panic!()
    };
    assert_eq!(s.template.pod.spec.volumes.len(), 1);
    assert!(
        s.template.pod.spec.volumes[0]
            .persistent_volume_claim
            .is_some()
    );
    let more = STS.replace(
        "  replicas: 3\n",
        "  replicas: 3\n  podManagementPolicy: Parallel\n  ordinals: {start: 1}\n  updateStrategy: {rollingUpdate: {partition: 2}}\n  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Retain}\n",
    );
    let WorkloadSpec::StatefulSet(s) = load(&more).unwrap().spec else {
        panic!()
    };
    assert!(s.parallel && s.delete_claims_when_deleted && !s.delete_claims_when_scaled);
    assert_eq!((s.start, s.partition), (1, Some(2)));
}

#[test]
fn statefulset_errors_name_their_field() {
    let with = |s: &str| STS.replace("  replicas: 3\n", &format!("  replicas: 3\n  {s}\n"));
    for (text, path) in [
        (
            with("podManagementPolicy: Random"),
            "spec.podManagementPolicy",
        ),
        (
            with("updateStrategy: {rollingUpdate: {partition: -1}}"),
            "spec.updateStrategy.rollingUpdate.partition",
        ),
        (
            with("updateStrategy: {rollingUpdate: {maxUnavailable: 2}}"),
            "spec.updateStrategy.rollingUpdate.maxUnavailable",
        ),
        (
            with("updateStrategy: {rollingUpdate: {maxSurge: 1}}"),
            "spec.updateStrategy.rollingUpdate.maxSurge",
        ),
        (
            with("persistentVolumeClaimRetentionPolicy: {whenScaled: Archive}"),
            "spec.persistentVolumeClaimRetentionPolicy.whenScaled",
        ),
        (with("ordinals: {start: -1}"), "spec.ordinals.start"),
        (
            STS.replace("serviceName: nginx", "serviceName: Bad_Name"),
            "spec.serviceName",
        ),
        (
            STS.replace("ReadWriteOnce", "ReadOnlyMany"),
            "spec.volumeClaimTemplates[0].spec.accessModes[0]",
        ),
        (
            STS.replace(
                "      storageClassName",
                "      volumeMode: Block\n      storageClassName",
            ),
            "spec.volumeClaimTemplates[0].spec.volumeMode",
        ),
        (
            STS.replace(
                "      storageClassName",
                "      dataSource: {name: snap}\n      storageClassName",
            ),
            "spec.volumeClaimTemplates[0].spec.dataSource",
        ),
        (
            STS.replace(
                "- name: www\n          mountPath",
                "- name: data\n          mountPath",
            ),
            "spec.template.spec.containers[0].volumeMounts[0].name",
        ),
    ] {
        let e = load(&text).unwrap_err();
        assert_eq!(e.path, path, "{e}");
    }
}
