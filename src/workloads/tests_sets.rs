//! DaemonSet and StatefulSet on the simulated node.

use super::testkit::Sim;
use super::*;
use crate::lifecycle::Phase;

fn labels(kv: &[(&str, &str)]) -> VecMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn names(s: &Sim) -> Vec<String> {
    s.live().iter().map(|p| p.name.clone()).collect()
}

fn events(out: &[Intent], reason: &str) -> Vec<String> {
    out.iter()
        .filter_map(|i| match i {
            Intent::Event {
                reason: r, message, ..
            } if r == reason => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn status(s: &Sim, kind: WorkloadKind, name: &str) -> serde_json::Value {
    let key = WorkloadKey {
        kind,
        namespace: "default".into(),
        name: name.into(),
    };
    let obs: Vec<PodObs> = s.pods.values().map(|(_, o)| o.clone()).collect();
    s.w.view(&key, &obs, s.now).unwrap().object["status"].clone()
}

/// The user (or `kubectl delete pod`) deletes a pod.
fn user_delete(s: &mut Sim, name: &str) {
    let o = &mut s.pods.get_mut(name).unwrap().1;
    o.terminating = true;
    o.ready = false;
    s.pods.remove(name);
}

const DS: &str = "
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  UPDATE
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {picolet.io/board: raspberry-pi-5}
      containers: [{name: main, image: busybox:IMAGE}]
";

fn ds(update: &str, image: &str) -> String {
    DS.replace("UPDATE", update).replace("IMAGE", image)
}

fn pi5() -> Sim {
    let mut s = Sim::new();
    s.env.node_labels = labels(&[
        ("kubernetes.io/hostname", "node-1"),
        ("picolet.io/board", "raspberry-pi-5"),
    ]);
    s
}

#[test]
fn a_matching_daemonset_runs_one_pod_with_its_labels_and_owner() {
    let mut s = pi5();
    s.apply(&ds("", "1"));
    s.sync();
    let live = s.live();
    assert_eq!(live.len(), 1);
    let p = s.spec(&live[0].name).clone();
    assert!(p.metadata.name.starts_with("agent-"));
    assert_eq!(p.metadata.name.len(), "agent-".len() + 5);
    let hash = p.metadata.labels["controller-revision-hash"].clone();
    assert_eq!(p.metadata.labels["pod-template-generation"], "1");
    assert_eq!(p.metadata.owner_references[0].kind, "DaemonSet");
    assert_eq!(p.metadata.owner_references[0].uid, "uid-agent");
    let name = p.metadata.name.clone();
    s.ready(&name);
    s.sync();
    let st = status(&s, WorkloadKind::DaemonSet, "agent");
    for k in [
        "desiredNumberScheduled",
        "currentNumberScheduled",
        "numberReady",
        "updatedNumberScheduled",
        "numberAvailable",
        "observedGeneration",
    ] {
        assert_eq!(st[k], 1, "{k}: {st}");
    }
    assert_eq!(st["numberMisscheduled"], 0);
    assert!(hash.len() >= 8);
    // Nothing more to do: no intents.
    assert!(s.sync().is_empty());
}

#[test]
fn a_daemonset_that_does_not_match_runs_nothing_and_says_why_once() {
    let mut s = Sim::new();
    s.env.node_labels = labels(&[("picolet.io/board", "raspberry-pi-4")]);
    s.apply(&ds("", "1"));
    let out = s.sync();
    assert!(s.pods.is_empty());
    let why = events(&out, "NodeSelectorMismatch");
    assert_eq!(why.len(), 1, "{out:?}");
    assert!(why[0].contains("node-1 does not match"), "{}", why[0]);
    assert!(events(&s.advance(10_000), "NodeSelectorMismatch").is_empty());
    let st = status(&s, WorkloadKind::DaemonSet, "agent");
    assert_eq!(st["desiredNumberScheduled"], 0);
    assert_eq!(st["numberUnavailable"], 0);
    assert_eq!(st["conditions"][0]["reason"], "NodeSelectorMismatch");
}

#[test]
fn a_label_change_removes_the_pod_and_brings_it_back() {
    let mut s = pi5();
    s.apply(&ds("", "1"));
    s.sync();
    s.all_ready();
    s.env.node_labels.remove("picolet.io/board");
    let out = s.sync();
    assert!(s.live().is_empty());
    assert_eq!(events(&out, "NodeSelectorMismatch").len(), 1);
    s.env.node_labels = pi5().env.node_labels;
    s.sync();
    assert_eq!(s.live().len(), 1);
    assert!(status(&s, WorkloadKind::DaemonSet, "agent")["conditions"].is_null());
}

#[test]
fn a_rolling_update_without_surge_deletes_the_old_pod_before_the_new_one_starts() {
    let mut s = pi5();
    s.grace_ms = 5_000;
    s.apply(&ds("", "1"));
    s.sync();
    s.all_ready();
    let old = names(&s)[0].clone();
    s.apply(&ds("", "2"));
    s.sync();
    assert!(s.live().is_empty(), "the old pod goes first");
    assert!(s.pods[&old].1.terminating);
    assert_eq!(s.pods.len(), 1, "no new pod while the old one terminates");
    s.advance(5_000);
    let new = names(&s);
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], old);
    assert_eq!(s.spec(&new[0]).spec.containers[0].image, "busybox:2");
    assert_eq!(
        s.spec(&new[0]).metadata.labels["pod-template-generation"],
        "2"
    );
}

#[test]
fn a_surge_starts_the_new_pod_first_and_deletes_the_old_once_available() {
    let mut s = pi5();
    let update = "updateStrategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}\n  minReadySeconds: 10";
    s.apply(&ds(update, "1"));
    s.sync();
    s.all_ready();
    let old = names(&s)[0].clone();
    s.advance(20_000);
    s.apply(&ds(update, "2"));
    s.sync();
    let both = names(&s);
    assert_eq!(both.len(), 2, "{both:?}");
    let new = both.iter().find(|n| **n != old).unwrap().clone();
    s.advance(1_000);
    assert_eq!(s.live().len(), 2);
    s.ready(&new);
    s.advance(9_000);
    assert_eq!(s.live().len(), 2, "not yet available (minReadySeconds)");
    s.advance(1_000);
    assert_eq!(names(&s), [new]);
}

#[test]
fn on_delete_applies_a_new_template_only_when_the_pod_is_deleted() {
    let mut s = pi5();
    let update = "updateStrategy: {type: OnDelete}";
    s.apply(&ds(update, "1"));
    s.sync();
    s.all_ready();
    let old = names(&s)[0].clone();
    s.apply(&ds(update, "2"));
    s.advance(60_000);
    assert_eq!(names(&s), std::slice::from_ref(&old));
    let st = status(&s, WorkloadKind::DaemonSet, "agent");
    assert_eq!(st["updatedNumberScheduled"], 0);
    assert_eq!(st["observedGeneration"], 2);
    user_delete(&mut s, &old);
    s.sync();
    let new = names(&s);
    assert_eq!(new.len(), 1);
    assert_eq!(s.spec(&new[0]).spec.containers[0].image, "busybox:2");
}

#[test]
fn a_failed_daemon_pod_is_replaced_after_a_back_off() {
    let mut s = pi5();
    s.apply(&ds("", "1"));
    s.sync();
    let first = names(&s)[0].clone();
    s.exit(&first, 1);
    let out = s.sync();
    assert_eq!(events(&out, "FailedDaemonPod").len(), 1);
    assert!(s.live().is_empty());
    s.advance(999);
    assert!(s.live().is_empty(), "back-off: 1 s");
    s.advance(1);
    assert_eq!(s.live().len(), 1);
    let second = names(&s)[0].clone();
    s.exit(&second, 1);
    s.sync();
    s.advance(1_999);
    assert!(s.live().is_empty(), "back-off: 2 s");
    s.advance(1);
    assert_eq!(s.live().len(), 1);
    assert_eq!(s.w.poll_timeout(), None);
}

const STS: &str = "
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  replicas: REPLICAS
  selector: {matchLabels: {app: nginx}}
  EXTRA
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers:
      - name: nginx
        image: busybox:IMAGE
        volumeMounts: [{name: www, mountPath: /usr/share/nginx/html}]
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: my-storage-class
      resources: {requests: {storage: 1Gi}}
";

fn sts(replicas: i32, extra: &str, image: &str) -> String {
    STS.replace("REPLICAS", &replicas.to_string())
        .replace("EXTRA", extra)
        .replace("IMAGE", image)
}

fn image(s: &Sim, pod: &str) -> String {
    s.spec(pod).spec.containers[0].image.clone()
}

/// Runs OrderedReady to the end, making each new pod ready, and checks
/// that never two pods are starting (not ready) at once.
fn settle_ordered(s: &mut Sim) -> Vec<String> {
    let mut order = Vec::new();
    for _ in 0..20 {
        s.sync();
        let starting: Vec<String> = s
            .live()
            .iter()
            .filter(|p| !p.ready)
            .map(|p| p.name.clone())
            .collect();
        assert!(
            starting.len() <= 1,
            "two pods starting at once: {starting:?}"
        );
        let Some(p) = starting.first() else { break };
        order.push(p.clone());
        s.advance(1_000);
        s.ready(p);
    }
    s.sync();
    order
}

#[test]
fn ordered_ready_starts_pods_one_at_a_time_in_order_with_claims_and_names() {
    let mut s = Sim::new();
    s.apply(&sts(3, "", "1"));
    s.sync();
    assert_eq!(names(&s), ["web-0"]);
    s.advance(30_000);
    assert_eq!(names(&s), ["web-0"], "web-1 waits for web-0 to be ready");
    s.ready("web-0");
    s.sync();
    assert_eq!(names(&s), ["web-0", "web-1"]);
    // A Running but not ready pod blocks too.
    s.pods.get_mut("web-1").unwrap().1.phase = Phase::Running;
    s.sync();
    assert_eq!(s.live().len(), 2);
    let order = settle_ordered(&mut s);
    assert_eq!(order, ["web-1", "web-2"]);
    let p = s.spec("web-2");
    assert_eq!(p.spec.hostname.as_deref(), Some("web-2"));
    assert_eq!(p.spec.subdomain.as_deref(), Some("nginx"));
    assert_eq!(
        p.metadata.labels["statefulset.kubernetes.io/pod-name"],
        "web-2"
    );
    assert_eq!(p.metadata.labels["apps.kubernetes.io/pod-index"], "2");
    let rev = &p.metadata.labels["controller-revision-hash"];
    assert!(rev.starts_with("web-"), "{rev}");
    assert_eq!(p.metadata.owner_references[0].kind, "StatefulSet");
    let claim = p.spec.volumes[0].persistent_volume_claim.as_ref().unwrap();
    assert_eq!(claim.claim_name, "www-web-2");
    assert_eq!(
        s.volumes.iter().cloned().collect::<Vec<_>>(),
        [
            "default/www-web-0",
            "default/www-web-1",
            "default/www-web-2"
        ]
    );
    let st = status(&s, WorkloadKind::StatefulSet, "web");
    assert_eq!(st["replicas"], 3);
    assert_eq!(st["readyReplicas"], 3);
    assert_eq!(st["currentReplicas"], 3);
    assert_eq!(st["updatedReplicas"], 3);
    assert_eq!(st["currentRevision"], *rev);
    assert_eq!(st["updateRevision"], *rev);
}

#[test]
fn ordered_ready_scales_down_from_the_highest_one_at_a_time_and_keeps_claims() {
    let mut s = Sim::new();
    s.grace_ms = 3_000;
    s.apply(&sts(4, "", "1"));
    settle_ordered(&mut s);
    assert_eq!(s.live().len(), 4);
    s.apply(&sts(1, "", "1"));
    s.sync();
    assert_eq!(names(&s), ["web-0", "web-1", "web-2"]);
    s.advance(2_999);
    assert_eq!(
        names(&s),
        ["web-0", "web-1", "web-2"],
        "web-2 waits for web-3 to go"
    );
    s.advance(1);
    assert_eq!(names(&s), ["web-0", "web-1"]);
    s.advance(3_000);
    assert_eq!(names(&s), ["web-0"]);
    s.advance(3_000);
    assert_eq!(names(&s), ["web-0"]);
    // whenScaled: Retain (the default): the claims stay for a scale up.
    assert_eq!(s.volumes.len(), 4);
    assert!(
        !s.log
            .iter()
            .any(|i| matches!(i, Intent::DeleteVolume { .. }))
    );
}

#[test]
fn parallel_creates_and_deletes_all_at_once() {
    let mut s = Sim::new();
    s.apply(&sts(3, "podManagementPolicy: Parallel", "1"));
    s.sync();
    assert_eq!(names(&s), ["web-0", "web-1", "web-2"]);
    s.apply(&sts(0, "podManagementPolicy: Parallel", "1"));
    s.sync();
    assert!(s.live().is_empty());
}

#[test]
fn a_partitioned_rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
    let mut s = Sim::new();
    s.grace_ms = 1_000;
    let part = |p: i32| {
        format!("updateStrategy: {{type: RollingUpdate, rollingUpdate: {{partition: {p}}}}}")
    };
    s.apply(&sts(3, &part(1), "1"));
    settle_ordered(&mut s);
    s.apply(&sts(3, &part(1), "2"));
    s.sync();
    assert!(s.pods["web-2"].1.terminating, "the highest goes first");
    assert!(!s.pods["web-1"].1.terminating);
    s.advance(1_000);
    assert_eq!(image(&s, "web-2"), "busybox:2");
    s.advance(5_000);
    assert!(
        !s.pods["web-1"].1.terminating,
        "web-1 waits for web-2 to be ready"
    );
    s.ready("web-2");
    s.sync();
    assert!(s.pods["web-1"].1.terminating);
    s.advance(1_000);
    s.ready("web-1");
    s.advance(10_000);
    assert_eq!(image(&s, "web-1"), "busybox:2");
    assert_eq!(image(&s, "web-0"), "busybox:1", "below the partition");
    let st = status(&s, WorkloadKind::StatefulSet, "web");
    assert_eq!(st["updatedReplicas"], 2);
    assert_eq!(st["currentReplicas"], 1);
    assert_ne!(st["currentRevision"], st["updateRevision"]);
    // web-0, deleted, comes back at the current revision.
    user_delete(&mut s, "web-0");
    s.sync();
    assert_eq!(image(&s, "web-0"), "busybox:1");
    s.ready("web-0");
    // The partition lowered: web-0 is updated, and the revision is current.
    s.apply(&sts(3, &part(0), "2"));
    s.sync();
    s.advance(1_000);
    assert_eq!(image(&s, "web-0"), "busybox:2");
    s.ready("web-0");
    s.sync();
    let st = status(&s, WorkloadKind::StatefulSet, "web");
    assert_eq!(st["currentRevision"], st["updateRevision"]);
    assert_eq!(st["currentReplicas"], 3);
    // The claims survived every update.
    assert_eq!(s.volumes.len(), 3);
    assert_eq!(
        s.spec("web-0").spec.volumes[0]
            .persistent_volume_claim
            .as_ref()
            .unwrap()
            .claim_name,
        "www-web-0"
    );
}

#[test]
fn on_delete_updates_only_deleted_pods() {
    let mut s = Sim::new();
    let od = "updateStrategy: {type: OnDelete}";
    s.apply(&sts(2, od, "1"));
    settle_ordered(&mut s);
    s.apply(&sts(2, od, "2"));
    s.advance(60_000);
    assert_eq!(image(&s, "web-0"), "busybox:1");
    assert_eq!(image(&s, "web-1"), "busybox:1");
    user_delete(&mut s, "web-0");
    s.sync();
    assert_eq!(image(&s, "web-0"), "busybox:2");
    assert_eq!(image(&s, "web-1"), "busybox:1");
}

#[test]
fn a_restart_mid_rollout_resumes_without_duplicates() {
    let mut s = Sim::new();
    s.grace_ms = 1_000;
    s.apply(&sts(3, "", "1"));
    settle_ordered(&mut s);
    s.apply(&sts(3, "", "2"));
    s.sync();
    s.advance(1_000);
    s.restart();
    s.sync();
    assert_eq!(image(&s, "web-2"), "busybox:2");
    assert_eq!(image(&s, "web-1"), "busybox:1", "web-1 waits for web-2");
    s.ready("web-2");
    s.sync();
    s.restart();
    s.advance(1_000);
    s.ready("web-1");
    s.sync();
    s.advance(1_000);
    s.ready("web-0");
    s.sync();
    for p in ["web-0", "web-1", "web-2"] {
        assert_eq!(image(&s, p), "busybox:2");
    }
    assert_eq!(s.live().len(), 3);
    let st = status(&s, WorkloadKind::StatefulSet, "web");
    assert_eq!(st["currentRevision"], st["updateRevision"]);
}

#[test]
fn claims_are_deleted_after_their_pods_only_under_the_retention_policy() {
    let mut s = Sim::new();
    s.grace_ms = 1_000;
    let policy = "persistentVolumeClaimRetentionPolicy: {whenScaled: Delete, whenDeleted: Delete}";
    s.apply(&sts(3, policy, "1"));
    settle_ordered(&mut s);
    s.apply(&sts(2, policy, "1"));
    s.sync();
    assert!(
        s.volumes.contains("default/www-web-2"),
        "the pod still uses it"
    );
    s.advance(1_000);
    assert!(!s.volumes.contains("default/www-web-2"));
    assert_eq!(s.volumes.len(), 2);
    // The set removed: its pods go, then their claims.
    let key = s.w.entries().next().unwrap().key();
    s.w.remove(&key, s.now);
    assert!(!s.w.is_empty(), "claims wait for their pods: sync must run");
    s.sync();
    assert_eq!(s.volumes.len(), 2);
    // An agent killed here still deletes them (state file version 5).
    s.restart();
    assert!(!s.w.is_empty(), "the doomed claims were saved");
    s.advance(1_000);
    s.sync();
    assert!(s.volumes.is_empty(), "{:?}", s.volumes);
    assert!(s.w.is_empty());
    // Retain (the default): a removed set leaves its claims.
    let mut s = Sim::new();
    s.apply(&sts(1, "", "1"));
    s.sync();
    let key = s.w.entries().next().unwrap().key();
    s.w.remove(&key, s.now);
    s.advance(1_000);
    assert_eq!(s.volumes.len(), 1);
}

#[test]
fn ordinals_start_and_a_failed_pod_is_recreated() {
    let mut s = Sim::new();
    s.apply(&sts(2, "ordinals: {start: 5}", "1"));
    settle_ordered(&mut s);
    assert_eq!(names(&s), ["web-5", "web-6"]);
    s.exit("web-5", 1);
    let out = s.sync();
    assert_eq!(events(&out, "RecreatingFailedPod").len(), 1);
    assert_eq!(events(&out, "BackOff").len(), 1);
    s.advance(999);
    assert_eq!(names(&s), ["web-6"], "the failed-pod back-off: 1 s");
    s.advance(1);
    assert_eq!(names(&s), ["web-5", "web-6"]);
    assert!(!s.pods["web-5"].1.ready);
}
