//! The normalized model: listeners, virtual hosts, clusters, endpoints and secrets.
//!
//! The model is what every source (files, Kubernetes) produces and what the compiler consumes.
//! Its types are plain data with serde and JSON Schema (schemars) support; they mirror Envoy's
//! vocabulary (listener, virtual host, route, cluster) while hiding Envoy's wire details. A
//! [`Model`] holds objects in a persistent ordered map, so applying a batch of [`Change`]s
//! returns a new model that shares every untouched object with the old one.
//!
//! This module only holds data. It deliberately does not validate semantics (a path that does
//! not start with `/`, a dangling cluster name): that is the compiler's job, which reports
//! problems as diagnostics and leaves the offending object out (see [`crate::compile`]).

use std::fmt;
use std::sync::Arc;

use imbl::OrdMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kinds of model objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A [`Listener`]: an address and port Envoy accepts connections on.
    Listener,
    /// A [`VirtualHost`]: domains and their routes, attached to listeners.
    VirtualHost,
    /// A [`Cluster`]: an upstream service.
    Cluster,
    /// The [`Endpoints`] of a cluster.
    Endpoints,
    /// A [`Secret`]: a TLS certificate or a validation context.
    Secret,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] = [
        Kind::Listener,
        Kind::VirtualHost,
        Kind::Cluster,
        Kind::Endpoints,
        Kind::Secret,
    ];

    /// The kind's name as written in documents (`kind: VirtualHost`).
    ///
    /// ```
    /// assert_eq!(xdsc_core::model::Kind::VirtualHost.as_str(), "VirtualHost");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Listener => "Listener",
            Kind::VirtualHost => "VirtualHost",
            Kind::Cluster => "Cluster",
            Kind::Endpoints => "Endpoints",
            Kind::Secret => "Secret",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity of a model object: its kind and name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The object's kind.
    pub kind: Kind,
    /// The object's name, unique within its kind.
    pub name: Arc<str>,
}

impl ObjectKey {
    /// A key from a kind and a name.
    ///
    /// ```
    /// use xdsc_core::model::{Kind, ObjectKey};
    /// assert_eq!(ObjectKey::new(Kind::Cluster, "web").to_string(), "Cluster/web");
    /// ```
    pub fn new(kind: Kind, name: impl Into<Arc<str>>) -> ObjectKey {
        ObjectKey {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Where a model object came from: the object a user wrote, so that a validation error, a
/// NACK or a routing question can be traced back to it.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The kind of the source object, e.g. `Ingress`, `HTTPRoute` or a model kind.
    pub kind: String,
    /// The namespace of the source object, for namespaced Kubernetes objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The name of the source object.
    pub name: String,
    /// Where the source object was read: a file path (with line), or a cluster name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.kind)?;
        if let Some(ns) = &self.namespace {
            write!(f, "{ns}/")?;
        }
        f.write_str(&self.name)?;
        if let Some(origin) = &self.origin {
            write!(f, " ({origin})")?;
        }
        Ok(())
    }
}

/// A duration written as a number with a unit: `250ms`, `5s`, `1.5s`, `2m`, `1h`. Millisecond
/// precision.
///
/// ```
/// use xdsc_core::model::Duration;
/// let d: Duration = "1.5s".parse().unwrap();
/// assert_eq!(d.as_millis(), 1500);
/// assert_eq!(d.to_string(), "1500ms");
/// assert!("5".parse::<Duration>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(u64);

impl Duration {
    /// A duration of that many milliseconds.
    pub const fn from_millis(ms: u64) -> Duration {
        Duration(ms)
    }

    /// A duration of that many seconds.
    pub const fn from_secs(s: u64) -> Duration {
        Duration(s.saturating_mul(1000))
    }

    /// The duration in milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}s", self.0 / 1000)
        } else {
            write!(f, "{}ms", self.0)
        }
    }
}

/// The error of parsing a [`Duration`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: expected a number with a unit (ms, s, m, h), such as 250ms or 5s")]
pub struct ParseDurationError(String);

impl std::str::FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseDurationError(s.to_owned());
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let (num, unit) = t.split_at(split);
        let scale: u64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(err()),
        };
        if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
            return Err(err());
        }
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if frac.contains('.') {
            return Err(err());
        }
        let int: u64 = int.parse().map_err(|_| err())?;
        let mut ms = int.checked_mul(scale).ok_or_else(err)?;
        // Fractions: at most millisecond precision.
        let mut unit_div = scale;
        for digit in frac.bytes() {
            unit_div /= 10;
            let d = u64::from(digit - b'0');
            if unit_div == 0 {
                if d != 0 {
                    return Err(err());
                }
                continue;
            }
            ms = ms.checked_add(d * unit_div).ok_or_else(err)?;
        }
        // Envoy durations are bounded by protobuf's Duration (~10,000 years); keep far below.
        if ms > 315_576_000_000_000 {
            return Err(err());
        }
        Ok(Duration(ms))
    }
}

impl Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$",
            "description": "A duration with a unit: 250ms, 5s, 1.5s, 2m, 1h."
        })
    }
}

/// One model object of any kind; documents carry `kind: <Kind>` beside the object's fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind")]
pub enum Object {
    /// A listener.
    Listener(Listener),
    /// A virtual host.
    VirtualHost(VirtualHost),
    /// A cluster.
    Cluster(Cluster),
    /// The endpoints of a cluster.
    Endpoints(Endpoints),
    /// A TLS secret.
    Secret(Secret),
}

impl Object {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Listener(_) => Kind::Listener,
            Object::VirtualHost(_) => Kind::VirtualHost,
            Object::Cluster(_) => Kind::Cluster,
            Object::Endpoints(_) => Kind::Endpoints,
            Object::Secret(_) => Kind::Secret,
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        match self {
            Object::Listener(o) => &o.name,
            Object::VirtualHost(o) => &o.name,
            Object::Cluster(o) => &o.name,
            Object::Endpoints(o) => &o.name,
            Object::Secret(o) => &o.name,
        }
    }

    /// The object's key (kind and name).
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(self.kind(), self.name())
    }

    /// Where the object came from, as its source set it. Empty for objects written directly
    /// in the model.
    pub fn provenance(&self) -> &[Source] {
        match self {
            Object::Listener(o) => &o.provenance,
            Object::VirtualHost(o) => &o.provenance,
            Object::Cluster(o) => &o.provenance,
            Object::Endpoints(o) => &o.provenance,
            Object::Secret(o) => &o.provenance,
        }
    }
}

macro_rules! object_from {
    ($($t:ident),*) => {$(
        impl From<$t> for Object {
            fn from(o: $t) -> Object {
                Object::$t(o)
            }
        }
    )*};
}
object_from!(Listener, VirtualHost, Cluster, Endpoints, Secret);

/// The JSON Schema of one model document (an [`Object`] with its `kind`), for editors and CI
/// pipelines. The same schema is committed as `xds-core/schema/object.schema.json`.
///
/// ```
/// let schema = xdsc_core::model::object_schema();
/// assert!(schema.to_string().contains("VirtualHost"));
/// ```
pub fn object_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Object)).unwrap_or_default()
}

/// A change to the model: an object created or replaced, or an object deleted.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Create or replace the object with this kind and name.
    Upsert(Arc<Object>),
    /// Delete the object with this key (a no-op if it does not exist).
    Delete(ObjectKey),
}

impl Change {
    /// The key of the object the change is about.
    pub fn key(&self) -> ObjectKey {
        match self {
            Change::Upsert(o) => o.key(),
            Change::Delete(k) => k.clone(),
        }
    }

    /// An upsert of an object.
    ///
    /// ```
    /// use xdsc_core::model::{Change, Cluster, Kind};
    /// let c = Change::upsert(Cluster::new("web"));
    /// assert_eq!(c.key().kind, Kind::Cluster);
    /// ```
    pub fn upsert(object: impl Into<Object>) -> Change {
        Change::Upsert(Arc::new(object.into()))
    }
}

/// Every model object, keyed by kind and name, in a persistent ordered map.
///
/// ```
/// use xdsc_core::model::{Change, Cluster, Kind, Model, ObjectKey};
/// let m = Model::default().apply([Change::upsert(Cluster::new("web"))]);
/// assert!(m.get(&ObjectKey::new(Kind::Cluster, "web")).is_some());
/// let m2 = m.apply([Change::Delete(ObjectKey::new(Kind::Cluster, "web"))]);
/// assert!(m2.is_empty());
/// assert_eq!(m.len(), 1); // the old version is untouched
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct Model {
    objects: OrdMap<ObjectKey, Arc<Object>>,
}

impl Model {
    /// A model holding these objects. Later objects with the same kind and name replace
    /// earlier ones.
    pub fn from_objects(objects: impl IntoIterator<Item = Object>) -> Model {
        Model::default().apply(objects.into_iter().map(|o| Change::Upsert(Arc::new(o))))
    }

    /// A new model with the changes applied in order; `self` is unchanged and shares all
    /// untouched objects with the result.
    pub fn apply(&self, changes: impl IntoIterator<Item = Change>) -> Model {
        let mut objects = self.objects.clone();
        for change in changes {
            match change {
                Change::Upsert(o) => {
                    objects.insert(o.key(), o);
                }
                Change::Delete(k) => {
                    objects.remove(&k);
                }
            }
        }
        Model { objects }
    }

    /// The object with this key.
    pub fn get(&self, key: &ObjectKey) -> Option<&Arc<Object>> {
        self.objects.get(key)
    }

    /// Every object, ordered by kind then name.
    pub fn objects(&self) -> impl DoubleEndedIterator<Item = &Arc<Object>> + '_ {
        self.objects.values()
    }

    /// The objects of one kind, ordered by name.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Arc<Object>> + '_ {
        let lo = ObjectKey::new(kind, "");
        self.objects
            .range(lo..)
            .take_while(move |(k, _)| k.kind == kind)
            .map(|(_, v)| v)
    }

    /// The number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the model holds no objects.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.objects.keys()).finish()
    }
}

fn default_address() -> String {
    "0.0.0.0".to_owned()
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// What a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListenerProtocol {
    /// Plain HTTP/1.1 and HTTP/2 (h2c); routes come from the attached virtual hosts.
    #[default]
    Http,
    /// HTTP over TLS, terminated by Envoy with the certificate chosen by SNI (see
    /// [`Listener::tls`]); routes come from the attached virtual hosts.
    Https,
    /// TLS passed through unterminated, routed to a cluster by SNI (see
    /// [`Listener::tcp_routes`]).
    TlsPassthrough,
    /// Plain TCP proxied to one route's backends (see [`Listener::tcp_routes`]).
    Tcp,
}

/// An address and port Envoy accepts connections on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// The listener's name, also the name of its Envoy listener and route configuration.
    pub name: String,
    /// The IP address to bind (default `0.0.0.0`).
    #[serde(default = "default_address")]
    pub address: String,
    /// The port to bind (1-65535).
    pub port: u16,
    /// What the listener speaks (default `http`).
    #[serde(default)]
    pub protocol: ListenerProtocol,
    /// For `https`: the certificates, each served to the SNI names it lists (an entry with no
    /// hosts is the default certificate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<ListenerTls>,
    /// For `tls_passthrough` (routed by SNI) and `tcp` (exactly one route, without SNI).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp_routes: Vec<TcpRoute>,
    /// Close connections idle for this long (HTTP: no active request; TCP: no bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    /// The most connections this listener holds open at once; further connections are closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u64>,
    /// Where to write access logs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_log: Vec<AccessLog>,
    /// Where the object came from (set by sources).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance: Vec<Source>,
}

impl Listener {
    /// An HTTP listener on `0.0.0.0:port`.
    ///
    /// ```
    /// let l = xdsc_core::model::Listener::new("http", 8080);
    /// assert_eq!(l.address, "0.0.0.0");
    /// ```
    pub fn new(name: impl Into<String>, port: u16) -> Listener {
        Listener {
            name: name.into(),
            address: default_address(),
            port,
            protocol: ListenerProtocol::Http,
            tls: Vec::new(),
            tcp_routes: Vec::new(),
            idle_timeout: None,
            max_connections: None,
            access_log: Vec::new(),
            provenance: Vec::new(),
        }
    }
}

/// A certificate served by an HTTPS listener.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// The SNI names this certificate is served for (exact or `*.` wildcard); empty means any
    /// name no other entry claims.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// The name of the [`Secret`] holding the certificate and key, delivered by SDS.
    pub secret: String,
}

/// A TCP route: connections (matched by SNI for TLS passthrough) go to weighted clusters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpRoute {
    /// The route's name, unique within the listener.
    pub name: String,
    /// The SNI names this route takes (TLS passthrough only; exact or `*.` wildcard).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sni: Vec<String>,
    /// Where the connections go.
    pub backends: Vec<Backend>,
}

/// An access log sink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    /// The file to append to, e.g. `/dev/stdout`.
    pub path: String,
    /// An Envoy format string; Envoy's default format when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// Domains and their routes, attached to one or more HTTP(S) listeners.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VirtualHost {
    /// The virtual host's name.
    pub name: String,
    /// The names of the listeners this virtual host is served on.
    pub listeners: Vec<String>,
    /// The host names matched (case-insensitively, port ignored): exact (`example.com`),
    /// suffix wildcard (`*.example.com`), prefix wildcard (`example.*`) or `*`.
    pub domains: Vec<String>,
    /// The routes. They are ordered by precedence, not by their order here (see
    /// [`crate::compile`]).
    #[serde(default)]
    pub routes: Vec<Route>,
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
            provenance: Vec::new(),
        }
    }
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

/// One cluster behind a route, with its share of the traffic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// The cluster's name.
    pub cluster: String,
    /// The relative weight (default 1). 0 means never.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// Forward requests to clusters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// The clusters, weighted.
    pub backends: Vec<Backend>,
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

/// Headers to add and remove.
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

/// Load-balancing policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    /// Round robin (weighted).
    #[default]
    RoundRobin,
    /// The endpoint with the fewest active requests of two picked at random.
    LeastRequest,
    /// Consistent hashing on a ring (see [`Forward::hash_policy`]).
    RingHash,
    /// Maglev consistent hashing (see [`Forward::hash_policy`]).
    Maglev,
    /// Random.
    Random,
}

/// The protocol spoken to upstream endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1.
    #[default]
    Http1,
    /// HTTP/2 (with TLS or cleartext h2c), e.g. for gRPC.
    Http2,
}

/// An upstream service; its endpoints come from the [`Endpoints`] object of the same name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// The cluster's name.
    pub name: String,
    /// The load-balancing policy (default `round_robin`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub lb: LbPolicy,
    /// The timeout for new connections (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// The protocol spoken to endpoints (default `http1`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub protocol: UpstreamProtocol,
    /// TLS to the endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
    /// Active health checking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Passive health checking: eject endpoints that fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// Limits on connections and requests to the whole cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breakers: Option<CircuitBreakers>,
    /// Where the object came from (set by sources).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance: Vec<Source>,
}

impl Cluster {
    /// A cluster with every setting at its default.
    pub fn new(name: impl Into<String>) -> Cluster {
        Cluster {
            name: name.into(),
            lb: LbPolicy::default(),
            connect_timeout: None,
            protocol: UpstreamProtocol::default(),
            tls: None,
            health_check: None,
            outlier_detection: None,
            circuit_breakers: None,
            provenance: Vec::new(),
        }
    }
}

/// TLS from Envoy to the endpoints.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// The SNI name to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// The name of a [`Secret`] with a validation context (trusted CA) to verify endpoints'
    /// certificates against; without it, certificates are not verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<String>,
}

/// Active health checking.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Check with an HTTP GET of this path (expecting 200); a TCP connect check when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_path: Option<String>,
    /// The Host header of HTTP checks (default: the cluster name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Time between checks (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Time to wait for an answer (default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Successes before an endpoint counts as healthy (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<u32>,
    /// Failures before an endpoint counts as unhealthy (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<u32>,
}

/// Passive health checking (outlier detection).
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetection {
    /// Consecutive 5xx responses that eject an endpoint (Envoy's default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx: Option<u32>,
    /// Time between ejection sweeps (Envoy's default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// The base time an endpoint stays ejected (Envoy's default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<Duration>,
    /// The most endpoints ejected at once, in percent (Envoy's default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<u32>,
}

/// Circuit breakers for the default priority.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakers {
    /// The most upstream connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// The most requests waiting for a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    /// The most concurrent requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    /// The most concurrent retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
}

/// The endpoints of the [`Cluster`] with the same name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    /// The cluster's name.
    pub name: String,
    /// The endpoints, grouped by locality and priority.
    #[serde(default)]
    pub localities: Vec<Locality>,
    /// Where the object came from (set by sources).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance: Vec<Source>,
}

/// Endpoints in one locality at one priority.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Locality {
    /// The region.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// The zone.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub zone: String,
    /// The sub-zone.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub_zone: String,
    /// The priority: 0 is highest; lower priorities take traffic only when higher ones lack
    /// healthy endpoints. Used priorities are compacted to 0, 1, 2, ... in order.
    #[serde(default, skip_serializing_if = "is_default")]
    pub priority: u32,
    /// The endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// One upstream address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// An IPv4 or IPv6 address.
    pub address: String,
    /// The port.
    pub port: u16,
    /// The relative load-balancing weight (1-128k, default 1).
    #[serde(default = "one")]
    pub weight: u32,
    /// The endpoint's health (default `healthy`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub health: Health,
}

/// An endpoint's health as the source knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Takes traffic.
    #[default]
    Healthy,
    /// Going away: takes no new requests, existing connections drain.
    Draining,
    /// Takes no traffic.
    Unhealthy,
}

/// A TLS secret, delivered to Envoy by SDS; exactly one of its fields is set.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    /// The secret's name, as listeners and clusters refer to it.
    pub name: String,
    /// A certificate chain and private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_certificate: Option<TlsCertificate>,
    /// Trusted CA certificates to verify peers with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_context: Option<ValidationContext>,
    /// Where the object came from (set by sources).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance: Vec<Source>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("name", &self.name)
            .field("tls_certificate", &self.tls_certificate)
            .field("validation_context", &self.validation_context)
            .finish_non_exhaustive()
    }
}

/// A certificate chain and its private key, PEM-encoded.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsCertificate {
    /// The PEM certificate chain, leaf first.
    pub certificate_chain: String,
    /// The PEM private key. Never printed by `Debug`, logs or debug views.
    pub private_key: String,
}

impl fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCertificate")
            .field(
                "certificate_chain",
                &format_args!("{} bytes", self.certificate_chain.len()),
            )
            .field("private_key", &format_args!("[redacted]"))
            .finish()
    }
}

/// Trusted CA certificates, PEM-encoded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationContext {
    /// The PEM CA certificates.
    pub trusted_ca: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        for (s, ms) in [
            ("250ms", 250),
            ("5s", 5000),
            ("1.5s", 1500),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("0s", 0),
            ("0.001s", 1),
        ] {
            assert_eq!(s.parse::<Duration>().unwrap().as_millis(), ms, "{s}");
        }
        for bad in [
            "",
            "5",
            "s",
            "1.s",
            ".5s",
            "1.5.5s",
            "5sec",
            "-1s",
            "0.0001s",
            "99999999999999999999h",
        ] {
            assert!(bad.parse::<Duration>().is_err(), "{bad:?} should not parse");
        }
        assert_eq!(Duration::from_millis(1500).to_string(), "1500ms");
        assert_eq!(Duration::from_secs(3).to_string(), "3s");
    }

    #[test]
    fn documents_round_trip_and_reject_unknown_fields() {
        let doc = r#"{"kind":"Cluster","name":"web","lb":"maglev","connect_timeout":"1s"}"#;
        let o: Object = serde_json::from_str(doc).unwrap();
        assert_eq!(o.key(), ObjectKey::new(Kind::Cluster, "web"));
        let back = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<Object>(&back).unwrap(), o);

        let err = serde_json::from_str::<Object>(r#"{"kind":"Cluster","name":"web","lbb":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("lbb"), "{err}");
        assert!(serde_json::from_str::<Object>(r#"{"kind":"Nope","name":"x"}"#).is_err());
    }

    #[test]
    fn secret_debug_never_shows_the_key() {
        let s = Secret {
            name: "s".into(),
            tls_certificate: Some(TlsCertificate {
                certificate_chain: "CERT".into(),
                private_key: "TOP-SECRET-KEY".into(),
            }),
            validation_context: None,
            provenance: vec![],
        };
        let shown = format!("{s:?} {:?}", Object::Secret(s.clone()));
        assert!(!shown.contains("TOP-SECRET-KEY"), "{shown}");
    }

    #[test]
    fn of_kind_returns_only_that_kind_in_name_order() {
        let m = Model::from_objects([
            Object::Cluster(Cluster::new("b")),
            Object::Listener(Listener::new("l", 80)),
            Object::Cluster(Cluster::new("a")),
        ]);
        let names: Vec<_> = m
            .of_kind(Kind::Cluster)
            .map(|o| o.name().to_owned())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(m.of_kind(Kind::Secret).count(), 0);
    }
}
