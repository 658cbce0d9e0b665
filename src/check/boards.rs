//! The board files of `boards/*.toml`, embedded in the binary (deflated,
//! [`crate::assets`]), parsed by a small reader for the TOML subset they use
//! (sections, `key = "string" | integer | [array]`, `#` comments, arrays over
//! several lines), and the detection of the board picolet runs on.
//!
//! Detection reads `/proc/device-tree/model` (or
//! `/sys/firmware/devicetree/base/model`), `…/compatible` and
//! `/sys/class/dmi/id/sys_vendor`, all relative to a root directory so that
//! tests can use a fixture tree. Nothing is written.

use crate::vecmap::VecMap;
use std::path::Path;

/// Every board file: the ids (file names without `.toml`) and texts, in
/// detection order, deflated in the binary ([`crate::assets::BOARDS`]).
pub fn embedded() -> crate::assets::Files {
    crate::assets::BOARDS.open()
}

/// The ids of every embedded board, comma-separated.
pub fn known_ids() -> String {
    crate::assets::BOARDS.names().collect::<Vec<_>>().join(", ")
}

/// Errors reading a board file or choosing a board.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("board file {id}.toml line {line}: {message}")]
    Syntax {
        id: String,
        line: usize,
        message: String,
    },
    #[error("board file {id}.toml: missing key {key}")]
    MissingKey { id: String, key: &'static str },
    #[error("unknown board {id:?}; known boards: {known}")]
    Unknown { id: String, known: String },
}

/// A TOML value of the subset the board files use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
    Array(Vec<Value>),
}

/// Parses the TOML subset into `section.key → value` (top-level keys have no
/// section prefix).
pub fn parse_toml(id: &str, text: &str) -> Result<VecMap<String, Value>, BoardError> {
    let err = |line: usize, message: &str| BoardError::Syntax {
        id: id.to_string(),
        line,
        message: message.to_string(),
    };
    let mut out = VecMap::new();
    let mut section = String::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let lineno = i + 1;
        let line = strip_comment(lines[i]).trim().to_string();
        i += 1;
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .ok_or_else(|| err(lineno, "bad section"))?;
            section = name.trim().to_string();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| err(lineno, "expected key = value"))?;
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(err(lineno, "bad key"));
        }
        let mut value = value.trim().to_string();
        // An array may continue over the next lines until its closing bracket.
        if value.starts_with('[') {
            while !brackets_closed(&value) {
                let next = lines.get(i).ok_or_else(|| err(lineno, "unclosed array"))?;
                value.push(' ');
                value.push_str(strip_comment(next).trim());
                i += 1;
            }
        }
        let (v, rest) = parse_value(&value).ok_or_else(|| err(lineno, "bad value"))?;
        if !rest.trim().is_empty() {
            return Err(err(lineno, "trailing characters after value"));
        }
        let full = if section.is_empty() {
            key.to_string()
        } else {
            format!("{section}.{key}")
        };
        out.insert(full, v);
    }
    Ok(out)
}

/// `line` without a `#` comment that is outside a string.
fn strip_comment(line: &str) -> &str {
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            '\\' if in_str && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => in_str = !in_str,
            '#' if !in_str => return &line[..i],
            _ => {}
        }
        escaped = false;
    }
    line
}

fn brackets_closed(s: &str) -> bool {
    let mut depth = 0i32;
    let mut in_str = false;
    let mut escaped = false;
    for c in s.chars() {
        match c {
            '\\' if in_str && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => in_str = !in_str,
            '[' if !in_str => depth += 1,
            ']' if !in_str => depth -= 1,
            _ => {}
        }
        escaped = false;
    }
    depth <= 0
}

/// Parses one value at the start of `s`; returns it and the rest.
fn parse_value(s: &str) -> Option<(Value, &str)> {
    let s = s.trim_start();
    if let Some(rest) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Some((Value::Str(out), &rest[i + 1..])),
                '\\' => match chars.next()?.1 {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    c @ ('"' | '\\') => out.push(c),
                    _ => return None,
                },
                c => out.push(c),
            }
        }
        return None;
    }
    if let Some(mut rest) = s.strip_prefix('[') {
        let mut items = Vec::new();
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix(']') {
                return Some((Value::Array(items), r));
            }
            let (v, r) = parse_value(rest)?;
            items.push(v);
            rest = r.trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if !rest.starts_with(']') {
                return None;
            }
        }
    }
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '-' || c == '_'))
        .unwrap_or(s.len());
    let n: i64 = s[..end].replace('_', "").parse().ok()?;
    Some((Value::Int(n), &s[end..]))
}

/// What picolet needs from a board file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    /// The file name without `.toml` (`raspberry-pi-4`).
    pub id: String,
    pub name: String,
    pub cpu: String,
    pub rust_target: String,
    /// Other targets whose binaries run on it (`alt_rust_targets`).
    pub alt_rust_targets: Vec<String>,
    /// `built` or `not-yet-built`.
    pub status: String,
    /// Device-tree model prefixes that identify the board (`models = [...]`).
    pub models: Vec<String>,
    /// Where the kernel command line is (`/boot/firmware/cmdline.txt`,
    /// `/etc/default/grub`, or `qemu -append`).
    pub cmdline_file: String,
    pub cmdline_file_before_bookworm: String,
    /// What to add to the kernel command line for cgroup v2 with memory.
    pub cgroup_switches: String,
    /// `pids.max` per pod suggested for the board.
    pub pod_pids_max: Option<i64>,
    /// The platform image pulls choose from an index (`image_platform =
    /// "linux/arm/v6"`), when the CPU's own report is not to be trusted.
    pub image_platform: Option<String>,
}

impl Board {
    /// Reads a board from its file's text.
    pub fn parse(id: &str, text: &str) -> Result<Board, BoardError> {
        let map = parse_toml(id, text)?;
        let s = |key: &'static str| -> Result<String, BoardError> {
            match map.get(key) {
                Some(Value::Str(v)) => Ok(v.clone()),
                _ => Err(BoardError::MissingKey {
                    id: id.to_string(),
                    key,
                }),
            }
        };
        let strings = |key: &str| -> Vec<String> {
            match map.get(key) {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|v| match v {
                        Value::Str(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            }
        };
        let models = strings("models");
        Ok(Board {
            id: id.to_string(),
            name: s("name")?,
            cpu: s("cpu")?,
            rust_target: s("rust_target")?,
            alt_rust_targets: strings("alt_rust_targets"),
            status: s("status")?,
            models,
            cmdline_file: s("kernel.cmdline_file")?,
            cmdline_file_before_bookworm: s("kernel.cmdline_file_before_bookworm")?,
            cgroup_switches: s("kernel.cgroup_switches")?,
            pod_pids_max: match map.get("reserve.pod_pids_max") {
                Some(Value::Int(n)) => Some(*n),
                _ => None,
            },
            image_platform: match map.get("image_platform") {
                Some(Value::Str(v)) => Some(v.clone()),
                _ => None,
            },
        })
    }

    /// Whether picolet is built for the board (`status = "built"`).
    pub fn built(&self) -> bool {
        self.status == "built"
    }

    /// The architectures of the binaries that run on the board: those of
    /// `rust_target` and `alt_rust_targets`, in that order.
    pub fn arches(&self) -> Vec<Arch> {
        let mut out = Vec::new();
        for t in std::iter::once(&self.rust_target).chain(&self.alt_rust_targets) {
            if let Some(a) = Arch::of_target(t) {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }

    /// Whether a binary of `arch` runs on the board.
    pub fn runs(&self, arch: Arch) -> bool {
        self.arches().contains(&arch)
    }

    /// Whether the board can be a machine whose kernel reports `machine`
    /// (`uname -m`): one of its architectures, or a 32-bit ARM kernel on a
    /// board with a 64-bit ARM CPU (the arm64 Raspberry Pis run either OS).
    pub fn matches_machine(&self, machine: Arch) -> bool {
        let arches = self.arches();
        arches.contains(&machine) || (machine == Arch::Arm && arches.contains(&Arch::Aarch64))
    }

    /// `aarch64 or arm (32-bit)`.
    pub fn arches_text(&self) -> String {
        let names: Vec<&str> = self.arches().iter().map(|a| a.name()).collect();
        if names.is_empty() {
            format!("an unknown architecture ({})", self.rust_target)
        } else {
            names.join(" or ")
        }
    }

    /// Whether the kernel command line lives in a Raspberry Pi `cmdline.txt`.
    pub fn uses_cmdline_txt(&self) -> bool {
        self.cmdline_file.ends_with("cmdline.txt")
    }
}

/// A CPU architecture family, as an ELF header, a Rust target or `uname -m`
/// names it. 32-bit ARM is one family: ARMv6 and ARMv7 binaries carry the
/// same ELF machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Aarch64,
    Arm,
    X86_64,
    X86,
    Riscv64,
}

impl Arch {
    /// The architecture of a Rust target triple (`armv7-unknown-linux-musleabihf`).
    pub fn of_target(target: &str) -> Option<Arch> {
        let cpu = target.split('-').next().unwrap_or_default();
        Some(match cpu {
            "aarch64" => Arch::Aarch64,
            "x86_64" => Arch::X86_64,
            "i386" | "i586" | "i686" | "x86" => Arch::X86,
            c if c.starts_with("riscv64") => Arch::Riscv64,
            c if c.starts_with("arm") || c.starts_with("thumb") => Arch::Arm,
            _ => return None,
        })
    }

    /// The architecture of a kernel's machine name (`uname -m`,
    /// `/proc/sys/kernel/arch`): `aarch64`, `armv7l`, `x86_64`, …
    pub fn of_machine(machine: &str) -> Option<Arch> {
        Some(match machine.trim() {
            "aarch64" | "arm64" | "armv8b" => Arch::Aarch64,
            "x86_64" | "amd64" => Arch::X86_64,
            "i386" | "i486" | "i586" | "i686" | "x86" => Arch::X86,
            "riscv64" => Arch::Riscv64,
            m if m.starts_with("arm") => Arch::Arm,
            _ => return None,
        })
    }

    /// `aarch64`, `arm (32-bit)`, `x86_64`, `x86 (32-bit)`, `riscv64`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Aarch64 => "aarch64",
            Arch::Arm => "arm (32-bit)",
            Arch::X86_64 => "x86_64",
            Arch::X86 => "x86 (32-bit)",
            Arch::Riscv64 => "riscv64",
        }
    }
}

/// The ids of the boards picolet is built for, comma-separated.
pub fn supported_ids() -> String {
    all()
        .into_iter()
        .filter(Board::built)
        .map(|b| b.id)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every embedded board, parsed.
pub fn all() -> Vec<Board> {
    embedded()
        .iter()
        .map(|(id, text)| Board::parse(id, text).expect("embedded board files parse (tested)"))
        .collect()
}

/// The embedded board `id`.
pub fn by_id(id: &str) -> Result<Board, BoardError> {
    all()
        .into_iter()
        .find(|b| b.id == id)
        .ok_or_else(|| BoardError::Unknown {
            id: id.to_string(),
            known: known_ids(),
        })
}

/// The board picolet decided it runs on, and how it decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub board: Board,
    /// `/proc/device-tree/model: "Raspberry Pi 4 Model B Rev 1.4"`, or
    /// `--board`, or `no known board; generic for aarch64`.
    pub how: String,
}

/// What identifies the hardware (read by [`read_identity`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// (file, model string).
    pub model: Option<(String, String)>,
    /// The device tree's `compatible` strings.
    pub compatible: Vec<String>,
    /// `/sys/class/dmi/id/sys_vendor` (x86 and UEFI arm64 machines).
    pub dmi_vendor: Option<String>,
}

/// Reads the model, compatible and DMI vendor under `root`.
pub fn read_identity(root: &Path) -> Identity {
    let read = |rel: &str| -> Option<String> {
        let bytes = std::fs::read(root.join(rel)).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    };
    let mut id = Identity::default();
    for dir in ["proc/device-tree", "sys/firmware/devicetree/base"] {
        if id.model.is_none() {
            if let Some(m) = read(&format!("{dir}/model")) {
                let m = m.trim_end_matches('\0').trim().to_string();
                if !m.is_empty() {
                    id.model = Some((format!("/{dir}/model"), m));
                }
            }
        }
        if id.compatible.is_empty() {
            if let Some(c) = read(&format!("{dir}/compatible")) {
                id.compatible = c
                    .split('\0')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
            }
        }
    }
    id.dmi_vendor = read("sys/class/dmi/id/sys_vendor")
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    id
}

/// Chooses the board for `identity` on `arch` (`std::env::consts::ARCH`):
/// the board whose `models` entry is the longest prefix of the model; QEMU's
/// virt machine on aarch64; else the generic board for the architecture.
pub fn detect(identity: &Identity, arch: &str) -> Detected {
    let boards = all();
    if let Some((file, model)) = &identity.model {
        let best = boards
            .iter()
            .flat_map(|b| b.models.iter().map(move |m| (b, m)))
            .filter(|(_, m)| model.starts_with(m.as_str()))
            .max_by_key(|(_, m)| m.len());
        if let Some((b, _)) = best {
            return Detected {
                board: b.clone(),
                how: format!("{file}: {model:?}"),
            };
        }
    }
    let qemu = identity
        .compatible
        .iter()
        .find(|c| c.as_str() == "linux,dummy-virt")
        .map(|c| format!("device-tree compatible {c:?}"))
        .or_else(|| {
            identity
                .model
                .as_ref()
                .filter(|(_, m)| m.contains("QEMU"))
                .map(|(f, m)| format!("{f}: {m:?}"))
        })
        .or_else(|| {
            identity
                .dmi_vendor
                .as_ref()
                .filter(|v| v.contains("QEMU"))
                .map(|v| format!("/sys/class/dmi/id/sys_vendor: {v:?}"))
        });
    if let (Some(how), "aarch64") = (&qemu, arch) {
        if let Some(b) = boards.iter().find(|b| b.id == "qemu-virt") {
            return Detected {
                board: b.clone(),
                how: how.clone(),
            };
        }
    }
    let seen = identity
        .model
        .as_ref()
        .map(|(f, m)| format!("{f}: {m:?} is not a known board"))
        .or(qemu)
        .unwrap_or_else(|| "no device-tree model".to_string());
    Detected {
        board: generic(arch),
        how: format!("{seen}; generic board for {arch}"),
    }
}

/// The generic board for `arch`: `generic-aarch64`, or the same kernel
/// advice under a `generic-<arch>` name for other architectures.
pub fn generic(arch: &str) -> Board {
    let mut b = by_id("generic-aarch64").expect("generic-aarch64 is embedded");
    if arch != "aarch64" {
        b.id = format!("generic-{arch}");
        b.name = format!("Generic {arch} machine");
        b.cpu = "generic".into();
        b.rust_target = format!("{arch}-unknown-linux-musl");
        b.alt_rust_targets = Vec::new();
        b.status = "not-yet-built".into();
    }
    b
}
