//! Exports the target triple and the cargo profile to the crate, for
//! `picolet --version` (`picolet::check::{TARGET, PROFILE}`).

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=PICOLET_TARGET={target}");
    println!("cargo:rustc-env=PICOLET_PROFILE={profile}");
    println!("cargo:rerun-if-changed=build.rs");
}
