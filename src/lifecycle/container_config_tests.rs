//! The container-config rules against a fake host: no root, no files.

use super::*;
use crate::image::ImageConfig;
use std::cell::RefCell;

/// One projected volume written: (dir, files, secret, fsGroup).
type Written = (PathBuf, Vec<crate::spec::refs::File>, bool, Option<u32>);

/// A host with a fixed `/etc/passwd`, recording the hostPath checks.
struct FakeHost {
    /// name or uid → (uid, gid)
    users: Vec<(&'static str, (u32, u32))>,
    bad_host_paths: Vec<&'static str>,
    checked: RefCell<Vec<(String, String)>>,
    /// Projected volumes written.
    written: RefCell<Vec<Written>>,
}

impl FakeHost {
    fn new() -> FakeHost {
        FakeHost {
            users: vec![
                ("", (0, 0)),
                ("0", (0, 0)),
                ("app", (1000, 1000)),
                ("1000", (1000, 1000)),
                ("2000", (2000, 2001)),
            ],
            bad_host_paths: vec![],
            checked: RefCell::new(vec![]),
            written: RefCell::new(vec![]),
        }
    }
}

impl Host for FakeHost {
    fn resolve_user(&self, _: &[PathBuf], user: &str) -> Result<(u32, u32), String> {
        self.users
            .iter()
            .find(|(u, _)| *u == user)
            .map(|(_, ids)| *ids)
            .ok_or_else(|| "no such user".to_string())
    }

    fn user_groups(&self, _: &[PathBuf], uid: u32) -> Vec<u32> {
        // The image's /etc/group lists user 1000 in group 50000.
        if uid == 1000 { vec![50000] } else { vec![] }
    }

    fn check_host_path(&self, path: &str, kind: &str) -> Result<(), String> {
        self.checked
            .borrow_mut()
            .push((path.to_string(), kind.to_string()));
        if self.bad_host_paths.contains(&path) {
            return Err(format!(
                "hostPath type check failed: {path} is not a directory"
            ));
        }
        Ok(())
    }

    fn node_memory_bytes(&self) -> i64 {
        4 << 30
    }

    fn node_cpu_millis(&self) -> i64 {
        4000
    }

    fn write_volume(
        &self,
        dir: &Path,
        files: &[crate::spec::refs::File],
        secret: bool,
        fs_group: Option<u32>,
    ) -> Result<(), String> {
        self.written
            .borrow_mut()
            .push((dir.to_path_buf(), files.to_vec(), secret, fs_group));
        Ok(())
    }

    fn resolve_sub_path(&self, root: &Path, sub: &str) -> Result<PathBuf, String> {
        Ok(root.join(sub))
    }
}

fn image(user: &str) -> ResolvedImage {
    ResolvedImage {
        reference: "picolet.test/busybox:1".into(),
        image_id: "sha256:1".into(),
        manifest_digest: "sha256:2".into(),
        config: ImageConfig {
            entrypoint: vec!["/bin/entry".into()],
            cmd: vec!["default".into()],
            env: vec!["PATH=/bin".into(), "A=image".into()],
            working_dir: "/srv".into(),
            user: user.into(),
            stop_signal: String::new(),
        },
        layers: vec![PathBuf::from("/layers/1")],
        architecture: "amd64".into(),
        os: "linux".into(),
    }
}

fn pod(yaml: &str) -> Pod {
    crate::spec::load_str(yaml, "test").pop().unwrap().unwrap()
}

fn build_one(
    p: &Pod,
    img: &ResolvedImage,
    host: &FakeHost,
) -> Result<ContainerConfig, ConfigError> {
    build_with(p, img, host, false)
}

fn build_with(
    p: &Pod,
    img: &ResolvedImage,
    host: &FakeHost,
    seccomp_default: bool,
) -> Result<ContainerConfig, ConfigError> {
    let paths = Paths {
        pod_dir: PathBuf::from("/state/pods/u1"),
        log_dir: PathBuf::from("/run/logs/c"),
        cgroup: None,
        run_pod_dir: PathBuf::from("/run/pods/u1"),
    };
    let s = Settings {
        node_name: "node-1".into(),
        host_ip: "192.168.1.20".into(),
        pod_ip: "10.87.0.7".into(),
        log_max_bytes: 1 << 20,
        log_max_files: 2,
        objects: Default::default(),
        seccomp_default,
        volumes_dir: PathBuf::from("/state/volumes"),
    };
    build(p, &p.spec.containers[0], 3, img, &paths, &s, host)
}

const BASIC: &str = "
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: c
    image: picolet.test/busybox:1
    args: [one, two]
    env: [{name: A, value: own}, {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}},
          {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}},
          {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}]
";

#[test]
fn args_replace_the_images_cmd_and_the_containers_env_wins_over_the_images() {
    let cfg = build_one(&pod(BASIC), &image(""), &FakeHost::new()).unwrap();
    assert_eq!(cfg.argv, ["/bin/entry", "one", "two"]);
    assert!(cfg.env.contains(&"A=own".to_string()), "{:?}", cfg.env);
    assert!(!cfg.env.contains(&"A=image".to_string()));
    assert!(cfg.env.contains(&"NODE=node-1".to_string()));
    assert!(cfg.env.contains(&"POD_IP=10.87.0.7".to_string()));
    assert!(cfg.env.contains(&"HOST_IP=192.168.1.20".to_string()));
    assert!(cfg.env.contains(&"HOSTNAME=web".to_string()));
    assert_eq!(cfg.cwd, "/srv");
    assert_eq!((cfg.uid, cfg.gid), (0, 0));
    // Unset allowPrivilegeEscalation: setuid programs work, as in Kubernetes.
    assert!(!cfg.no_new_privs);
    assert!(!cfg.privileged);
    // The /etc files, the termination message file of instance 3, then
    // its rootfs with its upper dir.
    let dests: Vec<&str> = cfg.mounts.iter().map(|m| m.destination.as_str()).collect();
    assert_eq!(
        dests,
        [
            "/etc/hostname",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/dev/termination-log"
        ]
    );
    assert_eq!(
        cfg.mounts[3].kind,
        MountKind::Bind {
            source: PathBuf::from("/state/pods/u1/containers/c/3/termination-log")
        }
    );
    assert_eq!(
        cfg.rootfs.target,
        PathBuf::from("/state/pods/u1/containers/c/3/rootfs")
    );
    assert!(cfg.rootfs.upper.is_some());
    assert_eq!(cfg.log_path, PathBuf::from("/run/logs/c/3.log"));
}

#[test]
fn run_as_user_takes_its_group_from_the_image_and_run_as_group_wins() {
    let host = FakeHost::new();
    let p = pod(&format!(
        "{BASIC}    securityContext: {{runAsUser: 2000}}\n"
    ));
    let cfg = build_one(&p, &image("app"), &host).unwrap();
    assert_eq!((cfg.uid, cfg.gid), (2000, 2001));
    let p = pod(&format!(
        "{BASIC}    securityContext: {{runAsUser: 2000, runAsGroup: 7}}\n"
    ));
    let cfg = build_one(&p, &image("app"), &host).unwrap();
    assert_eq!((cfg.uid, cfg.gid), (2000, 7));
    // The image's own user.
    let cfg = build_one(&pod(BASIC), &image("app"), &host).unwrap();
    assert_eq!((cfg.uid, cfg.gid), (1000, 1000));
}

#[test]
fn run_as_non_root_refuses_an_image_that_runs_as_root() {
    let p = pod(&format!(
        "{BASIC}    securityContext: {{runAsNonRoot: true}}\n"
    ));
    let e = build_one(&p, &image(""), &FakeHost::new()).unwrap_err();
    assert_eq!(e.reason, "CreateContainerConfigError");
    assert!(
        e.message
            .contains("runAsNonRoot and image will run as root"),
        "{e}"
    );
    // Not with a non-root image user.
    assert!(build_one(&p, &image("app"), &FakeHost::new()).is_ok());
}

#[test]
fn an_unknown_image_user_is_a_config_error_naming_the_user() {
    let e = build_one(&pod(BASIC), &image("nobody-here"), &FakeHost::new()).unwrap_err();
    assert_eq!(e.reason, "CreateContainerConfigError");
    assert_eq!(e.message, "image user \"nobody-here\": no such user");
}

#[test]
fn privileged_containers_may_gain_privileges_and_read_only_roots_have_no_upper() {
    let p = pod(&format!(
        "{BASIC}    securityContext: {{privileged: true, readOnlyRootFilesystem: true}}\n"
    ));
    let cfg = build_one(&p, &image(""), &FakeHost::new()).unwrap();
    assert!(cfg.privileged);
    assert!(!cfg.no_new_privs);
    assert!(cfg.rootfs.upper.is_none());
}

#[test]
fn only_allow_privilege_escalation_false_sets_no_new_privs() {
    for (sc, want) in [
        ("{}", false),
        ("{allowPrivilegeEscalation: true}", false),
        ("{allowPrivilegeEscalation: false}", true),
        ("{runAsNonRoot: true, runAsUser: 1000}", false),
    ] {
        let p = pod(&format!("{BASIC}    securityContext: {sc}\n"));
        let cfg = build_one(&p, &image(""), &FakeHost::new()).unwrap();
        assert_eq!(cfg.no_new_privs, want, "{sc}");
    }
}

const VOLUMES: &str = "
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  volumes:
  - {name: data, emptyDir: {}}
  - {name: host, hostPath: {path: /srv/host, type: Directory}}
  containers:
  - name: c
    image: picolet.test/busybox:1
    volumeMounts:
    - {name: data, mountPath: /data}
    - {name: host, mountPath: /host, readOnly: true}
";

#[test]
fn volume_mounts_bind_the_pod_volume_dir_or_the_checked_host_path() {
    let host = FakeHost::new();
    let cfg = build_one(&pod(VOLUMES), &image(""), &host).unwrap();
    let vols: Vec<(&str, bool)> = cfg.mounts[3..cfg.mounts.len() - 1]
        .iter()
        .map(|m| (m.destination.as_str(), m.read_only))
        .collect();
    assert_eq!(vols, [("/data", false), ("/host", true)]);
    let MountKind::Bind { source } = &cfg.mounts[3].kind else {
        panic!("not a bind")
    };
    assert_eq!(source, &PathBuf::from("/state/pods/u1/volumes/data"));
    assert_eq!(
        *host.checked.borrow(),
        [("/srv/host".to_string(), "Directory".to_string())]
    );
    // A hostPath that fails its check: CreateContainerError, with the volume.
    let mut host = FakeHost::new();
    host.bad_host_paths.push("/srv/host");
    let e = build_one(&pod(VOLUMES), &image(""), &host).unwrap_err();
    assert_eq!(e.reason, "CreateContainerError");
    assert!(
        e.message
            .starts_with("volume host: hostPath type check failed"),
        "{e}"
    );
}

#[test]
fn a_claim_volume_binds_its_directory_under_the_state_dir_created_if_missing() {
    let host = FakeHost::new();
    let mut p = pod(VOLUMES);
    p.metadata.namespace = "shop".into();
    p.spec.volumes[0] = crate::spec::Volume {
        name: "data".into(),
        persistent_volume_claim: Some(crate::spec::ClaimVolume {
            claim_name: "data-db-0".into(),
        }),
        ..Default::default()
    };
    let cfg = build_one(&p, &image(""), &host).unwrap();
    let MountKind::Bind { source } = &cfg.mounts[3].kind else {
        panic!("not a bind")
    };
    assert_eq!(source, &PathBuf::from("/state/volumes/shop/data-db-0"));
    assert_eq!(
        host.checked.borrow()[0],
        (
            "/state/volumes/shop/data-db-0".to_string(),
            "DirectoryOrCreate".to_string()
        )
    );
}

const PROJECTED: &str = "
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - name: c
    image: picolet.test/busybox:1
    env: [{name: SUB, value: logs}]
    volumeMounts:
    - {name: info, mountPath: /info}
    - {name: s, mountPath: /s}
    - {name: data, mountPath: /data, subPathExpr: 'x/$(SUB)'}
  volumes:
  - name: info
    downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
  - name: s
    secret: {secretName: creds, optional: true}
  - name: data
    emptyDir: {}
";

#[test]
fn projected_volumes_are_written_then_bound_read_only_and_sub_path_expr_is_expanded() {
    let host = FakeHost::new();
    let cfg = build_one(&pod(PROJECTED), &image(""), &host).unwrap();
    let vols: Vec<(&str, &Path, bool)> = cfg.mounts[3..cfg.mounts.len() - 1]
        .iter()
        .map(|m| {
            let MountKind::Bind { source } = &m.kind else {
                panic!("not a bind")
            };
            (m.destination.as_str(), source.as_path(), m.read_only)
        })
        .collect();
    assert_eq!(
        vols,
        [
            ("/info", Path::new("/state/pods/u1/volumes/info"), true),
            // Secret-bearing volumes live under the run dir (tmpfs).
            ("/s", Path::new("/run/pods/u1/volumes/s"), true),
            (
                "/data",
                Path::new("/state/pods/u1/volumes/data/x/logs"),
                false
            ),
        ]
    );
    let written = host.written.borrow();
    assert_eq!(written.len(), 2);
    assert_eq!(written[0].1[0].data, b"app=\"web\"");
    assert!(
        !written[0].2 && written[1].2,
        "only the secret volume is secret"
    );
    assert!(
        written[1].1.is_empty(),
        "an optional missing Secret is empty"
    );
}

#[test]
fn a_missing_volume_object_is_a_config_error_naming_the_volume() {
    let host = FakeHost::new();
    let p = pod(&PROJECTED.replace(", optional: true", ""));
    let e = build_one(&p, &image(""), &host).unwrap_err();
    assert_eq!(e.reason, "CreateContainerConfigError");
    assert_eq!(
        e.message,
        "MountVolume.SetUp failed for volume \"s\" : secret \"creds\" not found"
    );
}

#[test]
fn the_stop_signal_is_the_containers_else_the_images_else_sigterm() {
    use crate::lifecycle::container_config::stop_signal;
    let mut c = Container::default();
    assert_eq!(stop_signal(&c, ""), Ok(None));
    assert_eq!(stop_signal(&c, "SIGTERM"), Ok(None));
    assert_eq!(stop_signal(&c, "QUIT"), Ok(Some(3)));
    assert_eq!(stop_signal(&c, "SIGRTMIN+3"), Ok(Some(37)));
    c.lifecycle = Some(crate::spec::Lifecycle {
        stop_signal: Some("SIGUSR1".into()),
        ..Default::default()
    });
    assert_eq!(stop_signal(&c, "SIGQUIT"), Ok(Some(10)), "the spec wins");
    c.lifecycle = None;
    let e = stop_signal(&c, "SIGNOPE").unwrap_err();
    assert_eq!(e.reason, "CreateContainerError");
    assert!(e.message.contains("\"SIGNOPE\""), "{e}");
}

#[test]
fn the_pod_security_context_gives_defaults_groups_and_fs_group() {
    let p = pod(&format!(
        "{BASIC}  securityContext: {{runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, supplementalGroups: [4000, 3000], runAsNonRoot: true}}\n  \
         volumes: [{{name: cfg, downwardAPI: {{items: [{{path: l, fieldRef: {{fieldPath: metadata.labels}}}}]}}}}]\n"
    ).replace("    args: [one, two]\n", "    args: [one, two]\n    volumeMounts: [{name: cfg, mountPath: /cfg}]\n"));
    let host = FakeHost::new();
    let cfg = build_one(&p, &image(""), &host).unwrap();
    assert_eq!((cfg.uid, cfg.gid), (1000, 3000));
    // Primary gid, the image's membership, fsGroup, supplementalGroups.
    assert_eq!(cfg.groups, [3000, 50000, 2000, 4000]);
    assert_eq!(host.written.borrow()[0].3, Some(2000));
    // The container's own fields win.
    let p2 = pod(&format!(
        "{BASIC}    securityContext: {{runAsUser: 2000}}\n  securityContext: {{runAsUser: 1000, supplementalGroupsPolicy: Strict}}\n"
    ));
    let cfg = build_one(&p2, &image(""), &FakeHost::new()).unwrap();
    assert_eq!((cfg.uid, cfg.gid), (2000, 2001));
    assert_eq!(cfg.groups, [2001], "Strict: no image memberships");
    // runAsNonRoot from the pod applies to a root image user.
    let p3 = pod(&format!(
        "{BASIC}  securityContext: {{runAsNonRoot: true}}\n"
    ));
    let e = build_one(&p3, &image(""), &FakeHost::new()).unwrap_err();
    assert!(e.message.contains("runAsNonRoot"), "{e}");
}

#[test]
fn seccomp_comes_from_the_container_then_the_pod_then_the_node_default() {
    let host = FakeHost::new();
    let with = |pod_sc: &str, c_sc: &str, default: bool| {
        let mut y = BASIC.to_string();
        if !c_sc.is_empty() {
            y += &format!("    securityContext: {{seccompProfile: {{type: {c_sc}}}}}\n");
        }
        if !pod_sc.is_empty() {
            y += &format!("  securityContext: {{seccompProfile: {{type: {pod_sc}}}}}\n");
        }
        build_with(&pod(&y), &image(""), &host, default)
            .unwrap()
            .seccomp
    };
    // Kubernetes' default is Unconfined; --seccomp-default makes it RuntimeDefault.
    assert!(!with("", "", false));
    assert!(with("", "", true));
    assert!(with("RuntimeDefault", "", false));
    assert!(with("", "RuntimeDefault", false));
    assert!(!with("RuntimeDefault", "Unconfined", false));
    assert!(with("Unconfined", "RuntimeDefault", true));
    assert!(!with("Unconfined", "", true));
    // Privileged containers are never filtered.
    let p = pod(&format!(
        "{BASIC}    securityContext: {{privileged: true, seccompProfile: {{type: RuntimeDefault}}}}\n"
    ));
    assert!(!build_with(&p, &image(""), &host, true).unwrap().seccomp);
}
