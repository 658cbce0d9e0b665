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

const DESIRED: &str = "picolet/devices/dev1/desired";

/// How many times the agent connected to the broker (its log).
fn connections(a: &Agent) -> usize {
    a.agent_log().matches("fleet: connected to").count()
}

/// Issue 7, finding 3: a 5 MB QoS 1 message, then an oversized retained
/// one, used to drop the connection; mosquitto redelivered the first on the
/// session-present reconnect (and the second on every subscription), so the
/// agent reconnected about once a second and never saw a later revision.
/// Now each is consumed as it streams (acknowledged, reported in status
/// with its topic and size against the limit), the connection stays up,
/// the agent's peak memory does not grow by the payload, and a signed
/// revision sent after them applies.
#[test]
fn oversized_qos1_messages_are_consumed_and_a_later_signed_revision_applies() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = Broker::start_with(UNLIMITED_BROKER, &[""]) else {
        return;
    };
    let url = url(&broker, 0);
    let keys = tempfile::tempdir().unwrap();
    let prefix = keys.path().join("fleet");
    ok(ctl(&["keygen", prefix.to_str().unwrap()]));
    let (private, public) = (
        format!("{}.key", prefix.display()),
        format!("{}.pub", prefix.display()),
    );
    let a = fleet_agent(&url, "dev1", &["--fleet-key", &public]);
    let web = manifest(&a, "web.yaml", &sleeper("web"));
    let db = manifest(&a, "db.yaml", &sleeper("db"));
    let sign = ["--sign-key", private.as_str()];
    ok(apply(&url, ("--device", "dev1"), &[&web], &sign));
    let started = started_at(&a, "web");
    let peak_before = peak_rss(a.pid());
    assert_eq!(connections(&a), 1);

    // Unsigned: no signature is needed to send one. The second is retained
    // (delivered live, it comes without the retain flag).
    let cases = [
        (5 << 20, false, "the document is 5242880 bytes"),
        (3 << 20, true, "the document is 3145728 bytes"),
    ];
    for (size, retain, want) in cases {
        publish_many(&url, vec![(DESIRED.into(), vec![b'{'; size], retain)]);
        let status = wait_status(&url, "dev1", 20, want, |s| {
            errors_on(s, DESIRED).iter().any(|(_, m)| m.contains(want))
        });
        let errors = errors_on(&status, DESIRED);
        assert_eq!(
            errors,
            [(
                "TooLarge".to_string(),
                format!("{want}, more than the limit of 1048576 bytes: discarded unread")
            )]
        );
        assert_eq!(status["observedRevision"]["device"], 1);
    }
    // Streamed, not buffered: the peak resident set grew by far less than
    // either payload (a buffered 5 MB message alone would add 5 MiB).
    let grown = peak_rss(a.pid()).saturating_sub(peak_before);
    eprintln!("peak RSS {peak_before} bytes before, grew by {grown} bytes");
    assert!(grown < 2 << 20, "peak RSS grew by {grown} bytes");
    // Never dropped, so nothing is redelivered.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(connections(&a), 1, "{}", a.agent_log());
    assert!(
        !a.agent_log().contains("connection to"),
        "{}",
        a.agent_log()
    );

    // The agent restarts: its session is present (nothing is redelivered:
    // both were acknowledged), and the retained one comes again, flagged,
    // on the subscription: consumed again, once.
    let mut a = a;
    a.kill9();
    a.spawn();
    let retained = "the document is 3145728 bytes, more than the limit of 1048576 bytes: discarded unread (retained)";
    wait_status(&url, "dev1", 20, "the retained one again", |s| {
        errors_on(s, DESIRED).iter().any(|(_, m)| m == retained)
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let log = a.agent_log();
    assert_eq!(connections(&a), 2, "{log}");
    assert!(log.contains("(session present: true)"), "{log}");
    assert_eq!(log.matches("of 5242880 bytes").count(), 1, "{log}");
    assert_eq!(log.matches("of 3145728 bytes").count(), 2, "{log}");

    // A signed revision sent after them applies.
    let out = ok(apply(&url, ("--device", "dev1"), &[&web, &db], &sign));
    assert!(out.contains("revision 2 observed by dev1"), "{out}");
    a.wait_running("db", "main", 30);
    assert_untouched(&a, "web", &started);
    assert_eq!(connections(&a), 2, "{}", a.agent_log());
    a.assert_one_thread();
}

/// xorshift64: reproducible from the seed printed by the test.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.below(256) as u8).collect()
    }
}

/// One random hostile message for a device with a 4 KiB document limit
/// (its packet cap is 4096 + 65,539 bytes): oversized, or within the cap
/// but garbage of some kind. Never a valid document.
fn hostile(rng: &mut Rng) -> Vec<u8> {
    let cap = 4096 + 65_539;
    match rng.below(7) {
        0 | 1 => {
            let len = cap + 1 + rng.below(250_000) as usize;
            let mut v = vec![b' '; len];
            v[0] = b'{';
            v
        }
        2 => {
            let len = rng.below(4096) as usize;
            rng.bytes(len)
        }
        3 => {
            let len = rng.below(3000) as usize;
            let mut v = b"{\"apiVersion\":\"picolet.io/v1\",\"kind\":\"DeviceState\",".to_vec();
            v.extend((0..len).map(|_| b' ' + rng.below(95) as u8));
            v
        }
        4 => {
            let mut v = b"\x89PLD".to_vec();
            let len = rng.below(2000) as usize;
            v.extend(rng.bytes(len));
            v
        }
        5 => {
            // Over the document limit, within the packet cap.
            let len = 4097 + rng.below(60_000) as usize;
            vec![b'{'; len]
        }
        _ => {
            let revision = match rng.below(3) {
                0 => json!(u64::MAX),
                1 => json!(-1),
                _ => json!("7"),
            };
            serde_json::to_vec(&json!({
                "apiVersion": "picolet.io/v1", "kind": "DeviceState",
                "revision": revision, "pods": [pod("intruder")],
            }))
            .unwrap()
        }
    }
}

/// Issue 7's fuzz test: 1,000 random oversized and garbage QoS 1 messages
/// (some retained) against a real mosquitto, then a valid revision: it is
/// applied within 5 s, on the connection the agent had from the start.
#[test]
fn a_thousand_random_oversized_and_garbage_messages_then_a_valid_revision_applies_within_5_s() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = Broker::start_with(UNLIMITED_BROKER, &[""]) else {
        return;
    };
    let url = url(&broker, 0);
    let a = fleet_agent(&url, "dev1", &["--max-document-bytes", "4096"]);
    wait_status(&url, "dev1", 20, "the first status", |_| true);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("fuzz seed {seed:#x}");
    let mut rng = Rng(seed);
    let messages: Vec<(String, Vec<u8>, bool)> = (0..1000)
        .map(|_| {
            let payload = hostile(&mut rng);
            let retain = rng.below(10) == 0 && !payload.is_empty();
            (DESIRED.to_string(), payload, retain)
        })
        .collect();
    let oversized = messages
        .iter()
        .filter(|m| m.1.len() > 4096 + 65_539)
        .count();
    eprintln!("{oversized} of 1000 are over the packet cap");
    publish_many(&url, messages);

    let valid = doc(1000, vec![pod("fuzzed")]);
    let sent = std::time::Instant::now();
    publish_raw(&url, DESIRED, valid);
    let status = wait_status(&url, "dev1", 5, "revision 1000 applied within 5 s", |s| {
        s["observedRevision"]["device"] == 1000
    });
    eprintln!("applied {:?} after the publish", sent.elapsed());
    assert!(errors_on(&status, DESIRED).is_empty(), "{status}");
    assert_eq!(connections(&a), 1, "seed {seed:#x}: {}", a.agent_log());
    a.wait_running("fuzzed", "main", 30);
    assert!(a.pod("intruder").is_none());
    a.assert_one_thread();
}

/// Issue 7, finding 6 ("revision overflow"): 18446744073709551615 was
/// accepted, after which no newer revision was possible; `apply` wrapped to
/// 0, the device refused it as stale, and `apply` printed "observed" and
/// exited 0.
#[test]
fn revisions_above_2_pow_53_are_refused_and_apply_never_wraps() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let a = fleet_agent(&url, "dev1", &[]);
    let web = manifest(&a, "web.yaml", &sleeper("web"));

    // A device that refuses the revision `apply` sends, here as stale,
    // makes `apply` fail, never print "observed". To get there: the device
    // is at 10, the retained document says 3 (an old controller re-sent
    // it) and the device's retained status was cleared, so `apply` can
    // only count from 3.
    publish_raw(&url, DESIRED, doc(10, vec![]));
    wait_status(&url, "dev1", 10, "revision 10", |s| {
        s["observedRevision"]["device"] == 10
    });
    publish_raw(&url, DESIRED, doc(3, vec![]));
    wait_status(&url, "dev1", 10, "revision 3 refused", |s| {
        errors_on(s, DESIRED).iter().any(|(r, _)| r == "Stale")
    });
    publish_raw(&url, "picolet/devices/dev1/status", Vec::new());
    let out = apply(&url, ("--device", "dev1"), &[&web], &["--timeout", "10"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("published revision 4")
            && text(&out).contains("device dev1 refused the document (Stale): "),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("observed by"), "{}", text(&out));

    publish_raw(&url, DESIRED, doc(u64::MAX, vec![pod("big")]));
    let want = "revision: 18446744073709551615 is above the largest revision allowed, 2^53 = 9007199254740992";
    let status = wait_status(&url, "dev1", 10, want, |s| {
        errors_on(s, DESIRED).iter().any(|(_, m)| m.contains(want))
    });
    assert_eq!(errors_on(&status, DESIRED)[0].0, "Invalid");
    assert_eq!(status["observedRevision"]["device"], 10);
    assert!(a.pod("big").is_none());

    // 2^53 itself is the last revision accepted...
    let last = 1u64 << 53;
    publish_raw(&url, DESIRED, doc(last, vec![]));
    wait_status(&url, "dev1", 10, "revision 2^53", |s| {
        s["observedRevision"]["device"] == last
    });
    // ...and `apply` refuses to go past it: non-zero, nothing published.
    let out = apply(&url, ("--device", "dev1"), &[&web], &["--timeout", "5"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("cannot publish: the last revision is 9007199254740992, and the next would be above the largest revision devices accept (2^53 = 9007199254740992); nothing was published"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("observed"), "{}", text(&out));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = device_entry(&url, "dev1").unwrap()["status"].clone();
    assert_eq!(status["observedRevision"]["device"], last);
    assert!(errors_on(&status, DESIRED).is_empty(), "{status}");
    assert!(a.pod("web").is_none());
}
