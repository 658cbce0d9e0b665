//! Helpers shared by the benches (`mod common;` in each bench's root).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A numeric env setting, or its default.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Polls `f` every millisecond until it returns Some; panics after `secs`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A `Key: N kB` field of /proc/<pid>/<file>.
pub fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// The `p` quantile (0..=1) of `v` (sorted in place).
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Unix ns of the first CRI log line in a container's log dir.
pub fn first_line_ns(dir: &Path) -> Option<i64> {
    let e = std::fs::read_dir(dir).ok()?.flatten().next()?;
    let text = std::fs::read_to_string(e.path()).ok()?;
    let ts = text.lines().next()?.split(' ').next()?;
    picolet::clock::parse_rfc3339_ns(ts)
}

/// The binary under test: this build's, or `$PICOLET_BENCH_BIN` (for
/// instance the static musl build that ships: see the header of `run.sh`).
pub fn bin() -> String {
    std::env::var("PICOLET_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_picolet").to_string())
}

/// A `Key: N kB` field of /proc/<pid>/status.
pub fn status_field(pid: u32, key: &str) -> u64 {
    proc_field(pid, "status", key)
}

pub struct Env {
    pub dir: PathBuf,
    pub agent: Option<Child>,
    pub cgroup: Option<PathBuf>,
    /// The agent's arguments besides the directories.
    pub args: Vec<String>,
    /// Extra environment of the agent.
    pub env: Vec<(String, String)>,
}

impl Env {
    /// Builds the test images if needed, makes a state dir and a cgroup
    /// under the unified hierarchy, imports busybox and starts the agent
    /// with `extra` arguments; returns once its socket answers.
    pub fn start(node: &str, extra: &[&str]) -> Env {
        Env::start_env(node, extra, &[])
    }

    /// [`Env::start`] with extra environment for the agent.
    pub fn start_env(node: &str, extra: &[&str], vars: &[(&str, &str)]) -> Env {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let images = root.join("target/images");
        if !images.join("busybox-oci").exists() {
            let st = Command::new("sh")
                .arg(root.join("tests/images/build-busybox.sh"))
                .arg(&images)
                .status()
                .unwrap();
            assert!(st.success());
        }
        let dir = std::env::temp_dir().join(format!("picolet-bench-{node}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("manifests")).unwrap();
        let cg = Path::new("/sys/fs/cgroup/unified");
        let cgroup = cg
            .join("cgroup.procs")
            .exists()
            .then(|| cg.join(format!("picolet-bench-{node}-{}", std::process::id())));
        if let Some(c) = &cgroup {
            std::fs::create_dir_all(c).unwrap();
        }
        let mut env = Env {
            dir: dir.clone(),
            agent: None,
            cgroup: cgroup.clone(),
            args: Vec::new(),
            env: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let out = env.cli(&[
            "image",
            "import",
            images.join("busybox-oci").to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The host's network is left alone unless asked for
        // (PICOLET_BENCH_POD_NETWORK=bridge, or `--pod-network=…` in
        // `extra`); bench/net.rs runs its agents with the pod network in a
        // namespace of its own.
        let network = std::env::var("PICOLET_BENCH_POD_NETWORK").unwrap_or_else(|_| "none".into());
        let default = (!extra.iter().any(|a| a.starts_with("--pod-network=")))
            .then(|| format!("--pod-network={network}"));
        env.args = std::iter::once(format!("--node-name={node}"))
            .chain(default)
            .chain(extra.iter().map(|a| a.to_string()))
            .collect();
        env.restart();
        std::thread::sleep(Duration::from_secs(1));
        env
    }

    /// Starts the agent (again) and waits for its socket.
    pub fn restart(&mut self) {
        let mut cmd = Command::new(bin());
        cmd.args(["agent", "--config", "/dev/null", "--state-dir"])
            .arg(self.state())
            .arg("--run-dir")
            .arg(self.dir.join("run"))
            .arg("--manifests")
            .arg(self.manifests())
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("agent.log"))
                    .unwrap(),
            );
        if let Some(c) = &self.cgroup {
            cmd.arg("--cgroup-root").arg(c);
        }
        self.agent = Some(cmd.spawn().unwrap());
        let sock = self.state().join("picolet.sock");
        wait_for(10, "agent socket", || {
            std::os::unix::net::UnixStream::connect(&sock).ok()
        });
    }

    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }
    pub fn manifests(&self) -> PathBuf {
        self.dir.join("manifests")
    }
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .args(args)
            .env("PICOLET_STATE_DIR", self.state())
            .output()
            .unwrap()
    }
    pub fn pods(&self) -> Vec<serde_json::Value> {
        let out = self.cli(&["get", "pods", "-A", "-o", "json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["items"].as_array().cloned())
            .unwrap_or_default()
    }
    pub fn agent_pid(&self) -> u32 {
        self.agent.as_ref().unwrap().id()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(self.manifests()) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && !self.pods().is_empty() {
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(mut a) = self.agent.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(a.id() as i32, libc::SIGTERM) };
            let _ = a.wait();
        }
        if let Some(cg) = &self.cgroup {
            remove_tree(cg);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes a cgroup tree the bench made, deepest first, retrying for up to
/// 5 s while its last processes exit (rmdir only: nothing is killed).
pub fn remove_tree(p: &Path) {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
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

/// Podman, set up as ../shared/PEERS.md says (runc, cgroupfs, a busybox
/// rootfs imported as `localhost/bb:1`); the image and files go on drop.
pub struct Podman {
    dir: PathBuf,
    conf: PathBuf,
}

impl Podman {
    /// `None` (and says why) when podman is missing or cannot import.
    pub fn setup() -> Option<Podman> {
        if Command::new("podman").arg("--version").output().is_err() {
            println!("podman: not installed; skipped (apt-get install podman runc)");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("picolet-bench-podman-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("containers.conf");
        std::fs::write(
            &conf,
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n",
        )
        .unwrap();
        let podman = Podman { dir, conf };
        // A busybox rootfs tar, imported as localhost/bb:1.
        let rootfs = podman.dir.join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for app in ["sh", "sleep"] {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(app));
        }
        let tar = podman.dir.join("bb.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        let out = podman.run(&["import", tar.to_str().unwrap(), "localhost/bb:1"]);
        if !out.status.success() {
            println!(
                "podman import failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Some(podman)
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("podman")
            .args(args)
            .env("CONTAINERS_CONF", &self.conf)
            .output()
            .unwrap()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        self.run(&["rmi", "-f", "localhost/bb:1"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shims of the agent whose state dir is `state`: processes started as
/// `picolet shim <ns>/<pod>` with `PICOLET_SHIM_CONFIG=<state>/pods/…` in
/// their environment, or (older builds) `… shim --config <state>/pods/…`.
pub fn shim_pids(state: &Path) -> Vec<u32> {
    let needle = format!("{}/pods/", state.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let read = |f: &str| {
                std::fs::read(format!("/proc/{pid}/{f}"))
                    .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                    .unwrap_or_default()
            };
            let cmdline = read("cmdline");
            (cmdline.contains(" shim --config ") && cmdline.contains(&needle))
                || (cmdline.starts_with("picolet shim ")
                    && read("environ").contains(&format!("PICOLET_SHIM_CONFIG={needle}")))
        })
        .collect()
}
