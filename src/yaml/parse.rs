//! The reader: YAML text → documents of positioned nodes. It reads the
//! subset of YAML 1.2 that manifests and configuration files use and
//! refuses the rest with an error at its line and column, so that a
//! document it accepts means what libyaml (serde_norway) reads in it.

use super::{Error, Kind, N, Node};

/// One document: its root node and its anchored nodes (aliases index them).
#[derive(Debug)]
pub struct Document {
    pub(crate) root: Node,
    pub(crate) anchors: Vec<Node>,
    /// Roughly libyaml's event count (the alias expansion budget).
    pub(crate) events: usize,
}

type R<T> = Result<T, Error>;

pub(crate) const TAG: &str =
    "tags other than !!str, !!int, !!bool, !!null, !!float, !!seq and !!map are not supported";

/// Deepest nesting the reader follows (serde_norway refuses past 128).
const MAX_DEPTH: usize = 160;

struct P<'a> {
    s: &'a [u8],
    t: &'a str,
    i: usize,
    line: usize,
    /// Offset of the current line's start.
    ls: usize,
    names: Vec<(String, usize)>,
    anchors: Vec<Node>,
    events: usize,
    depth: usize,
    /// Documents read so far.
    docs: usize,
    /// The last column computed, and where.
    col_at: std::cell::Cell<(usize, usize)>,
}

/// Properties of a node: anchor, tag and where they start.
#[derive(Default)]
struct Props {
    /// The anchor's slot in `anchors` (taken when the anchor is read:
    /// inside its own node, an alias to the name is this node, as in
    /// serde_norway, which registers an anchor at its node's start).
    anchor: Option<usize>,
    tag: Option<Kind>,
    at: Option<(usize, usize)>,
    /// Their byte offset.
    from: usize,
}

/// Reads every document of `text`; the documents before the first syntax
/// error, and that error.
pub fn parse(text: &str) -> (Vec<Document>, Option<Error>) {
    let norm;
    let text = if text.contains('\r') {
        norm = text.replace("\r\n", "\n");
        norm.as_str()
    } else {
        text
    };
    // libyaml skips a byte order mark but counts it as a column.
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let mut p = P {
        s: text.as_bytes(),
        t: text,
        i: bom,
        line: 1,
        ls: 0,
        names: Vec::new(),
        anchors: Vec::new(),
        events: 0,
        depth: 0,
        docs: 0,
        col_at: Default::default(),
    };
    let mut docs = Vec::new();
    // libyaml's reader refuses control characters anywhere.
    let bad = text[bom..].char_indices().find(|&(_, c)| {
        !matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
    });
    if let Some((at, _)) = bad {
        let at = at + bom;
        let line = 1 + text[..at].matches('\n').count();
        let ls = text[..at].rfind('\n').map_or(0, |n| n + 1);
        let col = 1 + text[ls..at].chars().count();
        let e = Error::new("control characters are not allowed".into(), line, col);
        return (docs, Some(e));
    }
    let e = loop {
        match p.document() {
            Ok(Some(d)) => docs.push(d),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    if docs.is_empty() && e.is_none() {
        // An empty stream reads as one null document (as in libyaml's
        // serde_norway).
        let root = p.empty((1, 1));
        docs.push(Document {
            root,
            anchors: Vec::new(),
            events: 1,
        });
    }
    (docs, e)
}

fn blank(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | 0)
}

fn flow_ind(c: u8) -> bool {
    matches!(c, b',' | b'[' | b']' | b'{' | b'}')
}

fn anchor_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

impl P<'_> {
    fn at(&self, k: usize) -> u8 {
        self.s.get(self.i + k).copied().unwrap_or(0)
    }

    fn c(&self) -> u8 {
        self.at(0)
    }

    fn eof(&self) -> bool {
        self.i >= self.s.len()
    }

    /// 0-based column (in characters).
    fn col(&self) -> usize {
        // Counted on from the last answer on this line: a long line is
        // not counted again for each node on it.
        let (at, col) = self.col_at.get();
        let (from, base) = match at >= self.ls && at <= self.i {
            true => (at, col),
            false => (self.ls, 0),
        };
        let col = base + self.t[from..self.i].chars().count();
        self.col_at.set((self.i, col));
        col
    }

    fn pos(&self) -> (usize, usize) {
        (self.line, self.col() + 1)
    }

    fn err<T>(&self, msg: &str) -> R<T> {
        let (line, col) = self.pos();
        Err(Error::new(msg.to_string(), line, col))
    }

    fn nl(&mut self) {
        self.i += 1;
        self.line += 1;
        self.ls = self.i;
    }

    /// Checks the character at the cursor is one we read the same way
    /// as libyaml (no tabs where indentation goes, no control characters).
    fn check_char(&self) -> R<()> {
        let c = self.t[self.i..].chars().next().unwrap_or(' ');
        let ok = matches!(c, '\n' | ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
            && !matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}');
        match ok {
            true => Ok(()),
            false if c == '\t' => self.err("a tab character here is not supported (use spaces)"),
            false => self.err(&format!("character {c:?} is not supported here")),
        }
    }

    /// Skips spaces and a comment on this line.
    fn inline(&mut self) -> R<()> {
        let start = self.i;
        while self.c() == b' ' {
            self.i += 1;
        }
        if self.c() == b'#'
            && (self.i > start || self.t[self.ls..self.i].chars().all(|c| c == '\u{feff}'))
        {
            while !matches!(self.c(), b'\n' | 0) {
                if self.c() != b'\t' {
                    self.check_char()?;
                }
                self.i += self.t[self.i..].chars().next().map_or(1, char::len_utf8);
            }
        }
        if !matches!(self.c(), b'\n' | 0) {
            self.check_char()?;
        }
        Ok(())
    }

    /// Skips spaces, comments and line breaks.
    fn space(&mut self) -> R<()> {
        loop {
            self.inline()?;
            if self.c() != b'\n' {
                return Ok(());
            }
            self.nl();
        }
    }

    /// At `---` or `...` at the start of a line.
    fn marker(&self) -> bool {
        self.i == self.ls
            && (self.s[self.i..].starts_with(b"---") || self.s[self.i..].starts_with(b"..."))
            && matches!(self.at(3), b' ' | b'\t' | b'\n' | 0)
    }

    /// The rest of the line after a node must be empty (or a comment).
    fn end_line(&mut self) -> R<()> {
        if self.t[self.ls..self.i]
            .chars()
            .all(|c| c == ' ' || c == '\u{feff}')
        {
            return Ok(());
        }
        self.inline()?;
        match self.c() {
            b'\n' => {
                self.nl();
                Ok(())
            }
            0 => Ok(()),
            _ => self.err("unexpected content after a value (a mapping value must start on its key's line or be indented below it)"),
        }
    }

    fn document(&mut self) -> R<Option<Document>> {
        self.names.clear();
        self.anchors.clear();
        self.events = 0;
        let mut explicit = false;
        loop {
            self.space()?;
            if self.i == self.ls && self.c() == b'%' {
                if !self.s[self.i..].starts_with(b"%YAML ") {
                    return self.err("directives other than %YAML are not supported");
                }
                self.i += 6;
                while self.c() == b' ' {
                    self.i += 1;
                }
                if !(self.s[self.i..].starts_with(b"1.1") || self.s[self.i..].starts_with(b"1.2"))
                    || !blank(self.at(3))
                {
                    return self.err("unsupported YAML version");
                }
                self.i += 3;
                self.end_line()?;
                self.space()?;
                if !(self.marker() && self.c() == b'-') {
                    return self.err("a directive must be followed by `---`");
                }
                continue;
            }
            if self.marker() && self.c() == b'.' {
                // `...` ends a document: none open here. Before the first
                // one, libyaml takes it for an empty document's node.
                if self.docs == 0 {
                    return self.err("did not find expected node content");
                }
                self.i += 3;
                self.end_line()?;
                continue;
            }
            break;
        }
        if self.eof() {
            return Ok(None);
        }
        let start = self.pos();
        if self.marker() && self.c() == b'-' {
            explicit = true;
            self.i += 3;
        } else if self.docs > 0 {
            // Only the first document may start without `---`.
            return self.err("expected `---` before the next document");
        }
        self.docs += 1;
        let root = match self.block(-1, explicit, false)? {
            Some(n) => n,
            None => self.empty(start),
        };
        self.end_line()?;
        self.space()?;
        if !self.eof() && !self.marker() {
            return self.err("unexpected content at the end of a document (a less indented line?)");
        }
        if self.marker() && self.c() == b'.' {
            self.i += 3;
            self.end_line()?;
        }
        Ok(Some(Document {
            root,
            anchors: std::mem::take(&mut self.anchors),
            events: self.events.max(1),
        }))
    }

    fn empty(&mut self, (line, col): (usize, usize)) -> Node {
        self.events += 1;
        Node {
            v: N::Scalar(String::new(), Kind::Plain),
            line,
            col,
        }
    }

    fn props(&mut self) -> R<Props> {
        let mut p = Props::default();
        let start = self.i;
        loop {
            let here = self.pos();
            match self.c() {
                b'&' if p.anchor.is_none() => {
                    self.i += 1;
                    let s = self.i;
                    while anchor_char(self.c()) {
                        self.i += 1;
                    }
                    if s == self.i || !blank(self.c()) {
                        return self.err("an anchor name must be letters, digits, `-` or `_`");
                    }
                    let name = &self.t[s..self.i];
                    if self.names.iter().any(|(k, _)| k == name) {
                        // serde_norway mixes up aliases after a redefined
                        // anchor: refused rather than read differently.
                        self.i = s - 1;
                        return self.err("an anchor defined twice is not supported");
                    }
                    let slot = self.anchors.len();
                    self.names.push((name.to_string(), slot));
                    self.anchors.push(Node {
                        v: N::Alias(usize::MAX),
                        line: 0,
                        col: 0,
                    });
                    p.anchor = Some(slot);
                }
                b'!' if p.tag.is_none() => {
                    let s = self.i;
                    while !blank(self.c()) {
                        self.i += 1;
                    }
                    p.tag = Some(match &self.t[s..self.i] {
                        "!!str" => Kind::Str,
                        "!!int" => Kind::Int,
                        "!!bool" => Kind::Bool,
                        "!!null" => Kind::Null,
                        "!!float" => Kind::Float,
                        "!!seq" => Kind::Seq,
                        "!!map" => Kind::Map,
                        t if t.len() > 1 && {
                            let rest = t.strip_prefix("!!").unwrap_or(&t[1..]);
                            !rest.is_empty()
                                && rest.bytes().all(|b| {
                                    b.is_ascii_alphanumeric() || b"-_;/?:@&=+$.~*'()".contains(&b)
                                })
                        } =>
                        {
                            Kind::Other
                        }
                        _ => {
                            self.i = s;
                            return self.err("this tag is not supported");
                        }
                    });
                }
                _ => return Ok(p),
            }
            if p.at.is_none() {
                p.at = Some(here);
                p.from = start;
            }
            while self.c() == b' ' {
                self.i += 1;
            }
        }
    }

    /// Gives `n` the properties `p`: its tag is checked and its anchor
    /// recorded.
    fn finish(&mut self, mut n: Node, p: Props) -> R<Node> {
        if let (Some(_), N::Alias(_)) = (p.at, &n.v) {
            return Err(Error::new(
                "an alias cannot have properties".into(),
                n.line,
                n.col,
            ));
        }
        if let Some((line, col)) = p.at {
            n.line = line;
            n.col = col;
        }
        if let Some(tag) = p.tag {
            match (&mut n.v, tag) {
                (N::Seq(_), Kind::Seq) | (N::Map(_), Kind::Map) => {}
                (N::Scalar(_, k), t) if !matches!(t, Kind::Seq | Kind::Map) => *k = t,
                (_, Kind::Other) => {
                    return Err(Error::new(TAG.into(), n.line, n.col));
                }
                _ => {
                    return Err(Error::new(
                        "the tag does not fit the node".into(),
                        n.line,
                        n.col,
                    ));
                }
            }
        }
        if let Some(slot) = p.anchor {
            self.anchors[slot] = n.clone();
        }
        Ok(n)
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("recursion limit exceeded");
        }
        Ok(())
    }

    /// A block node whose parent block collection is at column `n` (-1
    /// at the top). `inline`: it starts on its key's line (so it cannot
    /// be a block collection there). `seq_at_n`: a sequence may start at
    /// column `n` (a mapping's value).
    fn block(&mut self, n: isize, inline: bool, seq_at_n: bool) -> R<Option<Node>> {
        self.enter()?;
        let r = self.block_in(n, inline, seq_at_n);
        self.depth -= 1;
        r
    }

    fn block_in(&mut self, n: isize, inline: bool, seq_at_n: bool) -> R<Option<Node>> {
        self.inline()?;
        let mut p = Props::default();
        let start_col = self.col() as isize;
        if matches!(self.c(), b'&' | b'!') {
            p = self.props()?;
            self.inline()?;
        }
        if matches!(self.c(), b'\n' | 0) {
            let here = self.pos();
            self.space()?;
            let c = self.col() as isize;
            let node = if self.eof() || self.marker() {
                None
            } else if c > n {
                Some(self.content(n, false, Props::default(), c)?)
            } else if c == n && seq_at_n && self.c() == b'-' && blank(self.at(1)) {
                Some(self.seq()?)
            } else {
                None
            };
            let node = match node {
                Some(node) => node,
                None if p.at.is_some() => self.empty(here),
                None => return Ok(None),
            };
            return self.finish(node, p).map(Some);
        }
        self.content(n, inline, p, start_col).map(Some)
    }

    /// A node starting at the cursor (after its properties `p`, which
    /// start at column `start`).
    fn content(&mut self, n: isize, inline: bool, mut p: Props, start: isize) -> R<Node> {
        let c = self.c();
        if !inline {
            if c == b'-' && blank(self.at(1)) {
                if p.at.is_some() {
                    return self.err("properties before a sequence entry are not supported");
                }
                return self.seq();
            }
            // A first key's properties belong to the key: the map starts
            // at them.
            if let Some(m) = self.try_map(start, &mut p)? {
                return Ok(m);
            }
        }
        let node = if matches!(c, b'|' | b'>') {
            self.block_scalar(n)?
        } else {
            let node = self.flow_node(n, false)?;
            if inline {
                self.inline()?;
                if self.c() == b':' && blank(self.at(1)) {
                    return self.err("a mapping cannot start on its key's line");
                }
            }
            node
        };
        self.finish(node, p)
    }

    /// Whether an implicit key (one line, then `:`) starts at the cursor;
    /// its properties, if any, start at byte `from`.
    fn is_key(&mut self, from: usize) -> R<bool> {
        let save = (
            self.i,
            self.line,
            self.ls,
            self.events,
            self.names.len(),
            self.anchors.len(),
        );
        let depth = self.depth;
        let r = self.key_node(-1);
        self.depth = depth;
        let yes = r.is_ok() && self.line == save.1 && {
            while self.c() == b' ' {
                self.i += 1;
            }
            self.c() == b':' && blank(self.at(1))
        };
        // libyaml's simple keys end within 1024 characters.
        let long = self.i - from.min(save.0) > 1000;
        (self.i, self.line, self.ls, self.events) = (save.0, save.1, save.2, save.3);
        if yes && long {
            return self.err("an implicit key over 1000 bytes long is not supported");
        }
        self.names.truncate(save.4);
        self.anchors.truncate(save.5);
        Ok(yes)
    }

    fn key_node(&mut self, n: isize) -> R<Node> {
        let p = if matches!(self.c(), b'&' | b'!') {
            self.props()?
        } else {
            Props::default()
        };
        let node = self.flow_node(n, true)?;
        self.finish(node, p)
    }

    /// A block mapping at column `col` if a key starts at the cursor.
    fn try_map(&mut self, col: isize, first: &mut Props) -> R<Option<Node>> {
        let explicit = self.c() == b'?' && blank(self.at(1));
        let from = if first.at.is_some() {
            first.from
        } else {
            self.i
        };
        if !explicit && !self.is_key(from)? {
            return Ok(None);
        }
        let (line, c1) = first.at.unwrap_or(self.pos());
        self.events += 2;
        let mut items = Vec::new();
        let mut props = std::mem::take(first);
        loop {
            let key = if self.c() == b'?' && blank(self.at(1)) {
                if props.at.is_some() {
                    return self.err("properties before `?` are not supported");
                }
                self.i += 1;
                let here = self.pos();
                let k = match self.block(col, false, true)? {
                    Some(k) => k,
                    None => self.empty(here),
                };
                self.end_line()?;
                self.space()?;
                if self.col() as isize != col || self.c() != b':' || !blank(self.at(1)) {
                    return self.err("an explicit key must be followed by `:` at its column");
                }
                k
            } else {
                let start = self.pos();
                let node = self.flow_node(col, true)?;
                let k = self.finish(node, std::mem::take(&mut props))?;
                while self.c() == b' ' {
                    self.i += 1;
                }
                if self.line != start.0 || self.c() != b':' || !blank(self.at(1)) {
                    return self.err("could not find expected ':'");
                }
                k
            };
            self.i += 1;
            let here = self.pos();
            let v = match self.block(col, true, true)? {
                Some(v) => v,
                None => self.empty(here),
            };
            items.push((key, v));
            self.end_line()?;
            self.space()?;
            if self.eof() || self.marker() {
                break;
            }
            let c = self.col() as isize;
            if c < col {
                break;
            }
            if c > col {
                return self.err("bad indentation of a mapping entry");
            }
            let from = self.i;
            if matches!(self.c(), b'&' | b'!') {
                props = self.props()?;
            }
            if !(self.is_key(from)? || self.c() == b'?' && blank(self.at(1))) {
                return self.err("expected a mapping key at this column");
            }
        }
        Ok(Some(Node {
            v: N::Map(items),
            line,
            col: c1,
        }))
    }

    fn seq(&mut self) -> R<Node> {
        let (line, c1) = self.pos();
        let col = self.col() as isize;
        self.events += 2;
        let mut items = Vec::new();
        loop {
            self.i += 1;
            let here = self.pos();
            let v = match self.block(col, false, false)? {
                Some(v) => v,
                None => self.empty(here),
            };
            items.push(v);
            self.end_line()?;
            self.space()?;
            if self.eof() || self.marker() {
                break;
            }
            let c = self.col() as isize;
            if c < col {
                break;
            }
            if c > col {
                return self.err("bad indentation of a sequence entry");
            }
            if !(self.c() == b'-' && blank(self.at(1))) {
                break;
            }
        }
        Ok(Node {
            v: N::Seq(items),
            line,
            col: c1,
        })
    }

    /// A scalar, alias or flow collection (`key`: one line only).
    fn flow_node(&mut self, n: isize, key: bool) -> R<Node> {
        let (line, col) = self.pos();
        let node = |v| Node { v, line, col };
        match self.c() {
            b'[' | b'{' => {
                self.enter()?;
                let v = self.flow_collection(n)?;
                self.depth -= 1;
                Ok(node(v))
            }
            b'*' => {
                self.i += 1;
                let s = self.i;
                while anchor_char(self.c()) {
                    self.i += 1;
                }
                let name = &self.t[s..self.i];
                if name.is_empty() {
                    return self.err("an alias name must be letters, digits, `-` or `_`");
                }
                match self.names.iter().rev().find(|(k, _)| k == name) {
                    // An alias inside its own anchor's node: endless.
                    Some(&(_, i)) if matches!(self.anchors[i].v, N::Alias(usize::MAX)) => {
                        Err(Error::new("recursion limit exceeded".into(), line, col))
                    }
                    Some(&(_, i)) => {
                        self.events += 1;
                        Ok(node(N::Alias(i)))
                    }
                    None => Err(Error::new("unknown anchor".into(), line, col)),
                }
            }
            b'"' => {
                let s = self.double()?;
                self.events += 1;
                Ok(node(N::Scalar(s, Kind::Quoted)))
            }
            b'\'' => {
                let s = self.single()?;
                self.events += 1;
                Ok(node(N::Scalar(s, Kind::Quoted)))
            }
            _ => {
                let s = self.plain(n, key)?;
                self.events += 1;
                Ok(node(N::Scalar(s, Kind::Plain)))
            }
        }
    }

    /// Inside a flow collection: skips spaces, comments and breaks; a new
    /// line must be indented past the block collection at `n`.
    fn flow_space(&mut self) -> R<()> {
        let line = self.line;
        self.space()?;
        if self.line != line && self.marker() {
            return self.err("found a document marker inside a flow collection");
        }
        if self.eof() {
            return self.err("unclosed flow collection");
        }
        Ok(())
    }

    fn flow_collection(&mut self, n: isize) -> R<N> {
        let map = self.c() == b'{';
        let close = if map { b'}' } else { b']' };
        self.i += 1;
        self.events += 2;
        let mut seq = Vec::new();
        let mut pairs = Vec::new();
        loop {
            self.flow_space()?;
            if self.c() == close {
                self.i += 1;
                break;
            }
            if self.c() == b'?' && blank(self.at(1)) || self.c() == b':' {
                return self.err("explicit or empty keys in flow collections are not supported");
            }
            let (line, start) = (self.line, self.i);
            let p = self.props()?;
            let k = self.flow_item(n, p)?;
            self.flow_space()?;
            // A key is a simple key to libyaml: one
            // line, at most 1024 characters.
            let simple = self.line == line && self.i - start <= 1000;
            let quoted = matches!(&k.v, N::Scalar(_, Kind::Quoted) | N::Seq(_) | N::Map(_));
            if self.c() == b':' && (blank(self.at(1)) || flow_ind(self.at(1)) || quoted) {
                if !simple {
                    return self.err("a key in a flow collection must be on one line");
                }
                self.i += 1;
                self.flow_space()?;
                let v = if matches!(self.c(), b',' | b'}' | b']') {
                    let (line, col) = self.pos();
                    self.empty((line, col))
                } else {
                    let p = self.props()?;
                    self.flow_item(n, p)?
                };
                self.flow_space()?;
                if map {
                    pairs.push((k, v));
                } else {
                    self.events += 2;
                    let (line, col) = (k.line, k.col);
                    seq.push(Node {
                        v: N::Map(vec![(k, v)]),
                        line,
                        col,
                    });
                }
            } else if map {
                let (line, col) = self.pos();
                let v = self.empty((line, col));
                pairs.push((k, v));
            } else {
                seq.push(k);
            }
            match self.c() {
                b',' => self.i += 1,
                c if c == close => {}
                _ => return self.err("expected `,` or the end of the flow collection"),
            }
        }
        Ok(if map { N::Map(pairs) } else { N::Seq(seq) })
    }

    fn flow_item(&mut self, n: isize, p: Props) -> R<Node> {
        if matches!(self.c(), b',' | b']' | b'}') && p.at.is_some() {
            let here = self.pos();
            let e = self.empty(here);
            return self.finish(e, p);
        }
        if matches!(self.c(), b'|' | b'>') {
            return self.err("block scalars are not allowed in a flow collection");
        }
        let node = self.flow_node_in_flow(n)?;
        self.finish(node, p)
    }

    fn flow_node_in_flow(&mut self, n: isize) -> R<Node> {
        let (line, col) = self.pos();
        match self.c() {
            b'[' | b'{' | b'*' | b'"' | b'\'' => self.flow_node(n, false),
            _ => {
                let s = self.plain_flow(n)?;
                self.events += 1;
                Ok(Node {
                    v: N::Scalar(s, Kind::Plain),
                    line,
                    col,
                })
            }
        }
    }

    /// Checks a plain scalar may start here.
    fn plain_start(&self, flow: bool) -> R<()> {
        let c = self.c();
        let next = self.at(1);
        let bad = match c {
            b'-' => blank(next) || flow && flow_ind(next),
            b'?' | b':' => flow || blank(next),
            b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>' | b'\''
            | b'"' | b'%' | b'@' | b'`' => true,
            b'\n' | 0 => true,
            _ => false,
        };
        if bad {
            return self.err("found a character that cannot start a plain scalar");
        }
        self.check_char()
    }

    /// One line of a plain scalar from the cursor: its text (trailing
    /// spaces excluded).
    fn plain_line(&mut self, flow: bool) -> R<&str> {
        let s = self.i;
        let mut end = s;
        loop {
            let c = self.c();
            match c {
                0 | b'\n' => break,
                b' ' => {
                    self.i += 1;
                    continue;
                }
                b'#' if self.i > s && self.s[self.i - 1] == b' ' => break,
                b':' if flow && (flow_ind(self.at(1)) || self.at(1) == b'?') => {
                    return self.err("found unexpected ':'");
                }
                b':' if blank(self.at(1)) => break,
                c if flow && flow_ind(c) => break,
                _ => {}
            }
            self.check_char()?;
            self.i += self.t[self.i..].chars().next().map_or(1, char::len_utf8);
            end = self.i;
        }
        let text = &self.t[s..end];
        self.i = end;
        Ok(text)
    }

    fn plain(&mut self, n: isize, key: bool) -> R<String> {
        self.plain_start(false)?;
        let mut out = self.plain_line(false)?.to_string();
        if key {
            return Ok(out);
        }
        self.plain_more(n, false, &mut out)?;
        Ok(out)
    }

    fn plain_flow(&mut self, n: isize) -> R<String> {
        self.plain_start(true)?;
        let mut out = self.plain_line(true)?.to_string();
        self.plain_more(n, true, &mut out)?;
        Ok(out)
    }

    /// Continuation lines of a plain scalar (indented past `n`), folded.
    fn plain_more(&mut self, n: isize, flow: bool, out: &mut String) -> R<()> {
        loop {
            let save = (self.i, self.line, self.ls);
            while self.c() == b' ' {
                self.i += 1;
            }
            if self.c() != b'\n' {
                (self.i, self.line, self.ls) = save;
                return Ok(());
            }
            let mut breaks = 0;
            while self.c() == b'\n' {
                self.nl();
                breaks += 1;
                while self.c() == b' ' {
                    self.i += 1;
                }
            }
            let stop = self.eof()
                || !flow && (self.col() as isize) <= n
                || self.c() == b'#'
                || self.c() == b'\t'
                || self.ls + 3 <= self.s.len() && {
                    let l = &self.s[self.ls..];
                    (l.starts_with(b"---") || l.starts_with(b"..."))
                        && matches!(l.get(3).copied().unwrap_or(0), b' ' | b'\t' | b'\n' | 0)
                }
                || self.c() == b':' && (blank(self.at(1)) || flow && flow_ind(self.at(1)))
                || flow && flow_ind(self.c());
            if stop {
                (self.i, self.line, self.ls) = save;
                return Ok(());
            }
            if breaks == 1 {
                out.push(' ');
            } else {
                out.extend(std::iter::repeat_n('\n', breaks - 1));
            }
            let line = self.plain_line(flow)?;
            out.push_str(line);
        }
    }

    /// After a line break inside a quoted scalar: skips the breaks and
    /// the next line's indentation; how many breaks.
    fn qbreaks(&mut self) -> R<usize> {
        let mut breaks = 0;
        loop {
            while matches!(self.c(), b' ' | b'\t') {
                self.i += 1;
            }
            if self.c() != b'\n' {
                break;
            }
            self.nl();
            breaks += 1;
        }
        if self.marker() {
            return self.err("found a document marker inside a quoted scalar");
        }
        if self.eof() {
            return self.err("unclosed quoted scalar");
        }
        Ok(breaks)
    }

    /// Folds a line break (and the empty lines after it) in a quoted scalar.
    fn quoted_break(&mut self, out: &mut String) -> R<()> {
        match self.qbreaks()? {
            1 => out.push(' '),
            k => out.extend(std::iter::repeat_n('\n', k - 1)),
        }
        Ok(())
    }

    fn trim_blanks(out: &mut String, from: usize) {
        while out.len() > from && out.ends_with([' ', '\t']) {
            out.pop();
        }
    }

    fn single(&mut self) -> R<String> {
        self.i += 1;
        let mut out = String::new();
        let mut line_from = 0;
        loop {
            match self.c() {
                0 => return self.err("unclosed quoted scalar"),
                b'\'' if self.at(1) == b'\'' => {
                    out.push('\'');
                    self.i += 2;
                    line_from = out.len();
                }
                b'\'' => {
                    self.i += 1;
                    return Ok(out);
                }
                b'\n' => {
                    Self::trim_blanks(&mut out, line_from);
                    self.quoted_break(&mut out)?;
                    line_from = out.len();
                }
                b'\t' => {
                    out.push('\t');
                    self.i += 1;
                }
                _ => {
                    self.check_char()?;
                    let ch = self.t[self.i..].chars().next().unwrap_or(' ');
                    out.push(ch);
                    self.i += ch.len_utf8();
                    if ch != ' ' {
                        line_from = out.len();
                    }
                }
            }
        }
    }

    fn double(&mut self) -> R<String> {
        self.i += 1;
        let mut out = String::new();
        let mut line_from = 0;
        loop {
            match self.c() {
                0 => return self.err("unclosed quoted scalar"),
                b'"' => {
                    self.i += 1;
                    return Ok(out);
                }
                b'\n' => {
                    Self::trim_blanks(&mut out, line_from);
                    self.quoted_break(&mut out)?;
                    line_from = out.len();
                }
                b'\\' if self.at(1) == b'\n' => {
                    // An escaped break is dropped; the empty lines after
                    // it are kept.
                    self.i += 1;
                    self.nl();
                    let k = self.qbreaks()?;
                    out.extend(std::iter::repeat_n('\n', k));
                    line_from = out.len();
                }
                b'\\' => {
                    let e = self.at(1);
                    let hex = match e {
                        b'x' => 2,
                        b'u' => 4,
                        b'U' => 8,
                        _ => 0,
                    };
                    let ch = if hex > 0 {
                        let h = self.t.get(self.i + 2..self.i + 2 + hex).unwrap_or("");
                        let v = (h.len() == hex && h.bytes().all(|b| b.is_ascii_hexdigit()))
                            .then(|| u32::from_str_radix(h, 16).ok())
                            .flatten()
                            .and_then(char::from_u32);
                        match v {
                            Some(c) => c,
                            None => return self.err("invalid escape in a double-quoted scalar"),
                        }
                    } else {
                        match e {
                            b'0' => '\0',
                            b'a' => '\u{7}',
                            b'b' => '\u{8}',
                            b't' | b'\t' => '\t',
                            b'n' => '\n',
                            b'v' => '\u{b}',
                            b'f' => '\u{c}',
                            b'r' => '\r',
                            b'e' => '\u{1b}',
                            b' ' => ' ',
                            b'"' => '"',
                            b'/' => '/',
                            b'\\' => '\\',
                            b'N' => '\u{85}',
                            b'_' => '\u{a0}',
                            b'L' => '\u{2028}',
                            b'P' => '\u{2029}',
                            _ => return self.err("invalid escape in a double-quoted scalar"),
                        }
                    };
                    out.push(ch);
                    self.i += 2 + hex;
                    line_from = out.len();
                }
                b'\t' => {
                    out.push('\t');
                    self.i += 1;
                }
                _ => {
                    self.check_char()?;
                    let ch = self.t[self.i..].chars().next().unwrap_or(' ');
                    out.push(ch);
                    self.i += ch.len_utf8();
                    if ch != ' ' {
                        line_from = out.len();
                    }
                }
            }
        }
    }

    /// `|` or `>` with its indicators; `n`: the parent collection's column.
    fn block_scalar(&mut self, n: isize) -> R<Node> {
        let (line, col) = self.pos();
        let folded = self.c() == b'>';
        self.i += 1;
        let mut chomp = 0i8;
        let mut inc = 0usize;
        for _ in 0..2 {
            match self.c() {
                b'+' | b'-' if chomp == 0 => {
                    chomp = if self.c() == b'+' { 1 } else { -1 };
                    self.i += 1;
                }
                c @ b'1'..=b'9' if inc == 0 => {
                    inc = usize::from(c - b'0');
                    self.i += 1;
                }
                _ => {}
            }
        }
        if !matches!(self.c(), b' ' | b'\n' | 0) {
            return self.err("invalid block scalar header");
        }
        self.inline()?;
        if !matches!(self.c(), b'\n' | 0) {
            return self.err("invalid block scalar header");
        }
        if self.c() == b'\n' {
            self.nl();
        }
        let mut indent = match inc {
            0 => 0,
            k if n >= 0 => n as usize + k,
            k => k,
        };
        let mut out = String::new();
        let mut leading_break = String::new();
        let mut trailing = String::new();
        self.block_breaks(n, &mut indent, &mut trailing)?;
        let mut leading_blank = false;
        while self.col() == indent && !self.eof() {
            let trailing_blank = matches!(self.c(), b' ' | b'\t');
            if folded && leading_break == "\n" && !leading_blank && !trailing_blank {
                if trailing.is_empty() {
                    out.push(' ');
                }
                leading_break.clear();
            } else {
                out.push_str(&leading_break);
                leading_break.clear();
            }
            out.push_str(&trailing);
            trailing.clear();
            leading_blank = matches!(self.c(), b' ' | b'\t');
            while !matches!(self.c(), b'\n' | 0) {
                if self.c() != b'\t' {
                    self.check_char()?;
                }
                let ch = self.t[self.i..].chars().next().unwrap_or(' ');
                out.push(ch);
                self.i += ch.len_utf8();
            }
            if self.eof() {
                break;
            }
            self.nl();
            leading_break.push('\n');
            self.block_breaks(n, &mut indent, &mut trailing)?;
        }
        if chomp != -1 {
            out.push_str(&leading_break);
        }
        if chomp == 1 {
            out.push_str(&trailing);
        }
        // Leave the cursor at the start of the line that ended the scalar.
        if !self.eof() {
            self.i = self.ls;
        }
        self.events += 1;
        Ok(Node {
            v: N::Scalar(out, Kind::Quoted),
            line,
            col,
        })
    }

    /// libyaml's `scan_block_scalar_breaks`: empty lines (and the
    /// indentation, found from them when not given).
    fn block_breaks(&mut self, n: isize, indent: &mut usize, breaks: &mut String) -> R<()> {
        let mut max = 0;
        loop {
            while (*indent == 0 || self.col() < *indent) && self.c() == b' ' {
                self.i += 1;
            }
            max = max.max(self.col());
            if (*indent == 0 || self.col() < *indent) && self.c() == b'\t' {
                return self.err("found a tab character where an indentation space is expected");
            }
            if self.c() != b'\n' {
                break;
            }
            self.nl();
            breaks.push('\n');
        }
        if *indent == 0 {
            *indent = max.max((n + 1).max(1) as usize);
        }
        Ok(())
    }
}
