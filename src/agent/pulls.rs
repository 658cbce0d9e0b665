//! Registry pulls for the lifecycle core's `EnsureImage`: the agent runs
//! `picolet pull REF --store <state>/images` (a helper process: HTTP, TLS,
//! hashing and unpacking never run on the agent's thread) and reads the
//! JSON lines it prints on the reactor (docs/images.md, "The helper's
//! protocol"). One pull per image reference and credential set, shared by
//! every container waiting for it; at most [`MAX_PULLS`] at once, the
//! others queued in order. Progress goes to the core at most once a second
//! per pull (the waiting message); the end answers every waiting container.
//!
//! The helper inherits the agent's environment: `PICOLET_AUTH_FILE` and
//! `PICOLET_REGISTRIES_CONFIG` (else `/etc/picolet/auth.json` and
//! `/etc/picolet/registries.yaml`). A pod's `imagePullSecrets` go to it in
//! a 0600 file under the run dir, before the node's file, removed when the
//! helper ends; so do the fleet documents' merged `registries` blocks
//! (`pull-registries-<id>.json`, before the node's registries file: the
//! helper merges them per registry host key, docs/images.md).

use super::{Agent, Msg};
use crate::image::registry::auth::{AuthFile, DEFAULT_AUTH_FILE};
use crate::image::registry::config::DEFAULT_REGISTRIES;
use crate::lifecycle::Input;
use crate::reactor;
use crate::spec::{ObjectKind, ObjectRef, Objects};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Pulls running at once.
pub(super) const MAX_PULLS: usize = 2;
/// Progress reports per pull to the core: at most one per this.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What a pull helper reported.
#[derive(Debug)]
pub enum PullMsg {
    /// Of the pull with this id.
    Progress { id: u64, done: u64, total: u64 },
    /// `Ok(size)`, or `Err((kind, message))` as the helper's `error` line.
    Done {
        id: u64,
        result: Result<u64, (String, String)>,
    },
}

/// A container waiting for an image.
#[derive(Debug)]
struct Waiter {
    uid: String,
    container: String,
    /// Mono ms when it asked.
    asked_ms: u64,
    /// The image was in the store when it asked (`Always`): used if the
    /// registry cannot be reached.
    local: bool,
}

/// One pull: an image with one credential set. No `Debug`: it holds
/// credentials.
struct Pull {
    id: u64,
    image: String,
    /// The pod's pull-secret credentials as auth.json text (empty: the
    /// node's only). Two pods share a pull only with the same ones.
    auth: String,
    waiters: Vec<Waiter>,
    /// Mono ms the helper started; `None` while queued.
    started_ms: Option<u64>,
}

/// The pulls under way and queued.
#[derive(Default)]
pub(super) struct Pulls {
    /// A few at most: a list.
    all: Vec<Pull>,
    /// Ids.
    queue: VecDeque<u64>,
    next_id: u64,
}

impl Pulls {
    /// Adds `w` to the waiters of `image` with `auth`, queueing a new
    /// pull when none is under way or queued; returns the pull's id.
    fn want(&mut self, image: &str, auth: String, w: Waiter) -> u64 {
        for p in &mut self.all {
            p.waiters
                .retain(|o| o.uid != w.uid || o.container != w.container);
        }
        let i = match self
            .all
            .iter()
            .position(|p| p.image == image && p.auth == auth)
        {
            Some(i) => i,
            None => {
                self.next_id += 1;
                self.queue.push_back(self.next_id);
                self.all.push(Pull {
                    id: self.next_id,
                    image: image.to_string(),
                    auth,
                    waiters: Vec::new(),
                    started_ms: None,
                });
                self.all.len() - 1
            }
        };
        self.all[i].waiters.push(w);
        self.all[i].id
    }

    /// The next queued pull, marked started at `now`, while fewer than
    /// [`MAX_PULLS`] run.
    fn next_to_start(&mut self, now: u64) -> Option<&Pull> {
        let running = self.all.iter().filter(|p| p.started_ms.is_some());
        if running.count() >= MAX_PULLS {
            return None;
        }
        let id = self.queue.pop_front()?;
        let p = self.all.iter_mut().find(|p| p.id == id)?;
        p.started_ms = Some(now);
        Some(p)
    }

    fn get(&self, id: u64) -> Option<&Pull> {
        self.all.iter().find(|p| p.id == id)
    }

    fn remove(&mut self, id: u64) -> Option<Pull> {
        let i = self.all.iter().position(|p| p.id == id)?;
        Some(self.all.swap_remove(i))
    }
}

/// The credentials of a pod's `imagePullSecrets` in namespace `ns`, merged
/// in their order (the first that names a registry wins), and the names of
/// those that do not exist. Secrets of other types carry none (as with the
/// kubelet).
pub(super) fn pull_secrets(
    objects: &Objects,
    ns: &str,
    refs: &[ObjectRef],
) -> (AuthFile, Vec<String>) {
    let mut auth = AuthFile::default();
    let mut missing = Vec::new();
    for r in refs {
        match objects.get(ObjectKind::Secret, ns, &r.name) {
            None => missing.push(r.name.clone()),
            // Checked when the Secret was loaded: an error cannot be.
            Some(s) => {
                if let Some(Ok(a)) = AuthFile::from_secret(&s.secret_type, &s.data) {
                    auth.merge(&a);
                }
            }
        }
    }
    (auth, missing)
}

/// The kubelet's `FailedToRetrieveImagePullSecret` message.
fn missing_secrets(names: &[String]) -> String {
    format!(
        "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
        names.join(", ")
    )
}

/// The waiting message's wording of a failed pull's error, by kind.
fn failure(kind: &str, message: &str) -> String {
    match kind {
        "not-found" => format!("not found: {message}"),
        "unauthorized" => format!("unauthorized (credentials missing or refused): {message}"),
        "unreachable" => format!("registry unreachable: {message}"),
        _ => message.to_string(),
    }
}

impl Agent {
    /// `container` of pod `uid` needs `image` pulled: joins the pull of
    /// that image or queues a new one. Answers the core's `Pulling` event.
    pub(super) fn want_pull(
        &mut self,
        uid: String,
        container: String,
        image: &str,
        local: bool,
    ) -> Input {
        let w = Waiter {
            uid: uid.clone(),
            container: container.clone(),
            asked_ms: crate::clock::boottime_ms(),
            local,
        };
        let (auth, missing) = match self.node.pod(&uid) {
            Some(p) => pull_secrets(
                &self.objects,
                &p.spec.metadata.namespace,
                &p.spec.spec.image_pull_secrets,
            ),
            None => Default::default(),
        };
        if !missing.is_empty() {
            self.on_output(crate::lifecycle::Output::Event {
                uid: uid.clone(),
                kind: crate::lifecycle::EventType::Warning,
                reason: "FailedToRetrieveImagePullSecret".into(),
                message: missing_secrets(&missing),
                involved: None,
            });
        }
        let auth = match auth.is_empty() {
            true => String::new(),
            false => auth.to_json(),
        };
        self.pulls.want(image, auth, w);
        self.start_pulls();
        Input::ImagePulling {
            uid,
            container,
            progress: None,
        }
    }

    /// Starts queued pulls while fewer than [`MAX_PULLS`] run.
    fn start_pulls(&mut self) {
        while let Some(p) = self.pulls.next_to_start(crate::clock::boottime_ms()) {
            log::info!("pulling image {}", p.image);
            let mut cmd = Command::new(&self.cfg.exe);
            cmd.arg("pull")
                .arg(&p.image)
                .arg("--store")
                .arg(self.cfg.state_dir.join("images"));
            let id = p.id;
            // The pod's credentials, then the node's file (the helper's
            // --auth-file order: the first naming a registry wins); the
            // fleet's registries, then the node's file (likewise).
            let registries = self.desired.fleet().and_then(|d| d.registries());
            let mut files = Vec::new();
            let mut written = Ok(());
            for (what, text, flag, env, default) in [
                (
                    "auth",
                    (!p.auth.is_empty()).then(|| p.auth.clone()),
                    "--auth-file",
                    "PICOLET_AUTH_FILE",
                    DEFAULT_AUTH_FILE,
                ),
                (
                    "registries",
                    registries.map(|v| v.to_string()),
                    "--registries-config",
                    "PICOLET_REGISTRIES_CONFIG",
                    DEFAULT_REGISTRIES,
                ),
            ] {
                let Some(text) = text else { continue };
                let f = self.cfg.run_dir.join(format!("pull-{what}-{id}.json"));
                let node = std::env::var_os(env).unwrap_or_else(|| default.into());
                cmd.arg(flag).arg(&f).arg(flag).arg(node);
                written = written.and_then(|()| {
                    write_private(&f, &text).map_err(|e| format!("writing {}: {e}", f.display()))
                });
                files.push(f);
            }
            if let Err(e) = written {
                for f in &files {
                    let _ = std::fs::remove_file(f);
                }
                let _ = self.tx.try_send(Msg::Pull(PullMsg::Done {
                    id,
                    result: Err(("other".into(), e)),
                }));
                continue;
            }
            reactor::spawn(run_helper(cmd, id, files, self.tx.clone())).detach();
        }
    }

    pub(super) fn on_pull_msg(&mut self, msg: PullMsg) {
        match msg {
            PullMsg::Progress { id, done, total } => {
                for w in self.pulls.get(id).into_iter().flat_map(|p| &p.waiters) {
                    self.pending.push_back(Input::ImagePulling {
                        uid: w.uid.clone(),
                        container: w.container.clone(),
                        progress: Some((done, total)),
                    });
                }
            }
            PullMsg::Done { id, result } => {
                let Some(pull) = self.pulls.remove(id) else {
                    return;
                };
                let image = pull.image;
                let now = crate::clock::boottime_ms();
                let pull_ms = now.saturating_sub(pull.started_ms.unwrap_or(now));
                match &result {
                    Ok(size) => log::info!("pulled image {image} ({size} bytes) in {pull_ms} ms"),
                    Err((kind, message)) => {
                        log::warn!("pulling image {image} failed ({kind}): {message}")
                    }
                }
                // The store as the helper left it.
                let stored = self.images.resolve(&image);
                for w in pull.waiters {
                    let img = stored.as_ref().ok().and_then(|i| i.as_ref());
                    let offline = match &result {
                        Ok(_) => None,
                        Err((kind, m)) if kind == "unreachable" && w.local => Some(m.clone()),
                        Err((kind, m)) => {
                            self.pending.push_back(Input::ImageFailed {
                                uid: w.uid,
                                container: w.container,
                                reason: "ErrImagePull".into(),
                                message: failure(kind, m),
                            });
                            continue;
                        }
                    };
                    self.pending.push_back(match img {
                        Some(img) => Input::ImagePulled {
                            uid: w.uid,
                            container: w.container,
                            image_id: img.image_id.clone(),
                            pull_ms,
                            total_ms: now.saturating_sub(w.asked_ms),
                            size: *result.as_ref().unwrap_or(&0),
                            offline,
                        },
                        None => Input::ImageFailed {
                            uid: w.uid,
                            container: w.container,
                            reason: "ErrImagePull".into(),
                            message: format!("image {image} is not in the store after its pull"),
                        },
                    });
                }
                self.start_pulls();
            }
        }
    }
}

/// Writes `text` to a new file `path` that only root may read.
/// Removes the pull credential files (`pull-auth-<id>.json`,
/// `pull-registries-<id>.json`) left in
/// `run_dir` by an agent that ended without removing them (kill -9, a
/// crash); run at start, before any pull. Other files stay.
pub(super) fn sweep_credentials(run_dir: &std::path::Path) {
    let Ok(rd) = std::fs::read_dir(run_dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ours = name.starts_with("pull-auth-") || name.starts_with("pull-registries-");
        if ours && name.ends_with(".json") {
            if let Err(err) = std::fs::remove_file(e.path()) {
                log::warn!("removing {}: {err}", e.path().display());
            }
        }
    }
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(text.as_bytes())
}

/// Runs one helper and reports its progress (summed over blobs, at most
/// once per [`PROGRESS_EVERY`]) and its end to the main loop; removes the
/// `files` it was given (credentials, registries) at its end.
async fn run_helper(
    mut cmd: Command,
    id: u64,
    files: Vec<PathBuf>,
    tx: async_channel::Sender<Msg>,
) {
    let mut total = 0u64;
    // (digest, bytes in the store): a few dozen at most.
    let mut blobs: Vec<(String, u64)> = Vec::new();
    let mut sent = Instant::now();
    let mut end = None;
    let status = reactor::process::lines(&mut cmd, &mut |line| {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            return;
        };
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        let mut set = |done: u64| {
            let d = v["digest"].as_str().unwrap_or_default();
            match blobs.iter_mut().find(|b| b.0 == d) {
                Some(b) => b.1 = done,
                None => blobs.push((d.to_string(), done)),
            }
        };
        match v["event"].as_str().unwrap_or_default() {
            "resolved" => total = n("size"),
            "progress" => set(n("done")),
            "blob" => set(n("size")),
            "pulled" => end = Some(Ok(n("size"))),
            "error" => {
                let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                end = Some(Err((s("kind"), s("message"))));
            }
            _ => {}
        }
        if total > 0 && end.is_none() && sent.elapsed() >= PROGRESS_EVERY {
            sent = Instant::now();
            let _ = tx.try_send(Msg::Pull(PullMsg::Progress {
                id,
                done: blobs.iter().map(|b| b.1).sum::<u64>().min(total),
                total,
            }));
        }
    })
    .await;
    let result = match (end, status) {
        (Some(r), _) => r,
        (None, Ok(status)) => Err((
            "other".into(),
            format!("picolet pull ended ({status}) without a result"),
        )),
        (None, Err(e)) => Err(("other".into(), format!("picolet pull: {e}"))),
    };
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    let _ = tx.send(Msg::Pull(PullMsg::Done { id, result })).await;
}

#[cfg(test)]
mod tests {
    use super::{Msg, PullMsg, run_helper};

    /// What `run_helper` sends for a helper that is `script`.
    fn reports(script: &str) -> Vec<PullMsg> {
        let dir = tempfile::tempdir().unwrap();
        let program = crate::testutil::script(dir.path(), "pull", script);
        let (tx, rx) = async_channel::unbounded();
        crate::reactor::block_on(run_helper(
            std::process::Command::new(program),
            7,
            Vec::new(),
            tx,
        ));
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|m| match m {
                Msg::Pull(p) => p,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn progress_is_summed_over_blobs_at_most_once_a_second_then_the_end() {
        let got = reports(
            r#"echo '{"event":"resolved","digest":"sha256:m","size":3000000}'
echo '{"event":"blob","digest":"sha256:c","size":1000,"downloaded":0,"present":true}'
echo '{"event":"progress","digest":"sha256:l","done":100,"total":2999000}'
sleep 1.2
echo '{"event":"progress","digest":"sha256:l","done":2000000,"total":2999000}'
echo '{"event":"progress","digest":"sha256:l","done":2100000,"total":2999000}'
echo 'not json'
echo '{"event":"pulled","reference":"img:1","image_id":"sha256:i","digest":"sha256:m","size":3000000,"downloaded":2999000}'"#,
        );
        let text = format!("{got:?}");
        assert_eq!(got.len(), 2, "{text}");
        assert!(
            matches!(
                &got[0],
                PullMsg::Progress {
                    id: 7,
                    done: 2_001_000,
                    total: 3_000_000
                }
            ),
            "{text}"
        );
        assert!(
            matches!(
                &got[1],
                PullMsg::Done {
                    result: Ok(3_000_000),
                    ..
                }
            ),
            "{text}"
        );
    }

    #[test]
    fn an_error_line_or_no_result_at_all_is_a_failed_pull() {
        let got = reports(
            r#"echo '{"event":"error","kind":"not-found","message":"manifest 1: MANIFEST_UNKNOWN"}'; exit 1"#,
        );
        let want: Result<u64, (String, String)> =
            Err(("not-found".into(), "manifest 1: MANIFEST_UNKNOWN".into()));
        assert!(
            matches!(&got[..], [PullMsg::Done { result, .. }] if *result == want),
            "{got:?}"
        );
        let got = reports("exit 3");
        assert!(
            matches!(&got[..], [PullMsg::Done { result: Err((kind, m)), .. }] if kind == "other" && m.contains("without a result")),
            "{got:?}"
        );
    }

    fn auth(host: &str) -> String {
        format!(r#"{{"auths":{{"{host}":{{"auth":"dTpw"}}}}}}"#)
    }

    #[test]
    fn one_pull_per_image_and_credential_set_shared_by_its_waiters_and_two_at_once() {
        let w = |uid: &str| super::Waiter {
            uid: uid.into(),
            container: "c".into(),
            asked_ms: 0,
            local: false,
        };
        let none = String::new;
        let mut p = super::Pulls::default();
        let mut ids = Vec::new();
        for (image, uid) in [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4"), ("a", "3")] {
            ids.push(p.want(image, none(), w(uid)));
        }
        assert_eq!(ids, [1, 2, 1, 3, 1]);
        assert_eq!(
            p.get(1).unwrap().waiters.len(),
            2,
            "one entry per container"
        );
        // Other credentials: another pull of the same image; the same ones
        // (from another pod's secret with the same content) share it.
        assert_eq!(p.want("a", auth("r"), w("5")), 4);
        assert_eq!(p.want("a", auth("r"), w("6")), 4);
        assert_eq!(p.want("a", auth("q"), w("7")), 5);
        let start =
            |p: &mut super::Pulls, now| p.next_to_start(now).map(|x| (x.id, x.image.clone()));
        assert_eq!(start(&mut p, 5), Some((1, "a".into())));
        assert_eq!(start(&mut p, 5), Some((2, "b".into())));
        assert_eq!(start(&mut p, 5), None, "two at once");
        // Another container for a running pull joins it, nothing queued.
        p.want("b", none(), w("8"));
        assert_eq!(p.queue, [3, 4, 5]);
        p.remove(1);
        assert_eq!(start(&mut p, 9), Some((3, "c".into())));
        assert_eq!(p.get(3).unwrap().started_ms, Some(9));
        // A container asking again with other credentials leaves its old pull.
        p.want("a", auth("q"), w("6"));
        assert_eq!(p.get(4).unwrap().waiters.len(), 1);
        assert_eq!(p.get(5).unwrap().waiters.len(), 2);
    }

    #[test]
    fn a_pods_pull_secrets_merge_in_order_and_missing_ones_are_named() {
        let mut objects = crate::spec::Objects::default();
        let secret = |ns: &str, name: &str, ty: &str, key: &str, json: &str| {
            let text = format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ntype: {ty}\nstringData:\n  {key}: '{json}'\n"
            );
            match crate::spec::load_manifests_str(&text, "t")
                .remove(0)
                .unwrap()
            {
                crate::spec::Manifest::Object(o) => o,
                _ => unreachable!(),
            }
        };
        let dcj = "kubernetes.io/dockerconfigjson";
        for o in [
            secret(
                "ns",
                "first",
                dcj,
                ".dockerconfigjson",
                r#"{"auths":{"r":{"username":"first","password":"1"}}}"#,
            ),
            secret(
                "ns",
                "legacy",
                "kubernetes.io/dockercfg",
                ".dockercfg",
                r#"{"r":{"username":"legacy","password":"2"},"q":{"username":"legacy","password":"3"}}"#,
            ),
            secret(
                "ns",
                "opaque",
                "Opaque",
                ".dockerconfigjson",
                r#"{"auths":{"o":{"username":"x","password":"4"}}}"#,
            ),
            secret(
                "other",
                "elsewhere",
                dcj,
                ".dockerconfigjson",
                r#"{"auths":{"e":{"username":"x","password":"5"}}}"#,
            ),
        ] {
            objects.insert_first(o);
        }
        let refs = |names: &[&str]| -> Vec<crate::spec::ObjectRef> {
            names
                .iter()
                .map(|n| crate::spec::ObjectRef {
                    name: n.to_string(),
                    optional: None,
                })
                .collect()
        };
        let (a, missing) = super::pull_secrets(
            &objects,
            "ns",
            &refs(&["first", "gone", "legacy", "opaque", "elsewhere"]),
        );
        assert_eq!(
            a.get("r").unwrap().username,
            "first",
            "the first secret wins"
        );
        assert_eq!(a.get("q").unwrap().username, "legacy");
        assert!(
            a.get("o").is_none() && a.get("e").is_none(),
            "Opaque, other namespace: none"
        );
        assert_eq!(missing, ["gone", "elsewhere"]);
        assert_eq!(
            super::missing_secrets(&missing),
            "Unable to retrieve some image pull secrets (gone, elsewhere); attempting to pull the image may not succeed."
        );
        let (a, missing) = super::pull_secrets(&objects, "ns", &[]);
        assert!(a.is_empty() && missing.is_empty());
    }

    #[test]
    fn the_credentials_file_is_new_and_only_roots() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pull-auth-1.json");
        std::fs::write(&f, "stale, world-readable").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::write_private(&f, "{}").unwrap();
        let meta = std::fs::metadata(&f).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "{}");
    }

    #[test]
    fn credential_files_left_by_a_killed_agent_are_swept_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "pull-auth-3.json",
            "pull-auth-17.json",
            "pull-registries-4.json",
            "pull-auth-x.txt",
            "agent.sock",
        ] {
            std::fs::write(d.join(f), "x").unwrap();
        }
        super::sweep_credentials(d);
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["agent.sock", "pull-auth-x.txt"]);
        super::sweep_credentials(&d.join("missing"));
    }

    #[test]
    fn failures_say_plainly_what_went_wrong() {
        assert_eq!(
            super::failure(
                "not-found",
                "manifest 1 (http://r/v2/x/manifests/1): MANIFEST_UNKNOWN"
            ),
            "not found: manifest 1 (http://r/v2/x/manifests/1): MANIFEST_UNKNOWN"
        );
        assert!(super::failure("unauthorized", "401").starts_with("unauthorized"));
        assert_eq!(super::failure("other", "bad gzip"), "bad gzip");
    }
}
