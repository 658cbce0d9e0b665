//! The command line as a kubectl user expects it (issue 12): per-command
//! help, broken pipes, `get`'s habits, `logs`' options and `describe`.

mod support;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Every user command (as `picolet::cli::help::COMMANDS`).
const COMMANDS: &[&str] = &[
    "agent",
    "get",
    "describe",
    "logs",
    "exec",
    "top",
    "image",
    "version",
    "check",
    "install",
    "cgroup-holder",
    "pull",
    "net",
    "apply",
    "delete",
    "rollout",
    "fleet",
    "keygen",
];

#[test]
fn every_command_prints_its_help_and_exits_0() {
    assert_eq!(COMMANDS, picolet::cli::help::COMMANDS);
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            // Nothing may be looked up: a missing state dir must not matter.
            .env("PICOLET_STATE_DIR", "/nonexistent")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
        assert!(out.stderr.is_empty(), "{args:?}: {:?}", out.stderr);
        text
    };
    for &cmd in COMMANDS {
        let long = run(&[cmd, "--help"]);
        assert!(
            long.contains("Usage:") && long.contains(&format!("picolet {cmd}")),
            "{cmd} --help:\n{long}"
        );
        assert!(long.contains("Example"), "{cmd} --help:\n{long}");
        assert_eq!(run(&[cmd, "-h"]), long, "{cmd} -h");
        assert_eq!(run(&["help", cmd]), long, "help {cmd}");
    }
    // After other arguments and options too; subcommands have their own.
    assert!(run(&["get", "pods", "-o", "wide", "--help"]).contains("picolet get pods"));
    assert!(run(&["image", "ls", "-h"]).contains("picolet image ls [--state-dir DIR]"));
    assert!(run(&["fleet", "status", "--help"]).contains("picolet fleet status"));
    // The overview stays.
    assert!(run(&["--help"]).contains("picolet get pods"));
    // After `--` it is the container command's argument.
    let out = Command::new(BIN)
        .args(["exec", "web", "--", "ls", "--help"])
        .env("PICOLET_STATE_DIR", "/nonexistent")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the picolet agent"),
        "{out:?}"
    );
}

/// A two-container pod whose first container ticks.
const TICKER: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: ticker
  labels: {app: ticker, tier: front}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: picolet.test/busybox:1
    command: ["sh", "-c", "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.05; done"]
  - name: client
    image: picolet.test/busybox:1
    command: ["sleep", "100000"]
"#;

/// Its default container named by kubectl's annotation.
const ANNOT: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: annot
  labels: {app: annot}
  annotations:
    kubectl.kubernetes.io/default-container: b
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: picolet.test/busybox:1
    command: ["sleep", "100000"]
  - name: b
    image: picolet.test/busybox:1
    command: ["sh", "-c", "echo from-b; exec sleep 100000"]
"#;

/// Probes, limits, env and a volume, for `describe`.
const PROBED: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: probed
  labels: {app: probed}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: data
    emptyDir: {}
  containers:
  - name: app
    image: picolet.test/busybox:1
    command: ["sleep", "100000"]
    resources:
      limits: {memory: 64Mi, cpu: 500m}
    env:
    - name: MODE
      value: prod
    - name: POD
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    volumeMounts:
    - {name: data, mountPath: /data}
    livenessProbe:
      exec: {command: ["true"]}
      periodSeconds: 5
    readinessProbe:
      exec: {command: ["cat", "/tmp/ready"]}
      periodSeconds: 1
      failureThreshold: 1
"#;

/// Pods that never start (an image nobody has), each with a 4 KiB
/// annotation: `get -o json` of them is far more than a pipe holds.
fn bulk() -> String {
    let big = "x".repeat(4096);
    (0..24)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bulk-{i:02}\n  namespace: bulk\n  annotations: {{big: {big}}}\nspec:\n  containers:\n  - name: c\n    image: picolet.test/none:1\n---\n"
            )
        })
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs the CLI with stdout on a pipe whose reader reads one line and then
/// closes it; returns (the line, how long the command took to end, its
/// stderr). Kills it (by PID) after `secs`.
fn one_line_then_close(a: &Agent, args: &[&str], secs: u64) -> (String, Duration, String) {
    use std::io::{BufRead, BufReader, Read};
    let mut child = Command::new(BIN)
        .args(args)
        .env("PICOLET_STATE_DIR", a.state())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    drop(stdout);
    let closed = Instant::now();
    let deadline = closed + Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            let _ = child.wait();
            panic!("{args:?} still running {secs} s after its reader went away");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = closed.elapsed();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (line, took, err)
}

/// Normalises runs of spaces, to compare `describe` lines without their
/// alignment.
fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn get_logs_and_describe_as_a_kubectl_user_expects() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply("ticker.yaml", TICKER);
    a.apply("annot.yaml", ANNOT);
    a.apply("probed.yaml", PROBED);
    a.apply("bulk.yaml", &bulk());
    a.wait_running("ticker", "web", 60);
    a.wait_running("annot", "b", 60);
    a.wait_running("probed", "app", 60);
    wait_for(30, "the bulk pods", || {
        (a.pods()
            .iter()
            .filter(|p| p["metadata"]["namespace"] == "bulk")
            .count()
            == 24)
            .then_some(())
    });

    // get: several names in the order given; a missing one is kubectl's
    // NotFound on stderr and exit 1, the others still printed.
    let out = a.cli(&["get", "pods", "annot", "nope", "ticker"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        text(&out.stderr),
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    let rows: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert!(rows[0].starts_with("NAME "), "{rows:?}");
    assert!(
        rows[1].starts_with("annot ") && rows[2].starts_with("ticker "),
        "{rows:?}"
    );
    assert_eq!(rows.len(), 3);
    for args in [&["describe", "pod", "nope"][..], &["logs", "nope"]] {
        let out = a.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert_eq!(
            text(&out.stderr),
            "Error from server (NotFound): pods \"nope\" not found\n",
            "{args:?}"
        );
    }
    // -l, -o name, -o jsonpath, -o custom-columns, --show-labels, -A.
    let out = a.cli(&["get", "pods", "-l", "app=ticker", "-o", "name"]);
    assert_eq!(text(&out.stdout), "pod/ticker\n", "{out:?}");
    let out = a.cli(&[
        "get",
        "pods",
        "-l",
        "app in (annot,ticker),tier!=back",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}"#,
    ]);
    let mut names: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    names.sort();
    assert_eq!(names, ["annot", "ticker"], "{out:?}");
    let out = a.cli(&[
        "get",
        "pods",
        "ticker",
        "-o",
        "jsonpath={.spec.containers[*].name}",
    ]);
    assert_eq!(text(&out.stdout), "web client");
    let out = a.cli(&[
        "get",
        "pods",
        "ticker",
        "-o",
        "custom-columns=NAME:.metadata.name,NODE:.spec.nodeName,APP:.metadata.labels.app",
    ]);
    assert_eq!(
        text(&out.stdout),
        "NAME     NODE     APP\nticker   <none>   ticker\n"
    );
    let out = a.cli(&["get", "pods", "-o", "name", "--show-labels"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--show-labels adds a column to the table"),
        "{out:?}"
    );
    let out = a.cli(&["get", "pods", "ticker", "--show-labels"]);
    assert!(
        text(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .ends_with("   app=ticker,tier=front"),
        "{out:?}"
    );
    let out = a.cli(&["get", "pods", "-A"]);
    let t = text(&out.stdout);
    assert!(t.starts_with("NAMESPACE   NAME "), "{t}");
    assert!(
        t.lines().any(|l| l.starts_with("bulk        bulk-00 ")),
        "{t}"
    );
    assert!(
        t.lines().any(|l| l.starts_with("default     ticker ")),
        "{t}"
    );
    let out = a.cli(&["get", "pods", "-l", "app>1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read the requirement \"app>1\""),
        "{out:?}"
    );
    let out = a.cli(&["get", "pods", "-o", "jsonpath={..name}"]);
    assert!(text(&out.stderr).contains("not supported"), "{out:?}");

    // logs: kubectl's default container, the annotation, --timestamps,
    // --since, -l with --prefix.
    let out = a.cli(&["logs", "ticker", "--tail", "2"]);
    assert_eq!(
        text(&out.stderr),
        "Defaulted container \"web\" out of: web, client\n"
    );
    assert!(text(&out.stdout).starts_with("tick-"), "{out:?}");
    let out = a.cli(&["logs", "annot"]);
    assert_eq!(text(&out.stdout), "from-b\n");
    assert_eq!(text(&out.stderr), "");
    let out = a.cli(&["logs", "ticker", "-c", "web", "--timestamps", "--tail", "1"]);
    let line = text(&out.stdout);
    let (ts, rest) = line.split_once(' ').unwrap();
    assert!(rest.starts_with("tick-"), "{line}");
    let ns = picolet::clock::parse_rfc3339_ns(ts).expect(ts);
    assert!(
        (picolet::clock::wall_ns() - ns).abs() < 10_000_000_000,
        "{ts}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let all = text(&a.cli(&["logs", "ticker", "-c", "web"]).stdout)
        .lines()
        .count();
    let recent = text(
        &a.cli(&["logs", "ticker", "-c", "web", "--since", "1s"])
            .stdout,
    );
    let n = recent.lines().count();
    assert!(n > 0 && n + 10 < all, "--since 1s: {n} of {all} lines");
    let out = a.cli(&["logs", "-l", "app=ticker", "-c", "web"]);
    assert_eq!(
        text(&out.stdout).lines().count(),
        10,
        "-l: kubectl's --tail 10"
    );
    let out = a.cli(&[
        "logs",
        "-l",
        "app=ticker",
        "-c",
        "web",
        "--prefix",
        "--tail",
        "1",
    ]);
    assert!(
        text(&out.stdout).starts_with("[pod/ticker/web] tick-"),
        "{out:?}"
    );

    // Broken pipes: a prompt, quiet end.
    let (line, took, err) = one_line_then_close(&a, &["logs", "-f", "ticker", "-c", "web"], 5);
    assert!(line.starts_with("tick-"), "{line}");
    assert!(
        took < Duration::from_secs(3),
        "logs -f took {took:?} to end"
    );
    assert!(!err.contains("panicked"), "{err}");
    let (line, took, err) =
        one_line_then_close(&a, &["get", "pods", "-n", "bulk", "-o", "json"], 5);
    assert_eq!(line, "{\n");
    assert!(took < Duration::from_secs(3), "get took {took:?} to end");
    assert!(!err.contains("panicked"), "{err}");
    // A quiet container: the reader goes before any line is written.
    let mut child = Command::new(BIN)
        .args(["logs", "-f", "annot", "-c", "a"])
        .env("PICOLET_STATE_DIR", a.state())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(child.stdout.take());
    let st = wait_for(5, "logs -f of a quiet container to end", || {
        child.try_wait().unwrap()
    });
    assert!(st.success(), "{st:?}");

    // describe: kubectl's sections and lines.
    let d = wait_for(30, "grouped Unhealthy events", || {
        let d = text(&a.cli(&["describe", "pod", "probed"]).stdout);
        d.contains("Unhealthy").then_some(()).and_then(|()| {
            d.lines()
                .any(|l| l.contains("Unhealthy") && l.contains("(x"))
                .then_some(d)
        })
    });
    let lines: Vec<String> = d.lines().map(squeeze).collect();
    for want in [
        "Name: probed",
        "Namespace: default",
        "Labels: app=probed",
        "Annotations: <none>",
        "Status: Running",
        "Containers:",
        "app:",
        "Image: picolet.test/busybox:1",
        "Port: <none>",
        "Command:",
        "sleep",
        "100000",
        "State: Running",
        "Ready: False",
        "Restart Count: 0",
        "Limits:",
        "cpu: 500m",
        "memory: 64Mi",
        "Liveness: exec [true] delay=0s timeout=1s period=5s #success=1 #failure=3",
        "Readiness: exec [cat /tmp/ready] delay=0s timeout=1s period=1s #success=1 #failure=1",
        "Environment:",
        "MODE: prod",
        "POD: probed (v1:metadata.name)",
        "Mounts:",
        "/data from data (rw)",
        "Conditions:",
        "Volumes:",
        "data:",
        "Type: EmptyDir (a temporary directory that shares a pod's lifetime)",
        "SizeLimit: <unset>",
        "Events:",
        "Type Reason Age From Message",
    ] {
        assert!(lines.iter().any(|l| l == want), "no line {want:?} in:\n{d}");
    }
    let qos = a.pod("probed").unwrap()["status"]["qosClass"].clone();
    assert!(
        lines.contains(&format!("QoS Class: {}", qos.as_str().unwrap())),
        "{d}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Start Time: ") && l.ends_with(" +0000")),
        "{d}"
    );
    let unhealthy = d.lines().find(|l| l.contains("Unhealthy")).unwrap();
    assert!(
        squeeze(unhealthy).ends_with(
            "picolet Readiness probe failed: cat: can't open '/tmp/ready': No such file or directory"
        ),
        "{unhealthy}"
    );
    assert!(!d.lines().any(|l| l.trim().is_empty()), "a blank row:\n{d}");
    // The probe's message loses its newline where the agent makes it.
    let log = a.agent_log();
    assert!(log.contains("No such file or directory"), "{log}");
    assert!(
        !log.contains("No such file or directory\n\n"),
        "a blank row in the agent's log"
    );

    // get -w: the table, then a row per change, until killed.
    let mut child = Command::new(BIN)
        .args(["get", "pods", "-w"])
        .env("PICOLET_STATE_DIR", a.state())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout).lines() {
            if tx.send(l.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(30))
            .expect("a row from get -w")
    };
    assert!(next().starts_with("NAME "));
    let mut first: Vec<String> = (0..3).map(|_| next()).collect();
    first.sort();
    assert!(
        first[0].starts_with("annot ") && first[2].starts_with("ticker "),
        "{first:?}"
    );
    a.apply(
        "late.yaml",
        &sh_pod("late", "Always", "sleep 1; exit 1")
            .replace("name: late", "name: late\n  labels: {app: late}"),
    );
    let updates: Vec<String> = (0..2).map(|_| next()).collect();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    assert!(
        updates.iter().all(|l| l.starts_with("late ")),
        "{updates:?}"
    );
    assert_ne!(updates[0], updates[1]);

    // get NAME -o yaml is the Pod, and goes back into the manifests dir.
    let out = a.cli(&["get", "pods", "annot", "-o", "yaml"]);
    let y = text(&out.stdout);
    assert!(y.contains("kind: Pod\n") && y.contains("status:"), "{y}");
    a.remove("annot.yaml");
    wait_for(30, "annot gone", || a.pod("annot").is_none().then_some(()));
    a.apply("annot-copy.yaml", &y);
    a.wait_running("annot", "b", 60);
    let out = a.cli(&["get", "pods"]);
    assert_eq!(text(&out.stderr), "", "{out:?}");
}

#[test]
fn a_failing_stdout_is_an_error_not_a_panic() {
    let state = tempfile::tempdir().unwrap();
    for args in [
        &["version"][..],
        &["get", "--help"],
        &["image", "ls", "--state-dir", state.path().to_str().unwrap()],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = Command::new(BIN).args(args).stdout(full).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            err.starts_with("error: writing to stdout: "),
            "{args:?}: {err}"
        );
    }
}
