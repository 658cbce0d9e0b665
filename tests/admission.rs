//! Admission and the agent's responsiveness under hostile manifests
//! (issue 7: findings 4, 5, 6 "parsing freezes" and "a container named
//! shim", 7 "500-pod fleet document").

mod support;
use std::time::{Duration, Instant};
use support::*;

/// `n` one-container pods `p0000`… in one multi-document YAML.
fn many_pods(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| sh_pod(&format!("{prefix}{i:04}"), "Always", "exec sleep 100000"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// How long `picolet get pods` takes to answer.
fn get_pods_latency(a: &Agent) -> Duration {
    let t = Instant::now();
    let out = a.cli(&["get", "pods", "-A"]);
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "get pods: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn phase_counts(a: &Agent) -> (usize, usize, usize) {
    timed_phase_counts(a).0
}

/// [`phase_counts`] and how long `get pods -o json` took: the CLI call
/// only, not this (debug-built, multi-threaded) test process parsing its
/// output.
fn timed_phase_counts(a: &Agent) -> ((usize, usize, usize), Duration) {
    let t = Instant::now();
    let out = a.cli(&["get", "pods", "-A", "-o", "json"]);
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "get pods: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pods = v["items"].as_array().cloned().unwrap_or_default();
    let running = pods
        .iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .count();
    let out_of_pods = pods
        .iter()
        .filter(|p| p["status"]["phase"] == "Failed" && p["status"]["reason"] == "OutOfpods")
        .count();
    ((pods.len(), running, out_of_pods), took)
}

/// Sends SIGTERM to the agent and returns how long it took to exit.
fn sigterm(a: &mut Agent) -> Duration {
    let mut child = a.child.take().expect("agent running");
    let t = Instant::now();
    // SAFETY: signalling our own child's PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    loop {
        if child.try_wait().unwrap().is_some() {
            return t.elapsed();
        }
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            return t.elapsed();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_1000_pod_manifest_runs_exactly_max_pods_the_rest_out_of_pods_and_the_agent_answers() {
    // Findings 4 and 7: 10,000 pods in one file froze the agent for good;
    // 500 pods starting left it unresponsive for 30 s. The default maxPods
    // (110) is used: 110 real pods start while `get pods` is timed.
    if !root_or_skip() {
        return;
    }
    let mut a = Agent::start();
    a.apply("many.yaml", &many_pods("p", 1000));
    let t = Instant::now();
    let mut worst = Duration::ZERO;
    let mut samples = 0;
    let (total, running, out) = loop {
        let took = get_pods_latency(&a);
        worst = worst.max(took);
        let (counts, took) = timed_phase_counts(&a);
        worst = worst.max(took);
        samples += 2;
        if counts.1 == 110 && counts.0 == 1000 {
            break counts;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "after 120 s: {counts:?} (pods, running, OutOfpods)"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "110 pods running after {:?}; get pods worst {worst:?} over {samples} calls",
        t.elapsed()
    );
    assert_eq!((total, running, out), (1000, 110, 890));
    // The finding was an agent that did not answer for 30 s. A debug-built
    // `get pods -A -o json` of 1,000 pods takes ~0.2 s on an idle machine
    // (the agent's answer ~45 ms of it), but 5.2 s was seen with four cargo
    // builds sharing the 2 cores; 10 s leaves room for such a machine and
    // still fails on a stalled agent. Latency itself is measured in bench/
    // (p99 21 ms), not here.
    assert!(worst < Duration::from_secs(10), "get pods took {worst:?}");
    // The first 110 in the file run; the rest are rejected as the kubelet does.
    let p = a.pod("p0110").unwrap();
    assert_eq!(p["status"]["reason"], "OutOfpods");
    assert_eq!(
        p["status"]["message"],
        "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: 110, capacity: 110"
    );
    assert_eq!(a.pod("p0109").unwrap()["status"]["phase"], "Running");
    let table = String::from_utf8(a.cli(&["get", "pods"]).stdout).unwrap();
    let line = table.lines().find(|l| l.starts_with("p0999 ")).unwrap();
    assert!(line.contains("OutOfpods"), "{line}");
    let describe = String::from_utf8(a.cli(&["describe", "pod", "p0500"]).stdout).unwrap();
    assert!(describe.contains("OutOfpods"), "{describe}");
    // A new file does not evict running pods.
    a.apply("more.yaml", &many_pods("q", 5));
    wait_for(10, "q0000 rejected", || {
        a.pod("q0000")
            .filter(|p| p["status"]["reason"] == "OutOfpods")
    });
    assert_eq!(phase_counts(&a).1, 110);
    // SIGTERM while another 1,000 pods arrive: the agent exits within 2 s.
    a.apply("again.yaml", &many_pods("r", 1000));
    std::thread::sleep(Duration::from_millis(50));
    let took = sigterm(&mut a);
    assert!(took < Duration::from_secs(2), "SIGTERM took {took:?}");
}

#[test]
fn sigterm_is_honoured_within_2_s_while_1000_pods_are_admitted_and_started() {
    if !root_or_skip() {
        return;
    }
    let mut a = Agent::start_with(&["--max-pods", "20"]);
    a.apply("many.yaml", &many_pods("p", 1000));
    // In the middle of the load: pods are starting, most are refused.
    wait_for(30, "some pods", || (a.pods().len() >= 1000).then_some(()));
    let took = sigterm(&mut a);
    assert!(took < Duration::from_secs(2), "SIGTERM took {took:?}");
    let log = a.agent_log();
    assert!(log.contains("agent stopping"), "{log}");
}

#[test]
fn max_pods_comes_from_the_config_file() {
    if !root_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "maxPods: 3\n").unwrap();
    let mut a = Agent::start_with(&[]);
    // `--config` given twice: the later one (ours) wins over /dev/null.
    a.kill9();
    a.args = vec!["--config".into(), config.display().to_string()];
    a.spawn();
    a.apply("five.yaml", &many_pods("p", 5));
    wait_for(30, "3 running, 2 OutOfpods", || {
        (phase_counts(&a) == (5, 3, 2)).then_some(())
    });
}

/// A JSON pod whose metadata holds `depth` nested arrays.
fn nested_json(depth: usize) -> String {
    format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{{\"name\":\"deep\",\"x\":{}{}}}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

#[test]
fn a_100k_nested_json_pod_is_refused_quickly_and_the_agent_stays_responsive() {
    // Finding 6: this 200 KB file froze every rescan for about 40 s.
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply("good.yaml", &sh_pod("good", "Always", "exec sleep 100000"));
    a.wait_running("good", "main", 30);
    let t = Instant::now();
    a.apply("deep.json", &nested_json(100_000));
    let err = wait_for(5, "the refusal", || {
        let out = a.cli(&["get", "pods"]);
        let e = String::from_utf8_lossy(&out.stderr).to_string();
        e.contains("deep.json").then_some(e)
    });
    assert!(err.contains("nested more than 100 levels deep"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // Edits elsewhere in the directory re-trigger a rescan: it stays quick.
    for i in 0..5 {
        a.apply(
            &format!("other{i}.yaml"),
            &sh_pod(&format!("o{i}"), "Always", "exec sleep 100000"),
        );
        assert!(get_pods_latency(&a) < Duration::from_secs(1));
    }
    assert_eq!(a.container("good", "main").unwrap()["restartCount"], 0);
    // A file over 1.5 MiB is refused naming it.
    a.apply("huge.yaml", &format!("# {}\n", "x".repeat(1600 * 1024)));
    let err = wait_for(5, "the refusal", || {
        let out = a.cli(&["get", "pods"]);
        let e = String::from_utf8_lossy(&out.stderr).to_string();
        e.contains("huge.yaml").then_some(e)
    });
    assert!(err.contains("larger than 1572864 bytes"), "{err}");
}

#[test]
fn a_container_named_shim_and_a_huge_command_are_refused_with_their_paths() {
    // Finding 6: a container named `shim` ran in the shim's cgroup without
    // limits. Finding 5: a huge argument broke every later state save.
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply("good.yaml", &sh_pod("good", "Always", "exec sleep 100000"));
    a.wait_running("good", "main", 30);
    a.apply(
        "shim.yaml",
        &sh_pod("named", "Always", "exec sleep 100000").replace("- name: main", "- name: shim"),
    );
    let big = "x".repeat(200 * 1024);
    a.apply("big.yaml", &sh_pod("big", "Always", &format!("echo {big}")));
    let err = wait_for(5, "both refusals", || {
        let out = a.cli(&["get", "pods"]);
        let e = String::from_utf8_lossy(&out.stderr).to_string();
        (e.contains("shim.yaml") && e.contains("big.yaml")).then_some(e)
    });
    assert!(
        err.contains("spec.containers[0].name: \"shim\" is reserved"),
        "{err}"
    );
    assert!(
        err.contains("spec.containers[0].command: too long"),
        "{err}"
    );
    assert!(a.pod("named").is_none() && a.pod("big").is_none());
    // Persistence still works for everyone: a new pod is saved and runs.
    a.apply("next.yaml", &sh_pod("next", "Always", "exec sleep 100000"));
    a.wait_running("next", "main", 30);
    let log = a.agent_log();
    assert!(!log.contains("saving state"), "{log}");
    let shims = std::fs::read_dir(a.run_dir().join("shims"))
        .unwrap()
        .count();
    assert_eq!(shims, 2, "no shim was started for a refused pod");
}

/// The pid of a pod's shim, from its log.
fn shim_pid(a: &Agent, uid: &str) -> i32 {
    let log =
        std::fs::read_to_string(a.run_dir().join("shims").join(format!("{uid}.log"))).unwrap();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("ready, pid "))
        .unwrap();
    line.rsplit("pid ").next().unwrap().trim().parse().unwrap()
}

fn alive(pid: i32) -> bool {
    // A zombie is not alive: the shim is reparented, and reaped by init.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn a_shim_that_dropped_the_agent_is_stopped_and_never_outlives_its_pod() {
    // Finding 5: the shim dropped the agent, the sandbox looped on
    // FailedCreatePodSandBox ("socket in use") and the old shim outlived
    // the deleted manifest. A second client on the shim's socket makes the
    // shim drop the agent's connection the same way.
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply("lost.yaml", &sh_pod("lost", "Always", "exec sleep 100000"));
    a.wait_running("lost", "main", 30);
    let uid = a.pod("lost").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let old = shim_pid(&a, &uid);
    let sock = a.state().join("pods").join(&uid).join("shim.sock");
    let thief = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    // The agent lost its shim: it stops the old one and starts a new one.
    wait_for(15, "the lost shim stopped", || (!alive(old)).then_some(()));
    drop(thief);
    let new = wait_for(15, "a new shim", || {
        a.container("lost", "main")
            .filter(|c| c["state"]["running"].is_object())
            .and_then(|_| {
                let p = shim_pid(&a, &uid);
                (p != old && alive(p)).then_some(p)
            })
    });
    // Lost again, and the manifest removed at once: no shim outlives it.
    let thief = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    a.remove("lost.yaml");
    wait_for(15, "the pod gone", || a.pods().is_empty().then_some(()));
    wait_for(15, "its shim stopped", || (!alive(new)).then_some(()));
    drop(thief);
    assert!(!a.agent_log().contains("FailedCreatePodSandBox"));
}

#[test]
fn a_500_pod_fleet_document_starts_in_batches_while_the_api_and_keepalive_are_served() {
    // Finding 7: a 500-pod fleet document left the agent unresponsive for
    // more than 30 s while the pods started. maxPods caps it at 110; those
    // start a few at a time while `get pods` and the broker are served.
    use support::fleet::*;
    if !root_or_skip() {
        return;
    }
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let a = fleet_agent(&url, "dev1", &[]);
    let docs: Vec<String> = (0..500).map(|i| sleeper(&format!("f{i:03}"))).collect();
    let file = manifest(&a, "fleet.yaml", &docs.join("---\n"));
    let t = Instant::now();
    // The pods past maxPods are rejected (phase Failed, OutOfpods): apply
    // says so and exits 1.
    let out = apply(&url, ("--device", "dev1"), &[&file], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = text(&out);
    assert!(out.contains("published revision 1 (500 pods)"), "{out}");
    assert!(out.contains(": OutOfpods: "), "{out}");
    let mut worst = Duration::ZERO;
    loop {
        let took = get_pods_latency(&a);
        worst = worst.max(took);
        let counts = phase_counts(&a);
        if counts == (500, 110, 390) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "after 120 s: {counts:?} (pods, running, OutOfpods)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "110 fleet pods running after {:?}; get pods worst {worst:?}",
        t.elapsed()
    );
    // The finding was an agent that did not answer for 30 s. A debug-built
    // `get pods -A -o json` of 1,000 pods takes ~0.2 s on an idle machine
    // (the agent's answer ~45 ms of it), but 5.2 s was seen with four cargo
    // builds sharing the 2 cores; 10 s leaves room for such a machine and
    // still fails on a stalled agent. Latency itself is measured in bench/
    // (p99 21 ms), not here.
    assert!(worst < Duration::from_secs(10), "get pods took {worst:?}");
    // The keepalive (2 s) was served throughout: the device never went
    // offline and the status shows the rejections.
    let status = wait_status(&url, "dev1", 10, "110 running in the status", |s| {
        s["pods"].as_array().is_some_and(|p| {
            p.iter()
                .filter(|p| p["status"]["phase"] == "Running")
                .count()
                == 110
        })
    });
    assert_eq!(status["observedRevision"]["device"], 1);
    assert_eq!(device_entry(&url, "dev1").unwrap()["online"], true);
    let log = a.agent_log();
    assert!(
        !log.contains("connection dead") && !log.contains("lost; reconnecting"),
        "{log}"
    );
}
