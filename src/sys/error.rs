//! The one error type of the system-call seam: the operation and the errno.

use std::borrow::Cow;
use std::fmt;
use std::io;

pub use nix::errno::Errno;

/// A failed system call: what was being done and the kernel's errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    op: Cow<'static, str>,
    errno: Errno,
}

/// The seam's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(op: impl Into<Cow<'static, str>>, errno: Errno) -> Error {
        Error {
            op: op.into(),
            errno,
        }
    }

    /// `op` failed with the calling thread's current `errno`.
    pub fn last(op: impl Into<Cow<'static, str>>) -> Error {
        Error::new(op, Errno::last())
    }

    /// The operation, e.g. `pipe2` or `mount "/proc"`.
    pub fn op(&self) -> &str {
        &self.op
    }

    /// The operation when it is a constant (all but formatted ones).
    pub fn op_static(&self) -> &'static str {
        match self.op {
            Cow::Borrowed(op) => op,
            Cow::Owned(_) => "system call",
        }
    }

    /// The raw errno value.
    pub fn errno(&self) -> i32 {
        self.errno as i32
    }

    pub fn kind(&self) -> io::ErrorKind {
        io::Error::from_raw_os_error(self.errno()).kind()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // std's text (strerror), without nix's own table of descriptions
        // (it would cost the binary a few KiB for the same words).
        let full = io::Error::from_raw_os_error(self.errno()).to_string();
        let text = full.find(" (os error").map_or(&*full, |i| &full[..i]);
        write!(f, "{}: {text}", self.op)
    }
}

impl std::error::Error for Error {}

/// The errno survives (`raw_os_error()`), as it did when the callers used
/// `io::Error::last_os_error()` directly; the operation is in `Display`
/// of [`Error`] only.
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::from_raw_os_error(e.errno())
    }
}

/// Names the operation of a `nix` result.
pub trait Op<T> {
    fn op(self, op: &'static str) -> Result<T>;
    fn op_with(self, op: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Op<T> for nix::Result<T> {
    fn op(self, op: &'static str) -> Result<T> {
        self.map_err(|e| Error::new(op, e))
    }
    fn op_with(self, op: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::new(op(), e))
    }
}

impl<T> Op<T> for rustix::io::Result<T> {
    fn op(self, op: &'static str) -> Result<T> {
        self.map_err(|e| Error::new(op, Errno::from_raw(e.raw_os_error())))
    }
    fn op_with(self, op: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::new(op(), Errno::from_raw(e.raw_os_error())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_names_the_operation_and_the_errno_and_keeps_it_in_io() {
        let e = Error::new("pipe2", Errno::EMFILE);
        // The C library's text: glibc says "Too many open files", musl
        // "No file descriptors available".
        let std_text = io::Error::from_raw_os_error(libc::EMFILE).to_string();
        let strerror = std_text.split(" (os error").next().unwrap();
        assert_eq!(e.to_string(), format!("pipe2: {strerror}"));
        assert!(!strerror.is_empty() && !strerror.contains("os error"));
        assert_eq!(e.errno(), libc::EMFILE);
        assert_eq!(io::Error::from(e).raw_os_error(), Some(libc::EMFILE));
    }
}
