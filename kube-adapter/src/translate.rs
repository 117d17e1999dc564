//! Kubernetes objects in, model objects, diagnostics and statuses out: what the translation
//! means.
//!
//! The translation runs in units ([`crate::translator`] says how they are kept and
//! recomputed); [`full`] is the one-shot form, which reads every object in an
//! [`Inputs`] and returns a [`Translation`]: the model objects (sorted by key), the
//! [`Diagnostic`]s (sorted) and the computed statuses ([`crate::status`]). It is a pure
//! function of its arguments: the same inputs give byte-identical output whatever order the
//! objects were inserted in. It does no I/O and knows nothing of files or clusters:
//! `xdsc-file` and the controller both feed it.
//!
//! # What is taken
//!
//! - An **Ingress** whose class (`spec.ingressClassName`, or the deprecated
//!   `kubernetes.io/ingress.class` annotation) names an IngressClass with
//!   `spec.controller` = [`Options::ingress_controller`]; an Ingress without a class when one of
//!   our IngressClasses is annotated `ingressclass.kubernetes.io/is-default-class: "true"`, or
//!   when no IngressClass exists at all and
//!   [`Options::take_unclassed_ingress_without_classes`] is set (the file case).
//! - A **Gateway** whose GatewayClass has `spec.controllerName` =
//!   [`Options::gateway_controller`], and the **HTTPRoutes**, **GRPCRoutes**, **TLSRoutes**
//!   and **TCPRoutes** attached to its listeners; **ReferenceGrants** for the
//!   cross-namespace references they allow.
//! - **Services**, **EndpointSlices** and **Secrets** only as those refer to them, and
//!   **Namespaces** for their labels (`allowedRoutes` selectors).
//!
//! # Model names
//!
//! Every name starts with `k8s:`, which hand-written model objects should not use, so the two
//! never collide. A `*` of a host name is written `~` (hosts cannot contain `~`).
//!
//! | model object | name |
//! |---|---|
//! | Cluster and Endpoints of a Service port | `k8s:NAMESPACE/SERVICE:PORT` (the Service's port number) |
//! | The same, in HTTP/2 for GRPCRoute backends | `k8s:NAMESPACE/SERVICE:PORT:h2c` (unless the port's `appProtocol` is already h2c or grpc) |
//! | Secret from a TLS Secret | `k8s:NAMESPACE/NAME` |
//! | Ingress listeners | `k8s:ingress-http`, `k8s:ingress-https` |
//! | Ingress virtual host | `k8s:ingress:HOST` (`k8s:ingress:~` for rules without a host) |
//! | Gateway listener (one per Envoy port, every Gateway's listeners on it) | `k8s:gateway:PORT` (the Envoy port) |
//! | Gateway virtual host | `k8s:gateway:PORT:HOST` |
//! | TLSRoute / TCPRoute (a TCP route of the port's listener) | `RANK:NAMESPACE/NAME` / `NAMESPACE/NAME` |
//! | Ingress route | `NAMESPACE/NAME:rR:pP` (rule and path index), `~default-backend` |
//! | HTTPRoute route | `RANK:NAMESPACE/NAME:rR:mM`, RANK zero-padded (see below) |
//!
//! # Ingress semantics
//!
//! - `pathType: Prefix` matches path elements (`/foo` matches `/foo` and `/foo/bar`, not
//!   `/foobar`); a trailing `/` in the rule is ignored; `/` matches everything.
//!   `ImplementationSpecific` is treated as `Prefix`. `Exact` matches the path exactly.
//!   Exact beats Prefix and the longest prefix wins (the core's route precedence).
//! - Host wildcards `*.foo.com` match exactly one DNS label, as the Ingress spec says. Envoy's
//!   `*.foo.com` domain matches any number of labels, so each route of a wildcard host also
//!   requires `:authority` to match `[^.]+\.foo\.com`; rules without a host are copied into
//!   the wildcard host with that header match inverted, so `a.b.foo.com` still reaches them.
//!   A request whose host has a virtual host is routed by that host's rules only (Envoy picks
//!   the virtual host first), then by the default backend.
//! - Several Ingresses for one host merge. The same host, path and path type from two
//!   Ingresses is a conflict: the oldest Ingress (`creationTimestamp`, then namespace/name)
//!   keeps it and the other gets an error. The same for `defaultBackend` (one, global: the
//!   catch-all of every Ingress host and of any other host, on both listeners) and for a TLS
//!   host claimed with two Secrets.
//! - `tls[]` entries become certificates of the HTTPS listener by SNI host; an entry without
//!   hosts is the default certificate. A host is served on HTTPS when a TLS entry names it
//!   (or a wildcard entry covers it, or its Ingress has an entry without hosts); every host is
//!   served on HTTP. A TLS entry whose Secret is missing or not `kubernetes.io/tls` is left
//!   out with an error.
//! - A backend Service port is resolved by name or number; the cluster is the Service port,
//!   its endpoints those of the EndpointSlices labelled `kubernetes.io/service-name`, with
//!   the slice port of the same name. A missing Service or port is an error and the route
//!   forwards to a cluster that does not exist, which the core answers with 503.
//! - Unsupported, reported as errors (the rest is served): `backend.resource` (answers 503),
//!   Services of type `ExternalName`, EndpointSlices of address type `FQDN`, and annotations
//!   of other controllers that change routing (`nginx.ingress.kubernetes.io/*` and the like).
//!   Harmless annotations (`kubectl.kubernetes.io/*`, Helm, Argo CD, cert-manager, ...) are
//!   ignored silently.
//!
//! # Endpoints
//!
//! Ready endpoints (a missing `ready` counts as ready) are healthy at priority 0; serving and
//! terminating ones that are not ready go to priority 1, which Envoy uses only when priority
//! 0 lacks healthy endpoints; the rest are left out. The zone becomes the locality's zone.
//! Endpoints of several slices merge, duplicates dropped, sorted.
//!
//! # Gateway API semantics
//!
//! See [`gateway`] for the types and versions read (Gateway API v1.5: Standard kinds at
//! `v1`, TCPRoute at `v1alpha2`, older versions accepted) and `gateways` for the units.
//!
//! - **Listeners.** `HTTP`, `HTTPS` (TLS mode `Terminate`, the first `certificateRefs`
//!   Secret, served for the listener's hostname by SNI), `TLS` with mode `Passthrough`
//!   (TLSRoutes by SNI, unterminated) and `TCP` (one TCPRoute) are served; other protocols
//!   and TLS mode `Terminate` on `TLS` listeners are not (`UnsupportedProtocol`). A port
//!   below 1024 binds port + [`Options::privileged_port_offset`]. Every listener of every
//!   Gateway of ours on one Envoy port is served by one model listener: listeners merge
//!   when they agree on the protocol and have different hostnames. Conflicts are resolved
//!   oldest Gateway first (then namespace/name, then listener order): the first listener
//!   decides the port's protocol, a listener of another is `Conflicted` (`ProtocolConflict`),
//!   one whose hostname (any, for TCP) is already on the port is `Conflicted`
//!   (`HostnameConflict`); a conflicted listener is not served.
//! - **Route kinds.** HTTP and HTTPS listeners take HTTPRoutes and GRPCRoutes, TLS listeners
//!   TLSRoutes, TCP listeners TCPRoutes; `allowedRoutes.kinds` narrows that, and a kind it
//!   names that the listener cannot take is `ResolvedRefs` `InvalidRouteKinds` (left out
//!   of `supportedKinds`).
//! - **Attachment.** A route attaches through each `parentRefs` entry to the listeners of
//!   that Gateway that its `sectionName` and `port` select, that take its kind, and whose
//!   `allowedRoutes.namespaces.from` (`Same`, the default, `All`, or `Selector` on the
//!   Namespace's labels) admits it. Its hostnames are intersected with the listener's (`*.x`
//!   covers one or more labels, as Envoy's domains do); none in common means not attached.
//!   `attachedRoutes` counts by `parentRefs`, `allowedRoutes` and kind, as the spec says,
//!   whatever the hostnames. A request is routed by its most specific host's routes (Envoy
//!   picks the virtual host first); the spec would fall back to routes of less specific
//!   hosts (not done yet: it needs an order across hosts that the core's route order cannot
//!   express).
//! - **HTTPRoute matches**: path `Exact`, `PathPrefix` (element-wise), `RegularExpression`;
//!   headers and query parameters `Exact` and `RegularExpression`; method. Routes on one
//!   port and host follow the spec's precedence: exact path, longest prefix, method, most
//!   headers, most query parameters, oldest route, `namespace/name`, then rule and match
//!   order. The core orders by match (exact, regex, longest prefix, method, headers, query)
//!   and then by name, so route names start with a zero-padded rank that encodes the
//!   remaining tie-breaks. A match equal to one that precedes it is reported and left out.
//! - **GRPCRoute matches**: method `Exact` (service and method: the path
//!   `/SERVICE/METHOD`; one of them: the other is any segment) and `RegularExpression`,
//!   headers `Exact` and `RegularExpression`. Filters `RequestHeaderModifier`,
//!   `ResponseHeaderModifier`, `RequestMirror`; backends are spoken to in HTTP/2.
//! - **HTTPRoute filters**: `RequestHeaderModifier` and `ResponseHeaderModifier` (set, add,
//!   remove), `RequestRedirect` (scheme, hostname, port, `ReplaceFullPath`,
//!   `ReplacePrefixMatch`, status code, default 302; without a port, the scheme's well-known
//!   port or, without a scheme either, the listener's, left out of `Location` when
//!   well-known; replacing a prefix with `/` never leaves `//`), `URLRewrite` (hostname,
//!   `ReplaceFullPath`, `ReplacePrefixMatch`) and `RequestMirror`.
//! - **TLSRoute**: one TCP route per TLSRoute, by the SNI names of its hostnames intersected
//!   with the listener's (a name an older route already routes is left out, with a
//!   warning); every rule's backends together. **TCPRoute**: the oldest TCPRoute attached to
//!   a TCP listener takes it; a later one is `Accepted` `UnsupportedValue`.
//! - **Backends** (`backendRefs`): Services with a port, weight 1 by default, 0 meaning
//!   never; a Service in another namespace only where a ReferenceGrant there allows the
//!   route's kind and namespace (else `RefNotPermitted`). A rule whose backends are all
//!   invalid (or that has none) answers 500, as does one whose weights are all 0. An
//!   invalid backend beside valid ones is dropped by the core, so its share goes to the
//!   others (the spec asks for 500 for that share; it needs a core change). TLS and TCP
//!   routes leave invalid backends out; with none left, connections are refused.
//! - **Certificates**: a Secret in another namespace only where a ReferenceGrant there
//!   allows Gateways of the Gateway's namespace (else listener `ResolvedRefs`
//!   `RefNotPermitted`); a missing or unusable one is `InvalidCertificateRef`.
//! - Unsupported, reported as errors: more than one certificate (a warning: the first is
//!   served), `ExtensionRef` filters (the rule answers 500), backend-level filters
//!   (ignored), and backends other than Services (`InvalidKind`).
//!
//! # Status
//!
//! Computed, not written (the controller writes it; [`crate::status::ObjectStatus::to_json`]
//! gives the API's shape): GatewayClass `Accepted`; Gateway `Accepted` (`ListenersNotValid`
//! when some listener is not served) and `Programmed`; per listener `Accepted`
//! (`UnsupportedProtocol`, `PortUnavailable`, `Invalid` when conflicted), `Conflicted`
//! (`HostnameConflict`, `ProtocolConflict`, `NoConflicts`), `ResolvedRefs`
//! (`InvalidCertificateRef`, `RefNotPermitted`, `InvalidRouteKinds`), `Programmed`,
//! `supportedKinds` and `attachedRoutes`; per route (every kind) and parent `Accepted`
//! (`NoMatchingParent`, `NotAllowedByListeners`, `NoMatchingListenerHostname`,
//! `UnsupportedValue`) and `ResolvedRefs` (`BackendNotFound`, `InvalidKind`,
//! `RefNotPermitted`); for each Ingress taken, `status.loadBalancer` from
//! [`Options::ingress_status_addresses`] and [`Options::publish_service`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::de::DeserializeOwned;
pub use xdsc_core::compile::Severity;
use xdsc_core::diagnostic::{FieldPath, Problem, ToFieldPath};
use xdsc_core::model;

use crate::status::{Condition, ObjectStatus, Scope, StatusPart};
use crate::translator::{Dep, ObjectChange, Output, Translator, UnitKey, World};

pub(crate) mod backends;
pub mod gateway;
pub(crate) mod gateways;
mod grants;
pub(crate) mod httproute;
pub(crate) mod ingress;

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

    /// The kind of a manifest's `apiVersion` and `kind`, if it is read.
    pub fn of(api_version: &str, kind: &str) -> Option<KubeKind> {
        let gateway_api = gateway::API_VERSIONS.contains(&(api_version, kind));
        KubeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind && (k.api_version() == api_version || gateway_api))
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

fn parse<T: DeserializeOwned>(kind: &str, v: serde_json::Value) -> Result<Box<T>, ParseError> {
    serde_path_to_error::deserialize(v)
        .map(Box::new)
        .map_err(|e| ParseError::Invalid {
            kind: kind.to_owned(),
            path: FieldPath::from_serde(e.path()),
            message: e.inner().to_string(),
        })
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
        let field = |f: &str| v.get(f).and_then(|s| s.as_str()).unwrap_or("").to_owned();
        let (api_version, kind) = (field("apiVersion"), field("kind"));
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
    pub(crate) fn of_kind<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a ObjectRef, &'a KubeObject)> + 'a {
        let lo = ObjectRef {
            kind: kind.to_owned(),
            namespace: None,
            name: String::new(),
        };
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

/// The model objects, diagnostics and statuses of a translation.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Translation {
    /// Model objects, sorted by key (kind, then name).
    pub objects: Vec<model::Object>,
    /// Diagnostics, sorted.
    pub diagnostics: Vec<Diagnostic>,
    /// The computed status of each object that has one (see [`crate::status`]).
    pub statuses: BTreeMap<ObjectRef, ObjectStatus>,
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

/// Translates every object taken (see the module docs) into model objects: a
/// [`Translator`] given every object at once.
///
/// ```
/// use xdsc_kube::translate::{self, Inputs, KubeObject, Options};
/// let mut inputs = Inputs::default();
/// inputs.insert(KubeObject::from_value(serde_json::json!({
///     "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
///     "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
/// })).unwrap(), None);
/// let out = translate::full(&inputs, &Options::default());
/// let names: Vec<_> = out.objects.iter().map(|o| o.key().to_string()).collect();
/// assert_eq!(names, ["Listener/k8s:ingress-http", "VirtualHost/k8s:ingress:~"]);
/// assert_eq!(out.diagnostics[0].problem.to_string(), "service default/web does not exist");
/// ```
pub fn full(inputs: &Inputs, options: &Options) -> Translation {
    let mut t = Translator::new(options.clone());
    t.apply(
        inputs
            .objects
            .values()
            .map(|(o, origin)| ObjectChange::upsert(o.clone(), origin.clone())),
    );
    t.translation()
}

/// The context of one unit of the translation: every read of an input goes through it and
/// is recorded as a [`Dep`], so the translator knows what to recompute when that input
/// changes. A unit function must not reach the inputs any other way.
pub(crate) struct Cx<'a> {
    world: &'a World,
    pub(crate) options: &'a Options,
    out: Output,
    deps: BTreeSet<Dep>,
    /// Valid clusters this unit forwards to.
    pub(crate) clusters: BTreeSet<String>,
    /// Why references did not resolve (status reason, message), newest last.
    pub(crate) ref_problems: Vec<(&'static str, String)>,
}

impl<'a> Cx<'a> {
    pub(crate) fn new(world: &'a World) -> Cx<'a> {
        Cx {
            world,
            options: &world.options,
            out: Output::default(),
            deps: BTreeSet::new(),
            clusters: BTreeSet::new(),
            ref_problems: Vec::new(),
        }
    }

    pub(crate) fn ref_problem(&mut self, reason: &'static str, message: impl Into<String>) {
        self.ref_problems.push((reason, message.into()));
    }

    pub(crate) fn finish(self) -> (Output, BTreeSet<Dep>) {
        (self.out, self.deps)
    }

    pub(crate) fn depend(&mut self, dep: Dep) {
        self.deps.insert(dep);
    }

    /// One object by identity.
    pub(crate) fn get(&mut self, id: &ObjectRef) -> Option<&'a KubeObject> {
        self.deps.insert(Dep::Object(id.clone()));
        self.world.inputs.get(id)
    }

    /// Every object of a (small) kind.
    pub(crate) fn of_kind(
        &mut self,
        kind: &'static str,
    ) -> impl Iterator<Item = (&'a ObjectRef, &'a KubeObject)> + 'a {
        self.deps.insert(Dep::Kind(kind));
        self.world.inputs.of_kind(kind)
    }

    /// Members of an index set, each read as an object.
    fn members(
        &mut self,
        dep: Dep,
        set: Option<&'a BTreeSet<ObjectRef>>,
    ) -> Vec<(&'a ObjectRef, &'a KubeObject)> {
        self.deps.insert(dep);
        set.into_iter()
            .flatten()
            .filter_map(|id| self.get(id).map(|o| (id, o)))
            .collect()
    }

    /// The EndpointSlices labelled for a Service.
    pub(crate) fn slices(
        &mut self,
        namespace: &str,
        service: &str,
    ) -> Vec<(&'a ObjectRef, &'a KubeObject)> {
        let key = (namespace.to_owned(), service.to_owned());
        let set = self.world.facts.slices.get(&key);
        self.members(Dep::Slices(key.0, key.1), set)
    }

    /// The Ingresses with a rule for a host.
    pub(crate) fn host_ingresses(&mut self, host: &str) -> Vec<(&'a ObjectRef, &'a KubeObject)> {
        let set = self.world.facts.hosts.get(host);
        self.members(Dep::HostIngresses(host.to_owned()), set)
    }

    /// The Ingress-wide fields of every Ingress.
    pub(crate) fn ingress_heads(&mut self) -> &'a BTreeMap<ObjectRef, ingress::Head> {
        self.deps.insert(Dep::IngressHeads);
        &self.world.facts.heads
    }

    /// The Ingress-wide decisions; read them through [`ingress::Global`]'s methods, which
    /// record what was read.
    pub(crate) fn ingress_global(&self) -> &'a ingress::Global {
        &self.world.ingress
    }

    /// Reports a problem with `object`, an object this unit read. `field` is built only
    /// here (see [`ToFieldPath`]).
    fn report(
        &mut self,
        severity: Severity,
        object: &ObjectRef,
        field: impl ToFieldPath,
        message: impl fmt::Display,
    ) {
        self.out.diagnostics.insert(Diagnostic::new(
            object.clone(),
            severity,
            field,
            Problem::Invalid(message.to_string()),
        ));
    }

    pub(crate) fn error(
        &mut self,
        object: &ObjectRef,
        field: impl ToFieldPath,
        message: impl fmt::Display,
    ) {
        self.report(Severity::Error, object, field, message);
    }

    pub(crate) fn warn(
        &mut self,
        object: &ObjectRef,
        field: impl ToFieldPath,
        message: impl fmt::Display,
    ) {
        self.report(Severity::Warning, object, field, message);
    }

    /// The provenance entry of an object (read, so that a new origin updates it).
    pub(crate) fn source(&mut self, object: &ObjectRef) -> model::Source {
        self.deps.insert(Dep::Object(object.clone()));
        source_with(object, self.world.inputs.origin(object))
    }

    /// Sorted, deduplicated provenance of several objects.
    pub(crate) fn sources<'r>(
        &mut self,
        objects: impl IntoIterator<Item = &'r ObjectRef>,
    ) -> Vec<model::Source> {
        let mut out: Vec<model::Source> = objects.into_iter().map(|o| self.source(o)).collect();
        out.sort();
        out.dedup();
        out
    }

    pub(crate) fn emit(&mut self, object: impl Into<model::Object>) {
        let object = object.into();
        self.out.objects.insert(object.key(), object);
    }

    /// This unit needs a demand-driven unit (a Service port's Cluster, a Secret).
    pub(crate) fn use_unit(&mut self, unit: UnitKey) {
        self.out.uses.insert(unit);
    }

    /// A part of an object's status.
    pub(crate) fn status(&mut self, object: &ObjectRef, part: StatusPart) {
        self.out
            .status
            .entry(object.clone())
            .or_default()
            .push(part);
    }

    /// A condition of an object's status.
    pub(crate) fn condition(&mut self, object: &ObjectRef, scope: Scope, condition: Condition) {
        self.status(object, StatusPart::Condition(scope, condition));
    }

    pub(crate) fn set_ingress_global(&mut self, global: ingress::Global) {
        self.out.ingress = Some(global);
    }
}

/// A provenance entry from an identity and origin.
pub(crate) fn source_with(object: &ObjectRef, origin: Option<&str>) -> model::Source {
    model::Source {
        kind: object.kind.clone(),
        namespace: object.namespace.clone(),
        name: object.name.clone(),
        origin: origin.map(str::to_owned),
    }
}

/// The order in which conflicting objects win: oldest first (objects without a creation time
/// last), then by namespace and name.
fn age_key<'a>(meta: &'a ObjectMeta, id: &'a ObjectRef) -> impl Ord + 'a {
    let ts: Option<&Time> = meta.creation_timestamp.as_ref();
    (ts.is_none(), ts, id.namespace.as_deref(), id.name.as_str())
}

/// `*` becomes `~` in model names.
fn host_in_name(host: &str) -> String {
    host.replace('*', "~")
}

/// A lowercased host name or `*.` wildcard, if valid.
fn check_host(host: &str) -> Option<String> {
    let h = host.to_ascii_lowercase();
    let rest = h.strip_prefix("*.").unwrap_or(&h);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    (h.len() <= 253 && rest.split('.').all(label_ok)).then_some(h)
}

/// An element-wise prefix match (Ingress `Prefix`, Gateway API `PathPrefix`): a trailing `/`
/// is ignored, and `/` matches every path.
fn prefix_match(path: &str) -> model::PathMatch {
    match path.trim_end_matches('/') {
        "" => model::PathMatch::Prefix("/".into()),
        trimmed => model::PathMatch::PathPrefix(trimmed.to_owned()),
    }
}
