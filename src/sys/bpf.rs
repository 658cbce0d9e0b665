//! eBPF device-cgroup programs (`BPF_PROG_TYPE_CGROUP_DEVICE`): how cgroup
//! v2 decides which device nodes a cgroup's processes may create (`mknod`),
//! read and write. cgroup v2 has no `devices.allow` file; runc and crun
//! attach such a program to every container's cgroup, and so does picolet.
//!
//! [`assemble`] turns an allowlist of [`DeviceRule`]s into instructions
//! (pure, and checked by an interpreter in the tests); [`Program::load`]
//! hands them to the kernel's verifier; [`replace_device_programs`]
//! attaches one to a cgroup directory, replacing what an earlier agent
//! attached there.
//!
//! The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32
//! major; u32 minor; }` where `access_type = access << 16 | type`, and
//! returns 1 to allow, 0 to deny (`EPERM`). The kernel consults it on
//! `mknod` and on every `open` of a device node, also when a v1 devices
//! controller is mounted beside it (a hybrid host).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `BPF_DEVCG_DEV_BLOCK` / `BPF_DEVCG_DEV_CHAR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevType {
    Block = 1,
    Char = 2,
}

/// `BPF_DEVCG_ACC_MKNOD`.
pub const ACC_MKNOD: u32 = 1;
/// `BPF_DEVCG_ACC_READ`.
pub const ACC_READ: u32 = 2;
/// `BPF_DEVCG_ACC_WRITE`.
pub const ACC_WRITE: u32 = 4;
/// Read, write and mknod: the OCI `rwm`.
pub const ACC_RWM: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One allowlist entry: devices of `kind` whose major lies in `majors`
/// (inclusive) and whose minor is `minor` (any when `None`) may be
/// accessed in the ways of `access` (a subset of [`ACC_RWM`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub kind: DevType,
    pub majors: (u32, u32),
    pub minor: Option<u32>,
    pub access: u32,
}

impl DeviceRule {
    /// One character device, `rwm`.
    pub const fn char(major: u32, minor: u32) -> DeviceRule {
        DeviceRule {
            kind: DevType::Char,
            majors: (major, major),
            minor: Some(minor),
            access: ACC_RWM,
        }
    }

    /// Whether this rule allows `access` to `kind` `major:minor`: the
    /// meaning [`assemble`]'s instructions must have.
    pub fn allows(&self, kind: DevType, major: u32, minor: u32, access: u32) -> bool {
        self.kind == kind
            && (self.majors.0..=self.majors.1).contains(&major)
            && self.minor.is_none_or(|m| m == minor)
            && access & !self.access == 0
    }
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// `dst_reg:4, src_reg:4` as the C bit-field lays them out.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes (class | op | source) used by the device programs.
pub(crate) const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
pub(crate) const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
pub(crate) const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
pub(crate) const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
pub(crate) const ALU64_MOV_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
pub(crate) const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
pub(crate) const JMP_JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
pub(crate) const JMP_JLT_K: u8 = 0xa5; // BPF_JMP | BPF_JLT | BPF_K
pub(crate) const JMP_JGT_K: u8 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
pub(crate) const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

const fn regs(dst: u8, src: u8) -> u8 {
    if cfg!(target_endian = "little") {
        dst | (src << 4)
    } else {
        (dst << 4) | src
    }
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: regs(dst, src),
        off,
        imm,
    }
}

/// Registers: r1 = ctx, then r2 = type, r3 = access, r4 = major, r5 = minor.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

/// Assembles the allowlist: allow when any rule matches, deny otherwise.
/// Immediates are compared as signed 32-bit values sign-extended to 64
/// bits, so majors and minors above `i32::MAX` (impossible: a major has
/// 12 bits, a minor 20) are clamped.
pub fn assemble(rules: &[DeviceRule]) -> Vec<Insn> {
    let imm = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let mut out = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(ALU32_AND_K, R2, 0, 0, 0xffff),
        insn(LDX_MEM_W, R3, R1, 0, 0),
        insn(ALU32_RSH_K, R3, 0, 0, 16),
        insn(LDX_MEM_W, R4, R1, 4, 0),
        insn(LDX_MEM_W, R5, R1, 8, 0),
    ];
    for rule in rules {
        // Each test jumps to the end of the block ("next rule"); the
        // offsets are filled in once the block's length is known.
        let mut block: Vec<Insn> = Vec::with_capacity(9);
        block.push(insn(JMP_JNE_K, R2, 0, 0, rule.kind as i32));
        // (access & allowed) != access → next
        block.push(insn(ALU64_MOV_X, R1, R3, 0, 0));
        block.push(insn(ALU32_AND_K, R1, 0, 0, imm(rule.access)));
        block.push(insn(JMP_JNE_X, R1, R3, 0, 0));
        let (lo, hi) = rule.majors;
        if lo == hi {
            block.push(insn(JMP_JNE_K, R4, 0, 0, imm(lo)));
        } else {
            block.push(insn(JMP_JLT_K, R4, 0, 0, imm(lo)));
            block.push(insn(JMP_JGT_K, R4, 0, 0, imm(hi)));
        }
        if let Some(minor) = rule.minor {
            block.push(insn(JMP_JNE_K, R5, 0, 0, imm(minor)));
        }
        block.push(insn(ALU64_MOV_K, R0, 0, 0, 1));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code != JMP_EXIT && ins.code & 0x07 == 0x05 {
                // Jump to just past the block: off counts from the next insn.
                ins.off = i16::try_from(len - i - 1).unwrap_or(i16::MAX);
            }
        }
        out.extend(block);
    }
    out.push(insn(ALU64_MOV_K, R0, 0, 0, 0));
    out.push(insn(JMP_EXIT, 0, 0, 0, 0));
    out
}

// The bpf(2) commands, program type, attach type and flag picolet uses.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Programs of the cgroup and of its ancestors all run, and all must
/// allow (systemd attaches its own `DevicePolicy=` programs this way).
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The `BPF_PROG_LOAD` member of `union bpf_attr`, up to
/// `expected_attach_type`; the kernel zero-fills the rest.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH` / `BPF_PROG_DETACH` member.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// The `BPF_PROG_QUERY` member, up to `prog_cnt`.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// The `BPF_PROG_GET_FD_BY_ID` member.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `bpf(cmd, attr, sizeof attr)`; the error names `what`.
fn bpf<T>(cmd: libc::c_long, attr: &mut T, what: &str) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, exclusively borrowed `#[repr(C)]` member
    // of `union bpf_attr` whose exact size is passed; every pointer inside
    // it points to memory that outlives the call, sized as its count says.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr).cast::<libc::c_void>(),
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("bpf {what}: {e}")));
    }
    Ok(r)
}

/// Wraps a descriptor `bpf` just returned.
fn owned_fd(r: libc::c_long) -> io::Result<OwnedFd> {
    let fd = libc::c_int::try_from(r).map_err(|_| io::Error::other("bpf returned no fd"))?;
    // SAFETY: `fd` was just returned by the kernel as a new descriptor that
    // nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn raw_fd(fd: BorrowedFd<'_>) -> u32 {
    u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX)
}

/// A loaded device-cgroup program. Attaching it to a cgroup makes the
/// cgroup hold its own reference: the program outlives this descriptor.
#[derive(Debug)]
pub struct Program {
    fd: OwnedFd,
}

impl Program {
    /// Loads `insns` as a `BPF_PROG_TYPE_CGROUP_DEVICE` program. On a
    /// verifier refusal the error carries the verifier's log (asked for
    /// only then: a log that outgrows its buffer fails the load).
    pub fn load(insns: &[Insn]) -> io::Result<Program> {
        match Self::load_with_log(insns, &mut []) {
            Ok(p) => Ok(p),
            Err(e) => {
                let mut log = vec![0u8; 64 * 1024];
                match Self::load_with_log(insns, &mut log) {
                    Ok(p) => Ok(p),
                    Err(_) => {
                        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                        let text = String::from_utf8_lossy(&log[..end]);
                        let text = text.trim();
                        if text.is_empty() {
                            Err(e)
                        } else {
                            Err(io::Error::new(e.kind(), format!("{e}; verifier: {text}")))
                        }
                    }
                }
            }
        }
    }

    fn load_with_log(insns: &[Insn], log: &mut [u8]) -> io::Result<Program> {
        let license = c"Apache-2.0";
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: u32::try_from(insns.len()).map_err(io::Error::other)?,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            ..ProgLoadAttr::default()
        };
        if !log.is_empty() {
            attr.log_level = 1;
            attr.log_size = u32::try_from(log.len()).map_err(io::Error::other)?;
            attr.log_buf = log.as_mut_ptr() as u64;
        }
        attr.prog_name[..14].copy_from_slice(b"picolet_device");
        let fd = bpf(BPF_PROG_LOAD, &mut attr, "load the device program")?;
        Ok(Program { fd: owned_fd(fd)? })
    }
}

impl AsFd for Program {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The IDs of the device programs attached directly to `cgroup` (an open
/// cgroup v2 directory), not those inherited from its ancestors.
pub fn attached_device_programs(cgroup: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: raw_fd(cgroup),
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: u32::try_from(ids.len()).unwrap_or(0),
        ..QueryAttr::default()
    };
    bpf(
        BPF_PROG_QUERY,
        &mut attr,
        "query the cgroup's device programs",
    )?;
    ids.truncate(usize::try_from(attr.prog_cnt).unwrap_or(0));
    Ok(ids)
}

/// Detaches every device program attached directly to `cgroup`, then
/// attaches `program` if given (`None` leaves the cgroup open to every
/// device its ancestors allow: a privileged container). Idempotent, so an
/// agent that restarts and re-creates a container cgroup does not stack
/// programs.
pub fn replace_device_programs(
    cgroup: BorrowedFd<'_>,
    program: Option<&Program>,
) -> io::Result<()> {
    for id in attached_device_programs(cgroup)? {
        let mut get = GetFdAttr {
            prog_id: id,
            ..GetFdAttr::default()
        };
        let old = owned_fd(bpf(
            BPF_PROG_GET_FD_BY_ID,
            &mut get,
            "open an attached device program",
        )?)?;
        let mut detach = AttachAttr {
            target_fd: raw_fd(cgroup),
            attach_bpf_fd: raw_fd(old.as_fd()),
            attach_type: BPF_CGROUP_DEVICE,
            attach_flags: 0,
        };
        bpf(BPF_PROG_DETACH, &mut detach, "detach a device program")?;
    }
    if let Some(p) = program {
        let mut attach = AttachAttr {
            target_fd: raw_fd(cgroup),
            attach_bpf_fd: raw_fd(p.as_fd()),
            attach_type: BPF_CGROUP_DEVICE,
            attach_flags: BPF_F_ALLOW_MULTI,
        };
        bpf(BPF_PROG_ATTACH, &mut attach, "attach the device program")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
