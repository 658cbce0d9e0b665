//! `rollout status|history|undo|restart` of a Deployment, as kubectl's.
//!
//! `undo` and `restart` cannot write the Deployment back to its source (a
//! manifest file, the fleet's document): they set a local override of
//! the source's template ([`super::Override`]), kept in the state file,
//! which holds until the source's template changes.

use super::{Override, PodTemplate, RESTARTED_AT, State, current, current_hash, observe};
use crate::clock::Now;
use crate::spec::workload::deployment::DeploymentSpec;
use crate::spec::workload::{WorkloadKey, WorkloadKind, WorkloadSpec, template_hash};
use crate::workloads::{Entry, PodObs, State as AnyState, Workloads};

fn not_found(key: &WorkloadKey) -> String {
    format!(
        "{}s.apps {:?} not found in namespace {:?}",
        key.kind.name().to_ascii_lowercase(),
        key.name,
        key.namespace
    )
}

/// `rollout history` as kubectl prints it.
pub fn history_text(key: &WorkloadKey, revisions: &[(i64, String)]) -> String {
    let mut t = format!(
        "{}/{} \nREVISION  CHANGE-CAUSE\n",
        key.kind.resource(),
        key.name
    );
    for (n, cause) in revisions {
        let cause = if cause.is_empty() { "<none>" } else { cause };
        t.push_str(&format!("{n:<10}{cause}\n"));
    }
    t
}

fn deployment<'a>(
    e: Option<&'a Entry>,
    key: &WorkloadKey,
) -> Result<(&'a DeploymentSpec, &'a State), String> {
    if key.kind != WorkloadKind::Deployment {
        return Err(format!("rollout of a {} is not supported", key.kind.name()));
    }
    match e {
        Some(Entry {
            workload: w,
            state: AnyState::Deployment(st),
            ..
        }) => match &w.spec {
            WorkloadSpec::Deployment(s) => Ok((s, st)),
            _ => Err(not_found(key)),
        },
        _ => Err(not_found(key)),
    }
}

impl Workloads {
    /// `rollout history`: (revision, change-cause), oldest first.
    pub fn rollout_history(&self, key: &WorkloadKey) -> Result<Vec<(i64, String)>, String> {
        let (_, st) = deployment(self.entries.get(key), key)?;
        Ok(st
            .revisions
            .iter()
            .map(|r| (r.number, r.change_cause.clone()))
            .collect())
    }

    /// `rollout status`: kubectl's line, and whether the rollout is done;
    /// an error when it failed (past its deadline, rolled back).
    pub fn rollout_status(
        &self,
        key: &WorkloadKey,
        pods: &[PodObs],
        now: Now,
    ) -> Result<(String, bool), String> {
        let e = self.entries.get(key);
        let (spec, st) = deployment(e, key)?;
        let e = e.ok_or_else(|| not_found(key))?;
        let owned: Vec<PodObs> = pods
            .iter()
            .filter(|p| self.claims(e, &p.owner_uid))
            .cloned()
            .collect();
        let hash = current_hash(spec, st);
        let new = st.revisions.iter().position(|r| r.hash == hash);
        let min_ready = spec.min_ready_seconds as u64 * 1000;
        let (_, c) = observe(st, &owned, new, min_ready, now.mono_ms);
        let name = &key.name;
        match st.progressing.as_ref().map(|c| c.reason.as_str()) {
            Some("ProgressDeadlineExceeded") => {
                return Err(format!(
                    "deployment {name:?} exceeded its progress deadline"
                ));
            }
            Some("RolledBack") => {
                let msg = st.progressing.as_ref().map_or("", |c| c.message.as_str());
                return Err(format!("deployment {name:?} rolled back: {msg}"));
            }
            _ => {}
        }
        let wait = format!("Waiting for deployment {name:?} rollout to finish: ");
        Ok(if spec.paused && new.is_none() {
            (format!("{wait}the deployment is paused"), false)
        } else if c.updated < spec.replicas {
            (
                format!(
                    "{wait}{} out of {} new replicas have been updated...",
                    c.updated, spec.replicas
                ),
                false,
            )
        } else if c.replicas > c.updated {
            (
                format!(
                    "{wait}{} old replicas are pending termination...",
                    c.replicas - c.updated
                ),
                false,
            )
        } else if c.available < c.updated {
            (
                format!(
                    "{wait}{} of {} updated replicas are available...",
                    c.available, c.updated
                ),
                false,
            )
        } else {
            (format!("deployment {name:?} successfully rolled out"), true)
        })
    }

    /// `rollout undo [--to-revision N]` (`to`: `None` or `Some(0)`: the
    /// previous revision).
    pub fn rollout_undo(
        &mut self,
        key: &WorkloadKey,
        to: Option<i64>,
        now: Now,
    ) -> Result<String, String> {
        let (spec, st) = deployment(self.entries.get(key), key)?;
        let name = &key.name;
        if spec.paused {
            return Err(format!(
                "you cannot rollback a paused deployment; resume it first (spec.paused of deployment {name:?}) and try again"
            ));
        }
        let rev = match to.filter(|&n| n != 0) {
            Some(n) if n < 0 => return Err(format!("invalid revision {n}: must be >= 0")),
            Some(n) => st
                .revisions
                .iter()
                .find(|r| r.number == n)
                .ok_or_else(|| format!("unable to find specified revision {n} in history"))?,
            None => {
                let n = st.revisions.len();
                if n < 2 {
                    return Err(format!("no rollout history found for deployment {name:?}"));
                }
                &st.revisions[n - 2]
            }
        };
        let res = format!("deployment.apps/{name}");
        if rev.hash == current_hash(spec, st) {
            return Ok(format!(
                "{res} skipped rollback (current template already matches revision {})",
                rev.number
            ));
        }
        let over = (rev.hash != spec.template.hash).then(|| Override {
            source: spec.template.hash.clone(),
            hash: rev.hash.clone(),
            template: rev.template.clone(),
            change_cause: rev.change_cause.clone(),
            auto: false,
        });
        self.set_override(key, over.map(Box::new), now);
        Ok(format!("{res} rolled back"))
    }

    /// `rollout restart`: the template gets `kubectl.kubernetes.io/restartedAt`,
    /// which makes a new revision.
    pub fn rollout_restart(&mut self, key: &WorkloadKey, now: Now) -> Result<String, String> {
        let e = self.entries.get(key);
        let (spec, st) = deployment(e, key)?;
        if spec.paused {
            return Err("can't restart paused deployment (resume it first)".into());
        }
        let meta = &e.ok_or_else(|| not_found(key))?.workload.metadata;
        let (t, cause) = current(spec, st, meta);
        let mut pod = t.pod.clone();
        pod.metadata
            .annotations
            .insert(RESTARTED_AT.into(), crate::clock::rfc3339(now.wall_ms));
        let t = PodTemplate {
            hash: template_hash(&pod),
            pod,
        };
        let over = Override {
            source: spec.template.hash.clone(),
            hash: t.hash.clone(),
            template: serde_json::to_string(&t.pod).map_err(|e| e.to_string())?,
            change_cause: cause,
            auto: false,
        };
        self.set_override(key, Some(Box::new(over)), now);
        Ok(format!("deployment.apps/{} restarted", key.name))
    }

    fn set_override(&mut self, key: &WorkloadKey, over: Option<Box<Override>>, now: Now) {
        if let Some(Entry {
            state: AnyState::Deployment(st),
            ..
        }) = self.entries.get_mut(key)
        {
            // A rollback's condition gives way to the new rollout.
            if st.over.as_ref().is_some_and(|o| o.auto) {
                st.progressing = None;
            }
            st.over = over;
            self.dirty = true;
            self.wake = Some(now.mono_ms);
        }
    }
}
