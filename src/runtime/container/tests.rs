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
use crate::runtime::security::{DEFAULT_CAPS, capability_set};
use crate::runtime::shim::proto::{Mount, MountKind, Rootfs};

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
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
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
    if let Some(why) = missing_prerequisite() {
        eprintln!("{test}: skipped: {why}");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer");
    fs::create_dir_all(layer.join("bin")).unwrap();
    fs::create_dir_all(layer.join("etc")).unwrap();
    fs::create_dir_all(layer.join("tmp")).unwrap();
    fs::copy("/bin/busybox", layer.join("bin/busybox")).unwrap();
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
        capabilities: DEFAULT_CAPS.to_vec(),
        no_new_privs: false,
        privileged: false,
        mounts: Vec::new(),
        cgroup: None,
        log_path: PathBuf::from("/dev/null"),
        log_max_bytes: 0,
        log_max_files: 1,
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

#[test]
fn container_is_pid_1_of_its_own_pid_namespace_and_sees_only_itself() {
    let Some(fx) = fixture("pid_1") else { return };
    let out = run(&pod(false), &config(&fx, "echo $$; echo /proc/[0-9]*"));
    assert_eq!(out, "exit 0\n1\n/proc/1\n");
}

#[test]
fn shared_pid_namespace_shows_the_shim_as_pid_1() {
    let Some(fx) = fixture("share_pid") else {
        return;
    };
    let cfg = config(&fx, "echo $$; echo /proc/[0-9]*");
    let out = in_child(|| {
        // SAFETY: unshare in a single-threaded child; affects its children.
        if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
            return "unshare failed".into();
        }
        // The "shim": PID 1 of the pod's PID namespace.
        in_child(|| run_here(&pod(true), &cfg))
    });
    assert_eq!(out, "exit 0\n2\n/proc/1 /proc/2\n");
}

#[test]
fn container_sees_the_pod_hostname_of_the_shims_uts_namespace() {
    let Some(fx) = fixture("hostname") else {
        return;
    };
    let cfg = config(&fx, "hostname");
    let out = in_child(|| {
        // SAFETY: a new UTS namespace for this forked child only.
        if unsafe { libc::unshare(libc::CLONE_NEWUTS) } != 0 {
            return "unshare failed".into();
        }
        let name = b"pod-a";
        // SAFETY: setting the hostname from a valid buffer in our own UTS ns.
        if unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) } != 0 {
            return "sethostname failed".into();
        }
        run_here(&pod(false), &cfg)
    });
    assert_eq!(out, "exit 0\npod-a\n");
}

const MOUNT_REPORT: &str = "cat /proc/timer_list 2>/dev/null | wc -c; find /proc/acpi /sys/firmware -mindepth 1 2>/dev/null | wc -l; \
    awk '$5 ~ /^\\/(proc|sys)/ {print $5, substr($6,1,2)}' /proc/self/mountinfo";

/// The masked paths this kernel has (a file, a /proc dir, a /sys dir).
fn masked_on_this_host() -> Vec<&'static str> {
    [
        "/proc/kcore",
        "/proc/timer_list",
        "/proc/keys",
        "/proc/acpi",
        "/sys/firmware",
    ]
    .into_iter()
    .filter(|p| Path::new(p).exists())
    .collect()
}

#[test]
fn kernel_paths_are_masked_and_read_only_for_unprivileged_containers() {
    let Some(fx) = fixture("masks") else { return };
    let out = run(&pod(false), &config(&fx, MOUNT_REPORT));
    assert!(
        out.starts_with("exit 0\n0\n0\n"),
        "masked contents are empty: {out}"
    );
    for line in [
        "/proc rw",
        "/sys ro",
        "/proc/sys ro",
        "/proc/irq ro",
        "/proc/bus ro",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in {out}");
    }
    for path in masked_on_this_host() {
        let masked = out
            .lines()
            .any(|l| l.strip_suffix(" rw").or(l.strip_suffix(" ro")) == Some(path));
        assert!(masked, "{path} not masked in {out}");
    }
}

#[test]
fn privileged_containers_get_writable_sys_no_masks_and_all_capabilities() {
    let Some(fx) = fixture("privileged") else {
        return;
    };
    let mut cfg = config(
        &fx,
        &format!("{MOUNT_REPORT}; grep CapEff /proc/self/status"),
    );
    cfg.privileged = true;
    cfg.capabilities = capability_set(&[], &[], true).unwrap();
    let out = run(&pod(false), &cfg);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "exit 0", "{out}");
    assert_ne!(lines[1], "0", "/proc/timer_list readable: {out}");
    assert_eq!(
        &lines[3..5],
        ["/proc rw", "/sys rw"],
        "nothing else mounted: {out}"
    );
    let all = cfg.capabilities.iter().fold(0u64, |m, c| m | 1 << c);
    assert_eq!(lines[5], format!("CapEff:\t{all:016x}"), "{out}");
}

#[test]
fn writes_to_the_root_land_in_the_upper_dir() {
    let Some(fx) = fixture("upper") else { return };
    let out = run(
        &pod(false),
        &config(&fx, "echo hi > /newfile && cat /newfile"),
    );
    assert_eq!(out, "exit 0\nhi\n");
    assert_eq!(
        fs::read_to_string(fx.upper().join("newfile")).unwrap(),
        "hi\n"
    );
    assert!(!fx.layer().join("newfile").exists());
}

#[test]
fn read_only_root_filesystem_refuses_writes_but_mounts_still_work() {
    let Some(fx) = fixture("read_only") else {
        return;
    };
    let script = "echo x > /newfile || echo refused; echo y > /scratch/f && cat /scratch/f; touch /tmp/t || echo tmp-refused";
    let mut cfg = config(&fx, script);
    cfg.rootfs.upper = None;
    cfg.mounts.push(Mount {
        destination: "/scratch".into(),
        kind: MountKind::Tmpfs { size: 1 << 20 },
        read_only: false,
    });
    let out = run(&pod(false), &cfg);
    assert!(out.starts_with("exit 0\n"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(
        out.contains("refused\ny\n") && out.contains("tmp-refused"),
        "{out}"
    );
    assert!(!fx.layer().join("proc").exists() && !fx.layer().join("scratch").exists());
}

#[test]
fn bind_and_tmpfs_mounts_appear_at_their_destinations() {
    let Some(fx) = fixture("mounts") else { return };
    let data = fx.host("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("data.txt"), "from-host\n").unwrap();
    fs::write(fx.host("app.conf"), "conf\n").unwrap();
    let script = "cat /data/data.txt; echo w > /data/new; cat /etc/app.conf; \
        (echo z > /ro/x) 2>/dev/null && echo ro-writable || echo ro-refused; \
        grep ' /mem ' /proc/mounts | cut -d' ' -f3,4";
    let mut cfg = config(&fx, script);
    let bind = |dest: &str, source: PathBuf, read_only| Mount {
        destination: dest.into(),
        kind: MountKind::Bind { source },
        read_only,
    };
    cfg.mounts = vec![
        bind("/data", data.clone(), false),
        bind("/etc/app.conf", fx.host("app.conf"), false),
        bind("/ro", data.clone(), true),
        Mount {
            destination: "/mem".into(),
            kind: MountKind::Tmpfs { size: 1 << 20 },
            read_only: false,
        },
    ];
    let out = run(&pod(false), &cfg);
    assert_eq!(
        out,
        "exit 0\nfrom-host\nconf\nro-refused\ntmpfs rw,nosuid,nodev,relatime,size=1024k\n"
    );
    assert_eq!(fs::read_to_string(data.join("new")).unwrap(), "w\n");
    assert!(
        fx.upper().join("etc/app.conf").is_file(),
        "file mount point created in the upper dir"
    );
}

#[test]
fn mount_destinations_cannot_escape_the_rootfs_through_image_symlinks() {
    let Some(fx) = fixture("escape") else { return };
    let name = format!("picolet-escape-{}", std::process::id());
    let mut cfg = config(
        &fx,
        &format!("ls /{name}; grep -c ' /{name}2 ' /proc/mounts"),
    );
    fs::write(fx.host("secret"), "x").unwrap();
    cfg.mounts = vec![
        Mount {
            destination: format!("/evil/{name}"),
            kind: MountKind::Bind {
                source: fx.dir.path().to_path_buf(),
            },
            read_only: true,
        },
        Mount {
            destination: format!("/up/../{name}2"),
            kind: MountKind::Tmpfs { size: 0 },
            read_only: false,
        },
    ];
    let out = run(&pod(false), &cfg);
    assert!(
        out.starts_with("exit 0\n") && out.contains("secret\n") && out.ends_with("1\n"),
        "{out}"
    );
    assert!(
        !Path::new("/").join(&name).exists() && !Path::new("/").join(format!("{name}2")).exists()
    );
    assert!(fx.upper().join(&name).is_dir());
}

#[test]
fn non_root_user_gets_uid_1000_and_only_a_bounding_set() {
    let Some(fx) = fixture("non_root") else {
        return;
    };
    let mut cfg = config(
        &fx,
        "id -u; id -g; grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status",
    );
    cfg.uid = 1000;
    cfg.gid = 1000;
    let out = run(&pod(false), &cfg);
    assert_eq!(
        out,
        "exit 0\n1000\n1000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\n"
    );
}

#[test]
fn root_gets_exactly_the_default_capabilities_and_no_new_privs() {
    let Some(fx) = fixture("root_caps") else {
        return;
    };
    let mut cfg = config(&fx, "grep -E '^(Cap|NoNewPrivs)' /proc/self/status");
    cfg.no_new_privs = true;
    let out = run(&pod(false), &cfg);
    assert_eq!(
        out,
        "exit 0\nCapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\n\
         CapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n"
    );
}

#[test]
fn container_gets_dev_nodes_env_and_a_created_working_directory() {
    let Some(fx) = fixture("dev") else { return };
    let script = "pwd; echo $GREETING; echo x > /dev/null && head -c 4 /dev/zero | wc -c; \
        for l in ptmx fd stderr; do readlink /dev/$l; done; test -c /dev/urandom && test -c /dev/tty && echo chars; \
        awk '$2 ~ /^\\/dev/ {print $2, $3}' /proc/mounts; umask";
    let mut cfg = config(&fx, script);
    cfg.cwd = "/work/here".into();
    let out = run(&pod(false), &cfg);
    assert_eq!(
        out,
        "exit 0\n/work/here\nhello\n4\npts/ptmx\n/proc/self/fd\n/proc/self/fd/2\nchars\n\
         /dev tmpfs\n/dev/pts devpts\n/dev/shm tmpfs\n/dev/mqueue mqueue\n0022\n"
    );
}

#[test]
fn missing_executable_is_a_start_error_and_setup_failures_are_create_errors() {
    let Some(fx) = fixture("missing") else { return };
    let mut cfg = config(&fx, "");
    cfg.argv = vec!["nope".into()];
    let out = run(&pod(false), &cfg);
    assert_eq!(
        out,
        "error StartError: exec: \"nope\": executable file not found in $PATH"
    );
    cfg.argv = vec!["/bin/nope".into()];
    let out = run(&pod(false), &cfg);
    assert_eq!(
        out,
        "error StartError: exec: \"/bin/nope\": no such file or directory"
    );
    cfg.argv = vec!["sh".into()];
    cfg.mounts.push(Mount {
        destination: "/x".into(),
        kind: MountKind::Bind {
            source: fx.host("does-not-exist"),
        },
        read_only: false,
    });
    let out = run(&pod(false), &cfg);
    assert!(
        out.starts_with("error CreateContainerError: open bind mount source"),
        "{out}"
    );
    assert!(
        out.contains("does-not-exist") && out.ends_with("no such file or directory"),
        "{out}"
    );
}

#[test]
fn exec_in_runs_in_the_containers_namespaces_and_returns_the_exit_code() {
    let Some(fx) = fixture("exec_in") else { return };
    let mut cfg = config(&fx, "echo started; exec sleep 60");
    cfg.cwd = "/tmp".into();
    cfg.uid = 1000;
    cfg.gid = 1000;
    let out = in_child(|| {
        let (rd, stdio) = output_pipe();
        let pod = pod(false);
        let pid = match spawn(&pod, &cfg, stdio) {
            Ok(pid) => pid,
            Err(e) => return format!("spawn: {e}"),
        };
        let mut first = [0u8; 8];
        let _ = fs::File::from(rd).read(&mut first);
        let script = "cat /marker; pwd; id -u; echo /proc/[0-9]*; exit 3";
        let argv: Vec<String> = vec!["sh".into(), "-c".into(), script.into()];
        let (erd, estdio) = output_pipe();
        let result = match exec_in(&pod, &cfg, pid, &argv, estdio) {
            Ok(epid) => {
                let output = read_all(erd);
                format!("exit {}\n{output}", exit_code(reap(epid)))
            }
            Err(e) => format!("exec_in: {e}"),
        };
        let (_, estdio) = output_pipe();
        let missing = match exec_in(&pod, &cfg, pid, &["nope".to_string()], estdio) {
            Ok(_) => "started?".to_string(),
            Err(e) => format!("{}: {e}", e.reason()),
        };
        // SAFETY: killing the container we started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        reap(pid);
        format!("{result}{missing}")
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..4],
        ["exit 3", "inside-image", "/tmp", "1000"],
        "{out}"
    );
    assert!(lines[4].starts_with("/proc/1 /proc/"), "{out}");
    assert_eq!(
        lines[5],
        "StartError: exec: \"nope\": executable file not found in $PATH"
    );
}

#[test]
fn container_joins_its_cgroup_before_anything_else() {
    let Some(fx) = fixture("cgroup") else { return };
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let Some(root) = mountinfo.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let sep = f.iter().position(|x| *x == "-")?;
        (f.get(sep + 1) == Some(&"cgroup2")).then(|| PathBuf::from(f[4]))
    }) else {
        eprintln!("cgroup: skipped: no cgroup2 mount");
        return;
    };
    let name = format!("picolet-ct-test-{}", std::process::id());
    let cg = root.join(&name);
    if fs::create_dir(&cg).is_err() {
        eprintln!("cgroup: skipped: cannot create {}", cg.display());
        return;
    }
    let mut cfg = config(&fx, "grep '^0::' /proc/self/cgroup");
    cfg.cgroup = Some(cg.clone());
    let out = run(&pod(false), &cfg);
    let _ = fs::remove_dir(&cg);
    assert_eq!(out, format!("exit 0\n0::/{name}\n"));
}

#[test]
fn container_starts_with_default_signal_dispositions_and_an_empty_mask() {
    let Some(fx) = fixture("signals") else { return };
    let cfg = config(&fx, "exec grep -E '^Sig(Blk|Ign)' /proc/self/status");
    let out = in_child(|| {
        // The shim blocks signals for its signalfd and ignores SIGPIPE.
        // SAFETY: an all-zero sigset_t is valid storage for sigfillset.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: filling a set we own.
        unsafe { libc::sigfillset(&mut set) };
        // SAFETY: blocking signals in this forked child only.
        unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        for sig in [libc::SIGPIPE, libc::SIGINT] {
            // SAFETY: ignoring a signal in this forked child only.
            unsafe { libc::signal(sig, libc::SIG_IGN) };
        }
        run_here(&pod(false), &cfg)
    });
    assert_eq!(
        out,
        "exit 0\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    );
}

#[test]
fn exec_in_forwards_sigterm_and_dies_by_the_same_signal() {
    let Some(fx) = fixture("exec_signal") else {
        return;
    };
    let cfg = config(&fx, "exec sleep 60");
    let out = in_child(|| {
        let pod = pod(false);
        let (_rd, stdio) = output_pipe();
        let pid = match spawn(&pod, &cfg, stdio) {
            Ok(pid) => pid,
            Err(e) => return format!("spawn: {e}"),
        };
        let (erd, estdio) = output_pipe();
        let argv: Vec<String> = vec!["sleep".into(), "60".into()];
        let result = match exec_in(&pod, &cfg, pid, &argv, estdio) {
            Ok(epid) => {
                // SAFETY: signalling the intermediate we started.
                unsafe { libc::kill(epid, libc::SIGTERM) };
                let status = reap(epid);
                // EOF proves the command (holding the pipe) is gone too.
                let rest = read_all(erd);
                format!("signal {} output {rest:?}", libc::WTERMSIG(status))
            }
            Err(e) => format!("exec_in: {e}"),
        };
        // SAFETY: killing the container we started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        reap(pid);
        result
    });
    assert_eq!(out, format!("signal {} output \"\"", libc::SIGTERM));
}

#[test]
fn many_long_layer_paths_are_mounted_relative_to_their_common_parent() {
    let Some(fx) = fixture("many_layers") else {
        return;
    };
    let mut cfg = config(&fx, "cat /top; ls /bin/busybox");
    let mut layers = Vec::new();
    for i in 0..40 {
        let layer = fx.host("layers").join(format!("{i:03}-{}", "l".repeat(80)));
        fs::create_dir_all(&layer).unwrap();
        fs::write(layer.join("top"), format!("{i}\n")).unwrap();
        layers.push(layer);
    }
    layers.push(fx.layer());
    let absolute: usize = layers.iter().map(|l| l.as_os_str().len() + 1).sum();
    assert!(
        absolute > 4096,
        "the test needs a lowerdir longer than a page"
    );
    cfg.rootfs.layers = layers;
    let out = run(&pod(false), &cfg);
    assert_eq!(out, "exit 0\n0\n/bin/busybox\n");
}
