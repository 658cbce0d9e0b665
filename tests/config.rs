//! ConfigMaps and Secrets from the manifests directory, and the volumes and
//! env that read them: configMap/secret/downwardAPI/projected volumes,
//! in-place updates, Secret file modes and secrecy, resourceFieldRef,
//! envFrom with a prefix, CreateContainerConfigError, subPath escapes.
//! Upstream examples (kubernetes/website, CC BY 4.0) are in tests/config/.

mod support;
use picolet::fleet::doc::seal_envelope;
use picolet::fleet::sign::{SigningKey, read_private_key};
use serde_json::json;
use support::fleet::*;
use support::*;

const SECRET_VALUE: &str = "s3cr3t-value-9f2c";

fn example(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/config/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace("\"IMAGE\"", &format!("{IMAGE:?}"))
    .replace("image: IMAGE", &format!("image: {IMAGE}"))
}

fn config_map(level: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: special-config
data:
  SPECIAL_LEVEL: {level}
  SPECIAL_TYPE: charm
  1bad: skipped-without-prefix
binaryData:
  blob: AAEC
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
type: Opaque
data:
  user: YWRtaW4=
stringData:
  password: {SECRET_VALUE}
"#
    )
}

const VOLUMES_POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: vols
  labels: {app: vols}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: IMAGE
    command: ["sleep", "3600"]
    env:
    - name: PASSWORD
      valueFrom:
        secretKeyRef: {name: creds, key: password}
    - name: SA
      valueFrom:
        fieldRef: {fieldPath: spec.serviceAccountName}
    volumeMounts:
    - {name: config, mountPath: /etc/config}
    - {name: config, mountPath: /etc/level, subPath: SPECIAL_LEVEL}
    - {name: secret, mountPath: /etc/secret}
    - {name: all, mountPath: /etc/all}
  volumes:
  - name: config
    configMap: {name: special-config}
  - name: secret
    secret: {secretName: creds}
  - name: all
    projected:
      defaultMode: 0440
      sources:
      - configMap:
          name: special-config
          items: [{key: SPECIAL_TYPE, path: cm/type}]
      - secret:
          name: creds
          items: [{key: user, path: user, mode: 0400}]
      - downwardAPI:
          items: [{path: name, fieldRef: {fieldPath: metadata.name}}]
"#;

fn exec_ok(a: &Agent, pod: &str, c: &str, script: &str) -> String {
    let (code, out) = a.exec(pod, c, &["sh", "-c", script]);
    assert_eq!(code, 0, "{script}: {out}");
    out
}

#[test]
fn config_maps_and_secrets_reach_volumes_and_env() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply("objects.yaml", &config_map("very"));
    a.apply("vols.yaml", &VOLUMES_POD.replace("IMAGE", IMAGE));
    a.apply("dapi-volume.yaml", &example("dapi-volume.yaml"));
    a.apply("dapi-envars.yaml", &example("dapi-envars-container.yaml"));
    a.apply("envfrom.yaml", &example("pod-configmap-envFrom.yaml"));

    // configMap volume: one file per key, the kubelet's layout.
    a.wait_running("vols", "main", 60);
    let out = exec_ok(
        &a,
        "vols",
        "main",
        "cat /etc/config/SPECIAL_LEVEL; echo; cat /etc/level; echo; ls -a /etc/config",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..2], &["very", "very"], "{out}");
    for name in ["..data", "SPECIAL_LEVEL", "SPECIAL_TYPE", "1bad", "blob"] {
        assert!(lines.contains(&name), "{name} missing: {out}");
    }
    let out = exec_ok(
        &a,
        "vols",
        "main",
        "readlink /etc/config/SPECIAL_LEVEL; od -An -tx1 /etc/config/blob",
    );
    assert!(out.starts_with("..data/SPECIAL_LEVEL\n"), "{out}");
    assert_eq!(out.lines().nth(1).unwrap().trim(), "00 01 02", "{out}");
    // Read-only, as in Kubernetes.
    let (code, _) = a.exec("vols", "main", &["sh", "-c", "echo x > /etc/config/new"]);
    assert_ne!(code, 0, "a configMap volume must be read-only");

    // Secret volume: 0600 files, on a tmpfs, env from a secretKeyRef.
    let out = exec_ok(
        &a,
        "vols",
        "main",
        "stat -L -c %a /etc/secret/password; cat /etc/secret/password; echo; cat /etc/secret/user; echo; echo $PASSWORD; echo $SA",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["600", SECRET_VALUE, "admin", SECRET_VALUE, "default"],
        "{out}"
    );
    let uid = a.pod("vols").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_dir = a.run_dir().join("pods").join(&uid).join("volumes/secret");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mountinfo.lines().any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.get(4) == Some(&secret_dir.to_str().unwrap()) && l.contains(" - tmpfs ")
        }),
        "{} is not a tmpfs",
        secret_dir.display()
    );
    // Projected: a mix of the three, with defaultMode and an item's mode.
    let out = exec_ok(
        &a,
        "vols",
        "main",
        "cat /etc/all/cm/type; echo; cat /etc/all/name; echo; stat -L -c %a /etc/all/cm/type /etc/all/user /etc/all/name",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["charm", "vols", "440", "400", "440"],
        "{out}"
    );

    // downwardAPI: the kubelet's `key="value"` lines, sorted.
    a.wait_running(
        "kubernetes-downwardapi-volume-example",
        "client-container",
        30,
    );
    let out = exec_ok(
        &a,
        "kubernetes-downwardapi-volume-example",
        "client-container",
        "cat /etc/podinfo/labels; echo; echo --; cat /etc/podinfo/annotations",
    );
    assert_eq!(
        out,
        "cluster=\"test-cluster1\"\nrack=\"rack-22\"\nzone=\"us-est-coast\"\n--\nbuild=\"two\"\nbuilder=\"john-doe\"",
    );

    // resourceFieldRef: divided by the divisor, rounded up.
    a.wait_running("dapi-envars-resourcefieldref", "test-container", 30);
    let out = exec_ok(
        &a,
        "dapi-envars-resourcefieldref",
        "test-container",
        "for v in MY_CPU_REQUEST MY_CPU_LIMIT MY_MEM_REQUEST MY_MEM_LIMIT MY_CPU_LIMIT_MILLIS \
         MY_MEM_LIMIT_MI; do eval echo \\$$v; done",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["1", "1", "33554432", "67108864", "250", "64"]
    );

    // envFrom with a prefix; without one, the invalid key is skipped.
    a.wait_running("dapi-test-pod", "test-container", 30);
    let env = exec_ok(&a, "dapi-test-pod", "test-container", "env");
    for line in [
        "CFG_SPECIAL_LEVEL=very",
        "CFG_SPECIAL_TYPE=charm",
        "CFG_1bad=skipped-without-prefix",
        "SPECIAL_LEVEL=very",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing: {env}");
    }
    assert!(!env.contains("\n1bad="), "{env}");
    assert!(!env.contains("blob="), "binaryData is not env: {env}");
    assert!(
        a.agent_log()
            .contains("Keys [1bad] from the EnvFrom configmap default/special-config were skipped")
    );

    // An update reaches the configMap volume in place, not the subPath
    // mount nor the env.
    a.apply("objects.yaml", &config_map("updated"));
    wait_for(20, "the configMap volume updated", || {
        let (_, out) = a.exec("vols", "main", &["cat", "/etc/config/SPECIAL_LEVEL"]);
        (out == "updated").then_some(())
    });
    let out = exec_ok(&a, "vols", "main", "cat /etc/level");
    assert_eq!(out, "very", "a subPath mount is not updated");
    let env = exec_ok(&a, "dapi-test-pod", "test-container", "echo $SPECIAL_LEVEL");
    assert_eq!(env.trim(), "very", "env is read at start only");

    // The Secret's value is in neither the agent's log nor describe.
    let describe = a.cli(&["describe", "pod", "vols"]);
    let text = String::from_utf8_lossy(&describe.stdout);
    assert!(describe.status.success(), "{text}");
    assert!(
        text.contains("<set to the key 'password' in secret 'creds'>"),
        "{text}"
    );
    assert!(text.contains("SecretName:"), "{text}");
    assert!(!text.contains(SECRET_VALUE), "{text}");
    // `get`: kubectl's columns, keys counted, no values.
    let cm = String::from_utf8(a.cli(&["get", "configmaps"]).stdout).unwrap();
    let mut cm_lines = cm.lines();
    assert_eq!(
        cm_lines
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["NAME", "DATA", "AGE"]
    );
    assert_eq!(
        cm_lines
            .next()
            .unwrap()
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>(),
        ["special-config", "4"]
    );
    let out = a.cli(&["get", "secrets", "-A"]);
    let secrets = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = secrets
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAMESPACE", "NAME", "TYPE", "DATA", "AGE"]);
    assert_eq!(rows[1][..4], ["default", "creds", "Opaque", "2"]);
    assert!(!secrets.contains(SECRET_VALUE));
    let out = a.cli(&["get", "cm", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("configmaps \"nope\" not found"));
    assert!(!a.agent_log().contains(SECRET_VALUE));
    a.assert_one_thread();
}

const TWO_CONTAINERS: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: refs
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: good
    image: IMAGE
    command: ["sleep", "3600"]
  - name: missing-map
    image: IMAGE
    command: ["sleep", "3600"]
    env:
    - name: X
      valueFrom:
        configMapKeyRef: {name: late, key: k}
  - name: missing-key
    image: IMAGE
    command: ["sleep", "3600"]
    env:
    - name: X
      valueFrom:
        configMapKeyRef: {name: present, key: nokey}
    - name: Y
      valueFrom:
        configMapKeyRef: {name: absent, key: k, optional: true}
"#;

const SUBPATH_POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: subpaths
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: plant
    image: IMAGE
    command: ["sh", "-c", "ln -s /etc /vol/evil && ln -s ../../.. /vol/up && mkdir -p /vol/ok"]
    volumeMounts: [{name: vol, mountPath: /vol}]
  containers:
  - name: ok
    image: IMAGE
    command: ["sleep", "3600"]
    env:
    - name: POD
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    volumeMounts:
    - {name: vol, mountPath: /data, subPathExpr: "ok/$(POD)"}
  - name: escape
    image: IMAGE
    command: ["sleep", "3600"]
    volumeMounts: [{name: vol, mountPath: /x, subPath: evil}]
  - name: escape-up
    image: IMAGE
    command: ["sleep", "3600"]
    volumeMounts: [{name: vol, mountPath: /x, subPath: up/x}]
  volumes:
  - name: vol
    emptyDir: {}
"#;

fn waiting(a: &Agent, pod: &str, c: &str) -> (String, String) {
    wait_for(
        30,
        &format!("{pod}/{c} waiting with a config error"),
        || {
            let s = a.container(pod, c)?;
            let w = &s["state"]["waiting"];
            (w["reason"] == "CreateContainerConfigError").then(|| {
                (
                    w["reason"].as_str().unwrap().to_string(),
                    w["message"].as_str().unwrap_or("").to_string(),
                )
            })
        },
    )
}

#[test]
fn missing_references_and_sub_path_escapes_are_create_container_config_errors() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply(
        "present.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: present}\ndata: {a: b}\n",
    );
    a.apply("refs.yaml", &TWO_CONTAINERS.replace("IMAGE", IMAGE));
    a.apply("subpaths.yaml", &SUBPATH_POD.replace("IMAGE", IMAGE));

    // The kubelet's messages; the pod's other container runs.
    a.wait_running("refs", "good", 60);
    let (_, m) = waiting(&a, "refs", "missing-map");
    assert_eq!(m, r#"configmap "late" not found"#);
    let (_, m) = waiting(&a, "refs", "missing-key");
    assert_eq!(m, "couldn't find key nokey in ConfigMap default/present");
    assert!(a.container("refs", "good").unwrap()["state"]["running"].is_object());

    // subPath escapes are refused; subPathExpr is expanded from the env.
    a.wait_running("subpaths", "ok", 60);
    let (_, m) = waiting(&a, "subpaths", "escape");
    assert!(
        m.starts_with("failed to prepare subPath for volumeMount \"vol\" of container \"escape\""),
        "{m}"
    );
    let (_, m) = waiting(&a, "subpaths", "escape-up");
    assert!(m.contains("outside of its volume"), "{m}");
    let uid = a.pod("subpaths").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        a.state()
            .join("pods")
            .join(&uid)
            .join("volumes/vol/ok/subpaths")
            .is_dir(),
        "subPathExpr ok/$(POD) was not created"
    );

    // The missing ConfigMap appears: the container starts on the next try.
    a.apply(
        "late.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late}\ndata: {k: arrived}\n",
    );
    a.wait_running("refs", "missing-map", 30);
    let (_, out) = a.exec("refs", "missing-map", &["sh", "-c", "echo $X"]);
    assert_eq!(out.trim(), "arrived");

    // An invalid object names its field, and changes nothing.
    a.apply(
        "bad.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: bad}\ndata: {k: not-base64!}\n",
    );
    wait_for(10, "the invalid Secret reported", || {
        a.agent_log()
            .contains("data.k: not valid base64")
            .then_some(())
    });
    a.assert_one_thread();
}

fn fleet_doc(revision: u64, level: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "picolet.io/v1", "kind": "DeviceState", "revision": revision,
        "pods": [{
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fleet-reader"},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "main", "image": IMAGE, "command": ["sleep", "3600"],
                    "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "fleet-secret", "key": "token"}}}],
                    "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]
                }],
                "volumes": [{"name": "cfg", "configMap": {"name": "fleet-config"}}]
            }
        }],
        "configMaps": [{"metadata": {"name": "fleet-config"}, "data": {"level": level}}],
        "secrets": [{"metadata": {"name": "fleet-secret"}, "stringData": {"token": SECRET_VALUE}}]
    }))
    .unwrap()
}

#[test]
fn signed_fleet_documents_carry_config_maps_and_secrets_that_survive_a_restart_without_the_broker()
{
    if !root_or_skip() {
        return;
    }
    let Some(mut broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let keys = tempfile::tempdir().unwrap();
    let key_path = keys.path().join("fleet");
    ok(ctl(&["keygen", key_path.to_str().unwrap()]));
    let public = format!("{}.pub", key_path.display());
    let key =
        SigningKey::from_pkcs8(&read_private_key(&keys.path().join("fleet.key")).unwrap()).unwrap();
    let mut a = fleet_agent(&url, "dev1", &["--fleet-key", &public]);
    let topic = "picolet/devices/dev1/desired";

    // Unsigned: refused, nothing runs.
    publish_raw(&url, topic, fleet_doc(1, "one"));
    wait_status(&url, "dev1", 15, "the unsigned document refused", |s| {
        !errors_on(s, topic).is_empty()
    });
    assert!(a.pod("fleet-reader").is_none());

    publish_raw(&url, topic, seal_envelope(&fleet_doc(2, "one"), &key));
    a.wait_running("fleet-reader", "main", 60);
    let (_, out) = a.exec(
        "fleet-reader",
        "main",
        &["sh", "-c", "cat /cfg/level; echo; echo $TOKEN"],
    );
    assert_eq!(out, format!("one\n{SECRET_VALUE}\n"));

    // A new revision changes the ConfigMap: the file follows in place.
    publish_raw(&url, topic, seal_envelope(&fleet_doc(3, "two"), &key));
    wait_for(20, "the fleet ConfigMap updated in the volume", || {
        let (_, out) = a.exec("fleet-reader", "main", &["cat", "/cfg/level"]);
        (out == "two").then_some(())
    });

    // Kept in the state file (0600) only: a reboot without the broker
    // still has the Secret.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(a.state().join("state.bin"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    a.kill9();
    broker.stop();
    for e in std::fs::read_dir(a.state().join("pods")).unwrap().flatten() {
        shutdown_shim(&e.path().join("shim.sock"));
    }
    a.spawn();
    a.wait_running("fleet-reader", "main", 60);
    let (_, out) = a.exec(
        "fleet-reader",
        "main",
        &["sh", "-c", "cat /cfg/level; echo; echo $TOKEN"],
    );
    assert_eq!(out, format!("two\n{SECRET_VALUE}\n"));
    assert!(!a.agent_log().contains(SECRET_VALUE));
    a.assert_one_thread();
}
