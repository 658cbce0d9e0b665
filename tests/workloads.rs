//! Workloads end to end, the plumbing every kind shares: a workload from
//! the manifests directory makes its pods (owner references, Kubernetes
//! names), `get`/`describe` show it with kubectl's columns, a kill -9 of
//! the agent neither duplicates nor orphans pods, and removing the
//! workload deletes them.

mod support;
use serde_json::Value;
use support::*;

fn deployment(name: &str, replicas: u32, image_tag_env: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {IMAGE}
        command: ["sh", "-c", "echo {image_tag_env}; exec sleep 3600"]
"#
    )
}

/// The pods whose owner reference names `owner`.
fn owned(a: &Agent, owner_prefix: &str) -> Vec<Value> {
    a.pods()
        .into_iter()
        .filter(|p| {
            p["metadata"]["ownerReferences"][0]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(owner_prefix))
                && p["metadata"]["deletionTimestamp"].is_null()
        })
        .collect()
}

fn running(pods: &[Value]) -> usize {
    pods.iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .count()
}

#[test]
fn a_deployment_runs_its_replicas_survives_a_kill_9_and_goes_with_its_manifest() {
    if !root_or_skip() {
        return;
    }
    let mut a = Agent::start();
    a.apply("web.yaml", &deployment("web", 2, "v1"));
    let pods = wait_for(30, "2 running pods of web", || {
        let p = owned(&a, "web-");
        (p.len() == 2 && running(&p) == 2).then_some(p)
    });
    let mut names: Vec<String> = Vec::new();
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap();
        let hash = p["metadata"]["labels"]["pod-template-hash"]
            .as_str()
            .unwrap();
        assert!(name.starts_with(&format!("web-{hash}-")), "{name}");
        let r = &p["metadata"]["ownerReferences"][0];
        assert_eq!(r["kind"], "ReplicaSet");
        assert_eq!(r["name"], format!("web-{hash}"));
        assert_eq!(r["controller"], true);
        names.push(name.to_string());
    }
    names.sort();
    let out = a.cli(&["describe", "pod", &names[0]]);
    let text = String::from_utf8_lossy(&out.stdout);
    let hash = pods[0]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l == format!("Controlled By:  ReplicaSet/web-{hash}")),
        "{text}"
    );

    // kubectl's columns.
    let out = a.cli(&["get", "deployments"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["web", "2/2", "2", "2"], "{table}");
    let out = a.cli(&["get", "deploy/web", "-o", "yaml"]);
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(yaml.contains("kind: Deployment"), "{yaml}");
    assert!(yaml.contains("readyReplicas: 2"), "{yaml}");
    let out = a.cli(&["describe", "deployment", "web"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Replicas:"), "{text}");
    for n in &names {
        assert!(text.contains(n.as_str()), "{n} not in\n{text}");
    }
    let out = a.cli(&["get", "deployments", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Error from server (NotFound): deployments.apps \"nope\" not found"),
        "{out:?}"
    );

    // kill -9 and restart: the same pods, none added.
    a.kill9();
    a.spawn();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let after = wait_for(20, "web's pods after the restart", || {
        let p = owned(&a, "web-");
        (running(&p) == 2).then_some(p)
    });
    let mut again: Vec<String> = after
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    again.sort();
    assert_eq!(again, names, "the restart must keep exactly the same pods");

    // The manifest goes: the Deployment and its pods go.
    a.remove("web.yaml");
    wait_for(30, "web's pods gone", || {
        a.pods()
            .iter()
            .all(|p| {
                !p["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("web-")
            })
            .then_some(())
    });
    let out = a.cli(&["get", "deployments"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No resources found"),
        "{out:?}"
    );
    a.assert_one_thread();
}

#[test]
fn an_invalid_workload_names_its_field_and_changes_nothing() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply("api.yaml", &deployment("api", 1, "v1"));
    let before = wait_for(30, "api running", || {
        let p = owned(&a, "api-");
        (running(&p) == 1).then_some(p)
    });
    a.apply(
        "api.yaml",
        &deployment("api", 1, "v2").replace("  replicas: 1\n", "  replicas: 1\n  replica: 2\n"),
    );
    let out = wait_for(20, "the refusal", || {
        let out = a.cli(&["get", "pods"]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        err.contains("spec.replica").then_some(err)
    });
    assert!(out.contains("api.yaml"), "{out}");
    let now = owned(&a, "api-");
    assert_eq!(now.len(), 1);
    assert_eq!(now[0]["metadata"]["uid"], before[0]["metadata"]["uid"]);
}

/// `tests/k8s-docs/NAME`, the image swapped for the test image (the
/// manifests the pure tests load, as the Kubernetes docs show them).
fn k8s_docs(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/k8s-docs")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut swapped = 0;
    let out: Vec<String> = text
        .lines()
        .map(|l| match l.split_once("image: ") {
            Some((indent, _)) if indent.trim_start_matches(' ').is_empty() => {
                swapped += 1;
                format!("{indent}image: {IMAGE}")
            }
            _ => l.to_string(),
        })
        .collect();
    assert_eq!(swapped, 1, "{name}: one image to swap");
    out.join("\n") + "\n"
}

fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or("")
}

fn named<'a>(pods: &'a [Value], prefix: &str) -> Vec<&'a Value> {
    pods.iter()
        .filter(|p| {
            p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect()
}

/// Each kind from the Kubernetes docs' examples, on one agent: the
/// nginx Deployment's 3 pods and the fluentd DaemonSet's one run, the
/// StatefulSet `web` starts web-0..2, Job `pi` completes, and CronJob
/// `hello` runs its Job at the next minute (the clock taken as
/// synchronized).
#[test]
fn the_kubernetes_docs_examples_of_each_kind_run() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start_with(&["--assume-clock-synchronized"]);
    for f in [
        "nginx-deployment.yaml",
        "fluentd-elasticsearch.yaml",
        "web-statefulset.yaml",
        "pi-job.yaml",
        "hello-cronjob.yaml",
    ] {
        a.apply(f, &k8s_docs(f));
    }
    // Deployment: 3 running pods named <deploy>-<hash>-<5>, serving.
    let deploy = wait_for(60, "nginx-deployment's 3 pods running", || {
        let p = owned(&a, "nginx-deployment-");
        (p.len() == 3 && running(&p) == 3).then_some(p)
    });
    let name = deploy[0]["metadata"]["name"].as_str().unwrap();
    let hash = deploy[0]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert!(
        name.starts_with(&format!("nginx-deployment-{hash}-")),
        "{name}"
    );
    let (code, page) = a.exec(name, "nginx", &["wget", "-qO-", "http://127.0.0.1/"]);
    assert_eq!((code, page.trim()), (0, "picolet busybox test image"));
    // DaemonSet: one pod on this node, in kube-system.
    let ds = wait_for(60, "fluentd-elasticsearch running", || {
        let p = owned(&a, "fluentd-elasticsearch");
        (p.len() == 1 && running(&p) == 1).then_some(p)
    });
    assert_eq!(ds[0]["metadata"]["namespace"], "kube-system");
    assert_eq!(ds[0]["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    // StatefulSet: web-0, web-1, web-2 in order (minReadySeconds 10 each).
    let sts = wait_for(90, "web-0..2 running", || {
        let p = owned(&a, "web");
        let mut n: Vec<&str> = p
            .iter()
            .filter(|p| phase(p) == "Running")
            .map(|p| p["metadata"]["name"].as_str().unwrap())
            .collect();
        n.sort();
        (n == ["web-0", "web-1", "web-2"]).then_some(p)
    });
    assert!(
        sts.iter()
            .all(|p| p["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet")
    );
    // Job: its pod succeeded, the Job is Complete.
    let pi = wait_for(60, "pi's pod succeeded", || {
        let pods = a.pods();
        let p = named(&pods, "pi-");
        (p.len() == 1 && phase(p[0]) == "Succeeded").then(|| p[0].clone())
    });
    let log = a.cli(&["logs", pi["metadata"]["name"].as_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&log.stdout).trim(), "3.14");
    wait_for(20, "pi Complete", || {
        let out = a.cli(&["get", "job/pi", "-o", "yaml"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("type: Complete")
            .then_some(())
    });
    // CronJob: a Job hello-<minutes> whose pod says hello.
    let hello = wait_for(90, "hello's first pod succeeded", || {
        let pods = a.pods();
        named(&pods, "hello-")
            .into_iter()
            .find(|p| phase(p) == "Succeeded")
            .cloned()
    });
    assert_eq!(hello["metadata"]["ownerReferences"][0]["kind"], "Job");
    let log = a.cli(&["logs", hello["metadata"]["name"].as_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&log.stdout).contains("Hello from the Kubernetes cluster"),
        "{log:?}"
    );
    // Everything still as it was: nothing crash-looped meanwhile.
    for p in owned(&a, "nginx-deployment-")
        .iter()
        .chain(&owned(&a, "fluentd-elasticsearch"))
        .chain(&owned(&a, "web"))
    {
        assert_eq!(phase(p), "Running", "{p}");
        assert_eq!(
            p["status"]["containerStatuses"][0]["restartCount"], 0,
            "{p}"
        );
    }
    a.assert_one_thread();
}
