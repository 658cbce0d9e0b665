//! The CRI container log writer (the format kubelet and containerd use).
//!
//! Each chunk of container output becomes records of the form
//!
//! ```text
//! 2026-11-22T10:00:00.123456789Z stdout F hello world
//! ```
//!
//! i.e. `<RFC 3339 nano timestamp> <stdout|stderr> <F|P> <content>\n`. `F`
//! ends a line, `P` is a partial line continued by the next record of the
//! same stream. As in containerd, a line longer than [`MAX_LINE`] bytes is
//! split into `P` records of exactly [`MAX_LINE`] bytes, the rest of a stream
//! that ends without a newline is written as a `P` record, and a `\r` just
//! before the `\n` is dropped.
//!
//! # Files and rotation
//!
//! One writer owns one file, `<dir>/<instance>.log` (the path the agent puts
//! in `ContainerConfig::log_path`). Before a record would make the file exceed
//! `max_bytes`, the file is rotated:
//!
//! ```text
//! N.log.{max_files-1} is deleted, N.log.{k} → N.log.{k+1}, N.log → N.log.1
//! ```
//!
//! so at most `max_files` files exist: `N.log` (newest) and `N.log.1` …
//! `N.log.{max_files-1}` (oldest). [`log_files_oldest_first`] lists them in
//! reading order for `picolet logs`. With `max_files <= 1` the file is
//! truncated instead; `max_bytes == 0` disables rotation. A single record
//! larger than `max_bytes` still goes whole into a fresh file.
//!
//! No fd other than the open log file is held; nothing here spawns threads.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Longest content of one record (containerd's `maxLen`, 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

/// Errors of the log writer; each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("open log file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write log file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("rotate log file {from} to {to}: {source}")]
    Rotate {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The word written in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// Writes one container instance's stdout and stderr into a CRI log file.
#[derive(Debug)]
pub struct CriLog {
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
    file: File,
    /// Bytes in the current file.
    size: u64,
    /// Per stream, the start of a line not yet ended by `\n`.
    pending: [Vec<u8>; 2],
    /// One record being assembled (reused).
    record: Vec<u8>,
}

/// The `k`-th rotated file of `path` (`N.log.k`); `k == 0` is `path` itself.
pub fn rotated_path(path: &Path, k: u32) -> PathBuf {
    if k == 0 {
        return path.to_path_buf();
    }
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{k}"));
    PathBuf::from(s)
}

/// The existing files of one log, oldest first (`N.log.{max_files-1}` … `N.log.1`, `N.log`).
pub fn log_files_oldest_first(path: &Path, max_files: u32) -> Vec<PathBuf> {
    (0..max_files.max(1))
        .rev()
        .map(|k| rotated_path(path, k))
        .filter(|p| p.exists())
        .collect()
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|source| LogError::Open {
            path: path.to_path_buf(),
            source,
        })
}

impl CriLog {
    /// Opens (creating it and its directory if needed) the log file for appending.
    pub fn create(path: &Path, max_bytes: u64, max_files: u32) -> Result<CriLog, LogError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| LogError::Open {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let file = open_append(path)?;
        let size = file
            .metadata()
            .map_err(|source| LogError::Open {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        Ok(CriLog {
            path: path.to_path_buf(),
            max_bytes,
            max_files,
            file,
            size,
            pending: [Vec::new(), Vec::new()],
            record: Vec::new(),
        })
    }

    /// The current file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a chunk of output read from `stream` at `now_ns` (Unix ns).
    /// Complete lines are written; an unfinished line waits for more data,
    /// unless it reached [`MAX_LINE`].
    pub fn write(&mut self, stream: Stream, mut data: &[u8], now_ns: i64) -> Result<(), LogError> {
        let i = stream.index();
        while !data.is_empty() {
            let newline = data.iter().position(|&b| b == b'\n');
            let seg = newline.unwrap_or(data.len());
            let held = self.pending[i].len();
            if held + seg > MAX_LINE {
                let take = MAX_LINE - held;
                self.emit(stream, b'P', &data[..take], now_ns)?;
                data = &data[take..];
                continue;
            }
            match newline {
                Some(n) => {
                    let mut line = &data[..n];
                    if line.last() == Some(&b'\r') {
                        line = &line[..n - 1];
                    } else if line.is_empty() && self.pending[i].last() == Some(&b'\r') {
                        self.pending[i].pop();
                    }
                    self.emit(stream, b'F', line, now_ns)?;
                    data = &data[n + 1..];
                }
                None => {
                    self.pending[i].extend_from_slice(data);
                    data = &[];
                }
            }
        }
        Ok(())
    }

    /// The stream ended: writes what is left of its last line as a `P` record.
    pub fn finish(&mut self, stream: Stream, now_ns: i64) -> Result<(), LogError> {
        if self.pending[stream.index()].is_empty() {
            return Ok(());
        }
        self.emit(stream, b'P', &[], now_ns)
    }

    /// Writes one record: the pending bytes of `stream`, then `tail`.
    fn emit(&mut self, stream: Stream, tag: u8, tail: &[u8], now_ns: i64) -> Result<(), LogError> {
        let held = std::mem::take(&mut self.pending[stream.index()]);
        let mut rec = std::mem::take(&mut self.record);
        rec.clear();
        rec.extend_from_slice(crate::clock::rfc3339_nano(now_ns).as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(stream.as_str().as_bytes());
        rec.push(b' ');
        rec.push(tag);
        rec.push(b' ');
        rec.extend_from_slice(&held);
        rec.extend_from_slice(tail);
        rec.push(b'\n');
        let result = self.append(&rec);
        // Keep the buffers' capacity for the next record.
        let mut held = held;
        held.clear();
        self.pending[stream.index()] = held;
        self.record = rec;
        result
    }

    fn append(&mut self, rec: &[u8]) -> Result<(), LogError> {
        if self.max_bytes > 0 && self.size > 0 && self.size + rec.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(rec).map_err(|source| LogError::Write {
            path: self.path.clone(),
            source,
        })?;
        self.size += rec.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        if self.max_files > 1 {
            let oldest = rotated_path(&self.path, self.max_files - 1);
            match std::fs::remove_file(&oldest) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(LogError::Rotate {
                        from: oldest.clone(),
                        to: oldest,
                        source,
                    });
                }
            }
            for k in (0..self.max_files - 1).rev() {
                let from = rotated_path(&self.path, k);
                let to = rotated_path(&self.path, k + 1);
                match std::fs::rename(&from, &to) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(LogError::Rotate { from, to, source }),
                }
            }
            self.file = open_append(&self.path)?;
        } else {
            self.file.set_len(0).map_err(|source| LogError::Write {
                path: self.path.clone(),
                source,
            })?;
        }
        self.size = 0;
        Ok(())
    }
}

/// One parsed record of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub timestamp: &'a str,
    pub stream: Stream,
    /// `true` for `P`: the line continues in the next record of this stream.
    pub partial: bool,
    pub content: &'a [u8],
}

/// Parses one record (without its trailing `\n`); `None` if it is malformed.
pub fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let timestamp = std::str::from_utf8(parts.next()?).ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    let content = parts.next().unwrap_or(&[]);
    Some(Record {
        timestamp,
        stream,
        partial,
        content,
    })
}

#[cfg(test)]
mod tests;
