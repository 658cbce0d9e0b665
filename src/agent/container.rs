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
    ) -> Result<(), String> {
        write_volume(dir, files, secret)
    }

    fn resolve_sub_path(&self, root: &Path, sub: &str) -> Result<PathBuf, String> {
        super::projection::resolve_sub_path(root, sub)
    }
}

/// Writes a projected volume's files into `dir` ([`super::projection`]);
/// a Secret-bearing volume gets its own tmpfs first, so its files never
/// reach a disk.
pub fn write_volume(
    dir: &Path,
    files: &[crate::spec::refs::File],
    secret: bool,
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
    super::projection::write_atomic(dir, files, wall_ns)
        .map(|_| ())
        .map_err(|e| format!("writing {}: {e}", dir.display()))
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
