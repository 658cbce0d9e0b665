//! A small MQTT client for one-shot commands: the sans-IO
//! [`Session`] driven over one [`Transport`] on the reactor, inside
//! [`crate::reactor::block_on`]. One reader task; writes are awaited in
//! place. No reconnect: a lost connection is an error for a command.
//!
//! Used by the controller CLI, and by tests and benches that publish raw
//! payloads. Fds: one TCP socket. No thread.

use crate::clock::Now;
use crate::fleet::config::Credentials;
use crate::fleet::session::{Qos, Session, SessionConfig, SessionInput, SessionOutput};
use crate::fleet::transport::{self, BrokerUrl, TlsSettings, Transport};
use crate::reactor::{self, Task};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How to reach the broker.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub url: BrokerUrl,
    pub tls: TlsSettings,
    pub credentials: Option<Credentials>,
    pub client_id: String,
    pub keepalive_s: u16,
}

impl ClientOptions {
    /// Plain options for `url` (TLS files and credentials unset), with a
    /// client id unique to this process.
    pub fn new(url: BrokerUrl) -> ClientOptions {
        ClientOptions {
            url,
            tls: TlsSettings::default(),
            credentials: None,
            client_id: format!(
                "picolet-ctl-{}-{:x}",
                std::process::id(),
                crate::clock::wall_ns() & 0xffff_ffff
            ),
            keepalive_s: 30,
        }
    }
}

/// Why a command's broker connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("connection to {url} lost: {reason}")]
    Lost { url: String, reason: String },
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout { secs: u64, what: String },
    #[error("cannot publish to {topic}: {reason}")]
    Publish { topic: String, reason: String },
}

/// A message received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retained: bool,
}

enum Ev {
    Bytes(Vec<u8>),
    Closed(String),
}

/// A connected client (see the module doc).
#[derive(Debug)]
pub struct Client {
    session: Session,
    url: String,
    client_id: String,
    conn: Option<(Transport, Task<()>)>,
    rx: async_channel::Receiver<Ev>,
    tx: async_channel::Sender<Ev>,
    inbox: VecDeque<Message>,
    /// Delivered QoS 1 publishes per topic.
    delivered: HashMap<String, usize>,
    up: bool,
    last_error: Option<String>,
    sync_seq: u64,
}

impl std::fmt::Debug for Ev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ev::Bytes(b) => write!(f, "Bytes({})", b.len()),
            Ev::Closed(w) => write!(f, "Closed({w})"),
        }
    }
}

impl Client {
    /// Connects (TCP, TLS, CONNECT/CONNACK) within `limit`.
    pub async fn connect(opts: &ClientOptions, limit: Duration) -> Result<Client, ClientError> {
        let mut cfg = SessionConfig::new(opts.client_id.clone());
        cfg.clean_session = true;
        cfg.keepalive_s = opts.keepalive_s;
        cfg.connect_timeout_ms = limit.as_millis() as u64;
        cfg.max_packet_size = 64 << 20;
        if let Some(c) = &opts.credentials {
            cfg.username = Some(c.username.clone());
            cfg.password = c.password.clone();
        }
        let (tx, rx) = async_channel::unbounded();
        let mut c = Client {
            session: Session::new(cfg),
            url: opts.url.to_string(),
            client_id: opts.client_id.clone(),
            conn: None,
            rx,
            tx,
            inbox: VecDeque::new(),
            delivered: HashMap::new(),
            up: false,
            last_error: None,
            sync_seq: 0,
        };
        c.session.handle(SessionInput::Tick, Now::read());
        // The session asks for `Connect` at once.
        match c.session.poll_output() {
            Some(SessionOutput::Connect) => {}
            other => unreachable!("a new session starts with Connect, not {other:?}"),
        }
        let deadline = Instant::now() + limit;
        let url = opts.url.clone();
        match reactor::timeout(limit, transport::connect(&url, &opts.tls)).await {
            Ok(Ok(t)) => c.attach(t),
            Ok(Err(e)) => {
                return Err(ClientError::Connect {
                    url: c.url,
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                return Err(ClientError::Connect {
                    url: c.url,
                    reason: format!("no connection within {} s", limit.as_secs()),
                });
            }
        }
        while !c.up {
            if !c.step(deadline).await? {
                return Err(ClientError::Connect {
                    url: c.url,
                    reason: "no CONNACK in time".into(),
                });
            }
        }
        Ok(c)
    }

    fn attach(&mut self, t: Transport) {
        let (reader, tx) = (t.clone(), self.tx.clone());
        let task = reactor::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let ev = match reader.read(&mut buf).await {
                    Ok(0) => Ev::Closed("end of stream".into()),
                    Ok(n) => Ev::Bytes(buf[..n].to_vec()),
                    Err(e) => Ev::Closed(e.to_string()),
                };
                let closed = matches!(ev, Ev::Closed(_));
                if tx.send(ev).await.is_err() || closed {
                    return;
                }
            }
        });
        self.conn = Some((t, task));
        self.session.handle(SessionInput::Connected, Now::read());
    }

    /// Carries out the session's outputs if there are any, else waits for
    /// one input (bytes, a timer, or `deadline`). `Ok(false)` when
    /// `deadline` passed; callers check what they wait for after each step.
    async fn step(&mut self, deadline: Instant) -> Result<bool, ClientError> {
        let mut progress = false;
        while let Some(out) = self.session.poll_output() {
            progress = true;
            match out {
                SessionOutput::Connect | SessionOutput::ConnectionDown => {
                    let reason = self
                        .last_error
                        .clone()
                        .unwrap_or_else(|| "closed".to_string());
                    let url = self.url.clone();
                    return Err(if self.up {
                        ClientError::Lost { url, reason }
                    } else {
                        ClientError::Connect { url, reason }
                    });
                }
                SessionOutput::Transmit(b) => {
                    let res = match &self.conn {
                        Some((t, _)) => t.write_all(&b).await,
                        None => Ok(()),
                    };
                    if let Err(e) = res {
                        self.conn = None;
                        self.session
                            .handle(SessionInput::Disconnected(e.to_string()), Now::read());
                    }
                }
                SessionOutput::Close => self.conn = None,
                SessionOutput::ConnectionUp { .. } => self.up = true,
                SessionOutput::Message {
                    topic,
                    payload,
                    retained,
                } => self.inbox.push_back(Message {
                    topic,
                    payload,
                    retained,
                }),
                SessionOutput::Delivered { topic } => {
                    *self.delivered.entry(topic).or_default() += 1
                }
                SessionOutput::Error(e) => {
                    let text = e.to_string();
                    if !self.up {
                        return Err(ClientError::Connect {
                            url: self.url.clone(),
                            reason: text,
                        });
                    }
                    self.last_error = Some(text);
                }
            }
        }
        let now = Instant::now();
        if progress {
            return Ok(true);
        }
        if now >= deadline {
            return Ok(false);
        }
        let mut wait = deadline - now;
        if let Some(due) = self.session.poll_timeout() {
            let ms = due.saturating_sub(Now::read().mono_ms);
            wait = wait.min(Duration::from_millis(ms));
        }
        match reactor::timeout(wait, self.rx.recv()).await {
            Ok(Ok(Ev::Bytes(b))) => self.session.handle(SessionInput::Bytes(&b), Now::read()),
            Ok(Ok(Ev::Closed(why))) => {
                self.conn = None;
                self.session
                    .handle(SessionInput::Disconnected(why), Now::read());
            }
            _ => self.session.handle(SessionInput::Tick, Now::read()),
        }
        Ok(true)
    }

    /// Subscribes (QoS 1) to topic filters.
    pub fn subscribe(&mut self, topics: Vec<String>) {
        self.session
            .handle(SessionInput::Subscribe(topics), Now::read());
    }

    /// Publishes with QoS 1 and waits for the broker's PUBACK.
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
        limit: Duration,
    ) -> Result<(), ClientError> {
        let before = self.delivered.get(topic).copied().unwrap_or(0);
        let input = SessionInput::Publish {
            topic: topic.to_string(),
            payload,
            qos: Qos::AtLeastOnce,
            retain,
        };
        self.session.handle(input, Now::read());
        let deadline = Instant::now() + limit;
        while self.delivered.get(topic).copied().unwrap_or(0) <= before {
            if !self.step(deadline).await? {
                return Err(ClientError::Publish {
                    topic: topic.to_string(),
                    reason: format!("no PUBACK within {} s", limit.as_secs()),
                });
            }
        }
        Ok(())
    }

    /// The next message, or `None` once `deadline` passed.
    pub async fn next_message(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<Message>, ClientError> {
        loop {
            if let Some(m) = self.inbox.pop_front() {
                return Ok(Some(m));
            }
            if !self.step(deadline).await? {
                return Ok(None);
            }
        }
    }

    /// Waits until the broker has handled everything sent so far, so that
    /// the retained messages of earlier subscriptions are all in: a QoS 1
    /// message to a topic of our own comes back through the same ordered
    /// connection. Messages received meanwhile stay queued for
    /// [`Client::next_message`]. `prefix` is the fleet topic prefix.
    pub async fn sync(&mut self, prefix: &str, limit: Duration) -> Result<(), ClientError> {
        self.sync_seq += 1;
        let topic = format!("{prefix}/controllers/{}/sync", self.client_id);
        let token = self.sync_seq.to_string().into_bytes();
        self.subscribe(vec![topic.clone()]);
        self.publish(&topic, token.clone(), false, limit).await?;
        let deadline = Instant::now() + limit;
        let mut seen = 0;
        loop {
            if let Some(i) = self
                .inbox
                .iter()
                .skip(seen)
                .position(|m| m.topic == topic && m.payload == token)
            {
                self.inbox.remove(seen + i);
                return Ok(());
            }
            seen = self.inbox.len();
            if !self.step(deadline).await? {
                return Err(ClientError::Timeout {
                    secs: limit.as_secs(),
                    what: "the broker to answer".into(),
                });
            }
        }
    }

    /// Says DISCONNECT and closes the connection.
    pub async fn disconnect(mut self) {
        self.session.handle(SessionInput::Shutdown, Now::read());
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Some(out) = self.session.poll_output() {
            if let SessionOutput::Transmit(b) = out {
                if let Some((t, _)) = &self.conn {
                    let _ = reactor::timeout_at(deadline, t.write_all(&b)).await;
                }
            }
        }
        if let Some((t, _task)) = self.conn.take() {
            let _ = reactor::timeout_at(deadline, t.close()).await;
        }
    }
}
