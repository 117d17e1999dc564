//! HTTP matching: the virtual host of a host (exact, longest suffix wildcard, longest prefix
//! wildcard, `*`) and whether a route's path, headers and query parameters match a request,
//! with the [`Mismatch`](super::Mismatch) that says why not.
//!
//! Not here: what a matching route does (see `action`) or regular expressions (see `re2`).

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;

use super::outcome::{DomainMatch, Mismatch, Result, rejected, unsupported};
use super::re2::full_regex;
use super::request::RequestContext;

/// Envoy's `RouteMatcher::findVirtualHost`. `host` is lowercase.
pub(super) fn find_virtual_host<'r>(
    rc: &'r route::RouteConfiguration,
    host: &str,
) -> Result<Option<(&'r route::VirtualHost, String, DomainMatch)>> {
    let mut exact: BTreeMap<String, &route::VirtualHost> = BTreeMap::new();
    // length of the fixed part -> fixed part -> virtual host
    let mut suffixes = ByLength::new();
    let mut prefixes = ByLength::new();
    let mut any: Option<&route::VirtualHost> = None;
    for vh in &rc.virtual_hosts {
        for d in &vh.domains {
            let d = d.to_ascii_lowercase();
            let fresh = if d == "*" {
                any.replace(vh).is_none()
            } else if let Some(rest) = d.strip_prefix('*') {
                suffixes
                    .entry(rest.len())
                    .or_default()
                    .insert(rest.to_owned(), vh)
                    .is_none()
            } else if let Some(rest) = d.strip_suffix('*') {
                prefixes
                    .entry(rest.len())
                    .or_default()
                    .insert(rest.to_owned(), vh)
                    .is_none()
            } else {
                exact.insert(d.clone(), vh).is_none()
            };
            if !fresh {
                return rejected(format!(
                    "domain {d:?} appears twice in route configuration {:?}",
                    rc.name
                ));
            }
        }
    }
    if let Some(vh) = exact.get(host) {
        return Ok(Some((vh, host.to_owned(), DomainMatch::Exact)));
    }
    if let Some((vh, tail)) = longest(&suffixes, host, |len| host.get(host.len() - len..)) {
        return Ok(Some((vh, format!("*{tail}"), DomainMatch::Suffix)));
    }
    if let Some((vh, head)) = longest(&prefixes, host, |len| host.get(..len)) {
        return Ok(Some((vh, format!("{head}*"), DomainMatch::Prefix)));
    }
    Ok(any.map(|vh| (vh, "*".to_owned(), DomainMatch::Any)))
}

pub(super) type ByLength<'r> = BTreeMap<usize, BTreeMap<String, &'r route::VirtualHost>>;

/// Envoy's `findWildcardVirtualHost`: the longest wildcard, shorter than the host, whose fixed
/// part equals `part(length)` of the host.
pub(super) fn longest<'r, 'h>(
    by_length: &ByLength<'r>,
    host: &'h str,
    part: impl Fn(usize) -> Option<&'h str>,
) -> Option<(&'r route::VirtualHost, &'h str)> {
    by_length
        .iter()
        .rev()
        .filter(|(len, _)| **len < host.len())
        .find_map(|(len, map)| {
            let fixed = part(*len)?;
            map.get(fixed).map(|vh| (*vh, fixed))
        })
}

/// The path without query string and fragment (`Http::PathUtil::removeQueryAndFragment`).
pub(super) fn path_only(path: &str) -> &str {
    path.find(['?', '#']).map_or(path, |i| &path[..i])
}

pub(super) fn starts_with(s: &str, prefix: &str, case_sensitive: bool) -> bool {
    if case_sensitive {
        s.starts_with(prefix)
    } else {
        s.len() >= prefix.len()
            && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    }
}

/// Whether the route matches; if not, why (the first failing criterion: path, then headers in
/// order, then query parameters in order; Envoy needs all of them, so the order only affects
/// the explanation).
pub(super) fn route_matches(
    r: &route::Route,
    ctx: &RequestContext<'_>,
) -> Result<Option<Mismatch>> {
    use route::route_match::PathSpecifier as P;
    let Some(m) = &r.r#match else {
        return rejected(format!("route {:?} without a match", r.name));
    };
    if m.runtime_fraction.is_some()
        || m.grpc.is_some()
        || m.tls_context.is_some()
        || !m.dynamic_metadata.is_empty()
        || !m.filter_state.is_empty()
        || !m.cookies.is_empty()
    {
        return unsupported(
            "route matches on runtime fractions, gRPC, TLS context, metadata, filter state or cookies",
        );
    }
    let mut path = path_only(&ctx.request.path);
    if ctx.ignore_path_parameters {
        path = path.find(';').map_or(path, |i| &path[..i]);
    }
    let cs = m.case_sensitive.is_none_or(|b| b.value);
    let (ok, matcher) = match &m.path_specifier {
        Some(P::Prefix(p)) => (starts_with(path, p, cs), format!("prefix {p:?}")),
        Some(P::Path(p)) => (
            path.len() == p.len() && starts_with(path, p, cs),
            format!("path {p:?}"),
        ),
        Some(P::SafeRegex(rx)) => (
            full_regex(&rx.regex)?.is_match(path),
            format!("regex {:?}", rx.regex),
        ),
        Some(P::PathSeparatedPrefix(p)) => (
            (path.len() == p.len() || path.as_bytes().get(p.len()) == Some(&b'/'))
                && starts_with(path, p, cs),
            format!("path_separated_prefix {p:?}"),
        ),
        Some(P::ConnectMatcher(_)) | Some(P::PathMatchPolicy(_)) => {
            return unsupported("CONNECT and path_match_policy matchers");
        }
        None => return rejected(format!("route {:?} without a path match", r.name)),
    };
    let matcher = if cs {
        matcher
    } else {
        format!("{matcher} (ignoring case)")
    };
    if !ok {
        return Ok(Some(Mismatch::Path {
            path: path.to_owned(),
            matcher,
        }));
    }
    for h in &m.headers {
        if let Some(why) = header_mismatch(h, ctx)? {
            return Ok(Some(why));
        }
    }
    if !m.query_parameters.is_empty() {
        let params = query_params(&ctx.request.path);
        for q in &m.query_parameters {
            if let Some(why) = query_mismatch(q, &params)? {
                return Ok(Some(why));
            }
        }
    }
    Ok(None)
}

/// A compiled string matcher.
pub(super) enum Str {
    Exact(String, bool),
    Prefix(String, bool),
    Suffix(String, bool),
    Contains(String, bool),
    Regex(regex::Regex),
}

impl Str {
    fn new(m: &matcher::StringMatcher) -> Result<(Str, String)> {
        use matcher::string_matcher::MatchPattern as M;
        let ic = m.ignore_case;
        let suffix = if ic { " (ignoring case)" } else { "" };
        Ok(match &m.match_pattern {
            Some(M::Exact(s)) => (Str::Exact(s.clone(), ic), format!("exact {s:?}{suffix}")),
            Some(M::Prefix(s)) => (Str::Prefix(s.clone(), ic), format!("prefix {s:?}{suffix}")),
            Some(M::Suffix(s)) => (Str::Suffix(s.clone(), ic), format!("suffix {s:?}{suffix}")),
            Some(M::Contains(s)) => (
                Str::Contains(s.clone(), ic),
                format!("contains {s:?}{suffix}"),
            ),
            Some(M::SafeRegex(r)) => {
                if ic {
                    return rejected("ignore_case with safe_regex");
                }
                (
                    Str::Regex(full_regex(&r.regex)?),
                    format!("regex {:?}", r.regex),
                )
            }
            Some(M::Custom(_)) => return unsupported("custom string matchers"),
            None => return rejected("a string matcher without a pattern"),
        })
    }

    fn matches(&self, v: &str) -> bool {
        let lower = |s: &str| s.to_ascii_lowercase();
        match self {
            Str::Exact(s, false) => v == s,
            Str::Exact(s, true) => v.eq_ignore_ascii_case(s),
            Str::Prefix(s, ic) => starts_with(v, s, !ic),
            Str::Suffix(s, false) => v.ends_with(s.as_str()),
            Str::Suffix(s, true) => lower(v).ends_with(&lower(s)),
            Str::Contains(s, false) => v.contains(s.as_str()),
            Str::Contains(s, true) => lower(v).contains(&lower(s)),
            Str::Regex(r) => r.is_match(v),
        }
    }
}

/// A header matcher's test of one value.
pub(super) enum HeaderTest {
    Str(Str),
    Range(i64, i64),
    Present(bool),
}

/// Envoy's `HeaderUtility::HeaderData::matchesHeaders`.
pub(super) fn header_mismatch(
    h: &route::HeaderMatcher,
    ctx: &RequestContext<'_>,
) -> Result<Option<Mismatch>> {
    #[allow(deprecated)]
    use route::header_matcher::HeaderMatchSpecifier as H;
    let exact = |s: &String| matcher::StringMatcher {
        match_pattern: Some(matcher::string_matcher::MatchPattern::Exact(s.clone())),
        ignore_case: false,
    };
    let pattern = |p: matcher::string_matcher::MatchPattern| matcher::StringMatcher {
        match_pattern: Some(p),
        ignore_case: false,
    };
    use matcher::string_matcher::MatchPattern as M;
    #[allow(deprecated)]
    let (test, desc) = match &h.header_match_specifier {
        // An empty exact_match matches any value, as in Envoy.
        Some(H::ExactMatch(s)) if s.is_empty() => (HeaderTest::Present(true), "present".to_owned()),
        Some(H::ExactMatch(s)) => Str::new(&exact(s)).map(|(t, d)| (HeaderTest::Str(t), d))?,
        Some(H::SafeRegexMatch(r)) => {
            Str::new(&pattern(M::SafeRegex(r.clone()))).map(|(t, d)| (HeaderTest::Str(t), d))?
        }
        Some(H::PrefixMatch(s)) => {
            Str::new(&pattern(M::Prefix(s.clone()))).map(|(t, d)| (HeaderTest::Str(t), d))?
        }
        Some(H::SuffixMatch(s)) => {
            Str::new(&pattern(M::Suffix(s.clone()))).map(|(t, d)| (HeaderTest::Str(t), d))?
        }
        Some(H::ContainsMatch(s)) => {
            Str::new(&pattern(M::Contains(s.clone()))).map(|(t, d)| (HeaderTest::Str(t), d))?
        }
        Some(H::StringMatch(sm)) => Str::new(sm).map(|(t, d)| (HeaderTest::Str(t), d))?,
        Some(H::RangeMatch(r)) => (
            HeaderTest::Range(r.start, r.end),
            format!("range [{}, {})", r.start, r.end),
        ),
        Some(H::PresentMatch(p)) => (
            HeaderTest::Present(*p),
            if *p { "present" } else { "absent" }.to_owned(),
        ),
        None => (HeaderTest::Present(true), "present".to_owned()),
    };
    let desc = if h.invert_match {
        format!("not {desc}")
    } else {
        desc
    };
    let name = h.name.to_ascii_lowercase();
    let values = ctx.header_values(&name);
    let ok = if values.is_empty() && !h.treat_missing_header_as_empty {
        // A missing header matches only `present_match: false`, inverted or not.
        matches!(test, HeaderTest::Present(p) if p == h.invert_match)
    } else {
        let one = |v: &str| match &test {
            HeaderTest::Str(s) => s.matches(v),
            // `absl::SimpleAtoi`: an optional sign and digits, surrounding whitespace allowed.
            HeaderTest::Range(lo, hi) => v
                .trim_matches(|c: char| c.is_ascii_whitespace())
                .parse::<i64>()
                .is_ok_and(|n| n >= *lo && n < *hi),
            HeaderTest::Present(p) => *p,
        };
        let any = if values.is_empty() {
            one("")
        } else {
            // Separately sent values are matched one at a time (Envoy 1.39 and later).
            values.iter().any(|v| one(v))
        };
        any != h.invert_match
    };
    Ok((!ok).then_some(Mismatch::Header {
        name,
        values,
        matcher: desc,
    }))
}

/// Envoy's `QueryParamsMulti::parseQueryString`, keeping only the first value of each name.
pub(super) fn query_params(path: &str) -> BTreeMap<&str, &str> {
    let mut out = BTreeMap::new();
    let Some((_, query)) = path.split_once('?') else {
        return out;
    };
    for param in query.split('&') {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        out.entry(name).or_insert(value);
    }
    out
}

/// Envoy's `ConfigUtility::QueryParameterMatcher::matches`.
pub(super) fn query_mismatch(
    q: &route::QueryParameterMatcher,
    params: &BTreeMap<&str, &str>,
) -> Result<Option<Mismatch>> {
    use route::query_parameter_matcher::QueryParameterMatchSpecifier as Q;
    let value = params.get(q.name.as_str()).copied();
    let (ok, matcher) = match &q.query_parameter_match_specifier {
        Some(Q::PresentMatch(p)) => (
            value.is_some() == *p,
            if *p { "present" } else { "absent" }.to_owned(),
        ),
        Some(Q::StringMatch(sm)) => {
            let (s, d) = Str::new(sm)?;
            (value.is_some_and(|v| s.matches(v)), d)
        }
        None => (value.is_some(), "present".to_owned()),
    };
    Ok((!ok).then(|| Mismatch::Query {
        name: q.name.clone(),
        value: value.map(str::to_owned),
        matcher,
    }))
}
