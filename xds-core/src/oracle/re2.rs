//! RE2 for the oracle: Envoy's regular expressions run on the `regex` crate with RE2's ASCII
//! meaning of `\d`, `\s`, `\w` and `\b`, after the compiler's own check (syntax and Envoy's
//! program size), and RE2's `GlobalReplace` with `\1` groups for `regex_rewrite`.
//!
//! Not here: where expressions are used (see `http` and `action`).

use super::outcome::{Result, rejected};

/// Compiles an RE2 expression Envoy accepts (syntax and program size, checked as the compiler
/// checks them) for the `regex` crate, with RE2's ASCII meaning of `\d`, `\s`, `\w` and `\b`.
/// `full` anchors it at both ends, as RE2's `FullMatch`.
pub(super) fn re2(re: &str, full: bool) -> Result<regex::Regex> {
    if let Err(p) = crate::compile::validate::regex(re) {
        return rejected(p.to_string());
    }
    let translated = ascii_perl_classes(re)?;
    let pattern = if full {
        format!(r"\A(?:{translated})\z")
    } else {
        translated
    };
    regex::Regex::new(&pattern).or_else(|e| {
        rejected(format!(
            "invalid regular expression {re:?}: {}",
            e.to_string().lines().last().unwrap_or("")
        ))
    })
}

pub(super) fn full_regex(re: &str) -> Result<regex::Regex> {
    re2(re, true)
}

/// Rewrites RE2's Perl classes and word boundaries, which are ASCII in RE2 and Unicode in the
/// `regex` crate, into explicit ASCII forms (nested classes work inside brackets too).
pub(super) fn ascii_perl_classes(re: &str) -> Result<String> {
    use regex_syntax::ast::{self, AssertionKind, Ast, ClassPerlKind, ClassSetItem};

    struct Collect(Vec<(usize, usize, &'static str)>);

    fn class(c: &ast::ClassPerl) -> &'static str {
        match (&c.kind, c.negated) {
            (ClassPerlKind::Digit, false) => "[0-9]",
            (ClassPerlKind::Digit, true) => "[^0-9]",
            (ClassPerlKind::Space, false) => r"[\t\n\x0C\r ]",
            (ClassPerlKind::Space, true) => r"[^\t\n\x0C\r ]",
            (ClassPerlKind::Word, false) => "[0-9A-Za-z_]",
            (ClassPerlKind::Word, true) => "[^0-9A-Za-z_]",
        }
    }

    impl ast::Visitor for Collect {
        type Output = Vec<(usize, usize, &'static str)>;
        type Err = std::convert::Infallible;

        fn finish(self) -> Result<Self::Output, Self::Err> {
            Ok(self.0)
        }

        fn visit_pre(&mut self, a: &Ast) -> Result<(), Self::Err> {
            let (span, text) = match a {
                Ast::ClassPerl(c) => (c.span, class(c)),
                Ast::Assertion(x) if x.kind == AssertionKind::WordBoundary => (x.span, r"(?-u:\b)"),
                Ast::Assertion(x) if x.kind == AssertionKind::NotWordBoundary => {
                    (x.span, r"(?-u:\B)")
                }
                _ => return Ok(()),
            };
            self.0.push((span.start.offset, span.end.offset, text));
            Ok(())
        }

        fn visit_class_set_item_pre(&mut self, item: &ClassSetItem) -> Result<(), Self::Err> {
            if let ClassSetItem::Perl(c) = item {
                self.0
                    .push((c.span.start.offset, c.span.end.offset, class(c)));
            }
            Ok(())
        }
    }

    let parsed = ast::parse::Parser::new()
        .parse(re)
        .or_else(|e| rejected(format!("invalid regular expression {re:?}: {e}")))?;
    let Ok(mut spans) = ast::visit(&parsed, Collect(Vec::new()));
    spans.sort();
    let mut out = String::with_capacity(re.len());
    let mut at = 0;
    for (start, end, text) in spans {
        let (Some(before), true) = (re.get(at..start), end >= start) else {
            continue;
        };
        out.push_str(before);
        out.push_str(text);
        at = end;
    }
    out.push_str(re.get(at..).unwrap_or(""));
    Ok(out)
}

/// RE2's `GlobalReplace`: every non-overlapping match replaced by `substitution`, where `\0` to
/// `\9` are capture groups and `\\` is a backslash.
pub(super) fn global_replace(re: &str, value: &str, substitution: &str) -> Result<String> {
    let rx = re2(re, false)?;
    // Check the substitution as RE2's CheckRewriteString does.
    let mut chars = substitution.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\') => {}
                Some(d) if d.is_ascii_digit() => {
                    let n = usize::from(d as u8 - b'0');
                    if n >= rx.captures_len() {
                        return rejected(format!(
                            "regex_rewrite substitution {substitution:?} refers to group {n}"
                        ));
                    }
                }
                _ => {
                    return rejected(format!(
                        "regex_rewrite substitution {substitution:?} has a bad escape"
                    ));
                }
            }
        }
    }
    let mut out = String::new();
    let mut p = 0;
    let mut last_end: Option<usize> = None;
    let mut count = 0;
    while p <= value.len() {
        let Some(caps) = rx.captures_at(value, p) else {
            break;
        };
        let Some(m) = caps.get(0) else {
            break;
        };
        out.push_str(&value[p..m.start()]);
        if Some(m.start()) == last_end && m.is_empty() {
            // Disallow an empty match at the end of the last match: copy one character.
            match value[m.start()..].chars().next() {
                Some(c) => {
                    out.push(c);
                    p = m.start() + c.len_utf8();
                }
                None => p = value.len() + 1,
            }
            continue;
        }
        expand(&mut out, substitution, &caps);
        p = m.end();
        last_end = Some(p);
        count += 1;
    }
    if count == 0 {
        return Ok(value.to_owned());
    }
    if p < value.len() {
        out.push_str(&value[p..]);
    }
    Ok(out)
}

/// Appends `substitution` with `\N` replaced by group N (empty when it did not take part).
pub(super) fn expand(out: &mut String, substitution: &str, caps: &regex::Captures<'_>) {
    let mut chars = substitution.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(d) if d.is_ascii_digit() => {
                if let Some(g) = caps.get(usize::from(d as u8 - b'0')) {
                    out.push_str(g.as_str());
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
}
