//! Running tcpSocket, httpGet and grpc probes as reactor tasks (exec probes
//! go through the pod's shim). The socket is opened inside the pod's
//! network namespace by [`crate::probe`]; a `host` given as a name is
//! looked up first, off the thread ([`crate::probe::resolve`]).

use super::Msg;
use crate::lifecycle::Input;
use crate::probe::{self, NetNs, resolve};
use crate::reactor;
use crate::spec::{self, Container, Probe};
use async_channel::Sender;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

fn with_outcome(mut input: Input, ok: bool, msg: String) -> Input {
    if let Input::ProbeResult {
        success, message, ..
    } = &mut input
    {
        *success = ok;
        *message = msg;
    }
    input
}

/// Starts one tcpSocket, httpGet or grpc probe; its result comes back as
/// [`Msg::Probe`]. Without a `host` the probe targets 127.0.0.1 inside the
/// pod's network namespace (Kubernetes targets the pod IP, which is the
/// same place). `timeout_ms` covers the lookup of a host name too.
pub fn spawn(
    tx: Sender<Msg>,
    netns: Option<Rc<NetNs>>,
    c: Container,
    p: Probe,
    timeout_ms: u64,
    result: Input,
) {
    let timeout = Duration::from_millis(timeout_ms.max(1));
    reactor::spawn(async move {
        let (ok, message) = run(netns.as_deref(), &c, &p, timeout).await;
        let input = with_outcome(result, ok, message);
        let _ = tx.send(Msg::Probe(Box::new(input))).await;
    })
    .detach();
}

/// The time left of `timeout` since `start` (at least a millisecond).
fn left(start: Instant, timeout: Duration) -> Duration {
    timeout
        .saturating_sub(start.elapsed())
        .max(Duration::from_millis(1))
}

async fn run(ns: Option<&NetNs>, c: &Container, p: &Probe, timeout: Duration) -> (bool, String) {
    let start = Instant::now();
    let resolver = Path::new(resolve::RESOLVER);
    if let Some(tcp) = &p.tcp_socket {
        let port = match spec::resolve_port(c, &tcp.port) {
            Ok(port) => port,
            Err(e) => return (false, e.to_string()),
        };
        let t = match resolve::target(resolver, tcp.host.as_deref(), timeout).await {
            Ok(t) => t,
            Err(e) => return (false, format!("dial tcp: {e}")),
        };
        let o = probe::tcp(ns, SocketAddr::new(t.ip, port), left(start, timeout)).await;
        (o.success, o.message)
    } else if let Some(http) = &p.http_get {
        let port = match spec::resolve_port(c, &http.port) {
            Ok(port) => port,
            Err(e) => return (false, e.to_string()),
        };
        let https = http.scheme.as_deref() == Some("HTTPS");
        let path = http.path.as_deref().unwrap_or("/");
        let t = match resolve::target(resolver, http.host.as_deref(), timeout).await {
            Ok(t) => t,
            Err(e) => {
                let scheme = if https { "https" } else { "http" };
                let host = http.host.as_deref().unwrap_or_default();
                let slash = if path.starts_with('/') { "" } else { "/" };
                let url = format!("{scheme}://{host}:{port}{slash}{path}");
                return (false, format!("Get {url:?}: dial tcp: {e}"));
            }
        };
        let headers: Vec<(String, String)> = http
            .http_headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        let get = probe::Get {
            addr: SocketAddr::new(t.ip, port),
            name: t.name.as_deref(),
            https,
            path,
            headers: &headers,
        };
        let o = probe::http_get(ns, &get, left(start, timeout)).await;
        (o.success, o.message)
    } else if let Some(g) = &p.grpc {
        // Validation keeps the port in 1..=65535.
        let port = u16::try_from(g.port).unwrap_or(0);
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let service = g.service.as_deref().unwrap_or("");
        let o = probe::grpc(ns, addr, service, timeout).await;
        (o.success, o.message)
    } else {
        (false, "probe has no handler".into())
    }
}
