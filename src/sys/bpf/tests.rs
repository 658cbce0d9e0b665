use super::*;
use std::path::PathBuf;
use std::process::Command;

/// The register numbers of an instruction: (dst, src).
fn split_regs(r: u8) -> (u8, u8) {
    if cfg!(target_endian = "little") {
        (r & 0xf, r >> 4)
    } else {
        (r >> 4, r & 0xf)
    }
}

/// Runs the instructions on `ctx` the way the kernel would for the subset
/// [`assemble`] emits; panics on anything else (so a new opcode must be
/// taught here before it is used).
fn run(prog: &[Insn], access_type: u32, major: u32, minor: u32) -> u64 {
    let ctx = [access_type, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    for _ in 0..10_000 {
        let i = prog[pc];
        let (dst, src) = split_regs(i.regs);
        let (dst, src) = (usize::from(dst), usize::from(src));
        let imm64 = i64::from(i.imm) as u64;
        pc += 1;
        let jump = |pc: &mut usize, cond: bool| {
            if cond {
                *pc = (*pc as isize + isize::from(i.off)) as usize;
            }
        };
        match i.code {
            LDX_MEM_W => {
                assert_eq!(src, 1, "loads only from the context");
                r[dst] = u64::from(ctx[usize::try_from(i.off).unwrap() / 4]);
            }
            ALU32_AND_K => r[dst] = u64::from((r[dst] as u32) & (i.imm as u32)),
            ALU32_RSH_K => r[dst] = u64::from((r[dst] as u32) >> i.imm),
            ALU64_MOV_K => r[dst] = imm64,
            ALU64_MOV_X => r[dst] = r[src],
            JMP_JNE_K => jump(&mut pc, r[dst] != imm64),
            JMP_JNE_X => jump(&mut pc, r[dst] != r[src]),
            JMP_JLT_K => jump(&mut pc, r[dst] < imm64),
            JMP_JGT_K => jump(&mut pc, r[dst] > imm64),
            JMP_EXIT => return r[0],
            c => panic!("opcode {c:#x} not emitted by assemble"),
        }
    }
    panic!("program did not exit");
}

fn rules() -> Vec<DeviceRule> {
    vec![
        DeviceRule::char(1, 3),
        DeviceRule::char(5, 0),
        DeviceRule {
            kind: DevType::Char,
            majors: (136, 143),
            minor: None,
            access: ACC_RWM,
        },
        DeviceRule {
            kind: DevType::Block,
            majors: (8, 8),
            minor: None,
            access: ACC_READ,
        },
    ]
}

#[test]
fn the_program_means_exactly_the_rules_for_every_device_and_access() {
    let rules = rules();
    let prog = assemble(&rules);
    for kind in [DevType::Block, DevType::Char] {
        for major in [0, 1, 2, 5, 7, 8, 9, 135, 136, 140, 143, 144, 179, 4095] {
            for minor in [0, 1, 3, 5, 11, 1 << 19] {
                for access in 1..=ACC_RWM {
                    let want = rules.iter().any(|r| r.allows(kind, major, minor, access));
                    let got = run(&prog, access << 16 | kind as u32, major, minor);
                    assert_eq!(
                        got,
                        u64::from(want),
                        "{kind:?} {major}:{minor} access {access:03b}"
                    );
                }
            }
        }
    }
}

#[test]
fn an_empty_allowlist_denies_everything() {
    let prog = assemble(&[]);
    assert_eq!(prog.len(), 8);
    assert_eq!(run(&prog, ACC_READ << 16 | 2, 1, 3), 0);
}

#[test]
fn rules_with_partial_access_refuse_the_rest() {
    let prog = assemble(&rules());
    // b 8:* is read-only: reading is allowed, mknod and write are not.
    assert_eq!(run(&prog, ACC_READ << 16 | 1, 8, 0), 1);
    assert_eq!(run(&prog, ACC_WRITE << 16 | 1, 8, 0), 0);
    assert_eq!(run(&prog, (ACC_READ | ACC_MKNOD) << 16 | 1, 8, 0), 0);
}

/// A cgroup this test makes under the unified hierarchy, removed on drop.
struct TestCgroup(PathBuf);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn unified_root() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    crate::runtime::cgroup::hierarchy::Mounts::parse(&text)
        .cgroup2
        .into_iter()
        .find(|m| m.root == "/")
        .map(|m| m.mount_point)
}

/// The real kernel: a process in a cgroup with the program attached may
/// use `/dev/null` and make `c 1:3`, but neither make nor open a block
/// device or `/dev/kmsg`; with the program replaced by nothing (what a
/// privileged container gets) it may again.
#[test]
fn the_kernel_enforces_the_allowlist_on_mknod_and_open() {
    if crate::check::qemu_user().is_some() {
        eprintln!("skipping under qemu-user: no bpf(2) emulation");
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(crate::testutil::cannot_run("device programs need root"));
        return;
    }
    let Some(mount) = unified_root() else {
        assert!(crate::testutil::cannot_run("no cgroup2 mount"));
        return;
    };
    // A program the verifier refuses says why.
    let bad = [assemble(&[])[6]]; // `r0 = 0` with no exit
    let err = Program::load(&bad).unwrap_err().to_string();
    assert!(err.contains("verifier:"), "{err}");
    let cg = TestCgroup(mount.join(format!("picolet-test-bpf-{}", std::process::id())));
    std::fs::create_dir(&cg.0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prog = Program::load(&assemble(&[DeviceRule::char(1, 3), DeviceRule::char(1, 5)]))
        .expect("load the device program");
    let cgfd = std::fs::File::open(&cg.0).unwrap();
    replace_device_programs(cgfd.as_fd(), Some(&prog)).unwrap();
    // Replacing again leaves exactly one program, not two.
    replace_device_programs(cgfd.as_fd(), Some(&prog)).unwrap();
    assert_eq!(attached_device_programs(cgfd.as_fd()).unwrap().len(), 1);

    let probe = |tag: &str| {
        let script = format!(
            "echo $$ > {cg}/cgroup.procs || exit 99
             ok() {{ if \"$@\" 2>/dev/null; then echo ok; else echo denied; fi; }}
             echo mknod-null=$(ok mknod {d}/null-{tag} c 1 3)
             echo mknod-block=$(ok mknod {d}/loop-{tag} b 7 0)
             echo open-null=$(ok sh -c ': < /dev/null')
             echo open-kmsg=$(ok sh -c ': < /dev/kmsg')",
            cg = cg.0.display(),
            d = dir.path().display(),
        );
        let out = Command::new("/bin/sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        probe("a"),
        "mknod-null=ok\nmknod-block=denied\nopen-null=ok\nopen-kmsg=denied\n"
    );
    replace_device_programs(cgfd.as_fd(), None).unwrap();
    assert!(attached_device_programs(cgfd.as_fd()).unwrap().is_empty());
    assert_eq!(
        probe("b"),
        "mknod-null=ok\nmknod-block=ok\nopen-null=ok\nopen-kmsg=ok\n"
    );
}
