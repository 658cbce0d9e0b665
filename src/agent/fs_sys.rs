//! `statvfs(3)`, the one system call the disk-pressure check needs.

use crate::lifecycle::eviction::FsStats;
use std::io;
use std::path::Path;

/// The size of the filesystem holding `path`, and what is available to
/// unprivileged writers. One system call: cheap enough for the agent's
/// thread every few seconds.
pub fn statvfs(path: &Path) -> io::Result<FsStats> {
    let (total, available) = crate::sys::fs::fs_space(path)?;
    Ok(FsStats { total, available })
}
