use super::*;
use std::os::unix::fs::PermissionsExt;

const FULL: &str = "\
broker: mqtts://broker.example:8884
deviceId: pi-17
groups: [kitchen, floor-2]
topicPrefix: acme/picolet
tls:
  ca: ca.pem
  cert: /etc/picolet/device.pem
  key: device.key
credentials: credentials.yaml
fleetKey: fleet.pub
keepaliveSeconds: 15
maxDocumentBytes: 512Ki
policy:
  allowPrivileged: true
  allowCapabilities: [NET_ADMIN]
manifests: manifests
stateDir: /var/lib/picolet
runDir: /run/picolet
cgroupRoot: /sys/fs/cgroup/picolet
nodeName: node-a
pidsMax: 256
logMaxSize: 2Mi
logMaxFiles: 3
";

fn parse(text: &str) -> AgentFileConfig {
    AgentFileConfig::parse(text).unwrap()
}

fn invalid(cfg: AgentFileConfig) -> String {
    cfg.resolve("host").unwrap_err().to_string()
}

#[test]
fn a_full_config_file_resolves_to_every_setting() {
    let s = parse(FULL).resolve("ignored").unwrap();
    let f = s.fleet.as_ref().unwrap();
    assert_eq!(f.broker.to_string(), "mqtts://broker.example:8884");
    assert_eq!(f.device_id, "pi-17");
    assert_eq!(f.groups, ["kitchen", "floor-2"]);
    assert_eq!(
        f.topics.device_desired("pi-17"),
        "acme/picolet/devices/pi-17/desired"
    );
    assert_eq!(f.keepalive_seconds, 15);
    assert_eq!(f.max_document_bytes, 512 * 1024);
    assert!(f.policy.allow_privileged && !f.policy.allow_host_path);
    assert_eq!(f.policy.allow_capabilities, ["NET_ADMIN"]);
    assert_eq!(
        f.tls.cert.as_deref(),
        Some(Path::new("/etc/picolet/device.pem"))
    );
    assert_eq!(s.node_name, "node-a");
    assert_eq!(
        (s.pids_max, s.log_max_bytes, s.log_max_files),
        (256, 2 << 20, 3)
    );
    assert_eq!(
        s.cgroup_root.as_deref(),
        Some(Path::new("/sys/fs/cgroup/picolet"))
    );
}

#[test]
fn an_empty_config_gives_the_defaults_and_no_fleet_channel() {
    for text in ["", "# nothing yet\n"] {
        let s = parse(text).resolve("raspberrypi").unwrap();
        assert_eq!(s.fleet, None);
        assert_eq!(s.node_name, "raspberrypi");
        assert_eq!(s.state_dir, Path::new(DEFAULT_STATE_DIR));
        assert_eq!(s.run_dir, Path::new(DEFAULT_RUN_DIR));
        assert_eq!(s.pids_max, DEFAULT_PIDS_MAX);
        assert_eq!(s.log_max_bytes, DEFAULT_LOG_MAX_BYTES);
        assert_eq!(s.log_max_files, DEFAULT_LOG_MAX_FILES);
        assert_eq!(s.manifests, None);
    }
}

#[test]
fn the_device_id_defaults_to_the_hostname_and_the_fleet_settings_to_their_defaults() {
    let s = parse("broker: mqtt://127.0.0.1\n").resolve("pi-3").unwrap();
    let f = s.fleet.unwrap();
    assert_eq!(f.device_id, "pi-3");
    assert_eq!(f.broker.port, 1883);
    assert_eq!(f.topics.prefix(), "picolet");
    assert_eq!(f.keepalive_seconds, DEFAULT_KEEPALIVE_SECONDS);
    assert_eq!(f.max_document_bytes, MAX_DOC_BYTES);
    assert_eq!(f.policy, NodePolicy::default());
    assert!(f.groups.is_empty() && f.credentials.is_none() && f.fleet_key.is_none());
}

#[test]
fn unknown_keys_are_errors_naming_the_key_path() {
    let err = AgentFileConfig::parse("brokr: mqtt://x\n").unwrap_err();
    assert!(
        err.starts_with("brokr: unknown field `brokr`, expected one of `broker`"),
        "{err}"
    );
    let err = AgentFileConfig::parse("tls:\n  certificate: a.pem\n").unwrap_err();
    assert!(
        err.starts_with("tls.certificate: unknown field `certificate`"),
        "{err}"
    );
    assert!(err.ends_with("at line 2 column 3"), "{err}");
    let err = AgentFileConfig::parse("policy:\n  allowPrivilegd: true\n").unwrap_err();
    assert!(
        err.starts_with("policy.allowPrivilegd: unknown field"),
        "{err}"
    );
}

#[test]
fn values_of_the_wrong_type_name_their_key() {
    let err = AgentFileConfig::parse("policy:\n  allowPrivileged: yes\n").unwrap_err();
    assert!(
        err.starts_with("policy.allowPrivileged: invalid type: string \"yes\""),
        "{err}"
    );
    let err = AgentFileConfig::parse("logMaxSize: lots\n").unwrap_err();
    assert!(
        err.starts_with("logMaxSize: \"lots\" is not a byte count"),
        "{err}"
    );
    let err = AgentFileConfig::parse("broker: mqtt://a\nbroker: mqtt://b\n").unwrap_err();
    assert!(err.contains("duplicate"), "{err}");
    assert_eq!(
        parse("logMaxSize: 65536\n").log_max_size,
        Some(Bytes(65536))
    );
}

#[test]
fn flags_win_over_the_file_setting_by_setting() {
    let file = parse(FULL);
    let flags =
        parse("broker: mqtt://127.0.0.1:1884\ngroups: [lab]\npolicy: {allowHostNetwork: true}\n");
    let merged = flags.over(file.clone());
    assert_eq!(merged.broker.as_deref(), Some("mqtt://127.0.0.1:1884"));
    // A flag's group list replaces the file's.
    assert_eq!(merged.groups, Some(vec!["lab".to_string()]));
    // Policy merges key by key.
    let policy = merged.policy.clone().unwrap();
    assert_eq!(policy.allow_host_network, Some(true));
    assert_eq!(policy.allow_privileged, Some(true));
    // Settings no flag gave come from the file.
    assert_eq!(merged.device_id, file.device_id);
    assert_eq!(merged.pids_max, Some(256));
    // And an empty flag set changes nothing.
    assert_eq!(AgentFileConfig::default().over(file.clone()), file);
}

#[test]
fn tls_files_merge_key_by_key() {
    let file = parse("tls: {ca: /f/ca.pem, cert: /f/c.pem, key: /f/k.pem}\n");
    let flags = parse("tls: {ca: /flag/ca.pem}\n");
    let tls = flags.over(file).tls.unwrap();
    assert_eq!(tls.ca.as_deref(), Some(Path::new("/flag/ca.pem")));
    assert_eq!(tls.cert.as_deref(), Some(Path::new("/f/c.pem")));
}

#[test]
fn bad_fleet_settings_are_refused_naming_the_setting() {
    let base = "broker: mqtt://b\n";
    let cases = [
        (
            "deviceId: a/b\n",
            "invalid setting deviceId: device id \"a/b\": must not contain '/'",
        ),
        (
            "groups: [ok, 'x+']\n",
            "invalid setting groups[1]: group name \"x+\": must not contain the MQTT wildcards '+' or '#'",
        ),
        (
            "groups: [a, a]\n",
            "invalid setting groups[1]: \"a\" is listed twice",
        ),
        (
            "topicPrefix: a//b\n",
            "invalid setting topicPrefix: topic prefix \"a//b\": must not start or end with '/' or contain '//'",
        ),
        (
            "tls: {ca: /ca.pem}\n",
            "invalid setting tls: the broker mqtt://b:1883 does not use TLS (use mqtts://)",
        ),
        (
            "keepaliveSeconds: 0\n",
            "invalid setting keepaliveSeconds: must be 1-65535",
        ),
        (
            "keepaliveSeconds: 70000\n",
            "invalid setting keepaliveSeconds: must be 1-65535",
        ),
        (
            "maxDocumentBytes: 10\n",
            "invalid setting maxDocumentBytes: must be between 1Ki and 256Mi",
        ),
        (
            "policy: {allowCapabilities: [FLY]}\n",
            "invalid setting policy.allowCapabilities[0]: unknown capability \"FLY\"",
        ),
    ];
    for (extra, want) in cases {
        assert_eq!(invalid(parse(&format!("{base}{extra}"))), want, "{extra}");
    }
    let half = parse("broker: mqtts://b\ntls: {cert: /c.pem}\n");
    assert!(invalid(half).contains("set both tls.cert and tls.key"));
    assert!(invalid(parse("broker: tcp://b\n")).starts_with("invalid setting broker:"));
}

#[test]
fn bad_agent_settings_are_refused_naming_the_setting() {
    assert_eq!(
        invalid(parse("pidsMax: 0\n")),
        "invalid setting pidsMax: must be at least 1"
    );
    assert_eq!(
        invalid(parse("logMaxFiles: 0\n")),
        "invalid setting logMaxFiles: must be at least 1"
    );
    assert_eq!(
        invalid(parse("logMaxSize: 100\n")),
        "invalid setting logMaxSize: must be at least 4096 bytes"
    );
    assert_eq!(
        invalid(parse("nodeName: ''\n")),
        "invalid setting nodeName: must not be empty"
    );
}

#[test]
fn load_makes_relative_paths_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, FULL).unwrap();
    let cfg = AgentFileConfig::load(&path).unwrap();
    let tls = cfg.tls.as_ref().unwrap();
    assert_eq!(tls.ca.as_deref(), Some(dir.path().join("ca.pem").as_path()));
    assert_eq!(
        tls.cert.as_deref(),
        Some(Path::new("/etc/picolet/device.pem"))
    );
    assert_eq!(tls.key, Some(dir.path().join("device.key")));
    assert_eq!(cfg.credentials, Some(dir.path().join("credentials.yaml")));
    assert_eq!(cfg.fleet_key, Some(dir.path().join("fleet.pub")));
    assert_eq!(cfg.manifests, Some(dir.path().join("manifests")));
    assert_eq!(
        cfg.state_dir.as_deref(),
        Some(Path::new("/var/lib/picolet"))
    );
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "brokr: x\n").unwrap();
    let err = AgentFileConfig::load(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: brokr: unknown field", path.display())),
        "{err}"
    );
    std::fs::write(&path, "#".repeat(MAX_CONFIG_BYTES as usize + 1)).unwrap();
    let err = AgentFileConfig::load(&path).unwrap_err().to_string();
    assert!(err.ends_with("larger than 65536 bytes"), "{err}");
}

#[test]
fn a_missing_default_config_is_empty_but_a_missing_named_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.yaml");
    assert_eq!(
        AgentFileConfig::load_optional(&path).unwrap(),
        AgentFileConfig::default()
    );
    assert!(matches!(
        AgentFileConfig::load(&path),
        Err(ConfigError::Io { .. })
    ));
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn credentials_are_read_from_a_private_yaml_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("creds.yaml");
    write_mode(&path, "username: pi-17\npassword: s3cret\n", 0o600);
    let c = Credentials::load(&path).unwrap();
    assert_eq!(
        (c.username.as_str(), c.password.as_deref()),
        ("pi-17", Some("s3cret"))
    );
    assert!(!format!("{c:?}").contains("s3cret"));
    write_mode(&path, "username: only\n", 0o400);
    assert_eq!(Credentials::load(&path).unwrap().password, None);
}

#[test]
fn credentials_readable_by_others_or_with_unknown_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("creds.yaml");
    write_mode(&path, "username: a\npassword: b\n", 0o644);
    let err = Credentials::load(&path).unwrap_err().to_string();
    assert!(err.ends_with("(mode 0644; chmod 600 it)"), "{err}");
    write_mode(&path, "user: a\n", 0o600);
    let err = Credentials::load(&path).unwrap_err().to_string();
    assert!(err.contains("unknown field `user`"), "{err}");
    write_mode(&path, "username: ''\n", 0o600);
    let err = Credentials::load(&path).unwrap_err().to_string();
    assert!(err.ends_with("username: must not be empty"), "{err}");
}

#[test]
fn hostname_is_never_empty() {
    assert!(!hostname().is_empty());
}

#[test]
fn an_empty_or_comment_only_config_file_is_the_default() {
    assert_eq!(
        AgentFileConfig::parse("").unwrap(),
        AgentFileConfig::default()
    );
    assert_eq!(
        AgentFileConfig::parse("# nothing set yet\n").unwrap(),
        AgentFileConfig::default()
    );
    assert_eq!(
        AgentFileConfig::parse("~\n").unwrap(),
        AgentFileConfig::default()
    );
}
