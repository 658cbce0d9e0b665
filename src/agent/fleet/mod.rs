//! The agent's fleet channel (DESIGN §5): desired pods from the broker,
//! status, `online` and events back.
//!
//! The agent owns one [`Session`] (the sans-IO MQTT client) when a broker is
//! configured, and drives it like every other core: its `poll_timeout()`
//! joins the lifecycle's in the main loop's deadline, and its outputs are
//! carried out here and in [`link`] (the connection tasks).
//!
//! - **Desired** (`<prefix>/devices/<id>/desired`, `<prefix>/groups/<g>/desired`,
//!   subscribed QoS 1): each message goes through [`crate::fleet::docs::FleetDocs`]
//!   (size cap, format, signature, fields, revision, merge, static pods,
//!   node policy), held by the desired-state core ([`crate::desired`]),
//!   which reconciles the accepted pods as owned by their
//!   [`Source`]: `ApplyPod` for each, `DeletePod` for fleet pods no longer
//!   wanted. A
//!   refused document changes nothing and is reported in status and as an
//!   event. Accepted documents are kept, as received, in the state file
//!   (`StateV2::fleet_docs`) and applied again at start, before the broker
//!   is reached: a device rebooted without a broker runs what it last knew.
//!   Each group's per-device override topic
//!   (`<prefix>/devices/<id>/groups/<g>/desired`) stands in for the group's
//!   document while it holds one; an empty retained message clears it.
//! - **Deployment records** ([`deploy`], [`crate::fleet::deployment`]):
//!   the state of each source's revision in effect, its health gate, and the
//!   device's own rollback to the last `Healthy` revision.
//! - **Status** (`…/status`, retained, QoS 1): `observedRevision`, every pod
//!   (static ones too) with its Kubernetes status, the node, the errors.
//!   Published when something changed, at most once per
//!   [`STATUS_MIN_INTERVAL_MS`], and on every `ConnectionUp`. Never while
//!   nothing changed: it is compared with the last one published, without
//!   its `time` and uptime. Not queued while offline: the reconnect
//!   publishes the latest.
//! - **online** (`…/online`, retained): `true` on every `ConnectionUp`,
//!   `false` as the last will, and `false` when the agent stops.
//! - **Events** (`…/events`, QoS 0, not retained): the lifecycle's events
//!   and the fate of each document, counted by [`EventAggregator`]. QoS 0:
//!   events are best effort and never queued while offline.
//!
//! Files: the fleet key and credentials files (read once at start), the
//! TLS files (on every connect, by the transport), `/proc` and
//! `/sys/fs/cgroup/cgroup.controllers` once for [`NodeInfo`].

mod deploy;
mod link;
mod status;

pub use crate::fleet::docs::{
    DocsConfig, FLEET_SOURCE_PREFIX, FleetDocs, Offer, Plan, is_fleet_source, source_label,
};
pub use link::{Link, LinkEvent, LinkMsg};

use super::statefile::SavedDoc;
use super::{Agent, AgentError};
use crate::clock::Now;
use crate::fleet::config::{Credentials, FleetSettings};
use crate::fleet::doc::{
    DeviceStatus, EventAggregator, NodeInfo, ObjectRef, Signature, StatusError,
};
use crate::fleet::session::{
    Qos, Session, SessionConfig, SessionError, SessionInput, SessionOutput,
};
use crate::fleet::sign;
use crate::fleet::topics::Source;
use crate::fleet::transport::{BrokerUrl, TlsSettings};
use crate::lifecycle::EventType;
use crate::vecmap::VecMap;

/// Status is published at most this often (ms).
pub const STATUS_MIN_INTERVAL_MS: u64 = 1000;

/// The largest MQTT packet buffered: a document of `max_doc_bytes` plus
/// the longest topic MQTT allows and the headers. A message in a bigger
/// packet is over the document limit whatever its topic: the session
/// consumes it without buffering it (its payload is dropped as it streams
/// in), acknowledges it and reports it, and the agent records it in status
/// like any other document refused as `TooLarge`. A message within the cap
/// but over `max_doc_bytes` is refused by the decoder.
pub fn packet_cap(max_doc_bytes: usize) -> usize {
    // Topic length (2), topic (up to 65,535), packet id (2).
    max_doc_bytes.saturating_add(2 + 65_535 + 2)
}

/// The fleet channel's state in the agent.
#[derive(Debug)]
pub(super) struct Fleet {
    settings: FleetSettings,
    session: Session,
    link: Link,
    events: EventAggregator,
    node_info: NodeInfo,
    /// Status changed since the last publish.
    dirty: bool,
    last_status: Option<DeviceStatus>,
    last_status_at: Option<u64>,
    /// The last session error logged (repeats go to debug).
    last_error: Option<String>,
    /// The deployment records ([`crate::fleet::deployment`]).
    deploy: crate::fleet::deployment::Deployments,
    /// Pods or documents changed since the records last looked.
    deploy_dirty: bool,
}

/// What the state file keeps for the fleet beyond the documents.
pub(super) struct SavedFleet {
    pub docs: VecMap<Source, SavedDoc>,
    pub overrides: VecMap<Source, SavedDoc>,
    pub deployments: crate::fleet::deployment::DeploymentsSnap,
}

impl Fleet {
    /// Reads the fleet key and credentials, and takes back the documents of
    /// the state file (for the desired-state core, which owns them).
    pub(super) fn new(
        settings: FleetSettings,
        saved: SavedFleet,
        now: Now,
    ) -> Result<(Fleet, FleetDocs), AgentError> {
        let fleet_key = match &settings.fleet_key {
            Some(p) => {
                Some(sign::read_public_key(p).map_err(|e| AgentError::Fleet(e.to_string()))?)
            }
            None => None,
        };
        let creds = match &settings.credentials {
            Some(p) => Some(Credentials::load(p).map_err(|e| AgentError::Fleet(e.to_string()))?),
            None => None,
        };
        let mut docs = FleetDocs::new(DocsConfig {
            device_id: settings.device_id.clone(),
            groups: settings.groups.clone(),
            topics: settings.topics.clone(),
            policy: settings.policy.clone(),
            max_doc_bytes: settings.max_document_bytes,
            fleet_key,
            check_workload: crate::sys::time::check_time_zone,
        });
        let mut notes = docs.restore(saved.docs, now.wall_ms);
        notes.extend(docs.restore_overrides(saved.overrides, now.wall_ms));
        for note in notes {
            log::warn!("fleet: {note}");
        }
        let mut deploy = crate::fleet::deployment::Deployments::restore(saved.deployments, now);
        deploy.retain(|s| docs.in_effect(s).is_some());
        // A device-side rollback stands: its kept document runs again.
        let pinned: Vec<Source> = deploy.pinned_sources().cloned().collect();
        for s in pinned {
            let kept = deploy.kept(&s).cloned();
            if let Some(Err(e)) = kept.map(|k| docs.pin(&s, &k)) {
                log::warn!("fleet: {s}: the kept Healthy document no longer applies: {e}");
            }
        }
        let session = Session::new(session_config(&settings, creds));
        let url = BrokerUrl {
            tls: settings.broker.tls,
            host: settings.broker.host.clone(),
            port: settings.broker.port,
        };
        let tls = TlsSettings {
            ca_file: settings.tls.ca.clone(),
            client_cert: settings.tls.cert.clone(),
            client_key: settings.tls.key.clone(),
        };
        let fleet = Fleet {
            session,
            link: Link::new(url, tls),
            events: EventAggregator::new(&settings.device_id, EventAggregator::DEFAULT_CAP),
            node_info: NodeInfo::read(),
            dirty: true,
            last_status: None,
            last_status_at: None,
            last_error: None,
            deploy,
            deploy_dirty: true,
            settings,
        };
        Ok((fleet, docs))
    }

    /// Whether the broker connection is up (for `picolet_fleet_connected`).
    pub(super) fn is_up(&self) -> bool {
        self.session.is_up()
    }

    /// The status is to be published again (the desired state changed).
    pub(super) fn status_changed(&mut self) {
        self.dirty = true;
        self.deploy_dirty = true;
    }

    /// The images of the kept `Healthy` documents (exempt from image GC).
    pub(super) fn kept_images(&self, docs: &FleetDocs) -> Vec<String> {
        deploy::kept_images(&self.deploy, docs)
    }

    /// The records and the overrides, for the state file.
    pub(super) fn saved_extra(
        &self,
        docs: Option<&FleetDocs>,
    ) -> (
        VecMap<Source, SavedDoc>,
        crate::fleet::deployment::DeploymentsSnap,
    ) {
        (
            docs.map(|d| d.saved_overrides()).unwrap_or_default(),
            self.deploy.snapshot().clone(),
        )
    }

    /// The mono ms at which [`Fleet::tick`] is due, or the status may be
    /// published.
    #[must_use]
    pub(super) fn poll_timeout(&self) -> Option<u64> {
        let status = (self.dirty && self.session.is_up()).then(|| {
            self.last_status_at
                .map_or(0, |t| t + STATUS_MIN_INTERVAL_MS)
        });
        [
            self.session.poll_timeout(),
            status,
            self.deploy.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fires the session's timers when due.
    pub(super) fn tick(&mut self, now: Now) {
        if self
            .session
            .poll_timeout()
            .is_some_and(|t| t <= now.mono_ms)
        {
            self.session.handle(SessionInput::Tick, now);
        }
    }
}

/// The device's session: client id = device id, the `online=false` will,
/// the desired topics, keepalive, packet cap and credentials.
fn session_config(s: &FleetSettings, creds: Option<Credentials>) -> SessionConfig {
    let mut c = SessionConfig::device(&s.device_id, s.topics.prefix());
    c.subscriptions = std::iter::once(s.topics.device_desired(&s.device_id))
        .chain(s.groups.iter().map(|g| s.topics.group_desired(g)))
        .chain(
            s.groups
                .iter()
                .map(|g| s.topics.group_override(&s.device_id, g)),
        )
        .collect();
    c.keepalive_s = s.keepalive_seconds;
    c.max_packet_size = packet_cap(s.max_document_bytes);
    if let Some(creds) = creds {
        c.username = Some(creds.username);
        c.password = creds.password;
    }
    c.jitter_seed = (crate::clock::wall_ns() as u64) ^ (u64::from(std::process::id()) << 32);
    c
}

impl Agent {
    /// Applies the stored documents (before any broker is reached).
    pub(super) fn fleet_start(&mut self) {
        if let (Some(f), Some(docs)) = (&self.fleet, self.desired.fleet()) {
            let o = docs.observed();
            log::info!(
                "fleet: broker {}, device {}, groups {:?}; stored revisions: device {:?}, groups {:?}",
                f.link.url(),
                f.settings.device_id,
                f.settings.groups,
                o.device,
                o.groups
            );
        }
        self.reconcile(None);
    }

    /// A message of a connection task.
    #[inline(never)] // own stack frame: see docs/design-deviations.md §13
    pub(super) fn on_fleet_msg(&mut self, msg: LinkMsg) {
        let Some(f) = self.fleet.as_mut() else {
            return;
        };
        let Some(ev) = f.link.on_msg(msg, &self.tx) else {
            return;
        };
        let now = Now::read();
        match ev {
            LinkEvent::Connected => f.session.handle(SessionInput::Connected, now),
            LinkEvent::Bytes(b) => f.session.handle(SessionInput::Bytes(&b), now),
            LinkEvent::Disconnected(why) => f.session.handle(SessionInput::Disconnected(why), now),
        }
    }

    /// The accepted documents, for the state file.
    pub(super) fn fleet_saved(&self) -> VecMap<Source, SavedDoc> {
        self.desired.fleet().map(|d| d.saved()).unwrap_or_default()
    }

    /// Says `online=false`, DISCONNECT, and waits for the bytes to go out.
    pub(super) async fn fleet_stop(&mut self) {
        let Some(f) = self.fleet.as_mut() else {
            return;
        };
        let now = Now::read();
        if f.session.is_up() {
            let topic = f.settings.topics.device_online(&f.settings.device_id);
            f.session.handle(
                publish(topic, b"false".to_vec(), Qos::AtMostOnce, true),
                now,
            );
        }
        f.session.handle(SessionInput::Shutdown, now);
        self.fleet_drain();
        if let Some(f) = self.fleet.as_mut() {
            f.link.finish().await;
        }
    }

    /// Carries out the session's outputs until there are none.
    pub(super) fn fleet_drain(&mut self) {
        loop {
            let Some(f) = self.fleet.as_mut() else {
                return;
            };
            let Some(out) = f.session.poll_output() else {
                return;
            };
            match out {
                SessionOutput::Connect => {
                    log::debug!("fleet: connecting to {}", f.link.url());
                    f.link.connect(&self.tx);
                }
                SessionOutput::Transmit(bytes) => f.link.transmit(bytes),
                SessionOutput::Close => f.link.close(),
                SessionOutput::ConnectionUp { session_present } => {
                    log::info!(
                        "fleet: connected to {}{} as device {} (session present: {session_present})",
                        f.link.url(),
                        if f.link.is_tls() { " (TLS)" } else { "" },
                        f.settings.device_id
                    );
                    f.last_error = None;
                    let topic = f.settings.topics.device_online(&f.settings.device_id);
                    let online = publish(topic, b"true".to_vec(), Qos::AtLeastOnce, true);
                    f.session.handle(online, Now::read());
                    self.publish_status(true);
                }
                SessionOutput::ConnectionDown if self.stop.handled() => {
                    log::info!("fleet: disconnected from {}", f.link.url())
                }
                SessionOutput::ConnectionDown => log::warn!(
                    "fleet: connection to {} lost; reconnecting with back-off (pods keep running)",
                    f.link.url()
                ),
                SessionOutput::Message { topic, payload, .. } => self.on_desired(topic, payload),
                SessionOutput::Delivered { .. } => {}
                SessionOutput::Error(e) => self.on_session_error(e),
            }
        }
    }

    fn on_session_error(&mut self, e: SessionError) {
        let (Some(f), Some(docs)) = (self.fleet.as_mut(), self.desired.fleet_mut()) else {
            return;
        };
        let text = e.to_string();
        if f.last_error.as_deref() == Some(text.as_str()) {
            log::debug!("fleet: {text}");
        } else {
            log::warn!("fleet: {text}");
        }
        let time = crate::clock::rfc3339(Now::read().wall_ms);
        match e {
            SessionError::PacketTooLarge { .. } => {
                docs.push_error(StatusError {
                    topic: String::new(),
                    revision: None,
                    pod: None,
                    reason: "TooLarge".to_string(),
                    message: format!("{text}: the connection was dropped"),
                    time,
                });
                f.dirty = true;
            }
            SessionError::MessageTooLarge {
                topic,
                payload,
                retained,
                ..
            } => {
                // Like a document the decoder refuses for its size, with
                // the document limit (the packet cap only adds headers).
                let limit = f.settings.max_document_bytes;
                let message = format!(
                    "the document is {payload} bytes, more than the limit of {limit} bytes: discarded unread{}",
                    if retained { " (retained)" } else { "" }
                );
                let err = StatusError {
                    topic: topic.clone(),
                    revision: None,
                    pod: None,
                    reason: "TooLarge".to_string(),
                    message: message.clone(),
                    time,
                };
                docs.push_error(err.clone());
                f.dirty = true;
                let source = docs.source_of(&topic);
                f.last_error = Some(text);
                if let Some(source) = source {
                    let object = ObjectRef::desired(&source);
                    self.publish_event(object, EventType::Warning, "TooLarge", &message);
                    self.deploy_refused(&source, &err);
                }
                return;
            }
            _ => {}
        }
        f.last_error = Some(text);
    }

    /// A message on one of the desired topics.
    fn on_desired(&mut self, topic: String, payload: Vec<u8>) {
        let now = Now::read();
        let (Some(f), Some(docs)) = (self.fleet.as_mut(), self.desired.fleet_mut()) else {
            return;
        };
        let Some(source) = docs.source_of(&topic) else {
            log::debug!("fleet: ignoring a message on {topic}");
            return;
        };
        let over = docs.is_override(&topic);
        if payload.is_empty() {
            if over && docs.clear_override(&source) {
                log::info!(
                    "fleet: {topic}: the override was cleared; back to the document of {source}"
                );
                let object = ObjectRef::desired(&source);
                self.publish_event(
                    object,
                    EventType::Normal,
                    "OverrideCleared",
                    "back to the group's document",
                );
                self.deploy_changed(&source, true);
                self.reconcile(None);
                return;
            }
            log::info!("fleet: {topic}: the retained document was cleared; nothing changes");
            return;
        }
        let offer = if over {
            docs.offer_override(&source, &payload, now.wall_ms)
        } else {
            docs.offer(&source, &payload, now.wall_ms)
        };
        // What is in effect changes unless a group's document comes while
        // this device holds an override of it.
        let takes_effect = over || !docs.has_override(&source);
        match offer {
            Offer::Unchanged => log::debug!("fleet: {topic}: the accepted document again"),
            Offer::Refused(e) => {
                log::warn!(
                    "fleet: {topic}: document refused, nothing changed: {}",
                    e.message
                );
                f.dirty = true;
                let object = ObjectRef::desired(&source);
                self.publish_event(object, EventType::Warning, &e.reason, &e.message);
                self.deploy_refused(&source, &e);
            }
            Offer::Accepted {
                revision,
                signature,
            } => {
                let how = match signature {
                    Signature::Unsigned => String::new(),
                    Signature::Verified { key_id } => format!(", signed by {key_id}"),
                    Signature::NotChecked { key_id } => {
                        format!(", signed by {key_id} (not checked: no fleet key)")
                    }
                };
                log::info!("fleet: accepted {topic} revision {revision}{how}");
                let msg = format!("revision {revision} accepted{how}");
                self.publish_event(
                    ObjectRef::desired(&source),
                    EventType::Normal,
                    "Accepted",
                    &msg,
                );
                if takes_effect {
                    self.deploy_changed(&source, false);
                }
                self.reconcile(None);
            }
        }
    }
}

/// A publish input.
fn publish(topic: String, payload: Vec<u8>, qos: Qos, retain: bool) -> SessionInput<'static> {
    SessionInput::Publish {
        topic,
        payload,
        qos,
        retain,
    }
}
