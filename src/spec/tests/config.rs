//! ConfigMaps and Secrets, and what pods read from them: object loading
//! and validation, env resolution with the kubelet's messages,
//! `resourceFieldRef` rounding, downward API files, volume files.

use super::{MINIMAL, load_err, load_one};
use crate::spec::env::{EnvContext, container_env};
use crate::spec::objects::{ObjectKind, Objects};
use crate::spec::refs::{Allocatable, format_map, go_quote, resource_field_value, volume_files};
use crate::spec::{Manifest, load_manifests_str};

fn objects(text: &str) -> Objects {
    let mut out = Objects::default();
    for m in load_manifests_str(text, "t.yaml") {
        match m.unwrap_or_else(|e| panic!("{e}")) {
            Manifest::Object(o) => assert!(out.insert_first(o)),
            _ => panic!("not a ConfigMap or Secret"),
        }
    }
    out
}

fn object_err(text: &str) -> String {
    match load_manifests_str(text, "t.yaml").remove(0) {
        Ok(m) => panic!("expected an error, got {m:?}"),
        Err(e) => e.to_string(),
    }
}

const OBJECTS: &str = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
data: {a: one, b: two, 1x: three}
binaryData: {bin: AAEC}
---
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: default}
data: {user: YWRtaW4=}
stringData: {password: hunter2, user: override}
";

#[test]
fn config_maps_and_secrets_load_with_decoded_values() {
    let o = objects(OBJECTS);
    let cm = o.get(ObjectKind::ConfigMap, "default", "cm").unwrap();
    assert_eq!(cm.data["bin"], vec![0, 1, 2]);
    assert_eq!(cm.env_value("a").as_deref(), Some("one"));
    assert_eq!(cm.env_value("bin"), None, "binaryData is not env");
    let s = o.get(ObjectKind::Secret, "default", "s").unwrap();
    assert_eq!(s.data["user"], b"override", "stringData wins over data");
    assert_eq!(s.secret_type, "Opaque");
    // Debug shows keys, never values.
    let dbg = format!("{s:?}");
    assert!(
        dbg.contains("password") && !dbg.contains("hunter2"),
        "{dbg}"
    );
}

#[test]
fn invalid_objects_name_their_field_and_never_a_value() {
    let e =
        object_err("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: 'hunter2!'}\n");
    assert!(e.contains("data.k: not valid base64"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    let e = object_err("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {'a/b': x}\n");
    assert!(
        e.contains("data.a/b") && e.contains("not a valid config key"),
        "{e}"
    );
    let e = object_err(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: x}\nbinaryData: {a: AA==}\n",
    );
    assert!(
        e.contains("data.a: duplicate of key present in binaryData"),
        "{e}"
    );
    let e = object_err("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndatas: {}\n");
    assert!(e.contains("datas: unknown field"), "{e}");
    let e = object_err("apiVersion: v2\nkind: ConfigMap\nmetadata: {name: c}\n");
    assert!(e.contains("apiVersion"), "{e}");
    let e = object_err("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: C}\n");
    assert!(e.contains("metadata.name"), "{e}");
    let e = object_err("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: 1}\n");
    assert!(e.contains("data.a"), "a number is not a string value: {e}");
}

const ENV_POD: &str = "    env:
    - {name: A, valueFrom: {configMapKeyRef: {name: cm, key: a}}}
    - {name: P, valueFrom: {secretKeyRef: {name: s, key: password}}}
    - {name: O, valueFrom: {configMapKeyRef: {name: nope, key: a, optional: true}}}
    - {name: B2, value: $(b)-$(A)}
    envFrom:
    - {prefix: CM_, configMapRef: {name: cm}}
    - configMapRef: {name: cm}
";

#[test]
fn env_reads_objects_after_env_from_with_its_prefix() {
    let pod = load_one(&format!("{MINIMAL}{ENV_POD}")).unwrap_or_else(|e| panic!("{e}"));
    let objs = objects(OBJECTS);
    let ctx = EnvContext {
        objects: Some(&objs),
        ..Default::default()
    };
    let env = container_env(&pod, &pod.spec.containers[0], &ctx).unwrap();
    let names: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(
        names,
        [
            "CM_1x=three",
            "CM_a=one",
            "CM_b=two",
            "a=one",
            "b=two",
            "A=one",
            "P=hunter2",
            "B2=two-one"
        ]
    );
    let (_, warnings) =
        crate::spec::env::env_from_vars(&pod, &pod.spec.containers[0], &ctx).unwrap();
    assert_eq!(
        warnings,
        [
            "Keys [1x] from the EnvFrom configmap default/cm were skipped since they are \
          considered invalid environment variable names."
        ]
    );
}

#[test]
fn missing_references_give_the_kubelets_messages() {
    let objs = objects(OBJECTS);
    let ctx = EnvContext {
        objects: Some(&objs),
        ..Default::default()
    };
    for (line, message) in [
        (
            "    env:\n    - {name: A, valueFrom: {configMapKeyRef: {name: gone, key: a}}}\n",
            "configmap \"gone\" not found",
        ),
        (
            "    env:\n    - {name: A, valueFrom: {configMapKeyRef: {name: cm, key: zz}}}\n",
            "couldn't find key zz in ConfigMap default/cm",
        ),
        (
            "    env:\n    - {name: A, valueFrom: {secretKeyRef: {name: s, key: zz}}}\n",
            "couldn't find key zz in Secret default/s",
        ),
        (
            "    envFrom:\n    - secretRef: {name: gone}\n",
            "secret \"gone\" not found",
        ),
    ] {
        let pod = load_one(&format!("{MINIMAL}{line}")).unwrap_or_else(|e| panic!("{e}"));
        let e = container_env(&pod, &pod.spec.containers[0], &ctx).unwrap_err();
        assert_eq!(e.to_string(), message);
    }
}

#[test]
fn resource_field_refs_divide_and_round_up_with_node_allocatable_for_unset_limits() {
    let pod = load_one(&format!(
        "{MINIMAL}    resources:\n      requests: {{cpu: 125m, memory: 32Mi}}\n      limits: {{memory: 64Mi}}\n"
    ))
    .unwrap();
    let c = &pod.spec.containers[0];
    let alloc = Allocatable {
        cpu_millis: 4000,
        memory_bytes: 1 << 30,
        ephemeral_bytes: 0,
    };
    let v = |resource: &str, divisor: Option<&str>| {
        let sel = crate::spec::ResourceFieldSelector {
            container_name: String::new(),
            resource: resource.into(),
            divisor: divisor.map(|d| crate::spec::Quantity(d.into())),
        };
        resource_field_value(c, &sel, &alloc).unwrap()
    };
    assert_eq!(v("requests.cpu", None), "1");
    assert_eq!(v("requests.cpu", Some("1m")), "125");
    assert_eq!(v("limits.cpu", None), "4", "no limit: the node's CPUs");
    assert_eq!(v("limits.memory", Some("1Mi")), "64");
    assert_eq!(
        v("requests.memory", Some("1G")),
        "1",
        "33554432/1e9 rounded up"
    );
    assert_eq!(v("requests.memory", None), "33554432");
    let e = load_err(&format!(
        "{MINIMAL}    env:\n    - {{name: A, valueFrom: {{resourceFieldRef: {{resource: limits.cpu, divisor: 2}}}}}}\n"
    ));
    assert!(e.message.contains("only divisor's values 1m, 1"), "{e}");
}

#[test]
fn downward_api_maps_use_gos_quoting_sorted_without_a_final_newline() {
    assert_eq!(go_quote("a\"b\\c\nd\té"), r#""a\"b\\c\nd\té""#);
    assert_eq!(go_quote("\u{1}\u{7f}"), r#""\x01\x7f""#);
    let m = [("b", "2"), ("a", "x y")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(format_map(&m), "a=\"x y\"\nb=\"2\"");
}

#[test]
fn volume_files_follow_items_modes_and_optional() {
    let objs = objects(OBJECTS);
    let alloc = Allocatable::default();
    let pod = load_one(&format!(
        "{MINIMAL}  volumes:
  - name: cm
    configMap: {{name: cm, items: [{{key: a, path: dir/a, mode: 0400}}], defaultMode: 0440}}
  - name: s
    secret: {{secretName: s}}
  - name: gone
    configMap: {{name: gone, optional: true}}
  - name: gone-key
    secret: {{secretName: s, items: [{{key: zz, path: z}}]}}
  - name: missing
    configMap: {{name: missing}}
"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let files = |i: usize| volume_files(&pod, &pod.spec.volumes[i], &objs, &alloc).unwrap();
    let cm = files(0).unwrap();
    assert_eq!(
        (cm.len(), cm[0].path.as_str(), cm[0].mode),
        (1, "dir/a", 0o400)
    );
    let s = files(1).unwrap();
    assert_eq!(
        s.iter()
            .map(|f| (f.path.as_str(), f.mode))
            .collect::<Vec<_>>(),
        [("password", 0o600), ("user", 0o600)]
    );
    assert!(files(2).unwrap().is_empty());
    assert_eq!(
        files(3).unwrap_err(),
        "references non-existent secret key: zz"
    );
    assert_eq!(files(4).unwrap_err(), "configmap \"missing\" not found");
}

#[test]
fn volume_paths_and_sub_paths_may_not_escape() {
    for (vol, path) in [
        (
            "configMap: {name: cm, items: [{key: a, path: ../x}]}",
            "spec.volumes[0].configMap.items[0].path",
        ),
        (
            "secret: {secretName: s, items: [{key: a, path: /abs}]}",
            "spec.volumes[0].secret.items[0].path",
        ),
        (
            "configMap: {name: cm, defaultMode: 01000}",
            "spec.volumes[0].configMap.defaultMode",
        ),
        (
            "downwardAPI: {items: [{path: x, fieldRef: {fieldPath: spec.nodeName}}]}",
            "spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath",
        ),
    ] {
        let e = load_err(&format!("{MINIMAL}  volumes:\n  - name: v\n    {vol}\n"));
        assert_eq!(e.path, path, "{e}");
    }
    for (mount, path) in [
        ("subPath: ../x", "subPath"),
        ("subPath: /x", "subPath"),
        ("subPathExpr: /$(X)", "subPathExpr"),
    ] {
        let e = load_err(&format!(
            "{MINIMAL}    volumeMounts:\n    - {{name: v, mountPath: /v, {mount}}}\n  volumes:\n  - name: v\n    emptyDir: {{}}\n"
        ));
        assert_eq!(
            e.path,
            format!("spec.containers[0].volumeMounts[0].{path}"),
            "{e}"
        );
    }
}

#[test]
fn a_projection_source_has_no_default_mode_of_its_own() {
    for src in [
        "configMap: {name: cm, defaultMode: 0400}",
        "downwardAPI: {items: [], defaultMode: 0400}",
    ] {
        let e = load_err(&format!(
            "{MINIMAL}  volumes:\n  - name: v\n    projected:\n      sources:\n      - {src}\n"
        ));
        assert!(e.path.ends_with(".defaultMode"), "{e}");
        assert_eq!(e.kind, crate::spec::ErrorKind::UnknownField, "{e}");
    }
}

#[test]
fn an_immutable_object_keeps_its_content_until_it_is_deleted() {
    let cm = |value: &str, immutable: bool| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: frozen}}\nimmutable: {immutable}\ndata: {{k: {value}}}\n"
        )
    };
    let old = objects(&cm("a", true));
    // A changed value is refused with the API server's error; the old one stays.
    let mut new = objects(&cm("b", true));
    let refused = new.keep_immutable(&old);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with(
            "The ConfigMap \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
        ),
        "{}",
        refused[0]
    );
    let kept = new.get(ObjectKind::ConfigMap, "default", "frozen").unwrap();
    assert_eq!(kept.data["k"], b"a");
    // Nor can it be made mutable again.
    let mut new = objects(&cm("a", false));
    let refused = new.keep_immutable(&old);
    assert!(refused[0].contains("immutable: Forbidden"), "{refused:?}");
    assert!(
        new.get(ObjectKind::ConfigMap, "default", "frozen")
            .unwrap()
            .immutable
    );
    // Unchanged: nothing to refuse. Deleted: gone (it may be created again).
    assert!(objects(&cm("a", true)).keep_immutable(&old).is_empty());
    let mut none = objects("");
    assert!(none.keep_immutable(&old).is_empty());
    assert!(none.is_empty());
    // A mutable object changes freely.
    let mut new = objects(&cm("b", false));
    assert!(new.keep_immutable(&objects(&cm("a", false))).is_empty());
    assert_eq!(
        new.get(ObjectKind::ConfigMap, "default", "frozen")
            .unwrap()
            .data["k"],
        b"b"
    );
}

#[test]
fn registry_credential_secrets_are_checked_as_the_api_server_does() {
    let head =
        |ty: &str| format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: r}}\ntype: {ty}\n");
    let json = "kubernetes.io/dockerconfigjson";
    let o = objects(&format!(
        "{}stringData:\n  .dockerconfigjson: '{{\"auths\":{{\"r.lan\":{{\"auth\":\"dTpw\"}}}}}}'\n",
        head(json)
    ));
    assert_eq!(
        o.get(ObjectKind::Secret, "default", "r")
            .unwrap()
            .secret_type,
        json
    );
    let e = object_err(&format!("{}stringData: {{a: b}}\n", head(json)));
    assert!(e.contains("data[.dockerconfigjson]: Required value"), "{e}");
    let e = object_err(&format!(
        "{}stringData: {{.dockercfg: hunter2}}\n",
        head("kubernetes.io/dockercfg")
    ));
    assert!(
        e.contains("data[.dockercfg]: Invalid value: \"<secret contents redacted>\": ")
            && !e.contains("hunter2"),
        "{e}"
    );
}
