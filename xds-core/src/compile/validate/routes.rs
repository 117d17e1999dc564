//! Route validation and precedence: the checks of a virtual host and each of its routes
//! (matches, forwards, redirects, direct responses, header changes), the order routes are
//! tried in, and which routes can never match because an earlier one has the same match.
//!
//! Not here: checks of single values (see `values`), or building Envoy routes (see
//! `translate`).

use std::collections::BTreeSet;

use super::values as validate;
use crate::diagnostic::{Diags, Named, Problem, ToFieldPath};
use crate::model;

/// Validated, precedence-ordered routes of one virtual host: derived from the object alone.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CheckedVhost {
    /// Normalized (lowercase), sorted, deduplicated domains; empty when the host is invalid.
    pub(crate) domains: Vec<String>,
    /// Indices into the object's routes, valid ones only, in precedence order.
    pub(crate) order: Vec<usize>,
    /// Whether the virtual host itself is valid (a valid name, listeners and domains).
    pub(crate) valid: bool,
}

/// The precedence of a route: its match's ([`model::RouteMatch::precedence`]), then its name.
fn precedence(r: &model::Route) -> impl Ord + '_ {
    (r.matches.precedence(), r.name.as_str())
}

fn check_string_match(
    v: &model::StringMatch,
    field: impl ToFieldPath + Copy,
    d: &mut Diags,
) -> bool {
    match v {
        model::StringMatch::Regex(r) => d.check(field, validate::regex(r)),
        model::StringMatch::Exact(s) | model::StringMatch::Prefix(s) => {
            d.check(field, validate::header_value(s))
        }
        model::StringMatch::Present => true,
    }
}

/// Envoy's header parser refuses to add or remove pseudo-headers and `host` on either side
/// (":-prefixed or host headers may not be modified"), so requests and responses share one
/// rule.
fn check_headers(m: &model::HeaderModifier, field: impl ToFieldPath + Copy, d: &mut Diags) -> bool {
    let mut ok = true;
    for (i, h) in m.add.iter().enumerate() {
        let f = (field, "add", i);
        ok &= d.check(
            (f, "name"),
            validate::mutable_header_name(&h.name).map(|_| ()),
        ) & d.check((f, "value"), validate::header_value(&h.value));
    }
    for (i, h) in m.remove.iter().enumerate() {
        ok &= d.check(
            (field, "remove", i),
            validate::mutable_header_name(h).map(|_| ()),
        );
    }
    ok
}

/// Object-level checks of one route. `field` is `routes[<name>]`.
fn check_route(r: &model::Route, field: impl ToFieldPath + Copy, d: &mut Diags) -> bool {
    let mut ok = check_match(&r.matches, field, d);
    if !r.typed_per_filter_config.is_empty() {
        let (_, resolved) = crate::compile::typed::resolve_map(
            &r.typed_per_filter_config,
            &(field, "typed_per_filter_config"),
            d,
        );
        ok &= resolved;
    }
    let actions = usize::from(r.forward.is_some())
        + usize::from(r.redirect.is_some())
        + usize::from(r.direct_response.is_some());
    if actions != 1 {
        d.error(
            field,
            Problem::invalid("set exactly one of forward, redirect and direct_response"),
        );
        ok = false;
    }
    if let Some(f) = &r.forward {
        ok &= check_forward(f, &r.matches, (field, "forward"), d);
    }
    if let Some(rd) = &r.redirect {
        ok &= check_redirect(rd, &r.matches, (field, "redirect"), d);
    }
    if let Some(dr) = &r.direct_response {
        ok &= check_direct_response(dr, (field, "direct_response"), d);
    }
    ok &= check_headers(&r.request_headers, (field, "request_headers"), d);
    ok &= check_headers(&r.response_headers, (field, "response_headers"), d);
    ok
}

/// A route's match: path, headers, query parameters and methods.
fn check_match(m: &model::RouteMatch, field: impl ToFieldPath + Copy, d: &mut Diags) -> bool {
    let mut ok = true;
    ok &= match &m.path {
        model::PathMatch::Prefix(p)
        | model::PathMatch::PathPrefix(p)
        | model::PathMatch::Exact(p) => d.check((field, "match", "path"), validate::path(p)),
        model::PathMatch::Regex(p) => {
            d.check((field, "match", "path", "regex"), validate::regex(p))
        }
    };
    for (i, h) in m.headers.iter().enumerate() {
        let f = (field, "match", "headers", i);
        ok &= d.check((f, "name"), validate::header_name(&h.name).map(|_| ()));
        ok &= check_string_match(&h.value, (f, "value"), d);
    }
    for (i, q) in m.query.iter().enumerate() {
        let f = (field, "match", "query", i);
        if q.name.is_empty() {
            ok &= d.check((f, "name"), Err(Problem::invalid("must not be empty")));
        }
        ok &= check_string_match(&q.value, (f, "value"), d);
    }
    for (i, meth) in m.methods.iter().enumerate() {
        ok &= d.check((field, "match", "methods", i), validate::method(meth));
    }
    ok
}

/// A route's forward action. `ff` is `routes[<name>].forward`.
fn check_forward(
    f: &model::Forward,
    m: &model::RouteMatch,
    ff: impl ToFieldPath + Copy,
    d: &mut Diags,
) -> bool {
    let mut ok = true;
    let total: u64 =
        f.backends.iter().map(|b| u64::from(b.weight)).sum::<u64>() + u64::from(f.error_weight);
    if total > u64::from(u32::MAX) {
        ok &= d.check(
            (ff, "backends"),
            Err(Problem::invalid(format!(
                "weights add up to {total}, over Envoy's limit of {}",
                u32::MAX
            ))),
        );
    }
    if f.backends.is_empty() && f.error_weight == 0 {
        ok &= d.check((ff, "backends"), Err(Problem::invalid("must not be empty")));
    }
    for (i, b) in f.backends.iter().enumerate() {
        ok &= d.check((ff, "backends", i, "cluster"), validate::name(&b.cluster));
    }
    if let Some(retry) = &f.retry {
        for (i, on) in retry.on.iter().enumerate() {
            if !validate::RETRY_ON.contains(&on.as_str()) {
                ok &= d.check(
                    (ff, "retry", "on", i),
                    Err(Problem::invalid(format!(
                        "{on:?} is not an Envoy retry condition ({})",
                        validate::RETRY_ON.join(", ")
                    ))),
                );
            }
        }
    }
    if let Some(p) = &f.rewrite.prefix {
        if matches!(m.path, model::PathMatch::Regex(_)) {
            ok &= d.check(
                (ff, "rewrite", "prefix"),
                Err(Problem::invalid(
                    "cannot rewrite the prefix of a regex match; use rewrite.regex",
                )),
            );
        }
        if f.rewrite.regex.is_some() {
            ok &= d.check(
                (ff, "rewrite"),
                Err(Problem::invalid("set at most one of prefix and regex")),
            );
        }
        if !p.is_empty() {
            ok &= d.check((ff, "rewrite", "prefix"), validate::path(p));
        }
    }
    if let Some(rx) = &f.rewrite.regex {
        ok &= d.check(
            (ff, "rewrite", "regex", "pattern"),
            validate::regex(&rx.pattern),
        );
    }
    if let Some(h) = &f.rewrite.host {
        ok &= d.check((ff, "rewrite", "host"), validate::host(h));
    }
    for (i, mirror) in f.mirror.iter().enumerate() {
        ok &= d.check(
            (ff, "mirror", i, "cluster"),
            validate::name(&mirror.cluster),
        );
        if mirror.percent > 100 {
            ok &= d.check(
                (ff, "mirror", i, "percent"),
                Err(Problem::invalid("must be at most 100")),
            );
        }
    }
    for (i, h) in f.hash_policy.iter().enumerate() {
        match h {
            model::HashPolicy::Header(n) => {
                ok &= d.check(
                    (ff, "hash_policy", i, "header"),
                    validate::header_name(n).map(|_| ()),
                )
            }
            model::HashPolicy::Cookie(n) if n.is_empty() => {
                ok &= d.check(
                    (ff, "hash_policy", i, "cookie"),
                    Err(Problem::invalid("must not be empty")),
                );
            }
            _ => {}
        }
    }
    ok
}

/// A route's redirect. `f` is `routes[<name>].redirect`.
fn check_redirect(
    rd: &model::Redirect,
    m: &model::RouteMatch,
    f: impl ToFieldPath + Copy,
    d: &mut Diags,
) -> bool {
    let mut ok = true;
    let prefix_like = matches!(
        m.path,
        model::PathMatch::Prefix(_) | model::PathMatch::PathPrefix(_)
    );
    if let Some(s) = &rd.scheme
        && s != "http"
        && s != "https"
    {
        ok &= d.check(
            (f, "scheme"),
            Err(Problem::invalid("must be http or https")),
        );
    }
    if let Some(h) = &rd.host {
        ok &= d.check((f, "host"), validate::host(h));
    }
    if rd.port == Some(0) {
        ok &= d.check((f, "port"), validate::port(0));
    }
    if rd.path.is_some() && rd.prefix.is_some() {
        ok &= d.check(
            f,
            Err(Problem::invalid("set at most one of path and prefix")),
        );
    }
    if let Some(p) = &rd.path {
        ok &= d.check((f, "path"), validate::path(p));
    }
    if let Some(p) = &rd.prefix {
        if !prefix_like {
            ok &= d.check(
                (f, "prefix"),
                Err(Problem::invalid("needs a prefix or path_prefix match")),
            );
        }
        if !p.is_empty() {
            ok &= d.check((f, "prefix"), validate::path(p));
        }
    }
    if let Some(code) = rd.code
        && ![301, 302, 303, 307, 308].contains(&code)
    {
        ok &= d.check(
            (f, "code"),
            Err(Problem::invalid("must be 301, 302, 303, 307 or 308")),
        );
    }
    ok
}

/// A route's direct response. `field` is `routes[<name>].direct_response`.
fn check_direct_response(
    dr: &model::DirectResponse,
    field: impl ToFieldPath + Copy,
    d: &mut Diags,
) -> bool {
    let mut ok = true;
    if !(200..600).contains(&dr.status) {
        ok &= d.check(
            (field, "status"),
            Err(Problem::invalid("must be from 200 to 599")),
        );
    }
    if dr.body.as_ref().is_some_and(|b| b.len() > 4096) {
        ok &= d.check(
            (field, "body"),
            Err(Problem::invalid("longer than 4096 bytes, Envoy's limit")),
        );
    }
    ok
}

/// Validates a virtual host and orders its routes. Invalid routes are reported and left out;
/// a route whose match equals an earlier route's never matches and is left out too.
pub(crate) fn check_vhost(v: &model::VirtualHost, d: &mut Diags) -> CheckedVhost {
    let mut valid = true;
    if v.listeners.is_empty() {
        d.error(
            "listeners",
            Problem::invalid("must name at least one listener"),
        );
        valid = false;
    }
    for (i, l) in v.listeners.iter().enumerate() {
        valid &= d.check(("listeners", i), validate::name(l));
    }
    let mut domains = Vec::new();
    for (i, dom) in v.domains.iter().enumerate() {
        match validate::domain(dom) {
            Ok(n) => domains.push(n),
            Err(p) => d.error(("domains", i), p),
        }
    }
    domains.sort();
    domains.dedup();
    if !v.typed_per_filter_config.is_empty() {
        let (_, resolved) = crate::compile::typed::resolve_map(
            &v.typed_per_filter_config,
            &"typed_per_filter_config",
            d,
        );
        valid &= resolved;
    }
    if domains.is_empty() {
        d.error("domains", Problem::invalid("no valid domain"));
        valid = false;
    }
    let mut names = BTreeSet::new();
    let mut candidates = Vec::new();
    for (i, r) in v.routes.iter().enumerate() {
        let named = Named(&r.name);
        let item: &dyn ToFieldPath = if r.name.is_empty() { &i } else { &named };
        let field = ("routes", item);
        if !d.check((field, "name"), validate::name(&r.name)) {
            continue;
        }
        if !names.insert(r.name.as_str()) {
            d.error(
                (field, "name"),
                Problem::invalid(format!("duplicate route name {:?}", r.name)),
            );
            continue;
        }
        if check_route(r, field, d) {
            candidates.push(i);
        }
    }
    if v.route_order == model::RouteOrder::Precedence {
        candidates.sort_by(|a, b| precedence(&v.routes[*a]).cmp(&precedence(&v.routes[*b])));
    }
    let mut order: Vec<usize> = Vec::with_capacity(candidates.len());
    let mut seen: std::collections::BTreeMap<MatchKey, usize> = std::collections::BTreeMap::new();
    for i in candidates {
        let r = &v.routes[i];
        match seen.entry(match_key(&r.matches)) {
            std::collections::btree_map::Entry::Occupied(first) => {
                d.warn(
                    ("routes", Named(&r.name)),
                    Problem::Shadowed {
                        by: v.routes[*first.get()].name.clone(),
                    },
                );
            }
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(i);
                order.push(i);
            }
        }
    }
    if !valid {
        domains.clear();
        order.clear();
    }
    CheckedVhost {
        domains,
        order,
        valid,
    }
}

/// What makes two route matches the same: path (a trailing `/` of a segment prefix does not
/// count), and headers, query parameters and methods in any order.
type MatchKey = (
    model::PathMatch,
    Vec<(String, model::StringMatch, bool)>,
    Vec<(String, model::StringMatch)>,
    Vec<String>,
);

fn match_key(m: &model::RouteMatch) -> MatchKey {
    let path = match &m.path {
        model::PathMatch::PathPrefix(p) => {
            model::PathMatch::PathPrefix(p.trim_end_matches('/').to_owned())
        }
        other => other.clone(),
    };
    let mut headers: Vec<_> = m
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.clone(), h.invert))
        .collect();
    headers.sort();
    let mut query: Vec<_> = m
        .query
        .iter()
        .map(|q| (q.name.clone(), q.value.clone()))
        .collect();
    query.sort();
    let mut methods = m.methods.clone();
    methods.sort();
    methods.dedup();
    (path, headers, query, methods)
}
