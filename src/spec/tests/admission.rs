//! Admission limits (issue 7): sizes, nesting, the reserved container name.

use super::validate::{base, container, invalid, valid};
use super::{MINIMAL, load_err};
use crate::spec::validate::{MAX_ARGV_ENV_BYTES, MAX_POD_BYTES};
use crate::spec::*;
use std::time::{Duration, Instant};

fn var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

#[test]
fn a_20_mb_command_argument_is_refused_with_its_field_path() {
    // Finding 5: a 20 MB argument broke every later state save.
    let mut p = base();
    p.spec.containers[0].command = Some(vec!["sh".into(), "x".repeat(20 << 20)]);
    invalid(
        &p,
        "spec.containers[0].command",
        "must be no more than 131072",
    );
    let e = validate(&p).unwrap_err();
    assert!(
        e.to_string()
            .contains("spec.containers[0].command: too long"),
        "{e}"
    );
}

#[test]
fn command_args_and_env_share_one_budget_and_the_largest_is_named() {
    let mut p = base();
    let third = MAX_ARGV_ENV_BYTES / 3;
    p.spec.init_containers = vec![container("init")];
    let c = &mut p.spec.init_containers[0];
    c.command = Some(vec!["a".repeat(third)]);
    c.args = Some(vec!["b".repeat(third)]);
    c.env = vec![var("E", &"c".repeat(third - 100))];
    valid(&p);
    p.spec.init_containers[0].env = vec![var("E", &"c".repeat(third + 100))];
    invalid(
        &p,
        "spec.initContainers[0].env",
        "must be no more than 131072",
    );
}

#[test]
fn var_expansion_that_doubles_per_variable_is_counted_expanded() {
    // 20 variables of 10 bytes each, each twice the one before: 10 MiB
    // once expanded, 400 bytes as written.
    let mut p = base();
    let mut env = vec![var("V0", "0123456789")];
    for i in 1..20 {
        env.push(var(&format!("V{i}"), &format!("$(V{0})$(V{0})", i - 1)));
    }
    p.spec.containers[0].env = env;
    let t = Instant::now();
    invalid(
        &p,
        "spec.containers[0].env",
        "once $(VAR) references are expanded",
    );
    // Only the absurd (expanding it all); also under qemu-user.
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    // In args too: 3,000 references to a 100-byte variable.
    let mut p = base();
    p.spec.containers[0].env = vec![var("A", &"a".repeat(100))];
    p.spec.containers[0].args = Some(vec!["$(A)".repeat(3000)]);
    invalid(&p, "spec.containers[0].args", "must be no more than");
    // `$$(A)` is an escape, not a reference: it stays short.
    p.spec.containers[0].args = Some(vec!["$$(A)".repeat(3000)]);
    valid(&p);
}

#[test]
fn a_pod_over_the_api_servers_object_limit_is_refused() {
    let mut p = base();
    // Within each container's budget, over 1.5 MiB in all.
    for i in 0..13 {
        let mut c = container(&format!("c{i}"));
        c.args = Some(vec!["x".repeat(MAX_ARGV_ENV_BYTES - 100)]);
        p.spec.containers.push(c);
    }
    let e = validate(&p).unwrap_err();
    assert_eq!(e.path, "");
    assert!(
        e.message
            .contains(&format!("must be no more than {MAX_POD_BYTES}")),
        "{e}"
    );
    assert!(validate::json_size(&p) > MAX_POD_BYTES);
    p.spec.containers.truncate(10);
    valid(&p);
}

#[test]
fn a_container_named_shim_is_refused_in_both_lists() {
    // Finding 6: it ran in the shim's cgroup, without limits.
    let mut p = base();
    p.spec.containers.push(container("shim"));
    invalid(&p, "spec.containers[1].name", "\"shim\" is reserved");
    let mut p = base();
    p.spec.init_containers.push(container("shim"));
    invalid(&p, "spec.initContainers[0].name", "\"shim\" is reserved");
    let e = load_err(&MINIMAL.replace("- name: c", "- name: shim"));
    assert!(
        e.to_string()
            .starts_with("test.yaml (document 1): spec.containers[0].name: \"shim\" is reserved"),
        "{e}"
    );
    // Other names that contain it are fine.
    let mut p = base();
    p.spec.containers.push(container("shim2"));
    valid(&p);
}

fn nested_json(depth: usize) -> String {
    format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{{\"name\":\"p\",\"x\":{}{}}}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

#[test]
fn a_json_pod_with_100k_nested_arrays_is_refused_before_parsing_in_milliseconds() {
    // Finding 6: this 200 KB document froze each rescan for about 40 s.
    let text = nested_json(100_000);
    assert!(text.len() > 200_000);
    let t = Instant::now();
    let e = load_str(&text, "deep.json").remove(0).unwrap_err();
    let took = t.elapsed();
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert!(
        e.to_string()
            .starts_with("deep.json (document 1): nested more than 100 levels deep"),
        "{e}"
    );
    // Bounds only the absurd (the parse used to take ~40 s): this also runs
    // under qemu-user on a loaded CI machine.
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn deep_yaml_flow_and_block_nesting_is_refused_and_real_pods_are_not() {
    let flow = format!(
        "{MINIMAL}    args: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let t = Instant::now();
    assert!(load_err(&flow).message.contains("nested more than"));
    let dashes = format!("{MINIMAL}    args:\n{}x\n", "- ".repeat(100_000));
    assert!(load_err(&dashes).message.contains("nested more than"));
    let mut stairs = MINIMAL.to_string() + "    env:\n";
    for i in 0..300 {
        stairs.push_str(&format!("{}k{i}:\n", " ".repeat(4 + i)));
    }
    assert!(load_err(&stairs).message.contains("nested more than"));
    // Bounds only the absurd (quadratic nesting took tens of seconds);
    // this also runs under qemu-user on a loaded CI machine.
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    // Depth 60 in brackets is still parsed (and then refused for its type,
    // not its depth); so is every example and fixture.
    let ok = nested_json(60);
    let e = load_str(&ok, "ok.json").remove(0).unwrap_err();
    assert!(!e.message.contains("nested"), "{e}");
    check_nesting(include_str!("fixtures/exported.yaml")).unwrap();
}

#[test]
fn a_manifest_file_over_1_5_mib_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    let mut text = MINIMAL.to_string();
    text.push_str(&format!("# {}\n", "x".repeat(1536 * 1024)));
    std::fs::write(&big, text).unwrap();
    let e = load_file(&big).unwrap_err();
    assert!(e.to_string().contains(&big.display().to_string()), "{e}");
    assert!(e.message.contains("larger than 1572864 bytes"), "{e}");
}
