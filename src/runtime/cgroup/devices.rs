//! The device allowlist of every container: which device nodes its
//! processes may create and open. cgroup v2 expresses it as an eBPF
//! program ([`crate::sys::bpf`]) attached to the container's cgroup, as
//! runc and crun do.
//!
//! The list is the OCI default set, and nothing else: `/dev/null`,
//! `zero`, `full`, `random`, `urandom`, `tty`, `ptmx` and the pseudo
//! terminals `pts/*`, each read, write and mknod. Every other node,
//! whether made with `mknod` (a default container has `CAP_MKNOD`) or
//! shipped in an image layer, cannot be opened: `b 7:0` (a loop device),
//! `b 179:0` (a Raspberry Pi's SD card), `c 1:11` (`/dev/kmsg`) are
//! `EPERM`. Unlike runc, `mknod` of other devices is refused too (runc
//! allows `c *:* m`): a node nobody may open has no use in a pod.
//!
//! A privileged container gets no program, so only what the cgroup's
//! ancestors allow applies (all devices, as in Kubernetes).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use crate::sys::bpf::{self, ACC_RWM, DevType, DeviceRule, Program};

/// The OCI default devices: `c 1:3, 1:5, 1:7, 1:8, 1:9` (null, zero,
/// full, random, urandom), `c 5:0` (tty), `c 5:2` (ptmx), `c 136-143:*`
/// (pts).
pub const DEFAULT_DEVICES: [DeviceRule; 8] = [
    DeviceRule::char(1, 3),
    DeviceRule::char(1, 5),
    DeviceRule::char(1, 7),
    DeviceRule::char(1, 8),
    DeviceRule::char(1, 9),
    DeviceRule::char(5, 0),
    DeviceRule::char(5, 2),
    DeviceRule {
        kind: DevType::Char,
        majors: (136, 143),
        minor: None,
        access: ACC_RWM,
    },
];

/// The default allowlist, loaded into the kernel once per agent.
#[derive(Debug)]
pub struct DeviceFilter {
    program: Program,
}

impl DeviceFilter {
    /// Loads [`DEFAULT_DEVICES`]. Fails where the kernel lacks
    /// `CONFIG_CGROUP_BPF` or the caller lacks `CAP_SYS_ADMIN`/`CAP_BPF`.
    pub fn load() -> io::Result<DeviceFilter> {
        Ok(DeviceFilter {
            program: Program::load(&bpf::assemble(&DEFAULT_DEVICES))?,
        })
    }

    /// Makes the cgroup at `dir` allow the default devices only, or —
    /// `privileged` — every device its ancestors allow. Replaces whatever
    /// an earlier agent attached there.
    pub fn apply(&self, dir: &Path, privileged: bool) -> io::Result<()> {
        let cgroup = File::open(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("open cgroup {}: {e}", dir.display())))?;
        let program = (!privileged).then_some(&self.program);
        bpf::replace_device_programs(cgroup.as_fd(), program).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("device allowlist on {}: {e}", dir.display()),
            )
        })
    }
}
