use super::{MINIMAL, load_err, load_one, with_container_lines};
use crate::spec::{ErrorKind, IntOrString, RestartPolicy, load_file, load_str};

#[test]
fn minimal_pod_loads_with_namespace_default_and_empty_uid() {
    let pod = load_one(MINIMAL).unwrap();
    assert_eq!(pod.metadata.name, "p");
    assert_eq!(pod.metadata.namespace, "default");
    assert_eq!(pod.metadata.uid, "");
    assert_eq!(pod.kind, "Pod");
    assert_eq!(pod.api_version, "v1");
    assert_eq!(pod.spec.containers[0].image, "picolet.test/busybox:1");
    assert_eq!(pod.spec.restart_policy, RestartPolicy::Always);
}

#[test]
fn kubectl_export_with_status_and_managed_fields_loads() {
    let text = include_str!("fixtures/exported.yaml");
    let pod = load_one(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pod.metadata.name, "web-7d4b9c6f5-x2x9k");
    assert_eq!(pod.metadata.namespace, "shop");
    assert_eq!(pod.metadata.uid, "5b0bd1a3-2b7e-4f0a-9c55-0d0d7c4f9e21");
    assert_eq!(pod.metadata.labels["app"], "web");
    let c = &pod.spec.containers[0];
    assert_eq!(c.resources.cpu_limit_millis(), Some(500));
    assert_eq!(c.resources.memory_request_bytes(), Some(64 << 20));
    let http = c
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(http.port, IntOrString::String("http".into()));
    // The service-account token volume and its mount are dropped, the rest kept.
    assert_eq!(pod.spec.volumes.len(), 1);
    assert_eq!(pod.spec.volumes[0].name, "cache");
    assert_eq!(c.volume_mounts.len(), 1);
    assert_eq!(c.volume_mounts[0].mount_path, "/cache");
    assert_eq!(pod.spec.node_name.as_deref(), Some("node-1"));
}

#[test]
fn several_documents_load_in_order_and_empty_ones_are_skipped() {
    let text = format!(
        "---\n# only a comment\n---\n{MINIMAL}---\n---\n{}",
        MINIMAL.replace("name: p", "name: q")
    );
    let pods: Vec<_> = load_str(&text, "multi.yaml")
        .into_iter()
        .map(|r| r.unwrap().metadata.name)
        .collect();
    assert_eq!(pods, ["p", "q"]);
}

#[test]
fn a_deployment_is_refused_with_its_document_number() {
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec: {}\n";
    let text = format!("{MINIMAL}---\n{deployment}");
    let all = load_str(&text, "mixed.yaml");
    assert_eq!(all.len(), 2);
    assert!(all[0].is_ok());
    let e = all[1].as_ref().unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotAPod);
    assert_eq!(
        e.to_string(),
        r#"mixed.yaml (document 2): kind: "Deployment" is not supported: picolet runs kind Pod"#
    );
}

#[test]
fn missing_kind_and_wrong_api_version_are_refused() {
    let e = load_err(&MINIMAL.replace("kind: Pod\n", ""));
    assert_eq!((e.kind, e.path.as_str()), (ErrorKind::NotAPod, "kind"));
    let e = load_err(&MINIMAL.replace("apiVersion: v1", "apiVersion: v2"));
    assert_eq!(
        (e.kind, e.path.as_str()),
        (ErrorKind::NotAPod, "apiVersion")
    );
    assert!(e.message.contains("\"v2\" is not supported"), "{e}");
    let e = load_err(&MINIMAL.replace("apiVersion: v1\n", ""));
    assert_eq!(e.path, "apiVersion");
}

#[test]
fn json_input_is_read_with_serde_json() {
    let json = r#"
      {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j", "namespace": "ns"},
       "spec": {"containers": [{"name": "c", "image": "picolet.test/busybox:1",
                                "resources": {"limits": {"cpu": 0.5, "memory": 134217728}}}]}}
      {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "k"},
       "spec": {"containers": [{"name": "c", "image": "x"}]}}"#;
    let all = load_str(json, "pods.json");
    assert_eq!(all.len(), 2);
    let pod = all[0].as_ref().unwrap();
    assert_eq!(pod.metadata.namespace, "ns");
    let r = &pod.spec.containers[0].resources;
    assert_eq!(r.cpu_limit_millis(), Some(500));
    assert_eq!(r.memory_limit_bytes(), Some(134_217_728));
    assert_eq!(all[1].as_ref().unwrap().metadata.name, "k");
}

#[test]
fn json_syntax_error_is_reported_with_its_document() {
    let all = load_str(r#"{"apiVersion": "v1", "kind": "Pod", "#, "bad.json");
    assert_eq!(all.len(), 1);
    let e = all[0].as_ref().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert!(e.to_string().starts_with("bad.json (document 1): "), "{e}");
}

#[test]
fn a_yaml_flow_mapping_is_not_mistaken_for_json() {
    let pod = load_one("{apiVersion: v1, kind: Pod, metadata: {name: f}, spec: {containers: [{name: c, image: x}]}}").unwrap();
    assert_eq!(pod.metadata.name, "f");
}

#[test]
fn yaml_syntax_error_ends_the_stream_after_earlier_documents() {
    let text = format!("{MINIMAL}---\nkind: [unclosed\n---\n{MINIMAL}");
    let all = load_str(&text, "broken.yaml");
    assert!(all[0].is_ok());
    let e = all[1].as_ref().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!(e.origin.as_ref().unwrap().document, 2);
    assert_eq!(all.len(), 2);
}

#[test]
fn duplicate_keys_are_refused_with_their_path() {
    let e = load_err(&with_container_lines("    image: other\n"));
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!(e.path, "spec.containers[0]");
    assert_eq!(e.message, "duplicate key \"image\" at line 7 column 5");
    let json = r#"{"apiVersion": "v1", "kind": "Pod", "kind": "Pod"}"#;
    let e = load_err(json);
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert!(e.message.contains("duplicate key \"kind\""), "{e}");
}

#[test]
fn a_kubectl_list_of_pods_loads_item_by_item() {
    let text = "\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a}
  spec: {containers: [{name: c, image: x}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: b}
  spec: {containers: [{name: c, image: ''}]}
metadata:
  resourceVersion: ''
";
    let all = load_str(text, "list.yaml");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].as_ref().unwrap().metadata.name, "a");
    let e = all[1].as_ref().unwrap_err();
    assert_eq!(e.path, "items[1].spec.containers[0].image");
}

#[test]
fn a_pod_list_loads_item_by_item_too() {
    // What `picolet get pods -o json` printed before it said `List`, and
    // what the API's PodList is.
    let text = r#"{"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": ""},
      "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
         "spec": {"containers": [{"name": "c", "image": "x"}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"},
         "spec": {"containers": [{"name": "c", "image": ""}]}}]}"#;
    let all = load_str(text, "list.json");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].as_ref().unwrap().metadata.name, "a");
    let e = all[1].as_ref().unwrap_err();
    assert_eq!(e.path, "items[1].spec.containers[0].image");
    let e = load_err(&text.replace(
        r#""apiVersion": "v1", "kind": "PodList""#,
        r#""apiVersion": "v2", "kind": "PodList""#,
    ));
    assert_eq!(e.path, "apiVersion");
    assert!(e.message.contains("PodList is apiVersion v1"), "{e}");
}

#[test]
fn type_errors_name_the_field_path() {
    let e = load_err(&with_container_lines(
        "    ports:\n    - containerPort: http\n",
    ));
    assert_eq!(e.kind, ErrorKind::Type);
    assert_eq!(e.path, "spec.containers[0].ports[0].containerPort");
    let e =
        load_err(&MINIMAL.replace("  containers:", "  restartPolicy: Sometimes\n  containers:"));
    assert_eq!(e.path, "spec.restartPolicy");
    assert!(e.message.contains("unknown variant `Sometimes`"), "{e}");
    let e = load_err(&with_container_lines(
        "    terminationMessagePolicy: Sometimes\n",
    ));
    assert_eq!(e.path, "spec.containers[0].terminationMessagePolicy");
    assert!(e.message.contains("unknown variant `Sometimes`"), "{e}");
    let e = load_err(&MINIMAL.replace("    image: picolet.test/busybox:1\n", ""));
    assert_eq!(e.path, "spec.containers[0]");
    assert!(e.message.contains("missing field `image`"), "{e}");
    let e = load_err(&with_container_lines(
        "    readinessProbe:\n      tcpSocket:\n        port: [1]\n",
    ));
    assert_eq!(e.path, "spec.containers[0].readinessProbe.tcpSocket.port");
    assert_eq!(e.message, "must be a port number or a port name");
}

#[test]
fn numeric_quantities_are_read_as_strings() {
    let pod = load_one(&with_container_lines(
        "    resources:\n      requests: {cpu: 1, memory: 1e3}\n      limits: {cpu: 2.5}\n",
    ))
    .unwrap();
    let r = &pod.spec.containers[0].resources;
    assert_eq!(r.requests["cpu"].0, "1");
    assert_eq!(r.cpu_request_millis(), Some(1000));
    assert_eq!(r.memory_request_bytes(), Some(1000));
    assert_eq!(r.cpu_limit_millis(), Some(2500));
}

#[test]
fn invalid_quantity_error_names_its_path() {
    let e = load_err(&with_container_lines(
        "    resources:\n      limits:\n        memory: 12Q\n",
    ));
    assert_eq!(
        e.to_string(),
        r#"test.yaml (document 1): spec.containers[0].resources.limits.memory: invalid quantity "12Q": unknown suffix "Q""#
    );
}

#[test]
fn null_fields_are_treated_as_absent() {
    let pod = load_one(&with_container_lines(
        "    command: null\n    resources: null\n    lifecycle: ~\n",
    ))
    .unwrap();
    assert_eq!(pod.spec.containers[0].command, None);
}

#[test]
fn validation_runs_after_loading() {
    let e = load_err(&MINIMAL.replace("name: c", "name: Bad_Name"));
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(e.path, "spec.containers[0].name");
}

#[test]
fn load_file_reads_a_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pod.yaml");
    std::fs::write(
        &path,
        MINIMAL.replace("image: picolet.test/busybox:1", "image: ' '"),
    )
    .unwrap();
    let all = load_file(&path).unwrap();
    let e = all[0].as_ref().unwrap_err();
    let origin = e.origin.as_ref().unwrap();
    assert_eq!(origin.source, path.display().to_string());
    assert_eq!(e.path, "spec.containers[0].image");
}

#[test]
fn load_file_refuses_missing_huge_and_binary_files() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_file(&dir.path().join("nope.yaml")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Io);
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, vec![b'#'; 1536 * 1024 + 1]).unwrap();
    assert!(load_file(&big).unwrap_err().message.contains("larger than"));
    let bin = dir.path().join("bin.yaml");
    std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
    assert_eq!(load_file(&bin).unwrap_err().kind, ErrorKind::Syntax);
}

#[test]
fn a_non_mapping_document_is_refused() {
    let e = load_err("- a\n- b\n");
    assert_eq!(e.kind, ErrorKind::Type);
}

#[test]
fn loaded_pods_round_trip_through_json() {
    let pod = load_one(include_str!("fixtures/exported.yaml")).unwrap();
    let json = serde_json::to_string(&pod).unwrap();
    let again = load_one(&json).unwrap();
    assert_eq!(pod, again);
}
