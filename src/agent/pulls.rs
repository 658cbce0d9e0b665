//! Registry pulls for the lifecycle core's `EnsureImage`: the agent runs
//! `picolet pull REF --store <state>/images` (a helper process: HTTP, TLS,
//! hashing and unpacking never run on the agent's thread) and reads the
//! JSON lines it prints on the reactor (docs/images.md, "The helper's
//! protocol"). One pull per image reference, shared by every container
//! waiting for it; at most [`MAX_PULLS`] at once, the others queued in
//! order. Progress goes to the core at most once a second per pull (the
//! waiting message); the end answers every waiting container.
//!
//! The helper inherits the agent's environment: `PICOLET_AUTH_FILE` and
//! `PICOLET_REGISTRIES_CONFIG` (else `/etc/picolet/auth.json` and
//! `/etc/picolet/registries.yaml`).

use super::{Agent, Msg};
use crate::lifecycle::Input;
use crate::reactor;
use std::collections::VecDeque;
use std::process::Command;
use std::time::{Duration, Instant};

/// Pulls running at once.
pub(super) const MAX_PULLS: usize = 2;
/// Progress reports per pull to the core: at most one per this.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What a pull helper reported.
#[derive(Debug)]
pub enum PullMsg {
    Progress {
        image: String,
        done: u64,
        total: u64,
    },
    /// `Ok(size)`, or `Err((kind, message))` as the helper's `error` line.
    Done {
        image: String,
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

#[derive(Debug, Default)]
struct Pull {
    waiters: Vec<Waiter>,
    /// Mono ms the helper started; `None` while queued.
    started_ms: Option<u64>,
}

/// The pulls under way and queued.
#[derive(Debug, Default)]
pub(super) struct Pulls {
    /// By image reference (a few at most: a list).
    by_image: Vec<(String, Pull)>,
    queue: VecDeque<String>,
}

impl Pulls {
    /// Adds `w` to the waiters of `image`, queueing a new pull when none
    /// is under way or queued.
    fn want(&mut self, image: &str, w: Waiter) {
        if self.get(image).is_none() {
            self.queue.push_back(image.to_string());
            self.by_image.push((image.to_string(), Pull::default()));
        }
        let Some(pull) = self.get_mut(image) else {
            return;
        };
        pull.waiters
            .retain(|o| o.uid != w.uid || o.container != w.container);
        pull.waiters.push(w);
    }

    /// The next queued image to pull, marked started at `now`, while
    /// fewer than [`MAX_PULLS`] run.
    fn next_to_start(&mut self, now: u64) -> Option<String> {
        let running = self.by_image.iter().filter(|p| p.1.started_ms.is_some());
        if running.count() >= MAX_PULLS {
            return None;
        }
        let image = self.queue.pop_front()?;
        self.get_mut(&image)?.started_ms = Some(now);
        Some(image)
    }

    fn get(&self, image: &str) -> Option<&Pull> {
        self.by_image.iter().find(|p| p.0 == image).map(|p| &p.1)
    }

    fn get_mut(&mut self, image: &str) -> Option<&mut Pull> {
        self.by_image
            .iter_mut()
            .find(|p| p.0 == image)
            .map(|p| &mut p.1)
    }

    fn remove(&mut self, image: &str) -> Option<Pull> {
        let i = self.by_image.iter().position(|p| p.0 == image)?;
        Some(self.by_image.swap_remove(i).1)
    }
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
        self.pulls.want(image, w);
        self.start_pulls();
        Input::ImagePulling {
            uid,
            container,
            progress: None,
        }
    }

    /// Starts queued pulls while fewer than [`MAX_PULLS`] run.
    fn start_pulls(&mut self) {
        while let Some(image) = self.pulls.next_to_start(crate::clock::boottime_ms()) {
            log::info!("pulling image {image}");
            let mut cmd = Command::new(&self.cfg.exe);
            cmd.arg("pull")
                .arg(&image)
                .arg("--store")
                .arg(self.cfg.state_dir.join("images"));
            reactor::spawn(run_helper(cmd, image, self.tx.clone())).detach();
        }
    }

    pub(super) fn on_pull_msg(&mut self, msg: PullMsg) {
        match msg {
            PullMsg::Progress { image, done, total } => {
                for w in self.pulls.get(&image).into_iter().flat_map(|p| &p.waiters) {
                    self.pending.push_back(Input::ImagePulling {
                        uid: w.uid.clone(),
                        container: w.container.clone(),
                        progress: Some((done, total)),
                    });
                }
            }
            PullMsg::Done { image, result } => {
                let Some(pull) = self.pulls.remove(&image) else {
                    return;
                };
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

/// Runs one helper and reports its progress (summed over blobs, at most
/// once per [`PROGRESS_EVERY`]) and its end to the main loop.
async fn run_helper(mut cmd: Command, image: String, tx: async_channel::Sender<Msg>) {
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
                image: image.clone(),
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
    let _ = tx.send(Msg::Pull(PullMsg::Done { image, result })).await;
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
            "img:1".into(),
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
            matches!(&got[0], PullMsg::Progress { image, done: 2_001_000, total: 3_000_000 } if image == "img:1"),
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

    #[test]
    fn one_pull_per_image_shared_by_its_waiters_and_two_at_once() {
        let w = |uid: &str| super::Waiter {
            uid: uid.into(),
            container: "c".into(),
            asked_ms: 0,
            local: false,
        };
        let mut p = super::Pulls::default();
        for (image, uid) in [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4"), ("a", "3")] {
            p.want(image, w(uid));
        }
        assert_eq!(
            p.get("a").unwrap().waiters.len(),
            2,
            "one entry per container"
        );
        assert_eq!(p.next_to_start(5).as_deref(), Some("a"));
        assert_eq!(p.next_to_start(5).as_deref(), Some("b"));
        assert_eq!(p.next_to_start(5), None, "two at once");
        // Another container for a running pull joins it, nothing queued.
        p.want("b", w("5"));
        assert_eq!(p.queue, ["c"]);
        p.remove("a");
        assert_eq!(p.next_to_start(9).as_deref(), Some("c"));
        assert_eq!(p.get("c").unwrap().started_ms, Some(9));
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
