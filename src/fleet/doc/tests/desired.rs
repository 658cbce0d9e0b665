use super::*;

#[test]
fn a_json_desired_document_decodes_with_its_revision_and_pods() {
    let doc = decode(&doc_json(7, vec![pod("a"), pod("b")])).unwrap();
    assert_eq!(doc.revision, 7);
    let names: Vec<&str> = doc.pods.iter().map(|p| p.metadata.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(doc.pods[0].metadata.namespace, "default");
}

#[test]
fn whitespace_and_a_byte_order_mark_may_come_before_the_json() {
    let mut bytes = b"\xef\xbb\xbf \r\n\t".to_vec();
    bytes.extend(doc_json(1, vec![]));
    assert_eq!(detect_format(&bytes), Ok(Format::Json));
    assert_eq!(decode(&bytes).unwrap().revision, 1);
}

#[test]
fn a_bad_pod_field_is_reported_with_its_path_under_the_pod_index() {
    let mut bad = pod("b");
    bad["spec"]["containers"][0]["image"] = json!("");
    let err = decode(&doc_json(1, vec![pod("a"), bad])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pods[1].spec.containers[0].image: must not be empty"
    );
    assert_eq!(err.reason(), "Invalid");
}

#[test]
fn every_bad_pod_is_reported_up_to_the_cap() {
    let mut pods = vec![pod("ok")];
    for i in 0..25 {
        let mut p = pod(&format!("p{i}"));
        p["spec"]["restartPolicy"] = json!("Sometimes");
        pods.push(p);
    }
    let Err(DocError::Pods { errors, more }) = decode(&doc_json(1, pods)) else {
        panic!("expected pod errors");
    };
    assert_eq!((errors.len(), more), (MAX_POD_ERRORS, 5));
    assert!(
        errors[0].path.starts_with("pods[1].spec.restartPolicy"),
        "{}",
        errors[0]
    );
    assert!(errors[19].path.starts_with("pods[20]."), "{}", errors[19]);
}

#[test]
fn missing_or_malformed_revisions_name_the_revision_field() {
    let cases = [
        (json!(null), "revision: missing"),
        (
            json!(-1),
            "revision: must be a non-negative integer, got -1",
        ),
        (
            json!(1.5),
            "revision: must be a non-negative integer, got 1.5",
        ),
        (
            json!("3"),
            "revision: must be a non-negative integer, got \"3\"",
        ),
    ];
    for (rev, want) in cases {
        let mut v: Value = serde_json::from_slice(&doc_json(0, vec![])).unwrap();
        v["revision"] = rev;
        assert_eq!(error(&serde_json::to_vec(&v).unwrap()), want);
    }
    let no_rev = br#"{"apiVersion":"picolet.io/v1","kind":"DeviceState","pods":[]}"#;
    assert_eq!(error(no_rev), "revision: missing");
}

#[test]
fn revisions_above_2_pow_53_are_refused_in_json_and_postcard() {
    assert_eq!(MAX_REVISION, 9_007_199_254_740_992);
    assert_eq!(
        decode(&doc_json(MAX_REVISION, vec![])).unwrap().revision,
        MAX_REVISION
    );
    let want = "revision: 9007199254740993 is above the largest revision allowed, 2^53 = 9007199254740992 (the largest integer JSON carries exactly)";
    assert_eq!(error(&doc_json(MAX_REVISION + 1, vec![])), want);
    // The revision of issue 7, after which no newer one was possible.
    let max = br#"{"apiVersion":"picolet.io/v1","kind":"DeviceState","revision":18446744073709551615,"pods":[]}"#;
    let err = decode(max).unwrap_err();
    assert_eq!(err.reason(), "Invalid");
    assert!(
        err.to_string()
            .starts_with("revision: 18446744073709551615 is above the largest revision allowed"),
        "{err}"
    );
    assert_eq!(
        decode(&postcard_doc("DeviceState", MAX_REVISION, &[]))
            .unwrap()
            .revision,
        MAX_REVISION
    );
    assert!(
        error(&postcard_doc("DeviceState", u64::MAX, &[]))
            .starts_with("revision: 18446744073709551615 is above")
    );
}

#[test]
fn a_wrong_kind_or_api_version_is_named() {
    let foo = br#"{"apiVersion":"picolet.io/v1","kind":"Foo","revision":1,"pods":[]}"#;
    assert_eq!(error(foo), "kind: \"Foo\" is not DeviceState");
    let pod_doc = serde_json::to_vec(&pod("x")).unwrap();
    assert_eq!(error(&pod_doc), "kind: \"Pod\" is not DeviceState");
    let v2 = br#"{"apiVersion":"picolet.io/v2","kind":"DeviceState","revision":1,"pods":[]}"#;
    assert_eq!(
        error(v2),
        "apiVersion: \"picolet.io/v2\" is not picolet.io/v1"
    );
    let none = br#"{"kind":"DeviceState","revision":1,"pods":[]}"#;
    assert_eq!(error(none), "apiVersion: missing (expected picolet.io/v1)");
    assert_eq!(error(b"{}"), "kind: missing (expected DeviceState)");
}

#[test]
fn malformed_json_is_reported_with_line_and_column() {
    let text = b"{\"apiVersion\": \"picolet.io/v1\",\n  \"kind\": DeviceState}";
    let err = decode(text).unwrap_err();
    assert_eq!(err.reason(), "Malformed");
    assert_eq!(
        err.to_string(),
        "malformed JSON at line 2 column 11: expected value"
    );
    let trailing = [doc_json(1, vec![]), b"{}".to_vec()].concat();
    assert!(error(&trailing).starts_with("malformed JSON at line 1 column"));
    assert!(error(b"{\"a\": \xff}").starts_with("malformed JSON"));
}

#[test]
fn duplicate_json_keys_are_refused_even_inside_pods() {
    let text = br#"{"apiVersion":"picolet.io/v1","kind":"DeviceState","revision":1,"revision":2,"pods":[]}"#;
    assert!(
        error(text).contains("duplicate key \"revision\""),
        "{}",
        error(text)
    );
    let pods = br#"{"apiVersion":"picolet.io/v1","kind":"DeviceState","revision":1,"pods":[
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","name":"b"},"spec":{}}]}"#;
    assert!(
        error(pods).contains("duplicate key \"name\""),
        "{}",
        error(pods)
    );
}

#[test]
fn unknown_top_level_fields_and_bad_pod_lists_are_refused() {
    let extra =
        br#"{"apiVersion":"picolet.io/v1","kind":"DeviceState","revision":1,"pods":[],"podz":[]}"#;
    assert_eq!(
        error(extra),
        "podz: unknown field (a DeviceState has apiVersion, kind, revision, pods, configMaps, secrets, workloads, rollout, registries)"
    );
    let no_pods = br#"{"apiVersion":"picolet.io/v1","kind":"DeviceState","revision":1}"#;
    assert_eq!(
        error(no_pods),
        "pods: missing (an empty list removes every pod)"
    );
    let obj = br#"{"apiVersion":"picolet.io/v1","kind":"DeviceState","revision":1,"pods":{}}"#;
    assert_eq!(error(obj), "pods: must be a list of pods, got {}");
    assert_eq!(
        error(b"[1]"),
        "unknown document format: first byte 0x5b is neither '{' (JSON), the postcard magic nor a zlib header"
    );
    let not_obj = br#"{"apiVersion":"picolet.io/v1","kind":"DeviceState","revision":1,"pods":[7]}"#;
    assert!(
        error(not_obj).starts_with("pods[0]: a manifest must be a mapping"),
        "{}",
        error(not_obj)
    );
}

#[test]
fn two_pods_with_the_same_namespace_and_name_make_the_document_invalid() {
    let err = error(&doc_json(1, vec![pod("a"), pod("b"), pod("a")]));
    assert_eq!(
        err,
        "pods[2].metadata.name: duplicate pod default/a: pods[0] has the same namespace and name"
    );
    let mut other_ns = pod("a");
    other_ns["metadata"]["namespace"] = json!("kube");
    assert_eq!(
        decode(&doc_json(1, vec![pod("a"), other_ns]))
            .unwrap()
            .pods
            .len(),
        2
    );
}

#[test]
fn an_oversized_payload_is_refused_before_it_is_parsed() {
    let garbage = vec![b'x'; MAX_DOC_BYTES + 1];
    assert_eq!(
        decode(&garbage),
        Err(DocError::TooLarge {
            size: MAX_DOC_BYTES + 1,
            limit: MAX_DOC_BYTES
        })
    );
    let small = DecodeOptions {
        max_bytes: 10,
        fleet_key: None,
    };
    let err = decode_desired(&doc_json(1, vec![]), &small).unwrap_err();
    assert_eq!(err.reason(), "TooLarge");
    assert!(
        err.to_string().ends_with("more than the limit of 10 bytes"),
        "{err}"
    );
}

#[test]
fn empty_and_unknown_payloads_are_refused() {
    assert_eq!(decode(b""), Err(DocError::Empty));
    assert_eq!(decode(b" \n"), Err(DocError::Empty));
    assert_eq!(decode(b"<xml/>"), Err(DocError::Format { first: b'<' }));
    assert_eq!(decode(b"\x89PL"), Err(DocError::Format { first: 0x89 }));
}

#[test]
fn postcard_carries_the_same_document_as_json() {
    let doc = decode(&doc_json(42, vec![pod("a"), pod("b")])).unwrap();
    let bytes = encode_postcard(&doc);
    assert!(bytes.starts_with(&POSTCARD_MAGIC));
    assert_eq!(detect_format(&bytes), Ok(Format::Postcard));
    assert_eq!(decode(&bytes).unwrap(), doc);
    assert!(bytes.len() < encode_json(&doc).len() + 16);
}

#[test]
fn json_encoding_round_trips_and_fills_in_pod_kind_and_api_version() {
    let doc = decode(&doc_json(3, vec![pod("a")])).unwrap();
    assert_eq!(decode(&encode_json(&doc)).unwrap(), doc);
    let mut bare = doc.clone();
    bare.pods[0].api_version.clear();
    bare.pods[0].kind.clear();
    assert_eq!(decode(&encode_json(&bare)).unwrap(), doc);
    assert_eq!(decode(&encode_postcard(&bare)).unwrap(), doc);
}

#[test]
fn truncated_or_padded_postcard_documents_are_refused() {
    let doc = decode(&doc_json(1, vec![pod("a")])).unwrap();
    let bytes = encode_postcard(&doc);
    let err = decode(&bytes[..bytes.len() - 3]).unwrap_err();
    assert!(matches!(err, DocError::Postcard(_)), "{err}");
    assert_eq!(err.reason(), "Malformed");
    let mut padded = bytes.clone();
    padded.push(0);
    assert_eq!(
        decode(&padded),
        Err(DocError::Postcard(
            "1 bytes after the end of the document".into()
        ))
    );
}

#[test]
fn postcard_documents_are_checked_like_json_ones() {
    let good = serde_json::to_string(&pod("a")).unwrap();
    assert_eq!(
        decode(&postcard_doc("DeviceState", 5, &[&good]))
            .unwrap()
            .revision,
        5
    );
    assert_eq!(
        error(&postcard_doc("Foo", 5, &[])),
        "kind: \"Foo\" is not DeviceState"
    );
    let err = error(&postcard_doc(
        "DeviceState",
        5,
        &[&good, "{\"apiVersion\":"],
    ));
    assert_eq!(
        err,
        "pods[1]: malformed JSON at line 1 column 14: EOF while parsing a value"
    );
    let mut bad = pod("b");
    bad["spec"]["containers"][0]["image"] = json!("");
    let bad = bad.to_string();
    assert_eq!(
        error(&postcard_doc("DeviceState", 5, &[&good, &bad])),
        "pods[1].spec.containers[0].image: must not be empty"
    );
}

#[test]
fn every_document_error_has_a_reason_for_status() {
    let reasons = [
        (DocError::Empty, "Malformed"),
        (DocError::Format { first: 0 }, "Malformed"),
        (DocError::Postcard(String::new()), "Malformed"),
        (DocError::TooLarge { size: 2, limit: 1 }, "TooLarge"),
        (DocError::field("kind", "x"), "Invalid"),
        (DocError::Unsigned { key_id: "k".into() }, "Unsigned"),
        (
            DocError::BadSignature {
                key_id: "k".into(),
                signer: "k".into(),
            },
            "BadSignature",
        ),
    ];
    for (e, want) in reasons {
        assert_eq!(e.reason(), want, "{e}");
    }
}

fn with_objects(revision: u64) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_slice(&doc_json(revision, vec![pod("a")])).unwrap();
    v["configMaps"] =
        json!([{"metadata": {"name": "cfg"}, "data": {"k": "v"}, "binaryData": {"b": "AAE="}}]);
    v["secrets"] =
        json!([{"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"t": "hunter2"}}]);
    v
}

#[test]
fn config_maps_and_secrets_travel_in_json_and_postcard() {
    let doc = decode(&serde_json::to_vec(&with_objects(4)).unwrap()).unwrap();
    let names: Vec<(&str, &str)> = doc
        .objects
        .iter()
        .map(|o| (o.kind.name(), o.name.as_str()))
        .collect();
    assert_eq!(names, [("ConfigMap", "cfg"), ("Secret", "s")]);
    assert_eq!(doc.objects[1].data["t"], b"hunter2");
    assert_eq!(decode(&encode_json(&doc)).unwrap(), doc);
    assert_eq!(decode(&encode_postcard(&doc)).unwrap(), doc);
    // Without objects the postcard form is still the V1 older agents read.
    let plain = decode(&doc_json(1, vec![pod("a")])).unwrap();
    assert_eq!(encode_postcard(&plain)[POSTCARD_MAGIC.len()], 0);
}

#[test]
fn bad_config_maps_and_secrets_are_reported_with_their_path_and_no_value() {
    let mut v = with_objects(1);
    v["secrets"][0]["data"] = json!({"t": "hunter2!"});
    let e = decode(&serde_json::to_vec(&v).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("secrets[0].data.t: not valid base64"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    let mut v = with_objects(1);
    v["configMaps"][0]["kind"] = json!("Secret");
    let e = decode(&serde_json::to_vec(&v).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("configMaps[0].kind: \"Secret\" is not ConfigMap"),
        "{e}"
    );
}

fn with_workloads(revision: u64) -> Value {
    let mut v: Value = serde_json::from_slice(&doc_json(revision, vec![pod("a")])).unwrap();
    v["workloads"] = json!([{
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        }
    }]);
    v
}

#[test]
fn workloads_travel_in_json_and_postcard_with_their_text() {
    let doc = decode(&serde_json::to_vec(&with_workloads(4)).unwrap()).unwrap();
    assert_eq!(doc.workloads.len(), 1);
    assert_eq!(
        doc.workloads[0].0.key().to_string(),
        "Deployment default/web"
    );
    assert_eq!(decode(&encode_json(&doc)).unwrap(), doc);
    assert_eq!(decode(&encode_postcard(&doc)).unwrap(), doc);
    // The V3 wire form only when there are workloads.
    assert_eq!(encode_postcard(&doc)[POSTCARD_MAGIC.len()], 2);
}

#[test]
fn a_bad_workload_is_named_with_its_index_and_field() {
    let mut v = with_workloads(1);
    v["workloads"][0]["spec"]["replica"] = json!(3);
    let e = decode(&serde_json::to_vec(&v).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("workloads[0].spec.replica"), "{e}");
    let mut v = with_workloads(1);
    v["workloads"][0]["spec"]["template"]["spec"]["containers"][0]["imagee"] = json!("x");
    let e = decode(&serde_json::to_vec(&v).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("workloads[0].spec.template.spec.containers[0].imagee"),
        "{e}"
    );
    let mut v = with_workloads(1);
    let again = v["workloads"][0].clone();
    v["workloads"].as_array_mut().unwrap().push(again);
    let e = decode(&serde_json::to_vec(&v).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("workloads[1].metadata.name: duplicate Deployment default/web"),
        "{e}"
    );
}

fn with_rollout(rollout: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "picolet.io/v1", "kind": "DeviceState", "revision": 4,
        "pods": [pod("a")], "rollout": rollout,
    }))
    .unwrap()
}

#[test]
fn the_rollout_block_is_read_with_defaults_for_what_is_left_out() {
    let d = decode(&with_rollout(json!({"onFailure": "Rollback"}))).unwrap();
    assert_eq!(
        d.rollout,
        Some(Rollout {
            health_deadline_seconds: 300,
            verify_seconds: 30,
            on_failure: OnFailure::Rollback
        })
    );
    let d = decode(&with_rollout(
        json!({"healthDeadlineSeconds": 20, "verifySeconds": 0}),
    ))
    .unwrap();
    let r = d.rollout.unwrap();
    assert_eq!(
        (r.health_deadline_seconds, r.verify_seconds, r.on_failure),
        (20, 0, OnFailure::Keep)
    );
    assert_eq!(decode(&doc_json(1, vec![pod("a")])).unwrap().rollout, None);
}

#[test]
fn a_bad_rollout_block_refuses_the_document_with_its_field_path() {
    for (block, want) in [
        (json!(3), "rollout: must be an object, got 3"),
        (
            json!({"onFailure": "Retry"}),
            "rollout.onFailure: \"Retry\" is neither \"Rollback\" nor \"Keep\"",
        ),
        (
            json!({"verifySeconds": -1}),
            "rollout.verifySeconds: must be a whole number of seconds, got -1",
        ),
        (
            json!({"healthDeadlineSeconds": 0}),
            "rollout.healthDeadlineSeconds: must be at least 1",
        ),
        (
            json!({"healthDeadlineSeconds": 10, "verifySeconds": 10}),
            "rollout.verifySeconds: 10 must be less than healthDeadlineSeconds (10)",
        ),
        (json!({"deadline": 1}), "rollout.deadline: unknown field"),
    ] {
        let e = error(&with_rollout(block.clone()));
        assert!(e.starts_with(want), "{block}: {e}");
    }
}

#[test]
fn the_rollout_block_round_trips_through_json_and_postcard_and_only_then_uses_v4() {
    let mut d = decode(&with_rollout(
        json!({"verifySeconds": 5, "onFailure": "Rollback"}),
    ))
    .unwrap();
    for bytes in [encode_json(&d), encode_postcard(&d)] {
        assert_eq!(decode(&bytes).unwrap(), d);
    }
    // The variant index follows the magic: V4 is 3.
    assert_eq!(encode_postcard(&d)[POSTCARD_MAGIC.len()], 3);
    d.rollout = None;
    assert_eq!(encode_postcard(&d)[POSTCARD_MAGIC.len()], 0);
    assert!(
        !String::from_utf8(encode_json(&d))
            .unwrap()
            .contains("rollout")
    );
}

const CA: &str = include_str!("../../../image/registry/fixtures/test-ca.pem");
const KEY: &str = include_str!("../../../image/registry/fixtures/test-client.key");

fn with_registries(block: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "picolet.io/v1", "kind": "DeviceState", "revision": 5,
        "pods": [pod("a")], "registries": block,
    }))
    .unwrap()
}

fn block() -> Value {
    json!({
        "mirrors": {"docker.io": {"endpoint": ["http://10.0.0.2:5000"],
                                  "rewrite": {"^library/(.*)": "hub/$1"}}},
        "configs": {"10.0.0.2:5000": {"auth": {"username": "u", "password": "hunter2"},
                                      "tls": {"ca": CA, "cert": CA, "key": KEY}}}
    })
}

#[test]
fn the_registries_block_is_read_and_its_debug_shows_no_secret() {
    let d = decode(&with_registries(block())).unwrap();
    let r = d.registries.as_ref().unwrap();
    assert_eq!(r.value(), &block());
    let shown = format!("{d:?}");
    assert!(
        shown.contains("RegistriesBlock(mirrors: docker.io; configs: 10.0.0.2:5000)"),
        "{shown}"
    );
    assert!(
        !shown.contains("hunter2") && !shown.contains("BEGIN"),
        "{shown}"
    );
    assert_eq!(
        decode(&doc_json(1, vec![pod("a")])).unwrap().registries,
        None
    );
    assert_eq!(
        decode(&with_registries(Value::Null)).unwrap().registries,
        None
    );
}

#[test]
fn a_bad_registries_block_refuses_the_document_with_its_field_path_and_no_secret() {
    for (block, want) in [
        (
            json!([]),
            "registries: must be an object (mirrors, configs)",
        ),
        (
            json!({"mirror": {}}),
            "registries.mirror: unknown field `mirror`",
        ),
        (
            json!({"mirrors": {"docker.io": {"endpoint": ["ftp://x"]}}}),
            "registries.mirrors[\"docker.io\"].endpoint[0]: ",
        ),
        (
            json!({"mirrors": {"docker.io": {"endpoint": "http://x"}}}),
            "registries.mirrors[\"docker.io\"].endpoint: invalid type: string, expected a sequence",
        ),
        (
            json!({"configs": {"r": {"tls": {"ca_file": "/etc/picolet/ca.pem"}}}}),
            "registries.configs[\"r\"].tls.ca_file: a fleet document cannot name files on the device: give the PEM text as ca",
        ),
        (
            json!({"configs": {"r": {"tls": {"ca": "hunter2"}}}}),
            "registries.configs[\"r\"].tls.ca: no certificate in it (PEM text expected)",
        ),
        (
            json!({"configs": {"r": {"auth": {"password": "hunter2"}}}}),
            "registries.configs[\"r\"].auth: give either auth or username and password",
        ),
        (
            json!({"configs": {"r": {"auth": {"auth": "hunter2"}}}}),
            "registries.configs[\"r\"].auth.auth: is not base64 of user:password",
        ),
        (
            json!({"configs": {"r": {"tls": {"insecure_skip_verify": true}}}}),
            "registries.configs[\"r\"].tls.insecure_skip_verify: is not supported",
        ),
    ] {
        let e = decode(&with_registries(block.clone())).unwrap_err();
        assert_eq!(e.reason(), "Invalid", "{block}: {e}");
        let e = e.to_string();
        assert!(e.starts_with(want), "{block}: {e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
}

#[test]
fn the_registries_block_round_trips_through_json_and_postcard_and_only_then_uses_v5() {
    let mut d = decode(&with_registries(block())).unwrap();
    for rollout in [None, Some(Rollout::default())] {
        d.rollout = rollout;
        for bytes in [encode_json(&d), encode_postcard(&d)] {
            assert_eq!(decode(&bytes).unwrap(), d);
        }
        // The variant index follows the magic: V5 is 4.
        assert_eq!(encode_postcard(&d)[POSTCARD_MAGIC.len()], 4);
    }
    d.registries = None;
    assert_eq!(encode_postcard(&d)[POSTCARD_MAGIC.len()], 3, "V4 again");
    assert!(
        !String::from_utf8(encode_json(&d))
            .unwrap()
            .contains("registries")
    );
}

#[test]
fn a_postcard_registries_block_is_checked_as_the_json_one() {
    let good = encode_postcard(&decode(&with_registries(block())).unwrap());
    // Swap the block's JSON text for a bad one of the same length: the
    // postcard string keeps its length prefix.
    let text = block().to_string();
    let bad = text.replacen("\"endpoint\"", "\"endpoinz\"", 1);
    let pos = good
        .windows(text.len())
        .position(|w| w == text.as_bytes())
        .unwrap();
    let mut bytes = good.clone();
    bytes[pos..pos + text.len()].copy_from_slice(bad.as_bytes());
    let e = error(&bytes);
    assert!(
        e.starts_with("registries.mirrors[\"docker.io\"].endpoinz: unknown field"),
        "{e}"
    );
}
