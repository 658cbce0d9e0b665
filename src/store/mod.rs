//! The state file (DESIGN §4): its envelope codec and its atomic, SD-card
//! friendly storage.
//!
//! # Format
//! `b"PCLT"`, then `postcard::to_stdvec_crc32(payload)`: the postcard bytes
//! of the payload followed by their CRC-32/ISCSI (Castagnoli), little endian.
//! The payload is meant to be `enum StateFile { V1(..) }`: the variant index
//! is the version, so only ever *append* variants and migrate on load. The
//! CRC covers the payload, not the magic. Reads are capped
//! ([`DEFAULT_MAX_SIZE`], configurable): a bigger file is an error and is
//! never read whole.
//!
//! # Rules for payload types
//! postcard is not self-describing: the bytes carry no field names or
//! types. So in payload types do **not** use `#[serde(untagged)]`,
//! `#[serde(flatten)]`, `skip_serializing_if`, `deserialize_any`-based
//! types (e.g. `serde_json::Value`), or internally/adjacently tagged enums;
//! do not reorder, remove or insert fields or variants of a saved type —
//! add a new `StateFile` variant instead. Keep saved structs apart from
//! live objects.
//!
//! # Files
//! In the state directory (`--state-dir`), and nothing else:
//! - `state.bin`: the current state;
//! - `state.bin.prev`: the previous good state, used when `state.bin` is
//!   missing or corrupt;
//! - `state.bin.tmp`: exists only while [`StateStore::save`] runs (or after
//!   a crash during it; it is ignored, and unlinked by the next save). It
//!   is created with `O_CREAT|O_EXCL|O_NOFOLLOW` after unlinking whatever
//!   was there, so a symlink planted at that name is removed, never
//!   followed;
//! - `state.reserve`: zeros, allocated so that the next save has room on a
//!   full filesystem (see below).
//!
//! # The reserve
//! A container that fills its writable layer fills the state dir's
//! filesystem. So the store keeps `state.reserve` allocated (explicit zero
//! writes, not a sparse `set_len`): [`reserve_target`] bytes, twice the
//! state's size rounded up to 64 KiB, at least [`RESERVE_MIN`] and at most
//! the size cap. When writing `state.bin.tmp` fails with `ENOSPC` or
//! `EDQUOT`, [`StateStore::save`] deletes the reserve (and, if that is not
//! enough, `state.bin.prev`) and writes again. After every save (also an
//! unchanged one) the reserve is grown back to its target, as far as the
//! free space allows: it comes back once space returns.
//!
//! [`StateStore::save`] writes nothing when the encoded bytes equal those
//! last written or loaded, so an idle agent writes 0 bytes.

#[cfg(test)]
mod tests;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The first four bytes of a state file.
pub const MAGIC: [u8; 4] = *b"PCLT";
/// The default cap on a state file's size, on read and on write.
pub const DEFAULT_MAX_SIZE: u64 = 16 << 20;
/// The current state, in the state directory.
pub const FILE_NAME: &str = "state.bin";
/// The previous good state.
pub const PREV_NAME: &str = "state.bin.prev";
/// The file being written by `save`.
pub const TMP_NAME: &str = "state.bin.tmp";
/// The space kept for the next save.
pub const RESERVE_NAME: &str = "state.reserve";
/// The smallest reserve.
pub const RESERVE_MIN: u64 = 64 << 10;

/// The reserve kept for a state of `state_len` bytes under a size cap of
/// `max_size`: `2 × state_len` rounded up to 64 KiB, within
/// [`RESERVE_MIN`]`..=max(max_size, RESERVE_MIN)`.
pub fn reserve_target(state_len: u64, max_size: u64) -> u64 {
    let unit = RESERVE_MIN;
    let want = state_len
        .saturating_mul(2)
        .div_ceil(unit)
        .saturating_mul(unit);
    want.clamp(RESERVE_MIN, max_size.max(RESERVE_MIN))
}

const CRC_LEN: usize = 4;
static CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// Everything that can go wrong with the state file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{len} bytes is over the {max}-byte cap")]
    TooBig { len: u64, max: u64 },
    #[error("truncated: {len} bytes cannot hold the magic and the CRC")]
    Truncated { len: usize },
    #[error("bad magic {found:02x?}: not a picolet state file")]
    BadMagic { found: [u8; 4] },
    #[error(
        "CRC mismatch: stored {stored:#010x}, computed {computed:#010x}{}",
        if *ends_early { " (the payload also ends early: truncated?)" } else { "" }
    )]
    CrcMismatch {
        stored: u32,
        computed: u32,
        /// The payload needs more bytes than there are: likely a cut file.
        ends_early: bool,
    },
    #[error("the CRC is good but the payload does not decode (unknown version?): {0}")]
    Payload(postcard::Error),
    #[error("cannot encode the state: {0}")]
    Encode(postcard::Error),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: Box<StoreError>,
    },
    #[error("no usable state in {dir}: {main}; and {prev}")]
    BothUnusable {
        dir: PathBuf,
        main: Box<StoreError>,
        prev: Box<StoreError>,
    },
}

impl StoreError {
    /// True for an `Io` error whose cause is a full filesystem or quota.
    pub fn is_no_space(&self) -> bool {
        matches!(self, StoreError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)))
    }

    /// True for an `Io` error whose cause is a missing file.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Encodes `value` as a state file (magic + postcard + CRC), refusing a
/// result over [`DEFAULT_MAX_SIZE`].
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    encode_with_limit(value, DEFAULT_MAX_SIZE)
}

/// [`encode`] with a size cap of `max_size` bytes.
pub fn encode_with_limit<T: Serialize>(value: &T, max_size: u64) -> Result<Vec<u8>, StoreError> {
    let body = postcard::to_stdvec_crc32(value, CRC.digest()).map_err(StoreError::Encode)?;
    let len = (MAGIC.len() + body.len()) as u64;
    if len > max_size {
        return Err(StoreError::TooBig { len, max: max_size });
    }
    let mut out = Vec::with_capacity(len as usize);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a state file, with the [`DEFAULT_MAX_SIZE`] cap.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    decode_with_limit(bytes, DEFAULT_MAX_SIZE)
}

/// Decodes a state file of at most `max_size` bytes. The checks run in
/// this order: size cap, magic, length, CRC, payload.
pub fn decode_with_limit<T: DeserializeOwned>(
    bytes: &[u8],
    max_size: u64,
) -> Result<T, StoreError> {
    #[cfg(test)]
    crate::testutil::fuzz_seed("state_file", bytes);
    let body = match check_envelope(bytes, max_size) {
        Ok(body) => body,
        Err(StoreError::CrcMismatch {
            stored, computed, ..
        }) => {
            // Knowing the type, tell whether the payload would need more
            // bytes than the file has (a cut file, or a corrupted length).
            let ends_early = match postcard::take_from_bytes::<T>(&bytes[MAGIC.len()..]) {
                Err(postcard::Error::DeserializeUnexpectedEnd) => true,
                Ok((_, rest)) => rest.len() < CRC_LEN,
                Err(_) => false,
            };
            return Err(StoreError::CrcMismatch {
                stored,
                computed,
                ends_early,
            });
        }
        Err(e) => return Err(e),
    };
    // The CRC matched, so any error here is a payload that does not fit
    // `T`: an unknown version, or a layout change without a new version.
    // Read with the same (slice) reader as above, not `from_bytes_crc32`:
    // each reader is a whole copy of `T`'s deserializer (binary size). A
    // payload that ends before its CRC is what `from_bytes_crc32` saw: the
    // bytes after it are not its CRC.
    let payload = &body[..body.len() - CRC_LEN];
    match postcard::take_from_bytes::<T>(payload) {
        Ok((value, [])) => Ok(value),
        Ok(_) => Err(StoreError::Payload(postcard::Error::DeserializeBadCrc)),
        Err(e) => Err(StoreError::Payload(e)),
    }
}

/// Checks the cap, magic and CRC without knowing the payload type; returns
/// the postcard body (payload + CRC).
fn check_envelope(bytes: &[u8], max_size: u64) -> Result<&[u8], StoreError> {
    let len = bytes.len() as u64;
    if len > max_size {
        return Err(StoreError::TooBig { len, max: max_size });
    }
    let mut found = [0u8; 4];
    let n = bytes.len().min(MAGIC.len());
    found[..n].copy_from_slice(&bytes[..n]);
    if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) {
        return Err(StoreError::Truncated { len: bytes.len() });
    }
    if found != MAGIC || bytes.len() < MAGIC.len() {
        return Err(StoreError::BadMagic { found });
    }
    if bytes.len() < MAGIC.len() + CRC_LEN {
        return Err(StoreError::Truncated { len: bytes.len() });
    }
    let body = &bytes[MAGIC.len()..];
    let (payload, crc) = body.split_at(body.len() - CRC_LEN);
    let mut stored = [0u8; CRC_LEN];
    stored.copy_from_slice(crc);
    let stored = u32::from_le_bytes(stored);
    let computed = CRC.checksum(payload);
    if stored != computed {
        return Err(StoreError::CrcMismatch {
            stored,
            computed,
            ends_early: false,
        });
    }
    Ok(body)
}

/// A decoded state and where it came from.
#[derive(Debug)]
pub struct Loaded<T> {
    pub value: T,
    /// `Some(why state.bin was rejected)` when `value` came from
    /// `state.bin.prev` (state.bin missing, unreadable or corrupt). The next
    /// [`StateStore::save`] then rewrites `state.bin` even if nothing changed.
    pub recovered: Option<StoreError>,
}

/// The state file in one directory. See the module docs for the files.
#[derive(Debug)]
pub struct StateStore {
    dir: PathBuf,
    max_size: u64,
    /// The bytes `state.bin` is known to hold (last loaded or written).
    last: Option<Vec<u8>>,
    /// The reserve's allocated size as last written; `None` until checked.
    reserve_len: Option<u64>,
}

impl StateStore {
    /// A store in `dir` (which must exist) with the default size cap.
    pub fn new(dir: impl Into<PathBuf>) -> StateStore {
        StateStore {
            dir: dir.into(),
            max_size: DEFAULT_MAX_SIZE,
            last: None,
            reserve_len: None,
        }
    }

    /// Sets the size cap for reads and writes.
    pub fn with_max_size(mut self, max_size: u64) -> StateStore {
        self.max_size = max_size;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/state.bin`.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// `<dir>/state.reserve`.
    pub fn reserve_path(&self) -> PathBuf {
        self.dir.join(RESERVE_NAME)
    }

    /// `<dir>/state.bin.prev`.
    pub fn prev_path(&self) -> PathBuf {
        self.dir.join(PREV_NAME)
    }

    /// Loads `state.bin`, or `state.bin.prev` when `state.bin` is missing or
    /// unusable. `Ok(None)` when neither exists; an error naming both when
    /// neither is usable.
    pub fn load<T: DeserializeOwned>(&mut self) -> Result<Option<Loaded<T>>, StoreError> {
        let main = self.path();
        let main_err = match self.read_decode(&main) {
            Ok((value, bytes)) => {
                self.last = Some(bytes);
                return Ok(Some(Loaded {
                    value,
                    recovered: None,
                }));
            }
            Err(e) => e,
        };
        // `state.bin` does not hold what we loaded: the next save must
        // write even an unchanged state.
        self.last = None;
        let prev = self.prev_path();
        match self.read_decode(&prev) {
            Ok((value, _)) => Ok(Some(Loaded {
                value,
                recovered: Some(main_err),
            })),
            Err(prev_err) if main_err.is_not_found() && prev_err.is_not_found() => Ok(None),
            Err(prev_err) => Err(StoreError::BothUnusable {
                dir: self.dir.clone(),
                main: Box::new(main_err),
                prev: Box::new(prev_err),
            }),
        }
    }

    /// Saves `value`. Returns `Ok(false)` without touching the disk when its
    /// bytes equal those last loaded or written. Otherwise writes
    /// `state.bin.tmp`, fsyncs it, keeps the current `state.bin` as
    /// `state.bin.prev` (only if it is a valid state file: a corrupt one
    /// never replaces a good `.prev`), renames the tmp file to `state.bin`
    /// and fsyncs the directory. `state.bin` exists at every instant.
    ///
    /// On a full filesystem the reserve (then `state.bin.prev`) is freed
    /// and the write retried; either way the reserve is then grown back
    /// towards its target (see the module docs).
    pub fn save<T: Serialize>(&mut self, value: &T) -> Result<bool, StoreError> {
        let bytes = encode_with_limit(value, self.max_size)?;
        if self.last.as_deref() == Some(&bytes[..]) {
            self.refill_reserve(bytes.len() as u64);
            return Ok(false);
        }
        let main_known_good = self.last.is_some();
        // Until this save completes, `state.bin` may hold either version.
        self.last = None;
        let mut result = self.write_files(&bytes, main_known_good);
        // Free space step by step: the reserve first, then the previous
        // copy (`state.bin`, untouched until the rename, stays the fallback).
        for free in [Self::free_reserve as fn(&mut Self), Self::free_prev] {
            match &result {
                Err(e) if e.is_no_space() => {
                    log::warn!("saving state: {e}; freeing space kept for it and retrying");
                    let _ = fs::remove_file(self.dir.join(TMP_NAME));
                    free(self);
                    result = self.write_files(&bytes, main_known_good);
                }
                _ => break,
            }
        }
        if result.is_err() {
            let _ = fs::remove_file(self.dir.join(TMP_NAME));
        }
        result?;
        let len = bytes.len() as u64;
        self.last = Some(bytes);
        self.refill_reserve(len);
        Ok(true)
    }

    fn free_reserve(&mut self) {
        let _ = fs::remove_file(self.reserve_path());
        self.reserve_len = Some(0);
    }

    fn free_prev(&mut self) {
        let _ = fs::remove_file(self.prev_path());
    }

    /// The reserve's current allocated size (what `state.reserve` holds).
    pub fn reserve_len(&self) -> Option<u64> {
        self.reserve_len
    }

    /// Grows `state.reserve` to [`reserve_target`] for a state of
    /// `state_len` bytes, writing zeros in 64 KiB chunks until done or the
    /// filesystem is full (what was written stays: a partial reserve is
    /// still room). Cheap when already there: no system call.
    fn refill_reserve(&mut self, state_len: u64) {
        let target = reserve_target(state_len, self.max_size);
        if self.reserve_len.is_some_and(|have| have >= target) {
            return;
        }
        let path = self.reserve_path();
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path);
        let mut f = match f {
            Ok(f) => f,
            Err(e) => {
                log::debug!("state reserve {}: {e}", path.display());
                self.reserve_len = Some(0);
                return;
            }
        };
        let mut have = match f.metadata() {
            // A sparse or foreign file counts as empty: rewrite it.
            Ok(m) if m.is_file() && m.blocks() * 512 >= m.len() => m.len(),
            _ => 0,
        };
        if have >= target {
            self.reserve_len = Some(have);
            return;
        }
        let zeros = vec![0u8; RESERVE_MIN as usize];
        let mut result = io::Seek::seek(&mut f, io::SeekFrom::Start(have)).map(|_| ());
        while result.is_ok() && have < target {
            let n = (target - have).min(zeros.len() as u64) as usize;
            match f.write(&zeros[..n]) {
                Ok(0) => break,
                Ok(w) => have += w as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => result = Err(e),
            }
        }
        // Blocks written but not allocated (delayed allocation) are
        // allocated here, or fail here.
        if result.is_ok() {
            result = f.sync_data();
        }
        if let Err(e) = result {
            log::debug!(
                "state reserve {}: {have} of {target} bytes: {e}",
                path.display()
            );
            // Keep only what is really allocated.
            have = match f.metadata() {
                Ok(m) => (m.blocks() * 512).min(have),
                Err(_) => 0,
            };
            let _ = f.set_len(have);
        }
        self.reserve_len = Some(have);
    }

    fn write_files(&self, bytes: &[u8], main_known_good: bool) -> Result<(), StoreError> {
        let main = self.path();
        let prev = self.prev_path();
        let tmp = self.dir.join(TMP_NAME);
        let mut f = create_fresh(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(bytes).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        drop(f);

        if main_known_good || self.main_is_valid() {
            match fs::remove_file(&prev) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &prev)(e)),
            }
            // A hard link keeps `state.bin` in place until the rename below
            // replaces it atomically; without hard links, rename it.
            if fs::hard_link(&main, &prev).is_err() {
                fs::rename(&main, &prev).map_err(io_err("rename to .prev", &main))?;
            }
        }
        fs::rename(&tmp, &main).map_err(io_err("rename", &tmp))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync directory", &self.dir))
    }

    /// Whether `state.bin` exists and passes the envelope checks.
    fn main_is_valid(&self) -> bool {
        match read_capped(&self.path(), self.max_size) {
            Ok(bytes) => check_envelope(&bytes, self.max_size).is_ok(),
            Err(_) => false,
        }
    }

    fn read_decode<T: DeserializeOwned>(&self, path: &Path) -> Result<(T, Vec<u8>), StoreError> {
        let bytes = read_capped(path, self.max_size)?;
        match decode_with_limit(&bytes, self.max_size) {
            Ok(v) => Ok((v, bytes)),
            Err(e) => Err(StoreError::Corrupt {
                path: path.to_owned(),
                source: Box::new(e),
            }),
        }
    }
}

/// Creates `path` anew (mode 0600) for writing. A leftover at `path` (a
/// crashed save's file, or a symlink planted to redirect the write) is
/// unlinked first, never followed, and the file is created with
/// `O_CREAT|O_EXCL|O_NOFOLLOW`: if anything appears at `path` in between,
/// the open fails instead of writing through it.
pub(crate) fn create_fresh(path: &Path) -> io::Result<File> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Reads `path`, failing with `TooBig` (and reading at most `max + 1`
/// bytes) when it is over `max` bytes.
fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, StoreError> {
    let f = File::open(path).map_err(io_err("open", path))?;
    let len = f.metadata().map_err(io_err("stat", path))?.len();
    let too_big = |len| StoreError::Corrupt {
        path: path.to_owned(),
        source: Box::new(StoreError::TooBig { len, max }),
    };
    if len > max {
        return Err(too_big(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err("read", path))?;
    if bytes.len() as u64 > max {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}
