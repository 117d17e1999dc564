//! Raw Envoy resources as model objects: a `Cluster`, `ClusterLoadAssignment`, `Listener`,
//! `RouteConfiguration` or `Secret` written by the embedder, given as a prost message of
//! [`crate::envoy_types`] ([`Raw::from_message`]) or as Envoy JSON ([`Raw::from_json`]; in
//! documents, `kind: EnvoyCluster` with the JSON under `resource`). The resource's own name
//! field (`name`, `cluster_name` for a load assignment) is the object's name.
//!
//! Not here: checking them. The compiler decodes every raw resource against the descriptors
//! the crate compiles (unknown fields, an `Any` of an unknown type or that does not decode: a
//! diagnostic naming the object and field), re-encodes it canonically, reads the references
//! it can (secrets, clusters, route configurations, EDS service names) and checks them as it
//! checks compiled resources' (see [`crate::compile`]).

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Kind;
use super::shared::Source;
use crate::resource_type::ResourceType;

mod sealed {
    pub trait Sealed {}
}

/// The Envoy resource messages that can be model objects: `Cluster`, `ClusterLoadAssignment`,
/// `Listener`, `RouteConfiguration` and `Secret` of [`crate::envoy_types`].
pub trait RawMessage:
    prost::Message + prost::Name + Default + Clone + PartialEq + sealed::Sealed + 'static
{
    /// The model kind of such objects (`EnvoyCluster`, ...).
    const KIND: Kind;
    /// The snapshot type the resource is served as.
    const RESOURCE_TYPE: ResourceType;
    /// The message's name field in Envoy JSON, as written in the `.proto` file.
    const NAME_FIELD: &'static str;
    /// The same field's JSON name (lower camel case), which Envoy JSON also accepts.
    const NAME_FIELD_JSON: &'static str;
    /// The resource's name.
    fn resource_name(&self) -> &str;
}

macro_rules! raw_message {
    ($t:ty, $kind:ident, $rt:ident, $field:ident, $json:literal) => {
        impl sealed::Sealed for $t {}
        impl RawMessage for $t {
            const KIND: Kind = Kind::$kind;
            const RESOURCE_TYPE: ResourceType = ResourceType::$rt;
            const NAME_FIELD: &'static str = stringify!($field);
            const NAME_FIELD_JSON: &'static str = $json;
            fn resource_name(&self) -> &str {
                &self.$field
            }
        }
    };
}
raw_message!(Cluster, EnvoyCluster, Cluster, name, "name");
raw_message!(
    ClusterLoadAssignment,
    EnvoyClusterLoadAssignment,
    Endpoint,
    cluster_name,
    "clusterName"
);
raw_message!(Listener, EnvoyListener, Listener, name, "name");
raw_message!(
    RouteConfiguration,
    EnvoyRouteConfiguration,
    Route,
    name,
    "name"
);
raw_message!(Secret, EnvoySecret, Secret, name, "name");

/// How a raw resource was given.
#[derive(Clone, PartialEq)]
pub enum RawBody {
    /// Envoy JSON (an `@type`, if present, is the message's type URL).
    Json(serde_json::Value),
    /// The message's protobuf encoding (canonical: maps sorted, see [`crate::canonicalize`]).
    Proto(Bytes),
}

/// A raw Envoy resource of message type `M`: its name (the resource's own name field), how
/// it was given ([`RawBody`]) and its provenance. The compiler decodes and checks it (see
/// [`crate::compile`]); `Debug` never shows the body (a raw `Secret` holds key material).
///
/// ```
/// use xdsc_core::envoy_types::pb::envoy::config::cluster::v3::Cluster;
/// use xdsc_core::model::{Object, Raw};
///
/// let from_rust = Raw::from_message(&Cluster { name: "web".into(), ..Default::default() });
/// assert_eq!(Object::from(from_rust.clone()).key().to_string(), "EnvoyCluster/web");
/// let from_json = Raw::<Cluster>::from_json(serde_json::json!({"name": "web", "type": "STRICT_DNS"})).unwrap();
/// assert_eq!(from_json.name(), "web");
/// assert!(Raw::<Cluster>::from_json(serde_json::json!({"type": "STATIC"})).is_err());
/// ```
#[derive(Clone, PartialEq)]
pub struct Raw<M> {
    name: String,
    body: RawBody,
    /// Where the object came from (set by sources).
    pub provenance: Vec<Source>,
    message: PhantomData<fn() -> M>,
}

impl<M: RawMessage> Raw<M> {
    /// A prost message as a raw resource, named by its own name field.
    pub fn from_message(m: &M) -> Raw<M> {
        Raw {
            name: m.resource_name().to_owned(),
            body: RawBody::Proto(Bytes::from(crate::canonical::encode(m))),
            provenance: Vec::new(),
            message: PhantomData,
        }
    }

    /// Envoy JSON of the message as a raw resource. It needs a string name field (`name`;
    /// `cluster_name` for a load assignment), and an `@type`, when given, must be the
    /// message's; whether the rest fits the message is checked when it is compiled.
    pub fn from_json(json: serde_json::Value) -> Result<Raw<M>, String> {
        let Some(o) = json.as_object() else {
            return Err(format!("the Envoy JSON of a {} is an object", M::NAME));
        };
        if let Some(t) = o.get("@type")
            && t.as_str() != Some(M::type_url().as_str())
        {
            return Err(format!(
                "\"@type\" must be {:?} in a {} document",
                M::type_url(),
                M::KIND
            ));
        }
        let name = o
            .get(M::NAME_FIELD)
            .or_else(|| o.get(M::NAME_FIELD_JSON))
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| format!("needs a string {:?}, the resource's name", M::NAME_FIELD))?;
        Ok(Raw {
            name: name.to_owned(),
            body: RawBody::Json(json.clone()),
            provenance: Vec::new(),
            message: PhantomData,
        })
    }

    /// The resource's name (its own name field).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The resource as given.
    pub fn body(&self) -> &RawBody {
        &self.body
    }

    /// The same resource with this provenance.
    pub fn with_provenance(mut self, provenance: Vec<Source>) -> Raw<M> {
        self.provenance = provenance;
        self
    }
}

impl<M: RawMessage> fmt::Debug for Raw<M> {
    // Never the body: a raw Secret holds key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = match &self.body {
            RawBody::Json(_) => "Envoy JSON".to_owned(),
            RawBody::Proto(b) => format!("{} protobuf bytes", b.len()),
        };
        f.debug_struct("Raw")
            .field("kind", &M::KIND)
            .field("name", &self.name)
            .field("body", &format_args!("{body}"))
            .finish_non_exhaustive()
    }
}

/// A raw resource as written in a document: `resource` (and `provenance`, beside `kind`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    resource: serde_json::Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    provenance: Vec<Source>,
}

impl<M: RawMessage> Serialize for Raw<M> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let resource = match &self.body {
            RawBody::Json(v) => v.clone(),
            RawBody::Proto(b) => crate::compile::typed::to_json(&M::type_url(), b).unwrap_or_else(
                || serde_json::json!({"@type": M::type_url(), "@undecodable_bytes": b.len()}),
            ),
        };
        Document {
            resource,
            provenance: self.provenance.clone(),
        }
        .serialize(s)
    }
}

/// The `resource` of a document, checked as [`Raw::from_json`] checks it, so that an error
/// points at `resource`.
struct ResourceJson<M>(Raw<M>);

impl<'de, M: RawMessage> Deserialize<'de> for ResourceJson<M> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ResourceJson<M>, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Raw::from_json(v)
            .map(ResourceJson)
            .map_err(serde::de::Error::custom)
    }
}

impl<'de, M: RawMessage> Deserialize<'de> for Raw<M> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Raw<M>, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        #[serde(bound = "M: RawMessage")]
        struct Doc<M: RawMessage> {
            resource: ResourceJson<M>,
            #[serde(default)]
            provenance: Vec<Source>,
        }
        let doc = Doc::<M>::deserialize(d)?;
        Ok(doc.resource.0.with_provenance(doc.provenance))
    }
}

impl<M: RawMessage> JsonSchema for Raw<M> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        M::KIND.as_str().into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let provenance = generator.subschema_for::<Vec<Source>>();
        schemars::json_schema!({
            "description": format!(
                "A raw Envoy {} ({}): the Envoy JSON under `resource`, named by its `{}`. \
                 Decoded, checked and canonicalized by the compiler like compiled resources.",
                M::NAME, M::full_name(), M::NAME_FIELD
            ),
            "type": "object",
            "required": ["resource"],
            "additionalProperties": false,
            "properties": {
                "resource": {
                    "description": format!("The Envoy JSON of the message {} (an `@type`, if given, must be {}).", M::full_name(), M::type_url()),
                    "type": "object",
                    "required": [M::NAME_FIELD],
                    "properties": { M::NAME_FIELD: { "type": "string" } }
                },
                "provenance": provenance,
            }
        })
    }
}
