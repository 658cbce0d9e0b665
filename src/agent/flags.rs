//! `picolet agent`'s command line: flags, merged over the config file.
//!
//! `--config FILE` (default [`DEFAULT_CONFIG_PATH`]; a missing default file
//! is fine, a missing explicit one is an error). Every other flag is a
//! setting of [`AgentFileConfig`] and wins over the file
//! ([`AgentFileConfig::over`]); `--group` and `--allow-capability` repeat,
//! and a repeated list replaces the file's. The state dir falls back to
//! `$PICOLET_STATE_DIR` when neither flag nor file sets it. Reads the
//! config file and `/proc/sys/kernel/hostname`.

use super::Config;
use crate::fleet::config::{
    AgentFileConfig, Bytes, DEFAULT_CONFIG_PATH, PolicyConfig, TlsFiles, hostname,
};
use std::ffi::OsString;
use std::path::PathBuf;

/// The usage lines of `picolet agent`.
pub const USAGE: &str =
    "  picolet agent [--config FILE] [--manifests DIR] [--state-dir DIR] [--run-dir DIR]
                [--cgroup-root DIR] [--node-name NAME] [--pids-max N] [--max-pods N]
                [--log-max-size BYTES] [--log-max-files N] [--eviction-interval SECONDS]
                [--eviction-nodefs-available PERCENT] [--eviction-imagefs-available PERCENT]
                [--image-gc-high-threshold PERCENT] [--image-gc-low-threshold PERCENT]
                [--image-minimum-gc-age SECONDS]
                [--broker mqtt[s]://HOST[:PORT]] [--device-id ID] [--group G]...
                [--topic-prefix P] [--ca FILE] [--cert FILE] [--key FILE]
                [--credentials FILE] [--fleet-key FILE] [--keepalive SECONDS]
                [--max-document-bytes BYTES] [--allow-privileged] [--allow-host-path]
                [--allow-host-network] [--allow-capability CAP]...
";

/// Parses `picolet agent`'s arguments: (`--config`, the flags as a config).
pub fn parse(args: Vec<OsString>) -> Result<(Option<PathBuf>, AgentFileConfig), String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let e = |e: lexopt::Error| e.to_string();
    let mut config = None;
    let mut f = AgentFileConfig::default();
    let mut tls = TlsFiles::default();
    let mut policy = PolicyConfig::default();
    let mut groups: Vec<String> = Vec::new();
    let mut caps: Vec<String> = Vec::new();
    let num = |flag: &str, v: String| -> Result<u64, String> {
        v.parse()
            .map_err(|_| format!("--{flag}: not a number: {v:?}"))
    };
    let bytes = |flag: &str, v: String| Bytes::parse(&v).map_err(|m| format!("--{flag}: {m}"));
    while let Some(arg) = p.next().map_err(e)? {
        let Long(name) = arg else {
            return Err(arg.unexpected().to_string());
        };
        let name = name.to_string();
        // Flags without a value.
        match name.as_str() {
            "allow-privileged" => policy.allow_privileged = Some(true),
            "allow-host-path" => policy.allow_host_path = Some(true),
            "allow-host-network" => policy.allow_host_network = Some(true),
            _ => {
                let v = p.value().map_err(e)?.string().map_err(e)?;
                match name.as_str() {
                    "config" => config = Some(PathBuf::from(v)),
                    "state-dir" => f.state_dir = Some(v.into()),
                    "run-dir" => f.run_dir = Some(v.into()),
                    "manifests" => f.manifests = Some(v.into()),
                    "cgroup-root" => f.cgroup_root = Some(v.into()),
                    "node-name" => f.node_name = Some(v),
                    "pids-max" => f.pids_max = Some(num(&name, v)?),
                    "max-pods" => f.max_pods = Some(num(&name, v)?),
                    "log-max-size" => f.log_max_size = Some(bytes(&name, v)?),
                    "log-max-files" => {
                        let n = num(&name, v)?;
                        let n = u32::try_from(n).map_err(|_| format!("--{name}: too large"))?;
                        f.log_max_files = Some(n);
                    }
                    "eviction-interval" => f.eviction_interval_seconds = Some(num(&name, v)?),
                    "eviction-nodefs-available" => {
                        f.eviction_nodefs_available_percent = Some(num(&name, v)?)
                    }
                    "eviction-imagefs-available" => {
                        f.eviction_imagefs_available_percent = Some(num(&name, v)?)
                    }
                    "image-gc-high-threshold" => {
                        f.image_gc_high_threshold_percent = Some(num(&name, v)?)
                    }
                    "image-gc-low-threshold" => {
                        f.image_gc_low_threshold_percent = Some(num(&name, v)?)
                    }
                    "image-minimum-gc-age" => f.image_minimum_gc_age_seconds = Some(num(&name, v)?),
                    "broker" => f.broker = Some(v),
                    "device-id" => f.device_id = Some(v),
                    "group" => groups.push(v),
                    "topic-prefix" => f.topic_prefix = Some(v),
                    "ca" => tls.ca = Some(v.into()),
                    "cert" => tls.cert = Some(v.into()),
                    "key" => tls.key = Some(v.into()),
                    "credentials" => f.credentials = Some(v.into()),
                    "fleet-key" => f.fleet_key = Some(v.into()),
                    "keepalive" => f.keepalive_seconds = Some(num(&name, v)?),
                    "max-document-bytes" => f.max_document_bytes = Some(bytes(&name, v)?),
                    "allow-capability" => caps.push(v),
                    _ => return Err(format!("unknown option --{name}; see `picolet --help`")),
                }
            }
        }
    }
    if !groups.is_empty() {
        f.groups = Some(groups);
    }
    if !caps.is_empty() {
        policy.allow_capabilities = Some(caps);
    }
    if tls != TlsFiles::default() {
        f.tls = Some(tls);
    }
    if policy != PolicyConfig::default() {
        f.policy = Some(policy);
    }
    Ok((config, f))
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
    if merged.state_dir.is_none() {
        merged.state_dir = std::env::var_os("PICOLET_STATE_DIR").map(PathBuf::from);
    }
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(policy.allow_privileged, None);
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
}
