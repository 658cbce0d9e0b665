//! The agent's config file (`picolet agent --config FILE`, default
//! [`DEFAULT_CONFIG_PATH`]), strict YAML:
//!
//! ```yaml
//! broker: mqtts://broker.example:8883   # no broker: the fleet channel is off
//! deviceId: pi-17                        # default: the hostname
//! groups: [kitchen, floor-2]             # earlier groups win name clashes
//! topicPrefix: picolet
//! tls: {ca: ca.pem, cert: device.pem, key: device.key}   # mqtts:// only
//! credentials: credentials.yaml          # see `Credentials`
//! fleetKey: fleet.pub                    # only signed desired state is accepted
//! keepaliveSeconds: 30
//! maxDocumentBytes: 1Mi                  # integer or quantity
//! policy: {allowPrivileged: false, allowHostPath: false, allowHostNetwork: false,
//!          allowHostPID: false, allowCapabilities: [NET_ADMIN]}
//! manifests: /etc/picolet/manifests
//! stateDir: /var/lib/picolet
//! runDir: /run/picolet
//! cgroupRoot: /sys/fs/cgroup/picolet
//! nodeName: pi-17
//! pidsMax: 1024
//! maxPods: 110                           # the kubelet's default
//! logMaxSize: 1Mi
//! logMaxFiles: 2
//! ```
//!
//! Every key is optional; an unknown key is an error naming it (with its
//! path, e.g. `tls.certificate`). Relative paths in the file are relative to
//! the file's directory.
//!
//! # Merge rule with flags
//! The lead parses flags into an [`AgentFileConfig`] too, then calls
//! `flags.over(file).resolve(&hostname())`: for every setting the flag wins
//! if given, else the file, else the default. `tls` and `policy` merge key by
//! key (`--allow-host-network` keeps the file's `allowPrivileged`); `groups`
//! is one setting: a flag's list replaces the file's, it does not add to it.
//! [`AgentFileConfig::resolve`] checks everything and fills the defaults.
//!
//! I/O: [`AgentFileConfig::load`], [`Credentials::load`] and [`hostname`]
//! read files; the rest is pure.

mod broker;
mod credentials;

#[cfg(test)]
mod tests;

pub use broker::BrokerUrl;
pub use credentials::Credentials;

use crate::fleet::doc::MAX_DOC_BYTES;
use crate::fleet::policy::NodePolicy;
use crate::fleet::topics::{DEFAULT_PREFIX, IdKind, Topics, validate_id};
use crate::spec::Quantity;
use serde::{Deserialize, Deserializer, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where the agent looks for its config file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/picolet/config.yaml";
/// Config and credentials files larger than this are refused.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// Errors of reading or checking the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file that cannot be used (syntax, unknown key, size, mode).
    #[error("{}: {message}", .path.display())]
    File { path: PathBuf, message: String },
    /// A setting with a bad value; `key` is its config key (`groups[1]`).
    #[error("invalid setting {key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// A byte count: an integer or a quantity string (`64Ki`, `1Mi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bytes(pub u64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Bytes(n)),
            Raw::Text(t) => Bytes::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl Bytes {
    /// `4096`, `64Ki`, `1Mi`, `1G`.
    pub fn parse(text: &str) -> Result<Bytes, String> {
        let q = Quantity::parse(text)
            .map_err(|e| format!("{text:?} is not a byte count: {}", e.message))?;
        if q.is_negative() {
            return Err(format!("{text:?} is negative"));
        }
        Ok(Bytes(q.value() as u64))
    }
}

/// `tls:` — files for `mqtts://`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// CA bundle (PEM); the system roots when absent.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), for mTLS; needs `key`.
    pub cert: Option<PathBuf>,
    /// Client private key (PEM), for mTLS; needs `cert`.
    pub key: Option<PathBuf>,
}

/// `policy:` as written: each key optional, merged key by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyConfig {
    pub allow_privileged: Option<bool>,
    pub allow_host_path: Option<bool>,
    pub allow_host_network: Option<bool>,
    #[serde(rename = "allowHostPID")]
    pub allow_host_pid: Option<bool>,
    pub allow_capabilities: Option<Vec<String>>,
    pub no_new_privileges: Option<bool>,
}

/// The config file (or the flags), as written: every setting optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentFileConfig {
    pub broker: Option<String>,
    pub device_id: Option<String>,
    pub groups: Option<Vec<String>>,
    pub topic_prefix: Option<String>,
    pub tls: Option<TlsFiles>,
    pub credentials: Option<PathBuf>,
    pub fleet_key: Option<PathBuf>,
    pub keepalive_seconds: Option<u64>,
    pub max_document_bytes: Option<Bytes>,
    pub policy: Option<PolicyConfig>,
    pub manifests: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub run_dir: Option<PathBuf>,
    pub cgroup_root: Option<PathBuf>,
    pub node_name: Option<String>,
    pub pids_max: Option<u64>,
    pub max_pods: Option<u64>,
    pub log_max_size: Option<Bytes>,
    pub log_max_files: Option<u32>,
    /// Seconds between disk checks (ephemeral storage, node pressure).
    pub eviction_interval_seconds: Option<u64>,
    /// `nodefs.available` threshold, percent (0 disables).
    pub eviction_nodefs_available_percent: Option<u64>,
    /// `imagefs.available` threshold, percent (0 disables).
    pub eviction_imagefs_available_percent: Option<u64>,
    /// Image GC starts at this usage of the image filesystem, percent
    /// (100 disables threshold GC).
    #[serde(rename = "imageGCHighThresholdPercent")]
    pub image_gc_high_threshold_percent: Option<u64>,
    /// Image GC frees down to this usage, percent.
    #[serde(rename = "imageGCLowThresholdPercent")]
    pub image_gc_low_threshold_percent: Option<u64>,
    /// An unused image younger than this is never deleted.
    #[serde(rename = "imageMinimumGCAgeSeconds")]
    pub image_minimum_gc_age_seconds: Option<u64>,
    /// `bridge` (the default: a veth on `picolet0` per pod) or `none`
    /// (pods get only `lo`; `hostPort` is refused).
    pub pod_network: Option<String>,
    /// The pods' IPv4 network (see `docs/net.md`).
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<String>,
    /// `status.hostIP`; default: the address of the default route's link.
    #[serde(rename = "nodeIP")]
    pub node_ip: Option<String>,
    /// `RuntimeDefault` seccomp for containers that set no
    /// `seccompProfile` (the kubelet's `--seccomp-default`).
    pub seccomp_default: Option<bool>,
    /// Labels of this node (over the kubelet's and `picolet.io/board`),
    /// for `nodeSelector` and node affinity.
    pub node_labels: Option<crate::vecmap::VecMap<String, String>>,
    /// Deployments roll back by themselves when a rollout passes its
    /// progress deadline, unless annotated `picolet.io/auto-rollback:
    /// "false"` (docs/workloads.md).
    pub auto_rollback: Option<bool>,
    /// CronJobs schedule without waiting for NTP: for devices whose clock
    /// is right at boot (a battery-backed RTC) and that have no NTP.
    pub assume_clock_synchronized: Option<bool>,
    /// Seconds between two samples of the pods' cgroups (docs/metrics.md);
    /// 0: no metrics.
    pub metrics_interval: Option<u64>,
    /// `IP:PORT` of the Prometheus endpoint (`GET /metrics`); off when unset.
    pub metrics_addr: Option<String>,
}

/// The fleet channel's settings, checked, with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSettings {
    pub broker: BrokerUrl,
    pub device_id: String,
    pub groups: Vec<String>,
    pub topics: Topics,
    pub tls: TlsFiles,
    pub credentials: Option<PathBuf>,
    pub fleet_key: Option<PathBuf>,
    pub keepalive_seconds: u16,
    pub max_document_bytes: usize,
    pub policy: NodePolicy,
}

/// All agent settings, checked, with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    /// `None` when no broker is configured: the agent runs static pods only.
    pub fleet: Option<FleetSettings>,
    pub manifests: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    pub cgroup_root: Option<PathBuf>,
    pub node_name: String,
    pub pids_max: u64,
    /// The most pods admitted at once (the kubelet's `maxPods`).
    pub max_pods: usize,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    pub eviction_interval_seconds: u64,
    pub eviction: crate::lifecycle::eviction::Thresholds,
    pub image_gc: crate::image::gc::GcPolicy,
    /// The pod CIDR; `None`: `podNetwork: none`.
    pub pod_cidr: Option<crate::net::Cidr>,
    pub node_ip: Option<std::net::Ipv4Addr>,
    pub seccomp_default: bool,
    /// `nodeLabels` (checked).
    pub node_labels: crate::vecmap::VecMap<String, String>,
    pub auto_rollback: bool,
    pub assume_clock_synchronized: bool,
    /// 0: off.
    pub metrics_interval_seconds: u64,
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Defaults of [`AgentSettings`].
pub const DEFAULT_STATE_DIR: &str = "/var/lib/picolet";
pub const DEFAULT_RUN_DIR: &str = "/run/picolet";
pub const DEFAULT_PIDS_MAX: u64 = 1024;
pub const DEFAULT_LOG_MAX_BYTES: u64 = 1 << 20;
pub const DEFAULT_LOG_MAX_FILES: u32 = 2;
pub const DEFAULT_KEEPALIVE_SECONDS: u16 = 30;

/// Reads at most `cap` bytes of UTF-8 text.
pub(crate) fn read_capped(path: &Path, cap: u64) -> Result<String, ConfigError> {
    let io = |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut buf = String::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(cap + 1)
        .read_to_string(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > cap {
        return Err(ConfigError::File {
            path: path.to_path_buf(),
            message: format!("larger than {cap} bytes"),
        });
    }
    Ok(buf)
}

/// This machine's host name (`/proc/sys/kernel/hostname`), or `localhost`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl AgentFileConfig {
    /// Reads and parses a config file; relative paths in it become relative
    /// to its directory.
    pub fn load(path: &Path) -> Result<AgentFileConfig, ConfigError> {
        let text = read_capped(path, MAX_CONFIG_BYTES)?;
        let mut cfg = Self::parse(&text).map_err(|message| ConfigError::File {
            path: path.to_path_buf(),
            message,
        })?;
        cfg.make_paths_absolute(path.parent().unwrap_or(Path::new(".")));
        Ok(cfg)
    }

    /// [`load`](Self::load), but a missing file is an empty config (for the
    /// default path, which need not exist).
    pub fn load_optional(path: &Path) -> Result<AgentFileConfig, ConfigError> {
        match Self::load(path) {
            Err(ConfigError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(AgentFileConfig::default())
            }
            other => other,
        }
    }

    /// Parses YAML text; the error names the key path and the position.
    pub fn parse(text: &str) -> Result<AgentFileConfig, String> {
        match crate::serde_path::from_yaml::<Option<AgentFileConfig>>(text) {
            Ok(cfg) => Ok(cfg.unwrap_or_default()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn make_paths_absolute(&mut self, base: &Path) {
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(path) = p.as_mut() {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        };
        if let Some(tls) = self.tls.as_mut() {
            fix(&mut tls.ca);
            fix(&mut tls.cert);
            fix(&mut tls.key);
        }
        for p in [
            &mut self.credentials,
            &mut self.fleet_key,
            &mut self.manifests,
            &mut self.state_dir,
            &mut self.run_dir,
            &mut self.cgroup_root,
        ] {
            fix(p);
        }
    }

    /// This config (the flags) over `lower` (the file): each setting from
    /// `self` if set, else from `lower`; `tls` and `policy` key by key.
    pub fn over(self, lower: AgentFileConfig) -> AgentFileConfig {
        let tls = match (self.tls, lower.tls) {
            (Some(a), Some(b)) => Some(TlsFiles {
                ca: a.ca.or(b.ca),
                cert: a.cert.or(b.cert),
                key: a.key.or(b.key),
            }),
            (a, b) => a.or(b),
        };
        let policy = match (self.policy, lower.policy) {
            (Some(a), Some(b)) => Some(PolicyConfig {
                allow_privileged: a.allow_privileged.or(b.allow_privileged),
                allow_host_path: a.allow_host_path.or(b.allow_host_path),
                allow_host_network: a.allow_host_network.or(b.allow_host_network),
                allow_host_pid: a.allow_host_pid.or(b.allow_host_pid),
                allow_capabilities: a.allow_capabilities.or(b.allow_capabilities),
                no_new_privileges: a.no_new_privileges.or(b.no_new_privileges),
            }),
            (a, b) => a.or(b),
        };
        AgentFileConfig {
            broker: self.broker.or(lower.broker),
            device_id: self.device_id.or(lower.device_id),
            groups: self.groups.or(lower.groups),
            topic_prefix: self.topic_prefix.or(lower.topic_prefix),
            tls,
            credentials: self.credentials.or(lower.credentials),
            fleet_key: self.fleet_key.or(lower.fleet_key),
            keepalive_seconds: self.keepalive_seconds.or(lower.keepalive_seconds),
            max_document_bytes: self.max_document_bytes.or(lower.max_document_bytes),
            policy,
            manifests: self.manifests.or(lower.manifests),
            state_dir: self.state_dir.or(lower.state_dir),
            run_dir: self.run_dir.or(lower.run_dir),
            cgroup_root: self.cgroup_root.or(lower.cgroup_root),
            node_name: self.node_name.or(lower.node_name),
            pids_max: self.pids_max.or(lower.pids_max),
            max_pods: self.max_pods.or(lower.max_pods),
            log_max_size: self.log_max_size.or(lower.log_max_size),
            log_max_files: self.log_max_files.or(lower.log_max_files),
            eviction_interval_seconds: self
                .eviction_interval_seconds
                .or(lower.eviction_interval_seconds),
            eviction_nodefs_available_percent: self
                .eviction_nodefs_available_percent
                .or(lower.eviction_nodefs_available_percent),
            eviction_imagefs_available_percent: self
                .eviction_imagefs_available_percent
                .or(lower.eviction_imagefs_available_percent),
            image_gc_high_threshold_percent: self
                .image_gc_high_threshold_percent
                .or(lower.image_gc_high_threshold_percent),
            image_gc_low_threshold_percent: self
                .image_gc_low_threshold_percent
                .or(lower.image_gc_low_threshold_percent),
            image_minimum_gc_age_seconds: self
                .image_minimum_gc_age_seconds
                .or(lower.image_minimum_gc_age_seconds),
            pod_network: self.pod_network.or(lower.pod_network),
            pod_cidr: self.pod_cidr.or(lower.pod_cidr),
            node_ip: self.node_ip.or(lower.node_ip),
            seccomp_default: self.seccomp_default.or(lower.seccomp_default),
            // Key by key: a flag's label wins over the file's.
            node_labels: match (lower.node_labels, self.node_labels) {
                (Some(mut l), Some(h)) => {
                    l.extend(h);
                    Some(l)
                }
                (l, h) => h.or(l),
            },
            auto_rollback: self.auto_rollback.or(lower.auto_rollback),
            assume_clock_synchronized: self
                .assume_clock_synchronized
                .or(lower.assume_clock_synchronized),
            metrics_interval: self.metrics_interval.or(lower.metrics_interval),
            metrics_addr: self.metrics_addr.or(lower.metrics_addr),
        }
    }

    /// Checks every setting and fills in the defaults; `hostname` is the
    /// default device id and node name.
    pub fn resolve(self, hostname: &str) -> Result<AgentSettings, ConfigError> {
        let node_name = self
            .node_name
            .clone()
            .unwrap_or_else(|| hostname.to_string());
        if node_name.is_empty() {
            return Err(ConfigError::invalid("nodeName", "must not be empty"));
        }
        let pids_max = self.pids_max.unwrap_or(DEFAULT_PIDS_MAX);
        if pids_max == 0 {
            return Err(ConfigError::invalid("pidsMax", "must be at least 1"));
        }
        let max_pods = self
            .max_pods
            .unwrap_or(crate::lifecycle::DEFAULT_MAX_PODS as u64);
        if max_pods == 0 {
            return Err(ConfigError::invalid("maxPods", "must be at least 1"));
        }
        let max_pods =
            usize::try_from(max_pods).map_err(|_| ConfigError::invalid("maxPods", "too large"))?;
        let log_max_bytes = self.log_max_size.map_or(DEFAULT_LOG_MAX_BYTES, |b| b.0);
        if log_max_bytes < 4096 {
            return Err(ConfigError::invalid(
                "logMaxSize",
                "must be at least 4096 bytes",
            ));
        }
        let log_max_files = self.log_max_files.unwrap_or(DEFAULT_LOG_MAX_FILES);
        if log_max_files == 0 {
            return Err(ConfigError::invalid("logMaxFiles", "must be at least 1"));
        }
        let eviction_interval_seconds = self
            .eviction_interval_seconds
            .unwrap_or(crate::agent::disk::DEFAULT_INTERVAL.as_secs());
        if !(1..=3600).contains(&eviction_interval_seconds) {
            return Err(ConfigError::invalid(
                "evictionIntervalSeconds",
                "must be 1 to 3600",
            ));
        }
        let defaults = crate::lifecycle::eviction::Thresholds::default();
        let mut eviction = defaults;
        for (key, v, slot) in [
            (
                "evictionNodefsAvailablePercent",
                self.eviction_nodefs_available_percent,
                &mut eviction.nodefs_available_pct,
            ),
            (
                "evictionImagefsAvailablePercent",
                self.eviction_imagefs_available_percent,
                &mut eviction.imagefs_available_pct,
            ),
        ] {
            if let Some(v) = v {
                if v > 99 {
                    return Err(ConfigError::invalid(key, "must be 0 (off) to 99"));
                }
                *slot = v;
            }
        }
        let mut image_gc = crate::image::gc::GcPolicy::default();
        if let Some(v) = self.image_gc_high_threshold_percent {
            if !(1..=100).contains(&v) {
                return Err(ConfigError::invalid(
                    "imageGCHighThresholdPercent",
                    "must be 1 to 100 (100: off)",
                ));
            }
            image_gc.high_pct = v;
        }
        if let Some(v) = self.image_gc_low_threshold_percent {
            image_gc.low_pct = v;
        }
        if image_gc.low_pct > image_gc.high_pct {
            return Err(ConfigError::invalid(
                "imageGCLowThresholdPercent",
                format!(
                    "{} is above imageGCHighThresholdPercent {}",
                    image_gc.low_pct, image_gc.high_pct
                ),
            ));
        }
        if let Some(v) = self.image_minimum_gc_age_seconds {
            if v > 365 * 24 * 3600 {
                return Err(ConfigError::invalid(
                    "imageMinimumGCAgeSeconds",
                    "must be at most a year",
                ));
            }
            image_gc.min_age_ms = v * 1000;
        }
        let pod_cidr = match self.pod_network.as_deref() {
            None | Some("bridge") => Some(
                self.pod_cidr
                    .as_deref()
                    .unwrap_or(crate::net::DEFAULT_POD_CIDR)
                    .parse::<crate::net::Cidr>()
                    .map_err(|m| ConfigError::invalid("podCIDR", m))?,
            ),
            Some("none") if self.pod_cidr.is_some() => {
                return Err(ConfigError::invalid(
                    "podCIDR",
                    "is set but podNetwork is none",
                ));
            }
            Some("none") => None,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "podNetwork",
                    format!("{other:?}: must be bridge or none"),
                ));
            }
        };
        let node_ip = match self.node_ip.as_deref() {
            None => None,
            Some(ip) => Some(ip.parse().map_err(|_| {
                ConfigError::invalid("nodeIP", format!("{ip:?} is not an IPv4 address"))
            })?),
        };
        let metrics_interval_seconds = self
            .metrics_interval
            .unwrap_or(crate::metrics::DEFAULT_INTERVAL_SECONDS);
        if metrics_interval_seconds > 3600 {
            return Err(ConfigError::invalid(
                "metricsInterval",
                "must be 0 (off) to 3600",
            ));
        }
        let metrics_addr = match self.metrics_addr.as_deref() {
            None => None,
            Some(a) => Some(
                crate::metrics::parse_addr(a)
                    .map_err(|m| ConfigError::invalid("metricsAddr", m))?,
            ),
        };
        if metrics_addr.is_some() && metrics_interval_seconds == 0 {
            return Err(ConfigError::invalid(
                "metricsAddr",
                "is set but metricsInterval is 0 (metrics off)",
            ));
        }
        let node_labels = self.node_labels.clone().unwrap_or_default();
        crate::spec::affinity::check_labels(&node_labels, "nodeLabels")
            .map_err(|m| ConfigError::invalid("nodeLabels", m))?;
        let fleet = match &self.broker {
            None => None,
            Some(url) => Some(self.fleet_settings(url, hostname)?),
        };
        Ok(AgentSettings {
            fleet,
            manifests: self.manifests,
            state_dir: self
                .state_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            run_dir: self
                .run_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_RUN_DIR)),
            cgroup_root: self.cgroup_root,
            node_name,
            pids_max,
            max_pods,
            log_max_bytes,
            log_max_files,
            eviction_interval_seconds,
            eviction,
            image_gc,
            pod_cidr,
            node_ip,
            seccomp_default: self.seccomp_default.unwrap_or(false),
            node_labels,
            auto_rollback: self.auto_rollback.unwrap_or(false),
            assume_clock_synchronized: self.assume_clock_synchronized.unwrap_or(false),
            metrics_interval_seconds,
            metrics_addr,
        })
    }

    fn fleet_settings(&self, url: &str, hostname: &str) -> Result<FleetSettings, ConfigError> {
        let broker = BrokerUrl::parse(url, "broker")?;
        let device_id = self
            .device_id
            .clone()
            .unwrap_or_else(|| hostname.to_string());
        validate_id(IdKind::Device, &device_id)
            .map_err(|e| ConfigError::invalid("deviceId", e.to_string()))?;
        let groups = self.groups.clone().unwrap_or_default();
        for (i, g) in groups.iter().enumerate() {
            let key = format!("groups[{i}]");
            validate_id(IdKind::Group, g).map_err(|e| ConfigError::invalid(&key, e.to_string()))?;
            if groups[..i].contains(g) {
                return Err(ConfigError::invalid(&key, format!("{g:?} is listed twice")));
            }
        }
        let prefix = self.topic_prefix.as_deref().unwrap_or(DEFAULT_PREFIX);
        let topics =
            Topics::new(prefix).map_err(|e| ConfigError::invalid("topicPrefix", e.to_string()))?;
        let tls = self.tls.clone().unwrap_or_default();
        if !broker.tls && tls != TlsFiles::default() {
            return Err(ConfigError::invalid(
                "tls",
                format!("the broker {broker} does not use TLS (use mqtts://)"),
            ));
        }
        if tls.cert.is_some() != tls.key.is_some() {
            return Err(ConfigError::invalid(
                "tls",
                "a client certificate needs its key: set both tls.cert and tls.key",
            ));
        }
        let keepalive = self
            .keepalive_seconds
            .unwrap_or(u64::from(DEFAULT_KEEPALIVE_SECONDS));
        let keepalive_seconds = u16::try_from(keepalive)
            .ok()
            .filter(|k| *k > 0)
            .ok_or_else(|| ConfigError::invalid("keepaliveSeconds", "must be 1-65535"))?;
        let max_doc = self
            .max_document_bytes
            .map_or(MAX_DOC_BYTES as u64, |b| b.0);
        if !(1024..=256 << 20).contains(&max_doc) {
            return Err(ConfigError::invalid(
                "maxDocumentBytes",
                "must be between 1Ki and 256Mi",
            ));
        }
        let p = self.policy.clone().unwrap_or_default();
        let policy = NodePolicy {
            allow_privileged: p.allow_privileged.unwrap_or(false),
            allow_host_path: p.allow_host_path.unwrap_or(false),
            allow_host_network: p.allow_host_network.unwrap_or(false),
            allow_host_pid: p.allow_host_pid.unwrap_or(false),
            allow_capabilities: p.allow_capabilities.unwrap_or_default(),
            no_new_privileges: p.no_new_privileges.unwrap_or(false),
        };
        policy
            .validate()
            .map_err(|v| ConfigError::invalid(&v.path, v.message))?;
        Ok(FleetSettings {
            broker,
            device_id,
            groups,
            topics,
            tls,
            credentials: self.credentials.clone(),
            fleet_key: self.fleet_key.clone(),
            keepalive_seconds,
            max_document_bytes: max_doc as usize,
            policy,
        })
    }
}
