//! The vocabulary of Kubernetes objects the translation reads: [`KubeKind`] (the kinds,
//! defined once), [`KubeObject`] (a parsed object), [`ObjectRef`] (an object's identity),
//! [`Inputs`] (every object with where it was read) and [`Options`].
//!
//! Everything else in the crate imports from here; this module imports nothing of the
//! crate but the Gateway API types ([`gateway`]). It does not translate: what objects mean
//! is [`crate::translate`], how the translation is kept is [`crate::translator`].

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
pub use xdsc_core::compile::Severity;
use xdsc_core::diagnostic::{FieldPath, ToFieldPath};

pub mod gateway;

/// One Kubernetes object the translation understands, typed.
#[derive(Clone, Debug, PartialEq)]
pub enum KubeObject {
    /// `networking.k8s.io/v1` Ingress.
    Ingress(Box<Ingress>),
    /// `networking.k8s.io/v1` IngressClass (cluster-scoped).
    IngressClass(Box<IngressClass>),
    /// `v1` Service.
    Service(Box<Service>),
    /// `discovery.k8s.io/v1` EndpointSlice.
    EndpointSlice(Box<EndpointSlice>),
    /// `v1` Secret.
    Secret(Box<Secret>),
    /// `gateway.networking.k8s.io/v1` Gateway.
    Gateway(Box<gateway::Gateway>),
    /// `gateway.networking.k8s.io/v1` GatewayClass (cluster-scoped).
    GatewayClass(Box<gateway::GatewayClass>),
    /// `gateway.networking.k8s.io/v1` HTTPRoute.
    HttpRoute(Box<gateway::HttpRoute>),
    /// `gateway.networking.k8s.io/v1` GRPCRoute.
    GrpcRoute(Box<gateway::GrpcRoute>),
    /// `gateway.networking.k8s.io/v1` TLSRoute (also `v1alpha2`, `v1alpha3`).
    TlsRoute(Box<gateway::TlsRoute>),
    /// `gateway.networking.k8s.io/v1alpha2` TCPRoute.
    TcpRoute(Box<gateway::TcpRoute>),
    /// `gateway.networking.k8s.io/v1` ReferenceGrant (also `v1beta1`).
    ReferenceGrant(Box<gateway::ReferenceGrant>),
    /// `v1` Namespace (cluster-scoped): its labels select routes for Gateway listeners.
    Namespace(Box<Namespace>),
}

/// A kind of Kubernetes object the translation reads: the one list of them.
///
/// ```
/// use xdsc_kube::translate::KubeKind;
/// let names: Vec<&str> = KubeKind::ALL.iter().map(|k| k.as_str()).collect();
/// assert_eq!(names.join(", "), "Ingress, IngressClass, Service, EndpointSlice, Secret, Namespace, Gateway, GatewayClass, HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, ReferenceGrant");
/// assert_eq!(KubeKind::of("networking.k8s.io/v1", "Ingress"), Some(KubeKind::Ingress));
/// assert_eq!(KubeKind::of("gateway.networking.k8s.io/v1alpha2", "TLSRoute"), Some(KubeKind::TlsRoute));
/// assert_eq!(KubeKind::of("v1", "Pod"), None);
/// assert!(!KubeKind::GatewayClass.namespaced());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KubeKind {
    /// `networking.k8s.io/v1` Ingress.
    Ingress,
    /// `networking.k8s.io/v1` IngressClass (cluster-scoped).
    IngressClass,
    /// `v1` Service.
    Service,
    /// `discovery.k8s.io/v1` EndpointSlice.
    EndpointSlice,
    /// `v1` Secret.
    Secret,
    /// `v1` Namespace (cluster-scoped).
    Namespace,
    /// `gateway.networking.k8s.io/v1` Gateway.
    Gateway,
    /// `gateway.networking.k8s.io/v1` GatewayClass (cluster-scoped).
    GatewayClass,
    /// `gateway.networking.k8s.io/v1` HTTPRoute.
    HttpRoute,
    /// `gateway.networking.k8s.io/v1` GRPCRoute.
    GrpcRoute,
    /// `gateway.networking.k8s.io/v1` TLSRoute (also `v1alpha2`, `v1alpha3`).
    TlsRoute,
    /// `gateway.networking.k8s.io/v1alpha2` TCPRoute.
    TcpRoute,
    /// `gateway.networking.k8s.io/v1` ReferenceGrant (also `v1beta1`).
    ReferenceGrant,
}

impl KubeKind {
    /// Every kind read, in the order they are listed to users.
    pub const ALL: [KubeKind; 13] = [
        KubeKind::Ingress,
        KubeKind::IngressClass,
        KubeKind::Service,
        KubeKind::EndpointSlice,
        KubeKind::Secret,
        KubeKind::Namespace,
        KubeKind::Gateway,
        KubeKind::GatewayClass,
        KubeKind::HttpRoute,
        KubeKind::GrpcRoute,
        KubeKind::TlsRoute,
        KubeKind::TcpRoute,
        KubeKind::ReferenceGrant,
    ];

    /// The kind as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            KubeKind::Ingress => "Ingress",
            KubeKind::IngressClass => "IngressClass",
            KubeKind::Service => "Service",
            KubeKind::EndpointSlice => "EndpointSlice",
            KubeKind::Secret => "Secret",
            KubeKind::Namespace => "Namespace",
            KubeKind::Gateway => "Gateway",
            KubeKind::GatewayClass => "GatewayClass",
            KubeKind::HttpRoute => "HTTPRoute",
            KubeKind::GrpcRoute => "GRPCRoute",
            KubeKind::TlsRoute => "TLSRoute",
            KubeKind::TcpRoute => "TCPRoute",
            KubeKind::ReferenceGrant => "ReferenceGrant",
        }
    }

    /// The `apiVersion` read for this kind (for the Gateway API, the current one; the older
    /// versions in [`gateway::API_VERSIONS`] are read too).
    pub fn api_version(self) -> &'static str {
        match self {
            KubeKind::Ingress | KubeKind::IngressClass => "networking.k8s.io/v1",
            KubeKind::Service | KubeKind::Secret | KubeKind::Namespace => "v1",
            KubeKind::EndpointSlice => "discovery.k8s.io/v1",
            KubeKind::TcpRoute => "gateway.networking.k8s.io/v1alpha2",
            KubeKind::Gateway
            | KubeKind::GatewayClass
            | KubeKind::HttpRoute
            | KubeKind::GrpcRoute
            | KubeKind::TlsRoute
            | KubeKind::ReferenceGrant => gateway::API_VERSION,
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(
            self,
            KubeKind::IngressClass | KubeKind::GatewayClass | KubeKind::Namespace
        )
    }

    /// The kind named `kind` (as written in manifests, whatever the `apiVersion`), if it is
    /// read: the kind of an [`ObjectRef`], whose kind is text so that diagnostics can name
    /// kinds the translation does not read.
    ///
    /// ```
    /// use xdsc_kube::translate::KubeKind;
    /// assert_eq!(KubeKind::named("HTTPRoute"), Some(KubeKind::HttpRoute));
    /// assert_eq!(KubeKind::named("Pod"), None);
    /// ```
    pub fn named(kind: &str) -> Option<KubeKind> {
        KubeKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// The identity of the object of this kind with this namespace (`None` for
    /// cluster-scoped kinds) and name.
    ///
    /// ```
    /// use xdsc_kube::translate::{KubeKind, ObjectRef};
    /// let id = KubeKind::Service.id(Some("shop"), "web");
    /// assert_eq!(id, ObjectRef::new("Service", Some("shop"), "web"));
    /// assert!(id.kind == KubeKind::Service);
    /// ```
    pub fn id(self, namespace: Option<&str>, name: &str) -> ObjectRef {
        ObjectRef::new(self.as_str(), namespace, name)
    }

    /// The kind of a manifest's `apiVersion` and `kind`, if it is read.
    pub fn of(api_version: &str, kind: &str) -> Option<KubeKind> {
        let gateway_api = gateway::API_VERSIONS.contains(&(api_version, kind));
        KubeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind && (k.api_version() == api_version || gateway_api))
    }
}

/// An [`ObjectRef`]'s kind (text) compared with a kind read: `id.kind == KubeKind::Secret`.
impl PartialEq<KubeKind> for String {
    fn eq(&self, other: &KubeKind) -> bool {
        self == other.as_str()
    }
}

impl fmt::Display for KubeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a manifest is not a [`KubeObject`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The `apiVersion` and `kind` name an object this translation does not read.
    #[error("unsupported object: apiVersion {api_version:?}, kind {kind:?}")]
    Unsupported {
        /// The manifest's `apiVersion` (empty when missing).
        api_version: String,
        /// The manifest's `kind` (empty when missing).
        kind: String,
    },
    /// The manifest does not fit the object's schema.
    #[error("{kind}: {path}: {message}")]
    Invalid {
        /// The object's kind.
        kind: String,
        /// The field path, e.g. `spec.rules[0].http.paths[1].pathType`.
        path: FieldPath,
        /// What is wrong.
        message: String,
    },
}

/// A typed object from a JSON value, owned or borrowed (`&Value` copies only the strings the
/// object keeps, where cloning the value first would copy the whole tree).
fn parse<'de, T: DeserializeOwned, D: serde::Deserializer<'de>>(
    kind: &str,
    v: D,
) -> Result<Box<T>, ParseError> {
    serde_path_to_error::deserialize(v)
        .map(Box::new)
        .map_err(|e| ParseError::Invalid {
            kind: kind.to_owned(),
            path: FieldPath::from_serde(e.path()),
            message: e.inner().to_string(),
        })
}

/// A manifest's `apiVersion` and `kind` (empty when missing).
fn header(v: &serde_json::Value) -> (String, String) {
    let field = |f: &str| v.get(f).and_then(|s| s.as_str()).unwrap_or("").to_owned();
    (field("apiVersion"), field("kind"))
}

impl KubeObject {
    /// Parses a manifest: a JSON value with `apiVersion` and `kind`. A namespaced object
    /// without a namespace is put in `default`, as `kubectl apply` would.
    ///
    /// ```
    /// use xdsc_kube::translate::{KubeObject, ParseError};
    /// let svc = KubeObject::from_value(serde_json::json!({
    ///     "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
    ///     "spec": {"ports": [{"port": 80}]},
    /// })).unwrap();
    /// assert_eq!(svc.id().to_string(), "Service default/web");
    ///
    /// let err = KubeObject::from_value(serde_json::json!({
    ///     "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
    ///     "spec": {"ports": [{"port": "eighty"}]},
    /// })).unwrap_err();
    /// assert!(err.to_string().starts_with("Service: spec.ports[0].port: "), "{err}");
    /// assert!(matches!(
    ///     KubeObject::from_value(serde_json::json!({"apiVersion": "v1", "kind": "Pod"})),
    ///     Err(ParseError::Unsupported { .. })
    /// ));
    /// ```
    pub fn from_value(v: serde_json::Value) -> Result<KubeObject, ParseError> {
        let (api_version, kind) = header(&v);
        KubeObject::typed(api_version, kind, v)
    }

    /// [`KubeObject::from_value`] of a borrowed value: what a reader that keeps the value
    /// (for positions) uses instead of cloning it.
    ///
    /// ```
    /// use xdsc_kube::translate::KubeObject;
    /// let v = serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}});
    /// assert_eq!(KubeObject::from_json(&v).unwrap(), KubeObject::from_value(v).unwrap());
    /// ```
    pub fn from_json(v: &serde_json::Value) -> Result<KubeObject, ParseError> {
        let (api_version, kind) = header(v);
        KubeObject::typed(api_version, kind, v)
    }

    /// The typed object of a manifest whose `apiVersion` and `kind` were read.
    fn typed<'de, D: serde::Deserializer<'de>>(
        api_version: String,
        kind: String,
        v: D,
    ) -> Result<KubeObject, ParseError> {
        let Some(k) = KubeKind::of(&api_version, &kind) else {
            return Err(ParseError::Unsupported { api_version, kind });
        };
        let mut object = match k {
            KubeKind::Ingress => KubeObject::Ingress(parse(&kind, v)?),
            KubeKind::IngressClass => KubeObject::IngressClass(parse(&kind, v)?),
            KubeKind::Service => KubeObject::Service(parse(&kind, v)?),
            KubeKind::EndpointSlice => KubeObject::EndpointSlice(parse(&kind, v)?),
            KubeKind::Secret => KubeObject::Secret(parse(&kind, v)?),
            KubeKind::Namespace => KubeObject::Namespace(parse(&kind, v)?),
            KubeKind::Gateway => KubeObject::Gateway(parse(&kind, v)?),
            KubeKind::GatewayClass => KubeObject::GatewayClass(parse(&kind, v)?),
            KubeKind::HttpRoute => KubeObject::HttpRoute(parse(&kind, v)?),
            KubeKind::GrpcRoute => KubeObject::GrpcRoute(parse(&kind, v)?),
            KubeKind::TlsRoute => KubeObject::TlsRoute(parse(&kind, v)?),
            KubeKind::TcpRoute => KubeObject::TcpRoute(parse(&kind, v)?),
            KubeKind::ReferenceGrant => KubeObject::ReferenceGrant(parse(&kind, v)?),
        };
        let namespaced = object.namespaced();
        let meta = object.metadata_mut();
        if meta.name.as_deref().is_none_or(str::is_empty) {
            return Err(ParseError::Invalid {
                kind,
                path: ("metadata", "name").to_field_path(),
                message: "missing".into(),
            });
        }
        if namespaced && meta.namespace.as_deref().is_none_or(str::is_empty) {
            meta.namespace = Some("default".into());
        }
        if !namespaced {
            meta.namespace = None;
        }
        Ok(object)
    }

    /// The object's kind, as written in manifests.
    ///
    /// ```
    /// # use xdsc_kube::translate::KubeObject;
    /// let o = KubeObject::from_value(serde_json::json!({
    ///     "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
    ///     "metadata": {"name": "xdsc"}, "spec": {"controllerName": "x"},
    /// })).unwrap();
    /// assert_eq!(o.kind(), "GatewayClass");
    /// ```
    pub fn kind(&self) -> &'static str {
        self.kube_kind().as_str()
    }

    /// The object's [`KubeKind`].
    pub fn kube_kind(&self) -> KubeKind {
        match self {
            KubeObject::Ingress(_) => KubeKind::Ingress,
            KubeObject::IngressClass(_) => KubeKind::IngressClass,
            KubeObject::Service(_) => KubeKind::Service,
            KubeObject::EndpointSlice(_) => KubeKind::EndpointSlice,
            KubeObject::Secret(_) => KubeKind::Secret,
            KubeObject::Namespace(_) => KubeKind::Namespace,
            KubeObject::Gateway(_) => KubeKind::Gateway,
            KubeObject::GatewayClass(_) => KubeKind::GatewayClass,
            KubeObject::HttpRoute(_) => KubeKind::HttpRoute,
            KubeObject::GrpcRoute(_) => KubeKind::GrpcRoute,
            KubeObject::TlsRoute(_) => KubeKind::TlsRoute,
            KubeObject::TcpRoute(_) => KubeKind::TcpRoute,
            KubeObject::ReferenceGrant(_) => KubeKind::ReferenceGrant,
        }
    }

    fn namespaced(&self) -> bool {
        self.kube_kind().namespaced()
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            KubeObject::Ingress(o) => &o.metadata,
            KubeObject::IngressClass(o) => &o.metadata,
            KubeObject::Service(o) => &o.metadata,
            KubeObject::EndpointSlice(o) => &o.metadata,
            KubeObject::Secret(o) => &o.metadata,
            KubeObject::Gateway(o) => &o.metadata,
            KubeObject::GatewayClass(o) => &o.metadata,
            KubeObject::HttpRoute(o) => &o.metadata,
            KubeObject::GrpcRoute(o) => &o.metadata,
            KubeObject::TlsRoute(o) => &o.metadata,
            KubeObject::TcpRoute(o) => &o.metadata,
            KubeObject::ReferenceGrant(o) => &o.metadata,
            KubeObject::Namespace(o) => &o.metadata,
        }
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            KubeObject::Ingress(o) => &mut o.metadata,
            KubeObject::IngressClass(o) => &mut o.metadata,
            KubeObject::Service(o) => &mut o.metadata,
            KubeObject::EndpointSlice(o) => &mut o.metadata,
            KubeObject::Secret(o) => &mut o.metadata,
            KubeObject::Gateway(o) => &mut o.metadata,
            KubeObject::GatewayClass(o) => &mut o.metadata,
            KubeObject::HttpRoute(o) => &mut o.metadata,
            KubeObject::GrpcRoute(o) => &mut o.metadata,
            KubeObject::TlsRoute(o) => &mut o.metadata,
            KubeObject::TcpRoute(o) => &mut o.metadata,
            KubeObject::ReferenceGrant(o) => &mut o.metadata,
            KubeObject::Namespace(o) => &mut o.metadata,
        }
    }

    /// The object's identity: kind, namespace (none for cluster-scoped kinds) and name.
    pub fn id(&self) -> ObjectRef {
        let meta = self.metadata();
        ObjectRef {
            kind: self.kind().to_owned(),
            namespace: if self.namespaced() {
                Some(meta.namespace.clone().unwrap_or_else(|| "default".into()))
            } else {
                None
            },
            name: meta.name.clone().unwrap_or_default(),
        }
    }
}

/// The identity of a Kubernetes object: kind, namespace (none for cluster-scoped kinds) and
/// name; the core's [`SourceRef`](xdsc_core::diagnostic::SourceRef), so diagnostics name
/// Kubernetes objects without the core knowing Kubernetes.
///
/// ```
/// use xdsc_kube::translate::ObjectRef;
/// let r = ObjectRef::new("Ingress", Some("default"), "web");
/// assert_eq!(r.to_string(), "Ingress default/web");
/// assert_eq!(ObjectRef::new("IngressClass", None, "xdsc").to_string(), "IngressClass xdsc");
/// ```
pub use xdsc_core::diagnostic::SourceRef as ObjectRef;

/// Every Kubernetes object known, keyed by [`ObjectRef`], each with where it was read.
///
/// ```
/// use xdsc_kube::translate::{Inputs, KubeObject};
/// let svc = KubeObject::from_value(serde_json::json!({
///     "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
/// })).unwrap();
/// let id = svc.id();
/// let mut inputs = Inputs::default();
/// inputs.insert(svc, Some("web.yaml:1".into()));
/// assert_eq!(inputs.len(), 1);
/// assert_eq!(inputs.origin(&id), Some("web.yaml:1"));
/// assert!(inputs.remove(&id).is_some());
/// assert!(inputs.is_empty());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub(crate) objects: BTreeMap<ObjectRef, (KubeObject, Option<String>)>,
}

impl Inputs {
    /// Adds or replaces an object (by its [`KubeObject::id`]); `origin` (such as
    /// `path/to/file.yaml:12`) appears in provenance and diagnostics. Returns the object it
    /// replaced.
    pub fn insert(&mut self, object: KubeObject, origin: Option<String>) -> Option<KubeObject> {
        self.objects
            .insert(object.id(), (object, origin))
            .map(|(o, _)| o)
    }

    /// Removes an object; returns it.
    pub fn remove(&mut self, id: &ObjectRef) -> Option<KubeObject> {
        self.objects.remove(id).map(|(o, _)| o)
    }

    /// The object with this identity.
    pub fn get(&self, id: &ObjectRef) -> Option<&KubeObject> {
        self.objects.get(id).map(|(o, _)| o)
    }

    /// Where the object was read, if known.
    pub fn origin(&self, id: &ObjectRef) -> Option<&str> {
        self.objects.get(id).and_then(|(_, o)| o.as_deref())
    }

    /// The number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether there are no objects.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Every object, ordered by identity.
    pub fn iter(&self) -> impl Iterator<Item = (&ObjectRef, &KubeObject)> + '_ {
        self.objects.iter().map(|(k, (o, _))| (k, o))
    }

    /// The objects of one kind, ordered by namespace and name.
    pub(crate) fn of_kind(
        &self,
        kind: KubeKind,
    ) -> impl Iterator<Item = (&ObjectRef, &KubeObject)> + '_ {
        let lo = kind.id(None, "");
        self.objects
            .range(lo..)
            .take_while(move |(k, _)| k.kind == kind)
            .map(|(k, (o, _))| (k, o))
    }
}

/// What the translation takes and where it serves it.
///
/// ```
/// let o = xdsc_kube::translate::Options::default();
/// assert_eq!((o.ingress_http_port, o.ingress_https_port), (8080, 8443));
/// assert_eq!(o.ingress_controller, "xdsc.dev/ingress-controller");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The port of the Ingress HTTP listener (default 8080).
    pub ingress_http_port: u16,
    /// The port of the Ingress HTTPS listener (default 8443).
    pub ingress_https_port: u16,
    /// The `spec.controller` of IngressClasses that are ours (default
    /// `xdsc.dev/ingress-controller`).
    pub ingress_controller: String,
    /// The `spec.controllerName` of GatewayClasses that are ours (default
    /// `xdsc.dev/gateway-controller`).
    pub gateway_controller: String,
    /// Added to a Gateway listener port below 1024 to get the port Envoy binds (default
    /// 10000: port 80 binds 10080).
    pub privileged_port_offset: u16,
    /// Take an Ingress without a class when no IngressClass exists at all (default true, as
    /// for files; a controller in a cluster sets it to false).
    pub take_unclassed_ingress_without_classes: bool,
    /// The addresses written into the `status.loadBalancer` of every Ingress taken (the
    /// controller's `--status-address`; default none).
    pub ingress_status_addresses: Vec<String>,
    /// A Service whose `status.loadBalancer` is copied into every Ingress taken (the
    /// controller's `--publish-service`); its addresses come after
    /// [`Options::ingress_status_addresses`].
    pub publish_service: Option<ObjectRef>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            ingress_http_port: 8080,
            ingress_https_port: 8443,
            ingress_controller: "xdsc.dev/ingress-controller".into(),
            gateway_controller: "xdsc.dev/gateway-controller".into(),
            privileged_port_offset: 10000,
            take_unclassed_ingress_without_classes: true,
            ingress_status_addresses: Vec::new(),
            publish_service: None,
        }
    }
}

/// A problem with a Kubernetes object (what was left out or not served as written): the
/// core's [`Diagnostic`] with a
/// [`Subject::Source`](xdsc_core::diagnostic::Subject::Source) subject. Where the object was
/// read is not part of it ([`Inputs::origin`] says), so moving an object in its file changes
/// no diagnostic.
///
/// ```
/// use xdsc_kube::translate::{Diagnostic, ObjectRef, Severity};
/// use xdsc_core::diagnostic::Problem;
/// let d = Diagnostic::new(
///     ObjectRef::new("Ingress", Some("default"), "web"),
///     Severity::Error,
///     ("spec", "rules", 0, "http", "paths", 1, "backend", "service", "port"),
///     Problem::invalid("service default/api has no port named \"grpc\""),
/// );
/// assert_eq!(d.to_string(), "error: Ingress default/web: spec.rules[0].http.paths[1].backend.service.port: service default/api has no port named \"grpc\"");
/// ```
pub use xdsc_core::diagnostic::Diagnostic;
