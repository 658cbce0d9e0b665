//! Bounds on what decompressing and unpacking may write: a layer (or a
//! gzipped archive being staged) may expand to at most
//! [`MAX_EXPANSION`] × its compressed size + [`EXPANSION_ALLOWANCE`], and
//! never leave less than [`free_reserve`] bytes free on the store's
//! filesystem.
//!
//! Why these numbers: deflate's ceiling is about 1032:1, and only
//! synthetic input (long runs of one byte) gets near it; real layers
//! compress 2–5×, and even a layer of mostly zero-filled files stays far
//! below 100×. The fixed allowance covers small layers of that kind (a
//! 100 KiB blob may still unpack to 74 MiB). A 2 MB gzip bomb that expands
//! to 2 GiB is stopped after about 264 MB. A plain (uncompressed) tar is
//! bounded by its own size anyway.
//!
//! The free space is read with `fstatvfs` before unpacking starts and again
//! every [`SPACE_CHECK_EVERY`] bytes of the stream (a tar of tiny files
//! uses more disk than its byte count, and other writers share the disk).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::{ImageError, sys};

/// Decompressed bytes allowed per compressed byte.
pub const MAX_EXPANSION: u64 = 100;
/// Decompressed bytes allowed on top of the ratio, for small blobs.
pub const EXPANSION_ALLOWANCE: u64 = 64 << 20;
/// Bytes that always stay free on the store's filesystem: 5 % of it, and
/// at least 64 MiB (the state file, logs and pods need room too).
pub fn free_reserve(fs_total: u64) -> u64 {
    (fs_total / 20).max(64 << 20)
}
/// How often (in stream bytes) the free space is read again.
pub const SPACE_CHECK_EVERY: u64 = 4 << 20;

/// The most decompressed bytes a blob of `compressed` bytes may produce.
pub fn expansion_limit(compressed: u64) -> u64 {
    compressed
        .saturating_mul(MAX_EXPANSION)
        .saturating_add(EXPANSION_ALLOWANCE)
}

/// The filesystem whose free space bounds an unpack.
#[derive(Debug)]
pub(crate) struct Space {
    /// Any file or directory on that filesystem (the store's root).
    dir: File,
    path: PathBuf,
    /// Bytes that must stay free.
    reserve: u64,
}

impl Space {
    /// Watches the filesystem of `path`, keeping [`free_reserve`] free.
    pub(crate) fn of(path: &Path) -> Result<Space, ImageError> {
        let dir = File::open(path).map_err(ImageError::io("open", path))?;
        let (_, total) = sys::fs_space(&dir).map_err(ImageError::io("statvfs", path))?;
        Ok(Space {
            dir,
            path: path.to_path_buf(),
            reserve: free_reserve(total),
        })
    }

    /// Like [`Space::of`] with an explicit reserve (tests).
    #[cfg(test)]
    pub(crate) fn with_reserve(path: &Path, reserve: u64) -> Space {
        Space {
            dir: File::open(path).unwrap(),
            path: path.to_path_buf(),
            reserve,
        }
    }

    /// Bytes free now beyond the reserve, or the error if none are.
    fn headroom(&self) -> Result<u64, ImageError> {
        let (avail, _) = sys::fs_space(&self.dir).map_err(ImageError::io("statvfs", &self.path))?;
        if avail <= self.reserve {
            return Err(self.no_space(avail));
        }
        Ok(avail - self.reserve)
    }

    fn no_space(&self, available: u64) -> ImageError {
        ImageError::NoSpace {
            path: self.path.clone(),
            available,
            reserve: self.reserve,
        }
    }
}

/// What a [`Budgeted`] stream is unpacked from, for its errors.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) what: String,
    pub(crate) compressed: u64,
}

/// A decompressed stream that fails once it passes its byte budget or the
/// filesystem's free space drops under the reserve. The error it returns
/// to its reader is an `io::Error`; [`Budgeted::take_error`] gives the
/// [`ImageError`] that explains it.
#[derive(Debug)]
pub(crate) struct Budgeted<R> {
    inner: R,
    read: u64,
    limit: u64,
    origin: Origin,
    space: Option<Space>,
    next_check: u64,
    error: Option<ImageError>,
}

impl<R: Read> Budgeted<R> {
    /// `inner` may yield at most [`expansion_limit`] of the compressed
    /// size; with `space`, the filesystem must keep its reserve (checked
    /// now, then every [`SPACE_CHECK_EVERY`] bytes).
    pub(crate) fn new(
        inner: R,
        origin: Origin,
        space: Option<Space>,
    ) -> Result<Budgeted<R>, ImageError> {
        if let Some(s) = &space {
            s.headroom()?;
        }
        Ok(Budgeted {
            inner,
            read: 0,
            limit: expansion_limit(origin.compressed),
            origin,
            space,
            next_check: SPACE_CHECK_EVERY,
            error: None,
        })
    }

    /// Why the stream was stopped, if it was.
    pub(crate) fn take_error(&mut self) -> Option<ImageError> {
        self.error.take()
    }

    fn trip(&mut self, e: ImageError) -> io::Error {
        let msg = e.to_string();
        self.error = Some(e);
        io::Error::other(msg)
    }
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.error.is_some() {
            return Err(io::Error::other("over the unpack budget"));
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            let e = ImageError::LayerTooLarge {
                what: self.origin.what.clone(),
                limit: self.limit,
                compressed: self.origin.compressed,
            };
            return Err(self.trip(e));
        }
        if self.read >= self.next_check {
            self.next_check = self.read + SPACE_CHECK_EVERY;
            if let Some(e) = self.space.as_ref().and_then(|s| s.headroom().err()) {
                return Err(self.trip(e));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_a_ratio_of_the_compressed_size_plus_an_allowance() {
        assert_eq!(expansion_limit(0), 64 << 20);
        assert_eq!(expansion_limit(2_000_000), 200_000_000 + (64 << 20));
        assert_eq!(expansion_limit(u64::MAX), u64::MAX);
        assert_eq!(free_reserve(1 << 30), 64 << 20);
        assert_eq!(free_reserve(100 << 30), 5 << 30);
    }

    #[test]
    fn a_stream_over_its_budget_fails_with_the_reason() {
        let data = vec![0u8; 1000];
        let origin = Origin {
            what: "layer x".into(),
            compressed: 0,
        };
        let mut r = Budgeted::new(&data[..], origin, None).unwrap();
        r.limit = 999;
        let err = io::copy(&mut r, &mut io::sink()).unwrap_err();
        assert!(err.to_string().contains("layer x"), "{err}");
        match r.take_error() {
            Some(ImageError::LayerTooLarge { limit: 999, .. }) => {}
            other => panic!("{other:?}"),
        }
        let mut r = Budgeted::new(
            &data[..],
            Origin {
                what: "y".into(),
                compressed: 0,
            },
            None,
        )
        .unwrap();
        r.limit = 1000;
        assert_eq!(io::copy(&mut r, &mut io::sink()).unwrap(), 1000);
        assert!(r.take_error().is_none());
    }

    #[test]
    fn a_reserve_above_the_free_space_refuses_before_reading() {
        let tmp = tempfile::tempdir().unwrap();
        let space = Space::with_reserve(tmp.path(), u64::MAX);
        let origin = Origin {
            what: "z".into(),
            compressed: 1,
        };
        match Budgeted::new(&b""[..], origin, Some(space)) {
            Err(ImageError::NoSpace { reserve, .. }) => assert_eq!(reserve, u64::MAX),
            other => panic!("{other:?}"),
        }
    }
}
