//! Test fixtures: a pod directory with a busybox rootfs, a shim process
//! started from this test binary, and an agent-side client.

use super::*;

/// Environment variable naming the config file for [`super::shim_process_entry`].
pub const ENTRY_ENV: &str = "PICOLET_TEST_SHIM_CONFIG";
const RECV_TIMEOUT: Duration = Duration::from_secs(20);

/// A tempdir holding the pod directory, the rootfs and the logs.
pub struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// The one image layer: busybox and its applets.
    layer: PathBuf,
    pub pod: PodConfig,
}

impl Fixture {
    /// `None` (after saying why) when the test cannot run here.
    pub fn new(share_pid: bool) -> Option<Fixture> {
        if crate::testutil::needs_root("the shim tests (namespaces)") {
            return None;
        }
        if let Some(why) = crate::check::qemu_user() {
            eprintln!(
                "skipped: {why}: the shim is this test binary re-executed, and the kernel \
                 cannot exec an aarch64 binary without binfmt_misc"
            );
            return None;
        }
        if !Path::new("/bin/busybox").exists() {
            crate::testutil::cannot_run("the shim tests need /bin/busybox for the rootfs");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let layer = root.join("layer");
        std::fs::create_dir_all(layer.join("bin")).unwrap();
        // For a spawner that mounts no /dev: sh opens /dev/null for `&` jobs.
        std::fs::create_dir_all(layer.join("dev")).unwrap();
        std::fs::write(layer.join("dev/null"), b"").unwrap();
        crate::testutil::copy_executable(Path::new("/bin/busybox"), &layer.join("bin/busybox"));
        for applet in ["sh", "sleep", "seq", "hostname", "ip", "true"] {
            std::os::unix::fs::symlink("busybox", layer.join("bin").join(applet)).unwrap();
        }
        let pod_dir = root.join("pod");
        std::fs::create_dir(&pod_dir).unwrap();
        let pod = PodConfig {
            uid: "0b7e-uid".into(),
            name: "default/test".into(),
            pod_dir,
            hostname: "testpod".into(),
            host_network: false,
            share_pid,
            cgroup: None,
            shim_log: root.join("run/shim.log"),
            sysctls: vec![],
        };
        Some(Fixture {
            _dir: dir,
            root,
            layer,
            pod,
        })
    }

    pub fn socket(&self) -> PathBuf {
        self.pod.pod_dir.join(super::super::SOCKET_NAME)
    }

    /// A container of the busybox image, with its own upper, work and target dirs.
    pub fn container(&self, name: &str, instance: u64, argv: &[&str]) -> ContainerConfig {
        let dirs = self.root.join(format!("containers/{name}-{instance}"));
        for d in ["upper", "work", "target"] {
            std::fs::create_dir_all(dirs.join(d)).unwrap();
        }
        ContainerConfig {
            name: name.into(),
            instance,
            rootfs: Rootfs {
                layers: vec![self.layer.clone()],
                upper: Some((dirs.join("upper"), dirs.join("work"))),
                target: dirs.join("target"),
            },
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            capabilities: vec![],
            no_new_privs: false,
            seccomp: false,
            groups: vec![],
            privileged: false,
            mounts: vec![],
            cgroup: None,
            log_path: self.root.join(format!("logs/{name}/{instance}.log")),
            log_max_bytes: 8 << 20,
            log_max_files: 2,
            oom_score_adj: None,
            stop_signal: None,
        }
    }

    /// Starts a shim like the agent does, connects, and reads its Hello and Report.
    pub fn start(&self) -> (Shim, Agent) {
        let config = self.root.join("shim.json");
        let stderr = self.root.join("shim-start.err");
        std::fs::write(&config, serde_json::to_vec(&self.pod).unwrap()).unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "runtime::shim::tests::shim_process_entry",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENTRY_ENV, &config)
            // glibc's fixed mmap threshold, as musl (the shipped build)
            // behaves: a freed block of 128 KiB or more goes back to the
            // kernel at once. Without it, glibc raises the threshold after
            // the first large free and keeps up to twice that in the heap
            // of the libtest thread this shim runs on, so "freed" could not
            // be told from "kept" by the RSS.
            .env("MALLOC_MMAP_THRESHOLD_", "131072")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            // A file, not a pipe: waiting for a pipe's EOF would also wait
            // for any process that inherited its write end.
            .stderr(std::fs::File::create(&stderr).unwrap())
            .status()
            .unwrap();
        assert!(
            out.success(),
            "shim did not start: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
        let mut agent = Agent::connect(&self.socket());
        let shim = match agent.recv() {
            Event::Hello {
                pid,
                start_time,
                uid,
            } => {
                assert_eq!(uid, self.pod.uid);
                Shim {
                    pid,
                    start_time,
                    live: true,
                }
            }
            other => panic!("expected Hello, got {other:?}"),
        };
        assert_eq!(agent.report(), vec![], "a new shim holds no containers");
        (shim, agent)
    }

    /// Connects again; checks the Hello (the Report is left to the caller).
    pub fn connect(&self, shim: &Shim) -> Agent {
        let mut agent = Agent::connect(&self.socket());
        match agent.recv() {
            Event::Hello { pid, .. } => assert_eq!(pid, shim.pid),
            other => panic!("expected Hello, got {other:?}"),
        }
        agent
    }
}

/// A started shim; SIGKILLed on drop unless it was shut down.
pub struct Shim {
    pub pid: i32,
    pub start_time: u64,
    live: bool,
}

impl Shim {
    /// The shim has exited by itself.
    pub fn forget(mut self) {
        self.live = false;
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        // Only the process this test started (same PID and start time).
        if self.live && proc_start_time(self.pid) == Some(self.start_time) {
            // SAFETY: kill has no memory effects; the PID is our shim's.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

/// The agent's end of the socket.
pub struct Agent {
    reader: BufReader<UnixStream>,
}

impl Agent {
    fn connect(path: &Path) -> Agent {
        let stream = UnixStream::connect(path).unwrap();
        stream.set_read_timeout(Some(RECV_TIMEOUT)).unwrap();
        Agent {
            reader: BufReader::new(stream),
        }
    }

    pub fn into_stream(self) -> UnixStream {
        self.reader.into_inner()
    }

    pub fn send(&mut self, request: &Request) {
        let mut line = serde_json::to_vec(request).unwrap();
        line.push(b'\n');
        self.reader.get_mut().write_all(&line).unwrap();
    }

    /// Sends `request` with `fds` attached (`SCM_RIGHTS`), as the agent
    /// forwards an exec's stdio.
    pub fn send_with_fds(&mut self, request: &Request, fds: &[std::os::fd::BorrowedFd<'_>]) {
        let mut line = serde_json::to_vec(request).unwrap();
        line.push(b'\n');
        let stream = self.reader.get_mut();
        let n =
            crate::sys::net::send_with_fds(std::os::fd::AsFd::as_fd(&*stream), &line, fds).unwrap();
        stream.write_all(&line[n..]).unwrap();
    }

    pub fn recv(&mut self) -> Event {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("event within 20 s");
        assert!(n > 0, "shim closed the connection");
        serde_json::from_str(&line).unwrap()
    }

    /// The connection was closed by the shim.
    pub fn at_eof(&mut self) -> bool {
        let mut line = String::new();
        matches!(self.reader.read_line(&mut line), Ok(0))
    }

    pub fn report(&mut self) -> Vec<ContainerReport> {
        match self.recv() {
            Event::Report { containers } => containers,
            other => panic!("expected Report, got {other:?}"),
        }
    }

    /// Waits for `Started`; returns the PID and start time.
    pub fn started(&mut self, name: &str, instance: u64) -> (i32, i64) {
        match self.recv() {
            Event::Started {
                name: n,
                instance: i,
                pid,
                started_at_ns,
            } if n == name && i == instance => (pid, started_at_ns),
            other => panic!("expected Started {name}/{instance}, got {other:?}"),
        }
    }

    pub fn exited(&mut self, name: &str, instance: u64) -> Exit {
        match self.recv() {
            Event::Exited {
                name: n,
                instance: i,
                exit,
                ..
            } if n == name && i == instance => exit,
            other => panic!("expected Exited {name}/{instance}, got {other:?}"),
        }
    }

    pub fn exec(
        &mut self,
        id: u64,
        name: &str,
        argv: &[&str],
        timeout_ms: u64,
    ) -> (i32, bool, String) {
        self.send(&Request::Exec {
            id,
            name: name.into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            timeout_ms,
            stdio: ExecStdio::Capture,
        });
        match self.recv() {
            Event::ExecDone {
                id: got,
                exit_code,
                timed_out,
                output,
                ..
            } if got == id => (exit_code, timed_out, output),
            other => panic!("expected ExecDone {id}, got {other:?}"),
        }
    }

    /// Sends `Shutdown`, skips the remaining events and waits for the shim to exit.
    pub fn shutdown(mut self, shim: &Shim) {
        self.send(&Request::Shutdown);
        // Every read is bounded by the socket's read timeout: an error means
        // the shim neither sent anything nor closed the connection in time.
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) => panic!(
                    "shim {} did not close the connection after Shutdown: {e}",
                    shim.pid
                ),
            }
        }
        assert!(wait_gone(shim.pid), "shim {} still running", shim.pid);
    }
}

/// Field 22 of `/proc/<pid>/stat`.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    super::super::sys::parse_stat(&stat).map(|(_, t)| t)
}

/// The namespace a process is in, as `readlink /proc/<pid>/ns/<ns>` shows it.
pub fn ns_of(pid: &str, ns: &str) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap()
}

/// A numeric field of `/proc/<pid>/status` (`kB` values in kB).
pub fn status_kb(pid: i32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// State letter of a process, `None` if it is gone.
fn state_of(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// Waits up to 5 s for a process to be gone or a zombie (whose parent,
/// outside this test, may never reap it).
pub fn wait_gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match state_of(pid) {
            None | Some('Z') | Some('X') => return true,
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    false
}

/// `(pid, state)` of every process whose parent is `parent`.
pub fn children_of(parent: i32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut rest = stat[close + 2..].split(' ');
        let state = rest.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if rest.next().and_then(|p| p.parse::<i32>().ok()) == Some(parent) {
            out.push((pid, state));
        }
    }
    out
}

/// A cgroup v2 mount this process may create children in.
pub fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (_, dir, kind) = (f.next()?, f.next()?, f.next()?);
            (kind == "cgroup2").then(|| PathBuf::from(dir))
        })
        .find(|d| d.join("cgroup.procs").exists())
}
