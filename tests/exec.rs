//! `picolet exec` as kubectl's exec: without a terminal, streamed and
//! separate stdout and stderr without a size limit, stdin with `-i`,
//! kubectl's exit codes, and nothing left behind when the CLI goes away;
//! with `-it`, a real pty driven by the test through its own pty.

mod support;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn sleeper(a: &Agent, name: &str) {
    a.apply(
        &format!("{name}.yaml"),
        &sh_pod(name, "Always", "sleep 100000"),
    );
    a.wait_running(name, "main", 30);
}

fn cli(a: &Agent) -> Command {
    let mut c = Command::new(BIN);
    c.env("PICOLET_STATE_DIR", a.state());
    c
}

/// `picolet ARGS` with `input` on its stdin.
fn cli_in(a: &Agent, args: &[&str], input: &[u8]) -> Output {
    let mut child = cli(a)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn exec_streams_stdout_and_stderr_apart_takes_stdin_with_i_and_exits_as_kubectl() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    sleeper(&a, "ex");

    // 10.9 MB through stdout, byte for byte; nothing on stderr.
    let out = a.cli(&["exec", "ex", "--", "seq", "1", "1500000"]);
    let want: String = (1..=1_500_000).map(|i| format!("{i}\n")).collect();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), want.len());
    assert!(out.stdout == want.as_bytes(), "the output differs");
    assert_eq!(text(&out.stderr), "");

    // stderr stays on stderr.
    let script = "echo to-out; echo to-err >&2; echo more-out";
    let out = a.cli(&["exec", "ex", "--", "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "to-out\nmore-out\n");
    assert_eq!(text(&out.stderr), "to-err\n");

    // stdin with -i; without it the command reads EOF at once.
    let out = cli_in(&a, &["exec", "-i", "ex", "--", "cat"], b"hi\n");
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "hi\n".into())
    );
    let big = vec![b'x'; 3_000_000];
    let out = cli_in(&a, &["exec", "--stdin", "ex", "--", "wc", "-c"], &big);
    assert_eq!(text(&out.stdout).trim(), "3000000", "{}", text(&out.stderr));
    let out = cli_in(&a, &["exec", "ex", "--", "cat"], b"not for the command\n");
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), String::new())
    );

    // The command's own exit code, and kubectl's line about it.
    let out = a.cli(&["exec", "ex", "--", "sh", "-c", "echo ran; exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "ran\n");
    assert_eq!(text(&out.stderr), "command terminated with exit code 3\n");
    // 127 and 126, with the runtime's reason on its own line.
    let out = a.cli(&["exec", "ex", "--", "nosuchcmd"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{stderr}");
    assert_eq!(text(&out.stdout), "");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr:?}");
    assert!(lines[0].contains("nosuchcmd"), "{stderr}");
    assert_eq!(lines[1], "command terminated with exit code 127");
    assert!(stderr.ends_with('\n'));
    let out = a.cli(&["exec", "ex", "--", "sh", "-c", "echo x > /tmp/data"]);
    assert!(out.status.success());
    let out = a.cli(&["exec", "ex", "--", "/tmp/data"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(126), "{stderr}");
    assert!(stderr.contains("/tmp/data"), "{stderr}");
    assert!(stderr.ends_with("command terminated with exit code 126\n"));
    // No such pod or container: an error, exit 1.
    let out = a.cli(&["exec", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("\"nope\" not found"),
        "{}",
        text(&out.stderr)
    );
    let out = a.cli(&["exec", "ex", "-c", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("container nope"),
        "{}",
        text(&out.stderr)
    );
    // kubectl's -t rules: without -i it is ignored; with -i on a stdin
    // that is not a terminal, it says so and runs without one.
    for t in ["-t", "--tty"] {
        let out = a.cli(&["exec", t, "ex", "--", "tty"]);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert_eq!(text(&out.stdout), "not a tty\n", "{t}");
        assert_eq!(text(&out.stderr), "command terminated with exit code 1\n");
    }
    let out = cli_in(
        &a,
        &["exec", "-it", "ex", "--", "sh", "-c", "cat; tty"],
        b"in\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "in\nnot a tty\n");
    assert_eq!(
        text(&out.stderr),
        "Unable to use a TTY - input is not a terminal or the right kind of file\n\
         command terminated with exit code 1\n"
    );
    a.assert_one_thread();
}

/// The host PID of our pod's shim: the `picolet shim default/POD` process
/// whose config is in our state dir.
fn shim_pid(a: &Agent, pod: &str) -> i32 {
    let state = a.state().to_string_lossy().into_owned();
    let want_cmd = format!("picolet\0shim\0default/{pod}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            cmd == want_cmd.as_bytes() && text(&env).contains(&state)
        })
        .expect("the pod's shim")
}

fn fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn children(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default()
}

fn spawn_exec(a: &Agent, args: &[&str]) -> Child {
    cli(a)
        .arg("exec")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn exec_output_arrives_as_written_and_a_cli_that_goes_away_leaves_nothing_behind() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    sleeper(&a, "go");
    let shim = shim_pid(&a, "go");
    let agent = a.pid() as i32;
    let (agent_fds, shim_fds, shim_children) = (fds(agent), fds(shim), children(shim));

    // The first line arrives while the command still runs.
    let t0 = Instant::now();
    let mut child = spawn_exec(
        &a,
        &["go", "--", "sh", "-c", "echo first; sleep 5; echo second"],
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    assert!(
        t0.elapsed() < Duration::from_millis(4500),
        "{:?}",
        t0.elapsed()
    );
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "second\n");
    assert!(child.wait().unwrap().success());

    // Killed while its command writes: the command's next write fails
    // (SIGPIPE) and it ends.
    let script = "echo $$ > /tmp/w.pid; while true; do echo y; sleep 0.1; done";
    let mut child = spawn_exec(&a, &["go", "--", "sh", "-c", script]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "y\n");
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for(10, "the writer to end", || {
        let o = a.cli(&["exec", "go", "--", "sh", "-c", "kill -0 $(cat /tmp/w.pid)"]);
        (o.status.code() == Some(1)).then_some(())
    });

    // Its stdout closed (`| head -1`): the CLI stops at once, as a Unix
    // tool on SIGPIPE, and the command's next write fails in turn.
    let script = "echo $$ > /tmp/h.pid; while true; do echo y; sleep 0.1; done";
    let mut child = spawn_exec(&a, &["go", "--", "sh", "-c", script]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "y\n");
    drop(out);
    let status = wait_for(10, "the CLI to stop", || child.try_wait().unwrap());
    // 141, or killed by SIGPIPE itself if main restores its default.
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.code() == Some(141) || status.signal() == Some(libc::SIGPIPE),
        "{status:?}"
    );
    wait_for(10, "the writer to end", || {
        let o = a.cli(&["exec", "go", "--", "sh", "-c", "kill -0 $(cat /tmp/h.pid)"]);
        (o.status.code() == Some(1)).then_some(())
    });

    // Killed while its command reads stdin (-i): the command reads EOF.
    let script = "echo $$ > /tmp/r.pid; cat > /dev/null; echo eof > /tmp/r.done";
    let mut child = spawn_exec(&a, &["-i", "go", "--", "sh", "-c", script]);
    let _keep_stdin_open = child.stdin.take();
    wait_for(10, "the reader to start", || {
        a.cli(&["exec", "go", "--", "test", "-s", "/tmp/r.pid"])
            .status
            .success()
            .then_some(())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let done = wait_for(10, "the reader to see EOF", || {
        let o = a.cli(&["exec", "go", "--", "cat", "/tmp/r.done"]);
        o.status.success().then(|| text(&o.stdout))
    });
    assert_eq!(done, "eof\n");

    // Nothing left: the agent's and the shim's fds, the shim's children
    // (no exec process or entry left over), one agent thread.
    wait_for(10, "the agent's and the shim's fds back to before", || {
        (fds(agent) == agent_fds && fds(shim) == shim_fds).then_some(())
    });
    assert_eq!(children(shim), shim_children);
    a.assert_one_thread();

    // The shim goes away while a command runs: the CLI is told, instead of
    // waiting for an answer that cannot come.
    let mut child = spawn_exec(&a, &["go", "--", "sleep", "1000"]);
    std::thread::sleep(Duration::from_millis(500));
    let uid = a.pod("go").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    shutdown_shim(&a.state().join("pods").join(uid).join("shim.sock"));
    let status = wait_for(15, "the CLI to end", || child.try_wait().unwrap());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("shim went away"), "{stderr}");
    a.assert_one_thread();
}

/// What the test's pty master has read so far, filled by a thread.
struct Screen(std::sync::Arc<std::sync::Mutex<String>>);

impl Screen {
    fn new(master: std::os::fd::OwnedFd) -> Screen {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::File::from(master);
            let mut buf = [0; 4096];
            // EIO once the CLI and the test have closed the slave.
            while let Ok(n @ 1..) = f.read(&mut buf) {
                s.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Screen(seen)
    }

    /// Waits until `want` appears after byte `from`; returns the offset
    /// just past it.
    fn wait(&self, from: usize, want: &str, secs: u64) -> usize {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.0.lock().unwrap().clone();
            if let Some(i) = s.get(from..).and_then(|t| t.find(want)) {
                return from + i + want.len();
            }
            assert!(
                Instant::now() < deadline,
                "no {want:?} in {:?}",
                &s[from.min(s.len())..]
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn exec_it_is_a_real_terminal_with_its_size_resizes_ctrl_c_and_exit_code() {
    if !root_or_skip() {
        return;
    }
    use nix::sys::termios::{LocalFlags, tcgetattr};
    let a = Agent::start();
    sleeper(&a, "tt");
    let size = nix::pty::Winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).unwrap();
    let mut master = std::fs::File::from(pty.master.try_clone().unwrap());
    let screen = Screen::new(pty.master);
    let slave = pty.slave;
    let before = tcgetattr(&slave).unwrap();
    let mut child = cli(&a)
        .args(["exec", "-it", "tt", "--", "sh"])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()))
        .spawn()
        .unwrap();
    let mut type_in = |s: &str| master.write_all(s.as_bytes()).unwrap();

    // An interactive shell: a prompt, and our terminal in raw mode.
    let at = screen.wait(0, "# ", 20);
    let raw = tcgetattr(&slave).unwrap();
    assert!(!raw.local_flags.contains(LocalFlags::ICANON));
    assert!(!raw.local_flags.contains(LocalFlags::ISIG));
    // The container's own pty (its devpts), so `tty` names it.
    type_in("test -t 0 && test -t 2 && tty\r");
    let at = screen.wait(at, "\r\n/dev/pts/0\r\n", 10);
    type_in("stty size; echo $((6*7))\r");
    let at = screen.wait(at, "24 80\r\n42\r\n", 10);

    // A resize follows our terminal's size (SIGWINCH to the CLI).
    let ws = rustix::termios::Winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(&slave, ws).unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGWINCH).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    type_in("stty size\r");
    let at = screen.wait(at, "40 120\r\n", 10);

    // Ctrl-C is SIGINT for the foreground job, not for the CLI or the shell.
    type_in("sleep 30\r");
    let at = screen.wait(at, "sleep 30\r\n", 10);
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    type_in("\x03");
    let at = screen.wait(at, "# ", 5);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    type_in("echo alive-$((1+1))\r");
    let at = screen.wait(at, "alive-2\r\n", 10);
    assert!(child.try_wait().unwrap().is_none(), "the CLI still runs");

    // The exit code comes back, kubectl's line too; our modes are restored.
    type_in("exit 3\r");
    let status = wait_for(10, "the CLI to end", || child.try_wait().unwrap());
    assert_eq!(status.code(), Some(3));
    // After the restore: "\r\n" is our terminal's ONLCR again.
    screen.wait(at, "command terminated with exit code 3\r\n", 5);
    let after = tcgetattr(&slave).unwrap();
    assert_eq!(
        (
            after.input_flags,
            after.output_flags,
            after.local_flags,
            after.control_flags
        ),
        (
            before.input_flags,
            before.output_flags,
            before.local_flags,
            before.control_flags
        )
    );
    assert_eq!(after.control_chars, before.control_chars);

    // SIGTERM to the CLI mid-session: it dies by it (143) with our
    // terminal restored.
    let at = screen.0.lock().unwrap().len();
    let mut child = cli(&a)
        .args(["exec", "-it", "tt", "--", "sh"])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()))
        .spawn()
        .unwrap();
    screen.wait(at, "# ", 20);
    assert!(
        !tcgetattr(&slave)
            .unwrap()
            .local_flags
            .contains(LocalFlags::ICANON)
    );
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = wait_for(10, "the CLI to end", || child.try_wait().unwrap());
    assert_eq!(status.code(), Some(143));
    assert_eq!(tcgetattr(&slave).unwrap().local_flags, before.local_flags);

    // No such pod, no such command: the errors as without -t.
    let tty_exec = |args: &[&str]| {
        let at = screen.0.lock().unwrap().len();
        let status = cli(&a)
            .args(["exec", "-it"])
            .args(args)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()))
            .status()
            .unwrap();
        (status.code(), at)
    };
    let (code, at) = tty_exec(&["nope", "--", "sh"]);
    assert_eq!(code, Some(1));
    screen.wait(at, "pod \"nope\" not found", 5);
    let (code, at) = tty_exec(&["tt", "--", "nosuchcmd"]);
    assert_eq!(code, Some(127));
    let at = screen.wait(at, "nosuchcmd", 5);
    screen.wait(at, "command terminated with exit code 127\r\n", 5);
    assert_eq!(tcgetattr(&slave).unwrap().local_flags, before.local_flags);
    a.assert_one_thread();
}
