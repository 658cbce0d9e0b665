//! `picolet agent`'s command line: flags, merged over the config file.
//!
//! `--config FILE` (default [`DEFAULT_CONFIG_PATH`]; a missing default file
//! is fine, a missing explicit one is an error). Every other flag is a
//! setting of [`AgentFileConfig`] and wins over the file
//! ([`AgentFileConfig::over`]); `--group` and `--allow-capability` repeat,
//! and a repeated list replaces the file's. The state dir falls back to
//! `$PICOLET_STATE_DIR` when neither flag nor file sets it
//! ([`crate::cli::resolve_state_dir`], as for the local commands). Parsed
//! like every command line, by [`crate::cli::args`]. Reads the
//! config file and `/proc/sys/kernel/hostname`.

use super::Config;
use crate::cli::args::{Args, Spec};
use crate::fleet::config::{
    AgentFileConfig, Bytes, DEFAULT_CONFIG_PATH, PolicyConfig, TlsFiles, hostname,
};
use std::ffi::OsString;
use std::path::PathBuf;

/// `picolet agent`'s options that take a value.
const VALUED: &[&str] = &[
    "config",
    "state-dir",
    "run-dir",
    "manifests",
    "cgroup-root",
    "node-name",
    "node-label",
    "pids-max",
    "max-pods",
    "log-max-size",
    "log-max-files",
    "eviction-interval",
    "eviction-nodefs-available",
    "eviction-imagefs-available",
    "image-gc-high-threshold",
    "image-gc-low-threshold",
    "image-minimum-gc-age",
    "pod-network",
    "pod-cidr",
    "node-ip",
    "broker",
    "device-id",
    "group",
    "topic-prefix",
    "ca",
    "cert",
    "key",
    "credentials",
    "fleet-key",
    "keepalive",
    "max-document-bytes",
    "allow-capability",
    "metrics-interval",
    "metrics-addr",
];

/// `picolet agent`'s options without a value.
const FLAGS: &[&str] = &[
    "allow-privileged",
    "allow-host-path",
    "allow-host-network",
    "allow-host-pid",
    "no-new-privileges",
    "seccomp-default",
    "auto-rollback",
    "assume-clock-synchronized",
];

/// Parses `picolet agent`'s arguments (like every command line, with
/// [`crate::cli::args`]): (`--config`, the flags as a config).
pub fn parse(args: Vec<OsString>) -> Result<(Option<PathBuf>, AgentFileConfig), String> {
    let a = Args::parse(
        args,
        &Spec {
            valued: VALUED,
            flags: FLAGS,
        },
    )?;
    a.no_free()?;
    let num = |flag: &str| -> Result<Option<u64>, String> {
        a.one(&[flag])
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("--{flag}: not a number: {v:?}"))
            })
            .transpose()
    };
    let bytes = |flag: &str| -> Result<Option<Bytes>, String> {
        a.one(&[flag])
            .map(|v| Bytes::parse(v).map_err(|m| format!("--{flag}: {m}")))
            .transpose()
    };
    let path = |flag: &str| a.one(&[flag]).map(PathBuf::from);
    let text = |flag: &str| a.one(&[flag]).map(str::to_string);
    let list = |flag: &str| {
        let all: Vec<String> = a.all(&[flag]).into_iter().map(str::to_string).collect();
        (!all.is_empty()).then_some(all)
    };
    let log_max_files = match num("log-max-files")? {
        Some(n) => Some(u32::try_from(n).map_err(|_| "--log-max-files: too large".to_string())?),
        None => None,
    };
    let mut f = AgentFileConfig {
        state_dir: path("state-dir"),
        run_dir: path("run-dir"),
        manifests: path("manifests"),
        cgroup_root: path("cgroup-root"),
        node_name: text("node-name"),
        pids_max: num("pids-max")?,
        max_pods: num("max-pods")?,
        log_max_size: bytes("log-max-size")?,
        log_max_files,
        eviction_interval_seconds: num("eviction-interval")?,
        eviction_nodefs_available_percent: num("eviction-nodefs-available")?,
        eviction_imagefs_available_percent: num("eviction-imagefs-available")?,
        image_gc_high_threshold_percent: num("image-gc-high-threshold")?,
        image_gc_low_threshold_percent: num("image-gc-low-threshold")?,
        image_minimum_gc_age_seconds: num("image-minimum-gc-age")?,
        broker: text("broker"),
        device_id: text("device-id"),
        groups: list("group"),
        topic_prefix: text("topic-prefix"),
        credentials: path("credentials"),
        fleet_key: path("fleet-key"),
        keepalive_seconds: num("keepalive")?,
        max_document_bytes: bytes("max-document-bytes")?,
        pod_network: text("pod-network"),
        pod_cidr: text("pod-cidr"),
        node_ip: text("node-ip"),
        seccomp_default: a.has(&["seccomp-default"]).then_some(true),
        node_labels: match list("node-label") {
            None => None,
            Some(all) => Some(
                all.iter()
                    .map(|kv| {
                        kv.split_once('=')
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .ok_or_else(|| format!("--node-label: {kv:?} is not KEY=VALUE"))
                    })
                    .collect::<Result<_, String>>()?,
            ),
        },
        auto_rollback: a.has(&["auto-rollback"]).then_some(true),
        assume_clock_synchronized: a.has(&["assume-clock-synchronized"]).then_some(true),
        metrics_interval: num("metrics-interval")?,
        metrics_addr: match a.one(&["metrics-addr"]) {
            Some(v) => {
                crate::metrics::parse_addr(v).map_err(|m| format!("--metrics-addr: {m}"))?;
                Some(v.to_string())
            }
            None => None,
        },
        ..AgentFileConfig::default()
    };
    let tls = TlsFiles {
        ca: path("ca"),
        cert: path("cert"),
        key: path("key"),
    };
    let flag = |name: &str| a.has(&[name]).then_some(true);
    let policy = PolicyConfig {
        allow_privileged: flag("allow-privileged"),
        allow_host_path: flag("allow-host-path"),
        allow_host_network: flag("allow-host-network"),
        allow_host_pid: flag("allow-host-pid"),
        allow_capabilities: list("allow-capability"),
        no_new_privileges: flag("no-new-privileges"),
    };
    if tls != TlsFiles::default() {
        f.tls = Some(tls);
    }
    if policy != PolicyConfig::default() {
        f.policy = Some(policy);
    }
    Ok((path("config"), f))
}

/// The agent's configuration from its arguments and config file.
pub fn config(args: Vec<OsString>) -> Result<Config, String> {
    let (path, flags) = parse(args)?;
    let file = match &path {
        Some(p) => AgentFileConfig::load(p),
        None => AgentFileConfig::load_optional(std::path::Path::new(DEFAULT_CONFIG_PATH)),
    }
    .map_err(|e| e.to_string())?;
    let mut merged = flags.over(file);
    // The flag, else the file, else the environment, else the default:
    // what `--state-dir` means for every command that takes it.
    merged.state_dir = Some(crate::cli::resolve_state_dir(merged.state_dir.take(), None));
    let s = merged.resolve(&hostname()).map_err(|e| e.to_string())?;
    Ok(Config {
        state_dir: s.state_dir,
        run_dir: s.run_dir,
        manifests: s.manifests,
        cgroup_root: s.cgroup_root,
        node_name: s.node_name,
        pids_max: Some(s.pids_max),
        max_pods: s.max_pods,
        log_max_bytes: s.log_max_bytes,
        log_max_files: s.log_max_files,
        disk_interval: std::time::Duration::from_secs(s.eviction_interval_seconds),
        eviction: s.eviction,
        image_gc: s.image_gc,
        exe: PathBuf::from("/proc/self/exe"),
        fleet: s.fleet,
        pod_cidr: s.pod_cidr,
        node_ip: s.node_ip,
        seccomp_default: s.seccomp_default,
        node_labels: s.node_labels,
        auto_rollback: s.auto_rollback,
        assume_clock_synchronized: s.assume_clock_synchronized,
        metrics_interval: std::time::Duration::from_secs(s.metrics_interval_seconds),
        metrics_addr: s.metrics_addr,
    })
}

#[cfg(test)]
mod tests {
    use super::{config, parse};
    use crate::fleet::config::Bytes;
    use std::ffi::OsString;
    use std::path::PathBuf;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn fleet_flags_fill_the_config_and_lists_repeat() {
        let (path, f) = parse(args(&[
            "--config",
            "/tmp/c.yaml",
            "--broker",
            "mqtts://10.0.0.1",
            "--device-id",
            "pi-1",
            "--group",
            "a",
            "--group",
            "b",
            "--ca",
            "ca.pem",
            "--allow-host-network",
            "--allow-host-pid",
            "--allow-capability",
            "NET_ADMIN",
            "--max-document-bytes",
            "64Ki",
            "--keepalive",
            "2",
        ]))
        .unwrap();
        assert_eq!(path, Some(PathBuf::from("/tmp/c.yaml")));
        assert_eq!(f.broker.as_deref(), Some("mqtts://10.0.0.1"));
        assert_eq!(f.groups, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(f.tls.unwrap().ca, Some(PathBuf::from("ca.pem")));
        let policy = f.policy.unwrap();
        assert_eq!(policy.allow_host_network, Some(true));
        assert_eq!(policy.allow_host_pid, Some(true));
        assert_eq!(policy.allow_privileged, None);
        assert_eq!(policy.no_new_privileges, None);
        assert_eq!(f.seccomp_default, None);
        assert_eq!(f.auto_rollback, None);
        let (_, on) = parse(args(&[
            "--no-new-privileges",
            "--seccomp-default",
            "--auto-rollback",
        ]))
        .unwrap();
        assert_eq!(on.auto_rollback, Some(true));
        assert_eq!(on.policy.unwrap().no_new_privileges, Some(true));
        assert_eq!(on.seccomp_default, Some(true));
        assert_eq!(
            policy.allow_capabilities,
            Some(vec!["NET_ADMIN".to_string()])
        );
        assert_eq!(f.max_document_bytes, Some(Bytes(65536)));
        assert_eq!(f.keepalive_seconds, Some(2));
    }

    #[test]
    fn flags_win_over_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(
            &file,
            "broker: mqtt://127.0.0.1:1\ndeviceId: from-file\ngroups: [x]\nnodeName: n\nstateDir: st\n",
        )
        .unwrap();
        let c = config(args(&[
            "--config",
            file.to_str().unwrap(),
            "--device-id",
            "from-flag",
        ]))
        .unwrap();
        let fleet = c.fleet.unwrap();
        assert_eq!(fleet.device_id, "from-flag");
        assert_eq!(fleet.groups, ["x"]);
        assert_eq!(fleet.broker.port, 1);
        assert_eq!(c.state_dir, dir.path().join("st"));
    }

    #[test]
    fn node_labels_come_from_the_file_and_the_flags_key_by_key_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, "nodeLabels: {zone: barn, tier: edge}\n").unwrap();
        let f = file.to_str().unwrap();
        let c = config(args(&["--config", f, "--node-label", "zone=loft"])).unwrap();
        let want: Vec<(&str, &str)> = vec![("tier", "edge"), ("zone", "loft")];
        let got: Vec<(&str, &str)> = c
            .node_labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, want);
        let e = parse(args(&["--node-label", "zone"])).unwrap_err();
        assert_eq!(e, "--node-label: \"zone\" is not KEY=VALUE");
        let e = config(args(&["--config", "/dev/null", "--node-label", "a b=c"])).unwrap_err();
        assert!(e.contains("nodeLabels") && e.contains("\"a b\""), "{e}");
        let e = config(args(&["--config", "/dev/null", "--node-label", "a=b c"])).unwrap_err();
        assert!(e.contains("nodeLabels"), "{e}");
    }

    #[test]
    fn max_pods_defaults_to_110_and_comes_from_the_flag_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, "maxPods: 30\n").unwrap();
        let f = file.to_str().unwrap();
        assert_eq!(
            config(args(&["--config", "/dev/null"])).unwrap().max_pods,
            110
        );
        assert_eq!(config(args(&["--config", f])).unwrap().max_pods, 30);
        let c = config(args(&["--config", f, "--max-pods", "20"])).unwrap();
        assert_eq!(c.max_pods, 20);
        let e = config(args(&["--config", "/dev/null", "--max-pods", "0"])).unwrap_err();
        assert!(e.contains("maxPods"), "{e}");
    }

    #[test]
    fn a_missing_explicit_config_file_is_an_error_and_bad_flags_are_named() {
        let e = config(args(&["--config", "/nonexistent/picolet.yaml"])).unwrap_err();
        assert!(e.contains("/nonexistent/picolet.yaml"), "{e}");
        let e = parse(args(&["--pids-max", "many"])).unwrap_err();
        assert_eq!(e, "--pids-max: not a number: \"many\"");
        let e = parse(args(&["--frobnicate", "1"])).unwrap_err();
        assert!(e.contains("--frobnicate"), "{e}");
        let e = config(args(&["--config", "/dev/null", "--broker", "http://x"])).unwrap_err();
        assert!(e.starts_with("invalid setting broker"), "{e}");
    }

    #[test]
    fn the_pod_network_defaults_to_a_bridge_on_10_87_0_0_24_and_bad_values_are_named() {
        let c = config(args(&["--config", "/dev/null"])).unwrap();
        assert_eq!(c.pod_cidr.unwrap().to_string(), "10.87.0.0/24");
        assert_eq!(c.node_ip, None);
        let c = config(args(&[
            "--config",
            "/dev/null",
            "--pod-cidr",
            "10.9.8.0/25",
            "--node-ip",
            "192.168.1.20",
        ]))
        .unwrap();
        assert_eq!(c.pod_cidr.unwrap().to_string(), "10.9.8.0/25");
        assert_eq!(c.node_ip.unwrap().to_string(), "192.168.1.20");
        let c = config(args(&["--config", "/dev/null", "--pod-network", "none"])).unwrap();
        assert_eq!(c.pod_cidr, None);
        for (flags, want) in [
            (&["--pod-cidr", "10.9.8.1/24"][..], "podCIDR"),
            (&["--pod-cidr", "fd00::/64"], "podCIDR"),
            (&["--pod-network", "calico"], "podNetwork"),
            (
                &["--pod-network", "none", "--pod-cidr", "10.9.8.0/24"],
                "podCIDR",
            ),
            (&["--node-ip", "my-host"], "nodeIP"),
        ] {
            let mut a = vec!["--config", "/dev/null"];
            a.extend_from_slice(flags);
            let e = config(args(&a)).unwrap_err();
            assert!(e.contains(want), "{flags:?}: {e}");
        }
    }

    #[test]
    fn metrics_default_to_every_30_s_without_an_endpoint_and_bad_values_are_named() {
        let c = config(args(&["--config", "/dev/null"])).unwrap();
        assert_eq!(c.metrics_interval.as_secs(), 30);
        assert_eq!(c.metrics_addr, None);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, "metricsInterval: 0\n").unwrap();
        let f = file.to_str().unwrap();
        assert!(
            config(args(&["--config", f]))
                .unwrap()
                .metrics_interval
                .is_zero()
        );
        let c = config(args(&[
            "--config",
            f,
            "--metrics-interval",
            "5",
            "--metrics-addr",
            "127.0.0.1:9100",
        ]))
        .unwrap();
        assert_eq!(c.metrics_interval.as_secs(), 5);
        assert_eq!(c.metrics_addr.unwrap().to_string(), "127.0.0.1:9100");
        let e = parse(args(&["--metrics-addr", "localhost"])).unwrap_err();
        assert!(e.starts_with("--metrics-addr: \"localhost\""), "{e}");
        let e = config(args(&["--config", f, "--metrics-addr", "[::1]:9100"])).unwrap_err();
        assert!(
            e.contains("metricsAddr") && e.contains("metricsInterval is 0"),
            "{e}"
        );
        let e = config(args(&[
            "--config",
            "/dev/null",
            "--metrics-interval",
            "3601",
        ]))
        .unwrap_err();
        assert!(e.contains("metricsInterval"), "{e}");
        std::fs::write(&file, "metricsAddr: 9100\n").unwrap();
        let e = config(args(&["--config", f])).unwrap_err();
        assert!(e.contains("metricsAddr"), "{e}");
    }
}
