//! The Gateway API v1 objects read: `Gateway`, `GatewayClass` and `HTTPRoute`
//! (`gateway.networking.k8s.io/v1`), with the fields the translation uses.
//!
//! These are our own serde types rather than the `gateway-api` crate's: that crate (0.22)
//! depends on k8s-openapi 0.28 and kube 4, which would put a second k8s-openapi into the
//! build. Field names follow the API; fields not listed here (status, and spec fields the
//! translation does not read) are ignored when parsing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

/// The `apiVersion` of the objects here.
pub const API_VERSION: &str = "gateway.networking.k8s.io/v1";

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
