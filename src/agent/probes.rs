//! Running tcpSocket, httpGet and grpc probes as reactor tasks (exec probes go
//! through the pod's shim). The socket is opened inside the pod's network
//! namespace by [`crate::probe`].

use super::Msg;
use crate::lifecycle::Input;
use crate::probe::{self, NetNs};
use crate::reactor;
use crate::spec::{self, Container, Probe};
use async_channel::Sender;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

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

fn host_ip(host: Option<&String>) -> Result<IpAddr, String> {
    match host.map(String::as_str) {
        None | Some("") | Some("localhost") => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Some(h) => h
            .parse()
            .map_err(|_| format!("probe host {h:?} is not an IP address")),
    }
}

/// Starts one tcpSocket or httpGet probe; its result comes back as
/// [`Msg::Probe`]. Pod networking is loopback-only for now, so the probe
/// targets 127.0.0.1 inside the pod's network namespace (Kubernetes targets
/// the pod IP, which is the same place).
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
        let input = if let Some(tcp) = &p.tcp_socket {
            match (
                spec::resolve_port(&c, &tcp.port),
                host_ip(tcp.host.as_ref()),
            ) {
                (Ok(port), Ok(ip)) => {
                    let o = probe::tcp(netns.as_deref(), SocketAddr::new(ip, port), timeout).await;
                    with_outcome(result, o.success, o.message)
                }
                (Err(e), _) => with_outcome(result, false, e.to_string()),
                (_, Err(e)) => with_outcome(result, false, e),
            }
        } else if let Some(http) = &p.http_get {
            match (
                spec::resolve_port(&c, &http.port),
                host_ip(http.host.as_ref()),
            ) {
                (Ok(port), Ok(ip)) => {
                    let headers: Vec<(String, String)> = http
                        .http_headers
                        .iter()
                        .map(|h| (h.name.clone(), h.value.clone()))
                        .collect();
                    let path = http.path.as_deref().unwrap_or("/");
                    let get = probe::Get {
                        addr: SocketAddr::new(ip, port),
                        name: None,
                        https: http.scheme.as_deref() == Some("HTTPS"),
                        path,
                        headers: &headers,
                    };
                    let o = probe::http_get(netns.as_deref(), &get, timeout).await;
                    with_outcome(result, o.success, o.message)
                }
                (Err(e), _) => with_outcome(result, false, e.to_string()),
                (_, Err(e)) => with_outcome(result, false, e),
            }
        } else if let Some(g) = &p.grpc {
            // Validation keeps the port in 1..=65535.
            let port = u16::try_from(g.port).unwrap_or(0);
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
            let service = g.service.as_deref().unwrap_or("");
            let o = probe::grpc(netns.as_deref(), addr, service, timeout).await;
            with_outcome(result, o.success, o.message)
        } else {
            with_outcome(result, false, "probe has no handler".into())
        };
        let _ = tx.send(Msg::Probe(Box::new(input))).await;
    })
    .detach();
}
