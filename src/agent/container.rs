//! The agent's side of building a container's config: the host facts the
//! pure rules ask for ([`crate::lifecycle::container_config::Host`]): the
//! image's users, hostPath checks (which may create the path) and
//! `/proc/meminfo`.

use crate::image::ResolvedImage;
use crate::lifecycle::container_config::{self as rules, Host};
use crate::runtime::shim::proto::ContainerConfig;
use crate::spec::{Container, Pod};
use std::path::{Path, PathBuf};

pub use crate::lifecycle::container_config::{
    ConfigError, Paths, Settings, container_resources, instance_dir, pod_resources, volume_dir,
};

/// This machine, as the rules see it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealHost;

impl Host for RealHost {
    fn resolve_user(&self, layers: &[PathBuf], user: &str) -> Result<(u32, u32), String> {
        crate::image::resolve_user(layers, user).map_err(|e| e.to_string())
    }

    fn user_groups(&self, layers: &[PathBuf], uid: u32) -> Vec<u32> {
        crate::image::user_groups(layers, uid)
    }

    fn check_host_path(&self, path: &str, kind: &str) -> Result<(), String> {
        check_host_path(path, kind)
    }

    fn node_memory_bytes(&self) -> i64 {
        node_memory_bytes()
    }

    fn node_cpu_millis(&self) -> i64 {
        std::thread::available_parallelism().map_or(1, |n| n.get() as i64) * 1000
    }

    fn write_volume(
        &self,
        dir: &Path,
        files: &[crate::spec::refs::File],
        secret: bool,
        fs_group: Option<u32>,
    ) -> Result<(), String> {
        write_volume(dir, files, secret, fs_group)
    }

    fn resolve_sub_path(&self, root: &Path, sub: &str) -> Result<PathBuf, String> {
        super::projection::resolve_sub_path(root, sub)
    }
}

/// Writes a projected volume's files into `dir` ([`super::projection`]);
/// a Secret-bearing volume gets its own tmpfs first, so its files never
/// reach a disk. With `fs_group`, each new version is given to that group
/// (read-only bits: these volumes are read-only).
pub fn write_volume(
    dir: &Path,
    files: &[crate::spec::refs::File],
    secret: bool,
    fs_group: Option<u32>,
) -> Result<(), String> {
    if secret && !is_mount_point(dir) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let flags = nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC;
        nix::mount::mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some("mode=0755"))
            .map_err(|e| format!("mounting a tmpfs on {}: {e}", dir.display()))?;
    }
    let wall_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let changed = super::projection::write_atomic(dir, files, wall_ns)
        .map_err(|e| format!("writing {}: {e}", dir.display()))?;
    match fs_group {
        Some(g) if changed => set_volume_ownership(dir, g, true, false)
            .map_err(|e| format!("setting the group of {}: {e}", dir.display())),
        _ => Ok(()),
    }
}

/// The kubelet's `SetVolumeOwnership` for `fsGroup`: every file of the
/// volume at `dir` gets group `gid` and group read (and write unless
/// `read_only`) permission, directories also group search and setgid (new
/// files inherit the group); symlinks only change group. With
/// `on_root_mismatch` (`fsGroupChangePolicy: OnRootMismatch`), nothing is
/// done when `dir` already has that group and those bits.
pub fn set_volume_ownership(
    dir: &Path,
    gid: u32,
    read_only: bool,
    on_root_mismatch: bool,
) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mask = if read_only { 0o440 } else { 0o660 };
    if on_root_mismatch {
        let m = std::fs::metadata(dir)?;
        let want = mask | 0o2110;
        if m.gid() == gid && m.mode() & want == want {
            return Ok(());
        }
    }
    chgrp_tree(dir, gid, mask)
}

fn chgrp_tree(path: &Path, gid: u32, mask: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = std::fs::symlink_metadata(path)?;
    std::os::unix::fs::lchown(path, None, Some(gid))?;
    if m.file_type().is_symlink() {
        return Ok(());
    }
    let dir = m.is_dir();
    let mode = m.mode() & 0o7777 | mask | if dir { 0o2110 } else { 0 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if dir {
        for e in std::fs::read_dir(path)? {
            chgrp_tree(&e?.path(), gid, mask)?;
        }
    }
    Ok(())
}

/// Whether `dir` is a mount point (its device differs from its parent's).
fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(dir), dir.parent().map(std::fs::metadata)) {
        (Ok(d), Some(Ok(p))) => d.dev() != p.dev(),
        _ => false,
    }
}

/// Builds the config for instance `instance` of container `c` of `pod`
/// on this machine.
pub fn build(
    pod: &Pod,
    c: &Container,
    instance: u64,
    img: &ResolvedImage,
    paths: &Paths,
    s: &Settings,
) -> Result<ContainerConfig, ConfigError> {
    rules::build(pod, c, instance, img, paths, s, &RealHost)
}

/// The log directory of pod `pod` (uid `uid`): one directory per
/// container below it ([`log_dir`]).
pub fn pod_log_dir(run_dir: &Path, pod: &Pod, uid: &str) -> PathBuf {
    let m = &pod.metadata;
    run_dir
        .join("logs")
        .join(format!("{}_{}_{uid}", m.namespace, m.name))
}

/// The log directory of container `name` of `pod` (uid `uid`): its
/// instances' CRI logs are `<instance>.log` there.
pub fn log_dir(run_dir: &Path, pod: &Pod, uid: &str, name: &str) -> PathBuf {
    pod_log_dir(run_dir, pod, uid).join(name)
}

/// Creates an instance's empty termination-message file, writable by any
/// user of the container (0666, as the kubelet's).
pub fn create_termination_log(instance_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = rules::termination_log(instance_dir);
    std::fs::File::create(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
}

/// The last `max` bytes of the file at `path` (a symlink is not followed),
/// and whether that is the whole file.
fn read_tail(path: &Path, max: u64) -> std::io::Result<(Vec<u8>, bool)> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let len = f.metadata()?.len();
    let from = len.saturating_sub(max);
    f.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    Ok((buf, from == 0))
}

/// The termination message of instance `instance` of `c`, which exited with
/// `exit_code`: the kubelet's rules ([`termination`]) over its file and,
/// for `FallbackToLogsOnError`, its log, cut to the container's `share` of
/// the pod's 12 KiB ([`termination::pod_share`]).
pub fn termination_message(
    c: &Container,
    dirs: (&Path, &Path),
    instance: u64,
    exit_code: i32,
    share: usize,
) -> String {
    use crate::lifecycle::termination;
    termination::cut(
        read_termination_message(c, dirs, instance, exit_code),
        share,
    )
}

fn read_termination_message(
    c: &Container,
    dirs: (&Path, &Path),
    instance: u64,
    exit_code: i32,
) -> String {
    use crate::lifecycle::termination;
    let (pod_dir, log_dir) = dirs;
    let path = rules::termination_log(&instance_dir(pod_dir, &c.name, instance));
    let file = match read_tail(&path, termination::MAX_FILE_BYTES as u64) {
        Ok((b, _)) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return format!("Error on reading termination log {}: {e}", path.display()),
    };
    let policy = c.termination_message_policy.unwrap_or_default();
    let (message, logs) = termination::from_file(file.as_deref(), policy, exit_code);
    if !logs {
        return message;
    }
    let log = log_dir.join(format!("{instance}.log"));
    match read_tail(&log, termination::LOG_READ_BYTES) {
        Ok((chunk, whole)) => termination::from_log(&chunk, whole),
        Err(e) => format!("Error on reading termination message from logs: {e}"),
    }
}

/// `MemTotal` of this machine in bytes, read once (the kubelet's
/// `memoryCapacity` for [`crate::lifecycle::oom_score_adj`]).
pub fn node_memory_bytes() -> i64 {
    static MEM: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *MEM.get_or_init(|| {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        crate::fleet::doc::mem_total(&meminfo) as i64
    })
}

/// Checks (and for the `*OrCreate` types, creates) a hostPath as Kubernetes does.
pub fn check_host_path(path: &str, kind: &str) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let p = Path::new(path);
    let meta = std::fs::metadata(p);
    let ft = meta.as_ref().map(|m| m.file_type());
    let bad = |what: &str| Err(format!("hostPath type check failed: {path} is not {what}"));
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => match ft {
            Ok(t) if t.is_dir() => Ok(()),
            Ok(_) => bad("a directory"),
            Err(_) => std::fs::create_dir_all(p).map_err(|e| format!("creating {path}: {e}")),
        },
        "Directory" => match ft {
            Ok(t) if t.is_dir() => Ok(()),
            _ => bad("a directory"),
        },
        "FileOrCreate" => match ft {
            Ok(t) if t.is_file() => Ok(()),
            Ok(_) => bad("a file"),
            Err(_) => std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(p)
                .map(|_| ())
                .map_err(|e| format!("creating {path}: {e}")),
        },
        "File" => match ft {
            Ok(t) if t.is_file() => Ok(()),
            _ => bad("a file"),
        },
        "Socket" => match ft {
            Ok(t) if t.is_socket() => Ok(()),
            _ => bad("a socket"),
        },
        "CharDevice" => match ft {
            Ok(t) if t.is_char_device() => Ok(()),
            _ => bad("a character device"),
        },
        "BlockDevice" => match ft {
            Ok(t) if t.is_block_device() => Ok(()),
            _ => bad("a block device"),
        },
        other => Err(format!("unknown hostPath type {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::{check_host_path, set_volume_ownership};

    /// Every `hostPath.type` against real files: a directory, a file, a
    /// socket, `/dev/null` (a character device), a missing path, and the
    /// two `*OrCreate` types creating what is missing.
    #[test]
    fn host_path_types_are_checked_against_the_real_file_and_created_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let file = d.join("f");
        std::fs::write(&file, "x").unwrap();
        let sock = d.join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let missing = d.join("missing");
        let p = |p: &std::path::Path| p.to_str().unwrap().to_string();
        let (d_, f_, s_, m_) = (p(d), p(&file), p(&sock), p(&missing));
        let cases: [(&str, &str, bool); 17] = [
            (&d_, "", true),
            (&m_, "", true),
            (&d_, "Directory", true),
            (&f_, "Directory", false),
            (&m_, "Directory", false),
            (&f_, "File", true),
            (&d_, "File", false),
            (&s_, "Socket", true),
            (&f_, "Socket", false),
            ("/dev/null", "CharDevice", true),
            (&f_, "CharDevice", false),
            ("/dev/null", "BlockDevice", false),
            (&f_, "DirectoryOrCreate", false),
            (&d_, "FileOrCreate", false),
            (&f_, "FileOrCreate", true),
            (&d_, "DirectoryOrCreate", true),
            (&d_, "Dir", false),
        ];
        for (path, kind, ok) in cases {
            let r = check_host_path(path, kind);
            assert_eq!(r.is_ok(), ok, "{path} {kind}: {r:?}");
        }
        let e = check_host_path(&f_, "Directory").unwrap_err();
        assert_eq!(
            e,
            format!("hostPath type check failed: {f_} is not a directory")
        );
        assert!(
            check_host_path(&d_, "Dir")
                .unwrap_err()
                .contains("unknown hostPath type")
        );
        check_host_path(&p(&d.join("new/sub")), "DirectoryOrCreate").unwrap();
        assert!(d.join("new/sub").is_dir());
        check_host_path(&p(&d.join("new/file")), "FileOrCreate").unwrap();
        assert!(d.join("new/file").is_file());
        // FileOrCreate does not create missing parents (as the kubelet).
        assert!(check_host_path(&p(&d.join("no/file")), "FileOrCreate").is_err());
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn gid_mode(p: &std::path::Path) -> (u32, u32) {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.gid(), m.mode() & 0o7777)
    }

    #[test]
    fn fs_group_owns_the_tree_setgid_dirs_and_on_root_mismatch_skips_a_matching_root() {
        if crate::testutil::needs_root("chown to other groups") {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let v = tmp.path().join("v");
        std::fs::create_dir_all(v.join("sub")).unwrap();
        std::fs::write(v.join("sub/f"), b"x").unwrap();
        std::fs::set_permissions(v.join("sub/f"), PermissionsExt::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("sub/f", v.join("l")).unwrap();
        std::fs::set_permissions(&v, PermissionsExt::from_mode(0o755)).unwrap();
        set_volume_ownership(&v, 2000, false, false).unwrap();
        assert_eq!(gid_mode(&v), (2000, 0o2775));
        assert_eq!(gid_mode(&v.join("sub")), (2000, 0o2775));
        assert_eq!(gid_mode(&v.join("sub/f")), (2000, 0o660));
        assert_eq!(gid_mode(&v.join("l")).0, 2000);
        // Read-only volumes (configMap, secret, …) get group read only.
        std::fs::write(v.join("g"), b"y").unwrap();
        std::fs::set_permissions(v.join("g"), PermissionsExt::from_mode(0o400)).unwrap();
        set_volume_ownership(&v, 3000, true, false).unwrap();
        assert_eq!(gid_mode(&v.join("g")), (3000, 0o440));
        // OnRootMismatch: the root matches (group 3000, the bits): untouched.
        std::os::unix::fs::chown(v.join("g"), None, Some(0)).unwrap();
        set_volume_ownership(&v, 3000, true, true).unwrap();
        assert_eq!(gid_mode(&v.join("g")).0, 0);
        // A different group does not match: the whole tree changes.
        set_volume_ownership(&v, 4000, true, true).unwrap();
        assert_eq!(gid_mode(&v.join("g")).0, 4000);
    }
}
