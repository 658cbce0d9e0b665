//! The system-call seam: thin, typed wrappers over the kernel interfaces
//! picolet needs and the standard library and `libc` do not wrap safely.
//! Every `unsafe` block here carries its `// SAFETY:` argument; callers
//! see owned file descriptors and `io::Error`s that name the operation.
//!
//! Today it holds the eBPF device-cgroup program ([`bpf`]). Issue 8
//! ("Foundations") moves the rest of the crate's raw `libc` calls here.

pub mod bpf;
pub mod fs;
