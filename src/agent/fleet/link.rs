//! The broker connection under the fleet session: the I/O half of
//! `SessionOutput::{Connect, Transmit, Close}`.
//!
//! - `Connect`: a task runs [`transport::connect`] and reports
//!   [`LinkMsg::Connected`] or [`LinkMsg::ConnectFailed`].
//! - Once connected, a reader task feeds [`LinkMsg::Bytes`] until the end of
//!   the stream ([`LinkMsg::Closed`]); a writer task writes what `Transmit`
//!   queues, in order, so a stalled broker never stalls the main loop.
//! - Flow control: the reader holds [`READ_CREDITS`] credits, spends one
//!   per chunk sent and gets it back when the main loop has handed that
//!   chunk to the session. So at most `READ_CREDITS` chunks
//!   ([`READ_CHUNK`] bytes each, 64 KiB in all) wait in the main loop's
//!   channel: a broker streaming a 5 MB message never makes the agent hold
//!   5 MB (the reader would otherwise read the whole socket without
//!   yielding, the reads never blocking while data is there), and the
//!   session drops an oversized message's payload chunk by chunk.
//! - `Close`: the attempt is abandoned (its task dropped), or the reader is
//!   dropped and the writer finishes what is queued, then closes politely
//!   (TLS close_notify), all within [`CLOSE_GRACE`].
//!
//! Every message carries the connection's generation: leftovers of an
//! earlier connection are ignored. Fds: one TCP socket while connected or
//! connecting. No thread.

use crate::agent::Msg;
use crate::fleet::transport::{self, BrokerUrl, TlsSettings, Transport};
use crate::reactor::{self, Task};
use async_channel::Sender;
use std::time::Duration;

/// How long a closing connection may take to flush and say goodbye.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Reads are done in chunks of this size.
pub const READ_CHUNK: usize = 16 * 1024;
/// Chunks read but not yet handed to the session, at most.
pub const READ_CREDITS: usize = 4;

/// What the connection tasks tell the main loop.
#[derive(Debug)]
pub enum LinkMsg {
    Connected {
        generation: u64,
        transport: Transport,
    },
    ConnectFailed {
        generation: u64,
        error: String,
    },
    Bytes {
        generation: u64,
        bytes: Vec<u8>,
    },
    Closed {
        generation: u64,
        why: String,
    },
}

/// What the session must be told about a [`LinkMsg`].
#[derive(Debug, PartialEq, Eq)]
pub enum LinkEvent {
    Connected,
    Bytes(Vec<u8>),
    Disconnected(String),
}

#[derive(Debug)]
struct Conn {
    generation: u64,
    writer: async_channel::Sender<Vec<u8>>,
    /// Gives the reader back the credit of a chunk handled.
    credits: async_channel::Sender<()>,
    _reader: Task<()>,
    writer_task: Task<()>,
    tls: bool,
}

/// The connection driver (see the module doc).
#[derive(Debug)]
pub struct Link {
    url: BrokerUrl,
    tls: TlsSettings,
    generation: u64,
    /// The attempt in progress: its generation and task.
    connecting: Option<(u64, Task<()>)>,
    conn: Option<Conn>,
    /// Connections finishing their writes after `Close`.
    closing: Vec<Task<()>>,
}

impl Link {
    pub fn new(url: BrokerUrl, tls: TlsSettings) -> Link {
        Link {
            url,
            tls,
            generation: 0,
            connecting: None,
            conn: None,
            closing: Vec::new(),
        }
    }

    pub fn url(&self) -> &BrokerUrl {
        &self.url
    }

    /// Whether the open connection (if any) uses TLS.
    pub fn is_tls(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.tls)
    }

    /// `SessionOutput::Connect`: starts an attempt.
    pub fn connect(&mut self, tx: &Sender<Msg>) {
        self.close();
        self.generation += 1;
        let generation = self.generation;
        let (url, tls, tx) = (self.url.clone(), self.tls.clone(), tx.clone());
        let task = reactor::spawn(async move {
            let msg = match transport::connect(&url, &tls).await {
                Ok(transport) => LinkMsg::Connected {
                    generation,
                    transport,
                },
                Err(e) => LinkMsg::ConnectFailed {
                    generation,
                    error: e.to_string(),
                },
            };
            let _ = tx.send(Msg::Fleet(msg)).await;
        });
        self.connecting = Some((generation, task));
    }

    /// `SessionOutput::Transmit`: queues bytes for the writer.
    pub fn transmit(&mut self, bytes: Vec<u8>) {
        if let Some(c) = &self.conn {
            let _ = c.writer.try_send(bytes);
        }
    }

    /// `SessionOutput::Close`: abandons the attempt or the connection.
    pub fn close(&mut self) {
        self.connecting = None;
        if let Some(c) = self.conn.take() {
            drop(c.writer);
            let writer = c.writer_task;
            self.closing.retain(|t| !t.is_finished());
            self.closing.push(reactor::spawn(async move {
                // On time-out the writer is dropped, and with it the socket.
                let _ = reactor::timeout(CLOSE_GRACE, writer).await;
            }));
        }
    }

    /// Waits (at most [`CLOSE_GRACE`]) for closing connections to finish.
    pub async fn finish(&mut self) {
        for t in self.closing.drain(..) {
            let _ = reactor::timeout(CLOSE_GRACE, t).await;
        }
    }

    /// Handles a message of a connection task; `None` when it is about an
    /// earlier connection or attempt.
    #[must_use = "the event is to be fed to the session"]
    pub fn on_msg(&mut self, msg: LinkMsg, tx: &Sender<Msg>) -> Option<LinkEvent> {
        match msg {
            LinkMsg::Connected {
                generation,
                transport,
            } => {
                if self.connecting.as_ref().map(|(g, _)| *g) != Some(generation) {
                    return None; // dropping `transport` closes it
                }
                self.connecting = None;
                self.conn = Some(start(generation, transport, tx));
                Some(LinkEvent::Connected)
            }
            LinkMsg::ConnectFailed { generation, error } => {
                if self.connecting.as_ref().map(|(g, _)| *g) != Some(generation) {
                    return None;
                }
                self.connecting = None;
                Some(LinkEvent::Disconnected(error))
            }
            LinkMsg::Bytes { generation, bytes } => {
                let c = self.current(generation)?;
                // The caller hands the bytes to the session right away.
                let _ = c.credits.try_send(());
                Some(LinkEvent::Bytes(bytes))
            }
            LinkMsg::Closed { generation, why } => {
                self.current(generation)?;
                self.close();
                Some(LinkEvent::Disconnected(why))
            }
        }
    }

    fn current(&self, generation: u64) -> Option<&Conn> {
        self.conn.as_ref().filter(|c| c.generation == generation)
    }
}

/// Starts the reader and writer tasks of a new connection.
fn start(generation: u64, transport: Transport, tx: &Sender<Msg>) -> Conn {
    let tls = transport.is_tls();
    let (wtx, wrx) = async_channel::unbounded::<Vec<u8>>();
    let (t, etx) = (transport.clone(), tx.clone());
    let writer_task = reactor::spawn(async move {
        while let Ok(bytes) = wrx.recv().await {
            if let Err(e) = t.write_all(&bytes).await {
                let why = format!("writing to {}: {e}", t.peer());
                let _ = etx
                    .send(Msg::Fleet(LinkMsg::Closed { generation, why }))
                    .await;
                return;
            }
        }
        // `Close`: everything queued is written; say goodbye.
        let _ = t.close().await;
    });
    let (t, rtx) = (transport, tx.clone());
    let (credits, credit_rx) = async_channel::bounded::<()>(READ_CREDITS);
    for _ in 0..READ_CREDITS {
        let _ = credits.try_send(());
    }
    let reader = reactor::spawn(async move {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            if credit_rx.recv().await.is_err() {
                return;
            }
            let msg = match t.read(&mut buf).await {
                Ok(0) => LinkMsg::Closed {
                    generation,
                    why: format!("{} closed the connection", t.peer()),
                },
                Ok(n) => LinkMsg::Bytes {
                    generation,
                    bytes: buf[..n].to_vec(),
                },
                Err(e) => LinkMsg::Closed {
                    generation,
                    why: format!("reading from {}: {e}", t.peer()),
                },
            };
            let last = matches!(msg, LinkMsg::Closed { .. });
            if rtx.send(Msg::Fleet(msg)).await.is_err() || last {
                return;
            }
        }
    });
    Conn {
        generation,
        writer: wtx,
        credits,
        _reader: reader,
        writer_task,
        tls,
    }
}
