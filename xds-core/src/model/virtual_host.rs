//! Virtual hosts and their routes: domains, matches (path, headers, query parameters,
//! methods) and actions (forward with retries, rewrites, mirrors and hash policies; redirect;
//! direct response), and header changes.
//!
//! Not here: route precedence and validation (the compiler's, see `compile`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::extension::TypedConfigs;
use super::shared::{Backend, Duration, Source, is_default, one};

/// Domains and their routes, attached to one or more HTTP(S) listeners.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VirtualHost {
    /// The virtual host's name.
    pub name: String,
    /// The route configurations this virtual host is part of, by name: a listener's name, or
    /// the `route_config` that listeners name (a listener serves the route configuration
    /// named after it unless it names another).
    pub listeners: Vec<String>,
    /// The host names matched (case-insensitively, port ignored): exact (`example.com`),
    /// suffix wildcard (`*.example.com`), prefix wildcard (`example.*`) or `*`.
    pub domains: Vec<String>,
    /// The routes. By default they are ordered by precedence, not by their order here (see
    /// [`crate::compile`]); `route_order: as_written` keeps this order.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// How the routes are ordered in Envoy, which takes the first that matches (default
    /// `precedence`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub route_order: RouteOrder,
    /// Per-filter configurations for the routes of this virtual host, by HTTP filter name
    /// (Envoy's `typed_per_filter_config`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub typed_per_filter_config: TypedConfigs,
    /// Where the object came from (set by sources).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance: Vec<Source>,
}

impl VirtualHost {
    /// A virtual host with no routes.
    pub fn new(
        name: impl Into<String>,
        listeners: impl IntoIterator<Item = impl Into<String>>,
        domains: impl IntoIterator<Item = impl Into<String>>,
    ) -> VirtualHost {
        VirtualHost {
            name: name.into(),
            listeners: listeners.into_iter().map(Into::into).collect(),
            domains: domains.into_iter().map(Into::into).collect(),
            routes: Vec::new(),
            route_order: RouteOrder::Precedence,
            typed_per_filter_config: TypedConfigs::new(),
            provenance: Vec::new(),
        }
    }
}

/// How a virtual host's routes are ordered; Envoy takes the first route that matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteOrder {
    /// The documented precedence (exact paths, regular expressions, longer prefixes, then
    /// more specific header, query and method matches; see [`crate::compile`]), whatever the
    /// order the routes are written in.
    #[default]
    Precedence,
    /// The order the routes are written in, as a hand-written Envoy route configuration (or a
    /// go-control-plane generator) relies on. A route whose match equals an earlier one's
    /// still never matches and is reported.
    AsWritten,
}

/// A route: a match and exactly one action (`forward`, `redirect` or `direct_response`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The route's name, unique within its virtual host.
    pub name: String,
    /// What requests this route takes (default: every path).
    #[serde(default, rename = "match")]
    pub matches: RouteMatch,
    /// Forward to one or more weighted clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<Forward>,
    /// Answer with a redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    /// Answer directly with a status and body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<DirectResponse>,
    /// Headers to add to or remove from the request.
    #[serde(default, skip_serializing_if = "is_default")]
    pub request_headers: HeaderModifier,
    /// Headers to add to or remove from the response.
    #[serde(default, skip_serializing_if = "is_default")]
    pub response_headers: HeaderModifier,
    /// Per-filter configurations for this route, by HTTP filter name (Envoy's
    /// `typed_per_filter_config`); one that is unknown or does not decode leaves the route out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub typed_per_filter_config: TypedConfigs,
}

impl Route {
    /// A route forwarding every path under `prefix` to one cluster.
    ///
    /// ```
    /// let r = xdsc_core::model::Route::forward_prefix("api", "/api", "api-svc");
    /// assert_eq!(r.forward.unwrap().backends[0].cluster, "api-svc");
    /// ```
    pub fn forward_prefix(
        name: impl Into<String>,
        prefix: impl Into<String>,
        cluster: impl Into<String>,
    ) -> Route {
        Route {
            name: name.into(),
            matches: RouteMatch {
                path: PathMatch::Prefix(prefix.into()),
                ..RouteMatch::default()
            },
            forward: Some(Forward::to(cluster)),
            redirect: None,
            direct_response: None,
            request_headers: HeaderModifier::default(),
            response_headers: HeaderModifier::default(),
            typed_per_filter_config: TypedConfigs::new(),
        }
    }
}

/// What requests a route takes; every part must match.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// The path match (default: prefix `/`).
    #[serde(default)]
    pub path: PathMatch,
    /// Header matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
    /// Query parameter matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<QueryMatch>,
    /// HTTP methods (any of them); empty means any method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
}

impl RouteMatch {
    /// The match's place in [`RouteOrder::Precedence`]: smaller sorts first (exact paths,
    /// regular expressions, then longer prefixes; then a method match, more header matches,
    /// more query matches). Routes that tie keep their names' order.
    ///
    /// ```
    /// use xdsc_core::model::{PathMatch, RouteMatch};
    /// let exact = RouteMatch { path: PathMatch::Exact("/a".into()), ..RouteMatch::default() };
    /// let prefix = RouteMatch { path: PathMatch::Prefix("/abc".into()), ..RouteMatch::default() };
    /// assert!(exact.precedence() < prefix.precedence());
    /// ```
    pub fn precedence(&self) -> impl Ord + use<> {
        let (class, len) = match &self.path {
            PathMatch::Exact(p) => (0u8, p.len()),
            PathMatch::Regex(p) => (1, p.len()),
            PathMatch::PathPrefix(p) => (2, p.trim_end_matches('/').len().max(1)),
            PathMatch::Prefix(p) => (2, p.len()),
        };
        let separated = !matches!(self.path, PathMatch::PathPrefix(_));
        (
            class,
            std::cmp::Reverse(len),
            separated,
            // Gateway API precedence: a method match counts before header and query matches.
            self.methods.is_empty(),
            std::cmp::Reverse(self.headers.len()),
            std::cmp::Reverse(self.query.len()),
        )
    }
}

/// How a route matches the request path (the query string is never part of it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    /// The path starts with this string (`/api` matches `/api`, `/api/x` and `/apis`).
    Prefix(String),
    /// The path's segments start with these segments (`/api` matches `/api` and `/api/x`,
    /// not `/apis`); a trailing `/` is ignored. Kubernetes' `pathType: Prefix`.
    PathPrefix(String),
    /// The path is exactly this.
    Exact(String),
    /// The whole path matches this RE2 regular expression.
    Regex(String),
}

impl Default for PathMatch {
    fn default() -> Self {
        PathMatch::Prefix("/".to_owned())
    }
}

/// How a header or query parameter value is matched.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StringMatch {
    /// Exactly this value.
    Exact(String),
    /// Starts with this value.
    Prefix(String),
    /// The whole value matches this RE2 regular expression.
    Regex(String),
    /// Present, with any value.
    Present,
}

/// A header match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    /// The header name (case-insensitive).
    pub name: String,
    /// How the value is matched.
    pub value: StringMatch,
    /// Match when the header does not match instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invert: bool,
}

/// A query parameter match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryMatch {
    /// The parameter name (case-sensitive).
    pub name: String,
    /// How the value is matched.
    pub value: StringMatch,
}

/// Forward requests to clusters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// The clusters, weighted. May be empty when `error_weight` is not 0 (every request
    /// then answers 500).
    pub backends: Vec<Backend>,
    /// A share of the requests, weighed against the backends' weights, answered 500
    /// (Internal Server Error) instead of forwarded (default 0): what a source gives the
    /// backends it could not resolve, such as a Gateway API `backendRef` to a missing
    /// Service, so that they keep their share rather than give it to the others.
    ///
    /// ```
    /// use xdsc_core::model::{Backend, Forward};
    /// // Half the requests reach "web", half answer 500.
    /// let f = Forward { backends: vec![Backend::new("web", 1)], error_weight: 1, ..Forward::to("") };
    /// assert_eq!(f.backends.len() + f.error_weight as usize, 2);
    /// ```
    #[serde(default, skip_serializing_if = "is_default")]
    pub error_weight: u32,
    /// The whole request's timeout (Envoy's default 15s when absent; `0s` disables it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Path and host rewrites.
    #[serde(default, skip_serializing_if = "is_default")]
    pub rewrite: Rewrite,
    /// Clusters that receive a copy of the requests (responses are discarded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirror: Vec<Mirror>,
    /// How to hash requests for `ring_hash` and `maglev` clusters; the first policy that
    /// produces a hash wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hash_policy: Vec<HashPolicy>,
}

impl Forward {
    /// Forward everything to one cluster.
    pub fn to(cluster: impl Into<String>) -> Forward {
        Forward {
            backends: vec![Backend {
                cluster: cluster.into(),
                weight: 1,
            }],
            error_weight: 0,
            timeout: None,
            retry: None,
            rewrite: Rewrite::default(),
            mirror: Vec::new(),
            hash_policy: Vec::new(),
        }
    }
}

/// When and how often to retry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Envoy retry conditions, e.g. `5xx`, `gateway-error`, `reset`, `connect-failure`,
    /// `retriable-4xx`, `refused-stream`, `retriable-status-codes`.
    #[serde(default = "default_retry_on")]
    pub on: Vec<String>,
    /// How many retries at most (default 1).
    #[serde(default = "one")]
    pub attempts: u32,
    /// The timeout of each try.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<Duration>,
}

fn default_retry_on() -> Vec<String> {
    vec!["connect-failure".to_owned(), "refused-stream".to_owned()]
}

/// Path and host rewrites applied when forwarding.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// Replace the matched prefix (prefix and path-prefix matches) or the whole path (exact
    /// matches) with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Replace every match of a regular expression in the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<RegexRewrite>,
    /// Replace the Host header with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// A regular-expression path rewrite.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegexRewrite {
    /// An RE2 regular expression.
    pub pattern: String,
    /// The replacement; `\1` refers to a capture group.
    pub substitution: String,
}

/// Send a copy of requests to another cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// The cluster receiving the copies.
    pub cluster: String,
    /// The percentage of requests mirrored (0-100, default 100).
    #[serde(default = "hundred")]
    pub percent: u32,
}

fn hundred() -> u32 {
    100
}

/// A request hash source for consistent hashing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HashPolicy {
    /// Hash this request header's value.
    Header(String),
    /// Hash this cookie's value.
    Cookie(String),
    /// Hash the client's IP address.
    SourceIp,
}

/// Answer with a redirect. Unset parts keep the request's.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    /// `http` or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// The host to redirect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The port to redirect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Replace the whole path with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Replace the matched prefix with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The status code: 301 (default), 302, 303, 307 or 308.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

/// Answer directly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectResponse {
    /// The HTTP status (200-599).
    pub status: u16,
    /// The body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// Headers to add and remove. Pseudo-headers (`:path`) and `host` cannot be added or removed,
/// on requests or responses: Envoy refuses them.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderModifier {
    /// Headers to set (replacing any value) or append.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HeaderValue>,
    /// Header names to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A header to add.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderValue {
    /// The header name.
    pub name: String,
    /// The value.
    pub value: String,
    /// Append to existing values instead of replacing them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub append: bool,
}
