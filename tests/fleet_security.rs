//! The fleet channel's defences end to end: mTLS, signed desired state, the
//! node policy, and refused documents (malformed, wrong kind, bad field,
//! oversized) that leave running pods untouched. Real mosquitto, real
//! agents, certificates made by the test with openssl. As root.

mod support;
use picolet::fleet::doc::seal_envelope;
use picolet::fleet::sign::{SigningKey, base64, read_private_key};
use serde_json::{Value, json};
use support::fleet::*;
use support::*;

#[test]
fn mtls_works_with_one_agent_thread_and_a_wrong_ca_is_refused() {
    if !root_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(pki) = Pki::generate(dir.path()) else {
        return;
    };
    // Listener 0: mTLS; 1: plain, for the controller.
    let Some(broker) = Broker::start(&[&pki.listener("server", true), ""]) else {
        return;
    };
    let tls_url = format!("mqtts://127.0.0.1:{}", broker.ports[0]);
    let plain = url(&broker, 1);
    let args = mtls_args(&pki, "ca.crt");
    let mut extra: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = fleet_agent(&tls_url, "secure", &extra);
    let web = manifest(&a, "web.yaml", &sleeper("web"));
    // The controller over mTLS too.
    let mut ctl_tls = vec!["--timeout", "30"];
    ctl_tls.extend(extra.iter().copied());
    let out = ok(apply(&tls_url, ("--device", "secure"), &[&web], &ctl_tls));
    assert!(out.contains("revision 1 observed by secure"), "{out}");
    a.wait_running("web", "main", 30);
    assert!(a.agent_log().contains(" (TLS) as device secure"));
    a.assert_one_thread();

    // Trusting another CA: the agent never connects and says why.
    let wrong = mtls_args(&pki, "other-ca.crt");
    extra = wrong.iter().map(String::as_str).collect();
    let b = fleet_agent(&tls_url, "mistrusting", &extra);
    wait_for(15, "the refusal in the log", || {
        b.agent_log()
            .contains("invalid peer certificate: UnknownIssuer")
            .then_some(())
    });
    assert!(!b.agent_log().contains("fleet: connected to"));
    assert!(device_entry(&plain, "mistrusting").is_none());
    let out = apply(
        &plain,
        ("--device", "mistrusting"),
        &[&web],
        &["--timeout", "2"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("timed out after 2 s: no status from device mistrusting yet"),
        "{}",
        text(&out)
    );
    b.assert_one_thread();
}

#[test]
fn signed_documents_are_accepted_and_forged_or_unsigned_ones_are_refused() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let keys = tempfile::tempdir().unwrap();
    let fleet_key = keys.path().join("fleet");
    let other_key = keys.path().join("other");
    for k in [&fleet_key, &other_key] {
        let out = ok(ctl(&["keygen", k.to_str().unwrap()]));
        assert!(out.contains(".pub (key id "), "{out}");
    }
    let (private, public) = (
        format!("{}.key", fleet_key.display()),
        format!("{}.pub", fleet_key.display()),
    );
    let other = format!("{}.key", other_key.display());
    let a = fleet_agent(&url, "dev1", &["--fleet-key", &public]);
    let web = manifest(&a, "web.yaml", &sleeper("web"));
    let intruder = manifest(&a, "intruder.yaml", &sleeper("intruder"));
    let out = ok(apply(
        &url,
        ("--device", "dev1"),
        &[&web],
        &["--sign-key", &private],
    ));
    assert!(out.contains("signed with key"), "{out}");
    let started = started_at(&a, "web");

    let refused = |extra: &[&str], reason: &str| {
        let out = apply(&url, ("--device", "dev1"), &[&intruder], extra);
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains(&format!("device dev1 refused the document ({reason})")),
            "{}",
            text(&out)
        );
    };
    refused(&[], "Unsigned");
    refused(&["--sign-key", &other], "BadSignature");

    // Forged: a genuine envelope whose payload was swapped.
    let key =
        SigningKey::from_pkcs8(&read_private_key(std::path::Path::new(&private)).unwrap()).unwrap();
    let genuine = doc(7, vec![pod("web")]);
    let mut env: Value = serde_json::from_slice(&seal_envelope(&genuine, &key)).unwrap();
    env["payload"] = base64::encode(&doc(7, vec![pod("intruder")])).into();
    publish_raw(
        &url,
        "picolet/devices/dev1/desired",
        serde_json::to_vec(&env).unwrap(),
    );
    let status = wait_status(&url, "dev1", 10, "the forgery reported", |s| {
        errors_on(s, "picolet/devices/dev1/desired")
            .iter()
            .any(|(_, m)| m.contains("signature does not verify"))
    });
    assert_eq!(status["observedRevision"]["device"], 1);
    assert!(a.pod("intruder").is_none());
    assert_untouched(&a, "web", &started);
}

#[test]
fn a_privileged_remote_pod_is_refused_by_the_default_policy() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let a = fleet_agent(&url, "dev1", &[]);
    let ok_pod = manifest(&a, "fine.yaml", &sleeper("fine"));
    let root = manifest(
        &a,
        "root.yaml",
        &(sleeper("root") + "    securityContext:\n      privileged: true\n"),
    );
    let out = apply(&url, ("--device", "dev1"), &[&ok_pod, &root], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(
            "PolicyViolation: pod default/root refused: spec.containers[0].securityContext.privileged: privileged containers are not allowed by this device's policy (allow with policy.allowPrivileged)"
        ),
        "{}",
        text(&out)
    );
    a.wait_running("fine", "main", 30);
    assert!(a.pod("root").is_none());
    let status = device_entry(&url, "dev1").unwrap()["status"].clone();
    let errors = errors_on(&status, "picolet/devices/dev1/desired");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(status["errors"][0]["pod"], "default/root");
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": IMAGE,
                 "command": ["sh", "-c", "exec sleep 100000"]}]}
    })
}

fn doc(revision: u64, pods: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "picolet.io/v1", "kind": "DeviceState",
        "revision": revision, "pods": pods,
    }))
    .unwrap()
}

#[test]
fn malformed_wrong_kind_bad_field_and_oversized_documents_are_reported_and_change_nothing() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let a = fleet_agent(&url, "dev1", &["--max-document-bytes", "4096"]);
    let web = manifest(&a, "web.yaml", &sleeper("web"));
    ok(apply(&url, ("--device", "dev1"), &[&web], &[]));
    let started = started_at(&a, "web");
    let topic = "picolet/devices/dev1/desired";
    let mut bad_field = pod("other");
    bad_field["spec"]["restartPolicy"] = "Sometimes".into();
    let mut big = pod("big");
    big["metadata"]["labels"] = json!({"padding": "x".repeat(5000)});
    let cases: [(Vec<u8>, &str, &str); 4] = [
        (
            br#"{"apiVersion":"picolet.io/v1","kind":"DeviceState","revision":9,"pods":["#.to_vec(),
            "Malformed",
            "malformed JSON at line 1",
        ),
        (
            br#"{"apiVersion":"picolet.io/v1","kind":"Deployment","revision":9,"pods":[]}"#
                .to_vec(),
            "Invalid",
            "kind: \"Deployment\" is not DeviceState",
        ),
        (
            doc(9, vec![bad_field]),
            "Invalid",
            "pods[0].spec.restartPolicy",
        ),
        (
            doc(9, vec![big]),
            "TooLarge",
            "more than the limit of 4096 bytes",
        ),
    ];
    for (payload, reason, want) in cases {
        publish_raw(&url, topic, payload);
        let status = wait_status(&url, "dev1", 10, want, |s| {
            errors_on(s, topic).iter().any(|(_, m)| m.contains(want))
        });
        let errors = errors_on(&status, topic);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, reason, "{errors:?}");
        assert_eq!(status["observedRevision"]["device"], 1);
        assert_untouched(&a, "web", &started);
        assert_eq!(a.pods().len(), 1);
    }
    // A good document clears the error.
    ok(apply(&url, ("--device", "dev1"), &[&web], &[]));
    let status = device_entry(&url, "dev1").unwrap()["status"].clone();
    assert!(errors_on(&status, topic).is_empty(), "{status}");
    assert_untouched(&a, "web", &started);
}
