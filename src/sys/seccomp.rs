//! Installing a classic BPF seccomp filter on the calling thread
//! (`prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)`). The program is built by
//! [`crate::runtime::seccomp`].

use nix::errno::Errno;

/// One classic BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Installs `prog`; needs `no_new_privs` or `CAP_SYS_ADMIN`. Async-signal
/// safe (no allocation): it runs in the post-clone child.
pub fn install(prog: &[SockFilter]) -> Result<(), Errno> {
    let len = u16::try_from(prog.len()).map_err(|_| Errno::E2BIG)?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut().cast::<libc::sock_filter>(),
    };
    // SAFETY: `SockFilter` is `#[repr(C)]` with the fields of
    // `struct sock_filter` in order (u16, u8, u8, u32); `fprog` points at
    // `len` of them, which outlive the call; the kernel copies the program.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        )
    };
    Errno::result(r).map(drop)
}
