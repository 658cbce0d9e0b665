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
