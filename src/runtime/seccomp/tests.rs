//! The generated filters, run by a small classic-BPF interpreter against
//! every number of each architecture; the real kernel in
//! `tests/security.rs`.

use super::*;

/// Runs `prog` on a `seccomp_data` of (nr, arch, args[0]).
fn run(prog: &[SockFilter], nr: u32, arch: u32, arg0: u64) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    data[16..24].copy_from_slice(&arg0.to_le_bytes());
    let (mut a, mut pc) = (0u32, 0usize);
    loop {
        let i = prog[pc];
        pc += 1;
        let jump = |cond: bool| if cond { i.jt as usize } else { i.jf as usize };
        match i.code {
            LD_ABS => {
                let k = i.k as usize;
                a = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
            }
            AND => a &= i.k,
            JEQ => pc += jump(a == i.k),
            JGT => pc += jump(a > i.k),
            JGE => pc += jump(a >= i.k),
            JA => pc += i.k as usize,
            RET => return i.k,
            c => panic!("unexpected opcode {c:#x} at {}", pc - 1),
        }
    }
}

const DEFAULT_CAPS: u64 = 0xa80425fb;

fn all_arches() -> [&'static Arch; 3] {
    [&tables::X86_64, &tables::AARCH64, &tables::ARM]
}

fn allowed(arch: &Arch, caps: u64) -> Vec<u32> {
    let mut v: Vec<u32> = arch.base.iter().map(|&n| nr_of(slot(n))).collect();
    v.extend(
        arch.caps
            .iter()
            .filter(|(_, c)| caps & (1 << c) != 0)
            .map(|&(n, _)| nr_of(slot(n))),
    );
    v
}

#[test]
fn every_number_gets_containerds_answer_on_every_architecture() {
    let arches = all_arches();
    for caps in [DEFAULT_CAPS, 0, u64::MAX] {
        let prog = program_for(&arches, caps);
        assert!(prog.len() < 4096, "{} instructions", prog.len());
        for a in arches {
            let allow = allowed(a, caps);
            let admin = caps & (1 << CAP_SYS_ADMIN) != 0;
            for nr in (0..1024).chain(0x0f_0000..0x0f_0010) {
                let got = run(&prog, nr, a.audit, 0);
                let want = if nr == u32::from(a.clone) && !admin {
                    ALLOW // flags 0: no new namespace
                } else if nr == u32::from(a.clone3) && !admin {
                    ENOSYS
                } else if allow.contains(&nr)
                    || (admin && (nr == u32::from(a.clone) || nr == u32::from(a.clone3)))
                    || nr == u32::from(a.personality)
                {
                    ALLOW
                } else {
                    EPERM
                };
                assert_eq!(got, want, "arch {:#x} nr {nr} caps {caps:#x}", a.audit);
            }
        }
    }
}

#[test]
fn clone_with_namespace_flags_needs_sys_admin_and_personality_only_known_values() {
    let a = &tables::X86_64;
    let user = program_for(&[a], DEFAULT_CAPS);
    let admin = program_for(&[a], DEFAULT_CAPS | 1 << CAP_SYS_ADMIN);
    let clone = u32::from(a.clone);
    // A thread (CLONE_VM|FS|FILES|SIGHAND|THREAD…) and a fork are fine.
    assert_eq!(run(&user, clone, a.audit, 0x003d_0f00), ALLOW);
    assert_eq!(run(&user, clone, a.audit, 17), ALLOW);
    for flag in [0x0002_0000u64, 0x1000_0000, 0x4000_0000, 0x2000_0000] {
        assert_eq!(run(&user, clone, a.audit, flag | 17), EPERM, "{flag:#x}");
        assert_eq!(run(&admin, clone, a.audit, flag | 17), ALLOW, "{flag:#x}");
    }
    let pers = u32::from(a.personality);
    for ok in PERSONALITIES {
        assert_eq!(run(&user, pers, a.audit, u64::from(ok)), ALLOW, "{ok:#x}");
    }
    assert_eq!(run(&user, pers, a.audit, 0x0040_0000), EPERM); // READ_IMPLIES_EXEC
    assert_eq!(run(&user, pers, a.audit, 1 << 32), EPERM);
    // unshare (272), keyctl (250), mount (165): containerd's EPERM.
    for nr in [272, 250, 165] {
        assert_eq!(run(&user, nr, a.audit, 0), EPERM, "{nr}");
    }
    assert_eq!(run(&admin, 272, a.audit, 0), ALLOW);
    assert_eq!(
        run(&admin, 250, a.audit, 0),
        EPERM,
        "keyctl is never allowed"
    );
}

#[test]
fn other_architectures_are_killed_and_x32_is_refused() {
    let prog = program_for(&[&tables::X86_64], DEFAULT_CAPS);
    assert_eq!(run(&prog, 0, 0x4000_0003, 0), KILL_PROCESS); // i386
    assert_eq!(run(&prog, 0, tables::X86_64.audit, 0), ALLOW); // read
    assert_eq!(run(&prog, 0x4000_0000, tables::X86_64.audit, 0), EPERM);
    let arm = program_for(&[&tables::AARCH64, &tables::ARM], DEFAULT_CAPS);
    assert_eq!(run(&arm, 63, tables::AARCH64.audit, 0), ALLOW); // read
    assert_eq!(run(&arm, 3, tables::ARM.audit, 0), ALLOW); // read
    assert_eq!(run(&arm, 0x0f_0005, tables::ARM.audit, 0), ALLOW); // set_tls
    assert_eq!(run(&arm, 0, tables::X86_64.audit, 0), KILL_PROCESS);
}

#[test]
fn the_tables_are_sorted_and_name_the_well_known_numbers() {
    for a in all_arches() {
        assert!(a.base.windows(2).all(|w| w[0] < w[1]));
        assert!(!a.base.contains(&a.clone) && !a.base.contains(&a.personality));
    }
    // x86_64: read 0, execve 59, arch_prctl 158; not mount 165, reboot 169.
    let x = &tables::X86_64;
    for n in [0, 59, 158, 435 - 11] {
        assert!(x.base.contains(&n), "{n}");
    }
    assert!(!x.base.contains(&165) && !x.base.contains(&169));
    assert!(x.caps.contains(&(169, 22)) && x.caps.contains(&(165, 21)));
    // aarch64: openat 56, execve 221; no open/fork (asm-generic has none).
    assert!(tables::AARCH64.base.contains(&56) && tables::AARCH64.base.contains(&221));
    assert_eq!(
        (tables::ARM.clone, tables::AARCH64.clone, x.clone),
        (120, 220, 56)
    );
}

/// The native program as the kernel gets it: native architectures only.
#[test]
fn the_native_program_is_small() {
    let p = program(DEFAULT_CAPS);
    assert!(!p.is_empty() && p.len() < 1024, "{}", p.len());
    assert_eq!(p[0], op(LD_ABS, ARCH, 0, 0));
}
