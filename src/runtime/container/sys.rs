//! Small syscall helpers shared by the container, rootfs, security and
//! namespaces modules: errno, C strings, pipes, mount.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{ContainerError, owned};

/// The calling thread's `errno`.
pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The text of an errno without Rust's " (os error N)" suffix, lower-case
/// like Go's (`no such file or directory`).
pub(crate) fn errno_text(errno: i32) -> String {
    let full = std::io::Error::from_raw_os_error(errno).to_string();
    let text = match full.find(" (os error") {
        Some(i) => &full[..i],
        None => &full,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `step: error text`, or only `step` when there is no errno.
pub(crate) fn with_errno(step: &str, errno: i32) -> String {
    if errno == 0 {
        step.to_string()
    } else {
        format!("{step}: {}", errno_text(errno))
    }
}

/// A C string of a config value; NUL bytes are a config error.
pub(crate) fn cstr_of(field: &'static str, s: &str) -> Result<CString, ContainerError> {
    CString::new(s).map_err(|_| ContainerError::InvalidConfig {
        field,
        value: s.to_string(),
        why: "contains a NUL byte",
    })
}

/// A C string of a path; NUL bytes are a config error.
pub(crate) fn cpath(field: &'static str, p: &Path) -> Result<CString, ContainerError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| ContainerError::InvalidConfig {
        field,
        value: p.display().to_string(),
        why: "contains a NUL byte",
    })
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), ContainerError> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(ContainerError::Sys {
            op: "pipe2",
            errno: errno(),
        });
    }
    Ok((owned(fds[0]), owned(fds[1])))
}

/// Reads until EOF or `max` bytes.
pub(crate) fn read_to_end(fd: RawFd, buf: &mut Vec<u8>, max: usize) -> Result<(), ContainerError> {
    let mut chunk = [0u8; 512];
    while buf.len() < max {
        // SAFETY: reading into a stack buffer of the given length.
        let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n == 0 {
            break;
        }
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(ContainerError::Sys {
                op: "read error pipe",
                errno: e,
            });
        }
        buf.extend_from_slice(&chunk[..n as usize]);
    }
    Ok(())
}

/// Writes all of `data`, ignoring errors (used by a child about to exit).
pub(crate) fn write_all(fd: RawFd, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: writing from a valid slice.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return;
        }
        data = &data[n as usize..];
    }
}

/// `mount(2)`; `step` names the mount in errors.
pub(crate) fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
    step: impl FnOnce() -> String,
) -> Result<(), ContainerError> {
    let ptr = |c: Option<&CStr>| c.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is NULL or a NUL-terminated string that outlives the call.
    let r = unsafe {
        libc::mount(
            ptr(source),
            target.as_ptr(),
            ptr(fstype),
            flags,
            ptr(data).cast(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(ContainerError::last(step()))
    }
}

/// `/proc/self/fd/<fd>`: a path naming exactly the object behind `fd`, to
/// mount onto without resolving a path again.
pub(crate) fn fd_path(fd: &OwnedFd) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number")
}

/// Checks a syscall return value: `-1` becomes a [`ContainerError::Setup`].
pub(crate) fn check(
    r: libc::c_int,
    step: impl FnOnce() -> String,
) -> Result<libc::c_int, ContainerError> {
    if r < 0 {
        Err(ContainerError::last(step()))
    } else {
        Ok(r)
    }
}

/// `prctl(option, arg2, 0, 0, 0)` with every argument a full `unsigned
/// long`, as the kernel reads them (some options insist the rest are 0).
pub(crate) fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> libc::c_int {
    let zero: libc::c_ulong = 0;
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(option, arg2, zero, zero, zero) }
}
