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

/// `value` as `serde_json::to_vec_pretty` writes it (two-space indent,
/// `": "`, `[]` and `{}` when empty), byte for byte, but through the
/// compact serializer each type already has: the compact text is indented
/// afterwards. A second, pretty, copy of each type's `Serialize` is not
/// linked (docs/design-deviations.md §12).
pub fn to_vec_pretty<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut text = Vec::new();
    serde_json::to_writer(&mut text, value)?;
    Ok(indent(&text))
}

/// [`to_vec_pretty`] as a `String`, like `serde_json::to_string_pretty`.
pub fn to_string_pretty<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    String::from_utf8(to_vec_pretty(value)?).map_err(serde::ser::Error::custom)
}

/// Compact JSON text (no whitespace outside strings, as serde_json writes
/// it) indented as serde_json's `PrettyFormatter` does.
fn indent(compact: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(compact.len() * 2);
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.resize(out.len() + 2 * depth, b' ');
    };
    let mut i = 0;
    while i < compact.len() {
        let b = compact[i];
        i += 1;
        if in_string {
            out.push(b);
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                out.push(b);
            }
            b'[' | b'{' if matches!(compact.get(i), Some(b']' | b'}')) => {
                out.extend_from_slice(&[b, compact[i]]);
                i += 1;
            }
            b'[' | b'{' => {
                out.push(b);
                depth += 1;
                newline(&mut out, depth);
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(b);
            }
            b',' => {
                out.push(b);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            _ => out.push(b),
        }
    }
    out
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
    fn to_vec_pretty_gives_what_serde_json_gives() {
        let pod = crate::spec::load::pod_from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": ""},
                         "annotations": {"q": "say \\\"hi\\\" [a,b]: {c}"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "args": [],
                     "command": ["sh", "-c", "echo \\u00e9 {}[],:"],
                     "env": [{"name": "A", "value": "1"}],
                     "resources": {"limits": {"cpu": "1", "memory": "8Mi"}}}],
                     "terminationGracePeriodSeconds": 5}
        }))
        .unwrap();
        assert_eq!(
            to_vec_pretty(&pod).unwrap(),
            serde_json::to_vec_pretty(&pod).unwrap()
        );
        let values = [
            serde_json::json!({"a": [], "b": {}, "c": [[], {}, [1, [2, {"d": null}]]],
                               "e\\\"": "f\\\\", "g": -1.5, "h": true, "{": "}"}),
            serde_json::json!([]),
            serde_json::json!({}),
            serde_json::json!("x,y:z[{"),
            serde_json::json!(7),
        ];
        for v in &values {
            let want = serde_json::to_vec_pretty(v).unwrap();
            assert_eq!(
                to_vec_pretty(v).unwrap(),
                want,
                "{}",
                String::from_utf8_lossy(&want)
            );
        }
    }

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
