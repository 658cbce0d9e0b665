//! MQTT topic names of the fleet channel (DESIGN §5), and the parser that
//! classifies an inbound topic.
//!
//! | topic | retained | who |
//! |---|---|---|
//! | `<prefix>/devices/<id>/desired` | yes | controller |
//! | `<prefix>/groups/<group>/desired` | yes | controller |
//! | `<prefix>/devices/<id>/groups/<group>/desired` | yes | controller (per-device override of a group's document: canaries, batches) |
//! | `<prefix>/devices/<id>/status` | yes | agent |
//! | `<prefix>/devices/<id>/online` | yes (will) | agent |
//! | `<prefix>/devices/<id>/events` | no | agent |
//!
//! The prefix defaults to [`DEFAULT_PREFIX`] and may have several levels
//! (`acme/picolet`). Device ids and group names are single topic levels:
//! non-empty, at most [`MAX_ID_LEN`] bytes, without `/`, the wildcards `+`
//! and `#`, or control characters (MQTT forbids U+0000 in topic names).
//! Pure: no I/O.

use serde::{Deserialize, Serialize};

/// The default topic prefix.
pub const DEFAULT_PREFIX: &str = "picolet";

/// The longest device id or group name, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// What an id names, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Device,
    Group,
}

impl std::fmt::Display for IdKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IdKind::Device => "device id",
            IdKind::Group => "group name",
        })
    }
}

/// A device id, group name or prefix that cannot be used in a topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("{kind} {value:?}: {reason}")]
    Id {
        kind: IdKind,
        value: String,
        reason: &'static str,
    },
    #[error("topic prefix {value:?}: {reason}")]
    Prefix { value: String, reason: &'static str },
}

/// Checks one device id or group name (see the module doc for the rules).
pub fn validate_id(kind: IdKind, value: &str) -> Result<(), TopicError> {
    let fail = |reason| {
        Err(TopicError::Id {
            kind,
            value: value.to_string(),
            reason,
        })
    };
    if value.is_empty() {
        return fail("must not be empty");
    }
    if value.len() > MAX_ID_LEN {
        return fail("must be at most 64 bytes long");
    }
    if value.contains('/') {
        return fail("must not contain '/'");
    }
    if value.contains(['+', '#']) {
        return fail("must not contain the MQTT wildcards '+' or '#'");
    }
    if value.chars().any(char::is_control) {
        return fail("must not contain control characters");
    }
    Ok(())
}

fn validate_prefix(value: &str) -> Result<(), TopicError> {
    let fail = |reason| {
        Err(TopicError::Prefix {
            value: value.to_string(),
            reason,
        })
    };
    if value.is_empty() {
        return fail("must not be empty");
    }
    if value.contains(['+', '#']) {
        return fail("must not contain the MQTT wildcards '+' or '#'");
    }
    if value.chars().any(char::is_control) {
        return fail("must not contain control characters");
    }
    if value.split('/').any(str::is_empty) {
        return fail("must not start or end with '/' or contain '//'");
    }
    Ok(())
}

/// Where a desired document came from: the device's own topic or a group's.
/// Ordered so that it can key maps (device first, then groups by name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Source {
    Device(String),
    Group(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Device(id) => write!(f, "device {id}"),
            Source::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// An inbound topic, classified. Ids are not validated here beyond being
/// one non-empty level: any such topic under the prefix is classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// `devices/<id>/desired` or `groups/<g>/desired`.
    Desired(Source),
    /// `devices/<id>/status`.
    Status(String),
    /// `devices/<id>/online`.
    Online(String),
    /// `devices/<id>/events`.
    Events(String),
    /// `devices/<id>/groups/<g>/desired`: the device's override of group
    /// `g`'s document (device id, group).
    Override(String, String),
}

/// The topic names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Default for Topics {
    fn default() -> Topics {
        Topics {
            prefix: DEFAULT_PREFIX.to_string(),
        }
    }
}

impl Topics {
    /// Topics under `prefix` (`picolet`, or several levels like `acme/picolet`).
    pub fn new(prefix: &str) -> Result<Topics, TopicError> {
        validate_prefix(prefix)?;
        Ok(Topics {
            prefix: prefix.to_string(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn device(&self, id: &str, leaf: &str) -> String {
        format!("{}/devices/{id}/{leaf}", self.prefix)
    }

    /// `<prefix>/devices/<id>/desired`.
    pub fn device_desired(&self, id: &str) -> String {
        self.device(id, "desired")
    }

    /// `<prefix>/groups/<group>/desired`.
    pub fn group_desired(&self, group: &str) -> String {
        format!("{}/groups/{group}/desired", self.prefix)
    }

    /// `<prefix>/devices/<id>/groups/<group>/desired`: the per-device
    /// override of a group's document.
    pub fn group_override(&self, id: &str, group: &str) -> String {
        self.device(id, &format!("groups/{group}/desired"))
    }

    /// The desired topic of a [`Source`].
    pub fn desired(&self, source: &Source) -> String {
        match source {
            Source::Device(id) => self.device_desired(id),
            Source::Group(g) => self.group_desired(g),
        }
    }

    /// `<prefix>/devices/<id>/status`.
    pub fn device_status(&self, id: &str) -> String {
        self.device(id, "status")
    }

    /// `<prefix>/devices/<id>/online`.
    pub fn device_online(&self, id: &str) -> String {
        self.device(id, "online")
    }

    /// `<prefix>/devices/<id>/events`.
    pub fn device_events(&self, id: &str) -> String {
        self.device(id, "events")
    }

    /// `<prefix>/devices/+/status`: every device's status (for `picolet fleet status`).
    pub fn all_status_filter(&self) -> String {
        self.device("+", "status")
    }

    /// `<prefix>/devices/+/online`: every device's online flag.
    pub fn all_online_filter(&self) -> String {
        self.device("+", "online")
    }

    /// Classifies an inbound topic; `None` for anything not under the
    /// prefix or not one of the fleet topics.
    pub fn parse(&self, topic: &str) -> Option<Topic> {
        let rest = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('/')?;
        let mut levels = rest.split('/');
        let (kind, id, leaf) = (levels.next()?, levels.next()?, levels.next()?);
        if id.is_empty() {
            return None;
        }
        let id = id.to_string();
        match (levels.next(), levels.next(), levels.next()) {
            (None, ..) => {}
            (Some(g), Some("desired"), None) => {
                return (kind == "devices" && leaf == "groups" && !g.is_empty())
                    .then(|| Topic::Override(id, g.to_string()));
            }
            _ => return None,
        }
        match (kind, leaf) {
            ("devices", "desired") => Some(Topic::Desired(Source::Device(id))),
            ("groups", "desired") => Some(Topic::Desired(Source::Group(id))),
            ("devices", "status") => Some(Topic::Status(id)),
            ("devices", "online") => Some(Topic::Online(id)),
            ("devices", "events") => Some(Topic::Events(id)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prefix_builds_the_design_topics() {
        let t = Topics::default();
        assert_eq!(t.device_desired("pi-1"), "picolet/devices/pi-1/desired");
        assert_eq!(t.group_desired("kitchen"), "picolet/groups/kitchen/desired");
        assert_eq!(t.device_status("pi-1"), "picolet/devices/pi-1/status");
        assert_eq!(t.device_online("pi-1"), "picolet/devices/pi-1/online");
        assert_eq!(t.device_events("pi-1"), "picolet/devices/pi-1/events");
        assert_eq!(
            t.group_override("pi-1", "kitchen"),
            "picolet/devices/pi-1/groups/kitchen/desired"
        );
        assert_eq!(t.all_status_filter(), "picolet/devices/+/status");
        assert_eq!(t.all_online_filter(), "picolet/devices/+/online");
        assert_eq!(
            t.desired(&Source::Group("g".into())),
            "picolet/groups/g/desired"
        );
    }

    #[test]
    fn parse_classifies_every_topic_it_builds() {
        let t = Topics::new("acme/edge").unwrap();
        let dev = || "pi-1".to_string();
        let cases = [
            (
                t.device_desired("pi-1"),
                Topic::Desired(Source::Device(dev())),
            ),
            (
                t.group_desired("g1"),
                Topic::Desired(Source::Group("g1".into())),
            ),
            (t.device_status("pi-1"), Topic::Status(dev())),
            (t.device_online("pi-1"), Topic::Online(dev())),
            (t.device_events("pi-1"), Topic::Events(dev())),
            (
                t.group_override("pi-1", "g1"),
                Topic::Override(dev(), "g1".into()),
            ),
        ];
        for (topic, want) in cases {
            assert_eq!(t.parse(&topic), Some(want), "{topic}");
        }
    }

    #[test]
    fn parse_ignores_foreign_and_malformed_topics() {
        let t = Topics::default();
        for topic in [
            "other/devices/a/desired",
            "picolets/devices/a/desired",
            "picolet",
            "picolet/devices/a",
            "picolet/devices//desired",
            "picolet/devices/a/desired/extra",
            "picolet/groups/a/status",
            "picolet/nodes/a/desired",
            "picolet/devices/a/unknown",
            "picolet/devices/a/groups//desired",
            "picolet/devices/a/groups/g/status",
            "picolet/groups/a/groups/g/desired",
            "picolet/devices/a/groups/g/desired/x",
        ] {
            assert_eq!(t.parse(topic), None, "{topic}");
        }
    }

    #[test]
    fn ids_with_wildcards_slashes_or_too_many_bytes_are_refused() {
        assert!(validate_id(IdKind::Device, "pi-17.kitchen_A").is_ok());
        assert!(validate_id(IdKind::Device, &"x".repeat(64)).is_ok());
        let bad = [
            ("", "must not be empty"),
            ("a/b", "must not contain '/'"),
            ("a+", "must not contain the MQTT wildcards '+' or '#'"),
            ("#", "must not contain the MQTT wildcards '+' or '#'"),
            ("a\u{0}b", "must not contain control characters"),
        ];
        for (id, reason) in bad {
            let err = validate_id(IdKind::Group, id).unwrap_err();
            assert_eq!(
                err,
                TopicError::Id {
                    kind: IdKind::Group,
                    value: id.to_string(),
                    reason
                }
            );
        }
        let long = validate_id(IdKind::Device, &"x".repeat(65)).unwrap_err();
        assert!(long.to_string().starts_with("device id \"xxx"), "{long}");
        assert!(long.to_string().ends_with("must be at most 64 bytes long"));
    }

    #[test]
    fn prefixes_with_empty_levels_or_wildcards_are_refused() {
        assert!(Topics::new("a/b/c").is_ok());
        for p in ["", "/a", "a/", "a//b", "a/+", "#"] {
            assert!(Topics::new(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn sources_order_the_device_before_its_groups() {
        let mut v = [
            Source::Group("b".into()),
            Source::Device("z".into()),
            Source::Group("a".into()),
        ];
        v.sort();
        assert_eq!(v[0], Source::Device("z".into()));
        assert_eq!(v[1], Source::Group("a".into()));
        assert_eq!(Source::Group("a".into()).to_string(), "group a");
    }
}
