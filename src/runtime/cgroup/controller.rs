//! The cgroup v2 controllers picolet uses, a small set type for them, and the
//! one-time warning text for a missing one.

use std::fmt;
use std::path::PathBuf;

/// A cgroup v2 controller picolet enables for pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Controller {
    Cpu,
    Memory,
    Pids,
    Io,
    Cpuset,
}

impl Controller {
    /// Every controller picolet wants, in the order they are enabled.
    pub const ALL: [Controller; 5] = [
        Controller::Cpu,
        Controller::Memory,
        Controller::Pids,
        Controller::Io,
        Controller::Cpuset,
    ];

    /// The kernel's name, as in `cgroup.controllers`.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Io => "io",
            Controller::Cpuset => "cpuset",
        }
    }

    pub fn from_name(name: &str) -> Option<Controller> {
        Controller::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The interface files picolet writes for this controller (skipped when
    /// the controller is missing).
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Controller::Cpu => &[super::cpu::CPU_MAX, super::cpu::CPU_WEIGHT],
            Controller::Memory => &[super::memory::MEMORY_MAX, super::memory::MEMORY_SWAP_MAX],
            Controller::Pids => &[super::pids::PIDS_MAX],
            Controller::Io | Controller::Cpuset => &[],
        }
    }

    /// What a pod loses without this controller.
    fn consequence(self) -> &'static str {
        match self {
            Controller::Cpu => "CPU limits and weights (cpu.max, cpu.weight) are not applied",
            Controller::Memory => {
                "memory limits (memory.max, memory.swap.max) are not applied and OOM kills \
                 are not counted"
            }
            Controller::Pids => "the pids limit (pids.max) is not applied",
            Controller::Io => "I/O is not accounted per pod",
            Controller::Cpuset => "CPU pinning is not available",
        }
    }

    /// Kernel command-line switches that turn the controller on, if any.
    fn kernel_switches(self) -> &'static str {
        match self {
            // Raspberry Pi kernels disable memory by default.
            Controller::Memory => {
                "cgroup_enable=memory cgroup_memory=1 systemd.unified_cgroup_hierarchy=1"
            }
            _ => "systemd.unified_cgroup_hierarchy=1",
        }
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Controller`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControllerSet(u8);

impl ControllerSet {
    pub const EMPTY: ControllerSet = ControllerSet(0);

    pub fn all() -> ControllerSet {
        Controller::ALL.into_iter().collect()
    }

    /// Parses a space-separated list such as `cgroup.controllers`
    /// (`"cpuset cpu io memory hugetlb pids rdma misc"`). Names picolet does
    /// not use (`hugetlb`, `rdma`, …) are ignored.
    pub fn parse(text: &str) -> ControllerSet {
        text.split_whitespace()
            .filter_map(Controller::from_name)
            .collect()
    }

    pub fn contains(self, c: Controller) -> bool {
        self.0 & (1 << c as u8) != 0
    }

    pub fn insert(&mut self, c: Controller) {
        self.0 |= 1 << c as u8;
    }

    pub fn remove(&mut self, c: Controller) {
        self.0 &= !(1 << c as u8);
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn difference(self, other: ControllerSet) -> ControllerSet {
        ControllerSet(self.0 & !other.0)
    }

    pub fn intersection(self, other: ControllerSet) -> ControllerSet {
        ControllerSet(self.0 & other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Controller> {
        Controller::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    /// The `cgroup.subtree_control` write that enables these: `"+cpu +memory"`.
    pub fn enable_line(self) -> String {
        self.iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl FromIterator<Controller> for ControllerSet {
    fn from_iter<I: IntoIterator<Item = Controller>>(iter: I) -> Self {
        let mut set = ControllerSet::EMPTY;
        for c in iter {
            set.insert(c);
        }
        set
    }
}

impl fmt::Display for ControllerSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.iter().map(Controller::name).collect();
        f.write_str(&names.join(" "))
    }
}

/// Why a controller is not available in the cgroup root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissingReason {
    /// A v1/v2 hybrid host: the controller is mounted as a cgroup v1 hierarchy
    /// here, so cgroup v2 cannot have it.
    BoundToV1 { mount: PathBuf },
    /// The hierarchy's top cgroup has it but the root's parent did not enable
    /// it for its children (not delegated).
    NotDelegated,
    /// Neither: the kernel was built or booted without it.
    NotInKernel,
    /// It is available but enabling it in `cgroup.subtree_control` failed.
    EnableFailed { error: String },
}

/// A controller that pods will run without.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub controller: Controller,
    pub reason: MissingReason,
}

impl Missing {
    /// The one-time warning, naming the fix.
    pub fn warning(&self) -> String {
        let c = self.controller;
        let head = format!(
            "cgroup v2 controller '{c}' is not available: {}",
            c.consequence()
        );
        let fix = match &self.reason {
            MissingReason::BoundToV1 { mount } => format!(
                "it is bound to the cgroup v1 hierarchy at {} (v1/v2 hybrid host); boot with a \
                 pure cgroup v2 hierarchy: add `{}` to the kernel command line \
                 (/boot/firmware/cmdline.txt on Raspberry Pi OS bookworm, /boot/cmdline.txt \
                 before) and reboot",
                mount.display(),
                c.kernel_switches()
            ),
            MissingReason::NotDelegated => format!(
                "the parent cgroup does not delegate it; run picolet from systemd with \
                 `Delegate=yes` (see systemd/picolet.service) or write `+{c}` to the parent's \
                 cgroup.subtree_control"
            ),
            MissingReason::NotInKernel => format!(
                "the kernel does not offer it; add `{}` to the kernel command line \
                 (/boot/firmware/cmdline.txt on Raspberry Pi OS bookworm, /boot/cmdline.txt \
                 before) and reboot, or use a kernel built with it",
                c.kernel_switches()
            ),
            MissingReason::EnableFailed { error } => format!(
                "enabling it in cgroup.subtree_control failed ({error}); for cpu this usually \
                 means real-time processes outside the root cgroup on a kernel with \
                 CONFIG_RT_GROUP_SCHED"
            ),
        };
        format!("{head}; {fix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_set_parses_kernel_lists_and_ignores_unknown_names() {
        let set = ControllerSet::parse("cpuset cpu io memory hugetlb pids rdma misc\n");
        assert_eq!(set, ControllerSet::all());
        assert_eq!(ControllerSet::parse("hugetlb\n"), ControllerSet::EMPTY);
        let set = ControllerSet::parse("memory pids");
        assert!(set.contains(Controller::Memory) && set.contains(Controller::Pids));
        assert!(!set.contains(Controller::Cpu));
        assert_eq!(set.to_string(), "memory pids");
    }

    #[test]
    fn enable_line_lists_controllers_in_a_fixed_order() {
        let set = ControllerSet::parse("cpuset io pids memory cpu");
        assert_eq!(set.enable_line(), "+cpu +memory +pids +io +cpuset");
        assert_eq!(ControllerSet::EMPTY.enable_line(), "");
    }

    #[test]
    fn set_operations_work_per_controller() {
        let all = ControllerSet::all();
        let some = ControllerSet::parse("cpu io");
        assert_eq!(all.difference(some).to_string(), "memory pids cpuset");
        assert_eq!(all.intersection(some), some);
        let mut s = some;
        s.remove(Controller::Cpu);
        assert_eq!(s.to_string(), "io");
        assert!(!s.is_empty());
        s.remove(Controller::Io);
        assert!(s.is_empty());
    }

    #[test]
    fn memory_warning_names_the_kernel_switches_and_cmdline_file() {
        let w = Missing {
            controller: Controller::Memory,
            reason: MissingReason::NotInKernel,
        }
        .warning();
        assert!(w.contains("cgroup_enable=memory cgroup_memory=1"), "{w}");
        assert!(w.contains("systemd.unified_cgroup_hierarchy=1"), "{w}");
        assert!(w.contains("/boot/firmware/cmdline.txt"), "{w}");
        assert!(w.contains("memory.max"), "{w}");
    }

    #[test]
    fn hybrid_warning_names_the_v1_mount() {
        let w = Missing {
            controller: Controller::Memory,
            reason: MissingReason::BoundToV1 {
                mount: PathBuf::from("/sys/fs/cgroup/memory"),
            },
        }
        .warning();
        assert!(w.contains("bound to the cgroup v1 hierarchy at /sys/fs/cgroup/memory"));
        let w = Missing {
            controller: Controller::Pids,
            reason: MissingReason::NotDelegated,
        }
        .warning();
        assert!(w.contains("Delegate=yes") && w.contains("+pids"), "{w}");
    }
}
