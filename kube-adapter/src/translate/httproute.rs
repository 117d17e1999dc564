//! HTTPRoute and GRPCRoute rules into model routes (matches, filters, backends); the
//! semantics are in the parent module's docs. Where routes attach and how they are merged
//! into virtual hosts is [`super::gateways`]'s.

use xdsc_core::model;

use xdsc_core::diagnostic::ToFieldPath;

use super::backends::PortRef;
use super::shared::{is_core, prefix_match};
use crate::context::Cx;
use crate::objects::{KubeKind, ObjectRef, gateway};
use crate::status::reason;

/// What makes two matches the same: path, and headers, query parameters and methods in any
/// order (header names case-insensitively).
pub(crate) fn match_key(m: &model::RouteMatch) -> String {
    let mut m = m.clone();
    for h in &mut m.headers {
        h.name.make_ascii_lowercase();
    }
    let json = |v: &model::StringMatch| serde_json::to_string(v).unwrap_or_default();
    m.headers
        .sort_by_cached_key(|h| (h.name.clone(), json(&h.value), h.invert));
    m.query
        .sort_by_cached_key(|q| (q.name.clone(), json(&q.value)));
    m.methods.sort();
    serde_json::to_string(&m).unwrap_or_default()
}

/// The model routes of one rule, one per valid match with its index, unnamed (named by rank
/// later).
pub(crate) fn rule_routes(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    r: usize,
    rule: &gateway::HttpRouteRule,
) -> Vec<(usize, model::Route)> {
    let field = ("spec", "rules", r);
    let default_match = [gateway::HttpRouteMatch::default()];
    let matches: &[gateway::HttpRouteMatch] = if rule.matches.is_empty() {
        &default_match
    } else {
        &rule.matches
    };
    let mut out = Vec::new();
    for (m, rm) in matches.iter().enumerate() {
        let Some(matches) = route_match(cx, id, &(field, "matches", m), rm) else {
            continue;
        };
        let mut route = model::Route::forward_prefix("", "/", "");
        route.matches = matches;
        action(
            cx,
            id,
            &field,
            &rule.filters,
            &rule.backend_refs,
            false,
            &mut route,
        );
        out.extend(split_root_redirect(route).into_iter().map(|r| (m, r)));
    }
    out
}

/// A redirect replacing a `PathPrefix` with `/` cannot be an Envoy prefix rewrite (which
/// would turn `/old/x` into `//x`): it becomes an exact match of the prefix redirected to
/// `/` and a match of the prefix with its `/` redirected with the `/` replaced. Replacing
/// the root `/` with `/x` keeps the `/` after `x` (`/y` goes to `/x/y`).
fn split_root_redirect(mut route: model::Route) -> Vec<model::Route> {
    let Some(rd) = route.redirect.as_mut() else {
        return vec![route];
    };
    match (&route.matches.path, rd.prefix.as_deref()) {
        (model::PathMatch::PathPrefix(p), Some("/")) => {
            let p = p.clone();
            let mut exact = route.clone();
            exact.matches.path = model::PathMatch::Exact(p.clone());
            if let Some(rd) = exact.redirect.as_mut() {
                rd.prefix = None;
                rd.path = Some("/".into());
            }
            route.matches.path = model::PathMatch::Prefix(format!("{p}/"));
            vec![exact, route]
        }
        (model::PathMatch::Prefix(root), Some(prefix)) if root == "/" && !prefix.ends_with('/') => {
            rd.prefix = Some(format!("{prefix}/"));
            vec![route]
        }
        _ => vec![route],
    }
}

fn route_match(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    field: &dyn ToFieldPath,
    m: &gateway::HttpRouteMatch,
) -> Option<model::RouteMatch> {
    let mut out = model::RouteMatch::default();
    let path = m.path.clone().unwrap_or_default();
    let value = path.value.unwrap_or_else(|| "/".into());
    out.path = match path.type_.as_deref().unwrap_or("PathPrefix") {
        "Exact" => model::PathMatch::Exact(value),
        "PathPrefix" => prefix_match(&value),
        "RegularExpression" => model::PathMatch::Regex(value),
        other => {
            cx.error(
                id,
                (field, "path", "type"),
                format_args!("{other:?} is not a path match type"),
            );
            return None;
        }
    };
    let value_match = |cx: &mut Cx<'_>, f: &dyn ToFieldPath, v: &gateway::ValueMatch| match v
        .type_
        .as_deref()
        .unwrap_or("Exact")
    {
        "Exact" => Some(model::StringMatch::Exact(v.value.clone())),
        "RegularExpression" => Some(model::StringMatch::Regex(v.value.clone())),
        other => {
            cx.error(id, f, format_args!("{other:?} is not a match type"));
            None
        }
    };
    for (i, h) in m.headers.iter().enumerate() {
        let value = value_match(cx, &(field, "headers", i, "type"), h)?;
        out.headers.push(model::HeaderMatch {
            name: h.name.clone(),
            value,
            invert: false,
        });
    }
    for (i, q) in m.query_params.iter().enumerate() {
        let value = value_match(cx, &(field, "queryParams", i, "type"), q)?;
        out.query.push(model::QueryMatch {
            name: q.name.clone(),
            value,
        });
    }
    out.methods.extend(m.method.clone());
    Some(out)
}

fn header_modifier(f: &gateway::HeaderFilter) -> model::HeaderModifier {
    let value = |append: bool| {
        move |h: &gateway::HeaderNameValue| model::HeaderValue {
            name: h.name.clone(),
            value: h.value.clone(),
            append,
        }
    };
    model::HeaderModifier {
        add: f
            .set
            .iter()
            .map(value(false))
            .chain(f.add.iter().map(value(true)))
            .collect(),
        remove: f.remove.clone(),
    }
}

/// Fills in the route's action from the rule's filters and backends.
///
/// `grpc`: the rule is a GRPCRoute's, whose filters have no redirect or rewrite and whose
/// backends are spoken to in HTTP/2.
fn action(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    field: &dyn ToFieldPath,
    filters: &[gateway::HttpRouteFilter],
    backend_refs: &[gateway::HttpBackendRef],
    grpc: bool,
    route: &mut model::Route,
) {
    let mut rewrite = model::Rewrite::default();
    let mut mirror = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        let field = (field, "filters", i);
        match (f.type_.as_str(), f) {
            ("RequestRedirect" | "URLRewrite", _) if grpc => {
                unsupported_filter(cx, id, &field, &f.type_, route);
                return;
            }
            (
                "RequestHeaderModifier",
                gateway::HttpRouteFilter {
                    request_header_modifier: Some(h),
                    ..
                },
            ) => {
                route.request_headers = header_modifier(h);
            }
            (
                "ResponseHeaderModifier",
                gateway::HttpRouteFilter {
                    response_header_modifier: Some(h),
                    ..
                },
            ) => {
                route.response_headers = header_modifier(h);
            }
            (
                "RequestRedirect",
                gateway::HttpRouteFilter {
                    request_redirect: Some(rd),
                    ..
                },
            ) => {
                route.redirect = Some(redirect(cx, id, &field, rd, &route.matches.path));
            }
            (
                "URLRewrite",
                gateway::HttpRouteFilter {
                    url_rewrite: Some(u),
                    ..
                },
            ) => {
                rewrite.host.clone_from(&u.hostname);
                if let Some(p) = &u.path {
                    match path_change(
                        cx,
                        id,
                        &(field, "urlRewrite", "path"),
                        p,
                        &route.matches.path,
                    ) {
                        Some(PathChange::Full(full)) => {
                            rewrite.regex = Some(model::RegexRewrite {
                                pattern: "^.*$".into(),
                                substitution: full,
                            });
                        }
                        Some(PathChange::Prefix(prefix)) => {
                            match (&route.matches.path, prefix.as_str()) {
                                // Replacing a prefix with `/` must not leave `//rest`.
                                (model::PathMatch::PathPrefix(p), "/") => {
                                    rewrite.regex = Some(model::RegexRewrite {
                                        pattern: format!("^{}/*", regex_escape(p)),
                                        substitution: "/".into(),
                                    });
                                }
                                // Replacing the root `/` with `/x` must give `/x/rest`.
                                (model::PathMatch::Prefix(p), _)
                                    if p == "/" && !prefix.ends_with('/') =>
                                {
                                    rewrite.regex = Some(model::RegexRewrite {
                                        pattern: "^/".into(),
                                        substitution: format!("{prefix}/"),
                                    });
                                }
                                _ => rewrite.prefix = Some(prefix),
                            }
                        }
                        None => {}
                    }
                }
            }
            (
                "RequestMirror",
                gateway::HttpRouteFilter {
                    request_mirror: Some(m),
                    ..
                },
            ) => {
                let f = (field, "requestMirror", "backendRef");
                if let Some(cluster) = backend_cluster(cx, id, &f, &m.backend_ref, grpc) {
                    let percent = m.percent.map_or(100, |p| p.clamp(0, 100) as u32);
                    mirror.push(model::Mirror { cluster, percent });
                }
            }
            (other, _) => {
                unsupported_filter(cx, id, &field, other, route);
                return;
            }
        }
    }
    if route.redirect.is_some() {
        route.forward = None;
        return;
    }
    let mut backends = Vec::new();
    let mut error_weight = 0u32;
    for (i, b) in backend_refs.iter().enumerate() {
        let f = (field, "backendRefs", i);
        if !b.filters.is_empty() {
            cx.error(
                id,
                (f, "filters"),
                "backend filters are not supported; ignored",
            );
        }
        let weight = b.weight.unwrap_or(1).max(0) as u32;
        match backend_cluster(cx, id, &f, &b.backend, grpc) {
            Some(cluster) if cx.clusters.contains(&cluster) => {
                backends.push(model::Backend { cluster, weight });
            }
            // The spec answers 500 for the share of an invalid backend: it keeps its weight.
            _ => error_weight = error_weight.saturating_add(weight),
        }
    }
    // When no valid backend has a weight (or there is none) the whole rule answers 500.
    if backends.iter().all(|b| b.weight == 0) {
        route.forward = None;
        route.direct_response = Some(model::DirectResponse {
            status: 500,
            body: None,
        });
        return;
    }
    route.forward = Some(model::Forward {
        backends,
        error_weight,
        rewrite,
        mirror,
        ..model::Forward::to("")
    });
}

fn unsupported_filter(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    field: &dyn ToFieldPath,
    filter: &str,
    route: &mut model::Route,
) {
    let message =
        format!("filter {filter:?} is not supported (or lacks its settings); the rule answers 500");
    cx.error(id, field, message);
    route.forward = None;
    route.redirect = None;
    route.direct_response = Some(model::DirectResponse {
        status: 500,
        body: None,
    });
}

/// The cluster of a route's backend reference (a Service port in the route's namespace, or
/// in another one that a ReferenceGrant opens to the route); `None` (reported, with the
/// route's `ResolvedRefs` reason) when it is not one. `h2`: spoken to in HTTP/2 (gRPC).
pub(crate) fn backend_cluster(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    field: &dyn ToFieldPath,
    b: &gateway::BackendObjectReference,
    h2: bool,
) -> Option<String> {
    let route_ns = id.namespace.as_deref().unwrap_or("default");
    if !is_core(b.group.as_deref(), b.kind.as_deref(), KubeKind::Service) {
        let kind = b.kind.as_deref().unwrap_or("Service");
        let message = format!("backend kind {kind:?} is not supported (only Services are)");
        cx.error(id, field, &message);
        cx.ref_problem(reason::INVALID_KIND, message);
        return None;
    }
    let namespace = b.namespace.as_deref().unwrap_or(route_ns);
    if namespace != route_ns && !cx.granted(id, KubeKind::Service, namespace, &b.name) {
        let message = format!(
            "service {namespace}/{} is in another namespace and no ReferenceGrant there \
             allows it",
            b.name
        );
        cx.error(id, field, &message);
        cx.ref_problem(reason::REF_NOT_PERMITTED, message);
        return None;
    }
    let Some(port) = b.port else {
        let message = "a Service backend needs a port";
        cx.error(id, (field, "port"), message);
        cx.ref_problem(reason::BACKEND_NOT_FOUND, message);
        return None;
    };
    Some(cx.service_cluster_with(id, field, namespace, &b.name, PortRef::Number(port), h2))
}

/// The model routes of one GRPCRoute rule, one per valid match with its index, unnamed.
pub(crate) fn grpc_rule_routes(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    r: usize,
    rule: &gateway::GrpcRouteRule,
) -> Vec<(usize, model::Route)> {
    let field = ("spec", "rules", r);
    let default_match = [gateway::GrpcRouteMatch::default()];
    let matches: &[gateway::GrpcRouteMatch] = if rule.matches.is_empty() {
        &default_match
    } else {
        &rule.matches
    };
    let mut out = Vec::new();
    for (m, gm) in matches.iter().enumerate() {
        let Some(matches) = grpc_match(cx, id, &(field, "matches", m), gm) else {
            continue;
        };
        let mut route = model::Route::forward_prefix("", "/", "");
        route.matches = matches;
        action(
            cx,
            id,
            &field,
            &rule.filters,
            &rule.backend_refs,
            true,
            &mut route,
        );
        out.push((m, route));
    }
    out
}

/// A gRPC match as an HTTP/2 request match: the method is the path `/SERVICE/METHOD`.
fn grpc_match(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    field: &dyn ToFieldPath,
    m: &gateway::GrpcRouteMatch,
) -> Option<model::RouteMatch> {
    let mut out = model::RouteMatch::default();
    if let Some(method) = &m.method {
        let service = method.service.as_deref().filter(|s| !s.is_empty());
        let name = method.method.as_deref().filter(|s| !s.is_empty());
        out.path = match (method.type_.as_deref().unwrap_or("Exact"), service, name) {
            (_, None, None) => {
                cx.error(id, (field, "method"), "needs a service or a method");
                return None;
            }
            ("Exact", Some(s), Some(n)) => model::PathMatch::Exact(format!("/{s}/{n}")),
            ("Exact", Some(s), None) => {
                model::PathMatch::Regex(format!("/{}/[^/]+", regex_escape(s)))
            }
            ("Exact", None, Some(n)) => {
                model::PathMatch::Regex(format!("/[^/]+/{}", regex_escape(n)))
            }
            ("RegularExpression", s, n) => model::PathMatch::Regex(format!(
                "/{}/{}",
                s.unwrap_or("[^/]+"),
                n.unwrap_or("[^/]+")
            )),
            (other, _, _) => {
                cx.error(
                    id,
                    (field, "method", "type"),
                    format_args!("{other:?} is not a match type"),
                );
                return None;
            }
        };
    }
    for (i, h) in m.headers.iter().enumerate() {
        let value = match h.type_.as_deref().unwrap_or("Exact") {
            "Exact" => model::StringMatch::Exact(h.value.clone()),
            "RegularExpression" => model::StringMatch::Regex(h.value.clone()),
            other => {
                cx.error(
                    id,
                    (field, "headers", i, "type"),
                    format_args!("{other:?} is not a match type"),
                );
                return None;
            }
        };
        out.headers.push(model::HeaderMatch {
            name: h.name.clone(),
            value,
            invert: false,
        });
    }
    Some(out)
}

enum PathChange {
    Full(String),
    Prefix(String),
}

fn path_change(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    field: &dyn ToFieldPath,
    p: &gateway::PathModifier,
    path: &model::PathMatch,
) -> Option<PathChange> {
    match p.type_.as_str() {
        "ReplaceFullPath" => Some(PathChange::Full(
            p.replace_full_path.clone().unwrap_or_else(|| "/".into()),
        )),
        "ReplacePrefixMatch" => {
            if !matches!(
                path,
                model::PathMatch::PathPrefix(_) | model::PathMatch::Prefix(_)
            ) {
                cx.error(
                    id,
                    field,
                    "ReplacePrefixMatch needs a PathPrefix match; ignored",
                );
                return None;
            }
            Some(PathChange::Prefix(
                p.replace_prefix_match.clone().unwrap_or_else(|| "/".into()),
            ))
        }
        other => {
            cx.error(
                id,
                (field, "type"),
                format_args!("{other:?} is not a path modifier; ignored"),
            );
            None
        }
    }
}

fn redirect(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    field: &dyn ToFieldPath,
    rd: &gateway::RequestRedirect,
    path: &model::PathMatch,
) -> model::Redirect {
    let mut out = model::Redirect {
        scheme: rd.scheme.clone(),
        host: rd.hostname.clone(),
        code: Some(
            rd.status_code
                .map_or(302, |c| u16::try_from(c).unwrap_or(302)),
        ),
        ..model::Redirect::default()
    };
    // The port: explicit, else the scheme's well-known port; left out of `Location` when it is
    // the scheme's well-known port. Without scheme and port it is the Gateway listener's,
    // filled in per listener (`listener_port_redirects`).
    let well_known = |s: &str| match s {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let port = rd
        .port
        .and_then(|p| u16::try_from(p).ok())
        .or_else(|| rd.scheme.as_deref().and_then(well_known));
    out.port = port.filter(|p| rd.scheme.as_deref().and_then(well_known) != Some(*p));
    if let Some(p) = &rd.path {
        match path_change(cx, id, &(field, "requestRedirect", "path"), p, path) {
            Some(PathChange::Full(full)) => out.path = Some(full),
            Some(PathChange::Prefix(prefix)) => out.prefix = Some(prefix),
            None => {}
        }
    }
    out
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
