//! Lifecycle hooks, stop signals, sidecars and `activeDeadlineSeconds`
//! end to end: real processes, one agent, the pods side by side. Times
//! are `/proc/uptime` readings the containers write to a hostPath.

mod support;
use std::path::Path;
use support::*;

/// `name event uptime` lines of the shared log, in order.
fn records(dir: &Path) -> Vec<(String, String, f64)> {
    let text = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap())
        })
        .collect()
}

fn at(recs: &[(String, String, f64)], name: &str, event: &str) -> f64 {
    recs.iter()
        .find(|r| r.0 == name && r.1 == event)
        .unwrap_or_else(|| panic!("no {name} {event} in {recs:?}"))
        .2
}

/// A shell line appending `NAME EVENT UPTIME` to the shared log.
fn rec(name: &str, event: &str) -> String {
    format!("read u x < /proc/uptime; echo {name} {event} $u >> /h/log")
}

fn manifests(h: &Path) -> Vec<(&'static str, String)> {
    let h = h.display();
    let vol = format!("  volumes:\n  - name: h\n    hostPath: {{path: {h}, type: Directory}}\n");
    let mount = "    volumeMounts: [{name: h, mountPath: /h}]\n";
    // A container that records its start, and its stop on `sig`.
    let looped = |name: &str, sig: &str| {
        format!(
            "trap '{}; exit 0' {sig}; {}; while true; do sleep 0.1; done",
            rec(name, "stop"),
            rec(name, "start")
        )
    };
    let sidecar = |name: &str| {
        format!(
            "  - name: {name}\n    image: {IMAGE}\n    restartPolicy: Always\n    \
             command: [sh, -c, {:?}]\n{mount}    startupProbe:\n      \
             exec: {{command: [grep, -q, '{name} start', /h/log]}}\n      periodSeconds: 1\n",
            looped(name, "TERM")
        )
    };
    vec![
        (
            "prestop",
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: prestop}}\nspec:\n  \
                 terminationGracePeriodSeconds: 10\n  containers:\n  - name: app\n    \
                 image: {IMAGE}\n    command: [sh, -c, {:?}]\n{mount}    lifecycle:\n      \
                 preStop:\n        exec: {{command: [sh, -c, {:?}]}}\n{vol}",
                looped("app", "TERM"),
                format!("{}; sleep 2", rec("hook", "prestop")),
            ),
        ),
        (
            "stopsig",
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: stopsig}}\nspec:\n  \
                 terminationGracePeriodSeconds: 10\n  containers:\n  - name: app\n    \
                 image: {IMAGE}\n    command: [sh, -c, {:?}]\n{mount}    lifecycle:\n      \
                 stopSignal: SIGUSR1\n{vol}",
                format!(
                    "trap '{}; exit 0' TERM; {}",
                    rec("usr1", "term"),
                    looped("usr1", "USR1")
                ),
            ),
        ),
        (
            "poststart",
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: poststart}}\nspec:\n  \
                 terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    \
                 image: {IMAGE}\n    command: [sleep, '3600']\n    lifecycle:\n      \
                 postStart:\n        exec: {{command: [sh, -c, 'echo hook-out; exit 3']}}\n"
            ),
        ),
        (
            "sidecars",
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: sidecars}}\nspec:\n  \
                 restartPolicy: Never\n  terminationGracePeriodSeconds: 10\n  \
                 initContainers:\n{}{}  containers:\n  - name: main\n    image: {IMAGE}\n    \
                 command: [sh, -c, {:?}]\n{mount}{vol}",
                sidecar("s1"),
                sidecar("s2"),
                format!("{}; sleep 1; {}", rec("main", "start"), rec("main", "stop")),
            ),
        ),
        (
            // preStop httpGet: a CGI of busybox httpd records the request.
            "httphook",
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: httphook}}\nspec:\n  \
                 terminationGracePeriodSeconds: 10\n  containers:\n  - name: app\n    \
                 image: {IMAGE}\n    command: [sh, -c, {:?}]\n{mount}    lifecycle:\n      \
                 preStop:\n        httpGet: {{path: /cgi-bin/stop, port: 18091}}\n{vol}",
                format!(
                    "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\n{}\\nsleep 1\\necho Content-Type: \
                     text/plain\\necho\\necho ok\\n' > /www/cgi-bin/stop && \
                     chmod +x /www/cgi-bin/stop && trap '{}; exit 0' TERM; \
                     httpd -f -p 18091 -h /www & {}; wait",
                    rec("http", "prestop"),
                    rec("httpapp", "stop"),
                    rec("httpapp", "start"),
                ),
            ),
        ),
        (
            "deadline",
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: deadline}}\nspec:\n  \
                 activeDeadlineSeconds: 3\n  terminationGracePeriodSeconds: 1\n  \
                 containers:\n  - name: app\n    image: {IMAGE}\n    command: [sleep, '3600']\n"
            ),
        ),
    ]
}

fn describe(a: &Agent, pod: &str) -> String {
    String::from_utf8(a.cli(&["describe", "pod", pod]).stdout).unwrap()
}

#[test]
fn hooks_stop_signals_sidecars_and_deadlines_as_the_kubelet() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    let h = a.state().parent().unwrap().join("hooks-shared");
    std::fs::create_dir_all(&h).unwrap();
    for (name, yaml) in manifests(&h) {
        a.apply(&format!("{name}.yaml"), &yaml);
    }

    // Sidecars start in order, each once the previous one is started
    // (its startupProbe saw it run); main runs to completion, then the
    // sidecars stop in reverse order and the pod Succeeded.
    let pod = wait_for(60, "the sidecar pod completed", || {
        a.pod("sidecars")
            .filter(|p| p["status"]["phase"] == "Succeeded")
    });
    let inits = pod["status"]["initContainerStatuses"].as_array().unwrap();
    assert_eq!(inits.len(), 2, "{pod:#}");
    let recs = records(&h);
    assert!(
        at(&recs, "s1", "start") < at(&recs, "s2", "start"),
        "{recs:?}"
    );
    assert!(
        at(&recs, "s2", "start") < at(&recs, "main", "start"),
        "{recs:?}"
    );
    assert!(
        at(&recs, "main", "stop") <= at(&recs, "s2", "stop"),
        "{recs:?}"
    );
    assert!(
        at(&recs, "s2", "stop") <= at(&recs, "s1", "stop"),
        "{recs:?}"
    );

    // A failing postStart kills the container and it restarts.
    let st = wait_for(60, "a postStart restart", || {
        a.container("poststart", "app")
            .filter(|s| s["restartCount"].as_i64().unwrap_or(0) >= 1)
    });
    assert_eq!(st["lastState"]["terminated"]["exitCode"], 137, "{st:#}");
    let d = describe(&a, "poststart");
    assert!(d.contains("FailedPostStartHook"), "{d}");
    assert!(
        d.contains("command exited with 3: , message: \\\"hook-out\\\"")
            || d.contains("command exited with 3: , message: \"hook-out\""),
        "{d}"
    );

    // activeDeadlineSeconds fails the pod with DeadlineExceeded.
    let p = wait_for(30, "the deadline pod failed", || {
        a.pod("deadline")
            .filter(|p| p["status"]["phase"] == "Failed")
    });
    assert_eq!(p["status"]["reason"], "DeadlineExceeded", "{p:#}");
    assert_eq!(
        p["status"]["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    assert!(describe(&a, "deadline").contains("DeadlineExceeded"));

    // preStop runs before SIGTERM, within the grace period; stopSignal
    // replaces SIGTERM.
    a.wait_running("prestop", "app", 30);
    a.wait_running("stopsig", "app", 30);
    a.wait_running("httphook", "app", 30);
    wait_for(10, "the apps recorded their start", || {
        let r = records(&h);
        let has = |n: &str| r.iter().any(|x| x.0 == n);
        (has("app") && has("usr1") && has("httpapp")).then_some(())
    });
    for name in ["prestop", "stopsig", "httphook"] {
        a.remove(&format!("{name}.yaml"));
    }
    wait_for(30, "the pods gone", || {
        let gone = |n: &str| a.pod(n).is_none();
        (gone("prestop") && gone("stopsig") && gone("httphook")).then_some(())
    });
    let recs = records(&h);
    let hook = at(&recs, "hook", "prestop");
    let term = at(&recs, "app", "stop");
    assert!(
        hook < term && term - hook >= 1.9 && term - hook < 10.0,
        "preStop at {hook}, SIGTERM at {term}"
    );
    let (http, stop) = (at(&recs, "http", "prestop"), at(&recs, "httpapp", "stop"));
    assert!(
        stop - http >= 0.9,
        "SIGTERM once the hook answered: {recs:?}"
    );
    at(&recs, "usr1", "stop");
    assert!(
        !recs.iter().any(|r| r.0 == "usr1" && r.1 == "term"),
        "SIGUSR1, not SIGTERM: {recs:?}"
    );
    a.assert_one_thread();
}
