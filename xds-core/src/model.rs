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

use envoy_types::pb::envoy::config as envoy;
use imbl::OrdMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::resource_type::ResourceType;

mod cluster;
mod endpoints;
mod extension;
mod listener;
mod raw;
mod secret;
mod shared;
mod virtual_host;

pub use cluster::*;
pub use endpoints::*;
pub use extension::{NamedExtension, TypedConfig, TypedConfigs};
pub use listener::*;
pub use raw::{Raw, RawBody, RawMessage};
pub use secret::*;
pub use shared::{Backend, Duration, ParseDurationError, Source};
pub use virtual_host::*;

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
    /// A raw Envoy `Cluster` ([`Raw`]).
    EnvoyCluster,
    /// A raw Envoy `ClusterLoadAssignment` ([`Raw`]).
    EnvoyClusterLoadAssignment,
    /// A raw Envoy `Listener` ([`Raw`]).
    EnvoyListener,
    /// A raw Envoy `RouteConfiguration` ([`Raw`]).
    EnvoyRouteConfiguration,
    /// A raw Envoy `Secret` ([`Raw`]).
    EnvoySecret,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 10] = [
        Kind::Listener,
        Kind::VirtualHost,
        Kind::Cluster,
        Kind::Endpoints,
        Kind::Secret,
        Kind::EnvoyCluster,
        Kind::EnvoyClusterLoadAssignment,
        Kind::EnvoyListener,
        Kind::EnvoyRouteConfiguration,
        Kind::EnvoySecret,
    ];

    /// The snapshot type of a raw Envoy resource kind; `None` for the compiled kinds.
    ///
    /// ```
    /// use xdsc_core::model::Kind;
    /// use xdsc_core::snapshot::ResourceType;
    /// assert_eq!(Kind::EnvoyListener.raw_type(), Some(ResourceType::Listener));
    /// assert_eq!(Kind::Listener.raw_type(), None);
    /// ```
    pub const fn raw_type(self) -> Option<ResourceType> {
        use ResourceType as T;
        match self {
            Kind::EnvoyCluster => Some(T::Cluster),
            Kind::EnvoyClusterLoadAssignment => Some(T::Endpoint),
            Kind::EnvoyListener => Some(T::Listener),
            Kind::EnvoyRouteConfiguration => Some(T::Route),
            Kind::EnvoySecret => Some(T::Secret),
            _ => None,
        }
    }

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
            Kind::EnvoyCluster => "EnvoyCluster",
            Kind::EnvoyClusterLoadAssignment => "EnvoyClusterLoadAssignment",
            Kind::EnvoyListener => "EnvoyListener",
            Kind::EnvoyRouteConfiguration => "EnvoyRouteConfiguration",
            Kind::EnvoySecret => "EnvoySecret",
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
    /// A raw Envoy cluster.
    EnvoyCluster(Raw<envoy::cluster::v3::Cluster>),
    /// A raw Envoy load assignment (the endpoints of an EDS cluster).
    EnvoyClusterLoadAssignment(Raw<envoy::endpoint::v3::ClusterLoadAssignment>),
    /// A raw Envoy listener.
    EnvoyListener(Raw<envoy::listener::v3::Listener>),
    /// A raw Envoy route configuration.
    EnvoyRouteConfiguration(Raw<envoy::route::v3::RouteConfiguration>),
    /// A raw Envoy SDS secret.
    EnvoySecret(Raw<envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret>),
}

/// Every arm of a match on an [`Object`], the same expression on each object.
macro_rules! each_object {
    ($o:expr, $x:ident => $e:expr) => {
        match $o {
            Object::Listener($x) => $e,
            Object::VirtualHost($x) => $e,
            Object::Cluster($x) => $e,
            Object::Endpoints($x) => $e,
            Object::Secret($x) => $e,
            Object::EnvoyCluster($x) => $e,
            Object::EnvoyClusterLoadAssignment($x) => $e,
            Object::EnvoyListener($x) => $e,
            Object::EnvoyRouteConfiguration($x) => $e,
            Object::EnvoySecret($x) => $e,
        }
    };
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
            Object::EnvoyCluster(_) => Kind::EnvoyCluster,
            Object::EnvoyClusterLoadAssignment(_) => Kind::EnvoyClusterLoadAssignment,
            Object::EnvoyListener(_) => Kind::EnvoyListener,
            Object::EnvoyRouteConfiguration(_) => Kind::EnvoyRouteConfiguration,
            Object::EnvoySecret(_) => Kind::EnvoySecret,
        }
    }

    /// The object's name (a raw resource's own name field).
    pub fn name(&self) -> &str {
        match self {
            Object::Listener(o) => &o.name,
            Object::VirtualHost(o) => &o.name,
            Object::Cluster(o) => &o.name,
            Object::Endpoints(o) => &o.name,
            Object::Secret(o) => &o.name,
            Object::EnvoyCluster(o) => o.name(),
            Object::EnvoyClusterLoadAssignment(o) => o.name(),
            Object::EnvoyListener(o) => o.name(),
            Object::EnvoyRouteConfiguration(o) => o.name(),
            Object::EnvoySecret(o) => o.name(),
        }
    }

    /// The object's key (kind and name).
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(self.kind(), self.name())
    }

    /// Where the object came from, as its source set it. Empty for objects written directly
    /// in the model.
    pub fn provenance(&self) -> &[Source] {
        each_object!(self, o => &o.provenance)
    }

    /// The object's provenance, for a source to add to it.
    pub fn provenance_mut(&mut self) -> &mut Vec<Source> {
        each_object!(self, o => &mut o.provenance)
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

macro_rules! raw_from {
    ($($t:ty => $v:ident),*) => {$(
        impl From<Raw<$t>> for Object {
            fn from(o: Raw<$t>) -> Object {
                Object::$v(o)
            }
        }
    )*};
}
raw_from!(
    envoy::cluster::v3::Cluster => EnvoyCluster,
    envoy::endpoint::v3::ClusterLoadAssignment => EnvoyClusterLoadAssignment,
    envoy::listener::v3::Listener => EnvoyListener,
    envoy::route::v3::RouteConfiguration => EnvoyRouteConfiguration,
    envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret => EnvoySecret
);

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

    /// The changes that turn `self` into `other`, in key order: an upsert of every object
    /// added or different, a delete of every object gone. Parts of the two maps that are
    /// shared (one model derived from the other by [`Model::apply`]) are skipped without
    /// being visited, so the cost follows what differs.
    ///
    /// ```
    /// use xdsc_core::model::{Change, Cluster, Model, Object};
    /// let a = Model::from_objects([Object::Cluster(Cluster::new("web"))]);
    /// let b = a.apply([Change::upsert(Cluster::new("api"))]);
    /// let changes: Vec<Change> = a.changes_to(&b).collect();
    /// assert_eq!(changes, [Change::upsert(Cluster::new("api"))]);
    /// assert_eq!(b.changes_to(&b).count(), 0);
    /// ```
    pub fn changes_to<'a>(&'a self, other: &'a Model) -> impl Iterator<Item = Change> + 'a {
        self.objects
            .diff(&other.objects)
            .filter_map(|item| match item {
                imbl::ordmap::DiffItem::Add(_, new) => Some(Change::Upsert(Arc::clone(new))),
                imbl::ordmap::DiffItem::Update { old, new } => (!Arc::ptr_eq(old.1, new.1)
                    && old.1 != new.1)
                    .then(|| Change::Upsert(Arc::clone(new.1))),
                imbl::ordmap::DiffItem::Remove(k, _) => Some(Change::Delete(k.clone())),
            })
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
