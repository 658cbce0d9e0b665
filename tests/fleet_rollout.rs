//! `picolet rollout -f … --group G` (the staged rollout over MQTT) end to
//! end: a real mosquitto and the real controller binary.
//!
//! The `sim_*` tests stand in for the devices with a simulator on the
//! broker (a thread that answers each override with the status a device
//! would publish), so that they can fail a given device, go silent, or
//! answer late on cue; the `agents_*` test runs real agents.

mod support;
use picolet::controller::client::{Client, ClientOptions};
use picolet::fleet::transport::BrokerUrl;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::fleet::*;
use support::*;

const G: &str = "g";

/// How a simulated device answers an override.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behave {
    Healthy,
    Fail,
    /// No answer (yet): it answers once its behaviour changes.
    Silent,
}

/// Simulated devices of group [`G`] (see the module doc).
struct Sim {
    behave: Arc<Mutex<BTreeMap<String, Behave>>>,
    /// (device, revision published; 0 for a clear), in order.
    log: Arc<Mutex<Vec<(String, u64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn status(id: &str, observed: u64, deployment: (u64, &str)) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "picolet.io/v1", "kind": "DeviceStatus", "deviceId": id,
        "observedRevision": {"groups": {G: observed}},
        "pods": [], "node": {"labels": {"sim": "yes"}}, "errors": [],
        "deployments": [{"source": format!("group/{G}"), "revision": deployment.0,
                         "state": deployment.1}],
        "time": "2026-12-06T10:00:00Z"
    }))
    .unwrap()
}

impl Sim {
    /// `n` devices `d0`…, all at revision 1 Healthy, online.
    fn start(url: &str, n: usize) -> Sim {
        let ids: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
        let mut first = Vec::new();
        for id in &ids {
            first.push((
                format!("picolet/devices/{id}/status"),
                status(id, 1, (1, "Healthy")),
                true,
            ));
            first.push((
                format!("picolet/devices/{id}/online"),
                b"true".to_vec(),
                true,
            ));
        }
        publish_many(url, first);
        let behave: BTreeMap<String, Behave> =
            ids.iter().map(|i| (i.clone(), Behave::Healthy)).collect();
        let behave = Arc::new(Mutex::new(behave));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, l, s, url) = (behave.clone(), log.clone(), stop.clone(), url.to_string());
        let thread = std::thread::spawn(move || sim_loop(&url, b, l, s));
        Sim {
            behave,
            log,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, id: &str, b: Behave) {
        self.behave.lock().unwrap().insert(id.to_string(), b);
    }

    fn published(&self, id: &str) -> Vec<u64> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|(d, _)| d == id)
            .map(|(_, r)| *r)
            .collect()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn sim_loop(
    url: &str,
    behave: Arc<Mutex<BTreeMap<String, Behave>>>,
    log: Arc<Mutex<Vec<(String, u64)>>>,
    stop: Arc<AtomicBool>,
) {
    let opts = ClientOptions::new(BrokerUrl::parse(url).unwrap());
    picolet::reactor::block_on(async {
        let mut c = Client::connect(&opts, Duration::from_secs(10))
            .await
            .unwrap();
        c.subscribe(vec![format!("picolet/devices/+/groups/{G}/desired")]);
        // Overrides not answered yet: device → revision.
        let mut waiting: BTreeMap<String, u64> = BTreeMap::new();
        while !stop.load(Ordering::SeqCst) {
            let until = Instant::now() + Duration::from_millis(200);
            while let Some(m) = c.next_message(until).await.unwrap() {
                let id = m.topic.split('/').nth(2).unwrap().to_string();
                if m.payload.is_empty() {
                    log.lock().unwrap().push((id.clone(), 0));
                    waiting.remove(&id);
                    let st = status(&id, 1, (2, "RolledBack"));
                    c.publish(
                        &format!("picolet/devices/{id}/status"),
                        st,
                        true,
                        Duration::from_secs(5),
                    )
                    .await
                    .unwrap();
                    continue;
                }
                // Published compressed, as `apply` publishes.
                assert_eq!(m.payload[0], 0x78, "a zlib stream");
                let doc = picolet::fleet::doc::decode_unsigned(&m.payload, 1 << 20).unwrap();
                let rev = doc.revision;
                assert_eq!(
                    doc.rollout.map(|r| r.on_failure),
                    Some(picolet::fleet::doc::OnFailure::Rollback)
                );
                log.lock().unwrap().push((id.clone(), rev));
                waiting.insert(id, rev);
            }
            let now: Vec<(String, u64)> = waiting.iter().map(|(k, v)| (k.clone(), *v)).collect();
            for (id, rev) in now {
                let b = behave.lock().unwrap()[&id];
                let state = match b {
                    Behave::Silent => continue,
                    Behave::Healthy => "Healthy",
                    Behave::Fail => "FailedRollbackComplete",
                };
                waiting.remove(&id);
                let st = status(&id, rev, (rev, state));
                c.publish(
                    &format!("picolet/devices/{id}/status"),
                    st,
                    true,
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
            }
        }
        c.disconnect().await;
    });
}

/// The retained message of `topic`, if any.
fn retained(url: &str, topic: &str) -> Option<Vec<u8>> {
    let opts = ClientOptions::new(BrokerUrl::parse(url).unwrap());
    picolet::reactor::block_on(async {
        let mut c = Client::connect(&opts, Duration::from_secs(10))
            .await
            .unwrap();
        c.subscribe(vec![topic.to_string()]);
        c.sync("picolet", Duration::from_secs(10)).await.unwrap();
        let mut out = None;
        while let Some(m) = c.next_message(Instant::now()).await.unwrap() {
            if m.topic == topic {
                out = Some(m.payload);
            }
        }
        c.disconnect().await;
        out
    })
}

fn progress(url: &str) -> Value {
    retained(url, &format!("picolet/rollouts/{G}"))
        .map(|p| serde_json::from_slice(&p).unwrap())
        .unwrap_or(Value::Null)
}

/// A pod manifest file in `dir`.
fn pod_file(dir: &std::path::Path, file: &str, command: &str) -> String {
    let p = dir.join(file);
    std::fs::write(
        &p,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: main\n    image: {IMAGE}\n    command: [\"sh\", \"-c\", \"{command}\"]\n"
        ),
    )
    .unwrap();
    p.display().to_string()
}

/// `picolet rollout -f FILE --group G --broker URL ARGS…`, running.
fn rollout(url: &str, file: &str, extra: &[&str]) -> Child {
    Command::new(BIN)
        .args(["rollout", "-f", file, "--group", G, "--broker", url])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

const FAST: &[&str] = &[
    "--canary",
    "1",
    "--batch",
    "2",
    "--max-failures",
    "1",
    "--verify",
    "1s",
    "--health-deadline",
    "20s",
    "--timeout",
    "60",
];

fn finish(child: Child) -> (Option<i32>, String) {
    let o: Output = child.wait_with_output().unwrap();
    (o.status.code(), text(&o))
}

/// The group's document at revision 1 (published with `apply`).
fn group_v1(url: &str, dir: &std::path::Path) {
    let v1 = pod_file(dir, "v1.yaml", "echo v1; exec sleep 100000");
    ok(apply(url, ("--group", G), &[&v1], &["--timeout", "0"]));
}

#[test]
fn sim_a_failing_device_stops_the_rollout_and_the_updated_devices_are_cleared() {
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let dir = tempfile::tempdir().unwrap();
    group_v1(&url, dir.path());
    let sim = Sim::start(&url, 6);
    sim.set("d2", Behave::Fail);
    let v2 = pod_file(dir.path(), "v2.yaml", "echo v2; exec sleep 100000");
    let (code, out) = finish(rollout(&url, &v2, FAST));
    assert_eq!(code, Some(2), "{out}");
    for line in [
        "group g: rolling out revision 2 to 6 devices in 4 batches (canary 1, batch 2, stop at 1 failed)",
        "device d0: Healthy (revision 2)",
        "device d2: Failed (revision 2: FailedRollbackComplete)",
        "device d0: Reverted (revision 1)",
        "device d2: Reverted (revision 1: FailedRollbackComplete)",
        "group g: rolled back revision 2: 1 failed (--max-failures 1); 3 devices back at revision 1",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
    // The canary and the first batch got revision 2, then were cleared;
    // the rest never heard of it.
    for d in ["d0", "d1", "d2"] {
        assert_eq!(sim.published(d), [2, 0], "{d}");
    }
    for d in ["d3", "d4", "d5"] {
        assert_eq!(sim.published(d), [0u64; 0], "{d}");
    }
    let p = progress(&url);
    assert_eq!(p["phase"], "RolledBack", "{p}");
    assert_eq!(p["revision"], 2);
    assert_eq!(p["devices"][3]["state"], "Pending");
    // The group document is still revision 1.
    let doc: Value = group_doc(&url);
    assert_eq!(doc["revision"], 1);
}

#[test]
fn sim_a_killed_controller_resumes_and_the_group_document_is_published_at_the_end() {
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let dir = tempfile::tempdir().unwrap();
    group_v1(&url, dir.path());
    let sim = Sim::start(&url, 5);
    sim.set("d1", Behave::Silent);
    sim.set("d2", Behave::Silent);
    let v2 = pod_file(dir.path(), "v2.yaml", "echo v2; exec sleep 100000");
    let mut first = rollout(&url, &v2, FAST);
    wait_for(30, "the canary Healthy and batch 2 started", || {
        let p = progress(&url);
        (p["batch"] == 2 && p["devices"][0]["state"] == "Healthy").then_some(())
    });
    first.kill().unwrap(); // SIGKILL, by the PID we started
    let _ = first.wait();
    // While it is in progress: other files are refused, status shows it.
    let other = pod_file(dir.path(), "v3.yaml", "echo v3; exec sleep 100000");
    let (code, out) = finish(rollout(&url, &other, FAST));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("group g: the rollout of revision 2 is in progress (phase Running")
            && out.contains("different files cannot resume it")
            && out.contains("picolet rollout abort --group g"),
        "{out}"
    );
    let (code, out) = finish(rollout(&url, &v2, &["--canary", "2"]));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("different options cannot resume it"), "{out}");
    let st = ok(ctl(&["rollout", "status", "--group", G, "--broker", &url]));
    assert!(
        st.contains("group g: revision 2 (from 1), Running, batch 2 of 3"),
        "{st}"
    );
    let rows: Vec<Vec<&str>> = st.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[1][..2], ["DEVICE", "STATE"], "{st}");
    assert_eq!(rows[2][..2], ["d0", "Healthy"], "{st}");
    assert_eq!(rows[3][..2], ["d1", "Updating"], "{st}");
    assert_eq!(rows[5][..2], ["d3", "Pending"], "{st}");
    assert!(
        st.contains("options: --canary 1 --batch 2 --max-failures 1"),
        "{st}"
    );

    sim.set("d1", Behave::Healthy);
    sim.set("d2", Behave::Healthy);
    let (code, out) = finish(rollout(&url, &v2, FAST));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "group g: resuming the rollout of revision 2 (phase Running, batch 2 of 3, 1 Healthy)"
        ),
        "{out}"
    );
    assert!(
        out.contains("group g: revision 2 rolled out to 5 devices (5 Healthy, 0 Failed) and published to picolet/groups/g/desired"),
        "{out}"
    );
    // The canary was not published to again; the batch under way was.
    wait_for(10, "the simulator saw the last clear", || {
        sim.published("d4").ends_with(&[0]).then_some(())
    });
    assert_eq!(sim.published("d0"), [2, 0]);
    assert_eq!(sim.published("d1"), [2, 2, 0]);
    assert_eq!(sim.published("d4"), [2, 0]);
    let doc: Value = group_doc(&url);
    assert_eq!(doc["revision"], 2);
    assert_eq!(
        doc["rollout"],
        json!({"healthDeadlineSeconds": 20, "verifySeconds": 1, "onFailure": "Rollback"})
    );
    for d in ["d0", "d3"] {
        let o = retained(&url, &format!("picolet/devices/{d}/groups/{G}/desired"));
        assert!(o.is_none_or(|p| p.is_empty()), "{d}: override not cleared");
    }
    assert_eq!(progress(&url)["phase"], "Complete");
}

#[test]
fn sim_rollout_abort_stops_a_running_controller_or_rolls_back_itself() {
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let dir = tempfile::tempdir().unwrap();
    group_v1(&url, dir.path());
    let sim = Sim::start(&url, 3);
    sim.set("d1", Behave::Silent);
    let v2 = pod_file(dir.path(), "v2.yaml", "echo v2; exec sleep 100000");
    let abort = || ctl(&["rollout", "abort", "--group", G, "--broker", &url]);

    let running = rollout(&url, &v2, FAST);
    wait_for(30, "batch 2 started", || {
        (progress(&url)["batch"] == 2).then_some(())
    });
    let out = ok(abort());
    assert!(
        out.contains("group g: the running controller is rolling back revision 2"),
        "{out}"
    );
    assert!(
        out.contains("group g: rollout of revision 2 aborted; 3 devices back at revision 1"),
        "{out}"
    );
    let (code, out) = finish(running);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("device d1: Reverted (revision 1)"), "{out}");
    assert_eq!(progress(&url)["phase"], "Aborted");
    let o = abort();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("group g: no rollout in progress"),
        "{}",
        text(&o)
    );

    // No controller: abort rolls back itself. (Revision 3: above the
    // aborted 2.)
    let mut killed = rollout(&url, &v2, FAST);
    wait_for(30, "batch 2 started", || {
        let p = progress(&url);
        (p["batch"] == 2 && p["phase"] == "Running").then_some(())
    });
    assert_eq!(progress(&url)["revision"], 3);
    killed.kill().unwrap();
    let _ = killed.wait();
    let out = ok(abort());
    assert!(
        out.contains("group g: no controller answered; rolling back revision 3 here"),
        "{out}"
    );
    assert!(out.contains("3 devices back at revision 1"), "{out}");
    wait_for(10, "the simulator saw the clears", || {
        sim.published("d2").ends_with(&[3, 0]).then_some(())
    });
    assert_eq!(sim.published("d1"), [2, 0, 3, 0]);
    assert_eq!(progress(&url)["phase"], "Aborted");
}

/// The pod of every revision: `web` with `image`, Ready unless the
/// device's node name is `bad` (a readiness probe on `spec.nodeName`).
fn web(image: &str, tag: &str, bad: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {image}
    command: ["sh", "-c", "echo {tag}; exec sleep 100000"]
    env:
    - name: NODE
      valueFrom:
        fieldRef:
          fieldPath: spec.nodeName
    readinessProbe:
      exec:
        command: ["sh", "-c", "test \"$NODE\" != {bad}"]
      periodSeconds: 1
"#
    )
}

/// The image and command tag of the running `web` pod of `a`.
fn running_web(a: &Agent) -> Option<(String, String)> {
    let p = a.pod("web")?;
    let c = &p["status"]["containerStatuses"][0];
    c["state"]["running"].is_object().then_some(())?;
    let cmd = p["spec"]["containers"][0]["command"][2]
        .as_str()?
        .to_string();
    Some((c["image"].as_str()?.to_string(), cmd))
}

fn deployment_of(status: &Value) -> (Value, Value) {
    let d = status["deployments"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["source"] == "group/g").cloned())
        .unwrap_or_default();
    (d["revision"].clone(), d["state"].clone())
}

/// Six real agents of group g: a bad revision stopped after its canary
/// and first batch (one device's pod never Ready, --max-failures 1) and
/// rolled back; a healthy one, its controller killed (kill -9) mid-way
/// and resumed, reaching all six; `rollout status`; `rollout abort`.
#[test]
fn agents_six_devices_bad_revision_rolled_back_then_healthy_one_resumed_after_kill_then_aborted() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let ids: Vec<String> = (0..6).map(|i| format!("d{i}")).collect();
    let agents: Vec<Agent> = ids
        .iter()
        .map(|id| fleet_agent(&url, id, &["--group", G, "--node-name", id]))
        .collect();
    let v1 = manifest(&agents[0], "v1.yaml", &web(IMAGE, "v1", "none"));
    ok(apply(&url, ("--group", G), &[&v1], &["--timeout", "120"]));
    for id in &ids {
        wait_status(&url, id, 90, "revision 1 Healthy", |s| {
            deployment_of(s) == (json!(1), json!("Healthy"))
        });
    }

    // A bad revision: d2's pod never becomes Ready.
    let v2 = manifest(
        &agents[0],
        "v2.yaml",
        &web("picolet.test/busybox:2", "v2", "d2"),
    );
    let args = [
        "--canary",
        "1",
        "--batch",
        "2",
        "--max-failures",
        "1",
        "--verify",
        "2s",
        "--health-deadline",
        "20s",
        "--timeout",
        "240",
    ];
    let (code, out) = finish(rollout(&url, &v2, &args));
    show(
        &format!("rollout -f v2.yaml --group g {}", args.join(" ")),
        code,
        &out,
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("device d0: Healthy (revision 2)"), "{out}");
    assert!(out.contains("device d2: Failed (revision 2: "), "{out}");
    assert!(
        out.contains("group g: rolled back revision 2: 1 failed (--max-failures 1); 3 devices back at revision 1"),
        "{out}"
    );
    for (i, a) in agents.iter().enumerate() {
        let s = device_entry(&url, &ids[i]).unwrap()["status"].clone();
        assert_eq!(s["observedRevision"]["groups"][G], 1, "{}: {s}", ids[i]);
        let run = wait_for(60, "web back at v1", || {
            running_web(a).filter(|(_, cmd)| cmd.starts_with("echo v1"))
        });
        assert_eq!(run.0, IMAGE, "{}", ids[i]);
        if i >= 3 {
            assert!(deployment_of(&s).0 != json!(2), "{}: {s}", ids[i]);
        }
    }
    let st = ok(ctl(&["rollout", "status", "--group", G, "--broker", &url]));
    show("rollout status --group g", Some(0), &st);
    assert!(
        st.contains("group g: revision 2 (from 1), RolledBack"),
        "{st}"
    );
    let table = ok(ctl(&["fleet", "status", "--broker", &url]));
    show("fleet status", Some(0), &table);
    assert!(table.contains("g=RolledBack(2)"), "{table}");

    // A healthy revision (3: above the failed 2), the controller killed
    // after the canary, then resumed.
    let v3 = manifest(
        &agents[0],
        "v3.yaml",
        &web("picolet.test/busybox:2", "v3", "none"),
    );
    let mut first = rollout(&url, &v3, &args);
    wait_for(90, "the canary Healthy and the next batch started", || {
        let p = progress(&url);
        (p["revision"] == 3 && p["batch"] == 2 && p["devices"][0]["state"] == "Healthy")
            .then_some(())
    });
    first.kill().unwrap();
    let _ = first.wait();
    let st = ok(ctl(&["rollout", "status", "--group", G, "--broker", &url]));
    assert!(
        st.contains("group g: revision 3 (from 1), Running, batch 2 of 4"),
        "{st}"
    );
    let (code, out) = finish(rollout(&url, &v3, &args));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "group g: resuming the rollout of revision 3 (phase Running, batch 2 of 4, 1 Healthy)"
        ),
        "{out}"
    );
    assert!(!out.contains("device d0: Updating"), "{out}");
    assert!(
        out.contains("group g: revision 3 rolled out to 6 devices (6 Healthy, 0 Failed) and published to picolet/groups/g/desired"),
        "{out}"
    );
    for (i, a) in agents.iter().enumerate() {
        wait_status(&url, &ids[i], 30, "revision 3", |s| {
            s["observedRevision"]["groups"][G] == 3
        });
        let run = wait_for(30, "web at v3", || running_web(a));
        assert_eq!(
            run,
            (
                "picolet.test/busybox:2".to_string(),
                "echo v3; exec sleep 100000".to_string()
            )
        );
        let o = retained(
            &url,
            &format!("picolet/devices/{}/groups/{G}/desired", ids[i]),
        );
        assert!(
            o.is_none_or(|p| p.is_empty()),
            "{}: override not cleared",
            ids[i]
        );
    }
    let doc: Value = group_doc(&url);
    assert_eq!(doc["revision"], 3);
    let st = ok(ctl(&["rollout", "status", "--group", G, "--broker", &url]));
    assert!(
        st.contains("Complete") && st.matches("Healthy").count() >= 6,
        "{st}"
    );
    let table = ok(ctl(&["fleet", "status", "--broker", &url]));
    assert!(table.contains("g=Healthy(3)"), "{table}");
    // Nothing changed: nothing to roll out.
    let (code, out) = finish(rollout(&url, &v3, &args));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("nothing to roll out"), "{out}");

    // rollout abort from another shell while the canary verifies.
    let v4 = manifest(&agents[0], "v4.yaml", &web(IMAGE, "v4", "none"));
    let slow = [
        "--canary",
        "1",
        "--batch",
        "2",
        "--max-failures",
        "1",
        "--verify",
        "30s",
        "--health-deadline",
        "90s",
        "--timeout",
        "240",
    ];
    let running = rollout(&url, &v4, &slow);
    wait_for(30, "the canary started", || {
        (progress(&url)["revision"] == 4).then_some(())
    });
    let out = ok(ctl(&["rollout", "abort", "--group", G, "--broker", &url]));
    assert!(
        out.contains("the running controller is rolling back revision 4"),
        "{out}"
    );
    let (code, out) = finish(running);
    assert_eq!(code, Some(3), "{out}");
    wait_status(&url, "d0", 60, "d0 back at revision 3", |s| {
        s["observedRevision"]["groups"][G] == 3
    });
    let run = wait_for(60, "d0 back at v3", || {
        running_web(&agents[0]).filter(|(_, cmd)| cmd.starts_with("echo v3"))
    });
    assert_eq!(run.0, "picolet.test/busybox:2");
}

/// Prints a command's output (the README's demo comes from
/// `cargo test --test fleet_rollout agents_six -- --nocapture`).
fn show(cmd: &str, code: Option<i32>, out: &str) {
    println!("$ picolet {cmd}\n{out}(exit code {code:?})\n");
}

/// The retained group document (published compressed), as JSON.
fn group_doc(url: &str) -> Value {
    let bytes = retained(url, "picolet/groups/g/desired").unwrap();
    let doc = picolet::fleet::doc::decode_unsigned(&bytes, 1 << 20).unwrap();
    serde_json::from_slice(&picolet::fleet::doc::encode_json(&doc)).unwrap()
}
