//! Exports the target triple and the cargo profile to the crate, for
//! `picolet --version` (`picolet::check::{TARGET, PROFILE}`), and deflates
//! the text files the binary carries into bundles (`src/assets.rs`): one
//! raw deflate stream per bundle, files concatenated, with an index of
//! (name, offset, length) into the inflated text.

use std::fmt::Write as _;
use std::path::Path;

/// The bundles: (constant, [(name, file)]). Order is kept (the board
/// files' order is detection's order).
const BUNDLES: &[(&str, &[(&str, &str)])] = &[
    (
        "BOARDS",
        &[
            ("raspberry-pi-zero-2-w", "boards/raspberry-pi-zero-2-w.toml"),
            ("raspberry-pi-3", "boards/raspberry-pi-3.toml"),
            ("raspberry-pi-4", "boards/raspberry-pi-4.toml"),
            ("raspberry-pi-5", "boards/raspberry-pi-5.toml"),
            ("raspberry-pi-zero", "boards/raspberry-pi-zero.toml"),
            ("generic-aarch64", "boards/generic-aarch64.toml"),
            ("qemu-virt", "boards/qemu-virt.toml"),
        ],
    ),
    (
        "INSTALL",
        &[
            ("picolet.service", "systemd/picolet.service"),
            ("picolet-pods.service", "systemd/picolet-pods.service"),
            ("config.yaml", "src/install/config.yaml"),
        ],
    ),
];

const HELP_DIR: &str = "src/cli/help";

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=PICOLET_TARGET={target}");
    println!("cargo:rustc-env=PICOLET_PROFILE={profile}");
    println!("cargo:rerun-if-changed=build.rs");

    // The commands' help texts: every file of src/cli/help/, named
    // without `.txt`, in name order.
    println!("cargo:rerun-if-changed={HELP_DIR}");
    let mut help: Vec<(String, String)> = std::fs::read_dir(HELP_DIR)
        .unwrap_or_else(|e| panic!("{HELP_DIR}: {e}"))
        .map(|e| {
            let path = e.expect(HELP_DIR).path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            (name, path.display().to_string())
        })
        .collect();
    help.sort();
    let help: Vec<(&str, &str)> = help.iter().map(|(n, p)| (n.as_str(), p.as_str())).collect();

    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let mut rust = String::new();
    for (konst, files) in BUNDLES.iter().copied().chain([("HELP", &help[..])]) {
        let mut text = Vec::new();
        let mut index = String::new();
        for (name, path) in files {
            println!("cargo:rerun-if-changed={path}");
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            std::str::from_utf8(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
            write!(index, "({name:?}, {}, {}), ", text.len(), bytes.len()).unwrap();
            text.extend_from_slice(&bytes);
        }
        let deflated = miniz_oxide::deflate::compress_to_vec(&text, 10);
        let file = Path::new(&out).join(format!("{konst}.deflate"));
        std::fs::write(&file, &deflated).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        writeln!(
            rust,
            "pub static {konst}: Bundle = Bundle {{ deflated: include_bytes!({:?}), len: {}, files: &[{index}] }};",
            file.display().to_string(),
            text.len()
        )
        .unwrap();
    }
    let file = Path::new(&out).join("assets.rs");
    std::fs::write(&file, rust).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
}
