//! `-o jsonpath=TEMPLATE` and `-o custom-columns=…`: kubectl's common
//! subset of JSONPath.
//!
//! A template is literal text and `{…}` actions:
//!
//! - `{.a.b}`, `{$.a}`, `{.items[0].x}`, `{.items[-1].x}`,
//!   `{.items[*].metadata.name}` (every match, separated by spaces),
//!   `{.metadata.labels.app\.kubernetes\.io/name}` (`\.` is a dot in a key),
//!   `{.metadata.labels['app.kubernetes.io/name']}`;
//! - `{"text"}` (`\n`, `\t`, `\"`, `\\` escapes);
//! - `{range EXPR}…{end}`: the inner template once per match of EXPR, with
//!   `.` the match.
//!
//! Strings print as they are, other values as JSON. A field that is not
//! there prints nothing (kubectl's `get` allows missing keys). Filters
//! (`[?(…)]`), recursive descent (`..`), slices and unions are refused
//! with what was not understood.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(i64),
    All,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Node>);

const SUPPORTED: &str = "supported: {.a.b}, {.items[*].x}, {.items[0].x}, {['key']}, {\"text\"}, {range .items[*]}…{end}";

fn unsupported(what: &str) -> String {
    format!("jsonpath: {what} is not supported ({SUPPORTED})")
}

/// Parses a path expression (`.a.b[0]`, `$.a`, `.`, `a.b` when `relaxed`).
fn parse_path(expr: &str, relaxed: bool) -> Result<Vec<Step>, String> {
    let e = expr.trim();
    let e = e
        .strip_prefix('$')
        .or_else(|| e.strip_prefix('@'))
        .unwrap_or(e);
    let owned;
    let mut rest = if relaxed && !e.is_empty() && !e.starts_with(['.', '[']) {
        // custom-columns accept `metadata.name` too.
        owned = format!(".{e}");
        owned.as_str()
    } else {
        e
    };
    if rest.contains("..") {
        return Err(unsupported(&format!("recursive descent in {expr:?}")));
    }
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("jsonpath: unclosed [ in {expr:?}"))?;
            let inner = r[..end].trim();
            rest = &r[end + 1..];
            if inner == "*" {
                steps.push(Step::All);
            } else if let Some(q) = inner
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
            {
                steps.push(Step::Key(q.to_string()));
            } else if let Ok(i) = inner.parse::<i64>() {
                steps.push(Step::Index(i));
            } else {
                return Err(unsupported(&format!("[{inner}] in {expr:?}")));
            }
        } else if let Some(r) = rest.strip_prefix('.') {
            // A key: up to the next unescaped `.` or `[`.
            let mut key = String::new();
            let mut chars = r.char_indices().peekable();
            let mut consumed = r.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' if chars.peek().is_some_and(|(_, n)| *n == '.') => {
                        key.push('.');
                        chars.next();
                    }
                    '.' | '[' => {
                        consumed = i;
                        break;
                    }
                    c if c.is_alphanumeric() || matches!(c, '_' | '-' | '/') => key.push(c),
                    '*' if key.is_empty() => {
                        return Err(unsupported(&format!(".* in {expr:?}")));
                    }
                    c => return Err(unsupported(&format!("{c:?} in {expr:?}"))),
                }
            }
            rest = &r[consumed..];
            if !key.is_empty() {
                steps.push(Step::Key(key));
            } else if !rest.is_empty() && !rest.starts_with('[') {
                return Err(unsupported(&format!("{expr:?}")));
            }
        } else {
            return Err(unsupported(&format!("{expr:?}")));
        }
    }
    Ok(steps)
}

/// Every value `steps` reach from `v` (none when a key is missing).
fn eval<'a>(v: &'a Value, steps: &[Step]) -> Vec<&'a Value> {
    let mut cur = vec![v];
    for s in steps {
        let mut next = Vec::new();
        for v in cur {
            match s {
                Step::Key(k) => next.extend(v.get(k.as_str())),
                Step::Index(i) => {
                    if let Some(a) = v.as_array() {
                        let i = if *i < 0 { a.len() as i64 + i } else { *i };
                        next.extend(usize::try_from(i).ok().and_then(|i| a.get(i)));
                    }
                }
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
            }
        }
        cur = next;
    }
    cur
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn parse_string(lit: &str) -> Result<String, String> {
    let inner = &lit[1..lit.len() - 1];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(c @ ('"' | '\\')) => out.push(c),
            other => return Err(format!("jsonpath: unknown escape \\{other:?} in {lit}")),
        }
    }
    Ok(out)
}

impl Template {
    /// Parses a `-o jsonpath=` template.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut stack: Vec<(Vec<Step>, Vec<Node>)> = Vec::new();
        let mut nodes = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                nodes.push(Node::Text(rest.to_string()));
                break;
            };
            if open > 0 {
                nodes.push(Node::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            // The action ends at the first `}` outside a string literal.
            let mut in_str = false;
            let mut esc = false;
            let mut close = None;
            for (i, c) in after.char_indices() {
                match c {
                    _ if esc => esc = false,
                    '\\' if in_str => esc = true,
                    '"' => in_str = !in_str,
                    '}' if !in_str => {
                        close = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let close = close.ok_or_else(|| format!("jsonpath: unclosed {{ in {text:?}"))?;
            let action = after[..close].trim();
            rest = &after[close + 1..];
            if let Some(expr) = action.strip_prefix("range ") {
                stack.push((parse_path(expr, false)?, std::mem::take(&mut nodes)));
            } else if action == "end" {
                let (steps, outer) = stack
                    .pop()
                    .ok_or_else(|| format!("jsonpath: {{end}} without {{range}} in {text:?}"))?;
                let inner = std::mem::replace(&mut nodes, outer);
                nodes.push(Node::Range(steps, inner));
            } else if action.starts_with('"') && action.ends_with('"') && action.len() >= 2 {
                nodes.push(Node::Text(parse_string(action)?));
            } else if action.starts_with(['.', '$', '@', '[']) {
                nodes.push(Node::Path(parse_path(action, false)?));
            } else {
                return Err(unsupported(&format!("{{{action}}}")));
            }
        }
        if !stack.is_empty() {
            return Err(format!("jsonpath: {{range}} without {{end}} in {text:?}"));
        }
        Ok(Template(nodes))
    }

    /// The template applied to `v`.
    pub fn render(&self, v: &Value) -> String {
        let mut out = String::new();
        render(&self.0, v, &mut out);
        out
    }
}

fn render(nodes: &[Node], v: &Value, out: &mut String) {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Path(steps) => {
                let vals: Vec<String> = eval(v, steps).into_iter().map(text_of).collect();
                out.push_str(&vals.join(" "));
            }
            Node::Range(steps, inner) => {
                for item in eval(v, steps) {
                    render(inner, item, out);
                }
            }
        }
    }
}

/// One column of `-o custom-columns=HEADER:PATH,...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub header: String,
    steps: Vec<Step>,
}

/// Parses `-o custom-columns=` (the part after `=`). Each PATH is a
/// JSONPath (`.metadata.name`, `{.metadata.name}` or `metadata.name`).
pub fn parse_columns(spec: &str) -> Result<Vec<Column>, String> {
    if spec.trim().is_empty() {
        return Err("custom-columns: give HEADER:.field.path,...".into());
    }
    spec.split(',')
        .map(|c| {
            let (h, p) = c
                .split_once(':')
                .ok_or_else(|| format!("custom-columns: {c:?} is not HEADER:.field.path"))?;
            let p = p.trim();
            let p = p
                .strip_prefix('{')
                .and_then(|p| p.strip_suffix('}'))
                .unwrap_or(p);
            Ok(Column {
                header: h.to_string(),
                steps: parse_path(p, true)?,
            })
        })
        .collect()
}

impl Column {
    /// The cell for object `v`: matches joined by commas, `<none>` when
    /// there is none.
    pub fn cell(&self, v: &Value) -> String {
        let vals: Vec<String> = eval(v, &self.steps)
            .into_iter()
            .filter(|v| !v.is_null())
            .map(text_of)
            .collect();
        if vals.is_empty() {
            "<none>".to_string()
        } else {
            vals.join(",")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "web"}},
             "spec": {"containers": [{"name": "c1"}, {"name": "c2"}]},
             "status": {"podIP": "10.0.0.2", "containerStatuses": [{"restartCount": 3}]}},
            {"metadata": {"name": "b"}, "spec": {"containers": [{"name": "d"}]},
             "status": {}}
        ]})
    }

    fn r(t: &str) -> String {
        Template::parse(t).unwrap().render(&list())
    }

    #[test]
    fn the_common_subset_renders_as_kubectl_does() {
        assert_eq!(r("{.kind}"), "List");
        assert_eq!(r("{$.kind}"), "List");
        assert_eq!(r("{.items[*].metadata.name}"), "a b");
        assert_eq!(r("{.items[0].metadata.name}"), "a");
        assert_eq!(r("{.items[-1].metadata.name}"), "b");
        assert_eq!(r("name={.items[1].metadata.name}!"), "name=b!");
        assert_eq!(
            r(r#"{range .items[*]}{.metadata.name}{"\t"}{.status.podIP}{"\n"}{end}"#),
            "a\t10.0.0.2\nb\t\n"
        );
        assert_eq!(
            r("{range .items[*]}[{range .spec.containers[*]}{.name},{end}]{end}"),
            "[c1,c2,][d,]"
        );
        assert_eq!(
            r("{.items[0].status.containerStatuses[0].restartCount}"),
            "3"
        );
        assert_eq!(
            r(r"{.items[0].metadata.labels.app\.kubernetes\.io/name}"),
            "web"
        );
        assert_eq!(
            r("{.items[0].metadata.labels['app.kubernetes.io/name']}"),
            "web"
        );
        assert_eq!(r("{.items[0].spec.containers[0]}"), r#"{"name":"c1"}"#);
        // Missing fields print nothing.
        assert_eq!(r("<{.items[5].metadata.name}{.nope.x}>"), "<>");
    }

    #[test]
    fn what_is_not_supported_is_refused() {
        for t in [
            "{.items[?(@.metadata.name==\"a\")]}",
            "{..name}",
            "{.items[0:2]}",
            "{.items[*].*}",
            "{range .items[*]}{.x}",
            "{end}",
            "{.a",
            "{len(.items)}",
            r#"{"\q"}"#,
        ] {
            assert!(Template::parse(t).is_err(), "{t}");
        }
        let e = Template::parse("{..name}").unwrap_err();
        assert!(e.contains("not supported"), "{e}");
    }

    #[test]
    fn custom_columns_take_paths_with_or_without_braces() {
        let cols =
            parse_columns("NAME:.metadata.name,IP:{.status.podIP},C:spec.containers[*].name")
                .unwrap();
        let item = &list()["items"][0];
        let cells: Vec<String> = cols.iter().map(|c| c.cell(item)).collect();
        assert_eq!(cells, ["a", "10.0.0.2", "c1,c2"]);
        assert_eq!(cols[1].header, "IP");
        assert_eq!(cols[1].cell(&list()["items"][1]), "<none>");
        assert!(parse_columns("NAME").is_err());
        assert!(parse_columns("").is_err());
        assert!(parse_columns("X:..a").is_err());
    }
}
