//! The `grpc` probe: one call of the standard health protocol,
//! `grpc.health.v1.Health/Check`, over cleartext HTTP/2 with prior
//! knowledge (h2c), as the kubelet's probe (which uses no TLS).
//!
//! A hand-written HTTP/2 client for exactly one stream: the client
//! preface, an empty SETTINGS frame, one HEADERS frame (HPACK literals
//! without indexing or Huffman: `:method POST`, `:scheme http`, `:path`,
//! `:authority`, `content-type: application/grpc`, `te: trailers`,
//! `user-agent`, `grpc-timeout`), one DATA frame with END_STREAM (the
//! 5-byte gRPC prefix and the protobuf `HealthCheckRequest{service}`).
//! Then frames are read until stream 1 ends: SETTINGS and PING are
//! acknowledged, headers and trailers are decoded ([`super::hpack`]) for
//! `:status`, `grpc-status` and `grpc-message`, and the first message's
//! field 1 (`ServingStatus`) decides: success only on `SERVING`.
//!
//! Bounds: a frame over 16 KiB (our `SETTINGS_MAX_FRAME_SIZE`, the
//! default) is refused, and at most [`MAX_READ`] bytes are read in all.
//!
//! Messages read like the kubelet's (`pkg/probe/grpc/grpc.go`):
//! `service unhealthy (responded with "NOT_SERVING")`, `error: health rpc
//! probe failed: rpc error: code = NotFound desc = unknown service`,
//! `timeout: failed to connect service "10.0.0.5:9000" within 1s: context
//! deadline exceeded`. One difference: a refused connection fails at once
//! (`error: failed to connect service at "…": dial tcp …: connect:
//! connection refused`) where the kubelet's blocking dial retries until
//! its timeout.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use super::hpack::{Decoder, HpackError};
use super::{NetNs, Outcome, connect, os_text};
use crate::reactor::{self, Async};

/// The largest frame payload accepted (HTTP/2's default and minimum).
const MAX_FRAME: usize = 16 * 1024;
/// At most this many bytes are read from the server.
pub const MAX_READ: usize = 64 * 1024;
const PATH: &str = "/grpc.health.v1.Health/Check";

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// A failed call, as grpc-go's `status` error: a code and a description.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RpcError {
    code: u32,
    message: String,
}

impl RpcError {
    fn new(code: u32, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }
}

const UNKNOWN: u32 = 2;
const DEADLINE_EXCEEDED: u32 = 4;
const UNIMPLEMENTED: u32 = 12;
const INTERNAL: u32 = 13;
const UNAVAILABLE: u32 = 14;

/// Go's `codes.Code.String()`.
fn code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    match NAMES.get(code as usize) {
        Some(name) => name.to_string(),
        None => format!("Code({code})"),
    }
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus` as Go prints it.
fn serving_status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        n => n.to_string(),
    }
}

/// A duration as Go's `time.Duration` prints it (`1s`, `1m30s`, `500ms`).
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms % 60_000);
    let secs = if s % 1000 == 0 {
        format!("{}s", s / 1000)
    } else {
        format!("{}s", s as f64 / 1000.0)
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

/// A `grpc` probe of `service` at `addr` from inside `ns` (`None`: the
/// agent's own namespace); `timeout` bounds the connection and the call.
pub async fn grpc(
    ns: Option<&NetNs>,
    addr: SocketAddr,
    service: &str,
    timeout: Duration,
) -> Outcome {
    let deadline = Instant::now() + timeout;
    let stream = match reactor::timeout_at(deadline, connect(ns, addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            return Outcome::failure(format!(
                "error: failed to connect service at \"{addr}\": {e}"
            ));
        }
        Err(reactor::TimedOut) => {
            return Outcome::failure(format!(
                "timeout: failed to connect service \"{addr}\" within {}: context deadline exceeded",
                go_duration(timeout)
            ));
        }
    };
    let call = check(stream, addr, service, timeout);
    let result = match reactor::timeout_at(deadline, call).await {
        Ok(result) => result,
        Err(reactor::TimedOut) => Err(RpcError::new(DEADLINE_EXCEEDED, "")),
    };
    match result {
        Ok(1) => Outcome::success(""),
        Ok(status) => Outcome::failure(format!(
            "service unhealthy (responded with \"{}\")",
            serving_status_name(status)
        )),
        Err(e) if e.code == DEADLINE_EXCEEDED && e.message.is_empty() => Outcome::failure(format!(
            "timeout: health rpc did not complete within {}",
            go_duration(timeout)
        )),
        Err(e) if e.code == UNIMPLEMENTED => Outcome::failure(format!(
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
            e.message
        )),
        Err(e) => Outcome::failure(format!(
            "error: health rpc probe failed: rpc error: code = {} desc = {}",
            code_name(e.code),
            e.message
        )),
    }
}

/// Appends a frame header and `payload`.
fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK integer with an N-bit prefix whose high bits are `high`.
fn hpack_int(out: &mut Vec<u8>, high: u8, prefix: u8, mut v: usize) {
    let max = (1usize << prefix) - 1;
    if v < max {
        out.push(high | v as u8);
        return;
    }
    out.push(high | max as u8);
    v -= max;
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A literal header field without indexing, new name, no Huffman.
fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0);
    for s in [name, value] {
        hpack_int(out, 0, 7, s.len());
        out.extend_from_slice(s.as_bytes());
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Everything the client sends before reading: preface, SETTINGS, the
/// request's HEADERS and its one DATA frame.
fn request(authority: &str, service: &str, timeout: Duration) -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    frame(&mut out, SETTINGS, 0, 0, &[]);
    let mut block = Vec::with_capacity(160);
    let mut timeout_text = String::new();
    let _ = write!(
        timeout_text,
        "{}m",
        timeout.as_millis().clamp(1, 99_999_999)
    );
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", PATH),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("user-agent", super::http::USER_AGENT),
        ("grpc-timeout", &timeout_text),
    ] {
        literal(&mut block, name, value);
    }
    frame(&mut out, HEADERS, END_HEADERS, 1, &block);
    // HealthCheckRequest { string service = 1; }, empty when "".
    let mut message = Vec::with_capacity(service.len() + 8);
    if !service.is_empty() {
        message.push(0x0a);
        varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut data = vec![0u8];
    data.extend_from_slice(&(message.len() as u32).to_be_bytes());
    data.extend_from_slice(&message);
    frame(&mut out, DATA, END_STREAM, 1, &data);
    out
}

/// The frame reader: bounded, and a frame at a time.
struct Frames {
    stream: Async<TcpStream>,
    addr: SocketAddr,
    read: usize,
}

struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

impl Frames {
    async fn next(&mut self) -> Result<Frame, RpcError> {
        let mut head = [0u8; 9];
        self.read_exact(&mut head).await?;
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        if len > MAX_FRAME {
            return Err(RpcError::new(
                INTERNAL,
                format!("frame of {len} bytes is larger than the {MAX_FRAME}-byte limit"),
            ));
        }
        let mut payload = vec![0u8; len];
        self.read_exact(&mut payload).await?;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        Ok(Frame {
            kind: head[3],
            flags: head[4],
            stream,
            payload,
        })
    }

    async fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), RpcError> {
        self.read += buf.len();
        if self.read > MAX_READ {
            return Err(RpcError::new(
                INTERNAL,
                format!("the response is larger than {MAX_READ} bytes"),
            ));
        }
        let addr = self.addr;
        self.stream.read_exact(buf).await.map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::UnexpectedEof => "EOF".to_string(),
                _ => format!("read tcp {addr}: read: {}", os_text(&e)),
            };
            RpcError::new(UNAVAILABLE, format!("error reading from server: {why}"))
        })
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), RpcError> {
        let addr = self.addr;
        self.stream.write_all(bytes).await.map_err(|e| {
            RpcError::new(
                UNAVAILABLE,
                format!("write tcp {addr}: write: {}", os_text(&e)),
            )
        })
    }
}

/// A frame's payload without its padding (and a HEADERS frame's priority).
fn unpad(f: &Frame) -> Result<&[u8], RpcError> {
    let mut p = &f.payload[..];
    let mut pad = 0;
    if f.flags & PADDED != 0 {
        let (&n, rest) = p
            .split_first()
            .ok_or_else(|| RpcError::new(INTERNAL, "padded frame without a pad length"))?;
        pad = usize::from(n);
        p = rest;
    }
    if f.kind == HEADERS && f.flags & PRIORITY != 0 {
        p = p.get(5..).unwrap_or(&[]);
    }
    p.get(..p.len().wrapping_sub(pad))
        .filter(|_| pad <= p.len())
        .ok_or_else(|| RpcError::new(INTERNAL, "padding longer than the frame"))
}

/// What stream 1 said.
#[derive(Debug, Default)]
struct Response {
    http_status: Option<String>,
    grpc_status: Option<String>,
    grpc_message: String,
    body: Vec<u8>,
}

impl Response {
    fn headers(&mut self, fields: Vec<(String, String)>) {
        for (name, value) in fields {
            match name.as_str() {
                ":status" => self.http_status = Some(value),
                "grpc-status" => self.grpc_status = Some(value),
                "grpc-message" => self.grpc_message = percent_decode(&value),
                _ => {}
            }
        }
    }

    /// The serving status, or why there is none.
    fn result(self) -> Result<u64, RpcError> {
        match self.http_status.as_deref() {
            Some("200") => {}
            Some(s) => {
                let code = match s {
                    "400" => INTERNAL,
                    "401" => 16,
                    "403" => 7,
                    "404" => UNIMPLEMENTED,
                    "429" | "502" | "503" | "504" => UNAVAILABLE,
                    _ => UNKNOWN,
                };
                return Err(RpcError::new(
                    code,
                    format!("unexpected HTTP status code received from server: {s}"),
                ));
            }
            None => {
                return Err(RpcError::new(
                    INTERNAL,
                    "malformed header: missing HTTP status",
                ));
            }
        }
        let code = match self.grpc_status.as_deref().map(str::parse::<u32>) {
            Some(Ok(code)) => code,
            Some(Err(_)) => return Err(RpcError::new(INTERNAL, "malformed grpc-status")),
            None => {
                return Err(RpcError::new(
                    INTERNAL,
                    "server closed the stream without sending trailers",
                ));
            }
        };
        if code != 0 {
            return Err(RpcError::new(code, self.grpc_message));
        }
        serving_status(&self.body)
    }
}

/// `%XX` escapes of a `grpc-message` decoded.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.map(|h| u8::from_str_radix(h, 16)) {
            Some(Ok(v)) if b[i] == b'%' => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_varint(p: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = p.split_first()?;
        *p = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Field 1 of the first `HealthCheckResponse` in a gRPC body (0, UNKNOWN,
/// when absent, as proto3 says).
fn serving_status(body: &[u8]) -> Result<u64, RpcError> {
    let bad = |why: &str| {
        RpcError::new(
            INTERNAL,
            format!("grpc: failed to unmarshal the received message: {why}"),
        )
    };
    let (&compressed, rest) = body.split_first().ok_or_else(|| {
        RpcError::new(
            INTERNAL,
            "server closed the stream without a response message",
        )
    })?;
    if compressed != 0 {
        return Err(bad("compressed messages are not supported"));
    }
    let len = rest
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .ok_or_else(|| bad("truncated message prefix"))?;
    let mut msg = rest
        .get(4..4 + len)
        .ok_or_else(|| bad("truncated message"))?;
    let mut status = 0;
    while !msg.is_empty() {
        let key = read_varint(&mut msg).ok_or_else(|| bad("bad field key"))?;
        let skip = match key & 7 {
            0 => {
                let v = read_varint(&mut msg).ok_or_else(|| bad("bad varint"))?;
                if key >> 3 == 1 {
                    status = v;
                }
                0
            }
            1 => 8,
            2 => read_varint(&mut msg).ok_or_else(|| bad("bad length"))? as usize,
            5 => 4,
            _ => return Err(bad("bad wire type")),
        };
        msg = msg.get(skip..).ok_or_else(|| bad("truncated field"))?;
    }
    Ok(status)
}

/// The call on a connected socket: returns the serving status.
async fn check(
    stream: Async<TcpStream>,
    addr: SocketAddr,
    service: &str,
    timeout: Duration,
) -> Result<u64, RpcError> {
    let mut frames = Frames {
        stream,
        addr,
        read: 0,
    };
    frames
        .send(&request(&addr.to_string(), service, timeout))
        .await?;
    let mut hpack = Decoder::new();
    let mut response = Response::default();
    let hpack_err = |e: HpackError| RpcError::new(INTERNAL, e.to_string());
    loop {
        let f = frames.next().await?;
        match f.kind {
            SETTINGS if f.flags & ACK == 0 => {
                let mut ack = Vec::with_capacity(9);
                frame(&mut ack, SETTINGS, ACK, 0, &[]);
                frames.send(&ack).await?;
            }
            PING if f.flags & ACK == 0 => {
                let mut ack = Vec::with_capacity(17);
                frame(&mut ack, PING, ACK, 0, &f.payload);
                frames.send(&ack).await?;
            }
            GOAWAY => {
                let last = f.payload.get(..4).map_or(0, |b| {
                    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
                });
                if last < 1 {
                    let code = f
                        .payload
                        .get(4..8)
                        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    return Err(RpcError::new(
                        UNAVAILABLE,
                        format!("the server sent GOAWAY (error code {code}) before answering"),
                    ));
                }
            }
            RST_STREAM if f.stream == 1 => {
                let code = f
                    .payload
                    .get(..4)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                return Err(RpcError::new(
                    INTERNAL,
                    format!("stream terminated by RST_STREAM with error code: {code}"),
                ));
            }
            HEADERS if f.stream == 1 => {
                let mut block = unpad(&f)?.to_vec();
                let mut flags = f.flags;
                while flags & END_HEADERS == 0 {
                    let c = frames.next().await?;
                    if c.kind != CONTINUATION || c.stream != 1 {
                        return Err(RpcError::new(INTERNAL, "expected a CONTINUATION frame"));
                    }
                    block.extend_from_slice(&c.payload);
                    flags |= c.flags & END_HEADERS;
                }
                let mut fields = Vec::new();
                hpack.decode(&block, &mut fields).map_err(hpack_err)?;
                response.headers(fields);
                if f.flags & END_STREAM != 0 {
                    return response.result();
                }
            }
            DATA if f.stream == 1 => {
                response.body.extend_from_slice(unpad(&f)?);
                if f.flags & END_STREAM != 0 {
                    return response.result();
                }
            }
            // WINDOW_UPDATE, PRIORITY, acks, other streams: nothing to do.
            // The reply is far below the initial 64 KiB windows.
            _ => {}
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn the_request_is_the_preface_settings_headers_and_one_data_frame() {
        let req = request("10.0.0.5:9000", "db", Duration::from_secs(1));
        let (preface, rest) = req.split_at(24);
        assert_eq!(preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!(&rest[..9], &[0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]);
        let rest = &rest[9..];
        let len = usize::from(rest[1]) << 8 | usize::from(rest[2]);
        assert_eq!(&rest[3..9], &[HEADERS, END_HEADERS, 0, 0, 0, 1]);
        let mut fields = Vec::new();
        Decoder::new()
            .decode(&rest[9..9 + len], &mut fields)
            .unwrap();
        let want: Vec<(String, String)> = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/grpc.health.v1.Health/Check"),
            (":authority", "10.0.0.5:9000"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("user-agent", "kube-probe/1.31"),
            ("grpc-timeout", "1000m"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(fields, want);
        let data = &rest[9 + len..];
        assert_eq!(&data[..9], &[0, 0, 9, DATA, END_STREAM, 0, 0, 0, 1]);
        assert_eq!(&data[9..], &[0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']);
        // The empty service is an empty message.
        let req = request("a:1", "", Duration::from_secs(1));
        assert!(req.ends_with(&[0, 0, 5, DATA, END_STREAM, 0, 0, 0, 1, 0, 0, 0, 0, 0]));
    }

    #[test]
    fn hpack_integers_use_continuation_bytes() {
        let mut out = Vec::new();
        hpack_int(&mut out, 0, 7, 300);
        assert_eq!(out, [0x7f, 0xad, 0x01]);
        let mut out = Vec::new();
        hpack_int(&mut out, 0x80, 7, 5);
        assert_eq!(out, [0x85]);
    }

    #[test]
    fn serving_status_is_field_one_of_the_first_message() {
        let msg = |m: &[u8]| {
            let mut b = vec![0, 0, 0, 0, m.len() as u8];
            b.extend_from_slice(m);
            b
        };
        assert_eq!(serving_status(&msg(&[0x08, 0x01])).unwrap(), 1);
        assert_eq!(serving_status(&msg(&[0x08, 0x02])).unwrap(), 2);
        assert_eq!(serving_status(&msg(&[])).unwrap(), 0);
        // Unknown fields of every wire type are skipped.
        let other = [
            0x12, 0x01, b'x', 0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0x25, 0, 0, 0, 0, 0x08, 0x03,
        ];
        assert_eq!(serving_status(&msg(&other)).unwrap(), 3);
        for bad in [
            &[][..],
            &[1, 0, 0, 0, 0],
            &[0, 0, 0, 0, 9, 0x08],
            &[0, 0, 0, 0, 2, 0x0b, 0x01],
            &[0, 0, 0, 0, 2, 0x12, 0x05],
        ] {
            assert!(serving_status(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_and_durations_print_like_go() {
        assert_eq!(code_name(5), "NotFound");
        assert_eq!(code_name(99), "Code(99)");
        assert_eq!(serving_status_name(2), "NOT_SERVING");
        assert_eq!(serving_status_name(7), "7");
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(percent_decode("a%20b%zz%"), "a b%zz%");
    }

    #[test]
    fn padding_and_priority_are_stripped() {
        let f = Frame {
            kind: HEADERS,
            flags: PADDED | PRIORITY,
            stream: 1,
            payload: vec![2, 0, 0, 0, 0, 16, 0x88, 0, 0],
        };
        assert_eq!(unpad(&f).unwrap(), &[0x88]);
        let f = Frame {
            kind: DATA,
            flags: PADDED,
            stream: 1,
            payload: vec![5, 1],
        };
        assert!(unpad(&f).is_err());
    }
}
