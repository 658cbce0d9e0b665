//! Test harness for end-to-end tests: real agents, shims, namespaces,
//! overlayfs and cgroups, with images built from Debian's busybox-static.
//!
//! Every test gets its own state dir, run dir, manifests dir and cgroup
//! (created by the test under the unified hierarchy and removed after).
//! Processes are ended by PID only: the agent we started, and the shims of
//! our own pods (through their sockets, or their PIDs from the state dir).
#![allow(dead_code)]

pub mod fleet;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_picolet");
pub const IMAGE: &str = "picolet.test/busybox:1";

/// Returns false (and says why) when not root; panics instead when
/// `PICOLET_REQUIRE_ROOT` is set (CI), so root tests never silently skip.
pub fn root_or_skip() -> bool {
    let euid = picolet::sys::process::euid();
    if euid == 0 {
        return true;
    }
    if std::env::var_os("PICOLET_REQUIRE_ROOT").is_some() {
        panic!(
            "this test needs root (namespaces, mounts, cgroups) and PICOLET_REQUIRE_ROOT is set"
        );
    }
    eprintln!("skipping: this test needs root (namespaces, mounts, cgroups)");
    false
}

/// The test images (built once per test binary).
pub fn images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("PICOLET_TEST_IMAGES") {
            let d = PathBuf::from(d);
            if d.join("busybox-oci").exists() {
                return d;
            }
        }
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("images");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/images/build-busybox.sh");
        let st = Command::new("sh").arg(script).arg(&dir).status().unwrap();
        assert!(st.success(), "building test images failed");
        dir
    })
}

/// Polls `f` every 50 ms until it returns Some, or panics after `secs`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running agent with its own directories.
pub struct Agent {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub cgroup: Option<PathBuf>,
    /// Extra environment for the agent process (set before `spawn`).
    pub env: Vec<(String, String)>,
    /// Extra `picolet agent` arguments (fleet settings).
    pub args: Vec<String>,
    /// A network namespace file (`/proc/PID/ns/net`) to run the agent in,
    /// with its pod network (`--pod-network bridge`). Without one the
    /// agent runs in the test's namespace with `--pod-network none`, so
    /// that no test touches the host's network.
    pub netns: Option<String>,
}

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Agent {
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }
    pub fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent running").id()
    }

    /// Prepares dirs, imports the test image, and starts the agent.
    pub fn start() -> Agent {
        Agent::start_with(&[])
    }

    /// [`Agent::start`] with extra agent arguments (`--broker …`).
    pub fn start_with(args: &[&str]) -> Agent {
        Agent::start_in(None, args)
    }

    /// [`Agent::start_with`], the agent inside the network namespace
    /// `netns` (a file such as `/proc/PID/ns/net`) when given.
    pub fn start_in(netns: Option<&str>, args: &[&str]) -> Agent {
        let mut a = Agent::prepare(netns, args);
        a.spawn();
        a
    }

    /// [`Agent::start`] with extra environment for the agent process.
    pub fn start_env(env: &[(&str, &str)]) -> Agent {
        let mut a = Agent::prepare(None, &[]);
        a.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        a.spawn();
        a
    }

    /// Dirs, cgroup and the test images, without starting the agent.
    pub fn prepare(netns: Option<&str>, args: &[&str]) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("picolet-test-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
        let cg_base = Path::new("/sys/fs/cgroup/unified");
        let cg = if cg_base.join("cgroup.procs").exists() {
            let p = cg_base.join(format!(
                "picolet-test-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&p).ok().map(|_| p)
        } else {
            None
        };
        let a = Agent {
            dir,
            child: None,
            cgroup: cg,
            env: Vec::new(),
            args: args.iter().map(|a| a.to_string()).collect(),
            netns: netns.map(str::to_string),
        };
        let out = a.cli(&[
            "image",
            "import",
            images().join("busybox-oci").to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "image import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = a.cli(&[
            "image",
            "import",
            images().join("busybox.docker.tar").to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "image import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        a
    }

    /// Starts (or restarts) the agent process and waits for its socket.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut cmd = match &self.netns {
            // nsenter execs the agent: the same PID.
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={ns}")).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        // Never pick up a config file of the machine running the tests.
        // No node-pressure eviction: the free space of the disk running
        // the tests is not what they are about (tests/disk.rs sets its own
        // thresholds, which come later and win).
        cmd.arg("agent")
            .args(["--config", "/dev/null"])
            .args(["--eviction-nodefs-available", "0"])
            .args(["--eviction-imagefs-available", "0"])
            .args(&self.args)
            .arg("--state-dir")
            .arg(self.state())
            .arg("--run-dir")
            .arg(self.run_dir())
            .arg("--manifests")
            .arg(self.manifests());
        // The test's own --node-name wins (the agent takes the last value
        // of a flag given twice: appended after it, this one would).
        if !self.args.iter().any(|a| a == "--node-name") {
            cmd.args(["--node-name", "testnode"]);
        }
        if self.netns.is_none() && !self.args.iter().any(|a| a == "--pod-network") {
            cmd.args(["--pod-network", "none"]);
        }
        if let Some(cg) = &self.cgroup {
            cmd.arg("--cgroup-root").arg(cg);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let sock = self.state().join("picolet.sock");
        let _ = std::fs::remove_file(&sock);
        self.child = Some(cmd.spawn().unwrap());
        wait_for(10, "the agent's API socket", || {
            std::os::unix::net::UnixStream::connect(&sock).ok()
        });
    }

    /// SIGKILL the agent (pods keep running under their shims).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: sending a signal to our own child's PID.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .env("PICOLET_STATE_DIR", self.state())
            .output()
            .unwrap()
    }

    /// Writes a manifest file into the watched dir (atomically).
    pub fn apply(&self, file: &str, yaml: &str) {
        let tmp = self.dir.path().join(format!(".{file}.tmp"));
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, self.manifests().join(file)).unwrap();
    }

    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.manifests().join(file)).unwrap();
    }

    /// `picolet get pods -o json` items.
    pub fn pods(&self) -> Vec<Value> {
        let out = self.cli(&["get", "pods", "-A", "-o", "json"]);
        if !out.status.success() {
            return Vec::new();
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["items"].as_array().cloned().unwrap_or_default()
    }

    pub fn pod(&self, name: &str) -> Option<Value> {
        self.pods()
            .into_iter()
            .find(|p| p["metadata"]["name"] == name)
    }

    /// The status of one container (app or init).
    pub fn container(&self, pod: &str, c: &str) -> Option<Value> {
        let p = self.pod(pod)?;
        for key in ["containerStatuses", "initContainerStatuses"] {
            if let Some(cs) = p["status"][key].as_array() {
                if let Some(s) = cs.iter().find(|s| s["name"] == c) {
                    return Some(s.clone());
                }
            }
        }
        None
    }

    pub fn wait_running(&self, pod: &str, c: &str, secs: u64) -> Value {
        wait_for(secs, &format!("{pod}/{c} running"), || {
            self.container(pod, c)
                .filter(|s| s["state"]["running"].is_object())
        })
    }

    pub fn exec(&self, pod: &str, c: &str, cmd: &[&str]) -> (i32, String) {
        let mut args = vec!["exec", pod, "-c", c, "--"];
        args.extend_from_slice(cmd);
        let out = self.cli(&args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// Waits until `<state>/trash` is empty: what the agent discarded (a
    /// removed pod's directory, an old container instance) was deleted by
    /// its `picolet rmtree` child, off the agent's thread.
    pub fn wait_trash_empty(&self) {
        let trash = self.state().join("trash");
        wait_for(20, "the trash emptied", || {
            std::fs::read_dir(&trash)
                .map_or(true, |mut rd| rd.next().is_none())
                .then_some(())
        });
    }

    /// Threads of the agent process right now.
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    pub fn assert_one_thread(&self) {
        assert_eq!(self.threads(), 1, "the agent must have exactly 1 thread");
    }

    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Stop our pods through the agent, then the agent, then any shim left.
        // Fleet agents' pods are not in the manifests: their shims are stopped.
        if self.child.is_some() && !self.args.is_empty() {
            if let Some(mut c) = self.child.take() {
                // SAFETY: signalling our own child's PID.
                unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
                let _ = c.wait();
            }
        }
        if self.child.is_some() {
            if let Ok(rd) = std::fs::read_dir(self.manifests()) {
                for e in rd.flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && !self.pods().is_empty() {
                std::thread::sleep(Duration::from_millis(100));
            }
            if let Some(mut c) = self.child.take() {
                // SAFETY: signalling our own child's PID.
                unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
                let _ = c.wait();
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.state().join("pods")) {
            for e in rd.flatten() {
                shutdown_shim(&e.path().join("shim.sock"));
            }
        }
        if std::thread::panicking() {
            eprintln!("---- agent log ----\n{}", self.agent_log());
        }
        if let Some(cg) = &self.cgroup {
            remove_cgroup_tree(cg);
        }
    }
}

/// Asks a shim to shut down over its socket (kills its containers).
pub fn shutdown_shim(sock: &Path) {
    use std::io::{Read, Write};
    if let Ok(mut s) = std::os::unix::net::UnixStream::connect(sock) {
        let _ = s.write_all(b"\"Shutdown\"\n");
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
    }
}

/// Removes a cgroup tree that this test created (children first).
pub fn remove_cgroup_tree(p: &Path) {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    for _ in 0..50 {
        if std::fs::remove_dir(p).is_ok() || !p.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A one-container pod manifest running `sh -c SCRIPT`.
pub fn sh_pod(name: &str, policy: &str, script: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: {IMAGE}
    command: ["sh", "-c", {script:?}]
"#
    )
}
