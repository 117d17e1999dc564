//! The route oracle: where does this request go? Answered offline, from a snapshot.
//!
//! [`evaluate`] takes a [`Snapshot`] and a [`Request`] (listener, SNI, host, path with query,
//! method, headers) and answers with an [`Outcome`]: the virtual host and route that match, what
//! the route does ([`Action`]: the weighted clusters with the path and host after rewrites, a
//! redirect's location, a direct response, Envoy's 404) and an explanation ([`Step`]s) naming the
//! filter chain, the domain that chose the virtual host and why each earlier route did not match.
//!
//! It reads the Envoy messages in the snapshot, not the model, and follows what Envoy does with
//! them, so it checks the compiler as well as the user's intent:
//!
//! - filter chain: by SNI `server_names` (exact, then the longest `*.` wildcard, then a chain
//!   without server names; the SNI is only seen when the listener has the TLS inspector), then
//!   `transport_protocol`; no match means the `default_filter_chain` or a closed connection;
//! - host: `strip_any_host_port` (or `strip_matching_host_port`) and `strip_trailing_host_dot`,
//!   then the virtual host by domain, case-insensitively: exact, then the longest `*suffix`, then
//!   the longest `prefix*` (a wildcard matches at least one character), then `*`;
//! - routes: the first one in order whose path, headers (`:method` is a header) and query
//!   parameters all match. Paths are compared without the query string and case-sensitively
//!   unless `case_sensitive` is false; `safe_regex` must match the whole path;
//!   `path_separated_prefix` matches the prefix followed by the end or `/`. Header names are
//!   case-insensitive; a missing header matches nothing but `present_match: false`, even when
//!   inverted; repeated headers are matched one value at a time (Envoy 1.39 and later). Query
//!   parameters are not decoded and only the first value of a name counts;
//! - actions: `prefix_rewrite` replaces the matched prefix (for an exact path, the path; for a
//!   regex, the whole path), `regex_rewrite` replaces every match in the path (`\1` groups),
//!   keeping the query; `host_rewrite_literal`; redirects build their location as Envoy's
//!   `newUri` does (scheme, host, port, path or prefix rewrite, `strip_query`);
//! - regular expressions: RE2 syntax within Envoy's program size (checked as the compiler checks
//!   them), run on the `regex` crate with RE2's ASCII meaning of `\d`, `\s`, `\w` and `\b`.
//!
//! It deliberately does not evaluate what it cannot know or does not model: runtime fractions,
//! gRPC, TLS context, metadata, filter state, cookie or CONNECT matchers, cluster headers,
//! automatic host rewrites, `vhost_header`, scoped routes, VHDS, path normalization and generic
//! matchers. A snapshot using any of them gets [`OracleError::Unsupported`] rather than a guess.
//! It does not pick one cluster of a weighted set (that is random in Envoy), does not apply
//! header mutations, and does not check endpoints' health.
//!
//! ```
//! use xdsc_core::compile::Compiled;
//! use xdsc_core::model::{Cluster, Listener, Model, Object, Route, VirtualHost};
//! use xdsc_core::oracle::{evaluate, Action, Request};
//!
//! let mut vh = VirtualHost::new("shop", ["http"], ["shop.example.com"]);
//! vh.routes.push(Route::forward_prefix("api", "/api", "api"));
//! vh.routes.push(Route::forward_prefix("web", "/", "web"));
//! let model = Model::from_objects([
//!     Object::Listener(Listener::new("http", 8080)),
//!     Object::VirtualHost(vh),
//!     Object::Cluster(Cluster::new("api")),
//!     Object::Cluster(Cluster::new("web")),
//! ]);
//! let compiled = Compiled::new(&model);
//! let req = Request::new("http", "Shop.Example.com:8080", "/index.html");
//! let out = evaluate(compiled.snapshot(), &req).unwrap();
//! assert_eq!(out.virtual_host.as_deref(), Some("shop"));
//! assert_eq!(out.route.as_deref(), Some("web"));
//! assert!(matches!(&out.action, Action::Forward { clusters, .. } if clusters[0].0 == "web"));
//! assert!(out.to_string().contains(r#"route "api" skipped: path "/index.html" does not match prefix "/api""#));
//! ```

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
use prost::Name;

use crate::snapshot::{ResourceType, Snapshot};

mod action;
mod chain;
mod http;
mod outcome;
mod re2;
mod request;

use action::{redirect, request_host_for_redirect, rewrite_path, weighted};
use chain::{TLS_INSPECTOR, choose_chain, listener_port};
use http::{find_virtual_host, route_matches};
pub use outcome::{Action, ChainMatch, DomainMatch, Mismatch, OracleError, Outcome, Step};
use outcome::{Result, decode, rejected, unsupported};
pub use request::Request;
use request::{RequestContext, strip_port, strip_trailing_dot, valid_authority};

#[cfg(test)]
mod tests;

/// Where does `request` go? Evaluates it against `snapshot` with Envoy's semantics (see the
/// module documentation for what is and is not evaluated).
///
/// ```
/// use xdsc_core::compile::Compiled;
/// use xdsc_core::model::{DirectResponse, Listener, Model, Object, Route, VirtualHost};
/// use xdsc_core::oracle::{evaluate, Action, Request};
///
/// let mut vh = VirtualHost::new("site", ["http"], ["*.example.com"]);
/// let mut teapot = Route::forward_prefix("teapot", "/tea", "unused");
/// teapot.forward = None;
/// teapot.direct_response = Some(DirectResponse { status: 418, body: Some("short and stout".into()) });
/// vh.routes.push(teapot);
/// let model = Model::from_objects([Object::Listener(Listener::new("http", 80)), Object::VirtualHost(vh)]);
/// let snapshot = Compiled::new(&model).snapshot().clone();
///
/// let out = evaluate(&snapshot, &Request::new("http", "www.example.com", "/tea/pot")).unwrap();
/// assert_eq!(out.action, Action::Direct { status: 418, body: Some("short and stout".into()), location: None });
/// let out = evaluate(&snapshot, &Request::new("http", "example.com", "/tea")).unwrap();
/// assert_eq!(out.action, Action::NotFound); // "*.example.com" needs at least one character
/// ```
pub fn evaluate(snapshot: &Snapshot, request: &Request) -> Result<Outcome> {
    let resource = snapshot
        .get(ResourceType::Listener, &request.listener)
        .ok_or_else(|| OracleError::NoListener(request.listener.clone()))?;
    let l: listener::Listener = decode(resource.body(), || {
        format!("listener {:?}", request.listener)
    })?;
    let mut eval = Evaluation {
        snapshot,
        request,
        steps: Vec::new(),
    };
    let (action, virtual_host, route) = eval.listener(&l)?;
    Ok(Outcome {
        virtual_host,
        route,
        action,
        explanation: eval.steps,
    })
}

struct Evaluation<'a> {
    snapshot: &'a Snapshot,
    request: &'a Request,
    steps: Vec<Step>,
}

type Answer = (Action, Option<String>, Option<String>);

impl Evaluation<'_> {
    fn listener(&mut self, l: &listener::Listener) -> Result<Answer> {
        if l.filter_chain_matcher.is_some() {
            return unsupported("listener filter_chain_matcher");
        }
        if l.api_listener.is_some() {
            return unsupported("API listeners");
        }
        let inspector = l.listener_filters.iter().any(|f| {
            f.name == TLS_INSPECTOR
                || matches!(&f.config_type, Some(listener::listener_filter::ConfigType::TypedConfig(a))
                    if a.type_url.ends_with("envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"))
        });
        // The TLS inspector lowercases the server name; without it the listener sees none.
        let server_name = match (&self.request.sni, inspector) {
            (Some(s), true) => s.to_ascii_lowercase(),
            _ => String::new(),
        };
        let transport = if inspector && self.request.sni.is_some() {
            "tls"
        } else {
            "raw_buffer"
        };
        let port = listener_port(l);
        let Some((chain, index, why)) = choose_chain(l, port, &server_name, transport)? else {
            self.steps.push(Step::NoFilterChain { server_name });
            return Ok((Action::Closed, None, None));
        };
        self.steps.push(Step::FilterChain {
            index,
            name: chain.name.clone(),
            why,
        });
        let tls = chain.transport_socket.is_some();
        for (i, f) in chain.filters.iter().enumerate() {
            let any = match &f.config_type {
                Some(listener::filter::ConfigType::TypedConfig(a)) => a,
                _ => {
                    return unsupported(format!(
                        "network filter {:?} without typed_config",
                        f.name
                    ));
                }
            };
            if any.type_url == hcm::HttpConnectionManager::type_url() {
                let m: hcm::HttpConnectionManager = decode(&any.value, || {
                    format!("http_connection_manager of filter chain {i}")
                })?;
                let client_tls = self.request.sni.is_some();
                if client_tls != tls {
                    self.steps.push(Step::TlsMismatch { client_tls });
                    return Ok((Action::Closed, None, None));
                }
                return self.http(&m, port, tls);
            }
            if any.type_url == tcp::TcpProxy::type_url() {
                let p: tcp::TcpProxy =
                    decode(&any.value, || format!("tcp_proxy of filter chain {i}"))?;
                let clusters = match p.cluster_specifier {
                    Some(tcp::tcp_proxy::ClusterSpecifier::Cluster(c)) => vec![(c, 1)],
                    Some(tcp::tcp_proxy::ClusterSpecifier::WeightedClusters(w)) => {
                        w.clusters.into_iter().map(|c| (c.name, c.weight)).collect()
                    }
                    None => return rejected("tcp_proxy without a cluster"),
                };
                self.missing_clusters(&clusters, None);
                return Ok((Action::TcpProxy { clusters }, None, None));
            }
        }
        unsupported("a filter chain without http_connection_manager or tcp_proxy")
    }

    /// Records the clusters not in the snapshot; `status`: what Envoy answers for them.
    fn missing_clusters(&mut self, clusters: &[(String, u32)], status: Option<u16>) {
        for (c, _) in clusters {
            if !self.snapshot.resources(ResourceType::Cluster).contains(c) {
                self.steps.push(Step::MissingCluster {
                    cluster: c.clone(),
                    status,
                });
            }
        }
    }

    fn http(
        &mut self,
        m: &hcm::HttpConnectionManager,
        port: Option<u32>,
        tls: bool,
    ) -> Result<Answer> {
        use hcm::http_connection_manager::{RouteSpecifier, StripPortMode};
        if m.normalize_path.as_ref().is_some_and(|b| b.value) || m.merge_slashes {
            return unsupported("path normalization (normalize_path, merge_slashes)");
        }
        if m.path_with_escaped_slashes_action > 1 {
            return unsupported("path_with_escaped_slashes_action");
        }
        let rc = match &m.route_specifier {
            Some(RouteSpecifier::Rds(rds)) => {
                let r = self
                    .snapshot
                    .get(ResourceType::Route, &rds.route_config_name)
                    .ok_or_else(|| {
                        OracleError::NoRouteConfiguration(rds.route_config_name.clone())
                    })?;
                decode::<route::RouteConfiguration>(r.body(), || {
                    format!("route configuration {:?}", rds.route_config_name)
                })?
            }
            Some(RouteSpecifier::RouteConfig(rc)) => rc.clone(),
            Some(RouteSpecifier::ScopedRoutes(_)) => return unsupported("scoped routes"),
            None => return rejected("http_connection_manager without routes"),
        };
        self.steps.push(Step::RouteConfiguration {
            name: rc.name.clone(),
        });
        if self.request.path.is_empty() {
            return Err(OracleError::InvalidRequest("empty :path".into()));
        }
        for (name, _) in &self.request.headers {
            if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
                return Err(OracleError::InvalidRequest(format!(
                    "header {name:?}: set the host, path and method with their own fields"
                )));
            }
        }
        if !valid_authority(&self.request.host) {
            self.steps.push(Step::InvalidHost);
            return Ok((Action::BadRequest, None, None));
        }
        // The connection manager strips the port (and trailing dot) from the Host header itself,
        // so the upstream sees the stripped host too.
        let mut host = self.request.host.clone();
        if m.strip_trailing_host_dot {
            host = strip_trailing_dot(&host);
        }
        let strip_any = matches!(
            m.strip_port_mode,
            Some(StripPortMode::StripAnyHostPort(true))
        );
        if strip_any || m.strip_matching_host_port {
            host = strip_port(&host, (!strip_any).then_some(port).flatten(), strip_any).to_owned();
        }
        let scheme = self.scheme(tls);
        let ctx = RequestContext {
            request: self.request,
            host,
            scheme,
            tls,
            ignore_path_parameters: rc.ignore_path_parameters_in_path_matching,
        };
        if !self.request.path.starts_with('/') {
            self.steps.push(Step::PathNotRelative);
            return Ok((Action::BadRequest, None, None));
        }
        self.routes(&rc, &ctx)
    }

    /// The request's scheme as Envoy sets `:scheme`: a valid `x-forwarded-proto`, else the
    /// connection's.
    fn scheme(&self, tls: bool) -> String {
        let xfp = self
            .request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("x-forwarded-proto"))
            .map(|(_, v)| v.as_str());
        match xfp {
            Some(v) if v.eq_ignore_ascii_case("http") || v.eq_ignore_ascii_case("https") => {
                v.to_owned()
            }
            _ if tls => "https".to_owned(),
            _ => "http".to_owned(),
        }
    }

    fn routes(
        &mut self,
        rc: &route::RouteConfiguration,
        ctx: &RequestContext<'_>,
    ) -> Result<Answer> {
        if rc.vhds.is_some() {
            return unsupported("VHDS");
        }
        if !rc.vhost_header.is_empty() {
            return unsupported("vhost_header");
        }
        if !rc.route_specifiers.is_empty() {
            return unsupported("route specifiers");
        }
        let mut host = ctx.host.to_ascii_lowercase();
        if rc.ignore_port_in_host_matching {
            host = strip_port(&host, None, true).to_owned();
        }
        self.steps.push(Step::Host { host: host.clone() });
        let Some((vh, domain, how)) = find_virtual_host(rc, &host)? else {
            self.steps.push(Step::NoVirtualHost);
            return Ok((Action::NotFound, None, None));
        };
        self.steps.push(Step::VirtualHost {
            name: vh.name.clone(),
            domain,
            how,
        });
        let vname = Some(vh.name.clone());
        if vh.matcher.is_some() {
            return unsupported("virtual host matcher");
        }
        if !vh.route_specifiers.is_empty() {
            return unsupported("route specifiers");
        }
        use route::virtual_host::TlsRequirementType as T;
        let require = T::try_from(vh.require_tls).unwrap_or(T::None);
        let internal = ctx
            .header_values("x-envoy-internal")
            .iter()
            .any(|v| v == "true");
        if (require == T::All || (require == T::ExternalOnly && !internal))
            && !ctx.forwarded_proto().eq_ignore_ascii_case("https")
        {
            self.steps.push(Step::TlsRequired);
            let location = format!("https://{}{}", ctx.host, self.request.path);
            return Ok((
                Action::Redirect {
                    location,
                    status: 301,
                },
                vname,
                None,
            ));
        }
        for (i, r) in vh.routes.iter().enumerate() {
            let name = if r.name.is_empty() {
                format!("#{i}")
            } else {
                r.name.clone()
            };
            match route_matches(r, ctx)? {
                Some(why) => self.steps.push(Step::Skipped { route: name, why }),
                None => {
                    self.steps.push(Step::Matched {
                        route: name.clone(),
                    });
                    let action = self.action(r, ctx)?;
                    return Ok((action, vname, Some(name)));
                }
            }
        }
        self.steps.push(Step::NoRoute);
        Ok((Action::NotFound, vname, None))
    }

    fn action(&mut self, r: &route::Route, ctx: &RequestContext<'_>) -> Result<Action> {
        use route::route::Action as A;
        let m = r.r#match.clone().unwrap_or_default();
        match &r.action {
            Some(A::Route(ra)) => {
                use route::route_action::{ClusterSpecifier as C, HostRewriteSpecifier as H};
                let clusters = match &ra.cluster_specifier {
                    Some(C::Cluster(c)) => vec![(c.clone(), 1)],
                    Some(C::WeightedClusters(w)) => weighted(w)?,
                    Some(C::ClusterHeader(_)) => return unsupported("cluster_header"),
                    Some(_) => return unsupported("cluster specifier plugins"),
                    None => return rejected("a route action without a cluster"),
                };
                use route::route_action::ClusterNotFoundResponseCode as Code;
                let status = match Code::try_from(ra.cluster_not_found_response_code) {
                    Ok(Code::ServiceUnavailable) => 503,
                    Ok(Code::NotFound) => 404,
                    Ok(Code::InternalServerError) => 500,
                    Err(_) => return rejected("an unknown cluster_not_found_response_code"),
                };
                self.missing_clusters(&clusters, Some(status));
                if !ra.path_rewrite.is_empty() || ra.path_rewrite_policy.is_some() {
                    return unsupported("path_rewrite and path_rewrite_policy");
                }
                if !ra.prefix_rewrite.is_empty() && ra.regex_rewrite.is_some() {
                    return rejected("both prefix_rewrite and regex_rewrite");
                }
                let path = rewrite_path(
                    &self.request.path,
                    &m,
                    &ra.prefix_rewrite,
                    ra.regex_rewrite.as_ref(),
                )?;
                let host = match &ra.host_rewrite_specifier {
                    None => ctx.host.clone(),
                    Some(H::HostRewriteLiteral(h)) => h.clone(),
                    Some(_) => return unsupported("host rewrites other than host_rewrite_literal"),
                };
                Ok(Action::Forward {
                    clusters,
                    path,
                    host,
                })
            }
            Some(A::Redirect(rd)) => Ok(redirect(rd, &m, ctx)?),
            Some(A::DirectResponse(d)) => {
                use core::data_source::Specifier as S;
                let status = u16::try_from(d.status)
                    .ok()
                    .filter(|s| (200..600).contains(s))
                    .map_or_else(
                        || rejected(format!("direct response status {}", d.status)),
                        Ok,
                    )?;
                let body = match d.body.as_ref().and_then(|b| b.specifier.as_ref()) {
                    None => None,
                    Some(S::InlineString(s)) => Some(s.clone()),
                    Some(S::InlineBytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                    Some(_) => {
                        return unsupported("direct response bodies from files or variables");
                    }
                };
                if d.body_format.is_some() {
                    return unsupported("direct response body_format");
                }
                // Envoy's `newUri` without a redirect configuration: the request's own URL.
                let location = (status == 201 || (300..400).contains(&status)).then(|| {
                    let host = request_host_for_redirect(
                        &ctx.host,
                        &ctx.scheme,
                        "",
                        &ctx.forwarded_proto(),
                    );
                    format!("{}://{host}{}", ctx.scheme, self.request.path)
                });
                Ok(Action::Direct {
                    status,
                    body,
                    location,
                })
            }
            Some(A::FilterAction(_)) | Some(A::NonForwardingAction(_)) => {
                unsupported("filter_action and non_forwarding_action routes")
            }
            None => rejected("a route without an action"),
        }
    }
}
