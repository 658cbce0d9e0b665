use crate::spec::caps::*;
use crate::spec::{Capabilities, SecurityContext};

#[test]
fn capability_numbers_match_linux() {
    assert_eq!(CAPABILITIES.len(), 41);
    assert_eq!(capability_number("CHOWN"), Some(0));
    assert_eq!(capability_number("CAP_NET_ADMIN"), Some(12));
    assert_eq!(capability_number("NET_ADMIN"), Some(12));
    assert_eq!(capability_number("net_admin"), Some(12));
    assert_eq!(capability_number("SYS_ADMIN"), Some(21));
    assert_eq!(capability_number("AUDIT_READ"), Some(37));
    assert_eq!(capability_number("BPF"), Some(39));
    assert_eq!(capability_number("CAP_CHECKPOINT_RESTORE"), Some(40));
    assert_eq!(capability_number("ALL"), None);
    assert_eq!(capability_number("CAP_"), None);
    assert_eq!(capability_number("CAP_CAP_CHOWN"), None);
    assert_eq!(capability_name(13), Some("CAP_NET_RAW"));
    assert_eq!(capability_name(41), None);
    for (i, name) in CAPABILITIES.iter().enumerate() {
        assert_eq!(capability_number(name), Some(i as u8));
    }
    assert_eq!(ALL_CAPABILITIES.count_ones(), 41);
}

fn mask(names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| 1u64 << capability_number(n).unwrap())
        .fold(0, |a, b| a | b)
}

fn sc(add: &[&str], drop: &[&str], privileged: bool) -> SecurityContext {
    SecurityContext {
        privileged: Some(privileged),
        capabilities: Some(Capabilities {
            add: add.iter().map(|s| s.to_string()).collect(),
            drop: drop.iter().map(|s| s.to_string()).collect(),
        }),
        ..Default::default()
    }
}

#[test]
fn effective_capabilities_follow_containerd() {
    let default = default_capabilities();
    assert_eq!(default.count_ones(), 14);
    assert_eq!(effective_capabilities(None), default);
    assert_eq!(
        effective_capabilities(Some(&sc(&["NET_ADMIN"], &["KILL"], false))),
        (default | mask(&["NET_ADMIN"])) & !mask(&["KILL"])
    );
    assert_eq!(
        effective_capabilities(Some(&sc(&["NET_BIND_SERVICE"], &["ALL"], false))),
        mask(&["NET_BIND_SERVICE"])
    );
    assert_eq!(
        effective_capabilities(Some(&sc(&["ALL"], &["CHOWN"], false))),
        ALL_CAPABILITIES & !mask(&["CHOWN"])
    );
    assert_eq!(
        effective_capabilities(Some(&sc(&[], &["ALL"], true))),
        ALL_CAPABILITIES
    );
}
