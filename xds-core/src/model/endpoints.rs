//! Endpoints: a cluster's upstream addresses by locality and priority, with their weight and
//! health.
//!
//! Not here: the cluster itself (see `cluster`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::{Source, is_default, one};
// For the doc links (the docs are also the JSON Schema's descriptions, kept as written).
#[cfg(doc)]
use super::cluster::Cluster;

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

impl Endpoints {
    /// The endpoints of cluster `name`, all in one locality with no region or zone.
    ///
    /// ```
    /// use xdsc_core::model::{Endpoint, Endpoints};
    /// let e = Endpoints::new("web", [Endpoint::new("10.0.0.1", 8080), Endpoint::new("10.0.0.2", 8080)]);
    /// assert_eq!(e.localities[0].endpoints.len(), 2);
    /// ```
    pub fn new(
        name: impl Into<String>,
        endpoints: impl IntoIterator<Item = Endpoint>,
    ) -> Endpoints {
        Endpoints {
            name: name.into(),
            localities: vec![Locality::new(endpoints)],
            provenance: Vec::new(),
        }
    }
}

impl Locality {
    /// A locality with no region, zone or sub-zone, at priority 0.
    ///
    /// ```
    /// let l = xdsc_core::model::Locality::new([xdsc_core::model::Endpoint::new("10.0.0.1", 80)]);
    /// assert_eq!(l.priority, 0);
    /// ```
    pub fn new(endpoints: impl IntoIterator<Item = Endpoint>) -> Locality {
        Locality {
            endpoints: endpoints.into_iter().collect(),
            ..Locality::default()
        }
    }
}

impl Endpoint {
    /// A healthy endpoint of weight 1.
    ///
    /// ```
    /// let e = xdsc_core::model::Endpoint::new("10.0.0.1", 8080);
    /// assert_eq!((e.weight, e.health), (1, xdsc_core::model::Health::Healthy));
    /// ```
    pub fn new(address: impl Into<String>, port: u16) -> Endpoint {
        Endpoint {
            address: address.into(),
            port,
            weight: 1,
            health: Health::default(),
        }
    }

    /// The same endpoint with another weight.
    ///
    /// ```
    /// assert_eq!(xdsc_core::model::Endpoint::new("10.0.0.1", 80).with_weight(5).weight, 5);
    /// ```
    pub fn with_weight(self, weight: u32) -> Endpoint {
        Endpoint { weight, ..self }
    }

    /// The same endpoint with another health.
    ///
    /// ```
    /// use xdsc_core::model::{Endpoint, Health};
    /// assert_eq!(Endpoint::new("10.0.0.1", 80).with_health(Health::Draining).health, Health::Draining);
    /// ```
    pub fn with_health(self, health: Health) -> Endpoint {
        Endpoint { health, ..self }
    }
}
