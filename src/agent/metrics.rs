//! Resource metrics: the I/O shell around [`crate::metrics`]
//! (docs/metrics.md).
//!
//! Every `--metrics-interval` (default 30 s; 0: off), on a reactor timer,
//! [`Agent::sample_metrics`] reads each pod's cgroup and its running
//! containers' leaves with one [`Reader`] (reused buffers: no allocation
//! per read), records them in the core, and marks the fleet status dirty
//! when a pod's published usage moved. The reads are small cgroupfs files:
//! they never block, as the agent's other cgroup reads.
//!
//! `--metrics-addr IP:PORT` serves `GET /metrics` (Prometheus text) on the
//! reactor: at most [`MAX_CONNS`] connections at once (more are closed at
//! accept), a request head of at most [`MAX_REQUEST`] bytes (400 past it,
//! and for a request line that is not `METHOD TARGET HTTP/1.x`),
//! [`CONN_TIMEOUT`] for the whole exchange, 404 for any other request. The
//! text is rendered by the main loop ([`super::Msg::Scrape`]) from the last
//! samples.

use super::{Agent, AgentError, Msg};
use crate::api::Response;
use crate::metrics::{Metrics, Sample, prom, read::Reader};
use crate::reactor::{self, Async};
use async_channel::Sender;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use std::cell::Cell;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

/// Connections served at once by the endpoint.
pub const MAX_CONNS: usize = 4;
/// The longest request head the endpoint reads.
pub const MAX_REQUEST: usize = 4096;
/// Time for a whole exchange of the endpoint.
pub const CONN_TIMEOUT: Duration = Duration::from_secs(10);

/// The agent's part: the core and the read buffers.
#[derive(Debug, Default)]
pub(super) struct AgentMetrics {
    core: Metrics,
    reader: Reader,
}

impl Agent {
    /// Takes the first sample, starts the timer and the endpoint (unless
    /// metrics are off).
    pub(super) fn metrics_start(&mut self) -> Result<(), AgentError> {
        let every = self.cfg.metrics_interval;
        if every.is_zero() {
            return Ok(());
        }
        self.sample_metrics();
        let tx = self.tx.clone();
        reactor::spawn(async move {
            loop {
                reactor::sleep(every).await;
                if tx.send(Msg::MetricsTick).await.is_err() {
                    return;
                }
            }
        })
        .detach();
        if let Some(addr) = self.cfg.metrics_addr {
            serve(addr, self.tx.clone()).map_err(|source| AgentError::Io {
                what: "listening on (--metrics-addr)",
                path: addr.to_string().into(),
                source,
            })?;
            log::info!("metrics: serving http://{addr}/metrics");
        }
        Ok(())
    }

    /// One round of samples (see the module doc).
    pub(super) fn sample_metrics(&mut self) {
        let now = crate::clock::boottime_ms();
        let AgentMetrics { core, reader } = &mut self.metrics;
        core.begin(now);
        for (uid, rt) in &self.shims.pods {
            let Some(cg) = rt.cgroup.as_deref() else {
                continue;
            };
            core.record(uid, "", reader.sample(cg, ""));
            for name in rt.running.keys() {
                core.record(uid, name, reader.sample(cg, name));
            }
        }
        core.end();
        if core.publish(now, self.cfg.metrics_interval.as_millis() as u64) {
            if let Some(f) = self.fleet.as_mut() {
                f.status_changed();
            }
        }
    }

    /// Pod `uid`'s usage as last published (for the fleet status).
    pub(super) fn published_usage(&self, uid: &str) -> Option<crate::metrics::Usage> {
        self.metrics.core.published(uid)
    }

    /// `picolet top`'s answer: every admitted pod and its containers'
    /// figures.
    pub(super) fn top(&self) -> Response {
        if self.cfg.metrics_interval.is_zero() {
            return Response::Error(
                "metrics are off: the agent runs with --metrics-interval 0".into(),
            );
        }
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        Response::Top(
            self.node
                .admitted()
                .map(|p| {
                    let mut line = format!("{} {}", p.namespace(), p.name());
                    for c in self
                        .metrics
                        .core
                        .pod(&p.uid)
                        .into_iter()
                        .flat_map(|m| m.containers())
                    {
                        let mem = c.series.last().and_then(Sample::working_set);
                        let cpu = c.series.cpu_milli();
                        line += &format!(" {}:{}:{}", c.name, opt(cpu), opt(mem));
                    }
                    line
                })
                .collect(),
        )
    }

    /// The Prometheus text of the last samples (see [`prom`]).
    pub(super) fn render_metrics(&mut self) -> String {
        let AgentMetrics { core, reader } = &mut self.metrics;
        let mut rows = Vec::new();
        for (uid, p) in core.pods() {
            let Some(v) = self.node.pod(uid) else {
                continue;
            };
            for c in &p.cgroups {
                if let Some(s) = c.series.last() {
                    rows.push((v.namespace(), v.name(), c.name.as_str(), s));
                }
            }
        }
        let fleet = self.fleet.as_ref().map(|f| f.is_up());
        let mut out = String::new();
        prom::write(&mut out, &rows, reader.self_rss(), fleet);
        out
    }
}

/// Listens on `addr` and serves the endpoint (see the module doc).
fn serve(addr: SocketAddr, tx: Sender<Msg>) -> std::io::Result<()> {
    let listener = Async::<TcpListener>::bind(addr)?;
    let live = Rc::new(Cell::new(0usize));
    reactor::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    log::debug!("metrics accept: {e}");
                    reactor::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if live.get() >= MAX_CONNS {
                continue; // closed
            }
            live.set(live.get() + 1);
            let (live, tx) = (live.clone(), tx.clone());
            reactor::spawn(async move {
                if let Ok(Err(e)) = reactor::timeout(CONN_TIMEOUT, answer(stream, &tx)).await {
                    log::debug!("metrics connection: {e}");
                }
                live.set(live.get() - 1);
            })
            .detach();
        }
    })
    .detach();
    Ok(())
}

/// Reads one request head and answers it.
async fn answer(mut s: Async<TcpStream>, tx: &Sender<Msg>) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut n = 0;
    let wanted = loop {
        if n == buf.len() {
            break None;
        }
        let got = s.read(&mut buf[n..]).await?;
        if got == 0 {
            return Ok(());
        }
        n += got;
        // The head is complete: its request line decides (a hand-written
        // check: `METHOD TARGET HTTP/1.x`; headers and body are ignored).
        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            let line = buf[..n].split(|b| *b == b'\n').next().unwrap_or_default();
            let mut parts = line.trim_ascii_end().split(|b| *b == b' ');
            let (method, target, version) = (parts.next(), parts.next(), parts.next());
            if !version.is_some_and(|v| v.starts_with(b"HTTP/1.")) || parts.next().is_some() {
                break None;
            }
            let path = target.and_then(|t| t.split(|b| *b == b'?').next());
            break Some(method == Some(&b"GET"[..]) && path == Some(&b"/metrics"[..]));
        }
    };
    drop(buf);
    let (status, body) = match wanted {
        Some(true) => {
            let (reply, answer) = async_channel::bounded(1);
            let _ = tx.send(Msg::Scrape(reply)).await;
            ("200 OK", answer.recv().await.unwrap_or_default())
        }
        Some(false) => ("404 Not Found", "404 page not found\n".to_string()),
        None => ("400 Bad Request", "400 Bad Request\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    s.flush().await
}
