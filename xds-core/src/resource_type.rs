//! The five xDS resource types (CDS, EDS, LDS, RDS, SDS) and their names on the wire.
//!
//! The vocabulary that both the model (the type of a raw Envoy resource object) and the
//! snapshot (one map per type) speak, so it sits below both of them. Public as
//! [`crate::snapshot::ResourceType`]; this module holds no resources and knows no model.

use std::fmt;

/// The xDS resource types a snapshot carries.
///
/// They are declared, and iterate via [`ResourceType::ALL`], in make-before-break push order:
/// clusters before their endpoints, endpoints before the listeners that use them, listeners
/// before their route configurations. Secrets come last in the list but are independent of the
/// order (Envoy waits for them while warming).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    /// `envoy.config.cluster.v3.Cluster` (CDS).
    Cluster,
    /// `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS).
    Endpoint,
    /// `envoy.config.listener.v3.Listener` (LDS).
    Listener,
    /// `envoy.config.route.v3.RouteConfiguration` (RDS).
    Route,
    /// `envoy.extensions.transport_sockets.tls.v3.Secret` (SDS).
    Secret,
}

impl ResourceType {
    /// Every type, in make-before-break order.
    pub const ALL: [ResourceType; 5] = [
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Listener,
        ResourceType::Route,
        ResourceType::Secret,
    ];

    /// The fully qualified protobuf message name of this type's resources.
    ///
    /// ```
    /// use xdsc_core::snapshot::ResourceType;
    /// assert_eq!(ResourceType::Route.message_name(), "envoy.config.route.v3.RouteConfiguration");
    /// ```
    pub const fn message_name(self) -> &'static str {
        match self {
            ResourceType::Cluster => "envoy.config.cluster.v3.Cluster",
            ResourceType::Endpoint => "envoy.config.endpoint.v3.ClusterLoadAssignment",
            ResourceType::Listener => "envoy.config.listener.v3.Listener",
            ResourceType::Route => "envoy.config.route.v3.RouteConfiguration",
            ResourceType::Secret => "envoy.extensions.transport_sockets.tls.v3.Secret",
        }
    }

    /// The type URL used in `DiscoveryRequest.type_url` and `Any.type_url`.
    ///
    /// ```
    /// use xdsc_core::snapshot::ResourceType;
    /// assert_eq!(
    ///     ResourceType::Cluster.type_url(),
    ///     "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    /// );
    /// ```
    pub const fn type_url(self) -> &'static str {
        match self {
            ResourceType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            ResourceType::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            ResourceType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            ResourceType::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            ResourceType::Secret => {
                "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
            }
        }
    }

    /// The type for a type URL, if it is one of ours.
    ///
    /// ```
    /// use xdsc_core::snapshot::ResourceType;
    /// let t = ResourceType::from_type_url(ResourceType::Secret.type_url());
    /// assert_eq!(t, Some(ResourceType::Secret));
    /// assert_eq!(ResourceType::from_type_url("type.googleapis.com/foo"), None);
    /// ```
    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// A short lowercase name for logs, metrics and JSON views (`clusters`, `endpoints`, ...).
    ///
    /// ```
    /// use xdsc_core::snapshot::ResourceType;
    /// assert_eq!(ResourceType::Endpoint.short_name(), "endpoints");
    /// ```
    pub const fn short_name(self) -> &'static str {
        match self {
            ResourceType::Cluster => "clusters",
            ResourceType::Endpoint => "endpoints",
            ResourceType::Listener => "listeners",
            ResourceType::Route => "routes",
            ResourceType::Secret => "secrets",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}
