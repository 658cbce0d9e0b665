//! The architecture of an executable, from its ELF header: `EI_CLASS`
//! (32- or 64-bit), `EI_DATA` (byte order) and `e_machine`. Only the first
//! 20 bytes are read; nothing is loaded or run.

use crate::check::boards::Arch;
use std::fmt;
use std::io::Read;
use std::path::Path;

/// `EM_386`.
pub const EM_386: u16 = 3;
/// `EM_ARM` (32-bit ARM, ARMv4 to ARMv8's AArch32).
pub const EM_ARM: u16 = 40;
/// `EM_X86_64` (also the x32 ABI when the class is 32-bit).
pub const EM_X86_64: u16 = 62;
/// `EM_AARCH64`.
pub const EM_AARCH64: u16 = 183;
/// `EM_RISCV`.
pub const EM_RISCV: u16 = 243;

/// What the ELF header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// 32 or 64 (`EI_CLASS`).
    pub bits: u8,
    pub little_endian: bool,
    pub machine: u16,
}

impl Header {
    /// The architecture family, when picolet knows it.
    pub fn arch(&self) -> Option<Arch> {
        match (self.bits, self.machine) {
            (64, EM_AARCH64) => Some(Arch::Aarch64),
            (32, EM_ARM) => Some(Arch::Arm),
            (64, EM_X86_64) => Some(Arch::X86_64),
            (32, EM_386) => Some(Arch::X86),
            (64, EM_RISCV) => Some(Arch::Riscv64),
            _ => None,
        }
    }
}

impl fmt::Display for Header {
    /// `ELF 64-bit x86_64 (e_machine 62)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.arch().map_or("unknown machine", Arch::name);
        write!(
            f,
            "ELF {}-bit {name} (e_machine {}",
            self.bits, self.machine
        )?;
        if !self.little_endian {
            write!(f, ", big-endian")?;
        }
        write!(f, ")")
    }
}

/// Why a file's header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file (no \\x7fELF magic)")]
    NotElf,
    #[error("truncated ELF header ({0} bytes)")]
    Truncated(usize),
    #[error("bad ELF {field} {value}")]
    Bad { field: &'static str, value: u8 },
    #[error("reading it: {0}")]
    Io(String),
}

/// Parses the start of an ELF file.
pub fn parse(bytes: &[u8]) -> Result<Header, ElfError> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    if bytes.len() < 20 {
        return Err(ElfError::Truncated(bytes.len()));
    }
    let bits = match bytes[4] {
        1 => 32,
        2 => 64,
        value => {
            return Err(ElfError::Bad {
                field: "EI_CLASS",
                value,
            });
        }
    };
    let little_endian = match bytes[5] {
        1 => true,
        2 => false,
        value => {
            return Err(ElfError::Bad {
                field: "EI_DATA",
                value,
            });
        }
    };
    let m = [bytes[18], bytes[19]];
    let machine = if little_endian {
        u16::from_le_bytes(m)
    } else {
        u16::from_be_bytes(m)
    };
    Ok(Header {
        bits,
        little_endian,
        machine,
    })
}

/// Reads the header of the file at `path`.
pub fn read(path: &Path) -> Result<Header, ElfError> {
    let mut f = std::fs::File::open(path).map_err(|e| ElfError::Io(e.to_string()))?;
    let mut buf = [0u8; 20];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ElfError::Io(e.to_string())),
        }
    }
    parse(&buf[..n])
}

/// A hand-made ELF header (64 bytes; the rest of the file is absent).
#[cfg(test)]
pub(crate) fn header(bits: u8, little_endian: bool, machine: u16) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = if bits == 64 { 2 } else { 1 };
    h[5] = if little_endian { 1 } else { 2 };
    h[6] = 1; // EV_CURRENT
    h[16] = 2; // ET_EXEC
    let m = if little_endian {
        machine.to_le_bytes()
    } else {
        machine.to_be_bytes()
    };
    h[18..20].copy_from_slice(&m);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_is_read_as_the_architecture_it_was_built_for() {
        let h = read(Path::new("/proc/self/exe")).unwrap();
        let want = Arch::of_target(crate::check::TARGET).unwrap();
        assert_eq!(h.arch(), Some(want), "{h}");
        assert_eq!(
            h.bits,
            if cfg!(target_pointer_width = "64") {
                64
            } else {
                32
            }
        );
        assert!(h.little_endian);
    }

    #[test]
    fn the_arm_builds_are_read_as_aarch64_and_arm_when_present() {
        // Built by scripts/build-arm.sh into the main checkout (read only);
        // hand-made headers below cover the same machines when absent.
        let base = Path::new("/work/main/target/arm");
        for (target, arch) in [
            ("aarch64-unknown-linux-musl", Arch::Aarch64),
            ("armv7-unknown-linux-musleabihf", Arch::Arm),
        ] {
            for p in [
                base.join(target).join("release/picolet"),
                base.join(format!("picolet-{target}")),
            ] {
                if let Ok(h) = read(&p) {
                    assert_eq!(h.arch(), Some(arch), "{}: {h}", p.display());
                }
            }
        }
    }

    #[test]
    fn hand_made_headers_give_class_byte_order_and_machine() {
        let cases = [
            (64, true, EM_AARCH64, Some(Arch::Aarch64)),
            (32, true, EM_ARM, Some(Arch::Arm)),
            (64, true, EM_X86_64, Some(Arch::X86_64)),
            (32, true, EM_386, Some(Arch::X86)),
            (64, true, EM_RISCV, Some(Arch::Riscv64)),
            (64, false, EM_AARCH64, Some(Arch::Aarch64)),
            // x32: x86_64's machine in a 32-bit class is no architecture we run.
            (32, true, EM_X86_64, None),
            // A 64-bit class with ARM's 32-bit machine is not an arm binary.
            (64, true, EM_ARM, None),
        ];
        for (bits, le, machine, arch) in cases {
            let h = parse(&header(bits, le, machine)).unwrap();
            assert_eq!((h.bits, h.little_endian, h.machine), (bits, le, machine));
            assert_eq!(h.arch(), arch, "{h}");
        }
        assert_eq!(
            parse(&header(64, true, EM_X86_64)).unwrap().to_string(),
            "ELF 64-bit x86_64 (e_machine 62)"
        );
    }

    #[test]
    fn what_is_not_an_elf_header_is_refused_with_the_reason() {
        assert_eq!(parse(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        assert_eq!(parse(b""), Err(ElfError::NotElf));
        assert_eq!(
            parse(&header(64, true, 183)[..12]),
            Err(ElfError::Truncated(12))
        );
        let mut h = header(64, true, 183);
        h[4] = 3;
        assert_eq!(
            parse(&h),
            Err(ElfError::Bad {
                field: "EI_CLASS",
                value: 3
            })
        );
        h[4] = 2;
        h[5] = 0;
        assert_eq!(
            parse(&h),
            Err(ElfError::Bad {
                field: "EI_DATA",
                value: 0
            })
        );
    }
}
