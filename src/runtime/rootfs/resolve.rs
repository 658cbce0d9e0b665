//! Resolve a container path inside the rootfs as if the rootfs were `/`.
//!
//! Walks one component at a time with `openat(O_PATH|O_NOFOLLOW)` from a
//! directory fd of the root. Symlinks are read and followed by hand: an
//! absolute target restarts at the root, `..` never climbs above it. So an
//! image symlink pointing at `/` or `../../..` cannot make a mount land on
//! the host. Missing components are created on the way when asked (dirs
//! 0755, a final file 0644). The result is an `O_PATH` fd; callers mount
//! onto `/proc/self/fd/<fd>` so that nothing is resolved twice.

use std::collections::VecDeque;
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::super::container::{ContainerError, sys};

/// What to create when the final component is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    Nothing,
    Dir,
    File,
}

const MAX_LINKS: u32 = 40;

fn open_path(dir: BorrowedFd<'_>, name: &CString) -> Result<OwnedFd, i32> {
    nix::fcntl::openat(
        dir,
        name.as_c_str(),
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| e as i32)
}

fn mode_of(fd: &OwnedFd) -> Result<libc::mode_t, i32> {
    // fstat on an O_PATH fd is allowed since Linux 3.6.
    match nix::sys::stat::fstat(fd) {
        Ok(st) => Ok(st.st_mode & libc::S_IFMT),
        Err(e) => Err(e as i32),
    }
}

fn read_link(fd: &OwnedFd) -> Result<Vec<u8>, i32> {
    // readlinkat with an empty path reads the link `fd` refers to (an
    // O_PATH|O_NOFOLLOW fd).
    nix::fcntl::readlinkat(fd, c"")
        .map(|target| target.into_encoded_bytes())
        .map_err(|e| e as i32)
}

fn create(dir: BorrowedFd<'_>, name: &CString, what: Create) -> Result<(), i32> {
    let r = if what == Create::File {
        nix::fcntl::openat(
            dir,
            name.as_c_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map(drop)
    } else {
        nix::sys::stat::mkdirat(dir, name.as_c_str(), Mode::from_bits_truncate(0o755))
    };
    match r {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
        Err(e) => Err(e as i32),
    }
}

fn components(path: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
}

/// Opens `path` inside `root` (see the module docs). `path` is read as
/// absolute inside the root whether or not it starts with '/'.
pub(crate) fn open_in_root(
    root: &OwnedFd,
    path: &str,
    what: Create,
) -> Result<OwnedFd, ContainerError> {
    let fail = |errno: i32| ContainerError::setup(format!("resolve {path:?} in the rootfs"), errno);
    let mut pending: VecDeque<Vec<u8>> = components(path.as_bytes()).collect();
    // Directories below the root, innermost last.
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut links = 0;
    while let Some(comp) = pending.pop_front() {
        if comp == b"." {
            continue;
        }
        if comp == b".." {
            stack.pop();
            continue;
        }
        let dir = stack.last().unwrap_or(root).as_fd();
        let name = CString::new(comp).map_err(|_| fail(libc::EINVAL))?;
        let last = pending.is_empty();
        let fd = match open_path(dir, &name) {
            Ok(fd) => fd,
            Err(libc::ENOENT) if what != Create::Nothing => {
                let kind = if last { what } else { Create::Dir };
                create(dir, &name, kind).map_err(fail)?;
                open_path(dir, &name).map_err(fail)?
            }
            Err(e) => return Err(fail(e)),
        };
        let mode = mode_of(&fd).map_err(fail)?;
        if mode == libc::S_IFLNK {
            links += 1;
            if links > MAX_LINKS {
                return Err(fail(libc::ELOOP));
            }
            let target = read_link(&fd).map_err(fail)?;
            if target.first() == Some(&b'/') {
                stack.clear();
            }
            for c in components(&target).collect::<Vec<_>>().into_iter().rev() {
                pending.push_front(c);
            }
            continue;
        }
        if last {
            return Ok(fd);
        }
        if mode != libc::S_IFDIR {
            return Err(fail(libc::ENOTDIR));
        }
        stack.push(fd);
    }
    // The path named a directory reached through "..", "." or a symlink.
    match stack.pop() {
        Some(fd) => Ok(fd),
        None => open_path(root.as_fd(), &CString::from(c".")).map_err(fail),
    }
}

/// Opens a directory as an `O_PATH` fd (the rootfs root).
pub(crate) fn open_dir(path: &CString) -> Result<OwnedFd, ContainerError> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    sys::step(
        nix::fcntl::open(path.as_c_str(), flags, Mode::empty()),
        || format!("open {path:?}"),
    )
}

/// Opens a host path (a bind mount source) as an `O_PATH` fd, following
/// symlinks.
pub(crate) fn open_dir_or_file(path: &CString) -> Result<OwnedFd, ContainerError> {
    let flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
    sys::step(
        nix::fcntl::open(path.as_c_str(), flags, Mode::empty()),
        || format!("open bind mount source {path:?}"),
    )
}

/// Whether `fd` is a directory (to pick a bind mount point's kind).
pub(crate) fn is_dir(fd: &OwnedFd) -> bool {
    mode_of(fd) == Ok(libc::S_IFDIR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    fn real(fd: &OwnedFd) -> PathBuf {
        std::fs::read_link(crate::sys::fd::proc_path(fd)).unwrap()
    }

    fn root_of(dir: &std::path::Path) -> (PathBuf, OwnedFd) {
        let canon = dir.canonicalize().unwrap();
        let fd = open_dir(&CString::new(canon.to_str().unwrap()).unwrap()).unwrap();
        (canon, fd)
    }

    #[test]
    fn symlinks_to_slash_or_dotdot_resolve_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, fd) = root_of(tmp.path());
        std::fs::create_dir(root.join("etc")).unwrap();
        symlink("/", root.join("etc/evil")).unwrap();
        symlink("../../../../..", root.join("up")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();

        let got = open_in_root(&fd, "/etc/evil/etc", Create::Nothing).unwrap();
        assert_eq!(real(&got), root.join("etc"));
        let got = open_in_root(&fd, "/up/abs/../../../etc/", Create::Nothing).unwrap();
        assert_eq!(real(&got), root.join("etc"));
        let got = open_in_root(&fd, "../../..", Create::Nothing).unwrap();
        assert_eq!(real(&got), root);
        let got = open_in_root(&fd, "/etc/evil", Create::Nothing).unwrap();
        assert_eq!(real(&got), root);
    }

    #[test]
    fn missing_components_are_created_inside_the_root_through_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, fd) = root_of(tmp.path());
        symlink("/", root.join("evil")).unwrap();
        let name = format!("picolet-escape-test-{}", std::process::id());
        let got = open_in_root(&fd, &format!("/evil/{name}/sub"), Create::Dir).unwrap();
        assert_eq!(real(&got), root.join(&name).join("sub"));
        assert!(!std::path::Path::new("/").join(&name).exists());
        let got = open_in_root(&fd, "/evil/etc/hosts", Create::File).unwrap();
        assert_eq!(real(&got), root.join("etc/hosts"));
        assert!(root.join("etc/hosts").is_file());
        assert!(!is_dir(&got));
    }

    #[test]
    fn symlink_loops_and_files_in_the_middle_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, fd) = root_of(tmp.path());
        symlink("/b", root.join("a")).unwrap();
        symlink("/a", root.join("b")).unwrap();
        std::fs::write(root.join("f"), b"x").unwrap();
        let err = open_in_root(&fd, "/a/x", Create::Dir).unwrap_err();
        // glibc: "Too many levels of symbolic links"; musl: "Symbolic link loop".
        let text = err.to_string().to_lowercase();
        assert!(
            text.contains("too many levels") || text.contains("symbolic link loop"),
            "{err}"
        );
        let err = open_in_root(&fd, "/f/x", Create::Dir).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
        assert!(open_in_root(&fd, "/missing", Create::Nothing).is_err());
    }
}
