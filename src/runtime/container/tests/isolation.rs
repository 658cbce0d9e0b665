//! Namespaces, kernel-path protection and signal state of a new container.

use super::*;

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
