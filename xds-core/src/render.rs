//! Envoy JSON views of compiled resources: one resource, a redacted debug view of a whole
//! snapshot, and a static Envoy bootstrap.
//!
//! Rendering decodes a resource's canonical bytes against the Envoy descriptors compiled into
//! xdsc-core and serializes them the way Envoy's config dumps do: proto field names
//! (`snake_case`), enums by name, `Any` with an `@type`, default values left out. Objects come
//! out with sorted keys, so the same snapshot always renders to the same JSON.
//!
//! [`bootstrap_json`] turns a snapshot built for ADS into a self-contained bootstrap with static
//! resources: EDS clusters become `STATIC` with their load assignment inline, listeners carry
//! their route configurations inline instead of RDS, and SDS references name static secrets.
//!
//! This module does not validate configuration (Envoy does; the compiler makes resources
//! consistent), does not parse JSON back into resources, and can only render `Any` payloads
//! whose types are in xdsc's descriptor pool (see `xds-core/build.rs`). Only [`debug_json`]
//! redacts secrets: [`resource_json`] and [`bootstrap_json`] show them, because their output is
//! configuration for the user's own Envoy.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use envoy_types::pb::envoy::config::bootstrap::v3 as bootstrap;
use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, SerializeOptions};
use serde_json::{Map, Value};

use crate::canonical;
use crate::descriptors::pool;
use crate::snapshot::{Resource, ResourceType, Snapshot};

/// What [`debug_json`] shows in place of secret material.
pub const REDACTED: &str = "[redacted]";

/// The error of rendering: which resource could not be rendered, and why.
///
/// ```
/// use xdsc_core::render::{RenderError, resource_json};
/// use xdsc_core::snapshot::{Resource, ResourceType};
///
/// let bad = Resource::new(ResourceType::Listener, "http", vec![0xff], vec![]);
/// let err = resource_json(&bad).unwrap_err();
/// assert!(matches!(err, RenderError::Decode { ref name, .. } if name == "http"));
/// assert!(err.to_string().starts_with("listeners \"http\""));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A resource's bytes, or a message inside them that rendering must rewrite (such as the
    /// HTTP connection manager in a listener's `Any`), do not decode as the expected message.
    #[error("{resource_type} {name:?}: not a valid {message}: {reason}")]
    Decode {
        /// The type of the resource.
        resource_type: ResourceType,
        /// The resource's name.
        name: String,
        /// The fully qualified protobuf message that failed to decode.
        message: String,
        /// The decoder's explanation.
        reason: String,
    },
    /// A resource decodes but cannot be shown as JSON, typically because it holds an `Any`
    /// whose type is not in xdsc's descriptor pool.
    #[error("{resource_type} {name:?}: cannot render as JSON: {reason}")]
    Json {
        /// The type of the resource.
        resource_type: ResourceType,
        /// The resource's name.
        name: String,
        /// The serializer's explanation.
        reason: String,
    },
    /// The bootstrap's own fields (node, admin) could not be rendered. Only a mismatch between
    /// the embedded descriptors and `envoy-types` can cause this; no resource is involved.
    #[error("cannot render the bootstrap's node and admin: {reason}")]
    Bootstrap {
        /// The serializer's explanation.
        reason: String,
    },
}

/// One resource as Envoy JSON, as Envoy's config dump would show it. Secrets are not redacted.
///
/// ```
/// use xdsc_core::render::resource_json;
/// use xdsc_core::snapshot::{Resource, ResourceType};
///
/// // envoy.config.cluster.v3.Cluster { name: "web" }
/// let cluster = Resource::new(ResourceType::Cluster, "web", vec![10, 3, b'w', b'e', b'b'], vec![]);
/// assert_eq!(resource_json(&cluster).unwrap(), serde_json::json!({ "name": "web" }));
/// ```
pub fn resource_json(resource: &Resource) -> Result<Value, RenderError> {
    let resource_type = resource.resource_type();
    to_json(
        resource_type.message_name(),
        resource.body(),
        resource_type,
        resource.name(),
    )
}

/// A whole snapshot as JSON for humans and debug endpoints, with secret material replaced by
/// [`REDACTED`].
///
/// The shape is `{"version": V, "clusters": {"version": V, "resources": [...]}, "endpoints":
/// ..., "listeners": ..., "routes": ..., "secrets": ...}`, each resource being `{"name",
/// "version", "provenance": ["Kind/name", ...], "resource": {...}}`, in name order. Redacted are
/// the fields Envoy's API marks `(udpa.annotations.sensitive)` (private keys, PKCS#12 bundles,
/// key passwords, session ticket keys, generic secrets, ...) wherever they occur, including
/// inline TLS contexts in listeners and clusters, plus session ticket keys and generic secrets as
/// a whole.
///
/// ```
/// use xdsc_core::render::debug_json;
/// use xdsc_core::snapshot::Snapshot;
///
/// let empty = Snapshot::default();
/// let json = debug_json(&empty).unwrap();
/// assert_eq!(json["version"], empty.version().to_string());
/// assert_eq!(json["secrets"]["resources"], serde_json::json!([]));
/// ```
pub fn debug_json(snapshot: &Snapshot) -> Result<Value, RenderError> {
    let mut out = Map::new();
    out.insert("version".to_owned(), snapshot.version().to_string().into());
    for resource_type in ResourceType::ALL {
        let descriptor = descriptor(resource_type.message_name());
        let resources = snapshot.resources(resource_type);
        let mut list = Vec::with_capacity(resources.len());
        for resource in resources.iter() {
            let mut json = resource_json(resource)?;
            if let Some(descriptor) = &descriptor {
                redact(descriptor, &mut json);
            }
            let provenance: Vec<Value> = resource
                .provenance()
                .iter()
                .map(|key| key.to_string().into())
                .collect();
            list.push(serde_json::json!({
                "name": resource.name(),
                "version": resource.version().to_string(),
                "provenance": provenance,
                "resource": json,
            }));
        }
        out.insert(
            resource_type.short_name().to_owned(),
            serde_json::json!({
                "version": resources.version().to_string(),
                "resources": list,
            }),
        );
    }
    Ok(Value::Object(out))
}

/// Who the rendered bootstrap says the Envoy is, and where its admin interface listens.
///
/// ```
/// use xdsc_core::render::BootstrapOptions;
///
/// let options = BootstrapOptions {
///     node_id: "edge-1".to_owned(),
///     ..BootstrapOptions::default()
/// };
/// assert_eq!(options.node_cluster, "default");
/// assert_eq!(options.admin_port, 9901);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapOptions {
    /// `node.id` (default `xdsc`).
    pub node_id: String,
    /// `node.cluster` (default `default`, the fleet the binaries publish).
    pub node_cluster: String,
    /// The IP address the admin interface binds (default `127.0.0.1`). Not checked here;
    /// Envoy rejects what is not an IP address.
    pub admin_address: String,
    /// The admin interface's port (default 9901).
    pub admin_port: u16,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions {
            node_id: "xdsc".to_owned(),
            node_cluster: "default".to_owned(),
            admin_address: "127.0.0.1".to_owned(),
            admin_port: 9901,
        }
    }
}

/// The snapshot as an Envoy v3 bootstrap with static resources, for `envoy -c FILE`.
///
/// The snapshot's resources are built to be served over ADS; here they are rewritten to stand
/// alone:
/// - an EDS cluster fed by ADS becomes `STATIC`, with the snapshot's `ClusterLoadAssignment` of
///   its service name (or its own name) as `load_assignment` (no endpoints if there is none);
/// - an HTTP connection manager whose routes come from RDS over ADS gets the snapshot's
///   `RouteConfiguration` of that name inline (an empty one of that name if there is none);
/// - SDS references over ADS in TLS transport sockets (`DownstreamTlsContext` in listeners,
///   `UpstreamTlsContext` in clusters) lose their `sds_config`, so that they name secrets in
///   `static_resources.secrets`, where all of the snapshot's secrets go, unredacted.
///
/// Endpoints and route configurations appear only inline. Resources are in name order, so the
/// output is deterministic.
///
/// ```
/// use xdsc_core::render::{BootstrapOptions, bootstrap_json};
/// use xdsc_core::snapshot::Snapshot;
///
/// let json = bootstrap_json(&Snapshot::default(), &BootstrapOptions::default()).unwrap();
/// assert_eq!(json["node"]["id"], "xdsc");
/// assert_eq!(json["admin"]["address"]["socket_address"]["port_value"], 9901);
/// ```
pub fn bootstrap_json(
    snapshot: &Snapshot,
    options: &BootstrapOptions,
) -> Result<Value, RenderError> {
    let skeleton = bootstrap::Bootstrap {
        node: Some(core::Node {
            id: options.node_id.clone(),
            cluster: options.node_cluster.clone(),
            ..Default::default()
        }),
        admin: Some(bootstrap::Admin {
            address: Some(core::Address {
                address: Some(core::address::Address::SocketAddress(core::SocketAddress {
                    address: options.admin_address.clone(),
                    port_specifier: Some(core::socket_address::PortSpecifier::PortValue(
                        u32::from(options.admin_port),
                    )),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let skeleton_bytes = canonical::encode(&skeleton);
    let mut json = message_json(&bootstrap::Bootstrap::full_name(), &skeleton_bytes).map_err(
        |(Failure::Decode(reason) | Failure::Json(reason))| RenderError::Bootstrap { reason },
    )?;

    // Each resource is rewritten and rendered on its own, so an error names its resource.
    let mut statics = Map::new();
    let mut clusters = Vec::new();
    for resource in snapshot.resources(ResourceType::Cluster).iter() {
        let c = static_cluster(decode(resource)?, snapshot, resource.name())?;
        clusters.push(render(&c, resource)?);
    }
    let mut listeners = Vec::new();
    for resource in snapshot.resources(ResourceType::Listener).iter() {
        let l = static_listener(decode(resource)?, snapshot, resource.name())?;
        listeners.push(render(&l, resource)?);
    }
    let mut secrets = Vec::new();
    for resource in snapshot.resources(ResourceType::Secret).iter() {
        secrets.push(resource_json(resource)?);
    }
    for (key, list) in [
        ("listeners", listeners),
        ("clusters", clusters),
        ("secrets", secrets),
    ] {
        if !list.is_empty() {
            statics.insert(key.to_owned(), Value::Array(list));
        }
    }
    if let Value::Object(root) = &mut json {
        root.insert("static_resources".to_owned(), Value::Object(statics));
    }
    Ok(json)
}

/// The serialization Envoy's config dumps use: proto field names, enums by name.
fn serialize_options() -> SerializeOptions {
    SerializeOptions::new().use_proto_field_name(true)
}

fn descriptor(message: &str) -> Option<MessageDescriptor> {
    pool().get_message_by_name(message)
}

/// Why some bytes could not be rendered, before it is known whose they are.
enum Failure {
    /// The bytes do not decode as the message.
    Decode(String),
    /// The message cannot be serialized (or is not in the pool at all).
    Json(String),
}

impl Failure {
    fn about(self, message: &str, resource_type: ResourceType, name: &str) -> RenderError {
        let name = name.to_owned();
        match self {
            Failure::Decode(reason) => RenderError::Decode {
                resource_type,
                name,
                message: message.to_owned(),
                reason,
            },
            Failure::Json(reason) => RenderError::Json {
                resource_type,
                name,
                reason,
            },
        }
    }
}

/// `bytes`, a `message`, as JSON with sorted keys.
fn message_json(message: &str, bytes: &[u8]) -> Result<Value, Failure> {
    let descriptor = descriptor(message)
        .ok_or_else(|| Failure::Json(format!("{message} is not in the descriptor pool")))?;
    let dynamic =
        DynamicMessage::decode(descriptor, bytes).map_err(|e| Failure::Decode(e.to_string()))?;
    let mut json = dynamic
        .serialize_with_options(serde_json::value::Serializer, &serialize_options())
        .map_err(|e| Failure::Json(e.to_string()))?;
    // A no-op unless some crate turns on serde_json's `preserve_order`; prost-reflect keeps
    // protobuf maps in hash maps, so this is what makes map fields come out in a fixed order.
    json.sort_all_objects();
    Ok(json)
}

/// [`message_json`] of a resource's bytes, with errors naming the resource.
fn to_json(
    message: &str,
    bytes: &[u8],
    resource_type: ResourceType,
    name: &str,
) -> Result<Value, RenderError> {
    message_json(message, bytes).map_err(|f| f.about(message, resource_type, name))
}

/// A rewritten resource, canonically re-encoded and rendered.
fn render<M: Message + Name>(msg: &M, resource: &Resource) -> Result<Value, RenderError> {
    to_json(
        &M::full_name(),
        &canonical::encode(msg),
        resource.resource_type(),
        resource.name(),
    )
}

/// A resource's body decoded as the envoy-types message of its type.
fn decode<M: Message + Name + Default>(resource: &Resource) -> Result<M, RenderError> {
    decode_bytes(resource.body(), resource.resource_type(), resource.name())
}

fn decode_bytes<M: Message + Name + Default>(
    bytes: &[u8],
    resource_type: ResourceType,
    name: &str,
) -> Result<M, RenderError> {
    M::decode(bytes).map_err(|e| RenderError::Decode {
        resource_type,
        name: name.to_owned(),
        message: M::full_name(),
        reason: e.to_string(),
    })
}

/// Whether a config source is the aggregated stream (what the compiler emits).
fn is_ads(source: Option<&core::ConfigSource>) -> bool {
    matches!(
        source.and_then(|s| s.config_source_specifier.as_ref()),
        Some(core::config_source::ConfigSourceSpecifier::Ads(_))
    )
}

/// Whether an `Any` holds an `M`.
fn holds<M: Name>(any: &Any) -> bool {
    any.type_url.rsplit('/').next() == Some(M::full_name().as_str())
}

fn to_any<M: Message + Name>(msg: &M) -> Any {
    Any {
        type_url: format!("type.googleapis.com/{}", M::full_name()),
        value: canonical::encode(msg),
    }
}

fn static_cluster(
    mut c: cluster::Cluster,
    snapshot: &Snapshot,
    name: &str,
) -> Result<cluster::Cluster, RenderError> {
    use cluster::cluster::{ClusterDiscoveryType, DiscoveryType};
    let eds = Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
    let fed_by_ads = c
        .eds_cluster_config
        .as_ref()
        .is_some_and(|e| is_ads(e.eds_config.as_ref()));
    if c.cluster_discovery_type == eds && fed_by_ads {
        let service_name = c
            .eds_cluster_config
            .take()
            .map(|e| e.service_name)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| c.name.clone());
        let mut assignment = match snapshot.get(ResourceType::Endpoint, &service_name) {
            Some(resource) => decode::<endpoint::ClusterLoadAssignment>(resource)?,
            None => endpoint::ClusterLoadAssignment::default(),
        };
        assignment.cluster_name = c.name.clone();
        c.cluster_discovery_type = Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32));
        c.load_assignment = Some(assignment);
    }
    let sockets = c.transport_socket.iter_mut().chain(
        c.transport_socket_matches
            .iter_mut()
            .filter_map(|m| m.transport_socket.as_mut()),
    );
    for socket in sockets {
        static_tls(socket, ResourceType::Cluster, name)?;
    }
    Ok(c)
}

fn static_listener(
    mut l: listener::Listener,
    snapshot: &Snapshot,
    name: &str,
) -> Result<listener::Listener, RenderError> {
    let chains = l
        .filter_chains
        .iter_mut()
        .chain(l.default_filter_chain.as_mut());
    for chain in chains {
        for filter in &mut chain.filters {
            if let Some(listener::filter::ConfigType::TypedConfig(any)) = &mut filter.config_type
                && holds::<hcm::HttpConnectionManager>(any)
            {
                inline_routes(any, snapshot, name)?;
            }
        }
        if let Some(socket) = &mut chain.transport_socket {
            static_tls(socket, ResourceType::Listener, name)?;
        }
    }
    Ok(l)
}

/// Replaces RDS over ADS in an HTTP connection manager by the route configuration itself.
fn inline_routes(any: &mut Any, snapshot: &Snapshot, name: &str) -> Result<(), RenderError> {
    use hcm::http_connection_manager::RouteSpecifier;
    let mut manager: hcm::HttpConnectionManager =
        decode_bytes(&any.value, ResourceType::Listener, name)?;
    let Some(RouteSpecifier::Rds(rds)) = &manager.route_specifier else {
        return Ok(());
    };
    if !is_ads(rds.config_source.as_ref()) {
        return Ok(());
    }
    let mut routes = match snapshot.get(ResourceType::Route, &rds.route_config_name) {
        Some(resource) => decode::<route::RouteConfiguration>(resource)?,
        None => route::RouteConfiguration {
            name: rds.route_config_name.clone(),
            ..Default::default()
        },
    };
    // An inline route configuration has its clusters validated by default, which the
    // never-existing `ERROR_CLUSTER` of an error share would fail; over RDS it is not.
    if routes.validate_clusters.is_none() && names_error_cluster(&routes) {
        routes.validate_clusters =
            Some(envoy_types::pb::google::protobuf::BoolValue { value: false });
    }
    manager.route_specifier = Some(RouteSpecifier::RouteConfig(routes));
    *any = to_any(&manager);
    Ok(())
}

/// Whether a route of the configuration has an error share ([`crate::compile::ERROR_CLUSTER`]).
fn names_error_cluster(rc: &route::RouteConfiguration) -> bool {
    use route::route_action::ClusterSpecifier;
    rc.virtual_hosts.iter().flat_map(|v| &v.routes).any(|r| {
        matches!(&r.action, Some(route::route::Action::Route(a))
            if matches!(&a.cluster_specifier, Some(ClusterSpecifier::WeightedClusters(w))
                if w.clusters.iter().any(|c| c.name == crate::compile::ERROR_CLUSTER)))
    })
}

/// Makes the SDS-over-ADS references of a TLS transport socket name static secrets.
fn static_tls(
    socket: &mut core::TransportSocket,
    resource_type: ResourceType,
    name: &str,
) -> Result<(), RenderError> {
    use core::transport_socket::ConfigType;
    use tls::downstream_tls_context::SessionTicketKeysType;
    let Some(ConfigType::TypedConfig(any)) = &mut socket.config_type else {
        return Ok(());
    };
    if holds::<tls::DownstreamTlsContext>(any) {
        let mut context: tls::DownstreamTlsContext = decode_bytes(&any.value, resource_type, name)?;
        if let Some(common) = &mut context.common_tls_context {
            static_sds_common(common);
        }
        if let Some(SessionTicketKeysType::SessionTicketKeysSdsSecretConfig(sds)) =
            &mut context.session_ticket_keys_type
        {
            static_sds(sds);
        }
        *any = to_any(&context);
    } else if holds::<tls::UpstreamTlsContext>(any) {
        let mut context: tls::UpstreamTlsContext = decode_bytes(&any.value, resource_type, name)?;
        if let Some(common) = &mut context.common_tls_context {
            static_sds_common(common);
        }
        *any = to_any(&context);
    }
    Ok(())
}

fn static_sds_common(common: &mut tls::CommonTlsContext) {
    use tls::common_tls_context::ValidationContextType;
    for sds in &mut common.tls_certificate_sds_secret_configs {
        static_sds(sds);
    }
    match &mut common.validation_context_type {
        Some(ValidationContextType::ValidationContextSdsSecretConfig(sds)) => static_sds(sds),
        Some(ValidationContextType::CombinedValidationContext(combined)) => {
            if let Some(sds) = &mut combined.validation_context_sds_secret_config {
                static_sds(sds);
            }
        }
        _ => {}
    }
}

/// An SDS reference over ADS becomes a reference to a static secret of the same name.
fn static_sds(sds: &mut tls::SdsSecretConfig) {
    if is_ads(sds.sds_config.as_ref()) {
        sds.sds_config = None;
    }
}

/// Fields redacted as a whole in addition to those marked `(udpa.annotations.sensitive)`.
const ALSO_REDACTED: &[&str] = &[
    "envoy.extensions.transport_sockets.tls.v3.TlsCertificate.private_key",
    "envoy.extensions.transport_sockets.tls.v3.TlsCertificate.password",
    "envoy.extensions.transport_sockets.tls.v3.TlsCertificate.pkcs12",
    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext.session_ticket_keys",
    "envoy.extensions.transport_sockets.tls.v3.Secret.session_ticket_keys",
    "envoy.extensions.transport_sockets.tls.v3.Secret.generic_secret",
];

/// The full names of every field to redact.
fn sensitive_fields() -> &'static BTreeSet<String> {
    static FIELDS: OnceLock<BTreeSet<String>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let mut fields: BTreeSet<String> = ALSO_REDACTED.iter().map(|f| (*f).to_owned()).collect();
        if let Some(sensitive) = pool().get_extension_by_name("udpa.annotations.sensitive") {
            for message in pool().all_messages() {
                for field in message.fields() {
                    if field.options().get_extension(&sensitive).as_bool() == Some(true) {
                        fields.insert(field.full_name().to_owned());
                    }
                }
            }
        }
        fields
    })
}

/// Replaces sensitive fields in `json`, the rendering of a `descriptor` message, by
/// [`REDACTED`], following message fields, lists, maps and `Any`s.
fn redact(descriptor: &MessageDescriptor, json: &mut Value) {
    let Value::Object(object) = json else {
        return;
    };
    let name = descriptor.full_name();
    if name == "google.protobuf.Any" {
        let inner = object
            .get("@type")
            .and_then(Value::as_str)
            .and_then(|url| url.rsplit('/').next())
            .and_then(|inner| pool().get_message_by_name(inner));
        let Some(inner) = inner else {
            return;
        };
        if inner.full_name().starts_with("google.protobuf.") {
            // Well-known types render as {"@type", "value"}; only a nested Any can hold more.
            if let Some(value) = object.get_mut("value") {
                redact(&inner, value);
            }
        } else {
            redact_fields(&inner, object);
        }
    } else if !name.starts_with("google.protobuf.") {
        // Other well-known types (Struct, Duration, wrappers, ...) have JSON forms of their own
        // and no sensitive fields.
        redact_fields(descriptor, object);
    }
}

fn redact_fields(descriptor: &MessageDescriptor, object: &mut Map<String, Value>) {
    for (key, value) in object.iter_mut() {
        let field = descriptor
            .get_field_by_name(key)
            .or_else(|| descriptor.get_field_by_json_name(key));
        let Some(field) = field else {
            continue;
        };
        if sensitive_fields().contains(field.full_name()) {
            *value = Value::String(REDACTED.to_owned());
            continue;
        }
        let Kind::Message(message) = field.kind() else {
            continue;
        };
        match value {
            Value::Object(entries) if field.is_map() => {
                if let Kind::Message(value_type) = message.map_entry_value_field().kind() {
                    for entry in entries.values_mut() {
                        redact(&value_type, entry);
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    redact(&message, item);
                }
            }
            _ => redact(&message, value),
        }
    }
}

#[cfg(test)]
mod tests;
