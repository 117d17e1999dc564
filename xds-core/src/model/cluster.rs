//! Clusters: upstream services with their load-balancing policy, protocol, TLS, health checks,
//! outlier detection and circuit breakers.
//!
//! Not here: the cluster's endpoints (see `endpoints`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::{Duration, Source, is_default};
// For the doc links (the docs are also the JSON Schema's descriptions, kept as written).
#[cfg(doc)]
use super::secret::Secret;
#[cfg(doc)]
use super::virtual_host::Forward;

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

/// An upstream service; its endpoints come from the [`Endpoints`](super::Endpoints) object of
/// the same name.
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
    /// Envoy's `typed_extension_protocol_options`, by extension name (for example
    /// `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`, unless `protocol: http2`
    /// sets that one). One that is unknown or does not decode leaves the cluster out.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub typed_extension_protocol_options: super::extension::TypedConfigs,
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
            typed_extension_protocol_options: Default::default(),
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
