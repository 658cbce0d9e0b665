//! Helpers shared by the unit tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Says why a test returns early without checking anything. In CI
/// (`PICOLET_REQUIRE_ROOT` set, as `scripts/test.sh` does), where root,
/// the kernel features and the tools are all there, that is a failure:
/// CI must run every such test, never skip it. Returns `true` otherwise.
///
/// Not for tests that cannot run under qemu-user: CI's aarch64 step skips
/// those on purpose ([`crate::check::qemu_user`]).
pub fn cannot_run(why: &str) -> bool {
    crate::fleet::test_broker::skip_or_fail::<()>(why).is_none()
}

/// Whether this process runs as root (effective uid 0). The one place
/// tests ask; a test that needs root goes through [`needs_root`].
pub fn is_root() -> bool {
    crate::sys::process::is_root()
}

/// `true` when the test must return because it is not root: says so
/// through [`cannot_run`] (which fails the test under
/// `PICOLET_REQUIRE_ROOT`). `what` names what needs root.
pub fn needs_root(what: &str) -> bool {
    !is_root() && cannot_run(&format!("{what} needs root"))
}

/// Adds `input`, an input a parser was given during a test, to the fuzz
/// corpus of `target` when `PICOLET_FUZZ_CORPUS` names a directory
/// (`scripts/fuzz.sh` sets it): the parsers call this under `cfg(test)`,
/// so the corpus is exactly what the unit tests feed them. Files are
/// named by a hash of their bytes; inputs over 1 MiB are left out.
pub fn fuzz_seed(target: &str, input: &[u8]) {
    let Some(dir) = std::env::var_os("PICOLET_FUZZ_CORPUS") else {
        return;
    };
    if input.is_empty() || input.len() > 1 << 20 {
        return;
    }
    // FNV-1a, 64 bits: stable names, so reruns do not grow the corpus.
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let dir = Path::new(&dir).join(target);
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{hash:016x}")), input);
}

/// Writes `#!/bin/sh\n<body>` to `dir/name`, mode 0755, and returns its path.
///
/// The file is written by a child `sh`, not by the test's own process.
/// Tests run on many threads: had this process held the file open for
/// writing, a `fork` on another thread at that moment would inherit the
/// descriptor, and exec'ing the script would fail with ETXTBSY ("Text file
/// busy") until that child exec'd. A descriptor in a child shell is never
/// inherited by our forks.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    let mut sh = Command::new("/bin/sh")
        .args(["-c", "cat > \"$1\" && chmod 0755 \"$1\"", "sh"])
        .arg(&path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn /bin/sh");
    let mut stdin = sh.stdin.take().unwrap();
    stdin
        .write_all(format!("#!/bin/sh\n{body}\n").as_bytes())
        .unwrap();
    drop(stdin);
    assert!(sh.wait().unwrap().success(), "writing {}", path.display());
    path
}

/// Copies an executable with `cp`, for the same reason as [`script`]: the
/// copy's write descriptor lives in the child, so a later exec of `to`
/// cannot fail with ETXTBSY because of a concurrent fork in this process.
pub fn copy_executable(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg(from)
        .arg(to)
        .status()
        .expect("spawn cp")
        .success();
    assert!(ok, "cp {} {}", from.display(), to.display());
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Writes and runs `rounds` scripts while another thread forks
    /// continuously; returns how many runs failed with ETXTBSY.
    fn busy_runs(rounds: usize, write: fn(&std::path::Path, &str) -> std::path::PathBuf) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let _ = Command::new("/bin/true").status();
                }
            });
            let mut busy = 0;
            for i in 0..rounds {
                let p = write(dir.path(), &format!("s{i}"));
                match Command::new(&p).status() {
                    Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => busy += 1,
                    r => assert!(r.unwrap().success()),
                }
            }
            stop.store(true, Ordering::Relaxed);
            busy
        })
    }

    #[test]
    fn a_script_runs_at_once_while_another_thread_forks() {
        let busy = busy_runs(200, |dir, name| super::script(dir, name, "exit 0"));
        assert_eq!(busy, 0, "ETXTBSY {busy} times out of 200");
    }
}
