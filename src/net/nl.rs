//! Netlink message encoding and parsing, in safe code over byte vectors,
//! and [`Sock`], a request/answer exchange on a netlink socket (the socket
//! calls themselves are in [`crate::sys::net`]).
//!
//! A message is `nlmsghdr` (16 bytes: length, type, flags, sequence,
//! port id), a fixed family header, then attributes: `nlattr` (length,
//! type) and the payload, each padded to 4 bytes. Nested attributes carry
//! `NLA_F_NESTED`. Integers are host byte order unless a protocol says
//! otherwise (nftables uses big endian for its own values).

use std::os::fd::{AsFd, OwnedFd};

use crate::sys::net::{Netlink, netlink_recv, netlink_send, netlink_socket};

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLA_F_NESTED: u16 = 0x8000;
const HDR: usize = 16;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A buffer of one or more netlink messages being written.
#[derive(Debug, Default)]
pub struct Buf {
    pub bytes: Vec<u8>,
    msg_start: usize,
    nests: Vec<usize>,
    seq: u32,
}

impl Buf {
    pub fn new() -> Buf {
        Buf::default()
    }

    /// Starts a message of `ty` with `flags` (`NLM_F_REQUEST` is added)
    /// and its fixed family header `fixed`. Returns its sequence number.
    pub fn begin(&mut self, ty: u16, flags: u16, fixed: &[u8]) -> u32 {
        self.seq += 1;
        self.msg_start = self.bytes.len();
        self.bytes.extend_from_slice(&0u32.to_ne_bytes());
        self.bytes.extend_from_slice(&ty.to_ne_bytes());
        self.bytes
            .extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        self.bytes.extend_from_slice(&self.seq.to_ne_bytes());
        self.bytes.extend_from_slice(&0u32.to_ne_bytes());
        self.bytes.extend_from_slice(fixed);
        self.pad();
        self.seq
    }

    /// Ends the message begun last: writes its length.
    pub fn end(&mut self) {
        debug_assert!(self.nests.is_empty(), "unclosed nested attribute");
        let len = (self.bytes.len() - self.msg_start) as u32;
        self.bytes[self.msg_start..self.msg_start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        let n = align4(self.bytes.len());
        self.bytes.resize(n, 0);
    }

    /// An attribute `ty` with payload `data`.
    pub fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Buf {
        let len = (4 + data.len()) as u16;
        self.bytes.extend_from_slice(&len.to_ne_bytes());
        self.bytes.extend_from_slice(&ty.to_ne_bytes());
        self.bytes.extend_from_slice(data);
        self.pad();
        self
    }

    /// A NUL-terminated string attribute.
    pub fn str(&mut self, ty: u16, s: &str) -> &mut Buf {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(ty, &v)
    }

    pub fn u32(&mut self, ty: u16, v: u32) -> &mut Buf {
        self.attr(ty, &v.to_ne_bytes())
    }

    /// A big-endian `u32` (nftables' values).
    pub fn be32(&mut self, ty: u16, v: u32) -> &mut Buf {
        self.attr(ty, &v.to_be_bytes())
    }

    /// Opens a nested attribute `ty`; close it with [`Buf::close`].
    pub fn nest(&mut self, ty: u16) -> &mut Buf {
        self.nests.push(self.bytes.len());
        self.bytes.extend_from_slice(&0u16.to_ne_bytes());
        self.bytes
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        self
    }

    pub fn close(&mut self) -> &mut Buf {
        let start = self.nests.pop().expect("close without nest");
        let len = (self.bytes.len() - start) as u16;
        self.bytes[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }
}

/// One received message: its type, flags and the bytes after the header.
#[derive(Debug, PartialEq, Eq)]
pub struct Msg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// The messages of a received datagram; `None` at a malformed one.
pub fn messages(mut buf: &[u8]) -> impl Iterator<Item = Option<Msg<'_>>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let msg = (|| {
            let len = u32::from_ne_bytes(buf.get(0..4)?.try_into().ok()?) as usize;
            if len < HDR || len > buf.len() {
                return None;
            }
            let m = Msg {
                ty: u16::from_ne_bytes(buf[4..6].try_into().ok()?),
                flags: u16::from_ne_bytes(buf[6..8].try_into().ok()?),
                seq: u32::from_ne_bytes(buf[8..12].try_into().ok()?),
                payload: &buf[HDR..len],
            };
            Some((m, align4(len).min(buf.len())))
        })();
        match msg {
            Some((m, used)) => {
                buf = &buf[used..];
                Some(Some(m))
            }
            None => {
                buf = &[];
                Some(None)
            }
        }
    })
}

/// The attributes `(type without flags, payload)` of `buf`.
pub fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = u16::from_ne_bytes(buf.get(0..2)?.try_into().ok()?) as usize;
        let ty = u16::from_ne_bytes(buf.get(2..4)?.try_into().ok()?);
        if len < 4 || len > buf.len() {
            return None;
        }
        let data = &buf[4..len];
        buf = &buf[align4(len).min(buf.len())..];
        Some((ty & 0x3fff, data))
    })
}

/// The errno of an `NLMSG_ERROR` payload (0 is an acknowledgement).
pub fn error_code(payload: &[u8]) -> Option<i32> {
    Some(-i32::from_ne_bytes(payload.get(0..4)?.try_into().ok()?))
}

/// A failed netlink request: what was asked and the kernel's errno.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {}", text(*.errno))]
pub struct Error {
    pub what: String,
    pub errno: i32,
}

fn text(errno: i32) -> String {
    let full = std::io::Error::from_raw_os_error(errno).to_string();
    full.find(" (os error")
        .map_or(full.clone(), |i| full[..i].to_string())
}

impl Error {
    pub fn new(what: impl Into<String>, errno: i32) -> Error {
        Error {
            what: what.into(),
            errno,
        }
    }

    pub fn exists(&self) -> bool {
        self.errno == libc::EEXIST
    }

    pub fn not_found(&self) -> bool {
        self.errno == libc::ENOENT || self.errno == libc::ENODEV || self.errno == libc::ESRCH
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A netlink socket to the kernel, in the network namespace of the thread
/// that opened it.
#[derive(Debug)]
pub struct Sock {
    fd: OwnedFd,
    rbuf: Vec<u8>,
}

impl Sock {
    pub fn open(proto: Netlink) -> Result<Sock> {
        let fd = netlink_socket(proto).map_err(|e| Error::new(e.op().to_string(), e.errno()))?;
        Ok(Sock {
            fd,
            rbuf: vec![0; 32 * 1024],
        })
    }

    /// Sends the requests in `buf` and collects every answer the kernel
    /// queued (it answers within the send): the first error (errno other
    /// than 0 in an `NLMSG_ERROR`) fails the exchange, named `what`; the
    /// other messages (dumps, `NLMSG_DONE` excluded) go to `each`.
    /// Never waits: a request the kernel did not answer is not an error.
    pub fn exchange(
        &mut self,
        what: &str,
        buf: &Buf,
        mut each: impl FnMut(&Msg<'_>),
    ) -> Result<()> {
        let fail = |e: crate::sys::Error| Error::new(format!("{what}: {}", e.op()), e.errno());
        netlink_send(self.fd.as_fd(), &buf.bytes).map_err(fail)?;
        let mut first_err = None;
        while let Some(n) = netlink_recv(self.fd.as_fd(), &mut self.rbuf).map_err(fail)? {
            for m in messages(&self.rbuf[..n]) {
                let Some(m) = m else {
                    return Err(Error::new(
                        format!("{what}: malformed reply"),
                        libc::EBADMSG,
                    ));
                };
                match m.ty {
                    NLMSG_ERROR => match error_code(m.payload) {
                        Some(0) => {}
                        Some(e) => {
                            first_err.get_or_insert(e);
                        }
                        None => {
                            first_err.get_or_insert(libc::EBADMSG);
                        }
                    },
                    NLMSG_DONE => {}
                    _ => each(&m),
                }
            }
        }
        match first_err {
            Some(e) => Err(Error::new(what, e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_with_a_string_and_a_nested_attribute_encodes_to_the_exact_bytes() {
        let mut b = Buf::new();
        let seq = b.begin(16, NLM_F_ACK, &[1, 2, 3]);
        b.str(3, "ab").nest(18).u32(1, 7).close();
        b.end();
        assert_eq!(seq, 1);
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &40u32.to_ne_bytes()[..], &16u16.to_ne_bytes(), &5u16.to_ne_bytes(),
            &1u32.to_ne_bytes(), &0u32.to_ne_bytes(),
            &[1, 2, 3, 0],                                  // fixed header, padded
            &7u16.to_ne_bytes(), &3u16.to_ne_bytes(), b"ab\0\0", // "ab\0" + pad
            &12u16.to_ne_bytes(), &(18u16 | 0x8000).to_ne_bytes(),
            &8u16.to_ne_bytes(), &1u16.to_ne_bytes(), &7u32.to_ne_bytes(),
        ]
        .concat();
        assert_eq!(b.bytes, want);
    }

    #[test]
    fn messages_and_attributes_parse_back_and_a_truncated_message_is_malformed() {
        let mut b = Buf::new();
        b.begin(20, 0, &[0; 4]);
        b.u32(5, 9).str(1, "x");
        b.end();
        b.begin(2, 0, &(-17i32).to_ne_bytes());
        b.end();
        let ms: Vec<_> = messages(&b.bytes).collect::<Option<_>>().unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!((ms[0].ty, ms[0].seq, ms[1].seq), (20, 1, 2));
        let at: Vec<_> = attrs(&ms[0].payload[4..]).collect();
        assert_eq!(at, vec![(5, &9u32.to_ne_bytes()[..]), (1, &b"x\0"[..])]);
        assert_eq!(error_code(ms[1].payload), Some(17));
        let cut = &b.bytes[..b.bytes.len() - 1];
        assert_eq!(messages(cut).last(), Some(None));
    }
}
