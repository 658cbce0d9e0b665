//! Files: directories only root may enter, xattrs, times, `flock`,
//! `statvfs`.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::AT_FDCWD;

use super::error::{Errno, Error, Op, Result};

/// Creates `dir` (and missing parents, 0755) and makes `dir` itself mode
/// 0700, also when it existed with a wider mode (an older picolet made
/// them 0755). picolet's state, image store, pod and run directories hold
/// image layers and containers' writable layers: setuid-root files and
/// device nodes that a local user must not reach by path. As containerd
/// does for its roots, closing the top directory closes everything below.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("create {}: {e}", dir.display())))?;
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.permissions().mode() & 0o7777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io::Error::new(e.kind(), format!("chmod 0700 {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// `lsetxattr(path, name, value, 0)`: does not follow a final symlink.
pub fn lsetxattr(path: &Path, name: &str, value: &[u8]) -> Result<()> {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).op("lsetxattr")
}

/// `lgetxattr(path, name)` into a small buffer; `Ok(None)` when the
/// attribute does not exist (or the filesystem has none).
pub fn lgetxattr(path: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Ok(Some(buf))
        }
        Err(e) if e == rustix::io::Errno::NODATA || e == rustix::io::Errno::NOTSUP => Ok(None),
        Err(e) => Err(Error::new("lgetxattr", Errno::from_raw(e.raw_os_error()))),
    }
}

/// Sets atime and mtime of `path` to `secs` (not following a final symlink).
pub fn set_times_nofollow(path: &Path, secs: u64) -> Result<()> {
    let t = nix::sys::time::TimeSpec::new(secs.try_into().unwrap_or(i32::MAX.into()), 0);
    nix::sys::stat::utimensat(
        AT_FDCWD,
        path,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .op("utimensat")
}

/// Takes an exclusive `flock` on `file`, retried on `EINTR`; released when
/// the file is closed.
pub fn flock_exclusive(file: &std::fs::File) -> Result<()> {
    loop {
        match rustix::fs::flock(file, rustix::fs::FlockOperation::LockExclusive) {
            Err(rustix::io::Errno::INTR) => continue,
            other => return other.op("flock"),
        }
    }
}

/// Tries to take an exclusive `flock` on `file` without waiting:
/// `Ok(false)` when another open file holds it.
pub fn flock_try_exclusive(file: &std::fs::File) -> Result<bool> {
    loop {
        match rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
            other => return other.map(|()| true).op("flock"),
        }
    }
}

/// Total and available bytes of the filesystem holding `path` (`statvfs`).
pub fn fs_space(path: &Path) -> Result<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).op("statvfs")?;
    let unit = st.fragment_size() as u64;
    #[allow(clippy::unnecessary_cast)]
    Ok((
        (st.blocks() as u64).saturating_mul(unit),
        (st.blocks_available() as u64).saturating_mul(unit),
    ))
}

/// `mount_setattr(AT_FDCWD, path, AT_RECURSIVE, {attr_set: set})`
/// (Linux ≥ 5.12): sets mount attributes on a whole mount tree at once.
pub fn mount_setattr_recursive(path: &std::ffi::CStr, set: u64) -> Result<()> {
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let attr: [u64; 4] = [set, 0, 0, 0];
    // SAFETY: mount_setattr with a NUL-terminated path and a mount_attr
    // struct (4 × u64) whose size is passed; the kernel only reads both.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            AT_RECURSIVE,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if r < 0 {
        return Err(Error::last("mount_setattr"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_or_existing_directory_ends_up_0700() {
        let t = tempfile::tempdir().unwrap();
        let fresh = t.path().join("a/b");
        private_dir(&fresh).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&fresh), 0o700);
        let old = t.path().join("old");
        std::fs::create_dir(&old).unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&old).unwrap();
        assert_eq!(mode(&old), 0o700);
    }
}
