//! JSON lines, the one framing of picolet's local protocols: the agent ↔
//! shim connection (`runtime::shim::conn` on the shim's side,
//! `agent::sandbox` on the agent's) and the API socket (`agent::api_server`,
//! `api`). Each message is one JSON value on one `\n`-terminated line
//! (`serde_json` never writes a raw newline inside a value). Pure, but for
//! [`LineBuffer::read_from`], which reads once from the reader it is given.

use serde::Serialize;

/// `value` as one line: its JSON and a `\n`.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut line = Vec::new();
    encode_into(&mut line, value)?;
    Ok(line)
}

/// Appends `value` as one line to `out`. On error `out` is unchanged.
pub fn encode_into<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> serde_json::Result<()> {
    let len = out.len();
    if let Err(e) = serde_json::to_writer(&mut *out, value) {
        out.truncate(len);
        return Err(e);
    }
    out.push(b'\n');
    Ok(())
}

/// Received bytes, cut into lines. Lines taken are dropped from the front
/// once per [`extend`](Self::extend), not once per line, so a burst of many
/// short lines costs one move of the rest.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Where the lines not yet taken start.
    start: usize,
}

impl LineBuffer {
    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.extend_from_slice(bytes);
    }

    /// Reads once from `r` (at most 4 KiB) and appends what came:
    /// `Ok(0)` at end of input. A non-blocking reader's `WouldBlock` is
    /// returned as is.
    pub fn read_from(&mut self, r: &mut impl std::io::Read) -> std::io::Result<usize> {
        let mut chunk = [0u8; 4096];
        let n = loop {
            match r.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        self.extend(&chunk[..n]);
        Ok(n)
    }

    /// The next complete line, without its `\n`; `None` until one is.
    pub fn next_line(&mut self) -> Option<Vec<u8>> {
        let rest = &self.buf[self.start..];
        let n = rest.iter().position(|&b| b == b'\n')?;
        let line = rest[..n].to_vec();
        self.start += n + 1;
        Some(line)
    }

    /// Bytes held that no line taken yet covers (to cap a line's length).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Gives the memory back after a large line, once nothing is held.
    pub fn shrink_if_empty(&mut self, keep: usize) {
        if self.pending() == 0 && self.buf.capacity() > keep {
            self.buf = Vec::new();
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_from_appends_what_each_read_gives_until_end_of_input() {
        let mut input: &[u8] = b"{\"a\":1}\n{\"b\"";
        let mut lines = LineBuffer::default();
        assert_eq!(lines.read_from(&mut input).unwrap(), 12);
        assert_eq!(lines.next_line().unwrap(), b"{\"a\":1}");
        assert_eq!(lines.next_line(), None);
        assert_eq!(lines.pending(), 4);
        assert_eq!(lines.read_from(&mut input).unwrap(), 0);
        assert_eq!(lines.pending(), 4);
    }

    #[test]
    fn values_round_trip_through_lines_cut_anywhere() {
        let values = [
            serde_json::json!({"a": "x\ny", "b": [1, 2]}),
            serde_json::json!("plain"),
            serde_json::json!(null),
        ];
        let mut wire = Vec::new();
        for v in &values {
            encode_into(&mut wire, v).unwrap();
        }
        assert_eq!(wire.iter().filter(|&&b| b == b'\n').count(), values.len());
        for cut in 0..wire.len() {
            let mut lines = LineBuffer::default();
            let mut got = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                lines.extend(part);
                while let Some(line) = lines.next_line() {
                    got.push(serde_json::from_slice::<serde_json::Value>(&line).unwrap());
                }
            }
            assert_eq!(got, values, "cut at {cut}");
            assert_eq!(lines.pending(), 0);
        }
    }

    #[test]
    fn an_incomplete_line_is_held_and_counted() {
        let mut lines = LineBuffer::default();
        lines.extend(b"{\"a\":1}\n{\"b\"");
        assert_eq!(lines.next_line().unwrap(), b"{\"a\":1}");
        assert_eq!(lines.next_line(), None);
        assert_eq!(lines.pending(), 4);
    }
}
