//! This node's labels, computed once at start: the kubelet's
//! (`kubernetes.io/hostname`, `/os`, `/arch`), `picolet.io/board` (the
//! board `picolet check` detects: the id of its `boards/*.toml` file, or
//! `generic-<arch>`), then the configured `nodeLabels` / `--node-label`,
//! which win. Reads the device tree's model (`/proc/device-tree/model`)
//! and the DMI vendor: a few small files, once.

use super::Config;
use crate::vecmap::VecMap;

/// The node's labels for `cfg` (see the module doc).
pub fn node_labels(cfg: &Config) -> VecMap<String, String> {
    let arch = std::env::consts::ARCH;
    let identity = crate::check::boards::read_identity(std::path::Path::new("/"));
    let board = crate::check::boards::detect(&identity, arch).board.id;
    crate::spec::affinity::node_labels(&cfg.node_name, arch, Some(&board), &cfg.node_labels)
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_nodes_labels_name_it_its_arch_and_its_board_and_config_wins() {
        let mut cfg = crate::agent::flags::config(vec!["--config".into(), "/dev/null".into()])
            .expect("config");
        cfg.node_name = "edge-1".into();
        cfg.node_labels
            .insert("picolet.io/board".into(), "custom".into());
        let l = super::node_labels(&cfg);
        assert_eq!(l["kubernetes.io/hostname"], "edge-1");
        assert_eq!(l["kubernetes.io/os"], "linux");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(l["kubernetes.io/arch"], "amd64");
        #[cfg(target_arch = "aarch64")]
        assert_eq!(l["kubernetes.io/arch"], "arm64");
        assert_eq!(l["picolet.io/board"], "custom");
        cfg.node_labels.clear();
        let board = &super::node_labels(&cfg)["picolet.io/board"];
        assert!(
            crate::check::boards::all().iter().any(|b| &b.id == board)
                || board.starts_with("generic-"),
            "{board}"
        );
    }
}
