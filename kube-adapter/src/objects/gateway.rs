//! The Gateway API objects read, with the fields the translation uses: `GatewayClass`,
//! `Gateway`, `HTTPRoute`, `GRPCRoute`, `TLSRoute`, `TCPRoute` and `ReferenceGrant`.
//!
//! The target is Gateway API v1.5: the kinds of its Standard channel are read at `v1`
//! (GatewayClass, Gateway, HTTPRoute, GRPCRoute, TLSRoute, ReferenceGrant), TCPRoute at
//! `v1alpha2` (Experimental). The older versions the upstream CRDs still serve, with the same
//! fields, are read too (see [`API_VERSIONS`]), so manifests written for v1.2 to v1.4 work.
//!
//! These are our own serde types rather than the `gateway-api` crate's: that crate (0.22)
//! depends on k8s-openapi 0.28 and kube 4, which would put a second k8s-openapi into the
//! build. Field names follow the API; fields not listed here (status, and spec fields the
//! translation does not read) are ignored when parsing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

/// The `apiVersion` of the Standard-channel objects here.
pub const API_VERSION: &str = "gateway.networking.k8s.io/v1";

/// The API group of the objects here.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// Every `(apiVersion, kind)` read: the Standard kinds at `v1` and at the older versions the
/// upstream CRDs serve, the Experimental ones at theirs.
pub const API_VERSIONS: [(&str, &str); 14] = [
    (API_VERSION, "GatewayClass"),
    (API_VERSION, "Gateway"),
    (API_VERSION, "HTTPRoute"),
    (API_VERSION, "GRPCRoute"),
    (API_VERSION, "TLSRoute"),
    (API_VERSION, "ReferenceGrant"),
    ("gateway.networking.k8s.io/v1beta1", "GatewayClass"),
    ("gateway.networking.k8s.io/v1beta1", "Gateway"),
    ("gateway.networking.k8s.io/v1beta1", "HTTPRoute"),
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"),
    ("gateway.networking.k8s.io/v1alpha2", "GRPCRoute"),
    ("gateway.networking.k8s.io/v1alpha2", "TLSRoute"),
    ("gateway.networking.k8s.io/v1alpha2", "TCPRoute"),
    ("gateway.networking.k8s.io/v1alpha3", "TLSRoute"),
];

/// A GatewayClass: which controller serves the Gateways of this class.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClass {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The specification.
    pub spec: GatewayClassSpec,
}

/// The specification of a [`GatewayClass`].
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassSpec {
    /// The controller, e.g. `xdsc.dev/gateway-controller`.
    pub controller_name: String,
}

/// A Gateway: listeners routes attach to.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gateway {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The specification.
    pub spec: GatewaySpec,
}

/// The specification of a [`Gateway`].
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// The name of the GatewayClass.
    pub gateway_class_name: String,
    /// The listeners.
    #[serde(default)]
    pub listeners: Vec<Listener>,
}

/// One listener of a [`Gateway`].
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// The listener's name, unique in the Gateway (what `sectionName` refers to).
    pub name: String,
    /// The host name (exact or `*.` wildcard) requests must have; any when absent.
    #[serde(default)]
    pub hostname: Option<String>,
    /// The port.
    pub port: i32,
    /// `HTTP`, `HTTPS`, `TLS`, `TCP` or `UDP`.
    pub protocol: String,
    /// TLS settings (HTTPS).
    #[serde(default)]
    pub tls: Option<GatewayTls>,
    /// Which routes may attach.
    #[serde(default)]
    pub allowed_routes: Option<AllowedRoutes>,
}

/// TLS settings of a [`Listener`].
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTls {
    /// `Terminate` (default) or `Passthrough`.
    #[serde(default)]
    pub mode: Option<String>,
    /// The certificates: Secrets of type `kubernetes.io/tls`.
    #[serde(default)]
    pub certificate_refs: Vec<SecretObjectReference>,
}

/// A reference to a Secret.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretObjectReference {
    /// The API group (empty for the core group).
    #[serde(default)]
    pub group: Option<String>,
    /// The kind (default `Secret`).
    #[serde(default)]
    pub kind: Option<String>,
    /// The name.
    pub name: String,
    /// The namespace (default: the Gateway's).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// Which routes may attach to a [`Listener`].
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowedRoutes {
    /// From which namespaces.
    #[serde(default)]
    pub namespaces: Option<RouteNamespaces>,
    /// Which route kinds (default: those of the listener's protocol).
    #[serde(default)]
    pub kinds: Vec<RouteGroupKind>,
}

/// A route kind, as `allowedRoutes.kinds` and listener status name it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteGroupKind {
    /// The API group (default `gateway.networking.k8s.io`).
    #[serde(default)]
    pub group: Option<String>,
    /// The kind, e.g. `HTTPRoute`.
    pub kind: String,
}

/// The namespaces routes may attach from.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteNamespaces {
    /// `Same` (default), `All` or `Selector`.
    #[serde(default)]
    pub from: Option<String>,
    /// With `from: Selector`: the labels of the namespaces routes may attach from.
    #[serde(default)]
    pub selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
}

/// An HTTPRoute: HTTP routing rules attached to Gateway listeners.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The specification.
    pub spec: HttpRouteSpec,
}

/// The specification of an [`HttpRoute`].
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// The Gateways (and listeners) the route attaches to.
    #[serde(default)]
    pub parent_refs: Vec<ParentReference>,
    /// The host names the route serves; all of the listener's when empty.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// The rules; one rule forwarding `/` to nothing (404) is not implied: no rules, no routes.
    #[serde(default)]
    pub rules: Vec<HttpRouteRule>,
}

/// A reference from a route to a Gateway.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// The API group (default `gateway.networking.k8s.io`).
    #[serde(default)]
    pub group: Option<String>,
    /// The kind (default `Gateway`).
    #[serde(default)]
    pub kind: Option<String>,
    /// The namespace (default: the route's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The Gateway's name.
    pub name: String,
    /// The listener's name.
    #[serde(default)]
    pub section_name: Option<String>,
    /// The listener's port.
    #[serde(default)]
    pub port: Option<i32>,
}

/// One rule of an [`HttpRoute`].
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// The matches (any of them); one `PathPrefix /` match when empty.
    #[serde(default)]
    pub matches: Vec<HttpRouteMatch>,
    /// The filters applied to matched requests.
    #[serde(default)]
    pub filters: Vec<HttpRouteFilter>,
    /// Where matched requests go.
    #[serde(default)]
    pub backend_refs: Vec<HttpBackendRef>,
}

/// A request match: every part must match.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// The path match (default `PathPrefix /`).
    #[serde(default)]
    pub path: Option<HttpPathMatch>,
    /// Header matches.
    #[serde(default)]
    pub headers: Vec<ValueMatch>,
    /// Query parameter matches.
    #[serde(default)]
    pub query_params: Vec<ValueMatch>,
    /// The method.
    #[serde(default)]
    pub method: Option<String>,
}

/// A path match.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpPathMatch {
    /// `Exact`, `PathPrefix` (default) or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// The value (default `/`).
    #[serde(default)]
    pub value: Option<String>,
}

/// A header or query parameter match.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// The header or parameter name.
    pub name: String,
    /// The value.
    pub value: String,
}

/// A filter of a rule or a backend.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteFilter {
    /// `RequestHeaderModifier`, `ResponseHeaderModifier`, `RequestRedirect`, `URLRewrite`,
    /// `RequestMirror` or `ExtensionRef` (not supported).
    #[serde(rename = "type")]
    pub type_: String,
    /// For `RequestHeaderModifier`.
    #[serde(default)]
    pub request_header_modifier: Option<HeaderFilter>,
    /// For `ResponseHeaderModifier`.
    #[serde(default)]
    pub response_header_modifier: Option<HeaderFilter>,
    /// For `RequestRedirect`.
    #[serde(default)]
    pub request_redirect: Option<RequestRedirect>,
    /// For `URLRewrite`.
    #[serde(default, rename = "urlRewrite")]
    pub url_rewrite: Option<UrlRewrite>,
    /// For `RequestMirror`.
    #[serde(default)]
    pub request_mirror: Option<RequestMirror>,
}

/// Headers to set, add and remove.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderFilter {
    /// Set (replace).
    #[serde(default)]
    pub set: Vec<HeaderNameValue>,
    /// Add (append).
    #[serde(default)]
    pub add: Vec<HeaderNameValue>,
    /// Remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderNameValue {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
}

/// A redirect answer.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRedirect {
    /// `http` or `https`.
    #[serde(default)]
    pub scheme: Option<String>,
    /// The host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// The path.
    #[serde(default)]
    pub path: Option<PathModifier>,
    /// The port.
    #[serde(default)]
    pub port: Option<i32>,
    /// 301 (default) or 302 (and 303, 307, 308 where supported).
    #[serde(default)]
    pub status_code: Option<i32>,
}

/// A URL rewrite when forwarding.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlRewrite {
    /// The host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// The path.
    #[serde(default)]
    pub path: Option<PathModifier>,
}

/// A path change.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathModifier {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(rename = "type")]
    pub type_: String,
    /// For `ReplaceFullPath`.
    #[serde(default)]
    pub replace_full_path: Option<String>,
    /// For `ReplacePrefixMatch`.
    #[serde(default)]
    pub replace_prefix_match: Option<String>,
}

/// Mirror requests to a backend.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMirror {
    /// The backend.
    pub backend_ref: BackendObjectReference,
    /// The percentage mirrored (default 100).
    #[serde(default)]
    pub percent: Option<i32>,
}

/// A backend: a Service port.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendObjectReference {
    /// The API group (empty for the core group).
    #[serde(default)]
    pub group: Option<String>,
    /// The kind (default `Service`).
    #[serde(default)]
    pub kind: Option<String>,
    /// The name.
    pub name: String,
    /// The namespace (default: the route's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The Service port (required for Services).
    #[serde(default)]
    pub port: Option<i32>,
}

/// A weighted backend of a rule.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpBackendRef {
    /// The backend.
    #[serde(flatten)]
    pub backend: BackendObjectReference,
    /// The relative weight (default 1; 0 means never).
    #[serde(default)]
    pub weight: Option<i32>,
    /// Filters for this backend only (not supported).
    #[serde(default)]
    pub filters: Vec<HttpRouteFilter>,
}

/// A GRPCRoute: gRPC routing rules attached to Gateway listeners.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRoute {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The specification.
    pub spec: GrpcRouteSpec,
}

/// The specification of a [`GrpcRoute`].
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteSpec {
    /// The Gateways (and listeners) the route attaches to.
    #[serde(default)]
    pub parent_refs: Vec<ParentReference>,
    /// The host names the route serves; all of the listener's when empty.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<GrpcRouteRule>,
}

/// One rule of a [`GrpcRoute`].
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteRule {
    /// The matches (any of them); every request when empty.
    #[serde(default)]
    pub matches: Vec<GrpcRouteMatch>,
    /// The filters: `RequestHeaderModifier`, `ResponseHeaderModifier`, `RequestMirror`
    /// (the fields are those of HTTPRoute's).
    #[serde(default)]
    pub filters: Vec<HttpRouteFilter>,
    /// Where matched requests go.
    #[serde(default)]
    pub backend_refs: Vec<HttpBackendRef>,
}

/// A gRPC request match: every part must match.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteMatch {
    /// The service and method.
    #[serde(default)]
    pub method: Option<GrpcMethodMatch>,
    /// Header (metadata) matches.
    #[serde(default)]
    pub headers: Vec<ValueMatch>,
}

/// A gRPC service and method match.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcMethodMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// The fully qualified service, e.g. `helloworld.Greeter`; any when absent.
    #[serde(default)]
    pub service: Option<String>,
    /// The method, e.g. `SayHello`; any when absent.
    #[serde(default)]
    pub method: Option<String>,
}

/// A TLSRoute: TLS connections routed, unterminated, by SNI.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsRoute {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The specification.
    pub spec: TlsRouteSpec,
}

/// The specification of a [`TlsRoute`].
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsRouteSpec {
    /// The Gateways (and listeners) the route attaches to.
    #[serde(default)]
    pub parent_refs: Vec<ParentReference>,
    /// The SNI host names the route takes; all of the listener's when empty.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// The rules: their backends together take the connections.
    #[serde(default)]
    pub rules: Vec<StreamRouteRule>,
}

/// A TCPRoute: TCP connections of a listener forwarded to backends.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpRoute {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The specification.
    pub spec: TcpRouteSpec,
}

/// The specification of a [`TcpRoute`].
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpRouteSpec {
    /// The Gateways (and listeners) the route attaches to.
    #[serde(default)]
    pub parent_refs: Vec<ParentReference>,
    /// The rules: their backends together take the connections.
    #[serde(default)]
    pub rules: Vec<StreamRouteRule>,
}

/// A rule of a [`TlsRoute`] or [`TcpRoute`]: weighted backends.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamRouteRule {
    /// Where connections go.
    #[serde(default)]
    pub backend_refs: Vec<HttpBackendRef>,
}

/// A ReferenceGrant: objects of other namespaces that may refer to objects of this one.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrant {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The specification.
    pub spec: ReferenceGrantSpec,
}

/// The specification of a [`ReferenceGrant`].
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrantSpec {
    /// Who may refer.
    #[serde(default)]
    pub from: Vec<ReferenceGrantFrom>,
    /// To what, in the grant's namespace.
    #[serde(default)]
    pub to: Vec<ReferenceGrantTo>,
}

/// The objects a [`ReferenceGrant`] lets refer.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrantFrom {
    /// Their API group (empty for the core group).
    #[serde(default)]
    pub group: String,
    /// Their kind, e.g. `HTTPRoute`.
    pub kind: String,
    /// Their namespace.
    pub namespace: String,
}

/// The objects a [`ReferenceGrant`] lets be referred to.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrantTo {
    /// Their API group (empty for the core group).
    #[serde(default)]
    pub group: String,
    /// Their kind, e.g. `Service` or `Secret`.
    pub kind: String,
    /// Their name; every object of the kind when absent.
    #[serde(default)]
    pub name: Option<String>,
}
