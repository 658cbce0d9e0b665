//! The fleet channel end to end: a real mosquitto on a loopback port, real
//! agents and pods, and the controller commands (`picolet apply`, `delete`,
//! `fleet status`). As root.

mod support;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::fleet::*;
use support::*;

#[test]
fn apply_runs_the_pods_and_the_status_shows_the_revision() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let a = fleet_agent(&url, "dev1", &[]);
    let web = manifest(&a, "web.yaml", &sleeper("web"));
    let out = ok(apply(&url, ("--device", "dev1"), &[&web], &[]));
    assert!(
        out.contains("device dev1: published revision 1 (1 pods) to picolet/devices/dev1/desired"),
        "{out}"
    );
    assert!(out.contains("revision 1 observed by dev1"), "{out}");
    a.wait_running("web", "main", 30);
    a.assert_one_thread();

    // The status: revision, the pod and its Kubernetes status, the node.
    let status = wait_status(&url, "dev1", 10, "web ready in status", |s| {
        s["pods"][0]["status"]["containerStatuses"][0]["ready"] == true
    });
    assert_eq!(status["observedRevision"]["device"], 1);
    assert_eq!(status["pods"][0]["metadata"]["name"], "web");
    assert_eq!(status["pods"][0]["status"]["phase"], "Running");
    assert!(
        status["node"]["kernel"]
            .as_str()
            .is_some_and(|k| !k.is_empty())
    );
    assert_eq!(status["node"]["picoletVersion"], env!("CARGO_PKG_VERSION"));
    let entry = device_entry(&url, "dev1").unwrap();
    assert_eq!(entry["online"], true);
    let table = ok(ctl(&["fleet", "status", "--broker", &url]));
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["dev1", "true", "device=1"], "{table}");
    assert_eq!(row[4], "1/1", "{table}");

    // The local CLI names the source.
    let pods = a.cli(&["get", "pods", "-o", "wide"]);
    assert!(pods.status.success());

    // A second apply merges (web stays, db is added); delete removes one pod.
    let db = manifest(&a, "db.yaml", &sleeper("db"));
    let out = ok(apply(&url, ("--device", "dev1"), &[&web, &db], &[]));
    assert!(out.contains("published revision 2 (2 pods)"), "{out}");
    a.wait_running("db", "main", 30);
    let out = ok(ctl(&[
        "delete", "pod", "web", "--device", "dev1", "--broker", &url,
    ]));
    assert!(out.contains("published revision 3 (1 pods)"), "{out}");
    wait_for(30, "web removed", || a.pod("web").is_none().then_some(()));
    assert!(a.pod("db").is_some());
    let out = ctl(&["delete", "pod", "web", "--device", "dev1", "--broker", &url]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(
            "Error from server (NotFound): pods \"web\" not found (not in the desired state of device dev1, revision 3)"
        ),
        "{}",
        text(&out)
    );
    a.assert_one_thread();
}

#[test]
fn group_desired_state_reaches_two_agents_and_the_device_wins_a_clash() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let a = fleet_agent(&url, "dev-a", &["--group", "kitchen"]);
    let b = fleet_agent(&url, "dev-b", &["--group", "kitchen"]);
    let grp = manifest(&a, "grp.yaml", &sleeper("grp"));
    let out = ok(apply(&url, ("--group", "kitchen"), &[&grp], &[]));
    assert!(
        out.contains(
            "group kitchen: published revision 1 (1 pods) to picolet/groups/kitchen/desired"
        ),
        "{out}"
    );
    a.wait_running("grp", "main", 30);
    b.wait_running("grp", "main", 30);
    for dev in ["dev-a", "dev-b"] {
        wait_status(&url, dev, 10, "group revision 1", |s| {
            s["observedRevision"]["groups"]["kitchen"] == 1
        });
    }
    // The group's pods, one row per device and pod.
    let table = wait_for(10, "grp ready on both devices", || {
        let t = ok(ctl(&[
            "fleet", "status", "--group", "kitchen", "--broker", &url,
        ]));
        (t.matches("Running").count() == 2).then_some(t)
    });
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["DEVICE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{table}"
    );
    assert_eq!(rows[1][..4], ["dev-a", "grp", "1/1", "Running"], "{table}");
    assert_eq!(rows[2][..4], ["dev-b", "grp", "1/1", "Running"], "{table}");
    assert_eq!(rows.len(), 3, "{table}");

    // dev-a's own document defines `grp` too: its version wins there.
    let own = manifest(
        &a,
        "own.yaml",
        &sleeper("grp").replace("echo up;", "echo device-version;"),
    );
    ok(apply(&url, ("--device", "dev-a"), &[&own], &[]));
    let status = wait_status(&url, "dev-a", 20, "the clash reported", |s| {
        !errors_on(s, "picolet/groups/kitchen/desired").is_empty()
    });
    let errors = errors_on(&status, "picolet/groups/kitchen/desired");
    assert_eq!(errors[0].0, "NameClash", "{errors:?}");
    assert!(
        errors[0].1.contains(
            "pod default/grp of group kitchen is ignored: device dev-a defines it too and wins"
        ),
        "{errors:?}"
    );
    wait_for(30, "the device's version runs on dev-a", || {
        let logs = a.cli(&["logs", "grp"]);
        String::from_utf8_lossy(&logs.stdout)
            .contains("device-version")
            .then_some(())
    });
    let logs = b.cli(&["logs", "grp"]);
    assert!(!String::from_utf8_lossy(&logs.stdout).contains("device-version"));
}

#[test]
fn a_broker_outage_keeps_pods_running_and_the_agent_republishes_status_on_reconnect() {
    if !root_or_skip() {
        return;
    }
    let Some(mut broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let a = fleet_agent(&url, "dev1", &[]);
    let web = manifest(&a, "web.yaml", &sleeper("web"));
    ok(apply(&url, ("--device", "dev1"), &[&web], &[]));
    let started = started_at(&a, "web");

    broker.stop();
    wait_for(10, "the agent to notice", || {
        a.agent_log()
            .contains("connection to mqtt://127.0.0.1")
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_untouched(&a, "web", &started);
    a.assert_one_thread();

    // The restarted broker has no retained messages (no persistence): the
    // status it holds after this comes from the agent's reconnect.
    broker.restart();
    let t = Instant::now();
    let status = wait_status(&url, "dev1", 30, "status republished", |s| {
        s["observedRevision"]["device"] == 1
    });
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "reconnect took {took:?}; the back-off after a few seconds down is at most 8 s"
    );
    assert_eq!(status["pods"][0]["metadata"]["name"], "web");
    assert_eq!(device_entry(&url, "dev1").unwrap()["online"], true);
    assert_untouched(&a, "web", &started);
    assert!(a.agent_log().matches("fleet: connected to").count() >= 2);
}

#[test]
fn desired_state_changed_while_the_agent_was_away_is_applied_when_it_reconnects() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let mut a = fleet_agent(&url, "dev1", &[]);
    let one = manifest(&a, "one.yaml", &sleeper("one"));
    let two = manifest(&a, "two.yaml", &sleeper("two"));
    ok(apply(&url, ("--device", "dev1"), &[&one], &[]));
    a.wait_running("one", "main", 30);

    // The agent dies; the controller publishes revision 2 (`two` instead
    // of `one`: --prune) and waits.
    a.kill9();
    wait_for(10, "online=false (the will)", || {
        (device_entry(&url, "dev1")?["online"] == false).then_some(())
    });
    let pending = Command::new(BIN)
        .args(["apply", "-f", &two, "--device", "dev1", "--broker", &url])
        .args(["--timeout", "60", "--prune"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    a.spawn();
    let out = pending.wait_with_output().unwrap();
    let out = ok(out);
    assert!(out.contains("revision 2 observed by dev1"), "{out}");
    a.wait_running("two", "main", 30);
    wait_for(30, "one removed", || a.pod("one").is_none().then_some(()));
}

#[test]
fn an_agent_restarted_without_a_broker_runs_the_last_desired_state() {
    if !root_or_skip() {
        return;
    }
    let Some(mut broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let mut a = fleet_agent(&url, "dev1", &[]);
    let web = manifest(&a, "web.yaml", &sleeper("web"));
    ok(apply(&url, ("--device", "dev1"), &[&web], &[]));
    a.wait_running("web", "main", 30);

    // A power cut: agent, broker and pods all gone.
    a.kill9();
    broker.stop();
    for e in std::fs::read_dir(a.state().join("pods")).unwrap().flatten() {
        shutdown_shim(&e.path().join("shim.sock"));
    }
    a.spawn();
    a.wait_running("web", "main", 30);
    let log = a.agent_log();
    assert!(log.contains("stored revisions: device Some(1)"), "{log}");
    assert!(log.contains("cannot connect to 127.0.0.1"), "{log}");
    a.assert_one_thread();
}

#[test]
fn a_static_pod_wins_a_name_clash_and_the_fleet_pod_returns_when_it_goes() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let a = fleet_agent(&url, "dev1", &[]);
    a.apply(
        "web.yaml",
        &sleeper("web").replace("echo up;", "echo static;"),
    );
    let started = started_at(&a, "web");
    let fleet_web = manifest(&a, "fleet-web.yaml", &sleeper("web"));
    let out = apply(&url, ("--device", "dev1"), &[&fleet_web], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out)
            .contains("NameClash: pod default/web of device dev1 is ignored: the static pod from"),
        "{}",
        text(&out)
    );
    assert_untouched(&a, "web", &started);

    // The static pod goes: the fleet's version takes the name.
    a.remove("web.yaml");
    wait_for(30, "the fleet's web", || {
        let s = a.container("web", "main")?;
        let running = s["state"]["running"]["startedAt"].as_str()?;
        (running != started).then_some(())
    });
    let status = wait_status(&url, "dev1", 10, "the clash cleared", |s| {
        errors_on(s, "picolet/devices/dev1/desired").is_empty()
    });
    assert_eq!(status["pods"][0]["metadata"]["name"], "web");
}

/// A broker host name other than `localhost` is looked up by `picolet
/// resolve`, a child process: getaddrinfo(3) blocks, and the agent's one
/// thread must not.
#[test]
fn a_broker_given_by_host_name_is_looked_up_by_a_child_and_the_agent_connects() {
    let out = ctl(&["resolve", "localhost", "1883"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(text.lines().any(|l| l == "127.0.0.1:1883"), "{text}");
    let out = ctl(&["resolve", "localhost", "99999"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("error: port \"99999\""));
    if !root_or_skip() {
        return;
    }
    // A name that /etc/hosts gives 127.0.0.1 (`localhost` itself never
    // reaches the lookup).
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let name = hosts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next() == Some("127.0.0.1"))
            .then(|| f.find(|n| !n.starts_with("localhost")))
            .flatten()
            .map(str::to_string)
    });
    let Some(name) = name else {
        eprintln!(
            "no name besides localhost for 127.0.0.1 in /etc/hosts: only `picolet resolve` was tested"
        );
        return;
    };
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = format!("mqtt://{name}:{}", broker.ports[0]);
    let a = fleet_agent(&url, "dev-named", &[]);
    wait_for(15, "the agent connected by name", || {
        a.agent_log()
            .contains(&format!("fleet: connected to {url}"))
            .then_some(())
    });
    a.assert_one_thread();
}

#[test]
fn a_deployment_published_to_a_device_runs_and_its_rollout_state_is_reported() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let a = fleet_agent(&url, "dev1", &[]);
    let deploy = manifest(
        &a,
        "web.yaml",
        &format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {IMAGE}
        command: ["sh", "-c", "exec sleep 100000"]
"#
        ),
    );
    let out = ok(apply(&url, ("--device", "dev1"), &[&deploy], &[]));
    assert!(out.contains("+ deployment.apps/default/web"), "{out}");
    let status = wait_status(&url, "dev1", 40, "web 2/2 in status", |s| {
        s["workloads"][0]["status"]["readyReplicas"] == 2
    });
    assert_eq!(status["workloads"][0]["kind"], "Deployment");
    assert_eq!(status["workloads"][0]["desired"], 2);
    let pods = status["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 2, "{pods:?}");
    let table = ok(ctl(&[
        "fleet", "status", "--device", "dev1", "--broker", &url,
    ]));
    assert!(table.contains("deployment/web"), "{table}");
    // Replacing the document's content (--prune) with a pod removes the
    // Deployment, and its pods go.
    let other = manifest(&a, "solo.yaml", &sleeper("solo"));
    ok(apply(&url, ("--device", "dev1"), &[&other], &["--prune"]));
    a.wait_running("solo", "main", 30);
    wait_for(30, "web's pods gone", || {
        a.pods()
            .iter()
            .all(|p| {
                !p["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("web-")
            })
            .then_some(())
    });
    a.assert_one_thread();
}

/// Issue 14: what `apply` publishes is compressed (zlib), a message over
/// `--max-message-bytes` is refused with its size before anything is
/// published, and an uncompressed document (another controller's, or an
/// older picolet's) still applies.
#[test]
fn apply_publishes_compressed_documents_and_refuses_a_message_over_max_message_bytes() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    const DESIRED: &str = "picolet/devices/dev1/desired";
    let a = fleet_agent(&url, "dev1", &[]);
    let web = manifest(&a, "web.yaml", &sleeper("web"));

    let out = apply(
        &url,
        ("--device", "dev1"),
        &[&web],
        &["--max-message-bytes", "100"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = text(&out);
    let size: usize = out
        .split("device dev1: revision 1 (1 pods) is a message of ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(size > 100, "{out}");
    assert!(
        out.contains(&format!(
            "is a message of {size} bytes (compressed), more than --max-message-bytes 100; nothing published"
        )),
        "{out}"
    );
    assert_eq!(retained(&url, DESIRED), None);

    let out = ok(apply(
        &url,
        ("--device", "dev1"),
        &[&web],
        &["--max-message-bytes", "128Ki"],
    ));
    let payload = retained(&url, DESIRED).unwrap();
    assert_eq!(payload[0], 0x78, "not a zlib stream: {payload:?}");
    assert_eq!(payload.len(), size);
    assert!(
        out.contains(&format!(
            "published revision 1 (1 pods) to {DESIRED} ({size} bytes)"
        )),
        "{out}"
    );
    a.wait_running("web", "main", 30);

    // The uncompressed form: plain JSON, as before.
    let db = serde_json::json!({
        "apiVersion": "picolet.io/v1", "kind": "DeviceState", "revision": 2,
        "pods": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "main",
                "image": IMAGE, "command": ["sh", "-c", "exec sleep 100000"]}]}}],
    });
    publish_raw(&url, DESIRED, serde_json::to_vec(&db).unwrap());
    a.wait_running("db", "main", 30);
    wait_for(30, "web removed", || a.pod("web").is_none().then_some(()));
    let status = wait_status(&url, "dev1", 10, "revision 2", |s| {
        s["observedRevision"]["device"] == 2
    });
    assert!(errors_on(&status, DESIRED).is_empty(), "{status}");

    // A deflate bomb: about 100 KB that inflate to 16 MiB. Refused as
    // TooLarge once past --max-document-bytes (1 MiB), without the agent's
    // peak memory growing by what it would inflate to; db keeps running.
    let bomb = picolet::fleet::doc::compress(&vec![b' '; 16 << 20]);
    let peak_before = peak_rss(a.pid());
    publish_raw(&url, DESIRED, bomb.clone());
    let want = format!(
        "the compressed document ({} bytes) inflates to more than the limit of 1048576 bytes",
        bomb.len()
    );
    let status = wait_status(&url, "dev1", 10, "the bomb refused", |s| {
        !errors_on(s, DESIRED).is_empty()
    });
    assert_eq!(
        errors_on(&status, DESIRED),
        [("TooLarge".to_string(), want)],
        "{status}"
    );
    let grew = peak_rss(a.pid()).saturating_sub(peak_before);
    assert!(grew < 8 << 20, "the agent's peak RSS grew by {grew} bytes");
    assert_eq!(status["observedRevision"]["device"], 2);
    assert!(a.pod("db").is_some());
    a.assert_one_thread();
}

/// A Deployment with `picolet.io/auto-rollback` whose template prints
/// `version`.
fn auto_rollback_deployment(image: &str, version: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    picolet.io/auto-rollback: "true"
spec:
  replicas: 2
  progressDeadlineSeconds: 8
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {image}
        command: ["sh", "-c", "echo {version}; exec sleep 100000"]
"#
    )
}

/// Collects the device's events (QoS 0, not retained: the subscription
/// is in place before `ready` is sent) until one has reason `reason` or
/// `secs` passed.
fn collect_events(
    url: &str,
    device: &str,
    reason: &'static str,
    secs: u64,
) -> (
    std::sync::mpsc::Receiver<()>,
    std::thread::JoinHandle<Vec<Value>>,
) {
    use picolet::controller::client::{Client, ClientOptions};
    use picolet::fleet::transport::BrokerUrl;
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let opts = ClientOptions::new(BrokerUrl::parse(url).unwrap());
    let topic = format!("picolet/devices/{device}/events");
    let handle = std::thread::spawn(move || {
        picolet::reactor::block_on(async {
            let limit = Duration::from_secs(10);
            let mut c = Client::connect(&opts, limit).await.unwrap();
            c.subscribe(vec![topic.clone()]);
            c.sync("picolet", limit).await.unwrap();
            ready_tx.send(()).unwrap();
            let deadline = Instant::now() + Duration::from_secs(secs);
            let mut seen = Vec::new();
            while let Some(m) = c.next_message(deadline).await.unwrap() {
                if m.topic != topic {
                    continue;
                }
                let v: Value = serde_json::from_slice(&m.payload).unwrap();
                let done = v["reason"] == reason;
                seen.push(v);
                if done {
                    break;
                }
            }
            c.disconnect().await;
            seen
        })
    });
    (ready, handle)
}

/// Issue 13: a fleet Deployment whose new version does not progress rolls
/// back on the device; the device's status says `Progressing=False`,
/// `RolledBack`, the `RolledBack` event reaches the fleet, and `fleet
/// status` shows it. Then a document with a CronJob in a time zone the
/// device does not have is refused with its path, and the pods keep
/// running.
#[test]
fn a_fleet_deployment_that_does_not_progress_rolls_back_and_the_fleet_sees_it() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let a = fleet_agent(&url, "dev1", &[]);
    let v1 = manifest(&a, "v1.yaml", &auto_rollback_deployment(IMAGE, "v1"));
    ok(apply(&url, ("--device", "dev1"), &[&v1], &[]));
    wait_status(&url, "dev1", 40, "web 2/2 in status", |s| {
        s["workloads"][0]["status"]["readyReplicas"] == 2
    });
    let uids = |a: &Agent| {
        let mut u: Vec<String> = a
            .pods()
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
            .collect();
        u.sort();
        u
    };
    let old = uids(&a);
    assert_eq!(old.len(), 2);

    let (ready, events) = collect_events(&url, "dev1", "RolledBack", 90);
    ready.recv().unwrap();
    let v2 = manifest(
        &a,
        "v2.yaml",
        &auto_rollback_deployment("picolet.test/does-not-exist:1", "v2"),
    );
    ok(apply(&url, ("--device", "dev1"), &[&v2], &[]));
    let status = wait_status(&url, "dev1", 60, "RolledBack in status", |s| {
        s["workloads"][0]["status"]["conditions"]
            .as_array()
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Progressing" && c["reason"] == "RolledBack")
            })
    });
    let w = &status["workloads"][0];
    assert_eq!(
        (w["kind"].as_str(), w["name"].as_str()),
        (Some("Deployment"), Some("web"))
    );
    let p = w["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap();
    assert_eq!(p["status"], "False", "{p}");
    let msg = p["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Rolled back from revision 2 (") && msg.contains("to revision 1 ("),
        "{msg}"
    );
    let seen = events.join().unwrap();
    let e = seen
        .iter()
        .find(|e| e["reason"] == "RolledBack")
        .unwrap_or_else(|| panic!("no RolledBack event in {seen:?}"));
    assert_eq!(e["type"], "Warning");
    assert_eq!(e["involvedObject"]["kind"], "Deployment");
    assert_eq!(e["involvedObject"]["name"], "web");
    assert_eq!(e["message"], msg);
    let table = ok(ctl(&[
        "fleet", "status", "--device", "dev1", "--broker", &url,
    ]));
    assert!(table.contains("Progressing=RolledBack"), "{table}");
    // The old pods served throughout and still do.
    wait_for(20, "the bad pod gone", || (uids(&a) == old).then_some(()));

    // A CronJob in a zone this device does not have: the document is
    // refused with its path, nothing changes.
    let cron = manifest(
        &a,
        "cron.yaml",
        &format!(
            r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: mars
spec:
  schedule: "0 9 * * *"
  timeZone: Mars/Olympus
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: {IMAGE}
"#
        ),
    );
    let out = apply(&url, ("--device", "dev1"), &[&v2, &cron], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(
            "device dev1 refused the document (Invalid): workloads[1].spec.timeZone: unknown time zone Mars/Olympus"
        ),
        "{}",
        text(&out)
    );
    const DESIRED: &str = "picolet/devices/dev1/desired";
    let status = wait_status(&url, "dev1", 20, "the CronJob refused", |s| {
        !errors_on(s, DESIRED).is_empty()
    });
    let errs = errors_on(&status, DESIRED);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "Invalid");
    assert!(
        errs[0]
            .1
            .starts_with("workloads[1].spec.timeZone: unknown time zone Mars/Olympus"),
        "{errs:?} ({})",
        text(&out)
    );
    assert_eq!(status["observedRevision"]["device"], 2);
    assert_eq!(status["workloads"].as_array().unwrap().len(), 1);
    assert_eq!(uids(&a), old);
    a.assert_one_thread();
}
