//! The on-disk store: blobs, unpacked layers, temp entries, atomic writes.
//!
//! ```text
//! <root>/oci-layout                 {"imageLayoutVersion":"1.0.0"}
//! <root>/index.json                 tag index (see index.rs), atomic rename
//! <root>/index.lock                 flock held by writers of index.json
//! <root>/blobs/sha256/<hex>         verified blobs (manifests, configs, layers)
//! <root>/layers/sha256/<diff-id>/   one unpacked layer (overlayfs whiteouts)
//! <root>/tmp/<pid>-<n>-<kind>       in-flight writes, renamed into place
//! ```
//!
//! Every blob is hashed while it is written and renamed into `blobs/` only
//! if its digest matches. A layer is unpacked into `tmp/`, checked against
//! its diff ID, synced, then renamed, so a crash never leaves half a layer.
//! Temp entries of dead processes are removed at the next import.

use std::fs::{self, DirBuilder, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::budget::Space;
use super::digest::{HashWriter, JSON_LIMIT, read_capped};
use super::{Digest, ImageError, sys, unpack};

pub(crate) static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A content-addressed image store under one root directory
/// (`<state-dir>/images`). Cheap to open; holds no file descriptors.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    /// Opens the store at `root`, creating its directories if needed; the
    /// root is made mode 0700.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore, ImageError> {
        let root = root.into();
        // Layers hold setuid files and whatever else images ship: root only.
        crate::sys::fs::private_dir(&root).map_err(ImageError::io("create", &root))?;
        for dir in ["blobs/sha256", "layers/sha256", "tmp"] {
            let d = root.join(dir);
            fs::create_dir_all(&d).map_err(ImageError::io("create", &d))?;
        }
        let layout = root.join("oci-layout");
        if !layout.exists() {
            write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(ImageStore { root })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest lives (it may not exist).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Where the layer with this diff ID is unpacked (it may not exist).
    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers/sha256").join(diff_id.hex())
    }

    /// A fresh path under `tmp/`, unique within this store.
    pub(crate) fn temp_path(&self, kind: &str) -> PathBuf {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{}-{n}-{kind}", std::process::id()))
    }

    /// Streams `reader` into the store. With `expected`, a mismatching
    /// digest is an error naming it and nothing is stored; an existing
    /// blob is not read again. Returns the digest and size.
    pub(crate) fn put_blob(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<(Digest, u64), ImageError> {
        if let Some(e) = expected {
            if let Ok(m) = fs::metadata(self.blob_path(e)) {
                return Ok((e.clone(), m.len()));
            }
        }
        let tmp = self.temp_path("blob");
        let guard = RemoveOnDrop(Some(tmp.clone()));
        let file = crate::store::create_fresh(&tmp).map_err(ImageError::io("create", &tmp))?;
        let mut writer = HashWriter::new(io::BufWriter::with_capacity(64 * 1024, file));
        io::copy(&mut reader, &mut writer).map_err(ImageError::io("copy to", &tmp))?;
        let (buf, digest, size) = writer.finish().map_err(ImageError::io("write", &tmp))?;
        drop(buf);
        if let Some(e) = expected {
            digest.verify(e, what)?;
        }
        let dest = self.blob_path(&digest);
        fs::rename(&tmp, &dest).map_err(ImageError::io("rename into", &dest))?;
        guard.disarm();
        Ok((digest, size))
    }

    /// Hard-links a staged file, whose digest was computed while staging,
    /// into `blobs/` (no copy; the staged name stays readable until the
    /// staging directory is removed).
    pub(crate) fn adopt_blob(&self, staged: &Path, digest: &Digest) -> Result<(), ImageError> {
        let dest = self.blob_path(digest);
        match fs::hard_link(staged, &dest) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(ImageError::io("link into", &dest)(e)),
        }
    }

    /// Reads a small blob (≤ 1 MiB) and re-verifies its digest.
    pub(crate) fn read_small_blob(
        &self,
        digest: &Digest,
        what: &str,
    ) -> Result<Vec<u8>, ImageError> {
        let path = self.blob_path(digest);
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageError::MissingBlob {
                digest: digest.to_string(),
                location: self.root.clone(),
            },
            _ => ImageError::io("open", &path)(e),
        })?;
        let bytes = read_capped(file, JSON_LIMIT, what).map_err(|e| e.with_path(&path))?;
        Digest::of_bytes(&bytes).verify(digest, what)?;
        Ok(bytes)
    }

    /// Makes sure the layer with `diff_id` is unpacked from blob `blob`;
    /// returns its directory. Unpacks into `tmp/`, verifies the diff ID,
    /// syncs, and renames into place; a concurrent winner is accepted.
    pub fn ensure_layer(&self, blob: &Digest, diff_id: &Digest) -> Result<PathBuf, ImageError> {
        self.ensure_layer_counted(blob, diff_id).map(|(p, _)| p)
    }

    /// [`ImageStore::ensure_layer`], also returning how many device nodes
    /// were dropped (0 when the layer was already there). The unpack is
    /// bounded by [`super::budget`] against the store's filesystem, its
    /// diff ID is computed as it streams and checked before the rename:
    /// a refused layer leaves nothing behind.
    pub(crate) fn ensure_layer_counted(
        &self,
        blob: &Digest,
        diff_id: &Digest,
    ) -> Result<(PathBuf, u64), ImageError> {
        self.ensure_layer_within(blob, diff_id, Space::of(&self.root)?)
    }

    pub(crate) fn ensure_layer_within(
        &self,
        blob: &Digest,
        diff_id: &Digest,
        space: Space,
    ) -> Result<(PathBuf, u64), ImageError> {
        let dest = self.layer_path(diff_id);
        if dest.is_dir() {
            return Ok((dest, 0));
        }
        let blob_path = self.blob_path(blob);
        if !blob_path.is_file() {
            return Err(ImageError::MissingBlob {
                digest: blob.to_string(),
                location: self.root.clone(),
            });
        }
        let (staged, dropped) = self.stage_layer(blob, &blob_path, diff_id, space)?;
        self.sync()?;
        Ok((staged.commit()?, dropped))
    }

    /// Unpacks the layer blob at `blob_path` (the blob `blob`) into a
    /// [`StagedLayer`] and checks its diff ID; returns it and how many
    /// device nodes were dropped.
    pub(crate) fn stage_layer(
        &self,
        blob: &Digest,
        blob_path: &Path,
        diff_id: &Digest,
        space: Space,
    ) -> Result<(StagedLayer, u64), ImageError> {
        let staged = self.layer_temp(diff_id)?;
        let unpacked = unpack::unpack_layer_within(blob_path, &staged.dir, Some(space))?;
        check_diff_id(blob, diff_id, &unpacked.diff_id)?;
        Ok((staged, unpacked.dropped_devices))
    }

    /// A new empty directory under `tmp/` for the layer `diff_id`.
    pub(crate) fn layer_temp(&self, diff_id: &Digest) -> Result<StagedLayer, ImageError> {
        let tmp = self.temp_path("layer");
        let guard = RemoveOnDrop(Some(tmp.clone()));
        DirBuilder::new()
            .mode(0o755)
            .create(&tmp)
            .map_err(ImageError::io("mkdir", &tmp))?;
        fs::set_permissions(&tmp, Permissions::from_mode(0o755))
            .map_err(ImageError::io("chmod", &tmp))?;
        Ok(StagedLayer {
            _guard: guard,
            dir: tmp,
            dest: self.layer_path(diff_id),
        })
    }

    /// `syncfs` on the store's filesystem: makes blobs and layers durable
    /// before the index points at them.
    pub(crate) fn sync(&self) -> Result<(), ImageError> {
        let dir = File::open(&self.root).map_err(ImageError::io("open", &self.root))?;
        sys::syncfs(&dir).map_err(ImageError::io("syncfs", &self.root))
    }

    /// Removes `tmp/` entries left by processes that no longer exist.
    pub(crate) fn clean_stale_temp(&self) {
        let tmp = self.root.join("tmp");
        let Ok(entries) = fs::read_dir(&tmp) else {
            return;
        };
        let me = std::process::id();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            let stale = match pid {
                Some(pid) if pid == me => false,
                Some(pid) => !sys::pid_alive(i32::try_from(pid).unwrap_or(0)),
                None => true,
            };
            if stale {
                let p = entry.path();
                let result = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                if let Err(e) = result {
                    log::warn!("cannot remove stale {}: {e}", p.display());
                }
            }
        }
    }
}

/// Errors with [`ImageError::DiffIdMismatch`] unless `actual` is `expected`.
pub(crate) fn check_diff_id(
    blob: &Digest,
    expected: &Digest,
    actual: &Digest,
) -> Result<(), ImageError> {
    if actual == expected {
        return Ok(());
    }
    Err(ImageError::DiffIdMismatch {
        blob: blob.to_string(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    })
}

/// A layer unpacked into `tmp/`, not in `layers/` yet; removed if dropped.
#[derive(Debug)]
pub(crate) struct StagedLayer {
    _guard: RemoveOnDrop,
    dir: PathBuf,
    dest: PathBuf,
}

impl StagedLayer {
    /// The directory to unpack into.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Renames the layer into place (sync the store first); a concurrent
    /// winner is accepted. Returns its directory.
    pub(crate) fn commit(self) -> Result<PathBuf, ImageError> {
        match fs::rename(&self.dir, &self.dest) {
            Ok(()) => self._guard.disarm(),
            Err(_) if self.dest.is_dir() => {} // another importer finished first
            Err(e) => return Err(ImageError::io("rename into", &self.dest)(e)),
        }
        Ok(self.dest)
    }
}

/// Removes a temp file or directory unless disarmed.
#[derive(Debug)]
pub(crate) struct RemoveOnDrop(pub(crate) Option<PathBuf>);

impl RemoveOnDrop {
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}

/// Writes `bytes` to `path` atomically: temp file in the same directory,
/// fsync, rename, fsync of the directory. Readers see old or new content.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let guard = RemoveOnDrop(Some(tmp.clone()));
    // Unlinks a leftover (e.g. a planted symlink) and creates with
    // O_EXCL|O_NOFOLLOW: never writes through a link.
    let mut file = crate::store::create_fresh(&tmp).map_err(ImageError::io("create", &tmp))?;
    file.set_permissions(Permissions::from_mode(0o644))
        .map_err(ImageError::io("chmod", &tmp))?;
    file.write_all(bytes)
        .map_err(ImageError::io("write", &tmp))?;
    file.sync_all().map_err(ImageError::io("fsync", &tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(ImageError::io("rename into", path))?;
    guard.disarm();
    let d = File::open(dir).map_err(ImageError::io("open", dir))?;
    d.sync_all().map_err(ImageError::io("fsync", dir))
}
