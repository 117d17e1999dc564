//! What a matching route does to the request: weighted clusters, the path after
//! `prefix_rewrite` or `regex_rewrite`, and a redirect's location as Envoy's `newUri` builds it.
//!
//! Not here: choosing the route (see `http`).

use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;

use super::http::path_only;
use super::outcome::{Action, Result, rejected, unsupported};
use super::re2::global_replace;
use super::request::RequestContext;

pub(super) fn weighted(w: &route::WeightedCluster) -> Result<Vec<(String, u32)>> {
    let mut out = Vec::with_capacity(w.clusters.len());
    for c in &w.clusters {
        if !c.cluster_header.is_empty() {
            return unsupported("weighted cluster_header");
        }
        if c.host_rewrite_specifier.is_some() {
            return unsupported("per-cluster host rewrites");
        }
        out.push((c.name.clone(), c.weight.map_or(0, |v| v.value)));
    }
    if out.iter().map(|(_, w)| u64::from(*w)).sum::<u64>() == 0 {
        return rejected("weighted clusters whose weights add up to 0");
    }
    Ok(out)
}

/// The matched prefix a `prefix_rewrite` replaces, and the path Envoy sends: for a prefix or
/// path-separated prefix the configured prefix, for an exact path the path, for a regex the
/// whole path without query string.
pub(super) fn rewrite_path(
    path: &str,
    m: &route::RouteMatch,
    prefix_rewrite: &str,
    regex_rewrite: Option<&matcher::RegexMatchAndSubstitute>,
) -> Result<String> {
    use route::route_match::PathSpecifier as P;
    if !prefix_rewrite.is_empty() {
        let matched = match &m.path_specifier {
            Some(P::Prefix(p)) | Some(P::Path(p)) | Some(P::PathSeparatedPrefix(p)) => p.len(),
            _ => path_only(path).len(),
        };
        let matched = matched.min(path.len());
        let Some(rest) = path.get(matched..) else {
            return Ok(path.to_owned());
        };
        return Ok(format!("{prefix_rewrite}{rest}"));
    }
    if let Some(rx) = regex_rewrite {
        let Some(pattern) = &rx.pattern else {
            return rejected("regex_rewrite without a pattern");
        };
        let only = path_only(path);
        let replaced = global_replace(&pattern.regex, only, &rx.substitution)?;
        return Ok(format!("{replaced}{}", &path[only.len()..]));
    }
    Ok(path.to_owned())
}

/// Envoy's redirect: the path rewrite (`RouteEntryImplBase::rewritePathHeader`), then
/// `Http::Utility::newUri`.
pub(super) fn redirect(
    rd: &route::RedirectAction,
    m: &route::RouteMatch,
    ctx: &RequestContext<'_>,
) -> Result<Action> {
    use route::redirect_action::{
        PathRewriteSpecifier as PR, RedirectResponseCode as Code, SchemeRewriteSpecifier as SR,
    };
    let status = match Code::try_from(rd.response_code) {
        Ok(Code::MovedPermanently) => 301,
        Ok(Code::Found) => 302,
        Ok(Code::SeeOther) => 303,
        Ok(Code::TemporaryRedirect) => 307,
        Ok(Code::PermanentRedirect) => 308,
        Err(_) => return rejected(format!("redirect response code {}", rd.response_code)),
    };
    let request_path = &ctx.request.path;
    let (path_redirect, path) = match &rd.path_rewrite_specifier {
        None => (None, request_path.clone()),
        Some(PR::PathRedirect(p)) => (Some(p.as_str()), request_path.clone()),
        Some(PR::PrefixRewrite(p)) => (None, rewrite_path(request_path, m, p, None)?),
        Some(PR::RegexRewrite(rx)) => (None, rewrite_path(request_path, m, "", Some(rx))?),
        Some(PR::PathRewrite(_)) => return unsupported("redirect path_rewrite formatting"),
    };
    let scheme = match &rd.scheme_rewrite_specifier {
        Some(SR::SchemeRedirect(s)) if !s.is_empty() => s.clone(),
        Some(SR::HttpsRedirect(true)) => "https".to_owned(),
        _ => ctx.scheme.clone(),
    };
    let port = if rd.port_redirect != 0 {
        format!(":{}", rd.port_redirect)
    } else {
        String::new()
    };
    let host = if !rd.host_redirect.is_empty() {
        rd.host_redirect.clone()
    } else {
        request_host_for_redirect(&ctx.host, &scheme, &port, &ctx.forwarded_proto()).to_owned()
    };
    let mut has_query_redirect = false;
    let mut final_path = match path_redirect.filter(|p| !p.is_empty()) {
        Some(p) if p.contains('?') => {
            has_query_redirect = true;
            p.to_owned()
        }
        Some(p) => match path.find('?') {
            Some(q) => format!("{p}{}", &path[q..]),
            None => p.to_owned(),
        },
        None => path,
    };
    if !final_path.starts_with('/') {
        final_path.insert(0, '/');
    }
    if !has_query_redirect
        && rd.strip_query
        && let Some(q) = final_path.find('?')
    {
        final_path.truncate(q);
    }
    Ok(Action::Redirect {
        location: format!("{scheme}://{host}{port}{final_path}"),
        status,
    })
}

/// Envoy's `processRequestHost`: the request's host, without its port when a port is
/// configured or when the scheme changes away from the port's default.
pub(super) fn request_host_for_redirect<'h>(
    host: &'h str,
    new_scheme: &str,
    new_port: &str,
    forwarded_proto: &str,
) -> &'h str {
    if host.is_empty() {
        return host;
    }
    let end = if host.starts_with('[') {
        host.rfind("]:").map(|i| i + 1)
    } else {
        host.rfind(':')
    };
    let Some(end) = end else {
        return host;
    };
    let port = &host[end..];
    let mut remove = !new_port.is_empty();
    if new_scheme != forwarded_proto {
        remove |= forwarded_proto == "https" && port == ":443";
        remove |= forwarded_proto == "http" && port == ":80";
    }
    if remove { &host[..end] } else { host }
}
