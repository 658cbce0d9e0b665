//! Removing directory trees without blocking the agent's thread.
//!
//! A removed pod's directory, or an exited container instance's rootfs
//! upper dir, can hold any number of files: `remove_dir_all` on the reactor
//! would stall probes, the CLI and the broker session for as long as it
//! takes. Instead the tree is renamed into `<state-dir>/trash/` (one
//! `rename(2)`: the name is free again at once) and a child process,
//! `picolet rmtree DIR`, deletes it while the reactor reads nothing but its
//! exit. Whatever a crash leaves in the trash is deleted at the next start.

use crate::reactor;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// The program run as `PROGRAM rmtree DIR`.
const PROGRAM: &str = "/proc/self/exe";

static SEQ: AtomicU64 = AtomicU64::new(0);

/// `<state_dir>/trash`.
pub fn trash_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("trash")
}

/// Moves `dir` into the trash and starts deleting it; where it cannot be
/// renamed (another filesystem), deletes it in place, also in a child. A
/// missing `dir` is not an error; only creating the trash can fail. Call on
/// the reactor.
pub fn discard(state_dir: &Path, dir: &Path) -> io::Result<()> {
    discard_with(Path::new(PROGRAM), state_dir, dir)
}

/// [`discard`] with the program that removes trees given (tests).
pub fn discard_with(program: &Path, state_dir: &Path, dir: &Path) -> io::Result<()> {
    let trash = trash_dir(state_dir);
    std::fs::create_dir_all(&trash)?;
    let name = format!(
        "{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let target = trash.join(name);
    match std::fs::rename(dir, &target) {
        Ok(()) => remove_later(program.to_path_buf(), target),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        // Another filesystem mounted in between (EXDEV), say: delete it
        // where it is, still off the thread.
        Err(e) => {
            log::debug!("trash: rename {}: {e}; removing in place", dir.display());
            remove_later(program.to_path_buf(), dir.to_path_buf());
        }
    }
    Ok(())
}

/// Starts deleting whatever an earlier agent left in the trash.
pub fn empty_at_start(state_dir: &Path) {
    let Ok(rd) = std::fs::read_dir(trash_dir(state_dir)) else {
        return;
    };
    for e in rd.flatten() {
        remove_later(PathBuf::from(PROGRAM), e.path());
    }
}

/// Starts deleting `path`, a tree already moved into the trash by another
/// process (the image GC child), with `program rmtree`.
pub fn remove_moved(program: &Path, path: &Path) {
    remove_later(program.to_path_buf(), path.to_path_buf());
}

fn remove_later(program: PathBuf, path: PathBuf) {
    reactor::spawn(async move {
        let mut cmd = Command::new(&program);
        cmd.arg("rmtree").arg(&path);
        match reactor::process::output(&mut cmd, 4096).await {
            Ok((status, _)) if status.success() => {}
            Ok((status, out)) => log::warn!(
                "removing {}: {status}: {}",
                path.display(),
                String::from_utf8_lossy(&out).trim()
            ),
            Err(e) => log::warn!("removing {}: {e}", path.display()),
        }
    })
    .detach();
}

/// `picolet rmtree DIR`, the child of [`discard`]: `remove_dir_all`.
/// Returns the exit code; the error, if any, goes to stdout.
pub fn rmtree_main(args: &[String]) -> i32 {
    let [dir] = args else {
        println!("usage: picolet rmtree DIR");
        return 2;
    };
    match std::fs::remove_dir_all(dir) {
        Ok(()) => 0,
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => {
            println!("{e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{discard_with, rmtree_main, trash_dir};
    use crate::reactor;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    /// A script in `dir` that stands in for `picolet rmtree DIR`.
    fn fake_rmtree(dir: &Path) -> PathBuf {
        crate::testutil::script(dir, "rmtree", "[ \"$1\" = rmtree ] && exec rm -rf \"$2\"")
    }

    #[test]
    fn a_discarded_tree_leaves_its_place_at_once_and_the_trash_empties() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let tree = state.join("pods/abc");
        std::fs::create_dir_all(tree.join("a/b/c")).unwrap();
        std::fs::write(tree.join("a/b/c/file"), "x").unwrap();
        let program = fake_rmtree(dir.path());

        reactor::block_on(async {
            discard_with(&program, &state, &tree).unwrap();
            assert!(!tree.exists(), "renamed away in the call itself");
            assert_eq!(std::fs::read_dir(trash_dir(&state)).unwrap().count(), 1);
            for _ in 0..500 {
                if std::fs::read_dir(trash_dir(&state)).unwrap().count() == 0 {
                    return;
                }
                reactor::sleep(Duration::from_millis(10)).await;
            }
            panic!("the trash was not emptied");
        });
        // Discarding what is not there is fine.
        reactor::block_on(async { discard_with(&program, &state, &tree).unwrap() });
    }

    #[test]
    fn a_tree_on_another_filesystem_is_removed_in_place() {
        if !crate::sys::process::is_root()
            && crate::testutil::cannot_run("needs root (a tmpfs mount)")
        {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let pods = state.join("pods");
        std::fs::create_dir_all(&pods).unwrap();
        let flags = nix::mount::MsFlags::empty();
        let r = nix::mount::mount(Some("none"), &pods, Some("tmpfs"), flags, None::<&str>);
        assert_eq!(r, Ok(()), "mount tmpfs");
        let tree = pods.join("abc");
        std::fs::create_dir_all(tree.join("x")).unwrap();
        let program = fake_rmtree(dir.path());
        let gone = reactor::block_on(async {
            discard_with(&program, &state, &tree).unwrap();
            for _ in 0..500 {
                if !tree.exists() {
                    return true;
                }
                reactor::sleep(Duration::from_millis(10)).await;
            }
            false
        });
        let _ = nix::mount::umount2(&pods, nix::mount::MntFlags::MNT_DETACH);
        assert!(gone, "not removed in place");
    }

    #[test]
    fn rmtree_removes_a_tree_and_reports_bad_usage() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("t");
        std::fs::create_dir_all(tree.join("x/y")).unwrap();
        assert_eq!(rmtree_main(&[tree.to_string_lossy().into_owned()]), 0);
        assert!(!tree.exists());
        assert_eq!(
            rmtree_main(&[tree.to_string_lossy().into_owned()]),
            0,
            "already gone"
        );
        assert_eq!(rmtree_main(&[]), 2);
    }
}
