//! DaemonSet and StatefulSet end to end (real agent, busybox): a
//! DaemonSet whose nodeSelector matches the node's labels runs, one that
//! does not runs nothing and says why, a bare Pod that does not match is
//! rejected (`NodeAffinity`); a StatefulSet starts in order, names its
//! pods in `/etc/hosts`, and its claim directory keeps its data across an
//! update, then goes under `whenDeleted: Delete`. A Deployment whose pods
//! the node rejects at admission backs off (1 s, 2 s, 4 s, …) and does not
//! write the state file between attempts.

mod support;
use serde_json::Value;
use support::*;

fn daemonset(name: &str, zone: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {name}
spec:
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 1
      nodeSelector:
        zone: {zone}
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions:
              - {{key: kubernetes.io/os, operator: In, values: [linux]}}
              - {{key: picolet.io/board, operator: Exists}}
      containers:
      - name: main
        image: {IMAGE}
        command: ["sleep", "3600"]
"#
    )
}

fn owned_by(a: &Agent, owner: &str) -> Vec<Value> {
    a.pods()
        .into_iter()
        .filter(|p| {
            p["metadata"]["ownerReferences"][0]["name"] == owner
                && p["metadata"]["deletionTimestamp"].is_null()
        })
        .collect()
}

#[test]
fn a_daemonset_runs_where_its_node_selector_matches_and_says_why_not_elsewhere() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start_with(&["--node-label", "zone=barn"]);
    a.apply("here.yaml", &daemonset("here", "barn"));
    a.apply("there.yaml", &daemonset("there", "loft"));
    a.apply(
        "bare.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: bare}}\nspec:\n  nodeSelector: {{zone: loft}}\n  containers:\n  - {{name: c, image: {IMAGE}, command: [sleep, '3600']}}\n"
        ),
    );
    let pod = wait_for(30, "the matching DaemonSet's pod running", || {
        owned_by(&a, "here")
            .into_iter()
            .find(|p| p["status"]["phase"] == "Running")
    });
    let name = pod["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("here-") && name.len() == "here-".len() + 5,
        "{name}"
    );
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    assert!(pod["metadata"]["labels"]["controller-revision-hash"].is_string());
    assert_eq!(pod["metadata"]["labels"]["pod-template-generation"], "1");
    // The other one runs nothing and says why.
    let yaml = wait_for(20, "there's status", || {
        let out = a.cli(&["get", "ds/there", "-o", "yaml"]);
        let y = String::from_utf8_lossy(&out.stdout).to_string();
        y.contains("NodeSelectorMismatch").then_some(y)
    });
    assert!(yaml.contains("desiredNumberScheduled: 0"), "{yaml}");
    let out = a.cli(&["describe", "ds", "there"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NodeSelectorMismatch"), "{text}");
    assert!(owned_by(&a, "there").is_empty());
    // A bare Pod that does not match is rejected, as the kubelet does.
    let bare = wait_for(20, "the bare pod rejected", || {
        a.pod("bare").filter(|p| p["status"]["phase"] == "Failed")
    });
    assert_eq!(bare["status"]["reason"], "NodeAffinity");
    assert_eq!(
        bare["status"]["message"],
        "Pod was rejected: Predicate NodeAffinity failed"
    );
    a.assert_one_thread();
}

#[test]
fn a_deployment_rejected_at_admission_backs_off_without_writing_the_state_file() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start_with(&["--node-label", "zone=barn"]);
    let t0 = std::time::Instant::now();
    a.apply(
        "web.yaml",
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      nodeSelector: {{zone: loft}}\n      containers:\n      - {{name: c, image: {IMAGE}, command: [sleep, '3600']}}\n"
        ),
    );
    // The 4th attempt comes after 1 + 2 + 4 s of back-off (it used to be
    // a hot loop: a new pod at once after each rejection).
    let text = wait_for(40, "the back-off at 8 s", || {
        let out = a.cli(&["describe", "deployment", "web"]);
        let t = String::from_utf8_lossy(&out.stdout).to_string();
        t.contains("Back-off 8s before replacing failed pod web-")
            .then_some(t)
    });
    assert!(t0.elapsed().as_secs() >= 7, "{:?}", t0.elapsed());
    assert!(text.contains("NodeAffinity: Pod was rejected"), "{text}");
    assert!(!text.contains("Back-off 16s"), "{text}");
    // Between attempts nothing is written.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let stamp = || {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(a.state().join("state.bin")).unwrap();
        (m.ino(), m.mtime_nsec(), m.mtime())
    };
    let before = stamp();
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(stamp(), before, "state.bin written between attempts");
    let text =
        String::from_utf8_lossy(&a.cli(&["describe", "deployment", "web"]).stdout).to_string();
    assert!(!text.contains("Back-off 16s"), "{text}");
    a.assert_one_thread();
}

fn statefulset(version: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  selector:
    matchLabels:
      app: db
  serviceName: db
  replicas: 2
  persistentVolumeClaimRetentionPolicy:
    whenDeleted: Delete
  template:
    metadata:
      labels:
        app: db
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {IMAGE}
        command: ["sh", "-c", "echo {version} >> /data/log; exec sleep 3600"]
        readinessProbe:
          exec: {{command: ["true"]}}
          initialDelaySeconds: 2
          periodSeconds: 1
        volumeMounts:
        - name: data
          mountPath: /data
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: ["ReadWriteOnce"]
      resources:
        requests:
          storage: 100Mi
"#
    )
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

#[test]
fn a_statefulset_starts_in_order_and_its_claims_keep_their_data_across_an_update() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply("db.yaml", &statefulset("v1"));
    // Sampled: db-1 never exists before db-0 is ready.
    let mut saw_db0_unready = false;
    wait_for(60, "db-0 and db-1 ready", || {
        let pods = owned_by(&a, "db");
        let get = |n: &str| pods.iter().find(|p| p["metadata"]["name"] == n);
        if let Some(p0) = get("db-0") {
            if !ready(p0) {
                saw_db0_unready = true;
                assert!(get("db-1").is_none(), "db-1 started before db-0 was ready");
            }
        }
        (get("db-0").is_some_and(ready) && get("db-1").is_some_and(ready)).then_some(())
    });
    assert!(saw_db0_unready, "db-0 was never seen starting");
    let claim = a.state().join("volumes/default/data-db-0");
    assert_eq!(std::fs::read_to_string(claim.join("log")).unwrap(), "v1\n");
    let (code, hosts) = a.exec("db-0", "main", &["cat", "/etc/hosts"]);
    assert_eq!(code, 0, "{hosts}");
    assert!(
        hosts.contains("\tdb-0.db.default.svc.cluster.local\tdb-0\n"),
        "{hosts}"
    );
    let (_, host) = a.exec("db-1", "main", &["hostname"]);
    assert_eq!(host.trim(), "db-1");
    let before = a.pod("db-0").unwrap()["metadata"]["uid"].clone();

    // The update: db-1 then db-0 are made again; the data stays.
    a.apply("db.yaml", &statefulset("v2"));
    wait_for(60, "both pods updated and ready", || {
        let pods = owned_by(&a, "db");
        let p0 = pods.iter().find(|p| p["metadata"]["name"] == "db-0")?;
        (p0["metadata"]["uid"] != before
            && pods.len() == 2
            && pods.iter().all(ready)
            && std::fs::read_to_string(claim.join("log")).ok()? == "v1\nv2\n")
            .then_some(())
    });
    let (code, log) = a.exec("db-0", "main", &["cat", "/data/log"]);
    assert_eq!((code, log.as_str()), (0, "v1\nv2\n"));
    let out = a.cli(&["get", "sts/db", "-o", "yaml"]);
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(yaml.contains("updatedReplicas: 2"), "{yaml}");

    // whenDeleted: Delete: the claims go after the pods.
    a.remove("db.yaml");
    wait_for(30, "the claim directories deleted", || {
        (!a.state().join("volumes/default/data-db-0").exists()
            && !a.state().join("volumes/default/data-db-1").exists())
        .then_some(())
    });
    assert!(owned_by(&a, "db").is_empty());
}
