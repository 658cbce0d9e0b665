//! The writer: a `Value` as block-style YAML, as serde_norway prints it
//! (two-space indentation, sequences in a mapping at the key's column),
//! with every string that could read as something else quoted.

use serde_json::Value;

/// `v` as one YAML document (no `---`), ending with a line break.
pub fn to_string(v: &Value) -> String {
    let mut out = String::new();
    node(&mut out, v, 0, false);
    out
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Writes `v` (after a `key:` or `-`, or at the top when `after` is
/// false); `indent`: the column of the key or dash.
fn node(out: &mut String, v: &Value, indent: usize, after: bool) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            if after {
                out.push('\n');
            }
            for (k, v) in m {
                pad(out, indent);
                write_map_entry(out, k, v, indent);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            if after {
                out.push('\n');
            }
            for item in a {
                pad(out, indent);
                seq_item(out, item, indent);
            }
        }
        _ => {
            if after {
                out.push(' ');
            }
            scalar(out, v, indent.max(2));
        }
    }
}

fn write_map_entry(out: &mut String, k: &str, v: &Value, indent: usize) {
    // A long key is an explicit one (`? key` / `: value`), as libyaml
    // writes keys over 128 characters: readers take implicit keys up to
    // 1024 only.
    if k.len() > 128 {
        out.push_str("? ");
        string(out, k, None);
        out.push('\n');
        pad(out, indent);
    } else {
        string(out, k, None);
    }
    out.push(':');
    match v {
        // A sequence in a mapping sits at the key's column.
        Value::Array(a) if !a.is_empty() => node(out, v, indent, true),
        _ => node(out, v, indent + 2, true),
    }
}

/// `- item`: a collection's first entry goes on the dash's line.
fn seq_item(out: &mut String, v: &Value, indent: usize) {
    out.push_str("- ");
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    pad(out, indent + 2);
                }
                write_map_entry(out, k, v, indent + 2);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    pad(out, indent + 2);
                }
                seq_item(out, item, indent + 2);
            }
        }
        _ => scalar(out, v, indent + 2),
    }
}

/// A scalar and its line break; `block`: the column of a block scalar's
/// lines.
fn scalar(out: &mut String, v: &Value, block: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_u64() && !n.is_i64() => out.push_str(&format!("{f:?}")),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => string(out, s, Some(block)),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
    out.push('\n');
}

/// Characters written as they are (the reader's printable set, no line
/// breaks).
fn printable(c: char) -> bool {
    matches!(c, ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && !matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}')
}

/// Whether `s` can be written plain and read back as the same string, by
/// us and by YAML 1.1 readers (kubectl's): not a null, boolean or number
/// in either, no indicator where it would count.
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let looks_numeric = (first.is_ascii_digit() || matches!(first, '+' | '-' | '.'))
        && s.contains(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-._:".contains(c));
    let yaml11 = matches!(
        s.to_ascii_lowercase().as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null" | "~"
    );
    let indicator = ",[]{}#&*!|>'\"%@` ".contains(first)
        || matches!(first, '-' | '?' | ':') && (s.len() == 1 || s[1..].starts_with(' '))
        || s.starts_with("---")
        || s.starts_with("...")
        || s.ends_with([' ', ':'])
        || s.contains(": ")
        || s.contains(" #");
    let resolves = !matches!(super::scalar(s, super::Kind::Plain), Ok(Value::String(_)));
    !(looks_numeric || yaml11 || resolves || indicator)
        && s.chars().all(|c| printable(c) && c != '\t')
}

/// A string: plain when it reads back the same, a `|` block for several
/// lines (`block`: its column; not for keys), else quoted.
fn string(out: &mut String, s: &str, block: Option<usize>) {
    if plain_ok(s) {
        out.push_str(s);
        return;
    }
    let body = s.trim_end_matches('\n');
    let lines_ok = body.contains('\n')
        && !body.starts_with([' ', '\n'])
        && body.chars().all(|c| c == '\n' || printable(c));
    if let (Some(col), true) = (block, lines_ok) {
        out.push('|');
        match s.len() - body.len() {
            0 => out.push('-'),
            1 => {}
            _ => out.push('+'),
        }
        for line in s.split_inclusive('\n').map(|l| l.trim_end_matches('\n')) {
            out.push('\n');
            if !line.is_empty() {
                pad(out, col);
                out.push_str(line);
            }
        }
        // The last break (if any) is the one `scalar` ends the line with.
        return;
    }
    if s.chars().all(printable) {
        out.push('\'');
        out.push_str(&s.replace('\'', "''"));
        out.push('\'');
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if printable(c) => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
}
