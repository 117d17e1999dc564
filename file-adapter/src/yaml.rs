//! YAML (and JSON, which is YAML) documents as `serde_json` values that remember where every
//! node was written, so that an error found later, while turning a value into a typed object,
//! can still name its line and column.
//!
//! Scalars are resolved with the YAML 1.2 core schema (`null`, `true`, integers, floats; a
//! quoted scalar or one tagged `!!str` is always a string). Anchors, aliases and `<<` merge
//! keys work. Duplicate keys, non-scalar keys, nesting deeper than [`MAX_DEPTH`] and alias
//! expansion past [`MAX_NODES`] are errors, never a panic or an exhausted memory.
//!
//! Not here: what a document means (see [`crate::load`]).

use std::collections::BTreeMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};
use xdsc_core::diagnostic::FieldPath;
pub use xdsc_core::diagnostic::Segment;

/// The deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 128;

/// The most nodes one file may expand to (aliases included): a guard against alias bombs.
pub const MAX_NODES: usize = 1_000_000;

/// A line and column, both 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

fn pos(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

/// A parsed document: its value and where each of its nodes starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The document as a JSON value.
    pub value: Value,
    /// Where the document starts.
    pub start: Pos,
    positions: BTreeMap<Vec<Segment>, Pos>,
}

impl Document {
    /// Where the node at `path` was written: for a mapping entry its key, for a sequence item
    /// its start. A path that does not exist is answered with its longest existing prefix. A
    /// [`Segment::Named`] step finds the list item of that `name` in the document's value, so
    /// `routes[api]` is found without the path's text being read.
    pub fn position(&self, path: &[Segment]) -> Pos {
        let path = self.physical(path);
        (0..=path.len())
            .rev()
            .find_map(|n| self.positions.get(&path[..n]).copied())
            .unwrap_or(self.start)
    }

    /// `path` as the parser recorded positions: fields and indexes only.
    fn physical(&self, path: &[Segment]) -> Vec<Segment> {
        let mut out = Vec::with_capacity(path.len());
        let mut node = Some(&self.value);
        for s in path {
            let step = match s {
                Segment::Field(k) | Segment::Key(k) => {
                    node = node.and_then(|v| v.get(&**k));
                    Segment::Field(k.clone())
                }
                Segment::Index(i) => {
                    node = node.and_then(|v| v.get(*i));
                    Segment::Index(*i)
                }
                Segment::Named(n) => {
                    let found = node.and_then(Value::as_array).and_then(|items| {
                        items
                            .iter()
                            .position(|i| i.get("name").and_then(Value::as_str) == Some(&**n))
                    });
                    let Some(i) = found else { break };
                    node = node.and_then(|v| v.get(i));
                    Segment::Index(i)
                }
            };
            out.push(step);
        }
        out
    }
}

/// A syntax error with where it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct SyntaxError {
    /// Where the error is.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

/// Deserializes a value into `T`; on failure, the path of the offending field (for
/// [`Document::position`]) and the message.
pub(crate) fn typed<T: DeserializeOwned>(v: Value) -> Result<T, (FieldPath, String)> {
    serde_path_to_error::deserialize(v)
        .map_err(|e| (FieldPath::from_serde(e.path()), e.into_inner().to_string()))
}

/// Parses every document of a YAML or JSON text. Empty documents (only comments) are left out.
///
/// ```
/// use xdsc_core::diagnostic::Segment;
/// use xdsc_file::yaml::parse;
/// let docs = parse("kind: Cluster\nname: web\n---\n# nothing\n---\nports: [80, \"81\"]\n").unwrap();
/// assert_eq!(docs.len(), 2);
/// assert_eq!(docs[0].value["name"], "web");
/// assert_eq!(docs[1].value["ports"][1], "81");
/// let at = docs[1].position(&[Segment::Field("ports".into()), Segment::Index(1)]);
/// assert_eq!((at.line, at.column), (6, 13));
/// assert!(parse("a: [1, 2").is_err());
/// ```
pub fn parse(text: &str) -> Result<Vec<Document>, SyntaxError> {
    parse_with(text, true)
}

/// [`parse`] recording positions only two levels deep (where the objects of a list document
/// or a `kind: List` start), several times faster: [`Document::position`] of a deeper path
/// answers its top-two-level prefix. For reading many files where exact positions are needed
/// only for the rare error (parse that file again with [`parse`]).
///
/// ```
/// use xdsc_core::diagnostic::Segment;
/// use xdsc_file::yaml::parse_values;
/// let docs = parse_values("- a: {b: 1}\n- a: {b: 2}\n").unwrap();
/// assert_eq!(docs[0].value[1]["a"]["b"], 2);
/// assert_eq!(docs[0].position(&[Segment::Index(1)]).line, 2, "an item's start is known");
/// let deep = [Segment::Index(1), Segment::Field("a".into()), Segment::Field("b".into())];
/// assert_eq!(docs[0].position(&deep).column, 3, "deeper: its second-level prefix");
/// ```
pub fn parse_values(text: &str) -> Result<Vec<Document>, SyntaxError> {
    parse_with(text, false)
}

fn parse_with(text: &str, track: bool) -> Result<Vec<Document>, SyntaxError> {
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        anchors: BTreeMap::new(),
        nodes: 0,
        track,
        positions: BTreeMap::new(),
        path: Vec::new(),
    };
    let mut docs = Vec::new();
    loop {
        let (event, span) = b.next()?;
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => return Ok(docs),
            Event::DocumentStart(_) => {
                b.positions.clear();
                let (event, span) = b.next()?;
                // Where the document's content starts (not its `---`).
                let start = pos(&span);
                if matches!(event, Event::DocumentEnd) {
                    continue;
                }
                let value = b.node(event, span, 0)?;
                if value.is_null() {
                    continue;
                }
                docs.push(Document {
                    value,
                    start,
                    positions: std::mem::take(&mut b.positions),
                });
            }
            _ => {
                return Err(SyntaxError {
                    pos: pos(&span),
                    message: "unexpected content outside a document".into(),
                });
            }
        }
    }
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: BTreeMap<usize, Value>,
    nodes: usize,
    /// Whether to record positions (and so keep `path`).
    track: bool,
    positions: BTreeMap<Vec<Segment>, Pos>,
    path: Vec<Segment>,
}

impl<'a> Builder<'a> {
    /// Whether the children of a container at `depth` get positions: always when tracking,
    /// else only the top two levels (the items of a list document, of a `kind: List`), which
    /// is what an object's own position needs and costs next to nothing.
    fn records(&self, depth: usize) -> bool {
        self.track || depth < 2
    }

    fn next(&mut self) -> Result<(Event<'a>, Span), SyntaxError> {
        match self.parser.next_event() {
            Some(Ok(e)) => Ok(e),
            Some(Err(e)) => Err(SyntaxError {
                pos: Pos {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                },
                message: e.info().to_owned(),
            }),
            None => Err(SyntaxError {
                pos: Pos::default(),
                message: "unexpected end of input".into(),
            }),
        }
    }

    fn count(&mut self, n: usize, span: &Span) -> Result<(), SyntaxError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(SyntaxError {
                pos: pos(span),
                message: format!("more than {MAX_NODES} nodes (aliases expanded)"),
            });
        }
        Ok(())
    }

    fn node(&mut self, event: Event<'a>, span: Span, depth: usize) -> Result<Value, SyntaxError> {
        self.count(1, &span)?;
        if depth > MAX_DEPTH {
            return Err(SyntaxError {
                pos: pos(&span),
                message: format!("nested deeper than {MAX_DEPTH} levels"),
            });
        }
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let forced_string = tag
                    .as_ref()
                    .is_some_and(|t| t.handle == "tag:yaml.org,2002:" && t.suffix == "str")
                    || tag
                        .as_ref()
                        .is_some_and(|t| t.handle == "!!" && t.suffix == "str");
                let v = if style == ScalarStyle::Plain && !forced_string {
                    resolve(&text)
                } else {
                    Value::String(text.into_owned())
                };
                (v, anchor)
            }
            Event::Alias(id) => {
                let v = self.anchors.get(&id).cloned().ok_or_else(|| SyntaxError {
                    pos: pos(&span),
                    message: "alias to an unknown anchor".into(),
                })?;
                self.count(size(&v), &span)?;
                return Ok(v);
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    let record = self.records(depth);
                    if record {
                        self.path.push(Segment::Index(items.len()));
                        self.positions.insert(self.path.clone(), pos(&span));
                    }
                    let item = self.node(event, span, depth + 1)?;
                    if record {
                        self.path.pop();
                    }
                    items.push(item);
                }
                (Value::Array(items), anchor)
            }
            Event::MappingStart(anchor, _) => (self.mapping(depth)?, anchor),
            _ => {
                return Err(SyntaxError {
                    pos: pos(&span),
                    message: "unexpected YAML event".into(),
                });
            }
        };
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        Ok(value)
    }

    fn mapping(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        let mut map = Map::new();
        let mut merged = Map::new();
        loop {
            let (event, span) = self.next()?;
            let key = match event {
                Event::MappingEnd => break,
                Event::Scalar(text, ..) => text.into_owned(),
                Event::Alias(id) => match self.anchors.get(&id) {
                    Some(Value::String(s)) => s.clone(),
                    Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
                    _ => {
                        return Err(SyntaxError {
                            pos: pos(&span),
                            message: "mapping keys must be scalars".into(),
                        });
                    }
                },
                _ => {
                    return Err(SyntaxError {
                        pos: pos(&span),
                        message: "mapping keys must be scalars".into(),
                    });
                }
            };
            if map.contains_key(&key) {
                return Err(SyntaxError {
                    pos: pos(&span),
                    message: format!("duplicate key {key:?}"),
                });
            }
            let record = self.records(depth);
            if record {
                self.path.push(Segment::Field(key.as_str().into()));
                self.positions.insert(self.path.clone(), pos(&span));
            }
            let (event, vspan) = self.next()?;
            let value = self.node(event, vspan, depth + 1)?;
            if record {
                self.path.pop();
            }
            if key == "<<" {
                let sources = match value {
                    Value::Array(items) => items,
                    other => vec![other],
                };
                for source in sources {
                    let Value::Object(m) = source else {
                        return Err(SyntaxError {
                            pos: pos(&span),
                            message: "a `<<` merge takes a mapping or a list of mappings".into(),
                        });
                    };
                    for (k, v) in m {
                        merged.entry(k).or_insert(v);
                    }
                }
                continue;
            }
            map.insert(key, value);
        }
        for (k, v) in merged {
            map.entry(k).or_insert(v);
        }
        Ok(Value::Object(map))
    }
}

fn size(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(size).sum::<usize>(),
        Value::Object(m) => 1 + m.values().map(size).sum::<usize>(),
        _ => 1,
    }
}

/// The YAML 1.2 core schema's resolution of a plain scalar.
fn resolve(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let negative = text.starts_with('-');
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Number(i.into());
        }
        if let Ok(u) = unsigned.parse::<u64>()
            && !negative
        {
            return Value::Number(u.into());
        }
    }
    for (prefix, radix) in [("0x", 16), ("0o", 8)] {
        if let Some(digits) = text.strip_prefix(prefix)
            && let Ok(u) = u64::from_str_radix(digits, radix)
        {
            return Value::Number(u.into());
        }
    }
    if is_float(unsigned)
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

/// `[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?` or `\.[0-9]+(...)`: what the core schema calls a float
/// (infinities and NaN have no JSON form and stay strings).
fn is_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = (!int.is_empty() || !frac.is_empty()) && digits(int) && digits(frac);
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Value {
        let docs = parse(text).unwrap();
        assert_eq!(docs.len(), 1, "{text}");
        docs.into_iter().next().unwrap().value
    }

    #[test]
    fn scalars_resolve_with_the_core_schema() {
        let v = one(
            "a: 1\nb: -2\nc: 1.5\nd: true\ne: ~\nf: \"1\"\ng: 0x1f\nh: hello\ni: 1e3\nj: .inf\nk: !!str 5\nl: 18446744073709551615\nm: 1.2.3\n",
        );
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"], -2);
        assert_eq!(v["c"], 1.5);
        assert_eq!(v["d"], true);
        assert!(v["e"].is_null());
        assert_eq!(v["f"], "1");
        assert_eq!(v["g"], 31);
        assert_eq!(v["h"], "hello");
        assert_eq!(v["i"], 1000.0);
        assert_eq!(v["j"], ".inf");
        assert_eq!(v["k"], "5");
        assert_eq!(v["l"], u64::MAX);
        assert_eq!(v["m"], "1.2.3");
    }

    #[test]
    fn json_is_read_as_yaml() {
        let v = one(r#"{"kind": "Cluster", "name": "web", "n": [1, {"x": null}]}"#);
        assert_eq!(v["n"][1]["x"], Value::Null);
        assert_eq!(v["name"], "web");
    }

    #[test]
    fn anchors_aliases_and_merges() {
        let v = one("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\nlist: [*b]\n");
        assert_eq!(v["other"]["x"], 1);
        assert_eq!(v["other"]["y"], 3);
        assert_eq!(v["list"][0]["y"], 2);
        assert!(v["other"].get("<<").is_none());
    }

    #[test]
    fn positions_name_keys_and_items() {
        let docs =
            parse("---\na: 1\n---\nkind: X\nspec:\n  rules:\n    - host: a\n    - host: b\n")
                .unwrap();
        let d = &docs[1];
        assert_eq!(d.start.line, 4, "where its content starts");
        let p = |s: &[Segment]| d.position(s);
        let rules = [
            Segment::Field("spec".into()),
            Segment::Field("rules".into()),
        ];
        assert_eq!(p(&rules).line, 6);
        let mut second = rules.to_vec();
        second.push(Segment::Index(1));
        assert_eq!(p(&second), Pos { line: 8, column: 7 });
        second.push(Segment::Field("missing".into()));
        assert_eq!(p(&second).line, 8, "falls back to the longest prefix");
    }

    #[test]
    fn a_list_item_is_found_by_its_name() {
        let d = parse("routes:\n  - name: a\n    x: 1\n  - name: b\n    match:\n      path: /\n")
            .unwrap()
            .remove(0);
        let route = |name: &str, rest: &[&str]| {
            let mut p = vec![Segment::Field("routes".into()), Segment::Named(name.into())];
            p.extend(rest.iter().map(|f| Segment::Field((*f).into())));
            d.position(&p)
        };
        assert_eq!(route("b", &["match", "path"]), Pos { line: 6, column: 7 });
        assert_eq!(route("a", &[]), Pos { line: 2, column: 5 });
        assert_eq!(
            route("c", &["match"]).line,
            1,
            "no such item: the list's key"
        );
        let key = [Segment::Key("routes".into()), Segment::Index(1)];
        assert_eq!(
            d.position(&key).line,
            4,
            "a quoted key is a mapping key too"
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for bad in [
            "a: [1, 2",
            "a: 1\na: 2\n",
            "? [a]\n: 1\n",
            "a: *nope\n",
            "\"unterminated",
            "a:\n\t- b",
            "{a: 1}}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should fail");
        }
        let deep = "[".repeat(MAX_DEPTH + 5) + &"]".repeat(MAX_DEPTH + 5);
        assert!(parse(&deep).unwrap_err().message.contains("deeper"));
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..8 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("b{}", i - 1)
            };
            bomb.push_str(&format!("b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        assert!(parse(&bomb).unwrap_err().message.contains("nodes"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Whatever the bytes, parsing answers (a value or an error) and never panics; a
        /// position it reports is inside the text.
        #[test]
        fn arbitrary_text_never_panics(text in "[a-z:\\-\\[\\]{}&*!|>'\"#, \n\t0-9.~?%@`]{0,200}") {
            match parse(&text) {
                Ok(docs) => for d in docs { proptest::prop_assert!(d.start.line >= 1); }
                Err(e) => proptest::prop_assert!(e.pos.line <= text.lines().count() + 2, "{e}"),
            }
        }

        /// A valid document with one byte changed still never panics.
        #[test]
        fn mutated_documents_never_panic(at in 0usize..120, byte in proptest::prelude::any::<u8>()) {
            let doc = "kind: VirtualHost\nname: site\nlisteners: [http]\ndomains: ['*']\nroutes:\n  - name: r\n    match: {path: {prefix: /api}}\n    forward: {backends: [{cluster: web, weight: 3}]}\n";
            let mut bytes = doc.as_bytes().to_vec();
            let i = at % bytes.len();
            bytes[i] = byte;
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse(&text);
        }
    }

    #[test]
    fn error_positions_are_one_based() {
        let e = parse("a: 1\nb: [1,\n").unwrap_err();
        assert!(e.pos.line >= 2, "{e}");
    }
}
