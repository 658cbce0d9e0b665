//! Reads a cgroup's metric files into a [`Sample`], with one path buffer
//! and one read buffer reused for every file: no allocation per read once
//! they have grown to fit. Numbers are parsed in place. The files are small
//! reads from cgroupfs (kernel memory, no disk): they never block, like the
//! agent's other cgroup reads. A missing file or line is `None`.

use super::Sample;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The reusable buffers (see the module doc).
#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    buf: Vec<u8>,
}

impl Default for Reader {
    fn default() -> Self {
        Reader {
            path: PathBuf::with_capacity(256),
            buf: Vec::with_capacity(4096),
        }
    }
}

impl Reader {
    /// Samples the cgroup `dir`, or its child `sub` when not empty.
    pub fn sample(&mut self, dir: &Path, sub: &str) -> Sample {
        let mut s = Sample::default();
        if self.read(dir, sub, "memory.current") {
            s.memory = number(&self.buf);
        }
        if self.read(dir, sub, "memory.stat") {
            s.anon = keyed(&self.buf, b"anon");
            s.file = keyed(&self.buf, b"file");
            s.inactive_file = keyed(&self.buf, b"inactive_file");
        }
        if self.read(dir, sub, "cpu.stat") {
            s.cpu_usec = keyed(&self.buf, b"usage_usec");
            s.nr_throttled = keyed(&self.buf, b"nr_throttled");
            s.throttled_usec = keyed(&self.buf, b"throttled_usec");
        }
        if self.read(dir, sub, "pids.current") {
            s.pids = number(&self.buf);
        }
        if self.read(dir, sub, "memory.events") {
            s.oom_kills = keyed(&self.buf, b"oom_kill");
        }
        s
    }

    /// The agent's resident memory in bytes (`VmRSS` of
    /// `/proc/self/status`).
    pub fn self_rss(&mut self) -> Option<u64> {
        if !self.read(Path::new("/proc/self/status"), "", "") {
            return None;
        }
        keyed(&self.buf, b"VmRSS:").map(|kb| kb * 1024)
    }

    /// Reads `dir[/sub][/file]` into the buffer; false when it cannot.
    fn read(&mut self, dir: &Path, sub: &str, file: &str) -> bool {
        self.path.as_mut_os_string().clear();
        self.path.push(dir);
        for part in [sub, file] {
            if !part.is_empty() {
                self.path.push(part);
            }
        }
        self.buf.clear();
        std::fs::File::open(&self.path)
            .and_then(|mut f| f.read_to_end(&mut self.buf))
            .is_ok()
    }
}

/// The number at the start of `text` (after blanks).
fn number(text: &[u8]) -> Option<u64> {
    let t = text.trim_ascii_start();
    let end = t
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(t.len());
    std::str::from_utf8(&t[..end]).ok()?.parse().ok()
}

/// The number after `key` on the line that starts with exactly `key` and a
/// blank (a flat-keyed cgroup file, or `/proc/self/status`).
fn keyed(text: &[u8], key: &[u8]) -> Option<u64> {
    text.split(|b| *b == b'\n').find_map(|line| {
        let rest = line.strip_prefix(key)?;
        matches!(rest.first(), Some(b' ' | b'\t')).then(|| number(rest))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_parsed_in_place_and_missing_ones_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Reader::default();
        assert_eq!(r.sample(dir.path(), ""), Sample::default());
        let c = dir.path().join("app");
        std::fs::create_dir(&c).unwrap();
        std::fs::write(c.join("memory.current"), "52428800\n").unwrap();
        std::fs::write(
            c.join("memory.stat"),
            "anon 20971520\nfile 31457280\nkernel 1\nactive_file 1048576\ninactive_file 30408704\nanon_thp 0\n",
        )
        .unwrap();
        std::fs::write(
            c.join("cpu.stat"),
            "usage_usec 1234567\nuser_usec 1\nsystem_usec 2\nnr_periods 10\nnr_throttled 3\nthrottled_usec 4500\n",
        )
        .unwrap();
        std::fs::write(c.join("pids.current"), "7\n").unwrap();
        std::fs::write(
            c.join("memory.events"),
            "low 0\noom 1\noom_kill 2\noom_group_kill 0\n",
        )
        .unwrap();
        let s = r.sample(dir.path(), "app");
        assert_eq!(
            s,
            Sample {
                memory: Some(52_428_800),
                anon: Some(20_971_520),
                file: Some(31_457_280),
                inactive_file: Some(30_408_704),
                cpu_usec: Some(1_234_567),
                nr_throttled: Some(3),
                throttled_usec: Some(4500),
                pids: Some(7),
                oom_kills: Some(2),
            }
        );
        assert_eq!(s.working_set(), Some(52_428_800 - 30_408_704));
        // cpu.stat without the cpu controller: usage only.
        std::fs::write(
            c.join("cpu.stat"),
            "usage_usec 9\nuser_usec 5\nsystem_usec 4\n",
        )
        .unwrap();
        let s = r.sample(&c, "");
        assert_eq!((s.cpu_usec, s.nr_throttled), (Some(9), None));
    }

    #[test]
    fn the_agents_own_rss_is_read_from_proc() {
        let rss = Reader::default().self_rss().unwrap();
        assert!(rss > 100 << 10, "{rss}");
    }
}
