//! Finding the agent's cgroup: `/proc/self/cgroup` (`0::/path`) and the cgroup
//! mounts in `/proc/self/mountinfo` (the cgroup2 mount, and on a v1/v2 hybrid
//! host the v1 hierarchies that hold controllers back from v2). Pure parsers.

use super::controller::Controller;
use std::path::{Path, PathBuf};

/// Where a process's cgroup memberships are listed.
pub const PROC_SELF_CGROUP: &str = "/proc/self/cgroup";
/// Where the mount table with cgroup mounts is read from.
pub const PROC_SELF_MOUNTINFO: &str = "/proc/self/mountinfo";

/// The unified-hierarchy cgroup path (`/system.slice/picolet.service`) from
/// the text of `/proc/<pid>/cgroup`, i.e. its `0::<path>` line. `None` on a
/// v1-only host.
pub fn unified_path(proc_cgroup: &str) -> Option<String> {
    proc_cgroup.lines().find_map(|line| {
        let path = line.strip_prefix("0::")?;
        // A cgroup removed under a process reads "… (deleted)".
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        Some(path.to_string())
    })
}

/// One cgroup2 mount: `root` is the cgroup shown at `mount_point` (`/` unless
/// it is a bind mount of a sub-cgroup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup2Mount {
    pub mount_point: PathBuf,
    pub root: String,
}

/// The cgroup mounts of a mount table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mounts {
    pub cgroup2: Vec<Cgroup2Mount>,
    /// Controllers bound to a cgroup v1 hierarchy, with its mount point.
    pub v1: Vec<(Controller, PathBuf)>,
}

impl Mounts {
    /// Parses the text of `/proc/self/mountinfo`; lines that are not cgroup
    /// mounts, or are malformed, are ignored.
    pub fn parse(mountinfo: &str) -> Mounts {
        let mut mounts = Mounts::default();
        for line in mountinfo.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            // id parent maj:min root mount-point options [optional…] - fstype source super-options
            let Some(sep) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            if sep < 6 || fields.len() < sep + 4 {
                continue;
            }
            let root = unescape(fields[3]);
            let mount_point = PathBuf::from(unescape(fields[4]));
            match fields[sep + 1] {
                "cgroup2" => mounts.cgroup2.push(Cgroup2Mount { mount_point, root }),
                "cgroup" => {
                    for opt in fields[sep + 3].split(',') {
                        // v1's blkio is v2's io; cpuacct has no v2 controller.
                        let name = if opt == "blkio" { "io" } else { opt };
                        if let Some(c) = Controller::from_name(name) {
                            mounts.v1.push((c, mount_point.clone()));
                        }
                    }
                }
                _ => {}
            }
        }
        mounts
    }

    /// The v1 mount point that holds `c`, on a hybrid host.
    pub fn v1_mount(&self, c: Controller) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(v, _)| *v == c)
            .map(|(_, p)| p.as_path())
    }

    /// The directory of cgroup `cgroup` (a `/proc/self/cgroup` path) and the
    /// mount point it was found under. The mount whose root is the longest
    /// prefix of `cgroup` wins.
    pub fn resolve(&self, cgroup: &str) -> Option<(PathBuf, PathBuf)> {
        let mut best: Option<(&Cgroup2Mount, &str)> = None;
        for m in &self.cgroup2 {
            let Some(rel) = strip_cgroup_prefix(cgroup, &m.root) else {
                continue;
            };
            if best.is_none_or(|(b, _)| m.root.len() > b.root.len()) {
                best = Some((m, rel));
            }
        }
        best.map(|(m, rel)| {
            let rel = rel.trim_start_matches('/');
            let dir = if rel.is_empty() {
                m.mount_point.clone()
            } else {
                m.mount_point.join(rel)
            };
            (dir, m.mount_point.clone())
        })
    }
}

/// `cgroup` relative to `root`, when `root` is `/` or a whole-component prefix.
fn strip_cgroup_prefix<'a>(cgroup: &'a str, root: &str) -> Option<&'a str> {
    if root == "/" {
        return Some(cgroup);
    }
    let rest = cgroup.strip_prefix(root)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// Undoes mountinfo's octal escapes (`\040` for a space, …).
pub(crate) fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|d| (b'0'..=b'7').contains(d)) {
                out.push((oct[0] - b'0') * 64 + (oct[1] - b'0') * 8 + (oct[2] - b'0'));
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This build machine's table: a v1/v2 hybrid with cgroup2 at /sys/fs/cgroup/unified.
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// Raspberry Pi OS bookworm: pure cgroup v2 at /sys/fs/cgroup.
    const PI: &str = "\
22 1 179:2 / / rw,noatime shared:1 - ext4 /dev/mmcblk0p2 rw
27 21 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn unified_path_reads_the_zero_line_of_proc_self_cgroup() {
        let text = "9:name=systemd:/\n4:memory:/x\n0::/system.slice/picolet.service\n";
        assert_eq!(
            unified_path(text).as_deref(),
            Some("/system.slice/picolet.service")
        );
        assert_eq!(unified_path("0::/\n").as_deref(), Some("/"));
        assert_eq!(
            unified_path("0::/gone (deleted)\n").as_deref(),
            Some("/gone")
        );
        assert_eq!(unified_path("4:memory:/x\n1:cpu:/\n"), None);
    }

    #[test]
    fn hybrid_mountinfo_yields_the_unified_mount_and_v1_controllers() {
        let m = Mounts::parse(HYBRID);
        assert_eq!(
            m.cgroup2,
            vec![Cgroup2Mount {
                mount_point: "/sys/fs/cgroup/unified".into(),
                root: "/".into()
            }]
        );
        assert_eq!(
            m.v1_mount(Controller::Memory),
            Some(Path::new("/sys/fs/cgroup/memory"))
        );
        assert_eq!(
            m.v1_mount(Controller::Io),
            Some(Path::new("/sys/fs/cgroup/blkio"))
        );
        assert_eq!(m.v1.len(), 5, "{:?}", m.v1);
        let (dir, top) = m.resolve("/").unwrap();
        assert_eq!(dir, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(top, Path::new("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn pure_v2_mountinfo_resolves_a_service_cgroup() {
        let m = Mounts::parse(PI);
        assert!(m.v1.is_empty());
        let (dir, top) = m.resolve("/system.slice/picolet.service").unwrap();
        assert_eq!(
            dir,
            Path::new("/sys/fs/cgroup/system.slice/picolet.service")
        );
        assert_eq!(top, Path::new("/sys/fs/cgroup"));
    }

    #[test]
    fn bind_mounted_sub_cgroup_resolves_relative_to_its_root() {
        let text = "\
1 0 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
2 0 0:1 /kubepods /mnt/cg\\040x rw - cgroup2 cgroup2 rw
";
        let m = Mounts::parse(text);
        assert_eq!(m.cgroup2[1].mount_point, Path::new("/mnt/cg x"));
        let (dir, _) = m.resolve("/kubepods/pod1").unwrap();
        assert_eq!(dir, Path::new("/mnt/cg x/pod1"));
        // "/kubepodsX" is not under "/kubepods": falls back to the "/" mount.
        let (dir, _) = m.resolve("/kubepodsX").unwrap();
        assert_eq!(dir, Path::new("/sys/fs/cgroup/kubepodsX"));
    }

    #[test]
    fn no_cgroup2_mount_resolves_nothing() {
        let m = Mounts::parse("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
        assert_eq!(m.resolve("/"), None);
        assert!(Mounts::parse("garbage\n\n1 2 3\n").cgroup2.is_empty());
    }
}
