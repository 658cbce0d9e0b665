//! Carrying out the lifecycle core's outputs: sandboxes, images,
//! containers, signals, probes, persistence and events.

use super::{Agent, Msg, container, probes, prune_logs, sandbox};
use crate::api::EventEntry;
use crate::lifecycle::{Input, Output};
use crate::reactor;
use crate::runtime::shim::proto::{self, PodConfig};
use std::path::PathBuf;

impl Agent {
    pub(super) fn on_output(&mut self, out: Output) {
        match out {
            // Started in order, a few at a time (`start_queued_sandboxes`).
            Output::CreateSandbox { uid } => self.shims.queue_start(uid),
            Output::EnsureImage {
                uid,
                container,
                image,
                policy,
            } => {
                let input = self.ensure_image(uid, container, &image, policy);
                self.pending.extend(input);
            }
            Output::StartContainer {
                uid,
                container,
                instance,
            } => self.start_container(uid, container, instance),
            Output::Signal {
                uid,
                container,
                instance,
                signal,
            } => {
                if let Some(conn) = self.shims.conn(&uid) {
                    conn.send(proto::Request::Signal {
                        name: container,
                        instance,
                        signal,
                    });
                }
            }
            Output::RunProbe {
                uid,
                container,
                instance,
                kind,
                probe,
                timeout_ms,
            } => self.run_probe(uid, container, instance, kind, probe, timeout_ms),
            Output::RemoveSandbox { uid } => {
                if self.shims.unqueue(&uid) {
                    // Never started (a lost shim may still be on its socket).
                    self.remove_without_conn(uid);
                    return;
                }
                let conn = self.shims.pods.get(&uid).and_then(|p| p.conn.clone());
                match conn {
                    Some(c) if c.send(proto::Request::Shutdown) => {
                        self.shims.rt(&uid).removing = true;
                    }
                    _ => self.remove_without_conn(uid),
                }
            }
            Output::AckExit {
                uid,
                container,
                instance,
            } => {
                // The exit must be on disk before the shim may forget it.
                self.persist();
                if let Some(conn) = self.shims.conn(&uid) {
                    conn.send(proto::Request::Ack {
                        name: container,
                        instance,
                    });
                }
            }
            Output::Persist => self.dirty = true,
            Output::StatusChanged { uid } => log::debug!("pod {uid}: status changed"),
            Output::Event {
                uid,
                kind,
                reason,
                message,
                involved,
            } => {
                let kind = format!("{kind:?}");
                let object = involved
                    .map_or_else(|| "pod".to_string(), |c| format!("spec.containers{{{c}}}"));
                let pod_name = self
                    .node
                    .pod(&uid)
                    .map(|p| p.spec.metadata.name.clone())
                    .unwrap_or_default();
                if kind == "Warning" {
                    log::warn!("{pod_name}: {reason}: {message}");
                } else {
                    log::info!("{pod_name}: {reason}: {message}");
                }
                if self.node.pod(&uid).is_none() {
                    return; // e.g. a refused adoption: nothing to describe
                }
                let rt = self.shims.rt(&uid);
                rt.events.push(EventEntry {
                    time_ms: crate::clock::wall_ms(),
                    kind,
                    reason,
                    message,
                    object,
                });
            }
            Output::PodRemoved { uid } => {
                self.shims.pods.remove(&uid);
                self.dirty = true;
            }
        }
    }

    /// Removes a pod the agent has no shim connection to. A shim may still
    /// listen on the pod's socket (it dropped the agent): it is stopped
    /// first, in a task, so that it does not outlive the pod.
    fn remove_without_conn(&mut self, uid: String) {
        let socket = self.cfg.state_dir.join("pods").join(&uid).join("shim.sock");
        if !socket.exists() {
            self.finish_remove(&uid);
            return;
        }
        let tx = self.tx.clone();
        reactor::spawn(async move {
            sandbox::stop_stray(&uid, &socket).await;
            let _ = tx.send(Msg::SandboxStopped { uid }).await;
        })
        .detach();
    }

    pub(super) fn create_sandbox(&mut self, uid: String) {
        let Some(view) = self.node.pod(&uid) else {
            return;
        };
        if self.shims.conn(&uid).is_some() {
            // `CreateSandbox` means "create, or adopt if it already runs"
            // (see `lifecycle::Output`). The agent is connected to this
            // pod's shim (adopted at start), yet the core asks for a
            // sandbox: it restored an older state (`state.bin.prev`) saved
            // while the sandbox was being created. The sandbox exists;
            // stopping its shim as a stray would kill the running
            // containers (tests/adoption.rs reproduces it under load).
            self.pending.push_back(Input::SandboxReady { uid });
            return;
        }
        let pod = view.spec.clone();
        let pod_dir = self.cfg.state_dir.join("pods").join(&uid);
        let cgroup = self.cgroups.root().and_then(|root| {
            let pod_cg = root
                .create_pod(&uid, &container::pod_resources(&pod, self.cfg.pids_max))
                .and_then(|p| root.create_shim(&p).map(|_| p));
            pod_cg
                .map_err(|e| log::warn!("pod {uid}: cgroup: {e}"))
                .ok()
        });
        let cfg = PodConfig {
            uid: uid.clone(),
            name: format!("{}/{}", pod.metadata.namespace, pod.metadata.name),
            pod_dir: pod_dir.clone(),
            hostname: pod
                .spec
                .hostname
                .clone()
                .unwrap_or_else(|| pod.metadata.name.clone()),
            host_network: pod.spec.host_network,
            share_pid: pod.spec.share_process_namespace,
            cgroup: cgroup.clone(),
            shim_log: self.cfg.run_dir.join("shims").join(format!("{uid}.log")),
            sysctls: pod
                .spec
                .security_context
                .iter()
                .flat_map(|sc| &sc.sysctls)
                .map(|s| format!("{}={}", crate::spec::sysctl_name(&s.name), s.value))
                .collect(),
        };
        self.shims.rt(&uid).cgroup = cgroup;
        // The address first: /etc/hosts names it.
        let pod_ip = match self.reserve_pod_ip(&uid, &pod) {
            Ok(ip) => ip,
            Err(message) => {
                self.pending
                    .push_back(Input::SandboxFailed { uid, message });
                return;
            }
        };
        let psc = pod.spec.security_context.clone().unwrap_or_default();
        let fs_group = psc.fs_group.map(|g| g as u32);
        let on_root_mismatch = psc.fs_group_change_policy.as_deref() == Some("OnRootMismatch");
        let prepared = (|| -> std::io::Result<PathBuf> {
            use std::os::unix::fs::PermissionsExt;
            std::fs::create_dir_all(self.cfg.run_dir.join("shims"))?;
            let (path, warnings) = sandbox::prepare_pod_dir(&cfg, &pod.spec, pod_ip.as_deref())?;
            for message in warnings {
                log::warn!("{}: DNSConfigForming: {message}", cfg.name);
                self.shims.rt(&uid).events.push(EventEntry {
                    time_ms: crate::clock::wall_ms(),
                    kind: "Warning".into(),
                    reason: "DNSConfigForming".into(),
                    message,
                    object: "pod".into(),
                });
            }
            for v in &pod.spec.volumes {
                if let Some(ed) = &v.empty_dir {
                    let dir = container::volume_dir(&pod_dir, &v.name);
                    if ed.medium == "Memory" {
                        let size = ed
                            .size_limit
                            .as_ref()
                            .and_then(|q| q.parsed().ok())
                            .map_or(0, |q| q.value().max(0) as u64);
                        sandbox::mount_tmpfs(&dir, size)?;
                    } else {
                        std::fs::create_dir_all(&dir)?;
                        // World-writable, as the kubelet makes emptyDirs.
                        std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o777))?;
                    }
                    if let Some(g) = fs_group {
                        container::set_volume_ownership(&dir, g, false, on_root_mismatch)?;
                    }
                }
            }
            Ok(path)
        })();
        let path = match prepared {
            Ok(p) => p,
            Err(e) => {
                self.pending.push_back(Input::SandboxFailed {
                    uid,
                    message: format!("preparing {}: {e}", pod_dir.display()),
                });
                return;
            }
        };
        let exe = self.cfg.exe.clone();
        let title = cfg.name.clone();
        let tx = self.tx.clone();
        let generation = self.shims.next_generation();
        self.shims.start_began();
        let socket = pod_dir.join("shim.sock");
        reactor::spawn(async move {
            // The core creates a sandbox only when it knows of none: a shim
            // still on the socket is one the agent lost (it dropped the
            // connection). Stop it, or the new one is refused ("socket in
            // use") and the old one lives on.
            sandbox::stop_stray(&uid, &socket).await;
            let msg = match sandbox::start_shim(&exe, &path, &title).await {
                Ok(()) => {
                    match sandbox::connect(&uid, &pod_dir.join("shim.sock"), generation, tx.clone())
                        .await
                    {
                        Ok(conn) => Msg::SandboxUp { uid, conn },
                        Err(e) => Msg::SandboxFailed {
                            uid,
                            message: format!("connecting to the shim: {e}"),
                        },
                    }
                }
                Err(message) => Msg::SandboxFailed { uid, message },
            };
            let _ = tx.send(msg).await;
        })
        .detach();
    }

    /// The answer to `EnsureImage`; `None` while it waits for the
    /// preload directory's imports ([`super::preload`]).
    pub(super) fn ensure_image(
        &mut self,
        uid: String,
        container: String,
        image: &str,
        policy: crate::spec::PullPolicy,
    ) -> Option<Input> {
        use crate::lifecycle::PullDecision;
        let present = match self.images.resolve(image) {
            Ok(r) => r,
            Err(e) => {
                return Some(Input::ImageFailed {
                    uid,
                    container,
                    reason: "InvalidImageName".into(),
                    message: e.to_string(),
                });
            }
        };
        let decision = crate::lifecycle::pull_decision(policy, present.is_some());
        if let (None, Some((_, waiting))) = (&present, self.preload.as_mut()) {
            waiting.push((uid, container, image.to_string(), policy));
            return None;
        }
        Some(match (decision, present) {
            (PullDecision::UseLocal, Some(img)) => Input::ImageReady {
                uid,
                container,
                image_id: img.image_id,
                pulled_ms: None,
            },
            (PullDecision::Pull, local) => self.want_pull(uid, container, image, local.is_some()),
            (PullDecision::NeverPullMissing, _) => Input::ImageFailed {
                uid,
                container,
                reason: "ErrImageNeverPull".into(),
                message: format!(
                    "Container image \"{image}\" is not present with pull policy of Never"
                ),
            },
            (PullDecision::UseLocal, None) => Input::ImageFailed {
                uid,
                container,
                reason: "ErrImageNeverPull".into(),
                message: format!("image {image} disappeared from the store"),
            },
        })
    }

    pub(super) fn start_container(&mut self, uid: String, name: String, instance: u64) {
        let fail = |reason: &str, message: String| Input::ContainerStartFailed {
            uid: uid.clone(),
            container: name.clone(),
            instance,
            reason: reason.to_string(),
            message,
        };
        // Idempotent: after a restart the core may re-issue a start that the
        // shim has already carried out.
        if let Some((i, started_at_ms)) =
            self.shims.pods.get(&uid).and_then(|p| p.running.get(&name))
        {
            if *i == instance {
                let started_at_ms = *started_at_ms;
                self.pending.push_back(Input::ContainerStarted {
                    uid,
                    container: name,
                    instance,
                    started_at_ms,
                });
                return;
            }
        }
        let Some(view) = self.node.pod(&uid) else {
            return;
        };
        let pod = view.spec.clone();
        let Some(c) = pod
            .spec
            .init_containers
            .iter()
            .chain(pod.spec.containers.iter())
            .find(|c| c.name == name)
            .cloned()
        else {
            return;
        };
        let img = match self.images.resolve(&c.image) {
            Ok(Some(i)) => {
                // For image GC: least recently used images go first.
                self.disk
                    .note_image_use(&i.manifest_digest, crate::clock::wall_ms());
                i
            }
            Ok(None) => {
                self.pending.push_back(fail(
                    "ErrImageNeverPull",
                    format!("image {} disappeared from the store", c.image),
                ));
                return;
            }
            Err(e) => {
                self.pending
                    .push_back(fail("InvalidImageName", e.to_string()));
                return;
            }
        };
        let pod_dir = self.cfg.state_dir.join("pods").join(&uid);
        let log_dir = container::log_dir(&self.cfg.run_dir, &pod, &uid, &name);
        let pod_cgroup = self.shims.pods.get(&uid).and_then(|p| p.cgroup.clone());
        // A pod with a cgroup never runs a container outside its own leaf:
        // without it the container would have neither its limits nor its
        // device allowlist.
        let privileged = c
            .security_context
            .as_ref()
            .is_some_and(|sc| sc.privileged == Some(true));
        let cgroup = match pod_cgroup.zip(self.cgroups.root()) {
            Some((pc, root)) => {
                let resources = container::container_resources(&c);
                match root.create_container(&pc, &name, &resources, privileged) {
                    Ok(dir) => Some(dir),
                    Err(e) => {
                        self.pending
                            .push_back(fail("CreateContainerError", format!("cgroup: {e}")));
                        return;
                    }
                }
            }
            None => None,
        };
        let host_ip = self.node.host_ip.clone().unwrap_or_default();
        let pod_ip = if pod.spec.host_network {
            host_ip.clone()
        } else {
            self.net
                .as_ref()
                .and_then(|n| n.pod_ip(&uid))
                .map_or_else(String::new, |ip| ip.to_string())
        };
        let settings = container::Settings {
            node_name: self.cfg.node_name.clone(),
            host_ip,
            pod_ip,
            log_max_bytes: self.cfg.log_max_bytes,
            log_max_files: self.cfg.log_max_files,
            objects: self.objects.clone(),
            seccomp_default: self.cfg.seccomp_default,
            volumes_dir: self.cfg.state_dir.join("volumes"),
        };
        let paths = container::Paths {
            pod_dir: pod_dir.clone(),
            run_pod_dir: self.cfg.run_dir.join("pods").join(&uid),
            log_dir: log_dir.clone(),
            cgroup,
        };
        let cfg = match container::build(&pod, &c, instance, &img, &paths, &settings) {
            Ok(cfg) => cfg,
            Err(e) => {
                self.pending.push_back(fail(e.reason, e.message));
                return;
            }
        };
        // envFrom keys that are not variable names: skipped, with the
        // kubelet's warning event.
        let ctx = crate::spec::EnvContext {
            objects: Some(&self.objects),
            ..Default::default()
        };
        if let Ok((_, warnings)) = crate::spec::env::env_from_vars(&pod, &c, &ctx) {
            for message in warnings {
                log::warn!(
                    "{}: InvalidEnvironmentVariableNames: {message}",
                    pod.metadata.name
                );
                self.shims.rt(&uid).events.push(EventEntry {
                    time_ms: crate::clock::wall_ms(),
                    kind: "Warning".into(),
                    reason: "InvalidEnvironmentVariableNames".into(),
                    message,
                    object: format!("spec.containers{{{}}}", c.name),
                });
            }
        }
        // Fresh dirs for this instance; older instances' rootfs and logs go.
        let prepared = (|| -> std::io::Result<()> {
            let cdir = pod_dir.join("containers").join(&name);
            if let Ok(rd) = std::fs::read_dir(&cdir) {
                for e in rd.flatten() {
                    if e.file_name()
                        .to_string_lossy()
                        .parse::<u64>()
                        .is_ok_and(|i| i < instance)
                    {
                        super::trash::discard(&self.cfg.state_dir, &e.path())?;
                    }
                }
            }
            let idir = container::instance_dir(&pod_dir, &name, instance);
            std::fs::create_dir_all(idir.join("rootfs"))?;
            container::create_termination_log(&idir)?;
            if let Some((u, w)) = &cfg.rootfs.upper {
                std::fs::create_dir_all(u)?;
                std::fs::create_dir_all(w)?;
            }
            std::fs::create_dir_all(&log_dir)?;
            prune_logs(&log_dir, instance);
            Ok(())
        })();
        if let Err(e) = prepared {
            self.pending.push_back(fail(
                "CreateContainerError",
                format!("preparing rootfs: {e}"),
            ));
            return;
        }
        match self.shims.conn(&uid) {
            Some(conn) if conn.send(proto::Request::Start(Box::new(cfg))) => {}
            _ => self.pending.push_back(fail(
                "CreateContainerError",
                "the pod's shim is not connected".into(),
            )),
        }
    }

    pub(super) fn run_probe(
        &mut self,
        uid: String,
        container: String,
        instance: u64,
        kind: crate::lifecycle::ProbeKind,
        probe: crate::spec::Probe,
        timeout_ms: u64,
    ) {
        let result = Input::ProbeResult {
            uid: uid.clone(),
            container: container.clone(),
            instance,
            kind,
            success: false,
            message: String::new(),
        };
        if let Some(exec) = &probe.exec {
            let id = self.shims.exec_id();
            match self.shims.conn(&uid) {
                Some(conn)
                    if conn.send(proto::Request::Exec {
                        id,
                        name: container,
                        argv: exec.command.clone(),
                        timeout_ms,
                        stdio: proto::ExecStdio::Capture,
                    }) =>
                {
                    self.shims.wait_probe_exec(id, &uid, Box::new(result));
                }
                _ => self.pending.push_back(result),
            }
            return;
        }
        let netns = self.shims.pods.get(&uid).and_then(|p| p.netns.clone());
        let host_network = self
            .node
            .pod(&uid)
            .is_some_and(|p| p.spec.spec.host_network);
        let spec_container = self.node.pod(&uid).and_then(|p| {
            p.spec
                .spec
                .containers
                .iter()
                .chain(p.spec.spec.init_containers.iter())
                .find(|c| c.name == container)
                .cloned()
        });
        let Some(c) = spec_container else { return };
        if netns.is_none() && !host_network {
            self.pending.push_back(result);
            return;
        }
        probes::spawn(self.tx.clone(), netns, c, probe, timeout_ms, result);
    }
}

impl Agent {
    /// After the ConfigMaps or Secrets changed: rewrites the files of every
    /// configMap/secret/projected volume already written (a `..data` link
    /// exists), atomically ([`super::projection`]). Volumes whose object
    /// is now missing keep their last files, as with the kubelet.
    pub(super) fn refresh_volumes(&mut self) {
        use crate::lifecycle::container_config::{allocatable, projected_dir};
        let alloc = allocatable(&container::RealHost);
        for view in self.node.pods() {
            let pod = &view.spec;
            let uid = &pod.metadata.uid;
            let pod_dir = self.cfg.state_dir.join("pods").join(uid);
            let run_pod_dir = self.cfg.run_dir.join("pods").join(uid);
            for v in &pod.spec.volumes {
                let dir = projected_dir(&pod_dir, &run_pod_dir, v);
                if std::fs::symlink_metadata(dir.join(super::projection::DATA_DIR)).is_err() {
                    continue;
                }
                match crate::spec::refs::volume_files(pod, v, &self.objects, &alloc) {
                    Some(Ok(files)) => {
                        let secret = crate::spec::refs::holds_secrets(v);
                        let fs_group = pod
                            .spec
                            .security_context
                            .as_ref()
                            .and_then(|s| s.fs_group)
                            .map(|g| g as u32);
                        if let Err(e) = container::write_volume(&dir, &files, secret, fs_group) {
                            log::warn!("pod {uid}: volume {}: {e}", v.name);
                        }
                    }
                    Some(Err(e)) => log::warn!("pod {uid}: volume {}: {e}", v.name),
                    None => {}
                }
            }
        }
    }
}
