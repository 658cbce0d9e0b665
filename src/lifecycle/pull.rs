//! Image pulls: the pull policy (the one place its default is decided),
//! whether to pull, and what a pull's progress and end do to a container
//! (the kubelet's `EnsureImageExists` events). Back-off after a failure is
//! `observe.rs`'s `on_image_failed` (10 s doubling to 300 s,
//! `ErrImagePull` then `ImagePullBackOff`).

use super::container::Step;
use super::pod::PodView;
use super::{EventType, Fx};
use crate::spec::PullPolicy;

/// The effective `imagePullPolicy` of `image`: as given, else `Always`
/// when the tag is `latest` or there is neither tag nor digest, else
/// `IfNotPresent` (a digest without a tag included). The spec's
/// defaulting ([`crate::spec::Container::pull_policy`]) and the core both
/// use this.
pub fn pull_policy(image: &str, given: Option<PullPolicy>) -> PullPolicy {
    if let Some(p) = given {
        return p;
    }
    match crate::spec::defaults::image_tag_and_digest(image) {
        (Some("latest"), _) | (None, None) => PullPolicy::Always,
        _ => PullPolicy::IfNotPresent,
    }
}

/// What to do about an image before starting a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullDecision {
    /// Use the image in the local store.
    UseLocal,
    /// Pull it from the registry (for `Always`, even if present).
    Pull,
    /// `Never` and the image is missing: `ErrImageNeverPull`.
    NeverPullMissing,
}

/// The kubelet's decision, given whether the image is in the store.
pub fn pull_decision(policy: PullPolicy, present: bool) -> PullDecision {
    match (policy, present) {
        (PullPolicy::Always, _) | (PullPolicy::IfNotPresent, false) => PullDecision::Pull,
        (_, true) => PullDecision::UseLocal,
        (PullPolicy::Never, false) => PullDecision::NeverPullMissing,
    }
}

/// How an image became ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Got {
    /// Already on the device, not pulled.
    Present,
    /// Pulled: the pull took `pull_ms`, `total_ms` with the wait for a
    /// pull slot; `size` in bytes when known.
    Pulled {
        pull_ms: u64,
        total_ms: u64,
        size: Option<u64>,
    },
    /// The registry could not be reached (this error): the copy on the
    /// device is used.
    Offline(String),
}

impl Got {
    /// The event the kubelet (or, for `Offline`, picolet) emits.
    pub(crate) fn event(&self, image: &str) -> (EventType, &'static str, String) {
        use super::backoff::go_duration;
        match self {
            Got::Present => (
                EventType::Normal,
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            ),
            Got::Pulled {
                pull_ms,
                total_ms,
                size,
            } => {
                // A container that joined a pull already under way waited
                // for it only from its own request: its pull time is that,
                // never more than its total (the kubelet times each
                // container's own PullImage call).
                let mut m = format!(
                    "Successfully pulled image \"{image}\" in {} ({} including waiting)",
                    go_duration((*pull_ms).min(*total_ms)),
                    go_duration(*total_ms)
                );
                if let Some(s) = size {
                    m.push_str(&format!(". Image size: {s} bytes."));
                }
                (EventType::Normal, "Pulled", m)
            }
            Got::Offline(e) => (
                EventType::Warning,
                "PullOffline",
                format!(
                    "Could not reach the registry for image \"{image}\" ({e}); \
                     using the copy already on this device"
                ),
            ),
        }
    }
}

/// `done` of `total` bytes, as the waiting message shows it:
/// `3.1 MB of 9.8 MB`.
pub(crate) fn progress_text(done: u64, total: u64) -> String {
    let mb = |b: u64| format!("{}.{} MB", b / 1_000_000, b % 1_000_000 / 100_000);
    format!("{} of {}", mb(done), mb(total))
}

/// Whether a cached waiting message is a pull's progress (cleared when the
/// pull ends).
pub(crate) fn is_progress(reason: &Option<(String, String)>) -> bool {
    reason
        .as_ref()
        .is_some_and(|(_, m)| m.starts_with("Pulling image"))
}

impl PodView {
    /// The agent started pulling `name`'s image (`progress: None`: the
    /// kubelet's `Pulling` event) or the pull moved (the waiting message
    /// shows it). Ignored unless `name` waits for that very pull.
    pub(crate) fn on_image_pulling(
        &mut self,
        name: &str,
        progress: Option<(u64, u64)>,
        fx: &mut Fx,
    ) {
        let default_reason = if self.spec.spec.init_containers.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let uid = self.uid.clone();
        let spec = &self.spec.spec;
        let (c, image) = match spec.init_containers.iter().position(|c| c.name == name) {
            Some(i) => (&mut self.st.init[i], &spec.init_containers[i].image),
            None => match spec.containers.iter().position(|c| c.name == name) {
                Some(i) => (&mut self.st.app[i], &spec.containers[i].image),
                None => return,
            },
        };
        if !matches!(&c.step, Step::Pulling { image: i } if i == image) {
            return;
        }
        let msg = format!("Pulling image \"{image}\"");
        match progress {
            None => fx.event(&uid, EventType::Normal, "Pulling", msg, Some(name)),
            Some((done, total)) => {
                let text = format!("{msg}: {}", progress_text(done, total));
                c.reason = Some((default_reason.to_string(), text));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_decisions_follow_kubernetes() {
        use PullDecision::*;
        use PullPolicy::*;
        assert_eq!(pull_decision(Always, true), Pull);
        assert_eq!(pull_decision(Always, false), Pull);
        assert_eq!(pull_decision(IfNotPresent, true), UseLocal);
        assert_eq!(pull_decision(IfNotPresent, false), Pull);
        assert_eq!(pull_decision(Never, true), UseLocal);
        assert_eq!(pull_decision(Never, false), NeverPullMissing);
    }

    #[test]
    fn progress_is_shown_in_megabytes_with_one_decimal() {
        assert_eq!(progress_text(3_149_999, 9_800_000), "3.1 MB of 9.8 MB");
        assert_eq!(progress_text(0, 512), "0.0 MB of 0.0 MB");
        assert_eq!(progress_text(12_000_000, 12_000_000), "12.0 MB of 12.0 MB");
    }

    #[test]
    fn the_pulled_event_has_the_kubelets_wording() {
        let got = Got::Pulled {
            pull_ms: 1_200,
            total_ms: 3_450,
            size: Some(4_407_612),
        };
        assert_eq!(
            got.event("busybox:1").2,
            "Successfully pulled image \"busybox:1\" in 1.2s (3.45s including waiting). \
             Image size: 4407612 bytes."
        );
        // A container that joined the pull 46 ms before its end.
        let joined = Got::Pulled {
            pull_ms: 91,
            total_ms: 46,
            size: None,
        };
        assert_eq!(
            joined.event("a:1").2,
            "Successfully pulled image \"a:1\" in 46ms (46ms including waiting)"
        );
        assert_eq!(
            Got::Present.event("a:1").2,
            "Container image \"a:1\" already present on machine"
        );
        let (kind, reason, _) = Got::Offline("connection refused".into()).event("a:1");
        assert_eq!((kind, reason), (EventType::Warning, "PullOffline"));
    }
}
