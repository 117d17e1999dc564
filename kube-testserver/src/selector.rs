//! Label selectors (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>3`,
//! `a<3`) and field selectors (`f=v`, `f==v`, `f!=v`, with `\` escapes) as the API server
//! parses them, and matching against JSON objects.
//!
//! Field selectors only accept the labels the resource declares
//! ([`crate::ResourceDef::field_labels`] and `metadata.name`/`metadata.namespace`); others are
//! refused, as the real server refuses them.

use serde_json::Value;

use crate::error::ApiError;
use crate::resources::ResourceDef;

/// One label requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Label {
    Exists(String),
    Absent(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Greater(String, i64),
    Less(String, i64),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector(Vec<Label>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Op(&'static str),
}

fn tokens(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' => {
                chars.next();
            }
            ',' | '(' | ')' | '<' | '>' => {
                chars.next();
                out.push(Token::Op(match c {
                    ',' => ",",
                    '(' => "(",
                    ')' => ")",
                    '<' => "<",
                    _ => ">",
                }));
            }
            '=' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                }
                out.push(Token::Op("="));
            }
            '!' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                    out.push(Token::Op("!="));
                } else {
                    out.push(Token::Op("!"));
                }
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if " \t,()<>=!".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter.
    pub(crate) fn parse(s: &str) -> Result<Self, ApiError> {
        Self::parse_inner(s).map_err(|why| {
            ApiError::bad_request(format!("unable to parse requirement: {why} in \"{s}\""))
        })
    }

    fn parse_inner(s: &str) -> Result<Self, String> {
        let toks = tokens(s)?;
        let mut reqs = Vec::new();
        let mut i = 0;
        let word = |i: usize| match toks.get(i) {
            Some(Token::Word(w)) => Ok(w.clone()),
            other => Err(format!("expected a key or value, found {other:?}")),
        };
        while i < toks.len() {
            let req = if toks[i] == Token::Op("!") {
                let key = word(i + 1)?;
                i += 2;
                Label::Absent(key)
            } else {
                let key = word(i)?;
                i += 1;
                match toks.get(i) {
                    None | Some(Token::Op(",")) => Label::Exists(key),
                    Some(Token::Op(op @ ("=" | "!="))) => {
                        i += 1;
                        let value = match toks.get(i) {
                            Some(Token::Word(w)) => {
                                i += 1;
                                w.clone()
                            }
                            _ => String::new(),
                        };
                        if *op == "=" {
                            Label::In(key, vec![value])
                        } else {
                            Label::NotIn(key, vec![value])
                        }
                    }
                    Some(Token::Op(op @ ("<" | ">"))) => {
                        let n: i64 = word(i + 1)?
                            .parse()
                            .map_err(|_| "expected an integer".to_owned())?;
                        i += 2;
                        if *op == ">" {
                            Label::Greater(key, n)
                        } else {
                            Label::Less(key, n)
                        }
                    }
                    Some(Token::Word(w)) if w == "in" || w == "notin" => {
                        let negate = w == "notin";
                        if toks.get(i + 1) != Some(&Token::Op("(")) {
                            return Err("expected '(' after in/notin".into());
                        }
                        i += 2;
                        let mut values = Vec::new();
                        loop {
                            match toks.get(i) {
                                Some(Token::Op(")")) => {
                                    i += 1;
                                    break;
                                }
                                Some(Token::Op(",")) => i += 1,
                                Some(Token::Word(v)) => {
                                    values.push(v.clone());
                                    i += 1;
                                }
                                other => return Err(format!("unexpected {other:?} in value list")),
                            }
                        }
                        if negate {
                            Label::NotIn(key, values)
                        } else {
                            Label::In(key, values)
                        }
                    }
                    Some(other) => return Err(format!("unexpected {other:?} after key")),
                }
            };
            reqs.push(req);
            match toks.get(i) {
                None => {}
                Some(Token::Op(",")) => i += 1,
                Some(other) => return Err(format!("expected ',' found {other:?}")),
            }
        }
        Ok(Self(reqs))
    }

    /// Whether `object`'s `metadata.labels` satisfy every requirement.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            Label::Exists(k) => get(k).is_some(),
            Label::Absent(k) => get(k).is_none(),
            Label::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            Label::NotIn(k, vs) => get(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
            Label::Greater(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            Label::Less(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }
}

/// A parsed field selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

/// Splits on an unescaped `sep`, keeping escapes for the next stage.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    parts.push(&s[start..]);
    parts
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl FieldSelector {
    /// Parses the `fieldSelector` query parameter for `def`.
    pub(crate) fn parse(s: &str, def: &ResourceDef) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_unescaped(s, ',')
            .into_iter()
            .filter(|p| !p.trim().is_empty())
        {
            let (field, equal, value) = if let Some(at) = find_unescaped(part, "!=") {
                (&part[..at], false, &part[at + 2..])
            } else if let Some(at) = find_unescaped(part, "==") {
                (&part[..at], true, &part[at + 2..])
            } else if let Some(at) = find_unescaped(part, "=") {
                (&part[..at], true, &part[at + 1..])
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !def.accepts_field(field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push((field.to_owned(), equal, unescape(value.trim())));
        }
        Ok(Self(reqs))
    }

    /// Whether `object` satisfies every requirement (a missing field reads as "").
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, want)| {
            let pointer = format!("/{}", field.replace('.', "/"));
            let have = match object.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (have == *want) == *equal
        })
    }
}

fn find_unescaped(s: &str, needle: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
        } else if s[i..].starts_with(needle) {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(sel: &str, cases: &[(Value, bool)]) {
        let s = LabelSelector::parse(sel).unwrap();
        for (labels, want) in cases {
            let obj = json!({"metadata": {"labels": labels}});
            assert_eq!(s.matches(&obj), *want, "{sel} on {labels}");
        }
    }

    #[test]
    fn label_selector_operators() {
        let ab = json!({"a": "b"});
        let ac = json!({"a": "c"});
        let none = json!({});
        labels(
            "a=b",
            &[
                (ab.clone(), true),
                (ac.clone(), false),
                (none.clone(), false),
            ],
        );
        labels("a==b", &[(ab.clone(), true), (ac.clone(), false)]);
        labels(
            "a!=b",
            &[
                (ab.clone(), false),
                (ac.clone(), true),
                (none.clone(), true),
            ],
        );
        labels(
            "a in (b, c)",
            &[
                (ab.clone(), true),
                (ac.clone(), true),
                (json!({"a": "d"}), false),
                (none.clone(), false),
            ],
        );
        labels(
            "a notin (b)",
            &[
                (ab.clone(), false),
                (ac.clone(), true),
                (none.clone(), true),
            ],
        );
        labels("a", &[(ab.clone(), true), (none.clone(), false)]);
        labels("!a", &[(ab.clone(), false), (none.clone(), true)]);
        labels(
            "a=b,x",
            &[(ab.clone(), false), (json!({"a": "b", "x": ""}), true)],
        );
        labels(
            "n>3,n<10",
            &[
                (json!({"n": "5"}), true),
                (json!({"n": "3"}), false),
                (json!({"n": "x"}), false),
            ],
        );
        labels("", &[(none, true)]);
        labels(
            "app.kubernetes.io/name in (web),tier!=db",
            &[(json!({"app.kubernetes.io/name": "web"}), true)],
        );
    }

    #[test]
    fn bad_label_selectors_are_refused() {
        for bad in ["a in b", "a in (b", "=b", "a=b c", "n>x"] {
            let err = LabelSelector::parse(bad).unwrap_err();
            assert_eq!(err.code, 400, "{bad}");
        }
    }

    #[test]
    fn field_selectors() {
        let secrets = ResourceDef::builtin()
            .into_iter()
            .find(|d| d.kind == "Secret")
            .unwrap();
        let tls = json!({"metadata": {"name": "a", "namespace": "n"}, "type": "kubernetes.io/tls"});
        let opaque = json!({"metadata": {"name": "b", "namespace": "n"}, "type": "Opaque"});
        let s = FieldSelector::parse("type=kubernetes.io/tls", &secrets).unwrap();
        assert!(s.matches(&tls) && !s.matches(&opaque));
        let s = FieldSelector::parse("metadata.namespace==n,metadata.name!=a", &secrets).unwrap();
        assert!(!s.matches(&tls) && s.matches(&opaque));
        assert_eq!(
            FieldSelector::parse("spec.x=1", &secrets)
                .unwrap_err()
                .message,
            "field label not supported: spec.x"
        );
        let escaped = FieldSelector::parse(r"metadata.name=a\,b", &secrets).unwrap();
        assert!(escaped.matches(&json!({"metadata": {"name": "a,b"}})));
    }
}
