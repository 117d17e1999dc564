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

use std::collections::BTreeMap;
use std::fmt;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use prost::{Message, Name};

use crate::snapshot::{ResourceType, Snapshot};

#[cfg(test)]
mod tests;

/// A request, as a client would send it to one listener.
///
/// ```
/// use xdsc_core::oracle::Request;
/// let r = Request::new("https", "example.com", "/search")
///     .sni("example.com")
///     .method("POST")
///     .header("x-env", "beta")
///     .query("q", "envoy");
/// assert_eq!(r.path, "/search?q=envoy");
/// assert_eq!(r.method, "POST");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The name of the Envoy listener the connection reaches.
    pub listener: String,
    /// The TLS server name; `None` for a plain-text connection, `Some("")` for TLS without SNI.
    pub sni: Option<String>,
    /// The `Host` (`:authority`) header, possibly with a port.
    pub host: String,
    /// The `:path` header, possibly with a query string.
    pub path: String,
    /// The method (`:method`), e.g. `GET`.
    pub method: String,
    /// Other request headers (names are case-insensitive; a name may repeat).
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// A plain-text `GET` request.
    ///
    /// ```
    /// let r = xdsc_core::oracle::Request::new("http", "example.com", "/");
    /// assert_eq!((r.method.as_str(), r.sni), ("GET", None));
    /// ```
    pub fn new(
        listener: impl Into<String>,
        host: impl Into<String>,
        path: impl Into<String>,
    ) -> Request {
        Request {
            listener: listener.into(),
            sni: None,
            host: host.into(),
            path: path.into(),
            method: "GET".to_owned(),
            headers: Vec::new(),
        }
    }

    /// Sends the request over TLS with this server name.
    ///
    /// ```
    /// let r = xdsc_core::oracle::Request::new("https", "a.example.com", "/").sni("a.example.com");
    /// assert_eq!(r.sni.as_deref(), Some("a.example.com"));
    /// ```
    pub fn sni(mut self, server_name: impl Into<String>) -> Request {
        self.sni = Some(server_name.into());
        self
    }

    /// Sets the method.
    ///
    /// ```
    /// let r = xdsc_core::oracle::Request::new("http", "example.com", "/").method("PUT");
    /// assert_eq!(r.method, "PUT");
    /// ```
    pub fn method(mut self, method: impl Into<String>) -> Request {
        self.method = method.into();
        self
    }

    /// Adds a header (a repeated name adds another value).
    ///
    /// ```
    /// let r = xdsc_core::oracle::Request::new("http", "example.com", "/").header("X-Env", "beta");
    /// assert_eq!(r.headers, [("X-Env".to_owned(), "beta".to_owned())]);
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Appends `name=value` to the query string, as given (no percent-encoding).
    ///
    /// ```
    /// let r = xdsc_core::oracle::Request::new("http", "example.com", "/a").query("x", "1").query("y", "2");
    /// assert_eq!(r.path, "/a?x=1&y=2");
    /// ```
    pub fn query(mut self, name: &str, value: &str) -> Request {
        self.path
            .push(if self.path.contains('?') { '&' } else { '?' });
        self.path.push_str(name);
        self.path.push('=');
        self.path.push_str(value);
        self
    }
}

/// What Envoy does with the request.
///
/// ```
/// # use xdsc_core::{compile::Compiled, model::*, oracle::*};
/// # let mut vh = VirtualHost::new("site", ["http"], ["example.com", "*.example.com"]);
/// # vh.routes.push(Route::forward_prefix("api", "/api", "api"));
/// # let model = Model::from_objects([Object::Listener(Listener::new("http", 80)), Object::VirtualHost(vh), Object::Cluster(Cluster::new("api"))]);
/// # let snapshot = Compiled::new(&model).snapshot().clone();
/// let out = evaluate(&snapshot, &Request::new("http", "example.com", "/api/v1?x=1")).unwrap();
/// assert_eq!(out.action, Action::Forward {
///     clusters: vec![("api".into(), 1)],
///     path: "/api/v1?x=1".into(),
///     host: "example.com".into(),
/// });
/// assert_eq!(out.action.to_string(), r#"forward to cluster "api" with path "/api/v1?x=1" and host "example.com""#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Forward upstream to one of the clusters, picked at random by weight (a single cluster
    /// has weight 1).
    Forward {
        /// `(cluster, weight)`, in the route's order.
        clusters: Vec<(String, u32)>,
        /// The `:path` sent upstream, after rewrites, with the query string.
        path: String,
        /// The `Host` sent upstream, after port stripping and host rewrite.
        host: String,
    },
    /// Answer with a redirect.
    Redirect {
        /// The `Location` header.
        location: String,
        /// 301, 302, 303, 307 or 308.
        status: u16,
    },
    /// Answer directly.
    Direct {
        /// The status.
        status: u16,
        /// The body, if any.
        body: Option<String>,
        /// The `Location` header Envoy adds to a 201 or 3xx direct response: the request's URL.
        location: Option<String>,
    },
    /// No virtual host or no route matches (or the path is not relative): Envoy answers 404.
    NotFound,
    /// The `Host` header has characters an authority cannot have: Envoy answers 400 over
    /// HTTP/1.1 (over HTTP/2 its codec resets the stream instead).
    BadRequest,
    /// A TCP proxy forwards the connection to one of the clusters, picked at random by weight.
    TcpProxy {
        /// `(cluster, weight)`, in the filter's order (a single cluster has weight 1).
        clusters: Vec<(String, u32)>,
    },
    /// No filter chain takes the connection, or the client and the chain disagree on TLS: the
    /// connection fails.
    Closed,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Forward {
                clusters,
                path,
                host,
            } => {
                write!(f, "forward to ")?;
                write_clusters(f, clusters)?;
                write!(f, " with path {path:?} and host {host:?}")
            }
            Action::Redirect { location, status } => write!(f, "redirect {status} to {location}"),
            Action::Direct {
                status,
                body,
                location,
            } => {
                write!(f, "answer {status}")?;
                if let Some(b) = body {
                    write!(f, " with body {b:?}")?;
                }
                if let Some(l) = location {
                    write!(f, " and location {l}")?;
                }
                Ok(())
            }
            Action::NotFound => f.write_str("answer 404 (no route)"),
            Action::BadRequest => f.write_str("answer 400 (bad request)"),
            Action::TcpProxy { clusters } => {
                write!(f, "proxy the connection to ")?;
                write_clusters(f, clusters)
            }
            Action::Closed => f.write_str("close the connection"),
        }
    }
}

fn write_clusters(f: &mut fmt::Formatter<'_>, clusters: &[(String, u32)]) -> fmt::Result {
    if let [(one, _)] = clusters {
        return write!(f, "cluster {one:?}");
    }
    f.write_str("clusters ")?;
    for (i, (c, w)) in clusters.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{c:?} (weight {w})")?;
    }
    Ok(())
}

/// How a filter chain was chosen.
///
/// ```
/// # use xdsc_core::{compile::Compiled, model::*, oracle::*};
/// # let mut vh = VirtualHost::new("site", ["http"], ["example.com", "*.example.com"]);
/// # vh.routes.push(Route::forward_prefix("api", "/api", "api"));
/// # let model = Model::from_objects([Object::Listener(Listener::new("http", 80)), Object::VirtualHost(vh), Object::Cluster(Cluster::new("api"))]);
/// # let snapshot = Compiled::new(&model).snapshot().clone();
/// let out = evaluate(&snapshot, &Request::new("http", "example.com", "/")).unwrap();
/// assert!(matches!(out.explanation[0], Step::FilterChain { why: ChainMatch::AnyServerName, .. }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainMatch {
    /// Its `server_names` hold the SNI.
    ServerName(String),
    /// Its `server_names` hold this wildcard, the longest that covers the SNI.
    Wildcard(String),
    /// It has no `server_names` and no chain claims the SNI.
    AnyServerName,
    /// No chain matches; the listener's `default_filter_chain` takes the connection.
    Default,
}

/// How a virtual host's domain matched the host.
///
/// ```
/// # use xdsc_core::{compile::Compiled, model::*, oracle::*};
/// # let mut vh = VirtualHost::new("site", ["http"], ["example.com", "*.example.com"]);
/// # vh.routes.push(Route::forward_prefix("api", "/api", "api"));
/// # let model = Model::from_objects([Object::Listener(Listener::new("http", 80)), Object::VirtualHost(vh), Object::Cluster(Cluster::new("api"))]);
/// # let snapshot = Compiled::new(&model).snapshot().clone();
/// let out = evaluate(&snapshot, &Request::new("http", "www.example.com", "/")).unwrap();
/// assert!(out.explanation.iter().any(|s| matches!(s, Step::VirtualHost { how: DomainMatch::Suffix, .. })));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainMatch {
    /// The domain equals the host.
    Exact,
    /// The longest `*suffix` wildcard covering the host.
    Suffix,
    /// The longest `prefix*` wildcard covering the host.
    Prefix,
    /// `*`, taking every host.
    Any,
}

/// Why a route did not match.
///
/// ```
/// # use xdsc_core::{compile::Compiled, model::*, oracle::*};
/// # let mut vh = VirtualHost::new("site", ["http"], ["example.com", "*.example.com"]);
/// # vh.routes.push(Route::forward_prefix("api", "/api", "api"));
/// # let model = Model::from_objects([Object::Listener(Listener::new("http", 80)), Object::VirtualHost(vh), Object::Cluster(Cluster::new("api"))]);
/// # let snapshot = Compiled::new(&model).snapshot().clone();
/// let out = evaluate(&snapshot, &Request::new("http", "example.com", "/web")).unwrap();
/// let why = out.explanation.iter().find_map(|s| match s { Step::Skipped { why, .. } => Some(why), _ => None });
/// assert_eq!(why.unwrap().to_string(), r#"path "/web" does not match prefix "/api""#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The path (without query string) does not match.
    Path {
        /// The path compared.
        path: String,
        /// The route's path match, e.g. `prefix "/api"`.
        matcher: String,
    },
    /// A header matcher does not match.
    Header {
        /// The header name (lowercase).
        name: String,
        /// The request's values of the header (empty when absent).
        values: Vec<String>,
        /// The header matcher, e.g. `exact "v1"`.
        matcher: String,
    },
    /// A query parameter matcher does not match.
    Query {
        /// The parameter name.
        name: String,
        /// The request's first value of the parameter, if present.
        value: Option<String>,
        /// The query parameter matcher.
        matcher: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Path { path, matcher } => {
                write!(f, "path {path:?} does not match {matcher}")
            }
            Mismatch::Header {
                name,
                values,
                matcher,
            } => match values.as_slice() {
                [] => write!(f, "header {name} is absent, wanted {matcher}"),
                [one] => write!(f, "header {name}: {one:?} does not match {matcher}"),
                many => write!(f, "header {name}: {many:?} do not match {matcher}"),
            },
            Mismatch::Query {
                name,
                value,
                matcher,
            } => match value {
                None => write!(f, "query parameter {name} is absent, wanted {matcher}"),
                Some(v) => write!(f, "query parameter {name}={v:?} does not match {matcher}"),
            },
        }
    }
}

/// One step of the explanation.
///
/// ```
/// # use xdsc_core::{compile::Compiled, model::*, oracle::*};
/// # let mut vh = VirtualHost::new("site", ["http"], ["example.com", "*.example.com"]);
/// # vh.routes.push(Route::forward_prefix("api", "/api", "api"));
/// # let model = Model::from_objects([Object::Listener(Listener::new("http", 80)), Object::VirtualHost(vh), Object::Cluster(Cluster::new("api"))]);
/// # let snapshot = Compiled::new(&model).snapshot().clone();
/// let out = evaluate(&snapshot, &Request::new("http", "example.com", "/web")).unwrap();
/// assert_eq!(out.explanation.last(), Some(&Step::NoRoute));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The filter chain that took the connection.
    FilterChain {
        /// Its index in the listener's `filter_chains` (`None` for the default chain).
        index: Option<usize>,
        /// Its name (may be empty).
        name: String,
        /// Why it was chosen.
        why: ChainMatch,
    },
    /// No filter chain takes the connection.
    NoFilterChain {
        /// The server name seen by the listener (empty without SNI or TLS inspector).
        server_name: String,
    },
    /// The chain terminates TLS and the client speaks plain text, or the chain speaks HTTP in
    /// plain text and the client speaks TLS: the connection fails.
    TlsMismatch {
        /// Whether the client speaks TLS (the request has an SNI, possibly empty).
        client_tls: bool,
    },
    /// The route configuration used.
    RouteConfiguration {
        /// Its name.
        name: String,
    },
    /// The host the virtual host is chosen by: the `Host` header after port stripping,
    /// lowercased.
    Host {
        /// The host.
        host: String,
    },
    /// The virtual host chosen.
    VirtualHost {
        /// Its name.
        name: String,
        /// The domain that matched.
        domain: String,
        /// How it matched.
        how: DomainMatch,
    },
    /// No virtual host takes the host.
    NoVirtualHost,
    /// The `Host` header is not a valid authority: the connection manager answers 400.
    InvalidHost,
    /// The path does not start with `/`: not an origin-form request-target, which Envoy's
    /// HTTP/1.1 codec answers with 400 before routing (found by the differential test).
    PathNotRelative,
    /// The virtual host requires TLS and the request is not `https` (by `x-forwarded-proto`).
    TlsRequired,
    /// A route that did not match, and why.
    Skipped {
        /// The route's name (`#index` when it has none).
        route: String,
        /// The first criterion that failed.
        why: Mismatch,
    },
    /// The route that matched.
    Matched {
        /// The route's name (`#index` when it has none).
        route: String,
    },
    /// No route of the virtual host matches.
    NoRoute,
    /// The route forwards to a cluster that is not in the snapshot: when Envoy picks it, it
    /// answers with the route's `cluster_not_found_response_code` (503 by default).
    MissingCluster {
        /// The cluster's name.
        cluster: String,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::FilterChain { index, name, why } => {
                match index {
                    Some(i) => write!(f, "filter chain #{i}")?,
                    None => f.write_str("default filter chain")?,
                }
                if !name.is_empty() {
                    write!(f, " {name:?}")?;
                }
                match why {
                    ChainMatch::ServerName(s) => write!(f, ": server name {s:?}"),
                    ChainMatch::Wildcard(w) => write!(f, ": wildcard server name {w:?}"),
                    ChainMatch::AnyServerName => f.write_str(": no server names required"),
                    ChainMatch::Default => f.write_str(": no other chain matches"),
                }
            }
            Step::NoFilterChain { server_name } => {
                write!(f, "no filter chain for server name {server_name:?}")
            }
            Step::TlsMismatch { client_tls: true } => {
                f.write_str("a TLS client on a plain-text HTTP chain")
            }
            Step::TlsMismatch { client_tls: false } => {
                f.write_str("a plain-text client on a chain that terminates TLS")
            }
            Step::RouteConfiguration { name } => write!(f, "route configuration {name:?}"),
            Step::Host { host } => write!(f, "host {host:?}"),
            Step::VirtualHost { name, domain, how } => {
                let how = match how {
                    DomainMatch::Exact => "exact domain",
                    DomainMatch::Suffix => "suffix wildcard",
                    DomainMatch::Prefix => "prefix wildcard",
                    DomainMatch::Any => "catch-all domain",
                };
                write!(f, "virtual host {name:?}: {how} {domain:?}")
            }
            Step::NoVirtualHost => f.write_str("no virtual host for this host"),
            Step::InvalidHost => f.write_str("the host is not a valid authority"),
            Step::PathNotRelative => f.write_str("the path does not start with /"),
            Step::TlsRequired => f.write_str("the virtual host requires TLS"),
            Step::Skipped { route, why } => write!(f, "route {route:?} skipped: {why}"),
            Step::Matched { route } => write!(f, "route {route:?} matches"),
            Step::NoRoute => f.write_str("no route matches"),
            Step::MissingCluster { cluster } => {
                write!(f, "cluster {cluster:?} is not in the snapshot")
            }
        }
    }
}

/// The answer: where the request goes, and why.
///
/// ```
/// # use xdsc_core::{compile::Compiled, model::*, oracle::*};
/// # let mut vh = VirtualHost::new("site", ["http"], ["example.com", "*.example.com"]);
/// # vh.routes.push(Route::forward_prefix("api", "/api", "api"));
/// # let model = Model::from_objects([Object::Listener(Listener::new("http", 80)), Object::VirtualHost(vh), Object::Cluster(Cluster::new("api"))]);
/// # let snapshot = Compiled::new(&model).snapshot().clone();
/// let out = evaluate(&snapshot, &Request::new("http", "Example.com:80", "/api")).unwrap();
/// assert_eq!((out.virtual_host.as_deref(), out.route.as_deref()), (Some("site"), Some("api")));
/// assert_eq!(out.to_string(), r#"filter chain #0: no server names required
/// route configuration "http"
/// host "example.com"
/// virtual host "site": exact domain "example.com"
/// route "api" matches
/// => forward to cluster "api" with path "/api" and host "Example.com""#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The virtual host that matched, if any.
    pub virtual_host: Option<String>,
    /// The route that matched (`#index` when it has no name), if any.
    pub route: Option<String>,
    /// What Envoy does.
    pub action: Action,
    /// How the answer was reached, in order.
    pub explanation: Vec<Step>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.explanation {
            writeln!(f, "{s}")?;
        }
        write!(f, "=> {}", self.action)
    }
}

/// Why a request could not be evaluated.
///
/// ```
/// # use xdsc_core::{compile::Compiled, model::*, oracle::*};
/// # let mut vh = VirtualHost::new("site", ["http"], ["example.com", "*.example.com"]);
/// # vh.routes.push(Route::forward_prefix("api", "/api", "api"));
/// # let model = Model::from_objects([Object::Listener(Listener::new("http", 80)), Object::VirtualHost(vh), Object::Cluster(Cluster::new("api"))]);
/// # let snapshot = Compiled::new(&model).snapshot().clone();
/// let err = evaluate(&snapshot, &Request::new("https", "example.com", "/")).unwrap_err();
/// assert_eq!(err, OracleError::NoListener("https".into()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OracleError {
    /// The snapshot has no listener of that name.
    #[error("no listener {0:?} in the snapshot")]
    NoListener(String),
    /// A resource (or a message inside one) does not decode.
    #[error("{what} does not decode: {reason}")]
    Decode {
        /// What was decoded.
        what: String,
        /// The decoder's message.
        reason: String,
    },
    /// The listener's routes come from a route configuration missing from the snapshot (Envoy
    /// would keep the listener warming).
    #[error("route configuration {0:?} is not in the snapshot")]
    NoRouteConfiguration(String),
    /// The configuration uses something the oracle does not evaluate.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Envoy would reject this configuration.
    #[error("Envoy would reject the configuration: {0}")]
    Rejected(String),
    /// The request itself is malformed (Envoy's codec would refuse it).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

type Result<T, E = OracleError> = std::result::Result<T, E>;

fn unsupported<T>(what: impl Into<String>) -> Result<T> {
    Err(OracleError::Unsupported(what.into()))
}

fn rejected<T>(what: impl Into<String>) -> Result<T> {
    Err(OracleError::Rejected(what.into()))
}

fn decode<M: Message + Default>(bytes: &[u8], what: impl FnOnce() -> String) -> Result<M> {
    M::decode(bytes).map_err(|e| OracleError::Decode {
        what: what(),
        reason: e.to_string(),
    })
}

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

const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";

fn listener_port(l: &listener::Listener) -> Option<u32> {
    match l.address.as_ref()?.address.as_ref()? {
        core::address::Address::SocketAddress(s) => match s.port_specifier.as_ref()? {
            core::socket_address::PortSpecifier::PortValue(p) => Some(*p),
            core::socket_address::PortSpecifier::NamedPort(_) => None,
        },
        _ => None,
    }
}

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
                self.missing_clusters(&clusters);
                return Ok((Action::TcpProxy { clusters }, None, None));
            }
        }
        unsupported("a filter chain without http_connection_manager or tcp_proxy")
    }

    fn missing_clusters(&mut self, clusters: &[(String, u32)]) {
        for (c, _) in clusters {
            if !self.snapshot.resources(ResourceType::Cluster).contains(c) {
                self.steps.push(Step::MissingCluster { cluster: c.clone() });
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
                self.missing_clusters(&clusters);
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

fn weighted(w: &route::WeightedCluster) -> Result<Vec<(String, u32)>> {
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

/// What the route matching sees of the request, after the connection manager's changes.
struct RequestContext<'a> {
    request: &'a Request,
    /// The `Host` header after port and dot stripping (case preserved).
    host: String,
    scheme: String,
    tls: bool,
    ignore_path_parameters: bool,
}

impl RequestContext<'_> {
    /// The values of a header, pseudo-headers included, as separate entries.
    fn header_values(&self, name: &str) -> Vec<String> {
        let name = name.to_ascii_lowercase();
        match name.as_str() {
            ":method" => vec![self.request.method.clone()],
            ":path" => vec![self.request.path.clone()],
            ":authority" | "host" => vec![self.host.clone()],
            ":scheme" => vec![self.scheme.clone()],
            "x-forwarded-proto" => vec![self.forwarded_proto()],
            _ => self
                .request
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(&name))
                .map(|(_, v)| v.clone())
                .collect(),
        }
    }

    /// `x-forwarded-proto` as the connection manager leaves it: the client's, or the
    /// connection's scheme when absent.
    fn forwarded_proto(&self) -> String {
        self.request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("x-forwarded-proto"))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| if self.tls { "https" } else { "http" }.to_owned())
    }
}

/// `nghttp2_check_authority`, which Envoy applies to the Host header: RFC 3986 authority
/// characters only.
fn valid_authority(host: &str) -> bool {
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!$&'()*+,-.:;=@[]_~%".contains(&b))
}

fn strip_trailing_dot(host: &str) -> String {
    if let Some(h) = host.strip_suffix('.') {
        return h.to_owned();
    }
    if let Some(i) = host.rfind('.')
        && host[i + 1..].starts_with(':')
    {
        return format!("{}{}", &host[..i], &host[i + 1..]);
    }
    host.to_owned()
}

/// Envoy's `HeaderUtility::stripPortFromHost`: removes `:port` (any port, or only `only`).
fn strip_port(host: &str, only: Option<u32>, any: bool) -> &str {
    let Some(colon) = host.rfind(':') else {
        return host;
    };
    if host.rfind(']').is_some_and(|b| b > colon) {
        return host;
    }
    let Some(port) = simple_atoi(&host[colon + 1..]) else {
        return host;
    };
    if !any && only != Some(port) {
        return host;
    }
    &host[..colon]
}

/// `absl::SimpleAtoi` into a `u32`: optional surrounding ASCII whitespace and a `+`.
fn simple_atoi(s: &str) -> Option<u32> {
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

type Chosen<'l> = Option<(&'l listener::FilterChain, Option<usize>, ChainMatch)>;

/// Envoy's `FilterChainManagerImpl::findFilterChain`, for the criteria xdsc uses: destination
/// port, server names and transport protocol.
fn choose_chain<'l>(
    l: &'l listener::Listener,
    port: Option<u32>,
    server_name: &str,
    transport: &str,
) -> Result<Chosen<'l>> {
    for c in &l.filter_chains {
        if let Some(m) = fcm(c) {
            check_chain_match(m)?;
        }
    }
    let dport =
        |c: &listener::FilterChain| fcm(c).and_then(|m| m.destination_port.map(|p| p.value));
    let exact_port: Vec<(usize, &listener::FilterChain)> = l
        .filter_chains
        .iter()
        .enumerate()
        .filter(|(_, c)| port.is_some() && dport(c) == port)
        .collect();
    let candidates = if exact_port.is_empty() {
        l.filter_chains
            .iter()
            .enumerate()
            .filter(|(_, c)| dport(c).is_none_or(|p| p == 0))
            .collect()
    } else {
        exact_port
    };
    let names = |c: &listener::FilterChain| -> Vec<String> {
        fcm(c).map(|m| m.server_names.clone()).unwrap_or_default()
    };
    let with_name = |n: &str| -> Vec<(usize, &'l listener::FilterChain)> {
        candidates
            .iter()
            .filter(|(_, c)| names(c).iter().any(|s| s == n))
            .copied()
            .collect()
    };
    let mut bucket = Vec::new();
    let mut why = ChainMatch::AnyServerName;
    if !server_name.is_empty() {
        bucket = with_name(server_name);
        why = ChainMatch::ServerName(server_name.to_owned());
        if bucket.is_empty() {
            let mut pos = server_name
                .get(1..)
                .and_then(|s| s.find('.'))
                .map(|p| p + 1);
            while let Some(p) = pos {
                if p + 1 >= server_name.len() {
                    break;
                }
                let wildcard = format!("*{}", &server_name[p..]);
                bucket = with_name(&wildcard);
                if !bucket.is_empty() {
                    why = ChainMatch::Wildcard(wildcard);
                    break;
                }
                pos = server_name[p + 1..].find('.').map(|q| q + p + 1);
            }
        }
    }
    if bucket.is_empty() {
        why = ChainMatch::AnyServerName;
        bucket = candidates
            .iter()
            .filter(|(_, c)| names(c).is_empty())
            .copied()
            .collect();
    }
    let proto = |c: &listener::FilterChain| {
        fcm(c)
            .map(|m| m.transport_protocol.clone())
            .unwrap_or_default()
    };
    let mut found: Vec<_> = bucket
        .iter()
        .filter(|(_, c)| proto(c) == transport)
        .collect();
    if found.is_empty() {
        found = bucket.iter().filter(|(_, c)| proto(c).is_empty()).collect();
    }
    match found.as_slice() {
        [] => Ok(l
            .default_filter_chain
            .as_ref()
            .map(|c| (c, None, ChainMatch::Default))),
        [(i, c)] => Ok(Some((c, Some(*i), why))),
        _ => rejected("two filter chains with the same matching rules"),
    }
}

fn fcm(c: &listener::FilterChain) -> Option<&listener::FilterChainMatch> {
    c.filter_chain_match.as_ref()
}

/// Refuses the filter chain match criteria the oracle does not evaluate.
fn check_chain_match(m: &listener::FilterChainMatch) -> Result<()> {
    if !m.prefix_ranges.is_empty()
        || !m.address_suffix.is_empty()
        || m.suffix_len.is_some()
        || !m.direct_source_prefix_ranges.is_empty()
        || m.source_type != 0
        || !m.source_prefix_ranges.is_empty()
        || !m.source_ports.is_empty()
        || !m.application_protocols.is_empty()
    {
        return unsupported("filter chain matches on addresses, source or application protocols");
    }
    Ok(())
}

/// Envoy's `RouteMatcher::findVirtualHost`. `host` is lowercase.
fn find_virtual_host<'r>(
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

type ByLength<'r> = BTreeMap<usize, BTreeMap<String, &'r route::VirtualHost>>;

/// Envoy's `findWildcardVirtualHost`: the longest wildcard, shorter than the host, whose fixed
/// part equals `part(length)` of the host.
fn longest<'r, 'h>(
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
fn path_only(path: &str) -> &str {
    path.find(['?', '#']).map_or(path, |i| &path[..i])
}

fn starts_with(s: &str, prefix: &str, case_sensitive: bool) -> bool {
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
fn route_matches(r: &route::Route, ctx: &RequestContext<'_>) -> Result<Option<Mismatch>> {
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
enum Str {
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
enum HeaderTest {
    Str(Str),
    Range(i64, i64),
    Present(bool),
}

/// Envoy's `HeaderUtility::HeaderData::matchesHeaders`.
fn header_mismatch(h: &route::HeaderMatcher, ctx: &RequestContext<'_>) -> Result<Option<Mismatch>> {
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
fn query_params(path: &str) -> BTreeMap<&str, &str> {
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
fn query_mismatch(
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

/// Compiles an RE2 expression Envoy accepts (syntax and program size, checked as the compiler
/// checks them) for the `regex` crate, with RE2's ASCII meaning of `\d`, `\s`, `\w` and `\b`.
/// `full` anchors it at both ends, as RE2's `FullMatch`.
fn re2(re: &str, full: bool) -> Result<regex::Regex> {
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

fn full_regex(re: &str) -> Result<regex::Regex> {
    re2(re, true)
}

/// Rewrites RE2's Perl classes and word boundaries, which are ASCII in RE2 and Unicode in the
/// `regex` crate, into explicit ASCII forms (nested classes work inside brackets too).
fn ascii_perl_classes(re: &str) -> Result<String> {
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
fn global_replace(re: &str, value: &str, substitution: &str) -> Result<String> {
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
fn expand(out: &mut String, substitution: &str, caps: &regex::Captures<'_>) {
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

/// The matched prefix a `prefix_rewrite` replaces, and the path Envoy sends: for a prefix or
/// path-separated prefix the configured prefix, for an exact path the path, for a regex the
/// whole path without query string.
fn rewrite_path(
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
fn redirect(
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
fn request_host_for_redirect<'h>(
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
