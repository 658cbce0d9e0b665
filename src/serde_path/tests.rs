use super::*;
use crate::vecmap::VecMap;
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Doc {
    name: String,
    #[serde(default)]
    items: Vec<Item>,
    #[serde(default)]
    labels: VecMap<String, String>,
    policy: Option<Policy>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Item {
    port: u16,
    #[serde(default)]
    port_or_name: Option<IntOrName>,
    ratio: Option<f64>,
}

#[derive(Debug, Deserialize, PartialEq)]
enum Policy {
    Always,
    Never,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
enum IntOrName {
    Int(u16),
    Name(String),
}

fn err(v: Value) -> (String, String) {
    let e = from_value::<Doc>(v).unwrap_err();
    (e.path(), e.to_string())
}

#[test]
fn a_good_document_reads_as_serde_json_reads_it() {
    let v = json!({
        "name": "a",
        "items": [{"port": 80, "portOrName": "http", "ratio": 0.5}, {"port": 1, "portOrName": 8080}],
        "labels": {"k": "v"},
        "policy": "Never",
    });
    let want: Doc = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(from_value::<Doc>(v).unwrap(), want);
    assert_eq!(want.items[1].port_or_name, Some(IntOrName::Int(8080)));
    assert_eq!(
        from_value::<Value>(json!({"a": [1, -2, 0.5, null, true]})).unwrap(),
        json!({"a": [1, -2, 0.5, null, true]})
    );
}

#[test]
fn errors_name_the_innermost_field_with_serde_json_s_message() {
    let cases = [
        (
            json!({"name": "a", "items": [{"port": 1}, {"port": "x"}]}),
            "items[1].port",
            "invalid type: string \"x\", expected u16",
        ),
        (
            json!({"name": "a", "items": [{"port": 70000}]}),
            "items[0].port",
            "invalid value: integer `70000`, expected u16",
        ),
        (
            json!({"name": "a", "items": [{"port": 1.5}]}),
            "items[0].port",
            "invalid type: floating point `1.5`, expected u16",
        ),
        (
            json!({"name": null}),
            "name",
            "invalid type: null, expected a string",
        ),
        (
            json!({"name": "a", "labels": {"k": 1}}),
            "labels.k",
            "invalid type: integer `1`, expected a string",
        ),
        (
            json!({"name": "a", "items": [{"port": 1, "prot": 2}]}),
            "items[0].prot",
            "unknown field `prot`, expected one of `port`, `portOrName`, `ratio`",
        ),
        (
            json!({"name": "a", "items": [{}]}),
            "items[0]",
            "missing field `port`",
        ),
        (
            json!({"name": "a", "policy": "Sometimes"}),
            "policy",
            "unknown variant `Sometimes`, expected `Always` or `Never`",
        ),
        (
            json!({"name": "a", "policy": 3}),
            "policy",
            "invalid type: integer `3`, expected string or map",
        ),
        (
            json!({"name": "a", "items": [{"port": 1, "portOrName": true}]}),
            "items[0].portOrName",
            "data did not match any variant of untagged enum IntOrName",
        ),
        (
            json!({"name": "a", "items": {"port": 1}}),
            "items",
            "invalid type: map, expected a sequence",
        ),
        // Every other kind where a string or a sequence is expected.
        (
            json!({"name": true}),
            "name",
            "invalid type: boolean `true`, expected a string",
        ),
        (
            json!({"name": -3}),
            "name",
            "invalid type: integer `-3`, expected a string",
        ),
        (
            json!({"name": 2.5}),
            "name",
            "invalid type: floating point `2.5`, expected a string",
        ),
        (
            json!({"name": ["a"]}),
            "name",
            "invalid type: sequence, expected a string",
        ),
        (
            json!({"name": {"a": 1}}),
            "name",
            "invalid type: map, expected a string",
        ),
        (
            json!({"name": "a", "items": "x"}),
            "items",
            "invalid type: string \"x\", expected a sequence",
        ),
        (
            json!({"name": "a", "items": null}),
            "items",
            "invalid type: null, expected a sequence",
        ),
        (
            json!({"name": "a", "items": 7}),
            "items",
            "invalid type: integer `7`, expected a sequence",
        ),
        (
            json!({"name": "a", "items": false}),
            "items",
            "invalid type: boolean `false`, expected a sequence",
        ),
    ];
    for (v, path, message) in cases {
        let json_error = serde_json::from_value::<Doc>(v.clone())
            .unwrap_err()
            .to_string();
        let (p, text) = err(v);
        assert_eq!(p, path);
        assert_eq!(text, format!("{path}: {message}"));
        assert_eq!(json_error, message, "serde_json says the same");
    }
}

#[test]
fn an_error_at_the_root_has_no_path() {
    let e = from_value::<Doc>(json!("x")).unwrap_err();
    assert_eq!(e.path(), ".");
    assert_eq!(e.field(), "");
    assert_eq!(
        e.to_string(),
        "invalid type: string \"x\", expected struct Doc"
    );
    let e = from_value::<Doc>(json!({})).unwrap_err();
    assert_eq!(
        (e.path().as_str(), e.message()),
        (".", "missing field `name`")
    );
    let e = from_value::<Vec<Doc>>(json!([{"name": "a"}, {"name": 1}])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "[1].name: invalid type: integer `1`, expected a string"
    );
}

#[test]
fn yaml_type_errors_name_the_field_and_its_position() {
    let e = from_yaml::<Doc>("name: a\nitems:\n  - port: 1\n  - port: x\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "items[1].port: invalid type: string \"x\", expected u16 at line 4 column 11"
    );
    // An unknown field is placed at its key.
    let e = from_yaml::<Doc>("name: a\nitems:\n  - port: 1\n    prot: 2\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("items[0].prot: unknown field `prot`, expected one of"),
        "{e}"
    );
    assert!(e.to_string().ends_with(" at line 4 column 5"), "{e}");
    let e = from_yaml::<Doc>("labels:\n  k: v\n").unwrap_err();
    assert_eq!(e.to_string(), "missing field `name` at line 1 column 1");
    // Duplicate keys and bad YAML are serde_norway's errors.
    let e = from_yaml::<Doc>("name: a\nname: b\n").unwrap_err();
    assert!(matches!(e, YamlError::Syntax(_)), "{e}");
    assert!(e.to_string().starts_with("duplicate key \"name\""), "{e}");
    assert!(matches!(
        from_yaml::<Doc>("name: [a\n"),
        Err(YamlError::Syntax(_))
    ));
    let doc: Doc = from_yaml("name: a\npolicy: Always\nlabels: {k: v}\n").unwrap();
    assert_eq!(doc.policy, Some(Policy::Always));
}

#[test]
fn a_struct_is_read_only_from_a_mapping() {
    // serde_json would read the fields by position from an array.
    let v = json!({"name": "a", "items": [[80, null, null]]});
    assert!(serde_json::from_value::<Doc>(v.clone()).is_ok());
    let e = from_value::<Doc>(v).unwrap_err();
    assert_eq!(
        e.to_string(),
        "items[0]: invalid type: sequence, expected struct Item"
    );
    let e = from_value::<Doc>(json!({"name": "a", "labels": ["k"]})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "labels: invalid type: sequence, expected a map"
    );
}
