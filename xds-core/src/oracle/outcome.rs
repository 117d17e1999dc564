//! What the oracle answers: the [`Outcome`] of a request (the [`Action`], the virtual host
//! and route, and the [`Step`]s that explain them, with the [`ChainMatch`], [`DomainMatch`]
//! and [`Mismatch`] they name), and the [`OracleError`] when it cannot answer.
//!
//! Not here: working any of it out (see the parent module).

use std::fmt;

use prost::Message;

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

pub(super) fn write_clusters(
    f: &mut fmt::Formatter<'_>,
    clusters: &[(String, u32)],
) -> fmt::Result {
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
    /// The route forwards to a cluster that is not in the snapshot: when Envoy picks it (its
    /// share of [`Action::Forward`]'s weights), it answers `status`, the route's
    /// `cluster_not_found_response_code` (503 by default; 500 for the compiler's
    /// [`crate::compile::ERROR_CLUSTER`]).
    MissingCluster {
        /// The cluster's name.
        cluster: String,
        /// What Envoy answers for it; `None` for a TCP proxy, which closes the connection.
        status: Option<u16>,
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
            Step::MissingCluster { cluster, status } => {
                write!(f, "cluster {cluster:?} is not in the snapshot")?;
                match status {
                    Some(s) => write!(f, ": its share answers {s}"),
                    None => f.write_str(": its share is closed"),
                }
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

pub(super) type Result<T, E = OracleError> = std::result::Result<T, E>;

pub(super) fn unsupported<T>(what: impl Into<String>) -> Result<T> {
    Err(OracleError::Unsupported(what.into()))
}

pub(super) fn rejected<T>(what: impl Into<String>) -> Result<T> {
    Err(OracleError::Rejected(what.into()))
}

pub(super) fn decode<M: Message + Default>(
    bytes: &[u8],
    what: impl FnOnce() -> String,
) -> Result<M> {
    M::decode(bytes).map_err(|e| OracleError::Decode {
        what: what(),
        reason: e.to_string(),
    })
}
