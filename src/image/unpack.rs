//! Unpacking one layer blob (plain or gzip tar) into an empty directory,
//! converting OCI whiteouts to the overlayfs form:
//!
//! - `dir/.wh.name` becomes a 0/0 character device `dir/name` (a whiteout
//!   only hides lower layers, so it is skipped when this layer already
//!   has `name`; a later `name` entry in the same layer replaces it);
//! - `dir/.wh..wh..opq` sets `trusted.overlay.opaque=y` on `dir`;
//! - other `.wh..wh.*` names (aufs metadata) are ignored.
//!
//! Entries with `..`, absolute paths, a parent that is a symlink (or not a
//! directory), or a hard link pointing outside the layer are rejected.
//! Ownership (when running as root), modes, mtimes, symlinks, hard links
//! and FIFOs are preserved. From PAX `SCHILY.xattr.*` only `user.*` and
//! `security.capability` are applied: `trusted.*` (e.g. overlay
//! redirects) from an image could reach outside the layer.
//!
//! **Device nodes are dropped**, as rootless unpackers (containers/storage,
//! moby in a user namespace) do: a block or character device in an image
//! (`b 7:0`, `c 1:11`, or `b 179:0`, a Pi's SD card, mode 0666) would give
//! any container user the host device. They are counted in
//! [`Unpacked::dropped_devices`]. A 0/0 character device is kept: it is
//! overlayfs's whiteout form (what `.wh.` entries become anyway) and opens
//! no device. FIFOs are kept: a FIFO is a rendezvous between processes
//! that can open it, not a door to anything on the host.
//!
//! Sparse entries (old GNU `S` entries, PAX `GNU.sparse.*`) are refused:
//! a 10 KB archive could otherwise write a 1 GiB file. The decompressed
//! stream is bounded (see [`super::budget`]) and hashed as it is read, so
//! the diff ID is known the moment the stream ends; the caller checks it
//! before the layer is committed.
//!
//! Runs synchronously and touches only `dest` and the blob; the agent
//! should call it from the short-lived `picolet unpack` helper.

mod nodes;

use std::ffi::OsStr;
use std::fs::{self, DirBuilder, File, Permissions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use tar::EntryType;

use super::budget::{Budgeted, Origin, Space};
use super::digest::HashReader;
use super::{Digest, ImageError, sys};
use nodes::{Meta, finish_node, hard_link, make_dir, make_node, remove_existing, write_file};

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Compression of a layer blob, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

pub(crate) fn detect_compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Compression::Xz
    } else {
        Compression::None
    }
}

/// Plain tar bytes from a layer blob's bytes (gunzipping if needed).
/// `label` names the blob in errors.
fn tar_stream<'a>(
    mut input: Box<dyn BufRead + 'a>,
    label: &str,
) -> Result<Box<dyn Read + 'a>, ImageError> {
    let head = input.fill_buf().map_err(ImageError::io("read", label))?;
    let compression = detect_compression(head);
    let unsupported = |compression| ImageError::UnsupportedCompression {
        digest: label.to_string(),
        compression,
    };
    match compression {
        Compression::None => Ok(Box::new(input)),
        Compression::Gzip => Ok(Box::new(super::gzip::GzReader::new(input))),
        Compression::Zstd => Err(unsupported("zstd")),
        Compression::Bzip2 => Err(unsupported("bzip2")),
        Compression::Xz => Err(unsupported("xz")),
    }
}

/// What unpacking one layer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Block and character device entries that were not created.
    pub dropped_devices: u64,
    /// Uncompressed bytes read.
    pub bytes: u64,
}

/// Unpacks the layer blob at `blob` into the existing empty directory
/// `dest` (bounded by [`super::budget`], against the free space of
/// `dest`'s filesystem) and returns its diff ID and what was dropped.
pub fn unpack_layer(blob: &Path, dest: &Path) -> Result<Unpacked, ImageError> {
    unpack_layer_within(blob, dest, Some(Space::of(dest)?))
}

/// [`unpack_layer`], keeping `space`'s reserve free (none: no check).
pub(crate) fn unpack_layer_within(
    blob: &Path,
    dest: &Path,
    space: Option<Space>,
) -> Result<Unpacked, ImageError> {
    #[cfg(test)]
    crate::testutil::fuzz_seed("tar_unpack", &fs::read(blob).unwrap_or_default());
    let label = blob.display().to_string();
    let file = File::open(blob).map_err(ImageError::io("open", blob))?;
    let compressed = file.metadata().map_err(ImageError::io("stat", blob))?.len();
    let input = BufReader::with_capacity(64 * 1024, file);
    unpack_layer_from(Box::new(input), &label, compressed, dest, space)
}

/// [`unpack_layer_within`] from a layer blob's bytes as they come (a
/// download): `compressed` is the blob's size, for the budget.
pub(crate) fn unpack_layer_from(
    input: Box<dyn BufRead + '_>,
    label: &str,
    compressed: u64,
    dest: &Path,
    space: Option<Space>,
) -> Result<Unpacked, ImageError> {
    let source = Path::new(label);
    let origin = Origin {
        what: format!("layer {label}"),
        compressed,
    };
    let mut budgeted = Budgeted::new(tar_stream(input, label)?, origin, space)?;
    let mut reader = HashReader::new(&mut budgeted);
    let result = unpack_tar(&mut reader, dest, source).and_then(|dropped| {
        let (diff_id, bytes) = reader.finish().map_err(ImageError::io("read", source))?;
        Ok((diff_id, bytes, dropped))
    });
    // An I/O error caused by the budget is reported as the budget's error.
    let (diff_id, bytes, dropped_devices) = match (result, budgeted.take_error()) {
        (Err(_), Some(e)) => return Err(e),
        (r, _) => r?,
    };
    if dropped_devices > 0 {
        log::warn!("{label}: dropped {dropped_devices} device nodes");
    }
    Ok(Unpacked {
        diff_id,
        dropped_devices,
        bytes,
    })
}

/// Unpacks a plain tar stream into `root`. `source` names it in errors.
/// Returns the number of device nodes dropped.
pub(crate) fn unpack_tar(reader: impl Read, root: &Path, source: &Path) -> Result<u64, ImageError> {
    let as_root = sys::euid() == 0;
    let mut dropped = 0;
    let mut archive = tar::Archive::new(reader);
    let mut dirs: Vec<(PathBuf, Meta)> = Vec::new();
    let read_err = ImageError::io("read layer", source);
    let entries = archive.entries().map_err(read_err)?;
    for entry in entries {
        let mut entry = entry.map_err(ImageError::io("read layer", source))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = entry.path().map_err(ImageError::io("read layer", source))?;
        let rel = safe_relative(&path, &name)?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            continue;
        }
        if kind == EntryType::GNUSparse {
            return Err(bad_entry(&name, SPARSE_REFUSED));
        }
        if rel
            .file_name()
            .is_some_and(|f| f.as_bytes().starts_with(b".wh."))
        {
            whiteout(root, &rel, &name)?;
            continue;
        }
        let meta = entry_meta(&mut entry, &name)?;
        if rel.as_os_str().is_empty() {
            if kind != EntryType::Directory {
                return Err(bad_entry(&name, "the layer root must be a directory"));
            }
            dirs.push((PathBuf::new(), meta));
            continue;
        }
        ensure_parents(root, &rel, &name)?;
        let dest = root.join(&rel);
        match kind {
            EntryType::Directory => {
                make_dir(&dest)?;
                dirs.push((rel, meta));
            }
            EntryType::Regular | EntryType::Continuous => {
                remove_existing(&dest)?;
                write_file(&mut entry, &dest, &meta, as_root)?;
            }
            EntryType::Symlink => {
                let target = link_target(&entry, &name, source)?;
                remove_existing(&dest)?;
                std::os::unix::fs::symlink(&target, &dest)
                    .map_err(ImageError::io("symlink", &dest))?;
                finish_node(&dest, &meta, as_root, false)?;
            }
            EntryType::Link => {
                let target = link_target(&entry, &name, source)?;
                let target_rel = safe_relative(&target, &name)?;
                hard_link(root, &target_rel, &dest, &name)?;
            }
            EntryType::Char | EntryType::Block if !is_whiteout_node(&entry, kind) => {
                log::debug!("{}: dropping device node {name:?}", source.display());
                dropped += 1;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                remove_existing(&dest)?;
                make_node(&entry, kind, &dest, &meta, source)?;
                finish_node(&dest, &meta, as_root, true)?;
            }
            other => {
                log::warn!(
                    "{}: skipping tar entry {name:?} of type {other:?}",
                    source.display()
                );
            }
        }
    }
    // Directory metadata last: creating children changes their mtime, and a
    // read-only mode must not stop us from creating those children.
    for (dir, meta) in dirs.iter().rev() {
        // A later entry may have replaced the directory (even by a symlink
        // pointing outside the layer): only touch what is still a directory
        // reached through directories.
        if real_dir_chain(root, dir) {
            finish_node(&root.join(dir), meta, as_root, true)?;
        }
    }
    Ok(dropped)
}

/// The error for old-GNU and PAX sparse entries.
pub(crate) const SPARSE_REFUSED: &str = "sparse files (GNU or PAX sparse entries) are not supported; rebuild the image without --sparse";

/// Whether a device entry is a 0/0 character device: overlayfs's whiteout.
fn is_whiteout_node<R: Read>(entry: &tar::Entry<'_, R>, kind: EntryType) -> bool {
    let h = entry.header();
    kind == EntryType::Char
        && matches!(h.device_major(), Ok(Some(0)) | Ok(None))
        && matches!(h.device_minor(), Ok(Some(0)) | Ok(None))
}

/// Whether PAX extensions describe a sparse file (`GNU.sparse.*`).
pub(crate) fn pax_is_sparse<R: Read>(entry: &mut tar::Entry<'_, R>) -> bool {
    match entry.pax_extensions() {
        Ok(Some(exts)) => exts
            .flatten()
            .any(|e| e.key_bytes().starts_with(b"GNU.sparse.")),
        _ => false,
    }
}

fn bad_entry(name: &str, reason: &str) -> ImageError {
    ImageError::BadEntry {
        entry: name.to_string(),
        reason: reason.to_string(),
    }
}

/// The entry path relative to the layer root; rejects `..` and absolute
/// paths. `./` components are dropped; the root itself is `""`.
pub(crate) fn safe_relative(path: &Path, name: &str) -> Result<PathBuf, ImageError> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(ImageError::UnsafePath {
                    entry: name.to_string(),
                    reason: "path contains '..'",
                });
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ImageError::UnsafePath {
                    entry: name.to_string(),
                    reason: "absolute path",
                });
            }
        }
    }
    Ok(out)
}

fn entry_meta<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta, ImageError> {
    let h = entry.header();
    let num = |r: io::Result<u64>, what: &str| -> Result<u32, ImageError> {
        r.ok()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| bad_entry(name, &format!("invalid {what} field")))
    };
    let uid = num(h.uid(), "uid")?;
    let gid = num(h.gid(), "gid")?;
    let mode = h
        .mode()
        .map_err(|_| bad_entry(name, "invalid mode field"))?
        & 0o7777;
    let mtime = h.mtime().unwrap_or(0);
    let mut xattrs = Vec::new();
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            if ext.key_bytes().starts_with(b"GNU.sparse.") {
                return Err(bad_entry(name, SPARSE_REFUSED));
            }
            let Ok(key) = ext.key() else { continue };
            let Some(attr) = key.strip_prefix("SCHILY.xattr.") else {
                continue;
            };
            if attr.starts_with("user.") || attr == "security.capability" {
                xattrs.push((attr.to_string(), ext.value_bytes().to_vec()));
            } else {
                log::debug!("layer entry {name:?}: ignoring xattr {attr}");
            }
        }
    }
    Ok(Meta {
        uid,
        gid,
        mode,
        mtime,
        xattrs,
    })
}

/// Creates missing parent directories of `rel` (mode 0755) and rejects a
/// parent that is a symlink or not a directory.
fn ensure_parents(root: &Path, rel: &Path, name: &str) -> Result<(), ImageError> {
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    let mut cur = root.to_path_buf();
    for c in parent.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(ImageError::UnsafePath {
                    entry: name.to_string(),
                    reason: "a parent directory is a symlink",
                });
            }
            Ok(_) => return Err(bad_entry(name, "a parent is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .mode(0o755)
                    .create(&cur)
                    .map_err(ImageError::io("mkdir", &cur))?;
                fs::set_permissions(&cur, Permissions::from_mode(0o755))
                    .map_err(ImageError::io("chmod", &cur))?;
            }
            Err(e) => return Err(ImageError::io("stat", &cur)(e)),
        }
    }
    Ok(())
}

fn link_target<R: Read>(
    entry: &tar::Entry<'_, R>,
    name: &str,
    source: &Path,
) -> Result<PathBuf, ImageError> {
    match entry
        .link_name()
        .map_err(ImageError::io("read layer", source))?
    {
        Some(t) if !t.as_os_str().is_empty() => Ok(t.into_owned()),
        _ => Err(bad_entry(name, "link without a target")),
    }
}

/// Converts an OCI whiteout entry into its overlayfs form.
fn whiteout(root: &Path, rel: &Path, name: &str) -> Result<(), ImageError> {
    ensure_parents(root, rel, name)?;
    let file = rel.file_name().map(OsStr::as_bytes).unwrap_or_default();
    let parent = root.join(rel.parent().unwrap_or(Path::new("")));
    if file == b".wh..wh..opq" {
        return sys::lsetxattr(&parent, OPAQUE_XATTR, b"y").map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) => ImageError::NeedsRoot {
                what: "an opaque directory (trusted.overlay.opaque)",
                path: parent.clone(),
                source: e,
            },
            _ => ImageError::io("set opaque xattr on", &parent)(e),
        });
    }
    if file.starts_with(b".wh..wh.") {
        return Ok(()); // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs)
    }
    let hidden = &file[4..];
    if hidden.is_empty() || hidden == b"." || hidden == b".." {
        return Err(ImageError::UnsafePath {
            entry: name.to_string(),
            reason: "whiteout of an empty, '.' or '..' name",
        });
    }
    let target = parent.join(OsStr::from_bytes(hidden));
    if fs::symlink_metadata(&target).is_ok() {
        // Whiteouts only hide lower layers, never this layer's own entry.
        return Ok(());
    }
    sys::mknod(&target, libc::S_IFCHR, 0, 0).map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM) => ImageError::NeedsRoot {
            what: "a whiteout (0/0 character device)",
            path: target.clone(),
            source: e,
        },
        _ => ImageError::io("mknod whiteout", &target)(e),
    })
}

/// Whether `root/rel` and every directory on the way are real directories
/// (no symlinks), so that following the path stays inside the layer.
fn real_dir_chain(root: &Path, rel: &Path) -> bool {
    let mut cur = root.to_path_buf();
    if !fs::symlink_metadata(&cur).is_ok_and(|m| m.is_dir()) {
        return false;
    }
    for c in rel.components() {
        cur.push(c);
        if !fs::symlink_metadata(&cur).is_ok_and(|m| m.is_dir()) {
            return false;
        }
    }
    true
}
