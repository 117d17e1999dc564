//! Listeners: an address and port, what they speak (HTTP, HTTPS with its certificates and
//! optionally SNI names passed through, TCP or TLS passthrough with their TCP routes), access
//! logs and limits.
//!
//! Not here: the virtual hosts served on HTTP listeners (see `virtual_host`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::extension::NamedExtension;
use super::shared::{Backend, Duration, Source};
// For the doc links (the docs are also the JSON Schema's descriptions, kept as written).
#[cfg(doc)]
use super::secret::Secret;

fn default_address() -> String {
    "0.0.0.0".to_owned()
}

/// What a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListenerProtocol {
    /// Plain HTTP/1.1 and HTTP/2 (h2c); routes come from the attached virtual hosts.
    #[default]
    Http,
    /// HTTP over TLS, terminated by Envoy with the certificate chosen by SNI (see
    /// [`Listener::tls`]); routes come from the attached virtual hosts. SNI names that no
    /// certificate claims may be passed through unterminated to [`Listener::tcp_routes`]
    /// (HTTPS and TLS passthrough on one port).
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
    /// The listener's name, also the name of its Envoy listener (and, unless `route_config`
    /// says otherwise, of its route configuration and its connection manager's stat prefix).
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
    /// For `tls_passthrough` (routed by SNI) and `tcp` (exactly one route, without SNI); for
    /// `https`, the SNI names passed through unterminated beside the certificates of `tls`
    /// (a name is either terminated or passed through, never both).
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
    /// For `http` and `https`: the HTTP connection manager's stat prefix, the `http.<prefix>.`
    /// of its statistics (default: the listener's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat_prefix: Option<String>,
    /// For `http` and `https`: the name of the route configuration (RDS) served here (default:
    /// the listener's name). Virtual hosts attach to route configurations by this name, so
    /// several listeners naming one route configuration share it and its virtual hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_config: Option<String>,
    /// For `http` and `https`: HTTP filters, in order, before the router (an escape hatch to
    /// any Envoy HTTP filter: CORS, ext_authz, rate limits, JWT, Lua, ...). A filter whose
    /// configuration is unknown or does not decode leaves the listener out: a listener is
    /// never served without a filter it was given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_filters: Vec<NamedExtension>,
    /// Listener filters, in order, before the TLS inspector that `https` and
    /// `tls_passthrough` listeners get (so a PROXY protocol filter can come first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listener_filters: Vec<NamedExtension>,
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
            stat_prefix: None,
            route_config: None,
            http_filters: Vec::new(),
            listener_filters: Vec::new(),
            provenance: Vec::new(),
        }
    }

    /// The name of the route configuration this listener serves: `route_config`, or else the
    /// listener's name.
    ///
    /// ```
    /// let mut l = xdsc_core::model::Listener::new("http", 8080);
    /// assert_eq!(l.route_config_name(), "http");
    /// l.route_config = Some("shared".into());
    /// assert_eq!(l.route_config_name(), "shared");
    /// ```
    pub fn route_config_name(&self) -> &str {
        self.route_config.as_deref().unwrap_or(&self.name)
    }

    /// The HTTP connection manager's stat prefix: `stat_prefix`, or else the listener's name.
    ///
    /// ```
    /// let l = xdsc_core::model::Listener::new("http", 8080);
    /// assert_eq!(l.stat_prefix_or_name(), "http");
    /// ```
    pub fn stat_prefix_or_name(&self) -> &str {
        self.stat_prefix.as_deref().unwrap_or(&self.name)
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

impl ListenerTls {
    /// A certificate (the [`Secret`] named `secret`) served for these SNI names (none: the
    /// default certificate).
    ///
    /// ```
    /// let t = xdsc_core::model::ListenerTls::new("cert", ["example.com"]);
    /// assert_eq!(t.hosts, ["example.com"]);
    /// ```
    pub fn new(
        secret: impl Into<String>,
        hosts: impl IntoIterator<Item = impl Into<String>>,
    ) -> ListenerTls {
        ListenerTls {
            hosts: hosts.into_iter().map(Into::into).collect(),
            secret: secret.into(),
        }
    }
}

impl TcpRoute {
    /// A TCP route to these backends, for these SNI names (none: any connection).
    ///
    /// ```
    /// use xdsc_core::model::{Backend, TcpRoute};
    /// let r = TcpRoute::new("db", [] as [&str; 0], [Backend::new("db", 1)]);
    /// assert!(r.sni.is_empty());
    /// ```
    pub fn new(
        name: impl Into<String>,
        sni: impl IntoIterator<Item = impl Into<String>>,
        backends: impl IntoIterator<Item = Backend>,
    ) -> TcpRoute {
        TcpRoute {
            name: name.into(),
            sni: sni.into_iter().map(Into::into).collect(),
            backends: backends.into_iter().collect(),
        }
    }
}

impl AccessLog {
    /// An access log appended to `path` in Envoy's default format.
    ///
    /// ```
    /// assert!(xdsc_core::model::AccessLog::new("/dev/stdout").format.is_none());
    /// ```
    pub fn new(path: impl Into<String>) -> AccessLog {
        AccessLog {
            path: path.into(),
            format: None,
        }
    }
}
