//! Checks of single values (names, domains, paths, regular expressions, headers) that the
//! translation relies on. Each returns a [`Problem`] describing what is wrong, never panics.

use std::net::IpAddr;

use regex_syntax::hir::{Hir, HirKind};

use crate::diagnostic::Problem;

/// The longest object or route name accepted.
const MAX_NAME: usize = 253;

/// Envoy's default limit on the RE2 program size of a regex (`re2.max_program_size.error_level`).
pub(crate) const MAX_REGEX_PROGRAM_SIZE: usize = 100;

pub(crate) fn name(value: &str) -> Result<(), Problem> {
    if value.is_empty() {
        return Err(Problem::invalid("must not be empty"));
    }
    if value.len() > MAX_NAME {
        return Err(Problem::invalid(format!("longer than {MAX_NAME} bytes")));
    }
    if let Some(c) = value.chars().find(|c| {
        !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | '@' | '~'))
    }) {
        return Err(Problem::invalid(format!(
            "{value:?} contains {c:?}; names use letters, digits and . _ - : / @ ~"
        )));
    }
    Ok(())
}

pub(crate) fn ip(value: &str) -> Result<(), Problem> {
    value
        .parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| Problem::invalid(format!("{value:?} is not an IPv4 or IPv6 address")))
}

pub(crate) fn port(value: u16) -> Result<(), Problem> {
    if value == 0 {
        return Err(Problem::invalid("port 0 is not a port"));
    }
    Ok(())
}

fn hostname_chars(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

/// A virtual host domain, lowercased: `example.com`, `*.example.com` (or `*-x.example.com`),
/// `example.*`, or `*`.
pub(crate) fn domain(value: &str) -> Result<String, Problem> {
    let d = value.to_ascii_lowercase();
    let bad = || {
        Problem::invalid(format!(
            "{value:?} is not a domain: use a host name, a leading or trailing * wildcard, or *"
        ))
    };
    if d == "*" {
        return Ok(d);
    }
    let core = if let Some(rest) = d.strip_prefix('*') {
        rest
    } else if let Some(rest) = d.strip_suffix('*') {
        rest
    } else {
        &d
    };
    if !hostname_chars(core) {
        return Err(bad());
    }
    Ok(d)
}

/// An SNI server name: exact or `*.` wildcard, lowercased.
pub(crate) fn server_name(value: &str) -> Result<String, Problem> {
    let d = value.to_ascii_lowercase();
    let core = d.strip_prefix("*.").unwrap_or(&d);
    if !hostname_chars(core) || core.starts_with('.') || core.ends_with('.') {
        return Err(Problem::invalid(format!(
            "{value:?} is not a server name: use a host name or a *. wildcard"
        )));
    }
    Ok(d)
}

/// A host name for rewrites and redirects (a port is allowed).
pub(crate) fn host(value: &str) -> Result<(), Problem> {
    let (h, port) = match value.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (value, None),
    };
    let ok_port = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p != 0));
    if !ok_port || !hostname_chars(&h.to_ascii_lowercase()) {
        return Err(Problem::invalid(format!("{value:?} is not a host name")));
    }
    Ok(())
}

/// A path for exact and prefix matches and rewrites: starts with `/`, no query or fragment,
/// no whitespace or control characters.
pub(crate) fn path(value: &str) -> Result<(), Problem> {
    if !value.starts_with('/') {
        return Err(Problem::invalid(format!("{value:?} must start with /")));
    }
    if let Some(c) = value
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '?' || *c == '#')
    {
        return Err(Problem::invalid(format!(
            "{value:?} must not contain {c:?}"
        )));
    }
    Ok(())
}

/// An HTTP header name token, lowercased.
pub(crate) fn header_name(value: &str) -> Result<String, Problem> {
    let lower = value.to_ascii_lowercase();
    let body = lower.strip_prefix(':').unwrap_or(&lower);
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if body.is_empty() || !body.bytes().all(token) {
        return Err(Problem::invalid(format!("{value:?} is not a header name")));
    }
    Ok(lower)
}

/// A header name that may be added or removed (no pseudo-headers, no `host`).
pub(crate) fn mutable_header_name(value: &str) -> Result<String, Problem> {
    let n = header_name(value)?;
    if n.starts_with(':') || n == "host" {
        return Err(Problem::invalid(format!(
            "{value:?} cannot be added or removed"
        )));
    }
    Ok(n)
}

/// A header value: no CR, LF or NUL.
pub(crate) fn header_value(value: &str) -> Result<(), Problem> {
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(Problem::invalid(
            "header values must not contain CR, LF or NUL",
        ));
    }
    Ok(())
}

/// An HTTP method token, upper case.
pub(crate) fn method(value: &str) -> Result<(), Problem> {
    if value.is_empty() || value.len() > 32 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Problem::invalid(format!(
            "{value:?} is not an HTTP method (upper-case letters)"
        )));
    }
    Ok(())
}

/// A regular expression that Envoy's RE2 engine accepts within its default program size.
///
/// The syntax is checked with `regex-syntax`, whose grammar is RE2's (no look-around, no
/// back-references); Unicode classes are accepted as RE2 accepts them. The program size is
/// estimated from the parsed expression the way RE2 compiles it (one instruction per literal
/// byte or class, counted repetitions unrolled), conservatively.
pub(crate) fn regex(value: &str) -> Result<(), Problem> {
    if value.len() > 4096 {
        return Err(Problem::InvalidRegex {
            regex: value.chars().take(40).collect(),
            reason: "longer than 4096 bytes".into(),
        });
    }
    let hir = regex_syntax::Parser::new()
        .parse(value)
        .map_err(|e| Problem::InvalidRegex {
            regex: value.to_owned(),
            reason: e
                .to_string()
                .lines()
                .last()
                .unwrap_or("invalid")
                .trim()
                .to_owned(),
        })?;
    let size = program_size(&hir);
    if size > MAX_REGEX_PROGRAM_SIZE {
        return Err(Problem::InvalidRegex {
            regex: value.to_owned(),
            reason: format!(
                "too complex for Envoy: RE2 program size about {size}, the limit is {MAX_REGEX_PROGRAM_SIZE}"
            ),
        });
    }
    Ok(())
}

fn program_size(hir: &Hir) -> usize {
    match hir.kind() {
        HirKind::Empty => 0,
        HirKind::Literal(l) => l.0.len(),
        HirKind::Class(_) => 1,
        HirKind::Look(_) => 1,
        HirKind::Repetition(r) => {
            let inner = program_size(&r.sub).max(1);
            let copies = match r.max {
                Some(max) => max.max(r.min) as usize,
                None => r.min as usize + 1,
            };
            inner.saturating_mul(copies.max(1)).saturating_add(copies)
        }
        HirKind::Capture(c) => program_size(&c.sub).saturating_add(2),
        HirKind::Concat(subs) => subs.iter().map(program_size).fold(0, usize::saturating_add),
        HirKind::Alternation(subs) => subs
            .iter()
            .map(program_size)
            .fold(subs.len(), usize::saturating_add),
    }
}

/// Envoy's `retry_on` conditions for HTTP routes.
pub(crate) const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// A PEM block of the given label (`CERTIFICATE`, or any `... PRIVATE KEY`) is present.
pub(crate) fn pem(value: &str, what: &str, key: bool) -> Result<(), Problem> {
    let ok = if key {
        value.contains("-----BEGIN") && value.contains("PRIVATE KEY-----")
    } else {
        value.contains("-----BEGIN CERTIFICATE-----") && value.contains("-----END CERTIFICATE-----")
    };
    if !ok {
        return Err(Problem::invalid(format!("is not a PEM {what}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name("default/web:80").is_ok());
        assert!(name("").is_err());
        assert!(name("a b").is_err());
        assert!(name(&"x".repeat(254)).is_err());
    }

    #[test]
    fn domains_normalize_and_reject() {
        assert_eq!(domain("Example.COM").unwrap(), "example.com");
        for ok in [
            "*",
            "*.example.com",
            "*-bar.example.com",
            "example.*",
            "a_b.local",
        ] {
            assert!(domain(ok).is_ok(), "{ok}");
        }
        for bad in ["", "*.*", "exa mple.com", "example.com:80", "a*b.com", "**"] {
            assert!(domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_names() {
        assert_eq!(server_name("*.Example.com").unwrap(), "*.example.com");
        for bad in ["*", "*example.com", "a..", ".a", "example.*"] {
            assert!(server_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_and_headers() {
        assert!(path("/a/b").is_ok());
        for bad in ["a", "/a b", "/a?x", "/a#f", ""] {
            assert!(path(bad).is_err(), "{bad}");
        }
        assert_eq!(header_name("X-Foo").unwrap(), "x-foo");
        assert_eq!(header_name(":authority").unwrap(), ":authority");
        assert!(header_name("x foo").is_err());
        assert!(mutable_header_name(":path").is_err());
        assert!(mutable_header_name("Host").is_err());
        assert!(header_value("a\r\nb").is_err());
        assert!(method("GET").is_ok());
        assert!(method("get").is_err());
        assert!(host("example.com:8443").is_ok());
        assert!(host("example.com:0").is_err());
    }

    #[test]
    fn regexes_follow_re2_and_envoys_program_size() {
        assert!(regex("/api/v[0-9]+/.*").is_ok());
        assert!(regex("^/(foo|bar)$").is_ok());
        // RE2 rejects back-references and look-around; so must we.
        assert!(matches!(regex(r"(a)\1"), Err(Problem::InvalidRegex { .. })));
        assert!(regex("(?=a)").is_err());
        assert!(regex("(").is_err());
        // Counted repetition unrolls: over Envoy's default program size.
        assert!(regex("[a-z]{1,200}").is_err());
    }
}
