//! Creating one file system node of a layer (file, directory, link,
//! device, FIFO) and applying its ownership, mode, xattrs and mtime. The
//! caller has already checked the path (see `ensure_parents`).

use std::fs::{self, DirBuilder, FileTimes, OpenOptions, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use tar::EntryType;

use super::bad_entry;
use crate::image::{ImageError, sys};

/// Ownership, mode and time of an entry, applied after its content.
#[derive(Debug, Clone)]
pub(super) struct Meta {
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mode: u32,
    pub(super) mtime: u64,
    pub(super) xattrs: Vec<(String, Vec<u8>)>,
}

/// Removes whatever is at `path` (a directory recursively; never follows
/// a symlink).
pub(super) fn remove_existing(path: &Path) -> Result<(), ImageError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(ImageError::io("remove", path)),
        Ok(_) => fs::remove_file(path).map_err(ImageError::io("remove", path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ImageError::io("stat", path)(e)),
    }
}

pub(super) fn make_dir(path: &Path) -> Result<(), ImageError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => remove_existing(path)?,
        Err(_) => {}
    }
    DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(ImageError::io("mkdir", path))
}

pub(super) fn write_file<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    dest: &Path,
    meta: &Meta,
    as_root: bool,
) -> Result<(), ImageError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dest)
        .map_err(ImageError::io("create", dest))?;
    io::copy(entry, &mut file).map_err(ImageError::io("write", dest))?;
    if as_root {
        std::os::unix::fs::fchown(&file, Some(meta.uid), Some(meta.gid))
            .map_err(ImageError::io("chown", dest))?;
    }
    // chmod after chown: chown clears set-id bits.
    file.set_permissions(Permissions::from_mode(meta.mode))
        .map_err(ImageError::io("chmod", dest))?;
    set_xattrs(dest, meta);
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(meta.mtime.min(i64::MAX as u64 / 2));
    file.set_times(FileTimes::new().set_accessed(t).set_modified(t))
        .map_err(ImageError::io("set times", dest))
}

pub(super) fn set_xattrs(path: &Path, meta: &Meta) {
    for (k, v) in &meta.xattrs {
        if let Err(e) = sys::lsetxattr(path, k, v) {
            log::warn!("{}: cannot set xattr {k}: {e}", path.display());
        }
    }
}

/// Owner, mode (unless a symlink), xattrs and mtime of a non-regular node.
pub(super) fn finish_node(
    path: &Path,
    meta: &Meta,
    as_root: bool,
    chmod: bool,
) -> Result<(), ImageError> {
    if as_root {
        std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid))
            .map_err(ImageError::io("chown", path))?;
    }
    if chmod {
        fs::set_permissions(path, Permissions::from_mode(meta.mode))
            .map_err(ImageError::io("chmod", path))?;
    }
    set_xattrs(path, meta);
    sys::set_mtime_nofollow(path, meta.mtime).map_err(ImageError::io("set times", path))
}

pub(super) fn hard_link(
    root: &Path,
    target_rel: &Path,
    dest: &Path,
    name: &str,
) -> Result<(), ImageError> {
    if target_rel.as_os_str().is_empty() {
        return Err(bad_entry(name, "hard link to the layer root"));
    }
    // The target must be an earlier entry of this layer, reached without
    // going through a symlink.
    let mut cur = root.to_path_buf();
    if let Some(parent) = target_rel.parent() {
        for c in parent.components() {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(ImageError::UnsafePath {
                        entry: name.to_string(),
                        reason: "hard link target goes through a symlink",
                    });
                }
                _ => {
                    return Err(bad_entry(
                        name,
                        "hard link target does not exist in this layer",
                    ));
                }
            }
        }
    }
    let target = root.join(target_rel);
    match fs::symlink_metadata(&target) {
        Ok(m) if m.is_dir() => return Err(bad_entry(name, "hard link to a directory")),
        Ok(_) => {}
        Err(_) => {
            return Err(bad_entry(
                name,
                "hard link target does not exist in this layer",
            ));
        }
    }
    if target == dest {
        return Ok(());
    }
    remove_existing(dest)?;
    fs::hard_link(&target, dest).map_err(ImageError::io("link", dest))
}

pub(super) fn make_node<R: Read>(
    entry: &tar::Entry<'_, R>,
    kind: EntryType,
    dest: &Path,
    meta: &Meta,
    source: &Path,
) -> Result<(), ImageError> {
    let h = entry.header();
    let dev = |r: io::Result<Option<u32>>| -> Result<u32, ImageError> {
        r.map_err(ImageError::io("read layer", source))
            .map(|v| v.unwrap_or(0))
    };
    let (major, minor) = if kind == EntryType::Fifo {
        (0, 0)
    } else {
        (dev(h.device_major())?, dev(h.device_minor())?)
    };
    let (ftype, what) = match kind {
        EntryType::Char => (libc::S_IFCHR, "a character device"),
        EntryType::Block => (libc::S_IFBLK, "a block device"),
        _ => (libc::S_IFIFO, "a fifo"),
    };
    sys::mknod(dest, ftype | (meta.mode & 0o777), major, minor).map_err(|e| {
        if e.raw_os_error() == Some(libc::EPERM) {
            ImageError::NeedsRoot {
                what,
                path: dest.to_path_buf(),
                source: e,
            }
        } else {
            ImageError::io("mknod", dest)(e)
        }
    })
}
