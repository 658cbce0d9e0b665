//! The session's public types: configuration, inputs, outputs, errors.

pub const DEFAULT_KEEPALIVE_S: u16 = 30;
pub const DEFAULT_RESPONSE_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 20_000;
pub const DEFAULT_MAX_PACKET_SIZE: usize = 1 << 20;
pub const DEFAULT_MAX_QUEUED: usize = 256;
pub const BACKOFF_MIN_MS: u64 = 1_000;
pub const BACKOFF_MAX_MS: u64 = 60_000;

/// Delivery guarantee of an outbound publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    AtMostOnce,
    AtLeastOnce,
}

/// The last will: published by the broker (QoS 1) when the connection ends
/// without a DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// Everything the session needs to know up front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub client_id: String,
    pub clean_session: bool,
    pub username: Option<String>,
    /// Sent only together with `username` (MQTT 3.1.1 §3.1.2.9).
    pub password: Option<String>,
    pub will: Option<Will>,
    /// Topic filters subscribed (QoS 1) after every CONNACK.
    pub subscriptions: Vec<String>,
    /// 0 disables keepalive.
    pub keepalive_s: u16,
    pub response_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub max_packet_size: usize,
    /// Most QoS 1 publishes kept in flight (clamped to 1..=60000).
    pub max_queued: usize,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    /// Seeds the back-off jitter: give each device a different one (e.g.
    /// the boot time in ns mixed with the PID).
    pub jitter_seed: u64,
}

impl SessionConfig {
    /// Defaults: persistent session, 30 s keepalive, 1 MiB packets, no will,
    /// no credentials, no subscriptions, jitter seed 0.
    pub fn new(client_id: impl Into<String>) -> SessionConfig {
        SessionConfig {
            client_id: client_id.into(),
            clean_session: false,
            username: None,
            password: None,
            will: None,
            subscriptions: Vec::new(),
            keepalive_s: DEFAULT_KEEPALIVE_S,
            response_timeout_ms: DEFAULT_RESPONSE_TIMEOUT_MS,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            max_queued: DEFAULT_MAX_QUEUED,
            backoff_min_ms: BACKOFF_MIN_MS,
            backoff_max_ms: BACKOFF_MAX_MS,
            jitter_seed: 0,
        }
    }

    /// A device's session: client id = `device_id`, and the last will
    /// `<prefix>/devices/<id>/online` = `false`, retained (DESIGN §5).
    pub fn device(device_id: &str, topic_prefix: &str) -> SessionConfig {
        let mut cfg = SessionConfig::new(device_id);
        cfg.will = Some(Will {
            topic: format!("{topic_prefix}/devices/{device_id}/online"),
            payload: b"false".to_vec(),
            retain: true,
        });
        cfg
    }
}

/// What the I/O shell tells the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionInput<'a> {
    /// Time passed: handle the timers due at `now`.
    Tick,
    /// The transport asked for by [`SessionOutput::Connect`] is up.
    Connected,
    /// Bytes read from the transport (any fragment of the stream).
    Bytes(&'a [u8]),
    /// The transport failed or the peer closed it (or it never came up).
    Disconnected(String),
    /// An application publish.
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos: Qos,
        retain: bool,
    },
    /// Add topic filters to the subscriptions (sent now if connected).
    Subscribe(Vec<String>),
    /// Remove topic filters from the subscriptions (sent now if connected).
    Unsubscribe(Vec<String>),
    /// Say DISCONNECT (the broker then drops the will) and stop for good.
    Shutdown,
}

/// What the session asks of the I/O shell, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionOutput {
    /// Open a transport to the broker now.
    Connect,
    /// Write these bytes to the transport.
    Transmit(Vec<u8>),
    /// Drop the transport (or the connect attempt).
    Close,
    /// The broker accepted the CONNECT: (re)publish status and `online`.
    ConnectionUp {
        session_present: bool,
    },
    /// The connection that was up is gone; a reconnect is scheduled.
    ConnectionDown,
    /// An inbound PUBLISH (already acknowledged).
    Message {
        topic: String,
        payload: Vec<u8>,
        retained: bool,
    },
    /// The broker acknowledged a QoS 1 publish to `topic`.
    Delivered {
        topic: String,
    },
    Error(SessionError),
}

/// Why a connection attempt or a connection ended, or an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("incoming MQTT packet of {size} bytes exceeds the limit of {max} bytes")]
    PacketTooLarge { size: usize, max: usize },
    /// An inbound PUBLISH over `max_packet_size`, consumed without being
    /// buffered: its payload was discarded as it streamed in, and it was
    /// acknowledged (QoS 1: PUBACK; QoS 2: PUBREC) so that the broker does
    /// not send it again. The connection stays up.
    #[error(
        "a message on {topic:?} of {payload} bytes (an MQTT packet of {size} bytes, over the limit of {max} bytes) was discarded unread"
    )]
    MessageTooLarge {
        topic: String,
        /// Payload bytes.
        payload: usize,
        /// Remaining length of the packet, as `PacketTooLarge::size`.
        size: usize,
        max: usize,
        retained: bool,
    },
    #[error("the broker refused the connection: {reason} (CONNACK return code {code})")]
    Refused { code: u8, reason: &'static str },
    #[error("MQTT protocol error: {0}")]
    Protocol(String),
    #[error("no MQTT connection within {0} ms")]
    ConnectTimeout(u64),
    #[error("connection dead: nothing received within {0} ms of a PINGREQ")]
    KeepaliveTimeout(u64),
    #[error("connection lost: {0}")]
    Transport(String),
    #[error("the broker refused the subscription to {0:?}")]
    SubscribeRefused(String),
    #[error("outbound queue full ({max} publishes): dropped the oldest, to {topic:?}")]
    QueueFull { topic: String, max: usize },
    #[error("cannot publish to {topic:?}: {reason}")]
    InvalidPublish { topic: String, reason: &'static str },
}
