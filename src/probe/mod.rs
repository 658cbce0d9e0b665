//! Probe execution on the reactor: `tcpSocket`, `httpGet` (HTTP, or
//! HTTPS without certificate verification: [`tls`]) and `grpc` (the
//! standard health protocol over h2c: [`grpc`]), with sockets
//! opened inside the pod's network namespace (see [`netns`] for how, and why
//! that needs the agent's single thread). `exec` probes run through the shim.
//!
//! Each probe opens one TCP socket, runs under one overall timeout and
//! returns an [`Outcome`] whose message reads like the kubelet's
//! (`dial tcp 10.0.0.5:80: connect: connection refused`,
//! `HTTP probe failed with statuscode: 500`). The probe thresholds and
//! schedule are decided by `lifecycle`, not here.

mod grpc;
#[cfg(test)]
mod grpc_tests;
pub mod hpack;
mod http;
pub mod netns;
pub mod resolve;
#[cfg(test)]
mod tests;
mod tls;
#[cfg(test)]
mod tls_tests;

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::reactor::{self, Async};

pub use grpc::grpc;
pub use http::{Get, http_get};
pub use netns::{NetNs, with_netns};

/// The result of one probe run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub success: bool,
    /// Empty on a plain success; otherwise a kubelet-style explanation.
    pub message: String,
}

impl Outcome {
    fn success(message: impl Into<String>) -> Outcome {
        Outcome {
            success: true,
            message: message.into(),
        }
    }

    fn failure(message: impl Into<String>) -> Outcome {
        Outcome {
            success: false,
            message: message.into(),
        }
    }
}

/// A `tcpSocket` probe: succeeds when a TCP connection to `addr`, made
/// from inside `ns` (`None`: the agent's own namespace), completes within
/// `timeout`. The connection is closed at once.
pub async fn tcp(ns: Option<&NetNs>, addr: SocketAddr, timeout: Duration) -> Outcome {
    match reactor::timeout(timeout, connect(ns, addr)).await {
        Ok(Ok(_stream)) => Outcome::success(""),
        Ok(Err(e)) => Outcome::failure(e.to_string()),
        Err(reactor::TimedOut) => Outcome::failure(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// Why a connection could not be made, worded like Go's `net.OpError`.
#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("dial tcp {addr}: cannot enter the pod's network namespace: {}", os_text(.source))]
    Netns { addr: SocketAddr, source: io::Error },
    #[error("dial tcp {addr}: socket: {}", os_text(.source))]
    Socket { addr: SocketAddr, source: io::Error },
    #[error("dial tcp {addr}: connect: {}", os_text(.source))]
    Connect { addr: SocketAddr, source: io::Error },
}

/// Opens a TCP connection to `addr` from inside `ns`.
async fn connect(ns: Option<&NetNs>, addr: SocketAddr) -> Result<Async<TcpStream>, DialError> {
    let socket = match ns {
        None => reactor::new_tcp_socket(&addr),
        Some(ns) => with_netns(ns, || reactor::new_tcp_socket(&addr))
            .map_err(|source| DialError::Netns { addr, source })?,
    }
    .map_err(|source| DialError::Socket { addr, source })?;
    Async::<TcpStream>::connect_socket(socket, addr)
        .await
        .map_err(|source| DialError::Connect { addr, source })
}

/// An OS error as Go prints it: `connection refused`, without Rust's
/// capital letter and ` (os error 111)` suffix.
fn os_text(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error ") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
