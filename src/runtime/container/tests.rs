//! Real containers on the real kernel: a one-layer busybox image, root,
//! overlayfs. Each scenario runs in a forked single-threaded child of the
//! (multi-threaded) test process, which plays the shim; results come back
//! through a file.

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

mod filesystem;
mod isolation;
mod process;
use crate::runtime::config::{Mount, MountKind, Rootfs};
use crate::runtime::security::{capability_set, default_caps};

/// Reaps `pid` (our child) and returns its raw wait status.
fn reap(pid: libc::pid_t) -> i32 {
    crate::sys::process::wait(pid).unwrap_or(0)
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn layer(&self) -> PathBuf {
        self.dir.path().join("layer")
    }
    fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }
    fn host(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Why container tests cannot run here, if they cannot.
fn missing_prerequisite() -> Option<&'static str> {
    if !crate::testutil::is_root() {
        return Some("not root");
    }
    let fs = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !fs.lines().any(|l| l.trim_end().ends_with("overlay")) {
        return Some("no overlayfs in /proc/filesystems");
    }
    if !Path::new("/bin/busybox").is_file() {
        return Some("no static /bin/busybox (apt package busybox-static)");
    }
    None
}

/// A one-layer image: static busybox with its applets, /etc/passwd, a
/// marker file and two hostile symlinks. `None` (with a note) when the
/// machine cannot run containers.
fn fixture(test: &str) -> Option<Fixture> {
    if let Some(why) = crate::check::qemu_user() {
        eprintln!("{test}: skipped: {why}: qemu-user's clone(2) rejects namespace flags (EINVAL)");
        return None;
    }
    if let Some(why) = missing_prerequisite() {
        crate::testutil::cannot_run(&format!("{test}: {why}"));
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer");
    fs::create_dir_all(layer.join("bin")).unwrap();
    fs::create_dir_all(layer.join("etc")).unwrap();
    fs::create_dir_all(layer.join("tmp")).unwrap();
    crate::testutil::copy_executable(Path::new("/bin/busybox"), &layer.join("bin/busybox"));
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            symlink("busybox", layer.join("bin").join(applet)).unwrap();
        }
    }
    fs::write(
        layer.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
    )
    .unwrap();
    fs::write(layer.join("marker"), "inside-image\n").unwrap();
    symlink("/", layer.join("evil")).unwrap();
    symlink("../../../../..", layer.join("up")).unwrap();
    for d in ["upper", "work", "target"] {
        fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    Some(Fixture { dir })
}

fn pod(share_pid: bool) -> PodConfig {
    PodConfig {
        uid: "pod-uid".into(),
        name: "default/test".into(),
        pod_dir: PathBuf::from("/nonexistent"),
        hostname: "pod-a".into(),
        host_network: false,
        share_pid,
        cgroup: None,
        shim_log: PathBuf::from("/dev/null"),
        sysctls: vec![],
    }
}

fn config(fx: &Fixture, script: &str) -> ContainerConfig {
    ContainerConfig {
        name: "c".into(),
        instance: 0,
        rootfs: Rootfs {
            layers: vec![fx.layer()],
            upper: Some((fx.upper(), fx.host("work"))),
            target: fx.host("target"),
        },
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec!["PATH=/bin".into(), "GREETING=hello".into()],
        cwd: "/".into(),
        uid: 0,
        gid: 0,
        capabilities: default_caps(),
        no_new_privs: false,
        seccomp: false,
        groups: vec![],
        privileged: false,
        mounts: Vec::new(),
        cgroup: None,
        log_path: PathBuf::from("/dev/null"),
        log_max_bytes: 0,
        log_max_files: 1,
        oom_score_adj: None,
        stop_signal: None,
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Runs `f` in a forked child (single-threaded, like the shim) and returns
/// the string it produced. The child is killed by SIGALRM after 60 s.
fn in_child(f: impl FnOnce() -> String) -> String {
    let out = std::env::temp_dir().join(format!(
        "picolet-ct-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let pid = namespaces::fork().unwrap();
    if pid == 0 {
        // This child of a multi-threaded process never execs: close what it
        // inherited, among them other tests' pipe ends whose readers wait
        // for EOF.
        // SAFETY: close_range only closes fds of this process; `f` opens its own.
        unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
        // SAFETY: alarm has no preconditions.
        unsafe { libc::alarm(60) };
        let text = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .unwrap_or_else(|_| "PANIC in child".to_string());
        let _ = fs::write(&out, text);
        // SAFETY: leave the forked test child without running test-harness code.
        unsafe { libc::_exit(0) }
    }
    let status = reap(pid);
    let text =
        fs::read_to_string(&out).unwrap_or_else(|_| format!("child died, status {status:#x}"));
    let _ = fs::remove_file(&out);
    text
}

fn output_pipe() -> (OwnedFd, Stdio) {
    let (rd, wr) = sys::pipe().unwrap();
    let stdin = OwnedFd::from(fs::File::open("/dev/null").unwrap());
    let stdio = Stdio {
        stdin,
        stdout: wr.try_clone().unwrap(),
        stderr: wr,
        console: None,
    };
    (rd, stdio)
}

fn read_all(rd: OwnedFd) -> String {
    let mut s = String::new();
    fs::File::from(rd).read_to_string(&mut s).unwrap();
    s
}

fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

/// Spawns the container, collects stdout+stderr until EOF and its exit:
/// `"exit N\n<output>"` or `"error <reason>: <message>"`.
fn run_here(pod: &PodConfig, cfg: &ContainerConfig) -> String {
    let (rd, stdio) = output_pipe();
    match spawn(pod, cfg, stdio) {
        Ok(pid) => {
            let output = read_all(rd);
            format!("exit {}\n{output}", exit_code(reap(pid)))
        }
        Err(e) => format!("error {}: {e}", e.reason()),
    }
}

fn run(pod: &PodConfig, cfg: &ContainerConfig) -> String {
    in_child(|| run_here(pod, cfg))
}
