//! `seccompProfile: RuntimeDefault`: containerd's default profile
//! (`contrib/seccomp/seccomp_default.go`) as a classic BPF program, built
//! when the shim prepares a container and installed by
//! [`super::security::Plan::apply`] as the last step before `execve`.
//!
//! The profile: an allowlist of syscalls; more of them when the container's
//! capability set holds `CAP_SYS_ADMIN`, `CAP_SYS_PTRACE`, … (containerd
//! looks at the bounding set, which is ours); `personality` only with the
//! five values containerd allows; without `CAP_SYS_ADMIN`, `clone` only
//! without namespace flags and `clone3` fails with `ENOSYS` (so libcs fall
//! back to `clone`); every other syscall fails with `EPERM` (containerd's
//! `defaultErrnoRet`). The syscall numbers are per architecture
//! ([`tables`]: x86_64; aarch64 and its 32-bit arm compat mode), generated
//! from the kernel's `asm/unistd.h` for containerd's names; a name an
//! architecture lacks is skipped, as libseccomp does.
//!
//! Program shape: the architecture is checked first (another one is killed,
//! libseccomp's bad-arch action); then the allowed numbers, merged into
//! ranges, are searched as a balanced binary tree of `jge` tests, so a
//! syscall costs about 2·log2(ranges) + 3 instructions (about 17 on
//! x86_64). x32 syscalls (bit 30 set) and i386 compat syscalls on x86_64
//! are refused (containerd allows them with their own tables; containers
//! here run native binaries).

mod tables;

pub use crate::sys::seccomp::SockFilter;

/// One architecture's numbers (see `tables.rs`).
pub(crate) struct Arch {
    /// `AUDIT_ARCH_*`, as in `seccomp_data.arch`.
    pub audit: u32,
    /// x86_64: refuse the x32 ABI (`__X32_SYSCALL_BIT`).
    pub x32: bool,
    pub clone: u16,
    pub clone3: u16,
    pub personality: u16,
    /// Always allowed, ascending; `0xF000 | n` is ARM's private `0x0f0000 + n`.
    pub base: &'static [u16],
    /// Allowed when the capability (number) is held: `(syscall, cap)`.
    pub caps: &'static [(u16, u8)],
}

/// The architectures a container on this machine may use: the native one,
/// and on ARM both 64- and 32-bit (a 32-bit userland on a 64-bit kernel).
pub(crate) fn native() -> &'static [&'static Arch] {
    #[cfg(target_arch = "x86_64")]
    static NATIVE: [&Arch; 1] = [&tables::X86_64];
    #[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
    static NATIVE: [&Arch; 2] = [&tables::AARCH64, &tables::ARM];
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm")))]
    static NATIVE: [&Arch; 0] = [];
    &NATIVE
}

const CAP_SYS_ADMIN: u8 = 21;
const ALLOW: u32 = 0x7fff_0000;
const KILL_PROCESS: u32 = 0x8000_0000;
const ERRNO: u32 = 0x0005_0000;
const EPERM: u32 = ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = ERRNO | libc::ENOSYS as u32;
/// `CLONE_NEWNS | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWCGROUP`.
const CLONE_NAMESPACES: u32 = 0x7e02_0000;
/// The `personality` values containerd allows.
const PERSONALITIES: [u32; 5] = [0, 0x0008, 0x2_0000, 0x2_0008, 0xffff_ffff];

// Classic BPF opcodes.
const LD_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT: u16 = 0x25;
const JGE: u16 = 0x35;
const JA: u16 = 0x05;
const AND: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RET: u16 = 0x06; // BPF_RET | BPF_K
// `struct seccomp_data` offsets (little-endian: an argument's low half first).
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG0_LO: u32 = 16;
const ARG0_HI: u32 = 20;

fn op(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

fn ret(k: u32) -> SockFilter {
    op(RET, k, 0, 0)
}

/// What one range of syscall numbers gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    Allow,
    /// `clone` without namespace flags.
    Clone,
    Enosys,
    Personality,
}

/// Slots of the number map [`ranges`] fills: every syscall number of the
/// tables is below 504; ARM's private `0x0f0000 + n` (`0xF000 | n` in the
/// tables) takes slot 504 + n.
const SLOTS: usize = 512;
const PRIVATE: usize = 504;

fn slot(v: u16) -> usize {
    if v >= 0xF000 {
        PRIVATE + usize::from(v & 0xfff)
    } else {
        usize::from(v)
    }
}

fn nr_of(slot: usize) -> u32 {
    if slot >= PRIVATE {
        0x0f_0000 + (slot - PRIVATE) as u32
    } else {
        slot as u32
    }
}

/// The ascending `(first, last, rule)` ranges of `arch` for capability set
/// `caps` (a bit mask).
fn ranges(arch: &Arch, caps: u64) -> Vec<(u32, u32, Rule)> {
    let held = |c: u8| caps & (1u64 << c) != 0;
    let mut map = [None; SLOTS];
    for &n in arch.base {
        map[slot(n)] = Some(Rule::Allow);
    }
    for &(n, c) in arch.caps {
        if held(c) {
            map[slot(n)] = Some(Rule::Allow);
        }
    }
    let admin = held(CAP_SYS_ADMIN);
    map[slot(arch.clone)] = Some(if admin { Rule::Allow } else { Rule::Clone });
    map[slot(arch.clone3)] = Some(if admin { Rule::Allow } else { Rule::Enosys });
    map[slot(arch.personality)] = Some(Rule::Personality);
    let mut out: Vec<(u32, u32, Rule)> = Vec::new();
    for (i, rule) in map.into_iter().enumerate() {
        let (Some(rule), nr) = (rule, nr_of(i)) else {
            continue;
        };
        match out.last_mut() {
            Some(last) if rule == Rule::Allow && last.2 == Rule::Allow && last.1 + 1 == nr => {
                last.1 = nr;
            }
            _ => out.push((nr, nr, rule)),
        }
    }
    out
}

/// The instructions after a range matched; they end in returns, except
/// that falling off the end means `EPERM` (the caller's next instruction).
fn body(rule: Rule) -> Vec<SockFilter> {
    match rule {
        Rule::Allow => vec![ret(ALLOW)],
        Rule::Enosys => vec![ret(ENOSYS)],
        Rule::Clone => vec![
            op(LD_ABS, ARG0_LO, 0, 0),
            op(AND, CLONE_NAMESPACES, 0, 0),
            op(JEQ, 0, 0, 1),
            ret(ALLOW),
        ],
        Rule::Personality => {
            // The upper half must be 0 (libseccomp compares 64 bits), then
            // one of the values.
            let n = PERSONALITIES.len() as u8;
            let mut v = vec![op(LD_ABS, ARG0_HI, 0, 0), op(JEQ, 0, 0, n + 2)];
            v.push(op(LD_ABS, ARG0_LO, 0, 0));
            for (i, &p) in PERSONALITIES.iter().enumerate() {
                let left = n - 1 - i as u8;
                v.push(op(JEQ, p, left, if left == 0 { 1 } else { 0 }));
            }
            v.push(ret(ALLOW));
            v
        }
    }
}

/// A binary search over `r` with the syscall number in the accumulator.
fn tree(r: &[(u32, u32, Rule)], out: &mut Vec<SockFilter>) {
    if let [(lo, hi, rule)] = r {
        let b = body(*rule);
        let n = b.len() as u8;
        out.push(op(JGE, *lo, 0, n + 1));
        out.push(op(JGT, *hi, n, 0));
        out.extend(b);
        out.push(ret(EPERM));
        return;
    }
    let (left, right) = r.split_at(r.len() / 2);
    let mut l = Vec::new();
    tree(left, &mut l);
    // nr >= right's first: jump over the left half.
    out.push(op(JGE, right[0].0, 0, 1));
    out.push(op(JA, l.len() as u32, 0, 0));
    out.extend(l);
    tree(right, out);
}

/// The filter for a container with capability set `caps` (a bit mask)
/// on the architectures `arches`.
pub(crate) fn program_for(arches: &[&Arch], caps: u64) -> Vec<SockFilter> {
    let blocks: Vec<Vec<SockFilter>> = arches
        .iter()
        .map(|a| {
            let mut b = vec![op(LD_ABS, NR, 0, 0)];
            if a.x32 {
                b.push(op(JGE, 0x4000_0000, 0, 1));
                b.push(ret(EPERM));
            }
            tree(&ranges(a, caps), &mut b);
            b
        })
        .collect();
    let mut prog = vec![op(LD_ABS, ARCH, 0, 0)];
    // Per architecture: `jeq arch` then `ja` to its block.
    let head = 1 + 2 * arches.len() + 1;
    let mut start = head;
    for (i, (a, b)) in arches.iter().zip(&blocks).enumerate() {
        prog.push(op(JEQ, a.audit, 0, 1));
        let after_ja = 1 + 2 * i + 2;
        prog.push(op(JA, (start - after_ja) as u32, 0, 0));
        start += b.len();
    }
    prog.push(ret(KILL_PROCESS));
    for b in blocks {
        prog.extend(b);
    }
    prog
}

/// The filter for this machine ([`native`]).
pub fn program(caps: u64) -> Vec<SockFilter> {
    program_for(native(), caps)
}

#[cfg(test)]
mod tests;
