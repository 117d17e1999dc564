//! Routes: one virtual host's part of a listener's route configuration, from its validated
//! and ordered routes (`CheckedVhost`): matches, forwards (weights, retries, rewrites,
//! mirrors, hash policies), redirects, direct responses and header changes.
//!
//! Not here: validating routes and their precedence (see `validate`), or assembling a
//! listener's route configuration from its hosts' parts (the compiler does).

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::envoy::r#type::v3 as etype;

use super::parts::{duration, inline, u32v, usable_backends};
use crate::compile::validate::CheckedVhost;
use crate::diagnostic::{Diags, Named, Problem, ToFieldPath};
use crate::model::{self, Kind, ObjectKey};

fn string_matcher(v: &model::StringMatch) -> Option<matcher::StringMatcher> {
    use matcher::string_matcher::MatchPattern;
    let pattern = match v {
        model::StringMatch::Exact(s) => MatchPattern::Exact(s.clone()),
        model::StringMatch::Prefix(s) => MatchPattern::Prefix(s.clone()),
        model::StringMatch::Regex(r) => MatchPattern::SafeRegex(regex_matcher(r)),
        model::StringMatch::Present => return None,
    };
    Some(matcher::StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    })
}

fn regex_matcher(r: &str) -> matcher::RegexMatcher {
    matcher::RegexMatcher {
        regex: r.to_owned(),
        ..Default::default()
    }
}

fn route_match(m: &model::RouteMatch) -> route::RouteMatch {
    use route::route_match::PathSpecifier;
    let path = match &m.path {
        model::PathMatch::Prefix(p) => PathSpecifier::Prefix(p.clone()),
        model::PathMatch::Exact(p) => PathSpecifier::Path(p.clone()),
        model::PathMatch::Regex(r) => PathSpecifier::SafeRegex(regex_matcher(r)),
        model::PathMatch::PathPrefix(p) => match p.trim_end_matches('/') {
            "" => PathSpecifier::Prefix("/".to_owned()),
            trimmed => PathSpecifier::PathSeparatedPrefix(trimmed.to_owned()),
        },
    };
    let mut headers: Vec<route::HeaderMatcher> = m
        .headers
        .iter()
        .map(|h| route::HeaderMatcher {
            name: h.name.to_ascii_lowercase(),
            header_match_specifier: Some(match string_matcher(&h.value) {
                Some(sm) => route::header_matcher::HeaderMatchSpecifier::StringMatch(sm),
                None => route::header_matcher::HeaderMatchSpecifier::PresentMatch(true),
            }),
            invert_match: h.invert,
            ..Default::default()
        })
        .collect();
    if !m.methods.is_empty() {
        let mut methods = m.methods.clone();
        methods.sort();
        methods.dedup();
        let pattern = if let [one] = methods.as_slice() {
            matcher::string_matcher::MatchPattern::Exact(one.clone())
        } else {
            matcher::string_matcher::MatchPattern::SafeRegex(regex_matcher(&methods.join("|")))
        };
        headers.push(route::HeaderMatcher {
            name: ":method".to_owned(),
            header_match_specifier: Some(route::header_matcher::HeaderMatchSpecifier::StringMatch(
                matcher::StringMatcher {
                    match_pattern: Some(pattern),
                    ignore_case: false,
                },
            )),
            ..Default::default()
        });
    }
    route::RouteMatch {
        path_specifier: Some(path),
        headers,
        query_parameters: m
            .query
            .iter()
            .map(|q| route::QueryParameterMatcher {
                name: q.name.clone(),
                query_parameter_match_specifier: Some(match string_matcher(&q.value) {
                    Some(sm) => {
                        route::query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(
                            sm,
                        )
                    }
                    None => {
                        route::query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(
                            true,
                        )
                    }
                }),
            })
            .collect(),
        ..Default::default()
    }
}

fn header_options(m: &model::HeaderModifier) -> (Vec<core::HeaderValueOption>, Vec<String>) {
    use core::header_value_option::HeaderAppendAction;
    let add = m
        .add
        .iter()
        .map(|h| core::HeaderValueOption {
            header: Some(core::HeaderValue {
                key: h.name.to_ascii_lowercase(),
                value: h.value.clone(),
                ..Default::default()
            }),
            append_action: if h.append {
                HeaderAppendAction::AppendIfExistsOrAdd
            } else {
                HeaderAppendAction::OverwriteIfExistsOrAdd
            } as i32,
            ..Default::default()
        })
        .collect();
    (
        add,
        m.remove.iter().map(|h| h.to_ascii_lowercase()).collect(),
    )
}

/// The cluster name a route's `error_weight` share goes to in Envoy's weighted clusters:
/// never a cluster (no model name may hold `!`, and a raw cluster of this name is refused),
/// so Envoy answers that share with the route's `cluster_not_found_response_code`, set to
/// 500. Nothing else names it: it has no CDS or EDS resource.
///
/// ```
/// assert!(xdsc_core::compile::ERROR_CLUSTER.contains('!'));
/// ```
pub const ERROR_CLUSTER: &str = "xdsc!internal-server-error";

fn direct(status: u32, body: Option<&str>) -> route::route::Action {
    route::route::Action::DirectResponse(route::DirectResponseAction {
        status,
        body: body.map(inline),
        ..Default::default()
    })
}

fn forward_action(
    r: &model::Route,
    f: &model::Forward,
    field: impl ToFieldPath + Copy,
    cluster: &dyn Fn(&str) -> bool,
    d: &mut Diags,
) -> route::route::Action {
    use route::route_action::{ClusterSpecifier, HostRewriteSpecifier};
    let backends = usable_backends(&f.backends, (field, "forward", "backends"), cluster, d);
    if backends.is_empty() && f.error_weight > 0 {
        // Only the error share has a weight: every request answers 500.
        return direct(500, None);
    }
    if backends.is_empty() {
        // Gateway API: every backend weight 0 means 500; no known backend at all, 503.
        let all_zero = f.backends.iter().all(|b| b.weight == 0);
        let status = if all_zero { 500 } else { 503 };
        d.warn(
            (field, "forward", "backends"),
            Problem::invalid(format!("no usable backend; the route answers {status}")),
        );
        return direct(status, None);
    }
    let weight = |name: &str, weight: u32| route::weighted_cluster::ClusterWeight {
        name: name.to_owned(),
        weight: Some(u32v(weight)),
        ..Default::default()
    };
    let specifier = match backends.as_slice() {
        [one] if f.error_weight == 0 => ClusterSpecifier::Cluster(one.cluster.clone()),
        _ => ClusterSpecifier::WeightedClusters(route::WeightedCluster {
            clusters: backends
                .iter()
                .map(|b| weight(&b.cluster, b.weight))
                .chain((f.error_weight > 0).then(|| weight(ERROR_CLUSTER, f.error_weight)))
                .collect(),
            ..Default::default()
        }),
    };
    let mut action = route::RouteAction {
        cluster_specifier: Some(specifier),
        timeout: f.timeout.map(duration),
        ..Default::default()
    };
    if f.error_weight > 0 {
        action.cluster_not_found_response_code =
            route::route_action::ClusterNotFoundResponseCode::InternalServerError as i32;
    }
    if let Some(p) = &f.rewrite.prefix {
        action.prefix_rewrite = match (&r.matches.path, p.as_str()) {
            // Rewriting a segment prefix to "/" would leave "//rest"; Envoy users write "".
            (model::PathMatch::PathPrefix(_), "/") => "/".to_owned(),
            _ => p.clone(),
        };
    }
    if let Some(rx) = &f.rewrite.regex {
        action.regex_rewrite = Some(matcher::RegexMatchAndSubstitute {
            pattern: Some(regex_matcher(&rx.pattern)),
            substitution: rx.substitution.clone(),
        });
    }
    if let Some(h) = &f.rewrite.host {
        action.host_rewrite_specifier = Some(HostRewriteSpecifier::HostRewriteLiteral(h.clone()));
    }
    if let Some(retry) = &f.retry {
        action.retry_policy = Some(route::RetryPolicy {
            retry_on: retry.on.join(","),
            num_retries: Some(u32v(retry.attempts)),
            per_try_timeout: retry.per_try_timeout.map(duration),
            ..Default::default()
        });
    }
    for (i, m) in f.mirror.iter().enumerate() {
        if !cluster(&m.cluster) {
            d.warn(
                (field, "forward", "mirror", i, "cluster"),
                Problem::Dangling(ObjectKey::new(Kind::Cluster, m.cluster.as_str())),
            );
            continue;
        }
        action
            .request_mirror_policies
            .push(route::route_action::RequestMirrorPolicy {
                cluster: m.cluster.clone(),
                runtime_fraction: (m.percent < 100).then(|| core::RuntimeFractionalPercent {
                    default_value: Some(etype::FractionalPercent {
                        numerator: m.percent,
                        denominator: etype::fractional_percent::DenominatorType::Hundred as i32,
                    }),
                    runtime_key: String::new(),
                }),
                ..Default::default()
            });
    }
    for h in &f.hash_policy {
        use route::route_action::hash_policy::{
            ConnectionProperties, Cookie, Header, PolicySpecifier,
        };
        let spec = match h {
            model::HashPolicy::Header(n) => PolicySpecifier::Header(Header {
                header_name: n.to_ascii_lowercase(),
                ..Default::default()
            }),
            model::HashPolicy::Cookie(n) => PolicySpecifier::Cookie(Cookie {
                name: n.clone(),
                ..Default::default()
            }),
            model::HashPolicy::SourceIp => {
                PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: true })
            }
        };
        action.hash_policy.push(route::route_action::HashPolicy {
            policy_specifier: Some(spec),
            terminal: false,
        });
    }
    route::route::Action::Route(action)
}

fn redirect_action(rd: &model::Redirect, m: &model::RouteMatch) -> route::route::Action {
    use route::redirect_action::{
        PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier,
    };
    let code = match rd.code.unwrap_or(301) {
        302 => RedirectResponseCode::Found,
        303 => RedirectResponseCode::SeeOther,
        307 => RedirectResponseCode::TemporaryRedirect,
        308 => RedirectResponseCode::PermanentRedirect,
        _ => RedirectResponseCode::MovedPermanently,
    };
    let path = match (&rd.path, &rd.prefix) {
        (Some(p), _) => Some(PathRewriteSpecifier::PathRedirect(p.clone())),
        (None, Some(p)) => Some(PathRewriteSpecifier::PrefixRewrite(
            if matches!(m.path, model::PathMatch::PathPrefix(_)) && p == "/" {
                "/".to_owned()
            } else {
                p.clone()
            },
        )),
        _ => None,
    };
    route::route::Action::Redirect(route::RedirectAction {
        scheme_rewrite_specifier: rd
            .scheme
            .clone()
            .map(SchemeRewriteSpecifier::SchemeRedirect),
        host_redirect: rd.host.clone().unwrap_or_default(),
        port_redirect: rd.port.map(u32::from).unwrap_or(0),
        path_rewrite_specifier: path,
        response_code: code as i32,
        ..Default::default()
    })
}

/// The Envoy virtual host for `v` on one listener, serving `domains` (those it owns there).
pub(crate) fn virtual_host(
    v: &model::VirtualHost,
    checked: &CheckedVhost,
    domains: Vec<String>,
    cluster: &dyn Fn(&str) -> bool,
    d: &mut Diags,
) -> route::VirtualHost {
    let routes = checked
        .order
        .iter()
        .filter_map(|i| v.routes.get(*i))
        .map(|r| {
            let field = ("routes", Named(&r.name));
            let action = if let Some(f) = &r.forward {
                forward_action(r, f, field, cluster, d)
            } else if let Some(rd) = &r.redirect {
                redirect_action(rd, &r.matches)
            } else if let Some(dr) = &r.direct_response {
                direct(u32::from(dr.status), dr.body.as_deref())
            } else {
                direct(500, None)
            };
            let (req_add, req_remove) = header_options(&r.request_headers);
            let (resp_add, resp_remove) = header_options(&r.response_headers);
            route::Route {
                name: r.name.clone(),
                r#match: Some(route_match(&r.matches)),
                action: Some(action),
                request_headers_to_add: req_add,
                request_headers_to_remove: req_remove,
                response_headers_to_add: resp_add,
                response_headers_to_remove: resp_remove,
                typed_per_filter_config: typed_configs(&r.typed_per_filter_config),
                ..Default::default()
            }
        })
        .collect();
    route::VirtualHost {
        name: v.name.clone(),
        domains,
        routes,
        typed_per_filter_config: typed_configs(&v.typed_per_filter_config),
        ..Default::default()
    }
}

/// Per-filter configurations as Envoy's map; validation (`check_vhost`) has already left out
/// the virtual hosts and routes whose configurations do not resolve.
fn typed_configs<M>(configs: &model::TypedConfigs) -> M
where
    M: FromIterator<(String, envoy_types::pb::google::protobuf::Any)>,
{
    configs
        .iter()
        .filter_map(|(k, c)| Some((k.clone(), crate::compile::typed::resolve(c).ok()?)))
        .collect()
}
