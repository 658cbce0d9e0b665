//! The reader against serde_norway (kept as a dev-dependency for this):
//! on every input both give the same values, or ours refuses it. Every
//! YAML text the unit tests load goes through [`against_norway`] too
//! (`spec::load`, `serde_path::from_yaml`), and so does every YAML file
//! and ```yaml block of the repository.

use super::*;
use crate::spec::strict::StrictValue;
use serde::Deserialize;
use serde_json::json;
use std::path::Path;

/// serde_norway's documents, through the same `StrictValue` reading.
fn norway(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        match StrictValue::deserialize(doc) {
            Ok(StrictValue(v)) => out.push(v),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(out)
}

/// Both readers agree on `text`: the same documents, or both refuse it.
pub(crate) fn against_norway(text: &str) {
    crate::testutil::fuzz_seed("yaml", text.as_bytes());
    match (values(text), norway(text)) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "values differ on {text:?}"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("readers differ on {text:?}:\n ours: {a:?}\n serde_norway: {b:?}"),
    }
}

/// Ours refuses `text`, or reads what serde_norway reads (the fuzz
/// target's invariant).
fn refused_or_same(text: &str) {
    if let Ok(a) = values(text) {
        assert_eq!(Ok(a), norway(text), "on {text:?}");
    }
}

fn repo_texts() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p.to_string_lossy().to_string();
            if p.is_dir() {
                if !name.ends_with("/target") && !name.contains("/.") {
                    walk(&p, out);
                }
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                out.push((name, std::fs::read_to_string(&p).unwrap_or_default()));
            } else if name.ends_with(".md") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                for (i, block) in text.split("```yaml\n").skip(1).enumerate() {
                    let body = block.split("\n```").next().unwrap_or("");
                    out.push((format!("{name} block {i}"), format!("{body}\n")));
                }
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for d in ["tests", "docs", "examples", "boards", "src", "systemd"] {
        walk(&root.join(d), &mut out);
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for (i, block) in readme.split("```yaml\n").skip(1).enumerate() {
        let body = block.split("\n```").next().unwrap_or("");
        out.push((format!("README.md block {i}"), format!("{body}\n")));
    }
    out
}

#[test]
fn every_yaml_text_of_the_repository_reads_as_serde_norway_reads_it() {
    let texts = repo_texts();
    assert!(texts.len() > 10, "{}", texts.len());
    for (name, text) in &texts {
        let ours = values(text);
        match (&ours, norway(text)) {
            (Ok(a), Ok(b)) => assert_eq!(a, &b, "{name}"),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("{name}: ours {a:?}, serde_norway {b:?}"),
        }
        // ... and what we print of it reads back the same.
        for v in ours.unwrap_or_default() {
            assert_eq!(values(&to_string(&v)).unwrap(), vec![v.clone()], "{name}");
        }
    }
}

const SAME: &[&str] = &[
    "",
    "# only a comment\n",
    "---\n",
    "a\n",
    "a: 1\nb: -2\nc: 1.5\nd: true\ne: ~\nf:\ng: null\nh: 0x1f\ni: 0o17\nj: 0b101\n",
    "- +1\n- .5\n- 1_000\n- 0123\n- -0\n- 1e3\n- +.5\n- -0x10\n- 0x\n- 1.\n- inf\n- NaN\n",
    "- yes\n- on\n- True\n- FALSE\n- Null\n- NULL\n- y\n- 12:30\n- 1e400\n- 007\n- 0.5.1\n",
    "a:\n  b:\n    c: d\n  e: f\ng: h\n",
    "a:\n- x\n- y\nb:\n  - z\n",
    "- a: 1\n  b: 2\n- - x\n  - y\n-\n- c\n",
    "- - - deep\n    - x\n  - y\n",
    "a: [1, two, \"3\", [x], {k: v}]\nb: {a: 1, b: [2, 3], c: }\nc: []\nd: {}\n",
    "a: [\n  1,\n  2,\n]\nb: {\n  x: 1,\n  y: 2\n  }\n",
    "a: plain\n  folded\n\n  lines\nb: x #comment\nc: x#y\nd: http://x:80/y\n",
    "a: 'it''s'\nb: \"tab\\tnew\\nline \\u00e9 \\x41 \\\\ \\\" \\/\"\nc: 'a\n  b\n\n  c'\n",
    "a: \"x\\\n  y\"\nb: \"p  \n  q\"\nc: \"\"\nd: ''\n",
    "a: |\n  one\n  two\nb: >\n  folded\n  text\n\n  para\nc: |-\n  strip\nd: |+\n  keep\n\ne: x\n",
    "a: >-\n  x\n    more\n  y\nb: |2\n    indented\nc: |\n\n  after blank\n",
    "- |\n  in seq\n- >\n  f\n",
    "a: &x 1\nb: *x\nc: &m {k: v}\nd: *m\ne: &s\n  - 1\nf: *s\n",
    "&k key: v\nother: *k\n",
    "a: &x 1\nb: &x 2\nc: *x\nd: &y [*x]\n",
    "a: !!str 123\nb: !!int \"42\"\nc: !!float 1\nd: !!bool true\ne: !!null ~\nf: !!seq [1]\ng: !!map {a: 1}\n",
    "%YAML 1.2\n---\na: 1\n...\n---\nb: 2\n",
    "--- a\n--- [b]\n---\n- c\n",
    "a: 1\n---\n---\nb: 2\n",
    "\"quoted key\": 1\n'single': 2\n? explicit\n: 3\n",
    "a:    \n  - x\n",
    "k: v   \n\n\n# c\n  # d\nj: w\n",
    "a: b\r\nc: d\r\n",
    "\u{feff}a: 1\n",
    "\u{feff}a: 1\nb: 2\n",
    "\u{feff}# c\na: 1\nb: 2\n",
    "\u{feff}---\na: 1\n",
    "\u{feff}- a\n- b\n",
    "ü: é\nemoji: 😀\n",
    "- a\n-  b\n-   c: d\n    e: f\n",
    "top\n",
    "a: -x\nb: ?x\nc: :x\nd: x-\n",
    "a: 1 # c\twith a tab\n# c\nb: [1, 2] # c\n",
    "a: {\"j\":1, \"k\": [2]}\n",
    "a:\n  - b: 1\n    c:\n    - d\n  - e\n",
    "a: x\n  y: z\n",
    "a: b: c\n",
    "- a\nb: c\n",
    "a:\n  b\n c\n",
    "a: [1, 2\n",
    "a: 1\na: 2\n",
    "a: {x: 1, x: 2}\n",
    "[a]: b\n",
    "? [a]\n: b\n",
    "a: *nope\n",
    "a: !local x\n",
    "a: .inf\n",
    "a: 18446744073709551616\n",
    "a: -9223372036854775809\n",
    "a: 18446744073709551615\nb: -9223372036854775808\n",
    "\ta: 1\n",
    "a:\n\t- b\n",
    "a: |\n  x\n b: c\n",
    "a: 'unclosed\n",
    "- [a, b]: c\n",
    "---\n- a\n...\n",
    "a: >\n\n  x\n\n\n  y\n",
    "a: |\n   x\n  y\n",
    "b: |-\n\n\n",
    "a: |+\n\nb: 1\n",
    "x: '\n  a\n  '\n",
    "x: \"a\\\n\n  b\"\n",
    "a:\n  - 1\n  -\n  - 3\n",
    "a: &x\nb: *x\n",
    "a: !!str\nb: 1\n",
    "{a: 1}\n",
    "[1, 2]\n",
    "a: {b: {c: [d, {e: f}]}}\n",
    "\"a\": \"b\"\n",
    "a: [\n1]\n",
    "a: [b:c, {image: busybox:1, url: http://x:80/#y}]\n",
    "a: [b\nc, d\n  e]\n",
    "[a\nb: c]\n",
    "a: b\n  # c\n  d\n",
    "- a\n  - b\n",
    "a: 'x'b\n",
    "[&a x, *a, !!str 1, &b [y], *b]\n",
    "a: !!str\nb: !!int\n",
    "a: !!null\n",
    "- ? a\n  : b\n",
    "a:\n  - b\n  -   c\n  - - d\n    - e\n",
    "a: |1\n  x\n",
    "a: >2-\n   x\n  y\n",
    "- >+\n\n  x\n\n",
    "a: \"\\x41\\u00e9\\U0001F600\\N\\_\\L\\P\"\n",
    "a: \"\\q\"\n",
    "a: \"\\'\"\n",
    "a: x\u{2028}y\n",
    "a: \"\\ud800\"\n",
    "a: &a\n  b: &b [1]\n  c: *b\nd: *a\n",
    "a:\n    b: 1\n  c: 2\n",
    "{a\nb: c}\n",
    "[a: b, {c: d}: e]\n",
    "a:\n  b: [\n x]\n",
    "a:\n  b: {\nx: 1}\n",
    "a:\n  b: 'x\n y'\n",
    "a:\n  b: \"x\ny\"\n",
    "- 'x\ny'\n",
    "a:\n  b: x\n y\n",
    "- [a,\n  b]\n- c\n",
    "a:\n  b: 'x\ny'\n",
    "- \"x\\\ny\"\n",
    "a: 'x\n---\n'\n",
    "null: 1\n~: 2\n1: 3\ntrue: 4\n",
];

#[test]
fn snippets_read_as_serde_norway_reads_them() {
    for text in SAME {
        against_norway(text);
    }
}

const REFUSED: &[&str] = &[
    "a: [b:]\n",
    "a: &a [*a]\n",
    "b: &b [1]\nc: &b [*b]\n",
    "a: 'x\u{2028}y'\n",
    "a: 'x\n...\ty'\n",
    "a: x\n...\t\n",
    "{? a: b}\n",
    "a: 1\n!|:x b: 2\n",
    "!a!b x: 1\n",
    "...\n",
    "a: |\n  x\0\n",
    "---\n- a\n...\nF: 1\n",
    "a: &x 1\nb: &y *x\n",
    "a: !custom x\n",
    "%TAG ! tag:x,2000:\n---\na: 1\n",
    "a:\tb\n",
];

#[test]
fn what_we_do_not_read_as_libyaml_does_is_refused_at_a_position() {
    // A key over 1000 bytes with its properties (libyaml drops simple keys
    // past 1024 characters).
    let long = format!("!t{} k: v\n", "x".repeat(1000));
    assert!(values(&long).is_err());
    refused_or_same(&long);
    for text in REFUSED {
        let e = values(text).unwrap_err();
        assert!(e.message().contains(" at line "), "{text:?}: {e}");
        refused_or_same(text);
    }
}

#[test]
fn errors_name_the_node_and_its_position() {
    let e = values("a:\n  b: 1\n  b: 2\n").unwrap_err();
    assert_eq!(e.to_string(), "a: duplicate key \"b\" at line 2 column 3");
    let e = values("x:\n- {k: 1, k: 2}\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "x[0]: duplicate key \"k\" at line 2 column 3"
    );
    let e = values("a:\n  ? [x]\n  : y\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "a.?: invalid type: sequence, expected a string at line 2 column 5"
    );
    let e = values("a: [1, 2\nb: 1\n").unwrap_err();
    assert_eq!((e.path(), e.line), ("", 2), "{e}");
    let e = values("k: v\nk2: *nope\n").unwrap_err();
    assert_eq!(e.to_string(), "unknown anchor at line 2 column 5");
    let e = values("- a: .inf\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "[0].a: inf is not a finite number at line 1 column 6"
    );
}

#[test]
fn nodes_are_located_by_path() {
    let d = one("a: 1\nlist:\n- x\n- k: &v v\n  j: *v\n").unwrap();
    let at = |p: &[Step<'_>], key| d.locate(p, key);
    assert_eq!(at(&[], false), Some((1, 1)));
    assert_eq!(at(&[Step::Key("list")], false), Some((3, 1)));
    assert_eq!(
        at(&[Step::Key("list"), Step::Index(1)], false),
        Some((4, 3))
    );
    let j = [Step::Key("list"), Step::Index(1), Step::Key("j")];
    assert_eq!(at(&j, true), Some((5, 3)));
    // An alias is placed at its anchored node.
    assert_eq!(at(&j, false), Some((4, 6)));
    assert_eq!(at(&[Step::Key("nope")], false), None);
    assert_eq!(one("").unwrap().to_value(), Ok(Value::Null));
    assert!(one("a\n---\nb\n").is_err());
}

#[test]
fn a_billion_laughs_exceeds_the_budget() {
    let mut text = String::from("a: &a [x,x,x,x,x,x,x,x,x]\n");
    for (prev, name) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        let items = vec![format!("*{prev}"); 9].join(",");
        text.push_str(&format!("{name}: &{name} [{items}]\n"));
    }
    let e = values(&text).unwrap_err();
    assert!(e.to_string().contains("repetition limit exceeded"), "{e}");
    let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
    assert!(values(&deep).is_err());
    // One long line of many nodes, and a long indentation, are read in
    // linear time (columns are counted on, not again from the line start).
    let wide = format!("[{}a]\n", "a, ".repeat(200_000));
    assert_eq!(values(&wide).unwrap()[0].as_array().unwrap().len(), 200_001);
    let indented = format!("a: |\n{}x\n", " ".repeat(200_000));
    assert_eq!(values(&indented).unwrap()[0]["a"], "x\n");
}

#[test]
fn the_writer_quotes_what_would_read_as_something_else() {
    let v = json!({
        "s": ["yes", "on", "No", "true", "null", "~", "", "0755", "1.5", "1e3", "0x1",
              "- x", "a: b", "a #b", "x:", " lead", "trail ", "it's", "tab\there",
              "\u{1}", "ü", "ls\u{2028}ps\u{2029}nel\u{85}", "-", "?", ":", "plain words", "http://x:80/y", "12:30"],
        "n": [1, -2, 1.5, 1e300, true, null],
        "lines": "one\ntwo\n",
        "strip": "one\ntwo",
        "keep": "a\n\n",
        "indented": "  x\ny",
        "empty": {}, "none": [],
        "nested": [{"a": [1, [2, 3]], "b": {"c": "d"}}, [[]]],
        "yes": 1,
        "long ".repeat(300): {"k": ["v"]},
    });
    let text = to_string(&v);
    assert_eq!(values(&text).unwrap(), vec![v.clone()], "{text}");
    assert_eq!(norway(&text).unwrap(), vec![v], "{text}");
    for quoted in ["'yes'", "'on'", "'No'", "'0755'", "'12:30'", "'yes': 1"] {
        assert!(text.contains(quoted), "{quoted} in {text}");
    }
    assert!(text.contains("lines: |\n  one\n  two\n"), "{text}");
    assert!(text.contains("strip: |-\n  one\n  two\n"), "{text}");
    assert!(text.contains("- plain words\n"), "{text}");
}

#[test]
fn the_writer_prints_block_style_as_serde_norway_does() {
    let v = json!({"apiVersion": "v1", "metadata": {"name": "a", "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "args": ["sh", "-c"], "ports": [{"containerPort": 80}]}]}});
    assert_eq!(to_string(&v), serde_norway::to_string(&v).unwrap());
}

/// Replays the fuzz target's invariant over the files in
/// `$YAML_REPLAY_DIR` (its crash artifacts): `cargo test --lib
/// yaml::tests::replay -- --ignored`.
#[test]
#[ignore]
fn replay() {
    let dir = std::env::var("YAML_REPLAY_DIR").unwrap();
    let mut bad = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let data = std::fs::read(e.path()).unwrap();
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        let r = std::panic::catch_unwind(|| {
            refused_or_same(text);
            for v in values(text).unwrap_or_default() {
                let printed = to_string(&v);
                assert_eq!(values(&printed), Ok(vec![v.clone()]), "{printed:?}");
                assert_eq!(norway(&printed), Ok(vec![v]), "{printed:?}");
            }
        });
        if r.is_err() {
            bad += 1;
            eprintln!("^^^ {}", e.path().display());
        }
    }
    assert_eq!(bad, 0);
}
