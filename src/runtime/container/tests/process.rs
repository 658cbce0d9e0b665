//! User, capabilities, start errors, exec and cgroup of a container.

use super::*;

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
        crate::testutil::cannot_run("cgroup: no cgroup2 mount");
        return;
    };
    let name = format!("picolet-ct-test-{}", std::process::id());
    let cg = root.join(&name);
    if fs::create_dir(&cg).is_err() {
        crate::testutil::cannot_run(&format!("cgroup: cannot create {}", cg.display()));
        return;
    }
    let mut cfg = config(&fx, "grep '^0::' /proc/self/cgroup");
    cfg.cgroup = Some(cg.clone());
    let out = run(&pod(false), &cfg);
    let _ = fs::remove_dir(&cg);
    assert_eq!(out, format!("exit 0\n0::/{name}\n"));
}

#[test]
fn exec_in_holds_no_fds_forwards_sigterm_and_dies_by_the_same_signal() {
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
                // exec_in returns at EOF on the error pipe: the intermediate
                // has closed it with every fd but the command's stdio, and
                // those too. It never execs, so anything it kept would stay
                // open for the command's whole life.
                let open = fs::read_dir(format!("/proc/{epid}/fd")).unwrap().count();
                // SAFETY: signalling the intermediate we started.
                unsafe { libc::kill(epid, libc::SIGTERM) };
                let status = reap(epid);
                // EOF proves the command (holding the pipe) is gone too.
                let rest = read_all(erd);
                format!(
                    "{open} fds; signal {} output {rest:?}",
                    libc::WTERMSIG(status)
                )
            }
            Err(e) => format!("exec_in: {e}"),
        };
        // SAFETY: killing the container we started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        reap(pid);
        result
    });
    assert_eq!(out, format!("0 fds; signal {} output \"\"", libc::SIGTERM));
}
