//! Where an import reads from: an unpacked directory (OCI layout or an
//! extracted docker-archive), or an archive tar staged into the store.
//!
//! Staging reads the (optionally gzipped) tar once, streaming each regular
//! file into `<root>/tmp/<pid>-<n>-import/<k>` while hashing it, so blobs
//! never sit in memory and are later *renamed* into `blobs/` without a
//! second read. Archive paths are only used as lookup keys, never as file
//! system paths; symlinks and hard links in the archive become aliases.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read};
use std::path::{Component, Path, PathBuf};

use tar::EntryType;

use super::budget::{Budgeted, Origin, Space};
use super::digest::{HashWriter, JSON_LIMIT, read_capped};
use super::store::RemoveOnDrop;
use super::unpack::{SPARSE_REFUSED, pax_is_sparse};
use super::{Digest, ImageError, ImageStore};

/// A regular file of a staged archive.
#[derive(Debug)]
pub(crate) struct Staged {
    path: PathBuf,
    digest: Digest,
    size: u64,
}

/// An import source.
#[derive(Debug)]
pub(crate) enum Source {
    Dir(PathBuf),
    Archive {
        archive: PathBuf,
        files: HashMap<String, Staged>,
        links: HashMap<String, String>,
        _dir: RemoveOnDrop,
    },
}

/// Lexically normalizes an archive path to a lookup key (`./a/../b` → `b`).
fn archive_key(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts.join("/")
}

/// The relative path of a blob in an OCI layout.
pub(crate) fn blob_rel(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// Staged regular files and link aliases of an archive.
type StagedEntries = (HashMap<String, Staged>, HashMap<String, String>);

/// Streams each regular file of the tar into `dir` (see [`Source::stage`]).
fn stage_entries(
    reader: impl Read,
    dir: &Path,
    archive: &Path,
) -> Result<StagedEntries, ImageError> {
    let mut files = HashMap::new();
    let mut links = HashMap::new();
    let read_err = |e: io::Error| ImageError::UnknownFormat {
        path: archive.to_path_buf(),
        reason: format!("reading tar: {e}"),
    };
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let key = archive_key(&entry.path().map_err(read_err)?);
        let kind = entry.header().entry_type();
        if kind == EntryType::GNUSparse || pax_is_sparse(&mut entry) {
            return Err(ImageError::BadEntry {
                entry: key,
                reason: SPARSE_REFUSED.to_string(),
            });
        }
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                let path = dir.join(files.len().to_string());
                let out = File::create_new(&path).map_err(ImageError::io("create", &path))?;
                let mut w = HashWriter::new(BufWriter::with_capacity(64 * 1024, out));
                io::copy(&mut entry, &mut w).map_err(|e| match e.kind() {
                    io::ErrorKind::StorageFull | io::ErrorKind::PermissionDenied => {
                        ImageError::io("write", &path)(e)
                    }
                    _ => read_err(e),
                })?;
                let (_, digest, size) = w.finish().map_err(ImageError::io("write", &path))?;
                files.insert(key, Staged { path, digest, size });
            }
            EntryType::Symlink | EntryType::Link => {
                let Some(target) = entry.link_name().map_err(read_err)? else {
                    continue;
                };
                let target = if entry.header().entry_type() == EntryType::Symlink {
                    let parent = Path::new(&key).parent().unwrap_or(Path::new(""));
                    archive_key(&parent.join(&target))
                } else {
                    archive_key(&target)
                };
                links.insert(key, target);
            }
            _ => {}
        }
    }
    Ok((files, links))
}

impl Source {
    /// Stages the tar (or tar.gz) archive at `archive` into the store.
    pub(crate) fn stage(store: &ImageStore, archive: &Path) -> Result<Source, ImageError> {
        let file = File::open(archive).map_err(ImageError::io("open", archive))?;
        let mut buf = BufReader::with_capacity(64 * 1024, file);
        let gzip = buf
            .fill_buf()
            .map_err(ImageError::io("read", archive))?
            .starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn Read> = if gzip {
            Box::new(super::gzip::GzReader::new(Box::new(buf)))
        } else {
            Box::new(buf)
        };
        // A gzipped archive is bounded like a layer (see `budget`).
        let origin = Origin {
            what: format!("archive {}", archive.display()),
            compressed: fs::metadata(archive)
                .map_err(ImageError::io("stat", archive))?
                .len(),
        };
        let mut budgeted = Budgeted::new(reader, origin, Some(Space::of(store.root())?))?;
        let dir = store.temp_path("import");
        fs::create_dir(&dir).map_err(ImageError::io("mkdir", &dir))?;
        let guard = RemoveOnDrop(Some(dir.clone()));
        let staged = stage_entries(&mut budgeted, &dir, archive);
        let (files, links) = match (staged, budgeted.take_error()) {
            (Err(_), Some(e)) => return Err(e),
            (r, _) => r?,
        };
        if files.is_empty() {
            return Err(ImageError::UnknownFormat {
                path: archive.to_path_buf(),
                reason: "no files in the tar archive".to_string(),
            });
        }
        Ok(Source::Archive {
            archive: archive.to_path_buf(),
            files,
            links,
            _dir: guard,
        })
    }

    /// The directory or archive being imported.
    pub(crate) fn location(&self) -> &Path {
        match self {
            Source::Dir(d) => d,
            Source::Archive { archive, .. } => archive,
        }
    }

    fn staged(&self, rel: &str) -> Option<&Staged> {
        let Source::Archive { files, links, .. } = self else {
            return None;
        };
        let mut key = archive_key(Path::new(rel));
        for _ in 0..16 {
            if let Some(s) = files.get(&key) {
                return Some(s);
            }
            key = links.get(&key)?.clone();
        }
        None
    }

    /// A path inside a directory source; `None` if it would leave it.
    fn dir_path(dir: &Path, rel: &str) -> Option<PathBuf> {
        let mut out = dir.to_path_buf();
        for c in Path::new(rel).components() {
            match c {
                Component::Normal(n) => out.push(n),
                Component::CurDir => {}
                _ => return None,
            }
        }
        Some(out)
    }

    fn missing(&self, rel: &str) -> ImageError {
        ImageError::MissingBlob {
            digest: rel.to_string(),
            location: self.location().to_path_buf(),
        }
    }

    /// Whether the source has a regular file at `rel`.
    pub(crate) fn has_file(&self, rel: &str) -> bool {
        match self {
            Source::Dir(d) => Source::dir_path(d, rel).is_some_and(|p| p.is_file()),
            Source::Archive { .. } => self.staged(rel).is_some(),
        }
    }

    /// Reads a small document (≤ 1 MiB).
    pub(crate) fn read_small(&self, rel: &str) -> Result<Vec<u8>, ImageError> {
        let path = match self {
            Source::Dir(d) => Source::dir_path(d, rel).ok_or_else(|| self.missing(rel))?,
            Source::Archive { .. } => self
                .staged(rel)
                .ok_or_else(|| self.missing(rel))?
                .path
                .clone(),
        };
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => self.missing(rel),
            _ => ImageError::io("open", &path)(e),
        })?;
        let what = format!("{rel} in {}", self.location().display());
        read_capped(file, JSON_LIMIT, &what).map_err(|e| e.with_path(&path))
    }

    /// Reads a small OCI layout blob and verifies its digest.
    pub(crate) fn read_blob_json(&self, digest: &Digest) -> Result<Vec<u8>, ImageError> {
        let rel = blob_rel(digest);
        let bytes = self.read_small(&rel).map_err(|e| match e {
            ImageError::MissingBlob { location, .. } => ImageError::MissingBlob {
                digest: digest.to_string(),
                location,
            },
            other => other,
        })?;
        let what = format!("blob {digest} in {}", self.location().display());
        Digest::of_bytes(&bytes).verify(digest, &what)?;
        Ok(bytes)
    }

    /// Puts the file at `rel` into the store's blobs, verifying it against
    /// `expected` when given. Returns its digest and size.
    pub(crate) fn ingest(
        &self,
        store: &ImageStore,
        rel: &str,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), ImageError> {
        let what = format!("{rel} in {}", self.location().display());
        match self {
            Source::Dir(d) => {
                if let Some(e) = expected {
                    if let Ok(m) = fs::metadata(store.blob_path(e)) {
                        return Ok((e.clone(), m.len()));
                    }
                }
                let path = Source::dir_path(d, rel).ok_or_else(|| self.missing(rel))?;
                let file = File::open(&path).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => self.missing(rel),
                    _ => ImageError::io("open", &path)(e),
                })?;
                store.put_blob(file, expected, &what)
            }
            Source::Archive { .. } => {
                let staged = self.staged(rel).ok_or_else(|| self.missing(rel))?;
                if let Some(e) = expected {
                    staged.digest.verify(e, &what)?;
                }
                store.adopt_blob(&staged.path, &staged.digest)?;
                Ok((staged.digest.clone(), staged.size))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_keys_are_lexically_normalized() {
        assert_eq!(
            archive_key(Path::new("./blobs/sha256/ab")),
            "blobs/sha256/ab"
        );
        assert_eq!(archive_key(Path::new("/a/./b/../c")), "a/c");
        assert_eq!(archive_key(Path::new("../../x")), "x");
    }

    #[test]
    fn directory_sources_refuse_paths_that_leave_the_directory() {
        let d = Path::new("/src");
        assert_eq!(
            Source::dir_path(d, "./a/b"),
            Some(PathBuf::from("/src/a/b"))
        );
        assert_eq!(Source::dir_path(d, "../etc/shadow"), None);
        assert_eq!(Source::dir_path(d, "/etc/shadow"), None);
    }
}
