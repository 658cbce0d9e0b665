//! A container's termination message, as the kubelet reads it
//! (`getTerminationMessage`, `readLastStringFromContainerLogs`). Pure: the
//! agent reads the bytes (`agent::container::termination_message`) and
//! these rules make the message.
//!
//! - The file at `terminationMessagePath` (default `/dev/termination-log`)
//!   is a per-instance host file bind-mounted into the container; its last
//!   [`MAX_FILE_BYTES`] are the message.
//! - With `terminationMessagePolicy: FallbackToLogsOnError`, a container
//!   that failed (exit code not 0) and left the file empty gets the tail of
//!   its log instead: the last [`LOG_LINES`] lines, then the last
//!   [`LOG_BYTES`] of those.
//! - A pod's messages together stay within [`MAX_POD_BYTES`]: each is cut
//!   to its first [`pod_share`] bytes (the kubelet's status manager,
//!   `normalizeStatus`: 12 KiB divided evenly among the pod's containers
//!   and init containers).

use crate::runtime::log::parse_record;
use crate::spec::TerminationMessagePolicy;

/// The kubelet's `MaxContainerTerminationMessageLength`.
pub const MAX_FILE_BYTES: usize = 4 * 1024;
/// The kubelet's `MaxContainerTerminationMessageLogLines`.
pub const LOG_LINES: usize = 80;
/// The kubelet's `MaxContainerTerminationMessageLogLength`.
pub const LOG_BYTES: usize = 2 * 1024;
/// The kubelet's `MaxPodTerminationMessageLogLength`.
pub const MAX_POD_BYTES: usize = 12 * 1024;

/// One container's share of [`MAX_POD_BYTES`], for a pod of `containers`
/// containers and init containers.
pub fn pod_share(containers: usize) -> usize {
    MAX_POD_BYTES / containers.max(1)
}

/// `message` cut to its first `share` bytes, at a character boundary (the
/// kubelet cuts the bytes; a Go string may hold half a character, ours may
/// not).
pub fn cut(mut message: String, share: usize) -> String {
    if message.len() > share {
        let mut at = share;
        while !message.is_char_boundary(at) {
            at -= 1;
        }
        message.truncate(at);
    }
    message
}

/// How much of the end of the log file is read for the fallback: enough
/// for [`LOG_BYTES`] of content behind the CRI prefixes of [`LOG_LINES`]
/// records.
pub const LOG_READ_BYTES: u64 = 16 * 1024;

/// The file policy's message from the file's last bytes, and whether the
/// logs are to be read instead (`file` is `None` when the file is
/// missing).
pub fn from_file(
    file: Option<&[u8]>,
    policy: TerminationMessagePolicy,
    exit_code: i32,
) -> (String, bool) {
    let fallback = policy == TerminationMessagePolicy::FallbackToLogsOnError && exit_code != 0;
    match file {
        None => (String::new(), fallback),
        Some(b) => {
            let b = &b[b.len().saturating_sub(MAX_FILE_BYTES)..];
            (
                String::from_utf8_lossy(b).into_owned(),
                fallback && b.is_empty(),
            )
        }
    }
}

/// The message from the end of a CRI log file: `chunk` is its last bytes
/// (`whole` when it is the whole file, so its first line is complete).
/// Both streams, the last [`LOG_LINES`] lines, then the last [`LOG_BYTES`].
pub fn from_log(chunk: &[u8], whole: bool) -> String {
    let mut lines = chunk.split(|&b| b == b'\n');
    if !whole {
        // The first line was cut by where the read began.
        lines.next();
    }
    let mut content: Vec<u8> = Vec::new();
    let mut starts: Vec<usize> = Vec::new();
    let mut open = false;
    for r in lines.filter_map(parse_record) {
        if !open {
            starts.push(content.len());
        }
        content.extend_from_slice(r.content);
        open = r.partial;
        if !open {
            content.push(b'\n');
        }
    }
    let from = starts
        .len()
        .checked_sub(LOG_LINES)
        .map_or(0, |i| starts[i])
        .max(content.len().saturating_sub(LOG_BYTES));
    String::from_utf8_lossy(&content[from..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use TerminationMessagePolicy::{FallbackToLogsOnError as Fallback, File};

    #[test]
    fn the_file_is_the_message_and_only_its_last_4096_bytes() {
        assert_eq!(from_file(Some(b"bye"), File, 1), ("bye".into(), false));
        let big = [b'a'; 5000];
        let (m, logs) = from_file(Some(&big), Fallback, 1);
        assert_eq!((m.len(), logs), (MAX_FILE_BYTES, false));
        assert_eq!(from_file(None, File, 1), (String::new(), false));
    }

    #[test]
    fn the_logs_are_read_only_for_a_failed_container_with_an_empty_or_missing_file() {
        assert_eq!(from_file(Some(b""), Fallback, 2), (String::new(), true));
        assert_eq!(from_file(None, Fallback, 2), (String::new(), true));
        assert_eq!(from_file(Some(b""), Fallback, 0), (String::new(), false));
        assert_eq!(from_file(Some(b"x"), Fallback, 2), ("x".into(), false));
        assert_eq!(from_file(Some(b""), File, 2), (String::new(), false));
    }

    #[test]
    fn a_pods_messages_share_12_kib_evenly_and_keep_their_first_bytes() {
        assert_eq!(pod_share(1), 12 * 1024);
        assert_eq!(pod_share(3), MAX_FILE_BYTES);
        assert_eq!(pod_share(5), 2457);
        assert_eq!(pod_share(0), MAX_POD_BYTES);
        let long = "a".repeat(3000) + "tail";
        let m = cut(long, pod_share(5));
        assert_eq!(m.len(), 2457);
        assert!(m.starts_with("aaa"));
        assert_eq!(cut("short".into(), 3), "sho");
        assert_eq!(cut("short".into(), 10), "short");
        // 'é' is two bytes: a cut inside it keeps the character out.
        assert_eq!(cut("aé".into(), 2), "a");
        assert_eq!(cut("aé".into(), 3), "aé");
        // 16 containers with 4 KiB files: at most 12 KiB in all.
        let total: usize = (0..16)
            .map(|_| cut("x".repeat(MAX_FILE_BYTES), pod_share(16)).len())
            .sum();
        assert!(total <= MAX_POD_BYTES, "{total}");
    }

    fn record(stream: &str, tag: &str, text: &str) -> String {
        format!("2026-12-06T10:00:00.000000000Z {stream} {tag} {text}\n")
    }

    #[test]
    fn the_log_tail_is_the_last_80_lines_of_both_streams_with_partials_joined() {
        let mut log = String::new();
        for i in 0..100 {
            let stream = if i % 2 == 0 { "stdout" } else { "stderr" };
            log.push_str(&record(stream, "F", &format!("line {i}")));
        }
        log.push_str(&record("stderr", "P", "par"));
        log.push_str(&record("stderr", "F", "tial"));
        let m = from_log(log.as_bytes(), true);
        let lines: Vec<&str> = m.lines().collect();
        assert_eq!(lines.len(), LOG_LINES);
        assert_eq!(lines[0], "line 21");
        assert_eq!(lines[LOG_LINES - 1], "partial");
        assert!(m.ends_with("partial\n"));
    }

    #[test]
    fn the_log_tail_keeps_the_last_2048_bytes_and_drops_a_cut_first_line() {
        let long = "x".repeat(1500);
        let log = [
            record("stdout", "F", "first"),
            record("stdout", "F", &long),
            record("stdout", "F", &long),
        ]
        .concat();
        let m = from_log(log.as_bytes(), true);
        assert_eq!(m.len(), LOG_BYTES);
        assert!(m.ends_with(&format!("{long}\n")));
        // Read from the middle of the first record: it is not parsed.
        let cut = &log.as_bytes()[10..];
        let m = from_log(cut, false);
        assert!(!m.contains("first"));
        assert_eq!(from_log(b"", true), "");
    }
}
