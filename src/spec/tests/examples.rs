use crate::spec::*;
use std::path::Path;

fn examples_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn every_example_manifest_loads() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let docs = load_manifests_file(&path).unwrap();
        assert!(!docs.is_empty(), "{}", path.display());
        for doc in docs {
            doc.unwrap_or_else(|e| panic!("{e}"));
        }
        seen += 1;
    }
    assert!(seen >= 2, "expected the example manifests in examples/");
}

#[test]
fn hello_example_has_web_and_client_with_a_readiness_probe() {
    let pods = load_file(&examples_dir().join("hello.yaml")).unwrap();
    let pod = pods[0].as_ref().unwrap();
    let names: Vec<_> = pod
        .spec
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["web", "client"]);
    let web = &pod.spec.containers[0];
    assert_eq!(web.pull_policy(), PullPolicy::IfNotPresent);
    let probe = web.readiness_probe.as_ref().unwrap();
    match probe.handler() {
        Some(ProbeHandler::HttpGet(h)) => assert_eq!(resolve_port(web, &h.port).unwrap(), 8080),
        other => panic!("{other:?}"),
    }
    let ctx = EnvContext::default();
    let env = container_env(pod, web, &ctx).unwrap();
    let argv = container_argv(web, &env, &[], &[]).unwrap();
    assert!(argv[2].contains("hello from hello"), "{argv:?}");
    assert!(argv[2].contains("httpd -f -p 8080 -h /www"));
}

#[test]
fn counter_example_keeps_its_shell_arithmetic_through_expansion() {
    let pods = load_file(&examples_dir().join("counter.yaml")).unwrap();
    let pod = pods[0].as_ref().unwrap();
    let c = &pod.spec.containers[0];
    let argv = container_argv(c, &[], &[], &[]).unwrap();
    assert_eq!(argv[2], c.command.as_ref().unwrap()[2]);
    assert!(argv[2].contains("sleep 2"));
    assert_eq!(c.resources.cpu_limit_millis(), Some(50));
}
