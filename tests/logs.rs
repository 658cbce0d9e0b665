//! `picolet logs`: CRI files, --previous, -f, --tail, rotation.

mod support;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

#[test]
fn previous_shows_the_last_terminated_instance_and_tail_limits_lines() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply(
        "c.yaml",
        &sh_pod(
            "crashy",
            "Always",
            "echo run-$(cat /proc/uptime | cut -d' ' -f1); echo two; echo three; sleep 1; exit 1",
        ),
    );
    wait_for(30, "a restart", || {
        a.container("crashy", "main").filter(|s| {
            s["restartCount"].as_i64().unwrap_or(0) >= 1 && s["state"]["running"].is_object()
        })
    });
    let prev = String::from_utf8(a.cli(&["logs", "crashy", "--previous"]).stdout).unwrap();
    let cur = wait_for(5, "current output", || {
        let c = String::from_utf8(a.cli(&["logs", "crashy"]).stdout).unwrap();
        c.contains("three").then_some(c)
    });
    assert!(
        prev.starts_with("run-") && prev.ends_with("two\nthree\n"),
        "{prev:?}"
    );
    assert_ne!(
        prev.lines().next(),
        cur.lines().next(),
        "previous must be the older instance"
    );
    let tail = String::from_utf8(a.cli(&["logs", "crashy", "--tail", "1"]).stdout).unwrap();
    assert_eq!(tail, "three\n");
    // The log files are CRI format.
    let raw: Vec<std::path::PathBuf> = walk(&a.run_dir().join("logs"));
    let text = std::fs::read_to_string(
        raw.iter()
            .find(|p| p.extension().is_some_and(|e| e == "log"))
            .unwrap(),
    )
    .unwrap();
    let first = text.lines().next().unwrap();
    let parts: Vec<&str> = first.splitn(4, ' ').collect();
    assert!(parts[0].ends_with('Z') && parts[0].contains('.'), "{first}");
    assert_eq!(&parts[1..3], &["stdout", "F"], "{first}");
}

#[test]
fn follow_streams_new_lines() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    a.apply(
        "t.yaml",
        &sh_pod(
            "ticker",
            "Always",
            "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done",
        ),
    );
    a.wait_running("ticker", "main", 30);
    let mut child = Command::new(BIN)
        .args(["logs", "-f", "ticker"])
        .env("PICOLET_STATE_DIR", a.state())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = child.wait();
    let ticks = out.lines().filter(|l| l.starts_with("tick-")).count();
    assert!(ticks >= 8, "expected a stream of ticks, got {out:?}");
}

#[test]
fn logs_rotate_at_one_mebibyte_keeping_two_files() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    // ~3 MiB of output: 3072 lines of 1 KiB.
    a.apply(
        "big.yaml",
        &sh_pod("big", "Always", "l=$(head -c 1000 /dev/zero | tr '\\0' x); i=0; while [ $i -lt 3072 ]; do echo $l; i=$((i+1)); done; echo done; sleep 1000"),
    );
    wait_for(60, "all output", || {
        let o = String::from_utf8(a.cli(&["logs", "big", "--tail", "1"]).stdout).unwrap();
        (o == "done\n").then_some(())
    });
    let files = walk(&a.run_dir().join("logs"));
    let logs: Vec<_> = files
        .iter()
        .filter(|p| p.to_string_lossy().contains("/main/"))
        .collect();
    assert_eq!(logs.len(), 2, "{logs:?}");
    for f in logs {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= 1 << 20, "{} is {len} bytes", f.display());
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}
