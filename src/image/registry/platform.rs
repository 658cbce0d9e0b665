//! Which manifest of an index (manifest list) a device pulls. Pure.
//!
//! The device's platform is the binary's OS and architecture, with the
//! ARM variant read from `/proc/cpuinfo` ("CPU architecture: 7" → v7),
//! including containerd's Raspberry Pi quirk: an ARMv6 board (Pi Zero,
//! Pi 1) whose kernel reports "CPU architecture: 7" but whose model name
//! is "ARMv6-compatible processor" is v6. A board file (`boards/*.toml`,
//! `image_platform = "linux/arm/v6"`) or `--platform` pins it instead.
//!
//! The order of preference is containerd's (`platforms.Only`): arm64 →
//! arm/v8 → arm/v7 → arm/v6 → arm/v5; arm/v7 → v6 → v5; amd64 → 386.
//! An arm64 entry without variant is v8; an arm one without variant is v7.

use crate::image::oci::{Descriptor, Platform};

/// `os/arch[/variant]` (e.g. `linux/arm/v7`).
pub fn parse_platform(s: &str) -> Result<Platform, String> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !(2..=3).contains(&parts.len()) || !parts.iter().all(ok) {
        return Err(format!(
            "invalid platform {s:?} (want os/arch[/variant], e.g. linux/arm/v7)"
        ));
    }
    Ok(normalize(Platform {
        os: parts[0].to_string(),
        architecture: parts[1].to_string(),
        variant: parts.get(2).unwrap_or(&"").to_string(),
    }))
}

/// Fills in the default variants (arm64 → v8, arm → v7), as containerd.
pub fn normalize(mut p: Platform) -> Platform {
    match (p.architecture.as_str(), p.variant.as_str()) {
        ("arm64", "") => p.variant = "v8".into(),
        ("arm", "") => p.variant = "v7".into(),
        ("aarch64", _) => {
            p.architecture = "arm64".into();
            if p.variant.is_empty() {
                p.variant = "v8".into();
            }
        }
        ("x86_64" | "x86-64", _) => p.architecture = "amd64".into(),
        _ => {}
    }
    p
}

/// The device's platform: `arch` is the OCI architecture this binary
/// runs as (`amd64`, `arm64`, `arm`); `cpuinfo` the text of
/// `/proc/cpuinfo` (for the ARM variant).
pub fn host_from_cpuinfo(arch: &str, cpuinfo: &str) -> Platform {
    let field = |name: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let variant = match arch {
        "arm64" => "v8".to_string(),
        "arm" => {
            let cpu_arch = field("CPU architecture").unwrap_or_default();
            let digit = cpu_arch.chars().next().filter(char::is_ascii_digit);
            let mut v = match (cpu_arch.to_ascii_lowercase().as_str(), digit) {
                ("aarch64", _) => "8".to_string(),
                (_, Some(d)) => d.to_string(),
                _ => "7".to_string(),
            };
            let model = field("model name").unwrap_or_default().to_ascii_lowercase();
            if v == "7" && model.starts_with("armv6") {
                v = "6".to_string();
            }
            format!("v{v}")
        }
        _ => String::new(),
    };
    Platform {
        os: "linux".into(),
        architecture: arch.to_string(),
        variant,
    }
}

/// The platforms `host` runs, best first (containerd's order).
pub fn preference(host: &Platform) -> Vec<Platform> {
    let host = normalize(host.clone());
    let p = |arch: &str, variant: &str| Platform {
        os: host.os.clone(),
        architecture: arch.to_string(),
        variant: variant.to_string(),
    };
    let level = |v: &str| v.strip_prefix('v').and_then(|n| n.parse::<u32>().ok());
    let arm_down = |from: u32| {
        (5..=from)
            .rev()
            .map(|n| p("arm", &format!("v{n}")))
            .collect::<Vec<_>>()
    };
    match host.architecture.as_str() {
        "arm64" => {
            let mut v = vec![host.clone()];
            v.extend(arm_down(8));
            v
        }
        "arm" => match level(&host.variant) {
            Some(n) if n >= 5 => arm_down(n),
            _ => vec![host.clone()],
        },
        "amd64" => vec![host.clone(), p("386", "")],
        _ => vec![host.clone()],
    }
}

/// Chooses among index entries by [`preference`]; entries for the
/// `unknown` platform (attestations) never match. `Err` names the wanted
/// platform and lists the available ones.
pub fn choose<'a>(entries: &'a [Descriptor], host: &Platform) -> Result<&'a Descriptor, String> {
    for want in preference(host) {
        let found = entries.iter().find(|d| {
            d.platform.as_ref().is_some_and(|p| {
                let p = normalize(p.clone());
                p.os == want.os && p.architecture == want.architecture && p.variant == want.variant
            })
        });
        if let Some(d) = found {
            return Ok(d);
        }
    }
    let available: Vec<String> = entries
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .filter(|p| p.architecture != "unknown")
        .map(ToString::to_string)
        .collect();
    Err(format!(
        "no manifest for platform {} (available: {})",
        normalize(host.clone()),
        if available.is_empty() {
            "none".to_string()
        } else {
            available.join(", ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vecmap::VecMap;

    fn entry(os: &str, arch: &str, variant: &str) -> Descriptor {
        Descriptor {
            media_type: crate::image::oci::MEDIA_OCI_MANIFEST.into(),
            digest: format!("sha256:{arch}{variant}"),
            size: 1,
            annotations: VecMap::new(),
            platform: Some(Platform {
                architecture: arch.into(),
                os: os.into(),
                variant: variant.into(),
            }),
        }
    }

    /// Real /proc/cpuinfo excerpts.
    const PI4_64: &str = "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n";
    const PI3_32: &str = "processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\nBogoMIPS\t: 38.40\nFeatures\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32\nCPU implementer\t: 0x41\nCPU architecture: 7\n";
    const PI_ZERO: &str = "processor\t: 0\nmodel name\t: ARMv6-compatible processor rev 7 (v6l)\nBogoMIPS\t: 697.95\nFeatures\t: half thumb fastmult vfp edsp java tls\nCPU implementer\t: 0x41\nCPU architecture: 7\nCPU variant\t: 0x0\nCPU part\t: 0xb76\n";
    const PI4_32_ON_V8: &str =
        "processor\t: 0\nmodel name\t: ARMv7 Processor rev 3 (v7l)\nCPU architecture: 8\n";

    #[test]
    fn cpuinfo_gives_the_arm_variant_with_the_raspberry_pi_armv6_quirk() {
        assert_eq!(
            host_from_cpuinfo("arm64", PI4_64).to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(host_from_cpuinfo("arm", PI3_32).to_string(), "linux/arm/v7");
        assert_eq!(
            host_from_cpuinfo("arm", PI_ZERO).to_string(),
            "linux/arm/v6"
        );
        assert_eq!(
            host_from_cpuinfo("arm", PI4_32_ON_V8).to_string(),
            "linux/arm/v8"
        );
        assert_eq!(host_from_cpuinfo("amd64", "").to_string(), "linux/amd64");
    }

    #[test]
    fn preference_follows_containerds_fallback_order() {
        let names = |p: &str| -> Vec<String> {
            preference(&parse_platform(p).unwrap())
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            names("linux/arm64"),
            [
                "linux/arm64/v8",
                "linux/arm/v8",
                "linux/arm/v7",
                "linux/arm/v6",
                "linux/arm/v5"
            ]
        );
        assert_eq!(
            names("linux/arm/v7"),
            ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
        );
        assert_eq!(names("linux/arm/v6"), ["linux/arm/v6", "linux/arm/v5"]);
        assert_eq!(names("linux/amd64"), ["linux/amd64", "linux/386"]);
    }

    #[test]
    fn choosing_from_a_multi_arch_index_for_aarch64_armv7_and_the_armv6_quirk() {
        let index = [
            entry("linux", "amd64", ""),
            entry("linux", "arm64", ""),
            entry("linux", "arm", "v7"),
            entry("unknown", "unknown", ""),
        ];
        let pick = |host: Platform| choose(&index, &host).map(|d| d.digest.clone());
        assert_eq!(
            pick(host_from_cpuinfo("arm64", PI4_64)).unwrap(),
            "sha256:arm64"
        );
        assert_eq!(
            pick(host_from_cpuinfo("arm", PI3_32)).unwrap(),
            "sha256:armv7"
        );
        assert_eq!(
            pick(host_from_cpuinfo("amd64", "")).unwrap(),
            "sha256:amd64"
        );
        // A Pi Zero cannot run v7 code: no match, and the error says why.
        let err = pick(host_from_cpuinfo("arm", PI_ZERO)).unwrap_err();
        assert_eq!(
            err,
            "no manifest for platform linux/arm/v6 (available: linux/amd64, linux/arm64, linux/arm/v7)"
        );
        // An arm64 device without an arm64 entry runs the arm/v7 one.
        let no_arm64 = [
            entry("linux", "amd64", ""),
            entry("linux", "arm", "v7"),
            entry("linux", "arm", "v6"),
        ];
        assert_eq!(
            choose(&no_arm64, &parse_platform("linux/arm64").unwrap())
                .unwrap()
                .digest,
            "sha256:armv7"
        );
        assert_eq!(
            choose(&no_arm64, &host_from_cpuinfo("arm", PI_ZERO))
                .unwrap()
                .digest,
            "sha256:armv6"
        );
        // Another OS never matches.
        let windows = [entry("windows", "amd64", "")];
        assert!(choose(&windows, &host_from_cpuinfo("amd64", "")).is_err());
    }

    #[test]
    fn platforms_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_platform("linux/arm").unwrap().variant, "v7");
        assert_eq!(
            parse_platform("linux/aarch64").unwrap().to_string(),
            "linux/arm64/v8"
        );
        for bad in ["linux", "linux/", "a/b/c/d", "linux/arm/v 7"] {
            let e = parse_platform(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
