//! Events from the pods' shims, fed to the lifecycle core.

use super::statefile::SandboxRecord;
use super::{Agent, sandbox};
use crate::clock::Now;
use crate::lifecycle::{Input, ProbeKind};
use crate::probe::NetNs;
use crate::runtime::shim::proto::Event;

impl Agent {
    #[inline(never)] // own stack frame: see docs/design-deviations.md §13
    pub(super) fn on_shim_event(&mut self, uid: String, generation: u64, event: Event) {
        if !self.shims.current(&uid, generation) {
            return;
        }
        let now = Now::read();
        let ms = |ns: i64| ns / 1_000_000;
        match event {
            Event::Hello {
                pid, start_time, ..
            } => {
                let rt = self.shims.rt(&uid);
                let rec = SandboxRecord { pid, start_time };
                if rt.record.is_some_and(|old| old != rec) {
                    log::warn!("pod {uid}: shim identity changed (pid reuse?)");
                }
                let host_network = self
                    .node
                    .pod(&uid)
                    .is_some_and(|p| p.spec.spec.host_network);
                rt.netns = if host_network {
                    None
                } else {
                    NetNs::of_pid(pid).ok().map(std::rc::Rc::new)
                };
                if rt.record != Some(rec) {
                    rt.record = Some(rec);
                    self.dirty = true;
                }
            }
            Event::Report { containers } => {
                for c in containers {
                    match c.exit {
                        None => {
                            self.shims
                                .rt(&uid)
                                .running
                                .insert(c.name.clone(), (c.instance, ms(c.started_at_ns)));
                            self.pending.push_back(Input::ContainerStarted {
                                uid: uid.clone(),
                                container: c.name,
                                instance: c.instance,
                                started_at_ms: ms(c.started_at_ns),
                            });
                        }
                        Some(exit) => {
                            let input =
                                self.exited(&uid, c.name, c.instance, c.started_at_ns, exit);
                            self.pending.push_back(input);
                        }
                    }
                }
            }
            Event::Started {
                name,
                instance,
                started_at_ns,
                ..
            } => {
                self.shims
                    .rt(&uid)
                    .running
                    .insert(name.clone(), (instance, ms(started_at_ns)));
                self.node.handle(
                    Input::ContainerStarted {
                        uid,
                        container: name,
                        instance,
                        started_at_ms: ms(started_at_ns),
                    },
                    now,
                );
            }
            Event::StartFailed {
                name,
                instance,
                reason,
                message,
            } => self.node.handle(
                Input::ContainerStartFailed {
                    uid,
                    container: name,
                    instance,
                    reason,
                    message,
                },
                now,
            ),
            Event::Exited {
                name,
                instance,
                started_at_ns,
                exit,
            } => {
                if let Some(rt) = self.shims.pods.get_mut(&uid) {
                    if rt.running.get(&name).is_some_and(|r| r.0 == instance) {
                        rt.running.remove(&name);
                    }
                }
                let input = self.exited(&uid, name, instance, started_at_ns, exit);
                self.node.handle(input, now);
            }
            Event::ExecDone {
                id,
                exit_code,
                timed_out,
                output,
                not_started,
            } => {
                if let Some(input) = self.shims.probe_exec_done(id) {
                    let mut input = *input;
                    if let Input::ProbeResult {
                        success,
                        message,
                        kind,
                        ..
                    } = &mut input
                    {
                        *success = exit_code == 0 && !timed_out;
                        let hook = matches!(kind, ProbeKind::PostStart | ProbeKind::PreStop);
                        *message = if timed_out {
                            "command timed out".into()
                        } else if hook && exit_code != 0 {
                            // As the kubelet's hook error puts it.
                            let out = output.trim_end();
                            format!("command exited with {exit_code}: , message: {out:?}")
                        } else {
                            // The command's output is the message (as
                            // kubelet's); its final newline would end the
                            // event, and the agent's log line, in a blank row.
                            output.trim_end().chars().take(1024).collect()
                        };
                    }
                    self.node.handle(input, now);
                } else {
                    self.api.exec_done(id, exit_code, output, not_started);
                }
            }
        }
    }

    #[inline(never)] // own stack frame: see docs/design-deviations.md §13
    pub(super) fn on_shim_closed(&mut self, uid: String, generation: u64) {
        if !self.shims.current(&uid, generation) {
            return;
        }
        // A probe's result is moot with its sandbox gone (none is
        // delivered); a CLI is told.
        self.shims.drop_probe_execs(&uid);
        self.api.shim_gone(&uid);
        let removing = self.shims.pods.get(&uid).is_some_and(|p| p.removing);
        if let Some(rt) = self.shims.pods.get_mut(&uid) {
            rt.conn = None;
            rt.netns = None;
            rt.running.clear();
        }
        if removing {
            self.finish_remove(&uid);
        } else {
            log::warn!("pod {uid}: lost its shim");
            if let Some(rt) = self.shims.pods.get_mut(&uid) {
                rt.record = None;
            }
            self.dirty = true;
            self.node.handle(Input::SandboxGone { uid }, Now::read());
        }
    }

    #[inline(never)] // own stack frame: see docs/design-deviations.md §13
    pub(super) fn finish_remove(&mut self, uid: &str) {
        self.unwire_pod(uid);
        let dir = self.cfg.state_dir.join("pods").join(uid);
        if let Err(e) = sandbox::remove_pod_dir(&self.cfg.state_dir, &dir) {
            log::warn!("pod {uid}: removing {}: {e}", dir.display());
        }
        // Secret volumes: their tmpfs goes, and the files with it.
        let run_dir = self.cfg.run_dir.join("pods").join(uid);
        if run_dir.exists() {
            if let Err(e) = sandbox::remove_run_pod_dir(&run_dir) {
                log::warn!("pod {uid}: removing {}: {e}", run_dir.display());
            }
        }
        let shim = self.shims.pods.get(uid).and_then(|p| p.record);
        let cgroup = self.shims.pods.get_mut(uid).and_then(|p| p.cgroup.take());
        if let Some(cg) = cgroup {
            self.remove_pod_cgroup(uid, cg, shim);
        }
        if let Some(rt) = self.shims.pods.get_mut(uid) {
            rt.removing = false;
            rt.record = None;
            rt.cgroup = None;
        }
        self.dirty = true;
        self.node.handle(
            Input::SandboxRemoved {
                uid: uid.to_string(),
            },
            Now::read(),
        );
    }
}
