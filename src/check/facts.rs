//! Gathering what `picolet check` judges: files under a root directory (`/`
//! on a device; a fixture tree in tests) and, when the root is `/`, live
//! probes (`unshare` in a forked child, `pidfd_open` on ourselves).
//!
//! Files read (all relative to the root): `proc/sys/kernel/osrelease`,
//! `proc/self/ns/*`, `proc/sys/user/max_user_namespaces`,
//! `proc/self/mountinfo`, `proc/filesystems`, `proc/config.gz` or
//! `boot/config-<release>`, `lib/modules/<release>/modules.{builtin,dep}`,
//! `sys/module/*`, the cgroup2 mount's `cgroup.controllers`,
//! `run/systemd/system`, and the board's kernel command-line files (existence
//! only). Nothing is written; the only processes are the short-lived forked
//! children of the `unshare` probes, each reaped before the next.

use super::boards::{Board, Identity};
use crate::runtime::cgroup::hierarchy::Mounts;
use crate::runtime::cgroup::{CgroupRoot, Missing};
use crate::vecmap::VecMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The outcome of a live probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Ok,
    Failed(String),
    /// Not run, and why (not root, or checking a fixture tree).
    NotTried(String),
}

/// One namespace type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsFact {
    /// `/proc/self/ns` name: mnt, pid, net, ipc, uts, user.
    pub name: &'static str,
    pub present: bool,
    pub unshare: Probe,
}

/// Where a kernel feature was (or was not) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// In use or loaded now (`/proc/filesystems`, `/sys/module/<name>`).
    Loaded(String),
    /// Built into the kernel (`modules.builtin`, or `CONFIG_X=y`).
    Builtin(String),
    /// A module that can be loaded (`modules.dep`, with its path).
    Module(String),
    /// Not there; says what was looked at.
    Absent(String),
    /// Nothing to look at (no module lists, no kernel config).
    Unknown(String),
}

impl Availability {
    pub fn usable(&self) -> bool {
        matches!(
            self,
            Availability::Loaded(_) | Availability::Builtin(_) | Availability::Module(_)
        )
    }
}

/// The cgroup side.
#[derive(Debug, Clone, Default)]
pub struct CgroupFacts {
    /// `cgroup2` is in `/proc/filesystems`.
    pub cgroup2_in_kernel: bool,
    pub mounts: Mounts,
    /// The cgroup whose `cgroup.controllers` was read (as seen on the host).
    pub checked: Option<PathBuf>,
    /// Every controller listed there.
    pub available: Vec<String>,
    /// The controllers picolet wants that are not there, with reasons.
    pub missing: Vec<Missing>,
    /// Why the cgroup could not be read.
    pub error: Option<String>,
}

impl CgroupFacts {
    /// `unified`, `hybrid` (cgroup2 plus v1 controller hierarchies),
    /// `legacy` (v1 only) or `none`.
    pub fn hierarchy(&self) -> &'static str {
        match (self.mounts.cgroup2.is_empty(), self.mounts.v1.is_empty()) {
            (false, true) => "unified",
            (false, false) => "hybrid",
            (true, false) => "legacy",
            (true, true) => "none",
        }
    }
}

/// Everything `evaluate` needs.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `std::env::consts::ARCH` of this binary.
    pub arch: String,
    /// The kernel's machine (`uname -m`: `/proc/sys/kernel/arch`; on the
    /// live system without that file, this binary's architecture).
    pub machine: Option<String>,
    pub kernel_release: Option<String>,
    pub namespaces: Vec<NsFact>,
    pub max_user_namespaces: Option<u64>,
    pub cgroup: CgroupFacts,
    pub overlay: Availability,
    pub veth: Availability,
    pub bridge: Availability,
    /// The pod network's nftables pieces: the core, NAT chains,
    /// masquerade, `fib` (hostPort to local addresses).
    pub nf_tables: Availability,
    pub nft_nat: Availability,
    pub nft_masq: Availability,
    pub nft_fib: Availability,
    /// `proc/sys/net/ipv4/ip_forward` (the agent turns it on).
    pub ip_forward: Option<bool>,
    /// Base chains on the forward hook with policy drop (`family table
    /// chain`), from the live nftables ruleset.
    pub forward_drop: Result<Vec<String>, Probe>,
    pub pidfd: Probe,
    /// The containers' device allowlist: an eBPF device program loaded
    /// and attached to a scratch cgroup under the checked one.
    pub device_filter: Probe,
    /// systemd is the init system (`/run/systemd/system` exists).
    pub systemd: bool,
    pub identity: Identity,
    /// The board's command-line files that exist under the root.
    pub cmdline_files: Vec<String>,
    /// The mount at `/`, from `proc/self/mountinfo`: see [`RootMount`].
    pub root_mount: Option<RootMount>,
}

/// The top-most mount at `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootMount {
    pub fstype: String,
    /// It is the mount namespace's first mount, the initramfs that was
    /// never switched away from: it is its own parent (the kernel's
    /// `!mnt_has_parent`, why `pivot_root(2)` refuses it), or its type is
    /// `rootfs` (the initramfs bind-mounted over itself).
    pub initial: bool,
}

/// The [`RootMount`] of a `/proc/self/mountinfo` text (`None` without a
/// mount at `/`).
pub fn root_mount(mountinfo: &str) -> Option<RootMount> {
    mountinfo.lines().rev().find_map(|line| {
        // id parent maj:min root mount-point options [optional…] - fstype …
        let f: Vec<&str> = line.split(' ').collect();
        let sep = f.iter().position(|x| *x == "-")?;
        let fstype = f.get(sep + 1)?.to_string();
        (sep >= 6 && f[4] == "/").then(|| RootMount {
            initial: f[0] == f[1] || fstype == "rootfs",
            fstype,
        })
    })
}

/// The namespaces checked, with their `unshare(2)` flags.
pub const NAMESPACES: [(&str, libc::c_int); 6] = [
    ("mnt", libc::CLONE_NEWNS),
    ("pid", libc::CLONE_NEWPID),
    ("net", libc::CLONE_NEWNET),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("user", libc::CLONE_NEWUSER),
];

/// What to gather and how.
#[derive(Debug, Clone)]
pub struct Gather<'a> {
    pub root: &'a Path,
    /// Run the live probes (only meaningful when `root` is `/`).
    pub live: bool,
    /// Check this cgroup instead of the top of the cgroup2 mount.
    pub cgroup_root: Option<&'a Path>,
    pub identity: Identity,
    pub board: &'a Board,
}

fn read(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel)).ok()
}

/// `path` (absolute, as the host sees it) inside `root`.
fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

pub fn gather(g: Gather<'_>) -> Facts {
    let root = g.root;
    let kernel_release = read(root, "proc/sys/kernel/osrelease").map(|s| s.trim().to_string());
    let filesystems = read(root, "proc/filesystems").unwrap_or_default();
    let has_fs = |name: &str| {
        filesystems
            .lines()
            .any(|l| l.split_whitespace().last() == Some(name))
    };
    let is_root = g.live && crate::sys::process::is_root();
    let namespaces = NAMESPACES
        .iter()
        .map(|&(name, flag)| NsFact {
            name,
            present: root.join("proc/self/ns").join(name).exists(),
            unshare: if !g.live {
                Probe::NotTried("not checking the live system".into())
            } else if !is_root && name != "user" {
                Probe::NotTried("not root".into())
            } else {
                try_unshare(flag)
            },
        })
        .collect();
    let max_user_namespaces =
        read(root, "proc/sys/user/max_user_namespaces").and_then(|s| s.trim().parse().ok());

    let modules = Modules::read(root, kernel_release.as_deref());
    let overlay = if has_fs("overlay") {
        Availability::Loaded("/proc/filesystems".into())
    } else {
        modules.find("overlay", "CONFIG_OVERLAY_FS")
    };
    let veth = modules.find("veth", "CONFIG_VETH");
    let bridge = modules.find("bridge", "CONFIG_BRIDGE");
    let nf_tables = modules.find("nf_tables", "CONFIG_NF_TABLES");
    let nft_nat = modules.find("nft_chain_nat", "CONFIG_NFT_NAT");
    let nft_masq = modules.find("nft_masq", "CONFIG_NFT_MASQ");
    let nft_fib = modules.find("nft_fib_ipv4", "CONFIG_NFT_FIB_IPV4");
    let ip_forward = read(root, "proc/sys/net/ipv4/ip_forward").map(|s| s.trim() == "1");
    let forward_drop = if !g.live {
        Err(Probe::NotTried("not checking the live system".into()))
    } else if !crate::sys::process::is_root() {
        Err(Probe::NotTried("needs root".into()))
    } else {
        probe_forward_drop()
    };

    let pidfd = if g.live {
        probe_pidfd()
    } else {
        Probe::NotTried("not checking the live system".into())
    };
    let mountinfo = read(root, "proc/self/mountinfo").unwrap_or_default();
    let cgroup = cgroup_facts(has_fs("cgroup2"), &mountinfo, root, g.cgroup_root);
    let device_filter = if g.live {
        probe_device_filter(cgroup.checked.as_deref())
    } else {
        Probe::NotTried("not checking the live system".into())
    };
    let cmdline_files = [&g.board.cmdline_file, &g.board.cmdline_file_before_bookworm]
        .into_iter()
        .filter(|f| f.starts_with('/') && under(root, Path::new(f.as_str())).exists())
        .cloned()
        .fold(Vec::new(), |mut v, f| {
            if !v.contains(&f) {
                v.push(f);
            }
            v
        });
    let machine = read(root, "proc/sys/kernel/arch")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| g.live.then(|| std::env::consts::ARCH.to_string()));
    Facts {
        arch: std::env::consts::ARCH.to_string(),
        machine,
        kernel_release,
        namespaces,
        max_user_namespaces,
        cgroup,
        overlay,
        veth,
        bridge,
        nf_tables,
        nft_nat,
        nft_masq,
        nft_fib,
        ip_forward,
        forward_drop,
        pidfd,
        device_filter,
        systemd: root.join("run/systemd/system").is_dir(),
        identity: g.identity,
        cmdline_files,
        root_mount: root_mount(&mountinfo),
    }
}

fn cgroup_facts(
    in_kernel: bool,
    mountinfo: &str,
    root: &Path,
    explicit: Option<&Path>,
) -> CgroupFacts {
    let mut f = CgroupFacts {
        cgroup2_in_kernel: in_kernel,
        mounts: Mounts::parse(mountinfo),
        ..CgroupFacts::default()
    };
    let (checked, top) = match explicit {
        Some(p) => {
            let top = f
                .mounts
                .cgroup2
                .iter()
                .filter(|m| p.starts_with(&m.mount_point))
                .max_by_key(|m| m.mount_point.as_os_str().len())
                .map(|m| m.mount_point.clone());
            (p.to_path_buf(), top)
        }
        None => match f.mounts.resolve("/") {
            Some((dir, top)) => (dir, Some(top)),
            None => return f,
        },
    };
    let top_under = top.as_deref().map(|t| under(root, t));
    match CgroupRoot::open(under(root, &checked), &f.mounts, top_under.as_deref()) {
        Ok(cg) => {
            f.available = cg.available().to_vec();
            f.missing = cg.missing().to_vec();
        }
        Err(e) => f.error = Some(e.to_string()),
    }
    f.checked = Some(checked);
    f
}

/// The kernel's module lists and configuration.
#[derive(Debug, Default)]
struct Modules {
    release: String,
    builtin: Option<String>,
    dep: Option<String>,
    config: Option<(String, VecMap<String, String>)>,
    sys_module: PathBuf,
}

impl Modules {
    fn read(root: &Path, release: Option<&str>) -> Modules {
        let release = release.unwrap_or("").to_string();
        let dir = format!("lib/modules/{release}");
        let (builtin, dep) = if release.is_empty() {
            (None, None)
        } else {
            (
                read(root, &format!("{dir}/modules.builtin")),
                read(root, &format!("{dir}/modules.dep")),
            )
        };
        let config = read_config_gz(&root.join("proc/config.gz"))
            .map(|t| ("/proc/config.gz".to_string(), t))
            .or_else(|| {
                let rel = format!("boot/config-{release}");
                read(root, &rel).map(|t| (format!("/{rel}"), t))
            })
            .map(|(file, text)| (file, parse_kconfig(&text)));
        Modules {
            release,
            builtin,
            dep,
            config,
            sys_module: root.join("sys/module"),
        }
    }

    /// Where module `name` (also spelt with `-` for `_`) is available.
    fn find(&self, name: &str, config_key: &str) -> Availability {
        if self.sys_module.join(name).exists() {
            return Availability::Loaded(format!("/sys/module/{name}"));
        }
        let dir = format!("/lib/modules/{}", self.release);
        if let Some(b) = &self.builtin {
            if let Some(path) = module_path(b.lines(), name) {
                return Availability::Builtin(format!("{dir}/modules.builtin: {path}"));
            }
        }
        if let Some(d) = &self.dep {
            let paths = d.lines().filter_map(|l| l.split(':').next());
            if let Some(path) = module_path(paths, name) {
                return Availability::Module(format!("{dir}/{path}"));
            }
        }
        let mut looked = Vec::new();
        if self.builtin.is_some() {
            looked.push(format!("{dir}/modules.builtin"));
        }
        if self.dep.is_some() {
            looked.push(format!("{dir}/modules.dep"));
        }
        if let Some((file, cfg)) = &self.config {
            match cfg.get(config_key).map(String::as_str) {
                Some("y") => return Availability::Builtin(format!("{file}: {config_key}=y")),
                Some("m") if self.dep.is_none() => {
                    return Availability::Unknown(format!(
                        "{file}: {config_key}=m, but {dir}/modules.dep is missing"
                    ));
                }
                Some(v) => looked.push(format!("{file}: {config_key}={v}")),
                None => looked.push(format!("{file}: {config_key} is not set")),
            }
        }
        if looked.is_empty() {
            Availability::Unknown(format!(
                "not loaded (/sys/module/{name}), and no {dir}/modules.dep or kernel config to look in"
            ))
        } else {
            Availability::Absent(format!("not in /sys/module, {}", looked.join(", ")))
        }
    }
}

/// The first path in `paths` whose file is `name.ko` (possibly compressed).
fn module_path<'a>(paths: impl Iterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    let alt = name.replace('_', "-");
    paths.map(str::trim).find(|p| {
        let file = p.rsplit('/').next().unwrap_or(p);
        let base = file.split(".ko").next().unwrap_or("");
        file.contains(".ko") && (base == name || base == alt)
    })
}

fn read_config_gz(path: &Path) -> Option<String> {
    let f = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    // The kernel config is ~200 KiB uncompressed; cap what we read.
    crate::image::gzip::GzReader::new(Box::new(std::io::BufReader::new(f)))
        .take(4 << 20)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// `CONFIG_X=value` lines of a kernel config.
pub fn parse_kconfig(text: &str) -> VecMap<String, String> {
    text.lines()
        .filter(|l| l.starts_with("CONFIG_"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// Runs `unshare(flag)` in a forked child, so that this process keeps its
/// namespaces.
fn try_unshare(flag: libc::c_int) -> Probe {
    // The child only calls unshare(2) and _exit(2), which are
    // async-signal-safe, so forking a multi-threaded process (the test
    // harness) is fine.
    let pid = match crate::sys::process::fork() {
        Ok(pid) => pid,
        Err(e) => return Probe::Failed(format!("fork: {}", std::io::Error::from(e))),
    };
    if pid == 0 {
        let flags = nix::sched::CloneFlags::from_bits_retain(flag);
        let code = match nix::sched::unshare(flags) {
            Ok(()) => 0,
            Err(e) => (e as i32).clamp(1, 255),
        };
        crate::sys::process::exit_now(code);
    }
    let status = match crate::sys::process::wait(pid) {
        Ok(status) => status,
        Err(e) => return Probe::Failed(format!("waitpid: {}", std::io::Error::from(e))),
    };
    if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => Probe::Ok,
            errno => Probe::Failed(format!(
                "unshare: {}",
                std::io::Error::from_raw_os_error(errno)
            )),
        }
    } else {
        Probe::Failed(format!("probe child ended with wait status {status}"))
    }
}

/// Loads the containers' device program and attaches it to a scratch
/// cgroup `picolet-check-<pid>` under `cgroup` (made and removed here).
fn probe_device_filter(cgroup: Option<&Path>) -> Probe {
    use crate::runtime::cgroup::devices::DeviceFilter;
    let filter = match DeviceFilter::load() {
        Ok(f) => f,
        Err(e) => return Probe::Failed(e.to_string()),
    };
    let Some(cgroup) = cgroup else {
        return Probe::Failed("loaded, but there is no cgroup v2 to attach it to".into());
    };
    let scratch = cgroup.join(format!("picolet-check-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir(&scratch) {
        return Probe::Failed(format!("create {}: {e}", scratch.display()));
    }
    let attached = filter.apply(&scratch, false);
    let _ = std::fs::remove_dir(&scratch);
    match attached {
        Ok(()) => Probe::Ok,
        Err(e) => Probe::Failed(e.to_string()),
    }
}

/// The nftables base chains that drop forwarded IPv4 by policy.
fn probe_forward_drop() -> Result<Vec<String>, Probe> {
    let mut s = crate::net::nl::Sock::open(crate::sys::net::Netlink::Netfilter)
        .map_err(|e| Probe::Failed(e.to_string()))?;
    let chains =
        crate::net::nft::forward_drop_chains(&mut s).map_err(|e| Probe::Failed(e.to_string()))?;
    Ok(chains
        .into_iter()
        .map(|c| format!("{} {} {}", c.family, c.table, c.name))
        .collect())
}

/// `pidfd_open(2)` on this process.
fn probe_pidfd() -> Probe {
    match crate::sys::fd::pidfd_open(std::process::id() as i32) {
        Ok(fd) => drop(fd),
        Err(e) => return Probe::Failed(format!("pidfd_open: {}", std::io::Error::from(e))),
    }
    Probe::Ok
}
