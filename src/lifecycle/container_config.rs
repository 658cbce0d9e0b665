//! The Kubernetes rules that turn a container's spec and its image into the
//! fully resolved [`ContainerConfig`] that the shim executes. Pure: what
//! needs the host (the image's `/etc/passwd`, a hostPath's type, the node's
//! memory) is asked of a [`Host`]; the agent's is `agent::container`.
//!
//! Rules applied here: command/args against the image's Entrypoint/Cmd, env
//! (image env, then the container's, with `valueFrom.fieldRef` and `$(VAR)`
//! expansion), working dir, the user (`runAsUser`/`runAsGroup` over the
//! image's `User`), `runAsNonRoot`, capabilities, `no_new_privs`, the
//! volume mounts, the rootfs layout, `oom_score_adj`, and the cgroup
//! resources of a container and a pod.

use crate::image::{self, ResolvedImage};
use crate::runtime::cgroup::{ContainerResources, PidsMax, PodResources};
use crate::runtime::security;
use crate::runtime::shim::proto::{ContainerConfig, Mount, MountKind, Rootfs};
use crate::spec::{self, Container, Pod};
use std::path::{Path, PathBuf};

/// What the rules need from the host.
pub trait Host {
    /// The uid and gid of `user` (a name, `uid`, or `uid:gid`) in the
    /// image whose layers are `layers` (top-most first).
    fn resolve_user(&self, layers: &[PathBuf], user: &str) -> Result<(u32, u32), String>;
    /// The gids of the groups whose `/etc/group` member lists name the
    /// user `uid` (its `/etc/passwd` name) in the image.
    fn user_groups(&self, layers: &[PathBuf], uid: u32) -> Vec<u32>;
    /// Checks (and for the `*OrCreate` types, creates) a hostPath of
    /// `kind` (the Kubernetes `hostPath.type`; empty: no check).
    fn check_host_path(&self, path: &str, kind: &str) -> Result<(), String>;
    /// The node's memory in bytes (`MemTotal`).
    fn node_memory_bytes(&self) -> i64;
    /// The node's CPUs in millicores.
    fn node_cpu_millis(&self) -> i64;
    /// Writes the files of a configMap/secret/downwardAPI/projected volume
    /// into `dir` (on a tmpfs when `secret`), atomically; with `fs_group`,
    /// owned by that group as the kubelet does.
    fn write_volume(
        &self,
        dir: &Path,
        files: &[spec::refs::File],
        secret: bool,
        fs_group: Option<u32>,
    ) -> Result<(), String>;
    /// Resolves a `subPath` inside the volume at `root`, refusing escapes
    /// (the kubelet's checks); creates it as a directory when missing.
    fn resolve_sub_path(&self, root: &Path, sub: &str) -> Result<PathBuf, String>;
}

/// Why a container could not be configured; `reason` is the Kubernetes
/// waiting reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    pub reason: &'static str,
    pub message: String,
}

fn config_err(message: String) -> ConfigError {
    ConfigError {
        reason: "CreateContainerConfigError",
        message,
    }
}

fn create_err(message: String) -> ConfigError {
    ConfigError {
        reason: "CreateContainerError",
        message,
    }
}

/// Node-wide settings the builder needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node_name: String,
    pub host_ip: String,
    /// `status.podIP` (the host's address with `hostNetwork`).
    pub pod_ip: String,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    /// The ConfigMaps and Secrets pods may read.
    pub objects: std::rc::Rc<spec::Objects>,
    /// `RuntimeDefault` seccomp when no `seccompProfile` is set (the
    /// kubelet's `--seccomp-default`).
    pub seccomp_default: bool,
    /// `<state-dir>/volumes`: the StatefulSets' claim directories.
    pub volumes_dir: PathBuf,
}

/// The directory of the claim `claim` (a StatefulSet's
/// `<template>-<set>-<ordinal>`) of `namespace` under `volumes_dir`.
pub fn claim_dir(volumes_dir: &Path, namespace: &str, claim: &str) -> PathBuf {
    volumes_dir.join(namespace).join(claim)
}

/// Paths of one container instance.
#[derive(Debug, Clone)]
pub struct Paths {
    pub pod_dir: PathBuf,
    /// The pod's directory under the run dir (Secret volumes' tmpfs).
    pub run_pod_dir: PathBuf,
    pub log_dir: PathBuf,
    pub cgroup: Option<PathBuf>,
}

/// The directory holding one instance's upper/work/rootfs dirs.
pub fn instance_dir(pod_dir: &Path, container: &str, instance: u64) -> PathBuf {
    pod_dir
        .join("containers")
        .join(container)
        .join(instance.to_string())
}

/// The host file of an instance's termination message (in its
/// [`instance_dir`]).
pub fn termination_log(instance_dir: &Path) -> PathBuf {
    instance_dir.join("termination-log")
}

/// The directory of a pod volume.
pub fn volume_dir(pod_dir: &Path, volume: &str) -> PathBuf {
    pod_dir.join("volumes").join(volume)
}

/// Where the files of a configMap/secret/downwardAPI/projected volume
/// live: Secret-bearing volumes on a tmpfs under the run dir, the others
/// beside the pod's other volumes.
pub fn projected_dir(pod_dir: &Path, run_pod_dir: &Path, v: &spec::Volume) -> PathBuf {
    if spec::refs::holds_secrets(v) {
        volume_dir(run_pod_dir, &v.name)
    } else {
        volume_dir(pod_dir, &v.name)
    }
}

/// The node's allocatable resources, as `resourceFieldRef` sees them.
pub fn allocatable(host: &dyn Host) -> spec::refs::Allocatable {
    spec::refs::Allocatable {
        cpu_millis: host.node_cpu_millis(),
        memory_bytes: host.node_memory_bytes(),
        ephemeral_bytes: 0,
    }
}

/// Builds the config for instance `instance` of container `c` of `pod`.
pub fn build(
    pod: &Pod,
    c: &Container,
    instance: u64,
    img: &ResolvedImage,
    paths: &Paths,
    s: &Settings,
    host: &dyn Host,
) -> Result<ContainerConfig, ConfigError> {
    let sc = c.security_context.clone().unwrap_or_default();
    let psc = pod.spec.security_context.clone().unwrap_or_default();
    let privileged = sc.privileged == Some(true);
    // The pod's runAsUser/runAsGroup/runAsNonRoot are the defaults.
    let run_as_user = sc.run_as_user.or(psc.run_as_user);
    let run_as_group = sc.run_as_group.or(psc.run_as_group);
    let fs_group = psc.fs_group.map(|g| g as u32);

    // Environment: the image's, then the container's own (fieldRef and
    // $(VAR) resolved); command/args by the Kubernetes rules.
    let alloc = allocatable(host);
    let ctx = spec::EnvContext {
        pod_ip: &s.pod_ip,
        host_ip: &s.host_ip,
        node_name: &s.node_name,
        objects: Some(&s.objects),
        alloc,
    };
    let own = spec::container_env(pod, c, &ctx).map_err(|e| config_err(e.to_string()))?;
    let env_bytes: usize = own.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    if env_bytes > spec::validate::MAX_ARGV_ENV_BYTES {
        return Err(config_err(format!(
            "the environment takes {env_bytes} bytes, must be no more than {}",
            spec::validate::MAX_ARGV_ENV_BYTES
        )));
    }
    let own_env: Vec<String> = own.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut env = image::merge_env(&img.config.env, &own_env);
    let hostname = pod
        .spec
        .hostname
        .clone()
        .unwrap_or_else(|| pod.metadata.name.clone());
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.push(format!("HOSTNAME={hostname}"));
    }
    let argv = spec::container_argv(c, &own, &img.config.entrypoint, &img.config.cmd)
        .map_err(|e| create_err(e.message.clone()))?;

    // User.
    let image_user = img.config.user.clone();
    let (mut uid, mut gid) = host
        .resolve_user(&img.layers, &image_user)
        .map_err(|e| config_err(format!("image user {image_user:?}: {e}")))?;
    if let Some(u) = run_as_user {
        uid = u32::try_from(u).map_err(|_| config_err(format!("runAsUser {u} out of range")))?;
        if run_as_group.is_none() {
            gid = host
                .resolve_user(&img.layers, &uid.to_string())
                .map(|(_, g)| g)
                .unwrap_or(0);
        }
    }
    if let Some(g) = run_as_group {
        gid = u32::try_from(g).map_err(|_| config_err(format!("runAsGroup {g} out of range")))?;
    }
    if sc.run_as_non_root.or(psc.run_as_non_root) == Some(true) && uid == 0 {
        return Err(config_err(format!(
            "container has runAsNonRoot and image will run as root (pod: \"{}_{}({})\", container: {})",
            pod.metadata.name, pod.metadata.namespace, pod.metadata.uid, c.name
        )));
    }

    // Supplementary groups as containerd sets them: the primary gid, the
    // image's memberships (unless `supplementalGroupsPolicy: Strict`), then
    // the kubelet's fsGroup and supplementalGroups.
    let image_groups = if psc.supplemental_groups_policy.as_deref() == Some("Strict") {
        Vec::new()
    } else {
        host.user_groups(&img.layers, uid)
    };
    let mut groups = vec![gid];
    let more = psc.supplemental_groups.iter().map(|&g| g as u32);
    for g in image_groups.into_iter().chain(fs_group).chain(more) {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }

    let caps = sc.capabilities.clone().unwrap_or_default();
    let capabilities = security::capability_set(&caps.add, &caps.drop, privileged)
        .map_err(|e| config_err(e.to_string()))?;
    // The kubelet's rule: only an explicit `allowPrivilegeEscalation: false`
    // sets it (validation refuses that with `privileged`), so setuid
    // programs work by default.
    let no_new_privs = !privileged && sc.allow_privilege_escalation == Some(false);
    // The container's seccompProfile, else the pod's, else the node's
    // default; privileged containers run unconfined (as with containerd).
    let profile = sc.seccomp_profile.as_ref().or(psc.seccomp_profile.as_ref());
    let seccomp = !privileged
        && profile.map_or(s.seccomp_default, |p| {
            p.get("type").map(String::as_str) == Some("RuntimeDefault")
        });

    // Mounts: /etc files first, then volumes.
    let mut mounts = Vec::new();
    for f in ["hostname", "hosts", "resolv.conf"] {
        mounts.push(Mount {
            destination: format!("/etc/{f}"),
            kind: MountKind::Bind {
                source: paths.pod_dir.join(f),
            },
            read_only: false,
        });
    }
    for vm in &c.volume_mounts {
        let vol = pod
            .spec
            .volumes
            .iter()
            .find(|v| v.name == vm.name)
            .ok_or_else(|| config_err(format!("volumeMount {}: no such volume", vm.name)))?;
        let projected = spec::refs::volume_files(pod, vol, &s.objects, &alloc);
        let source = if let Some(hp) = &vol.host_path {
            host.check_host_path(&hp.path, hp.kind.as_deref().unwrap_or(""))
                .map_err(|m| create_err(format!("volume {}: {m}", vol.name)))?;
            PathBuf::from(&hp.path)
        } else if let Some(c) = &vol.persistent_volume_claim {
            let dir = claim_dir(&s.volumes_dir, &pod.metadata.namespace, &c.claim_name);
            host.check_host_path(&dir.to_string_lossy(), "DirectoryOrCreate")
                .map_err(|m| create_err(format!("volume {}: {m}", vol.name)))?;
            dir
        } else if let Some(files) = &projected {
            let files = files.as_ref().map_err(|m| {
                config_err(format!(
                    "MountVolume.SetUp failed for volume {:?} : {m}",
                    vol.name
                ))
            })?;
            let dir = projected_dir(&paths.pod_dir, &paths.run_pod_dir, vol);
            host.write_volume(&dir, files, spec::refs::holds_secrets(vol), fs_group)
                .map_err(|m| config_err(format!("volume {:?}: {m}", vol.name)))?;
            dir
        } else {
            volume_dir(&paths.pod_dir, &vol.name)
        };
        // subPath, or subPathExpr expanded from the container's own env.
        let sub = if !vm.sub_path_expr.is_empty() {
            let lookup = |n: &str| {
                own.iter()
                    .rev()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
            };
            spec::expand(&vm.sub_path_expr, lookup)
        } else {
            vm.sub_path.clone()
        };
        let source = if sub.is_empty() {
            source
        } else {
            host.resolve_sub_path(&source, &sub).map_err(|m| {
                config_err(format!(
                    "failed to prepare subPath for volumeMount {:?} of container {:?}: {m}",
                    vm.name, c.name
                ))
            })?
        };
        mounts.push(Mount {
            destination: vm.mount_path.clone(),
            kind: MountKind::Bind { source },
            // These volume kinds are always read-only, as in Kubernetes.
            read_only: vm.read_only || projected.is_some(),
        });
    }

    let dir = instance_dir(&paths.pod_dir, &c.name, instance);
    // The termination message: a host file of this instance (the agent
    // creates it, mode 0666 as the kubelet's) bind-mounted at the path.
    mounts.push(Mount {
        destination: c.termination_message_path().to_string(),
        kind: MountKind::Bind {
            source: termination_log(&dir),
        },
        read_only: false,
    });
    let read_only_root = sc.read_only_root_filesystem == Some(true);
    let rootfs = Rootfs {
        layers: img.layers.clone(),
        upper: (!read_only_root).then(|| (dir.join("upper"), dir.join("work"))),
        target: dir.join("rootfs"),
    };
    let cwd = c
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| Some(img.config.working_dir.clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());

    Ok(ContainerConfig {
        name: c.name.clone(),
        instance,
        rootfs,
        argv,
        env,
        cwd,
        uid,
        gid,
        groups,
        capabilities,
        no_new_privs,
        seccomp,
        privileged,
        mounts,
        cgroup: paths.cgroup.clone(),
        log_path: paths.log_dir.join(format!("{instance}.log")),
        log_max_bytes: s.log_max_bytes,
        log_max_files: s.log_max_files,
        oom_score_adj: Some(crate::lifecycle::oom_score_adj(
            pod,
            c,
            host.node_memory_bytes(),
        )),
        stop_signal: stop_signal(c, &img.config.stop_signal)?,
    })
}

/// `lifecycle.stopSignal`, else the image's `STOPSIGNAL`; `None`: SIGTERM.
pub fn stop_signal(c: &Container, image: &str) -> Result<Option<i32>, ConfigError> {
    let given = c.lifecycle.as_ref().and_then(|l| l.stop_signal.as_deref());
    let Some(name) = given.or(Some(image).filter(|s| !s.is_empty())) else {
        return Ok(None);
    };
    match spec::signal_number(name) {
        Some(15) => Ok(None),
        Some(n) => Ok(Some(n)),
        None => Err(create_err(format!(
            "the image's STOPSIGNAL {name:?} is not a signal"
        ))),
    }
}

/// A container's cgroup resources, from its spec.
pub fn container_resources(c: &Container) -> ContainerResources {
    let u = |v: Option<i64>| v.map(|v| v.max(0) as u64);
    ContainerResources {
        cpu_request_millis: u(c.resources.cpu_request_millis()),
        cpu_limit_millis: u(c.resources.cpu_limit_millis()),
        memory_limit_bytes: u(c.resources.memory_limit_bytes()),
    }
}

/// A pod's cgroup resources, from its spec and the node's `pids.max`.
pub fn pod_resources(pod: &Pod, pids_max: Option<u64>) -> PodResources {
    PodResources {
        containers: pod
            .spec
            .containers
            .iter()
            .map(container_resources)
            .collect(),
        init_containers: pod
            .spec
            .init_containers
            .iter()
            .map(container_resources)
            .collect(),
        pids_max: pids_max.map_or(PidsMax::Max, PidsMax::Limit),
    }
}

#[cfg(test)]
#[path = "container_config_tests.rs"]
mod tests;
