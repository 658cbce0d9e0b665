//! Shim tests with real processes (they need root for the namespaces).
//!
//! Each test writes a [`PodConfig`] into a tempdir, starts a shim by running
//! this test binary again with the hidden entry [`shim_process_entry`] (which
//! calls [`super::run`]), and talks to it over its socket like the agent.
//! Containers run the host's `/bin/busybox`, copied into a tempdir rootfs.

use super::proto::*;
use crate::runtime::log::{Record, Stream, parse_record};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod harness;
use harness::*;

#[test]
#[ignore = "entry point of the shim processes that the other tests start"]
fn shim_process_entry() {
    let Some(path) = std::env::var_os(ENTRY_ENV) else {
        eprintln!("not started by a shim test: nothing to do");
        return;
    };
    std::process::exit(super::run(Path::new(&path)));
}

#[test]
fn new_connection_gets_hello_then_report_from_a_shim_in_new_namespaces() {
    let Some(f) = Fixture::new(false) else { return };
    let (shim, agent) = f.start();
    assert_eq!(
        proc_start_time(shim.pid),
        Some(shim.start_time),
        "Hello carries the shim's host PID and start time"
    );
    for ns in ["net", "uts", "ipc"] {
        assert_ne!(ns_of("self", ns), ns_of(&shim.pid.to_string(), ns), "{ns}");
    }
    assert_eq!(ns_of("self", "pid"), ns_of(&shim.pid.to_string(), "pid"));
    eprintln!(
        "shim memory (debug test binary): VmRSS {} kB RssAnon {} kB RssFile {} kB",
        status_kb(shim.pid, "VmRSS:"),
        status_kb(shim.pid, "RssAnon:"),
        status_kb(shim.pid, "RssFile:")
    );
    assert_eq!(status_kb(shim.pid, "Threads:"), 1);
    let log = std::fs::read_to_string(&f.pod.shim_log).unwrap();
    assert!(log.contains("ready"), "{log}");
    agent.shutdown(&shim);
}

#[test]
fn container_exit_code_and_output_reach_the_agent_and_the_cri_log() {
    let Some(f) = Fixture::new(false) else { return };
    let (shim, mut agent) = f.start();
    let cfg = f.container(
        "app",
        0,
        &["/bin/sh", "-c", "echo hi; echo err >&2; exit 3"],
    );
    agent.send(&Request::Start(Box::new(cfg.clone())));
    let (pid, started) = agent.started("app", 0);
    assert!(pid > 0);
    let exit = agent.exited("app", 0);
    assert_eq!(exit.exit_code, 3);
    assert_eq!(exit.signal, None);
    assert!(!exit.oom_killed);
    assert!(exit.finished_at_ns >= started);
    let text = std::fs::read_to_string(&cfg.log_path).unwrap();
    let recs: Vec<Record<'_>> = text
        .lines()
        .map(|l| parse_record(l.as_bytes()).unwrap())
        .collect();
    assert_eq!(recs.len(), 2, "{text}");
    assert_eq!((recs[0].stream, recs[0].partial), (Stream::Stdout, false));
    assert_eq!(recs[0].content, b"hi");
    assert_eq!((recs[1].stream, recs[1].partial), (Stream::Stderr, false));
    assert_eq!(recs[1].content, b"err");
    agent.shutdown(&shim);
}

#[test]
fn all_output_is_logged_before_the_exit_is_reported() {
    let Some(f) = Fixture::new(false) else { return };
    let (shim, mut agent) = f.start();
    let cfg = f.container("seq", 0, &["/bin/sh", "-c", "seq 1 20000; printf tail"]);
    agent.send(&Request::Start(Box::new(cfg.clone())));
    agent.started("seq", 0);
    assert_eq!(agent.exited("seq", 0).exit_code, 0);
    let text = std::fs::read_to_string(&cfg.log_path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 20001);
    assert!(
        lines[19999].ends_with(" stdout F 20000"),
        "{}",
        lines[19999]
    );
    assert!(lines[20000].ends_with(" stdout P tail"), "{}", lines[20000]);
    agent.shutdown(&shim);
}

#[test]
fn unacked_exit_is_reported_on_every_reconnect_until_acked() {
    let Some(f) = Fixture::new(false) else { return };
    let (shim, mut agent) = f.start();
    agent.send(&Request::Start(Box::new(f.container(
        "job",
        4,
        &["/bin/sh", "-c", "exit 7"],
    ))));
    agent.started("job", 4);
    assert_eq!(agent.exited("job", 4).exit_code, 7);
    drop(agent);
    for _ in 0..2 {
        let mut agent = f.connect(&shim);
        let report = agent.report();
        assert_eq!(report.len(), 1);
        assert_eq!((report[0].name.as_str(), report[0].instance), ("job", 4));
        assert_eq!(report[0].exit.as_ref().map(|e| e.exit_code), Some(7));
    }
    let mut agent = f.connect(&shim);
    agent.report();
    agent.send(&Request::Ack {
        name: "job".into(),
        instance: 4,
    });
    agent.send(&Request::Report);
    assert_eq!(agent.report(), vec![]);
    agent.shutdown(&shim);
}

#[test]
fn a_new_connection_replaces_the_old_one() {
    let Some(f) = Fixture::new(false) else { return };
    let (shim, mut old) = f.start();
    let mut new = f.connect(&shim);
    assert_eq!(new.report(), vec![]);
    assert!(old.at_eof(), "the shim closed the first connection");
    new.send(&Request::Report);
    assert_eq!(new.report(), vec![]);
    new.shutdown(&shim);
}

#[test]
fn agent_hanging_up_mid_conversation_does_not_hurt_the_shim() {
    let Some(f) = Fixture::new(false) else { return };
    let (shim, agent) = f.start();
    let mut raw = agent.into_stream();
    let start = Request::Start(Box::new(f.container("svc", 0, &["/bin/sleep", "30"])));
    let mut burst = serde_json::to_vec(&start).unwrap();
    burst.push(b'\n');
    for _ in 0..200 {
        burst.extend_from_slice(b"\"Report\"\n");
    }
    raw.write_all(&burst).unwrap();
    drop(raw);
    let mut agent = f.connect(&shim);
    let report = agent.report();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].name, "svc");
    assert_eq!(report[0].exit, None);
    agent.shutdown(&shim);
}

#[test]
fn sigterm_ends_a_container_with_143_and_signal_15() {
    // Shared PID namespace: the container is not PID 1 of its own namespace,
    // where SIGTERM without a handler would be dropped.
    let Some(f) = Fixture::new(true) else { return };
    let (shim, mut agent) = f.start();
    agent.send(&Request::Start(Box::new(f.container(
        "web",
        1,
        &["/bin/sleep", "30"],
    ))));
    let (pid, _) = agent.started("web", 1);
    assert!(
        children_of(shim.pid).iter().any(|&(p, _)| p == pid),
        "Started gives the host PID of the container, a child of the shim"
    );
    agent.send(&Request::Signal {
        name: "web".into(),
        instance: 1,
        signal: libc::SIGTERM,
    });
    let exit = agent.exited("web", 1);
    assert_eq!((exit.exit_code, exit.signal), (143, Some(15)));
    agent.shutdown(&shim);
}

#[test]
fn starting_a_missing_binary_or_a_running_name_fails_with_a_reason() {
    let Some(f) = Fixture::new(false) else { return };
    let (shim, mut agent) = f.start();
    agent.send(&Request::Start(Box::new(f.container(
        "bad",
        0,
        &["/no/such/binary"],
    ))));
    match agent.recv() {
        Event::StartFailed {
            name,
            instance,
            reason,
            message,
        } => {
            assert_eq!((name.as_str(), instance), ("bad", 0));
            assert_eq!(reason, "StartError");
            assert!(message.contains("/no/such/binary"), "{message}");
        }
        other => panic!("expected StartFailed, got {other:?}"),
    }
    agent.send(&Request::Start(Box::new(f.container(
        "svc",
        0,
        &["/bin/sleep", "30"],
    ))));
    agent.started("svc", 0);
    agent.send(&Request::Start(Box::new(f.container(
        "svc",
        1,
        &["/bin/sleep", "30"],
    ))));
    match agent.recv() {
        Event::StartFailed { reason, .. } => assert_eq!(reason, super::CREATE_CONTAINER_ERROR),
        other => panic!("expected StartFailed, got {other:?}"),
    }
    agent.shutdown(&shim);
}

#[test]
fn exec_returns_combined_output_and_exit_code_in_the_pod_namespaces() {
    let Some(f) = Fixture::new(false) else { return };
    let (shim, mut agent) = f.start();
    agent.send(&Request::Start(Box::new(f.container(
        "app",
        0,
        &["/bin/sleep", "30"],
    ))));
    agent.started("app", 0);
    let script = "echo out; echo err >&2; hostname; ip link show lo; exit 4";
    let (code, timed_out, output) = agent.exec(1, "app", &["/bin/sh", "-c", script], 5000);
    assert_eq!((code, timed_out), (4, false));
    assert!(output.starts_with("out\nerr\ntestpod\n"), "{output}");
    assert!(output.contains(",UP"), "lo is up: {output}");
    // A large output is freed once it is sent, and repeated it does not
    // add up (the harness runs the shim with glibc's fixed mmap threshold, so
    // a freed large block leaves the RSS at once, as with musl).
    let before = status_kb(shim.pid, "RssAnon:");
    for i in 0..4 {
        let (code, _, output) = agent.exec(10 + i, "app", &["/bin/seq", "1", "60000"], 5000);
        assert_eq!((code, output.len()), (0, 348_894));
    }
    // The shim frees its buffers just after its last send: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut after = status_kb(shim.pid, "RssAnon:");
    while after >= before + 128 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        after = status_kb(shim.pid, "RssAnon:");
    }
    eprintln!("shim RssAnon {before} kB before four 340 KiB exec outputs, {after} kB after");
    assert!(after < before + 128, "{before} kB -> {after} kB");
    let (code, _, output) = agent.exec(2, "nothere", &["/bin/true"], 5000);
    assert_eq!(code, super::EXEC_NOT_STARTED);
    assert!(output.contains("nothere"), "{output}");
    // A missing command is 127 and a non-executable one 126, as in a
    // shell, runc and kubectl, with the reason as the output.
    let (code, _, output) = agent.exec(4, "app", &["/nonexistent"], 5000);
    assert_eq!(code, super::EXEC_NOT_FOUND, "{output}");
    assert!(output.contains("/nonexistent"), "{output}");
    let (code, _, output) = agent.exec(5, "app", &["nonexistent-in-path"], 5000);
    assert_eq!(code, super::EXEC_NOT_FOUND, "{output}");
    let (code, _, output) = agent.exec(6, "app", &["/"], 5000);
    assert_eq!(code, super::EXEC_CANNOT_RUN, "{output}");
    agent.shutdown(&shim);
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn exec_passed(id: u64, argv: &[&str], stdio: ExecStdio) -> Request {
    Request::Exec {
        id,
        name: "app".into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        timeout_ms: 0,
        stdio,
    }
}

fn done(agent: &mut Agent, want: u64) -> (i32, String, bool) {
    match agent.recv() {
        Event::ExecDone {
            id,
            exit_code,
            output,
            not_started,
            ..
        } if id == want => (exit_code, output, not_started),
        other => panic!("expected ExecDone {want}, got {other:?}"),
    }
}

#[test]
fn exec_with_passed_stdio_writes_to_them_and_the_shim_keeps_no_copy() {
    use std::io::Read;
    use std::os::fd::AsFd;
    let Some(f) = Fixture::new(false) else { return };
    let (shim, mut agent) = f.start();
    agent.send(&Request::Start(Box::new(f.container(
        "app",
        0,
        &["/bin/sleep", "30"],
    ))));
    agent.started("app", 0);
    let fds_before = fd_count(shim.pid);
    // stdin, stdout and stderr passed: stdout and stderr stay apart, and
    // the command reads what we write to its stdin.
    let (in_r, in_w) = crate::sys::fd::pipe().unwrap();
    let (out_r, out_w) = crate::sys::fd::pipe().unwrap();
    let (err_r, err_w) = crate::sys::fd::pipe().unwrap();
    let script = "read line; echo \"got $line\"; echo oops >&2; exit 5";
    agent.send_with_fds(
        &exec_passed(1, &["/bin/sh", "-c", script], ExecStdio::PassedWithStdin),
        &[in_r.as_fd(), out_w.as_fd(), err_w.as_fd()],
    );
    drop((in_r, out_w, err_w));
    std::fs::File::from(in_w).write_all(b"hello\n").unwrap();
    let (code, output, not_started) = done(&mut agent, 1);
    assert_eq!((code, output.as_str(), not_started), (5, "", false));
    // EOF on both: nobody but the command held the write ends.
    let mut out = String::new();
    std::fs::File::from(out_r).read_to_string(&mut out).unwrap();
    let mut err = String::new();
    std::fs::File::from(err_r).read_to_string(&mut err).unwrap();
    assert_eq!((out.as_str(), err.as_str()), ("got hello\n", "oops\n"));
    // Without stdin passed, the command's stdin is /dev/null (EOF).
    let (out_r, out_w) = crate::sys::fd::pipe().unwrap();
    let (err_r, err_w) = crate::sys::fd::pipe().unwrap();
    let script = "if read line; then echo read; else echo eof; fi";
    agent.send_with_fds(
        &exec_passed(2, &["/bin/sh", "-c", script], ExecStdio::Passed),
        &[out_w.as_fd(), err_w.as_fd()],
    );
    drop((out_w, err_w));
    assert_eq!(done(&mut agent, 2).0, 0);
    let mut out = String::new();
    std::fs::File::from(out_r).read_to_string(&mut out).unwrap();
    assert_eq!(out, "eof\n");
    drop(err_r);
    // A reader that went away: the command gets SIGPIPE (EPIPE) on its
    // next write instead of running on unattended.
    let (out_r, out_w) = crate::sys::fd::pipe().unwrap();
    let (err_r, err_w) = crate::sys::fd::pipe().unwrap();
    drop((out_r, err_r));
    agent.send_with_fds(
        &exec_passed(
            3,
            &["/bin/sh", "-c", "sleep 0.2; echo x; sleep 30"],
            ExecStdio::Passed,
        ),
        &[out_w.as_fd(), err_w.as_fd()],
    );
    drop((out_w, err_w));
    let t0 = Instant::now();
    assert_eq!(done(&mut agent, 3).0, 128 + libc::SIGPIPE);
    assert!(t0.elapsed() < Duration::from_secs(10));
    // A missing command with passed stdio: 127, the reason in the output.
    let (out_r, out_w) = crate::sys::fd::pipe().unwrap();
    agent.send_with_fds(
        &exec_passed(4, &["nonexistent-in-path"], ExecStdio::Passed),
        &[out_w.as_fd(), out_w.as_fd()],
    );
    drop((out_r, out_w));
    let (code, output, not_started) = done(&mut agent, 4);
    assert_eq!(
        (code, not_started),
        (super::EXEC_NOT_FOUND, true),
        "{output}"
    );
    // An exec whose fds did not come is refused, not run on other fds.
    agent.send(&exec_passed(5, &["/bin/true"], ExecStdio::Passed));
    let (code, output, not_started) = done(&mut agent, 5);
    assert_eq!((code, not_started), (super::EXEC_NOT_STARTED, true));
    assert!(output.contains("0 of 2 fds"), "{output}");
    // Every passed fd was closed again: no leak in the shim.
    assert_eq!(fd_count(shim.pid), fds_before);
    agent.shutdown(&shim);
}

#[test]
fn exec_with_a_tty_makes_the_pty_its_stdio_and_controlling_terminal() {
    use std::io::Read;
    use std::os::fd::AsFd;
    let Some(f) = Fixture::new(false) else { return };
    let (shim, mut agent) = f.start();
    agent.send(&Request::Start(Box::new(f.container(
        "app",
        0,
        &["/bin/sleep", "30"],
    ))));
    agent.started("app", 0);
    let fds_before = fd_count(shim.pid);
    let (mut console, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    // The size: 33 rows, 77 columns.
    console.write_all(&[33, 0, 77, 0]).unwrap();
    // /proc/PID/stat: $6 is the session, $7 the controlling terminal.
    let script = "read l; echo \"got $l\"; set -- $(cat /proc/$$/stat); \
                  [ $6 = $$ ] && [ $7 != 0 ] && echo leader; tty; stty size; echo err >&2; exit 4";
    agent.send_with_fds(
        &exec_passed(1, &["/bin/sh", "-c", script], ExecStdio::Tty),
        &[theirs.as_fd()],
    );
    drop(theirs);
    // The master comes on the console socket, then it closes.
    let mut fds = Vec::new();
    let n = crate::sys::net::recv_with_fds(console.as_fd(), &mut [0; 4], &mut fds).unwrap();
    assert_eq!((n, fds.len()), (1, 1));
    let mut m = std::fs::File::from(fds.pop().unwrap());
    m.write_all(b"hi\n").unwrap();
    assert_eq!(done(&mut agent, 1), (4, String::new(), false));
    assert_eq!(
        crate::sys::net::recv_with_fds(console.as_fd(), &mut [0; 4], &mut fds).unwrap(),
        0
    );
    // Until EIO: nobody but the command held the slave.
    let mut seen = Vec::new();
    let mut buf = [0; 512];
    while let Ok(n @ 1..) = m.read(&mut buf) {
        seen.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        String::from_utf8_lossy(&seen),
        "hi\r\ngot hi\r\nleader\r\n/dev/pts/0\r\n33 77\r\nerr\r\n"
    );
    // A console fd that is no socket: refused, not run.
    let (r, w) = crate::sys::fd::pipe().unwrap();
    agent.send_with_fds(
        &exec_passed(2, &["/bin/true"], ExecStdio::Tty),
        &[r.as_fd()],
    );
    drop((r, w));
    let (code, output, not_started) = done(&mut agent, 2);
    assert!(not_started && code != 0, "{code} {output}");
    assert!(output.contains("send the pty master"), "{output}");
    assert_eq!(fd_count(shim.pid), fds_before);
    agent.shutdown(&shim);
}

#[test]
fn exec_past_its_timeout_is_killed_and_reported_as_timed_out() {
    let Some(f) = Fixture::new(false) else { return };
    let (shim, mut agent) = f.start();
    agent.send(&Request::Start(Box::new(f.container(
        "app",
        0,
        &["/bin/sleep", "30"],
    ))));
    agent.started("app", 0);
    let t0 = Instant::now();
    let (code, timed_out, _) = agent.exec(9, "app", &["/bin/sleep", "30"], 200);
    assert_eq!((code, timed_out), (137, true));
    assert!(t0.elapsed() >= Duration::from_millis(200));
    assert!(t0.elapsed() < Duration::from_secs(10));
    agent.shutdown(&shim);
}

#[test]
fn shutdown_kills_containers_reports_them_and_removes_the_socket() {
    let Some(f) = Fixture::new(false) else { return };
    let (shim, mut agent) = f.start();
    agent.send(&Request::Start(Box::new(f.container(
        "app",
        0,
        &["/bin/sleep", "30"],
    ))));
    let (pid, _) = agent.started("app", 0);
    agent.send(&Request::Shutdown);
    let exit = agent.exited("app", 0);
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)));
    assert!(agent.at_eof(), "the shim closes the connection");
    assert!(!f.socket().exists());
    assert!(wait_gone(shim.pid), "the shim exits");
    assert!(wait_gone(pid), "the container is gone");
    shim.forget();
}

#[test]
fn shared_pid_namespace_makes_the_shim_pid_1_and_it_reaps_orphans() {
    let Some(f) = Fixture::new(true) else { return };
    let (shim, mut agent) = f.start();
    let status = std::fs::read_to_string(format!("/proc/{}/status", shim.pid)).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert_eq!(
        nspid.split_whitespace().skip(1).collect::<Vec<_>>(),
        vec![shim.pid.to_string().as_str(), "1"]
    );
    agent.send(&Request::Start(Box::new(f.container(
        "parent",
        0,
        &["/bin/sh", "-c", "sleep 1 & exit 0"],
    ))));
    let (pid, _) = agent.started("parent", 0);
    assert_ne!(pid, 1, "Started reports the host PID, not the pod one");
    assert_eq!(agent.exited("parent", 0).exit_code, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = false;
    loop {
        // The orphan shows up as the shim's child, then disappears: a
        // zombie would stay listed until the deadline.
        let kids = children_of(shim.pid);
        seen |= kids.iter().any(|(_, state)| *state != 'Z');
        if seen && kids.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "orphan seen: {seen}, {kids:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    agent.shutdown(&shim);
}

#[test]
fn shim_moves_itself_into_the_shim_leaf_of_the_pod_cgroup() {
    let Some(mut f) = Fixture::new(false) else {
        return;
    };
    let Some(root) = cgroup2_root() else {
        crate::testutil::cannot_run("no writable cgroup v2 hierarchy");
        return;
    };
    let pod_cg = root.join(format!("picolet-shim-test-{}", std::process::id()));
    std::fs::create_dir(&pod_cg).unwrap();
    f.pod.cgroup = Some(pod_cg.clone());
    let (shim, agent) = f.start();
    let procs = std::fs::read_to_string(pod_cg.join("shim/cgroup.procs")).unwrap_or_default();
    agent.shutdown(&shim);
    let _ = std::fs::remove_dir(pod_cg.join("shim"));
    let _ = std::fs::remove_dir(&pod_cg);
    assert_eq!(procs.trim(), shim.pid.to_string());
}

#[test]
fn oom_kill_counter_is_read_from_memory_events() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(super::children::oom_kills(dir.path()), None);
    std::fs::write(
        dir.path().join("memory.events"),
        "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\noom_group_kill 0\n",
    )
    .unwrap();
    assert_eq!(super::children::oom_kills(dir.path()), Some(2));
}

#[test]
fn proc_stat_parsing_handles_spaces_and_parens_in_the_command() {
    let line = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
    assert_eq!(super::sys::parse_stat(line), Some((42, 987654)));
    assert_eq!(super::sys::parse_stat("garbage"), None);
}

#[test]
fn a_graceful_stop_sends_the_containers_stop_signal_instead_of_sigterm() {
    let Some(f) = Fixture::new(true) else { return };
    let (shim, mut agent) = f.start();
    let mut cfg = f.container("web", 1, &["/bin/sleep", "30"]);
    cfg.stop_signal = Some(libc::SIGUSR1);
    agent.send(&Request::Start(Box::new(cfg)));
    agent.started("web", 1);
    agent.send(&Request::Signal {
        name: "web".into(),
        instance: 1,
        signal: libc::SIGTERM,
    });
    let exit = agent.exited("web", 1);
    assert_eq!((exit.exit_code, exit.signal), (138, Some(libc::SIGUSR1)));
    agent.shutdown(&shim);
}
