//! sd_notify from a real agent: READY=1 after the first reconcile, STATUS=
//! with the number of running pods, WATCHDOG=1 at half of WATCHDOG_USEC,
//! all to a datagram socket this test binds (standing in for systemd).

mod support;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};
use support::*;

/// Every datagram that arrives within `secs`, until `stop` says enough.
fn collect(sock: &UnixDatagram, secs: u64, stop: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline && !stop(&got) {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

#[test]
fn the_agent_tells_systemd_it_is_ready_how_many_pods_run_and_that_it_is_alive() {
    if !root_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut a = Agent::start();
    // The first agent ran without NOTIFY_SOCKET and has no pods: replace it.
    a.kill9();
    a.env = vec![
        ("NOTIFY_SOCKET".into(), path.to_string_lossy().into_owned()),
        // A ping every 200 ms.
        ("WATCHDOG_USEC".into(), "400000".into()),
    ];
    a.spawn();
    let got = collect(&sock, 10, |g| {
        g.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3
    });
    let ready: Vec<&String> = got.iter().filter(|m| m.starts_with("READY=1")).collect();
    assert_eq!(ready, ["READY=1\nSTATUS=0 pods running"], "{got:?}");
    let first_ping = got.iter().position(|m| m == "WATCHDOG=1").unwrap();
    let ready_at = got.iter().position(|m| m.starts_with("READY=1")).unwrap();
    assert!(ready_at < first_ping, "watchdog before READY: {got:?}");

    a.apply("p.yaml", &sh_pod("p", "Always", "exec sleep 100000"));
    a.wait_running("p", "main", 30);
    let got = collect(&sock, 10, |g| {
        g.iter().any(|m| m == "STATUS=1 pods running")
    });
    assert!(got.iter().any(|m| m == "STATUS=1 pods running"), "{got:?}");
    a.remove("p.yaml");
    let got = collect(&sock, 20, |g| {
        g.iter().any(|m| m == "STATUS=0 pods running")
    });
    assert!(got.iter().any(|m| m == "STATUS=0 pods running"), "{got:?}");
    assert!(
        !got.iter().any(|m| m.starts_with("READY")),
        "READY twice: {got:?}"
    );
    a.assert_one_thread();
}

/// picolet-pods.service's process: it moves itself into `<cgroup>/holder`,
/// says READY to systemd, and the agent (in a cgroup of its own, as
/// picolet.service) creates the pods beside it. The agent can then be
/// killed and started again while the pod runs: the restart never needs the
/// pods' cgroup, which is what systemd 252 cannot give it once controllers
/// are enabled there.
#[test]
fn the_cgroup_holder_empties_the_pods_cgroup_for_the_agent_and_outlives_agent_restarts() {
    if !root_or_skip() {
        return;
    }
    let mut a = Agent::start();
    a.kill9();
    let cg = a
        .cgroup
        .clone()
        .expect("this test needs the cgroup v2 hierarchy at /sys/fs/cgroup/unified");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // As systemd starts a unit's main process: in the unit's cgroup.
    let mut holder = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ >{}/cgroup.procs && exec {BIN} cgroup-holder",
            cg.display()
        ))
        .env("NOTIFY_SOCKET", &path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let got = collect(&sock, 10, |g| g.iter().any(|m| m.starts_with("READY=1")));
    assert_eq!(
        got,
        [format!(
            "READY=1\nSTATUS=holding {} for the pods",
            cg.display()
        )]
    );
    let procs = |p: &std::path::Path| std::fs::read_to_string(p.join("cgroup.procs")).unwrap();
    assert_eq!(procs(&cg.join("holder")).trim(), holder.id().to_string());
    assert_eq!(procs(&cg), "", "the unit's cgroup is left empty");

    a.spawn();
    a.apply("p.yaml", &sh_pod("p", "Always", "exec sleep 100000"));
    let running = a.wait_running("p", "main", 30);
    let uid = a.pod("p").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(cg.join(format!("pod{uid}")).is_dir());
    assert_eq!(procs(&cg), "", "no process in the pods' cgroup itself");
    let own = std::fs::read_to_string(format!("/proc/{}/cgroup", a.pid())).unwrap();
    assert!(
        !own.contains(cg.file_name().unwrap().to_str().unwrap()),
        "the agent runs outside the pods' cgroup: {own}"
    );

    a.kill9();
    a.spawn();
    let again = a.wait_running("p", "main", 30);
    assert_eq!(
        again["state"]["running"]["startedAt"],
        running["state"]["running"]["startedAt"]
    );
    assert_eq!(procs(&cg.join("holder")).trim(), holder.id().to_string());

    // SAFETY: signalling the holder this test started.
    unsafe { libc::kill(holder.id() as i32, libc::SIGTERM) };
    let status = holder.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}
