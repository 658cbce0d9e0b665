//! The YAML dialect the manifest loader reads (`yaml_serde`, YAML 1.2 core
//! schema over libyaml), pinned where YAML libraries and kubectl differ:
//! YAML 1.1 booleans, merge keys, tags, aliases. docs/agent.md, "Manifest
//! YAML".

use super::{MINIMAL, load_err, load_one, with_container_lines};
use crate::spec::ErrorKind;
use std::time::{Duration, Instant};

fn env_value(text: &str) -> String {
    let pod = load_one(text).unwrap();
    let env = &pod.spec.containers[0].env;
    env[0].value.clone().unwrap()
}

#[test]
fn yaml_1_1_booleans_are_strings_and_only_true_false_are_booleans() {
    // kubectl (go-yaml v2, YAML 1.1) reads `yes` as true and then refuses it
    // for a string field; here it is the string it looks like.
    for word in ["yes", "on", "y", "off", "NO"] {
        let text = with_container_lines(&format!("    env:\n    - name: A\n      value: {word}\n"));
        assert_eq!(env_value(&text), word);
    }
    // ... and a boolean field refuses it, naming the field, instead of
    // guessing (kubectl would take `yes` as true).
    let text = with_container_lines("    securityContext:\n      privileged: yes\n");
    let e = load_err(&text);
    assert_eq!(e.kind, ErrorKind::Type, "{e}");
    assert_eq!(e.path, "spec.containers[0].securityContext.privileged");
    assert!(e.message.contains("string \"yes\""), "{e}");
    let text = with_container_lines("    securityContext:\n      privileged: True\n");
    let pod = load_one(&text).unwrap();
    let sc = pod.spec.containers[0].security_context.as_ref().unwrap();
    assert_eq!(sc.privileged, Some(true));
}

#[test]
fn anchors_and_aliases_are_expanded() {
    let text = format!(
        "{MINIMAL}    env: &e\n    - name: A\n      value: x\n  - name: d\n    image: picolet.test/busybox:1\n    env: *e\n"
    );
    let pod = load_one(&text).unwrap();
    let d = &pod.spec.containers[1];
    assert_eq!(d.env[0].value.as_deref(), Some("x"));
    // An alias to an anchor that does not exist is a syntax error.
    let e = load_err(&with_container_lines("    env: *nope\n"));
    assert_eq!(e.kind, ErrorKind::Syntax, "{e}");
    assert!(e.message.starts_with("unknown anchor"), "{e}");
}

#[test]
fn a_billion_laughs_is_refused_quickly() {
    let mut text = String::from("a: &a [x,x,x,x,x,x,x,x,x]\n");
    for (prev, name) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        let items = vec![format!("*{prev}"); 9].join(",");
        text.push_str(&format!("{name}: &{name} [{items}]\n"));
    }
    let start = Instant::now();
    let e = load_err(&text);
    assert_eq!(e.kind, ErrorKind::Syntax, "{e}");
    assert!(e.message.contains("repetition limit exceeded"), "{e}");
    // A bound against an expansion that does not stop (a billion nodes
    // take hours), not a timing: it is generous because the debug build
    // under qemu-user, reading with both our reader and serde_norway
    // (the differential check under cfg(test)), took over 10 s.
    assert!(start.elapsed() < Duration::from_secs(120));
}

#[test]
fn merge_keys_are_refused_as_the_unknown_field_they_are() {
    // YAML 1.1's `<<` (which kubectl applies) is an ordinary key in YAML
    // 1.2: refused by name rather than silently dropped.
    let text = format!(
        "{MINIMAL}    resources: &r\n      limits: {{cpu: 100m}}\n  - name: d\n    image: picolet.test/busybox:1\n    resources:\n      <<: *r\n"
    );
    let e = load_err(&text);
    assert!(e.path.starts_with("spec.containers[1].resources"), "{e}");
    assert!(e.to_string().contains("<<"), "{e}");
}

#[test]
fn standard_tags_are_honoured_and_local_tags_refused() {
    let text = with_container_lines("    env:\n    - name: A\n      value: !!str 123\n");
    assert_eq!(env_value(&text), "123");
    let e = load_err(&with_container_lines("    workingDir: !custom /srv\n"));
    assert_eq!(e.kind, ErrorKind::Syntax, "{e}");
    assert_eq!(e.path, "spec.containers[0].workingDir", "{e}");
}

#[test]
fn numbers_with_leading_zeros_stay_strings() {
    // YAML 1.1 (kubectl) reads 0755 as octal 493; YAML 1.2 core has no such
    // form, so it is a string, and an integer field refuses it by name.
    let text = with_container_lines("    env:\n    - name: A\n      value: 0755\n");
    assert_eq!(env_value(&text), "0755");
    let text = with_container_lines("    ports:\n    - containerPort: 0080\n");
    let e = load_err(&text);
    assert_eq!(e.kind, ErrorKind::Type, "{e}");
    assert_eq!(e.path, "spec.containers[0].ports[0].containerPort");
}

#[test]
fn yaml_errors_name_the_node_they_arose_in() {
    // A key that is not a string: the `?` of its parent's path.
    let e = load_err(&with_container_lines("    ? [x]\n    : y\n"));
    assert_eq!(e.kind, ErrorKind::Syntax, "{e}");
    assert_eq!(e.path, "spec.containers[0].?", "{e}");
    assert!(
        e.message
            .contains("invalid type: sequence, expected a string"),
        "{e}"
    );
    // A duplicate in a list item: the item's path.
    let e = load_err(&with_container_lines("    args:\n    - {a: 1, a: 2}\n"));
    assert_eq!(e.path, "spec.containers[0].args[0]", "{e}");
    assert!(e.message.starts_with("duplicate key \"a\""), "{e}");
}
