//! Judging [`Facts`] for a [`Board`]: one [`Item`] per requirement, each
//! with the exact fix for that board when it is missing. Pure: no I/O.
//!
//! Required (a missing one makes `picolet check` exit 1): kernel >= 4.15;
//! the mnt, pid, net, ipc and uts namespaces; a cgroup2 mount with the cpu,
//! memory and pids controllers (without them pods run without their limits,
//! which is what picolet promises); overlayfs (container root filesystems).
//! Optional (reported, never fatal): user namespaces, the io and cpuset
//! controllers, veth and bridge (pod networking beyond loopback), the
//! nftables pieces of the pod network (nf_tables, NAT chains, masquerade,
//! fib), IPv4 forwarding, a FORWARD policy of drop, and pidfd
//! (kernel >= 5.3; the agent polls for exits without it). `pivot_root` is a
//! warning (never fatal) when `/` is the initramfs.

use super::boards::Board;
use super::facts::{Availability, Facts, Probe};
use crate::runtime::cgroup::{Controller, MissingReason};
use serde::Serialize;

/// Oldest kernel picolet supports: cgroup v2's cpu controller (4.15).
pub const MIN_KERNEL: (u32, u32) = (4, 15);

/// The verdict on one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Ok,
    Missing,
    /// Works, with a weakness the detail names.
    Warn,
    /// Could not be determined (nothing to look at).
    Unknown,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// `kernel`, `namespace.pid`, `cgroup2`, `cgroup.memory`, `overlayfs`, …
    pub name: String,
    pub required: bool,
    pub state: State,
    /// What was found, and where.
    pub detail: String,
    /// For a missing (or unknown) item: what to do, for the detected board.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Item {
    fn new(name: impl Into<String>, required: bool, ok: bool, detail: String) -> Item {
        Item {
            name: name.into(),
            required,
            state: if ok { State::Ok } else { State::Missing },
            detail,
            fix: None,
        }
    }

    fn fix(mut self, fix: impl FnOnce() -> String) -> Item {
        if self.state != State::Ok {
            self.fix = Some(fix());
        }
        self
    }

    /// A required item that is missing.
    pub fn fails(&self) -> bool {
        self.required && self.state == State::Missing
    }
}

/// `"6.1.0-50-cloud-arm64"` → `(6, 1)`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// How to add `switches` to the kernel command line on `board`.
pub fn cmdline_fix(board: &Board, facts: &Facts, switches: &str) -> String {
    if board.uses_cmdline_txt() {
        let file = facts
            .cmdline_files
            .first()
            .cloned()
            .unwrap_or_else(|| board.cmdline_file.clone());
        let mut s = format!(
            "append \"{switches}\" to the single line of {file}, then reboot:  \
             sudo sed -i '1 s/$/ {switches}/' {file} && sudo reboot"
        );
        if facts.cmdline_files.is_empty() && board.cmdline_file_before_bookworm != file {
            s.push_str(&format!(
                "  (before Raspberry Pi OS bookworm the file is {})",
                board.cmdline_file_before_bookworm
            ));
        }
        s
    } else if board.cmdline_file == "/etc/default/grub" {
        format!(
            "add \"{switches}\" to GRUB_CMDLINE_LINUX in /etc/default/grub, then:  \
             sudo sed -i 's/^GRUB_CMDLINE_LINUX=\"/&{switches} /' /etc/default/grub && \
             sudo update-grub && sudo reboot  (U-Boot: the `append` line of \
             /boot/extlinux/extlinux.conf; Armbian: `extraargs=` in /boot/armbianEnv.txt)"
        )
    } else {
        format!(
            "add \"{switches}\" to the kernel command line ({})",
            board.cmdline_file
        )
    }
}

/// The switches that give a pure cgroup v2 hierarchy on `board`.
fn unified_switches(board: &Board) -> String {
    if board
        .cgroup_switches
        .contains("systemd.unified_cgroup_hierarchy")
    {
        board.cgroup_switches.clone()
    } else {
        "systemd.unified_cgroup_hierarchy=1".to_string()
    }
}

/// Whether the board (given with `--board`, or detected) can be this
/// machine: its architectures against the kernel's machine name.
fn board_item(f: &Facts, board: &Board) -> Item {
    use super::boards::Arch;
    let Some(machine) = &f.machine else {
        return Item {
            name: "board".into(),
            required: true,
            state: State::Unknown,
            detail: format!(
                "{}: the machine's architecture is unknown (no /proc/sys/kernel/arch)",
                board.id
            ),
            fix: None,
        };
    };
    let ok = Arch::of_machine(machine).is_some_and(|m| board.matches_machine(m));
    Item::new(
        "board",
        true,
        ok,
        if ok {
            format!(
                "{} runs {}; this machine is {machine}",
                board.id,
                board.arches_text()
            )
        } else {
            format!(
                "board {} ({}) runs {}, but this machine is {machine}",
                board.id,
                board.name,
                board.arches_text()
            )
        },
    )
    .fix(|| {
        format!(
            "run `picolet check` without --board to detect this machine's board, or give the board \
             of this machine (known: {})",
            super::boards::known_ids()
        )
    })
}

fn kconfig(c: Controller) -> &'static str {
    match c {
        Controller::Cpu => "CONFIG_CGROUP_SCHED, CONFIG_FAIR_GROUP_SCHED and CONFIG_CFS_BANDWIDTH",
        Controller::Memory => "CONFIG_MEMCG",
        Controller::Pids => "CONFIG_CGROUP_PIDS",
        Controller::Io => "CONFIG_BLK_CGROUP",
        Controller::Cpuset => "CONFIG_CPUSETS",
    }
}

pub fn evaluate(f: &Facts, board: &Board) -> Vec<Item> {
    let mut items = Vec::new();
    let release = f.kernel_release.clone().unwrap_or_default();
    let version = kernel_version(&release);
    items.push(
        Item::new(
            "kernel",
            true,
            version.is_some_and(|v| v >= MIN_KERNEL),
            format!(
                "{} on {} (need >= {}.{})",
                if release.is_empty() { "unknown" } else { &release },
                f.arch,
                MIN_KERNEL.0,
                MIN_KERNEL.1
            ),
        )
        .fix(|| {
            "upgrade the kernel (Raspberry Pi OS / Debian: sudo apt update && sudo apt full-upgrade && sudo reboot)"
                .into()
        }),
    );

    items.push(board_item(f, board));

    for ns in &f.namespaces {
        let user = ns.name == "user";
        let limit_ok = !user || f.max_user_namespaces.is_none_or(|n| n > 0);
        let ok = ns.present && limit_ok && !matches!(ns.unshare, Probe::Failed(_));
        let mut detail = if ns.present {
            format!("/proc/self/ns/{}", ns.name)
        } else {
            format!("no /proc/self/ns/{}", ns.name)
        };
        match &ns.unshare {
            Probe::Ok => detail.push_str("; unshare works"),
            Probe::Failed(e) => detail.push_str(&format!("; {e}")),
            Probe::NotTried(why) => detail.push_str(&format!("; unshare not tried ({why})")),
        }
        if user {
            match f.max_user_namespaces {
                Some(n) => detail.push_str(&format!("; user.max_user_namespaces = {n}")),
                None => detail.push_str("; no /proc/sys/user/max_user_namespaces"),
            }
        }
        let name = ns.name;
        let present = ns.present;
        let refused = matches!(&ns.unshare, Probe::Failed(e) if e.contains("ermission"));
        items.push(
            Item::new(format!("namespace.{name}"), !user, ok, detail).fix(|| {
                if !limit_ok {
                    "allow user namespaces:  echo user.max_user_namespaces=15000 | sudo tee \
                 /etc/sysctl.d/90-picolet.conf && sudo sysctl --system"
                        .into()
                } else if present && refused {
                    "unshare was refused: run picolet as root on the host, not inside a container \
                 or under a seccomp profile that forbids namespaces"
                        .into()
                } else if present {
                    "the kernel has the namespace but unshare failed: run picolet natively as \
                     root (not under an emulator such as qemu-user, whose threads forbid new \
                     user namespaces), outside containers and seccomp profiles that forbid them"
                        .into()
                } else {
                    let cfg = if name == "mnt" {
                        "CONFIG_NAMESPACES".to_string()
                    } else {
                        format!("CONFIG_{}_NS", name.to_uppercase())
                    };
                    format!("use a kernel built with {cfg}")
                }
            }),
        );
    }

    items.extend(cgroup_items(f, board));

    items.push(feature(
        "overlayfs",
        true,
        &f.overlay,
        "overlay",
        "CONFIG_OVERLAY_FS",
    ));
    items.push(feature("veth", false, &f.veth, "veth", "CONFIG_VETH"));
    items.push(feature(
        "bridge",
        false,
        &f.bridge,
        "bridge",
        "CONFIG_BRIDGE",
    ));

    items.extend(network_items(f));

    let (ok, detail) = match &f.pidfd {
        Probe::Ok => (true, "pidfd_open works".to_string()),
        Probe::Failed(e) => (false, format!("{e}; the agent polls for exits instead")),
        Probe::NotTried(why) => (true, format!("not tried ({why})")),
    };
    let mut pidfd = Item::new("pidfd", false, ok, detail).fix(|| {
        "a kernel >= 5.3 has pidfd_open; upgrade the kernel (sudo apt full-upgrade)".into()
    });
    if let Probe::NotTried(_) = f.pidfd {
        pidfd.state = State::Unknown;
    }
    items.push(pidfd);

    let (ok, detail) = match &f.device_filter {
        Probe::Ok => (
            true,
            "containers get the OCI default device allowlist (eBPF, cgroup v2)".to_string(),
        ),
        Probe::Failed(e) => (
            false,
            format!(
                "{e}; containers run without a device allowlist: one with CAP_MKNOD can make \
                 and open any device node in its /dev (drop MKNOD, or fix the kernel)"
            ),
        ),
        Probe::NotTried(why) => (true, format!("not tried ({why})")),
    };
    let mut devices = Item::new("devices", false, ok, detail).fix(|| {
        "a kernel with CONFIG_CGROUP_BPF=y and CONFIG_BPF_SYSCALL=y (Debian's and Raspberry \
         Pi OS's have both), a cgroup v2 root picolet may write, and root"
            .into()
    });
    if let Probe::NotTried(_) = f.device_filter {
        devices.state = State::Unknown;
    }
    items.push(devices);
    if let Some(root) = &f.root_mount {
        items.push(root_item(root));
    }
    items
}

/// How containers enter their root: `pivot_root`, or where `/` is the
/// initramfs, the weaker `MS_MOVE` + `chroot` (docs/security.md).
fn root_item(root: &super::facts::RootMount) -> Item {
    let fs = &root.fstype;
    if !root.initial {
        return Item::new(
            "pivot_root",
            false,
            true,
            format!("/ is {fs}: containers pivot_root into their root"),
        );
    }
    Item {
        name: "pivot_root".into(),
        required: false,
        state: State::Warn,
        detail: format!(
            "/ is the initramfs ({fs}), which pivot_root refuses: containers enter their root \
             with MS_MOVE + chroot instead, and the initramfs stays beneath it; a process \
             with CAP_SYS_CHROOT (a default capability) can escape the chroot to it"
        ),
        fix: Some(
            "switch_root from the initramfs to a root filesystem (or a tmpfs copy of it) \
             before starting picolet, or drop SYS_CHROOT in the pods' securityContext"
                .into(),
        ),
    }
}

/// The pod network's items (optional: `podNetwork: none` needs none).
fn network_items(f: &Facts) -> Vec<Item> {
    let mut items = vec![
        feature(
            "nf_tables",
            false,
            &f.nf_tables,
            "nf_tables",
            "CONFIG_NF_TABLES",
        ),
        feature(
            "nft.nat",
            false,
            &f.nft_nat,
            "nft_chain_nat",
            "CONFIG_NFT_NAT",
        ),
        feature(
            "nft.masq",
            false,
            &f.nft_masq,
            "nft_masq",
            "CONFIG_NFT_MASQ",
        ),
        feature(
            "nft.fib",
            false,
            &f.nft_fib,
            "nft_fib_ipv4",
            "CONFIG_NFT_FIB_IPV4",
        ),
    ];
    let mut fwd = Item::new(
        "ip_forward",
        false,
        f.ip_forward == Some(true),
        match f.ip_forward {
            Some(true) => "net.ipv4.ip_forward = 1".into(),
            Some(false) => {
                "net.ipv4.ip_forward = 0: the agent turns it on at start (podNetwork: bridge)"
                    .into()
            }
            None => "no /proc/sys/net/ipv4/ip_forward".into(),
        },
    )
    .fix(|| {
        "the agent sets it at start; to keep it across reboots: echo net.ipv4.ip_forward=1 | \
         sudo tee /etc/sysctl.d/90-picolet.conf && sudo sysctl --system"
            .into()
    });
    if f.ip_forward.is_none() {
        fwd.state = State::Unknown;
    }
    items.push(fwd);
    let (state, detail) = match &f.forward_drop {
        Ok(drops) if drops.is_empty() => (State::Ok, "no forward chain drops by policy".into()),
        Ok(drops) => (
            State::Missing,
            format!(
                "policy drop on the forward hook in: {}; picolet's own accept cannot override \
                 a drop in another table, so pods reach nothing beyond the node and hostPorts \
                 are unreachable",
                drops.join(", ")
            ),
        ),
        Err(Probe::NotTried(why)) => (State::Unknown, format!("not tried ({why})")),
        Err(Probe::Failed(e)) => (State::Unknown, format!("cannot list the ruleset: {e}")),
        Err(Probe::Ok) => (State::Unknown, String::new()),
    };
    let fix = (state == State::Missing).then(|| {
        "accept the pod CIDR (podCIDR, default 10.87.0.0/24) in that firewall, before its \
         drop: iptables -I FORWARD -s 10.87.0.0/24 -j ACCEPT && iptables -I FORWARD -d \
         10.87.0.0/24 -j ACCEPT (nft: nft insert rule ip filter FORWARD ip saddr \
         10.87.0.0/24 accept, and the same with ip daddr; ufw: ufw route allow from \
         10.87.0.0/24 and ufw route allow to 10.87.0.0/24), and make it persistent the \
         way that firewall is configured"
            .to_string()
    });
    items.push(Item {
        name: "forward-policy".into(),
        required: false,
        state,
        detail,
        fix,
    });
    items
}

fn feature(name: &str, required: bool, a: &Availability, module: &str, key: &str) -> Item {
    let (state, detail) = match a {
        Availability::Loaded(w) => (State::Ok, format!("loaded ({w})")),
        Availability::Builtin(w) => (State::Ok, format!("built in ({w})")),
        Availability::Module(w) => (State::Ok, format!("module, loaded on demand ({w})")),
        Availability::Absent(w) => (State::Missing, w.clone()),
        Availability::Unknown(w) => (State::Unknown, w.clone()),
    };
    let fix = (state != State::Ok).then(|| {
        format!(
            "sudo modprobe {module}; if that fails the running kernel has no {module} \
             ({key}): install the modules of the running kernel (/lib/modules/$(uname -r); \
             after a kernel upgrade, reboot into it) or use a kernel built with {key}"
        )
    });
    Item {
        name: name.to_string(),
        required,
        state,
        detail,
        fix,
    }
}

fn cgroup_items(f: &Facts, board: &Board) -> Vec<Item> {
    let cg = &f.cgroup;
    let mut items = Vec::new();
    let v1: Vec<String> = cg
        .mounts
        .v1
        .iter()
        .map(|(c, p)| format!("{c} at {}", p.display()))
        .collect();
    let mount = cg.mounts.resolve("/").map(|(_, top)| top);
    let detail = match (&mount, cg.hierarchy()) {
        (Some(m), "hybrid") => format!(
            "hybrid v1/v2 hierarchy: cgroup2 at {}; bound to cgroup v1: {}",
            m.display(),
            v1.join(", ")
        ),
        (Some(m), _) => format!("unified hierarchy: cgroup2 at {}", m.display()),
        (None, "legacy") => format!("cgroup v1 only: {}", v1.join(", ")),
        (None, _) if cg.cgroup2_in_kernel => {
            "no cgroup2 mount (the kernel has cgroup2 in /proc/filesystems)".to_string()
        }
        (None, _) => "no cgroup2 mount, and no cgroup2 in /proc/filesystems".to_string(),
    };
    let mounted = mount.is_some();
    let no_mount_fix = || {
        if !cg.cgroup2_in_kernel {
            format!(
                "use a kernel >= {}.{} built with CONFIG_CGROUPS",
                MIN_KERNEL.0, MIN_KERNEL.1
            )
        } else if f.systemd {
            cmdline_fix(board, f, &unified_switches(board))
        } else if cg.hierarchy() == "legacy" {
            "mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 none /sys/fs/cgroup/unified \
             (better: boot with a pure cgroup v2 hierarchy)"
                .to_string()
        } else {
            "mount -t cgroup2 none /sys/fs/cgroup".to_string()
        }
    };
    items.push(Item::new("cgroup2", true, mounted, detail).fix(no_mount_fix));

    for c in Controller::ALL {
        let required = matches!(c, Controller::Cpu | Controller::Memory | Controller::Pids);
        let name = format!("cgroup.{c}");
        let Some(checked) = &cg.checked else {
            items.push(
                Item::new(name, required, false, "no cgroup2 mount".into()).fix(no_mount_fix),
            );
            continue;
        };
        if let Some(e) = &cg.error {
            items.push(Item::new(name, required, false, e.clone()).fix(no_mount_fix));
            continue;
        }
        let missing = cg.missing.iter().find(|m| m.controller == c);
        let Some(m) = missing else {
            items.push(Item::new(
                name,
                required,
                true,
                format!("in {}/cgroup.controllers", checked.display()),
            ));
            continue;
        };
        let (detail, fix) = match &m.reason {
            MissingReason::BoundToV1 { mount } => (
                format!(
                    "bound to the cgroup v1 hierarchy at {} (hybrid host), so cgroup v2 cannot use it",
                    mount.display()
                ),
                cmdline_fix(board, f, &unified_switches(board)),
            ),
            MissingReason::NotDelegated => (
                format!(
                    "not enabled for {} by its parent (not delegated)",
                    checked.display()
                ),
                format!(
                    "run picolet under systemd with Delegate=yes (picolet install sets it up), \
                     or enable it:  echo +{c} > {}/cgroup.subtree_control",
                    checked
                        .parent()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ),
            ),
            MissingReason::NotInKernel | MissingReason::EnableFailed { .. } => (
                format!("not in {}/cgroup.controllers", checked.display()),
                if c == Controller::Memory && board.cgroup_switches.contains("cgroup_enable=memory")
                {
                    cmdline_fix(board, f, &board.cgroup_switches)
                } else {
                    format!(
                        "the kernel has it disabled or lacks it: remove any cgroup_disable={c} \
                         from the kernel command line, or use a kernel built with {}",
                        kconfig(c)
                    )
                },
            ),
        };
        let mut item = Item::new(name, required, false, detail);
        item.fix = Some(fix);
        items.push(item);
    }
    items
}
