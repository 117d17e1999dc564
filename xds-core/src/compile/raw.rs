//! Raw Envoy resources ([`model::Raw`]): decoded against the descriptor pool (Envoy JSON must
//! deserialize as the message, unknown fields included; protobuf bytes must decode), every
//! `Any` inside checked (its type in the pool, its value decoding as that type), re-encoded
//! canonically; and the references the compiler can read from them: SDS secrets, EDS service
//! names, RDS route configuration names fetched over ADS, clusters named by routes and TCP
//! proxies, and a listener's address.
//!
//! Not here: whether those references resolve (the compiler checks that when it builds the
//! resource, as it does for compiled resources), or anything a raw resource means to Envoy
//! beyond its shape (`envoy --mode validate` and NACKs tell).

use bytes::Bytes;
use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

use super::translate::SecretState;
use super::typed;
use crate::descriptors::pool;
use crate::diagnostic::{Diags, FieldPath, Key, Problem, Segment, ToFieldPath};
use crate::model::{Object, Raw, RawBody, RawMessage};

/// A raw resource, checked.
#[derive(Debug, Default)]
pub(crate) struct CheckedRaw {
    /// The canonical encoding, when the resource decodes and every `Any` in it checks.
    pub(crate) body: Option<Bytes>,
    /// What it refers to (empty when it does not decode).
    pub(crate) refs: RawRefs,
}

/// References read from a raw resource, each with the field that holds it.
#[derive(Debug, Default)]
pub(crate) struct RawRefs {
    /// SDS secrets fetched over ADS, and what each must hold (a certificate, or a validation
    /// context).
    pub(crate) secrets: Vec<(FieldPath, String, SecretState)>,
    /// Clusters named by routes (a route configuration's, or one inline in a listener) and by
    /// TCP proxies.
    pub(crate) clusters: Vec<(FieldPath, String)>,
    /// Route configurations fetched by RDS over ADS.
    pub(crate) route_configs: Vec<(FieldPath, String)>,
    /// The load assignment an EDS-over-ADS cluster needs (its service name, else its name).
    pub(crate) eds_service: Option<String>,
    /// A listener's `address:port`.
    pub(crate) address: Option<String>,
    /// What a secret holds.
    pub(crate) secret: Option<SecretState>,
}

/// Checks a raw model object; `None` for compiled kinds.
pub(crate) fn check_object(o: &Object, d: &mut Diags) -> Option<CheckedRaw> {
    Some(match o {
        Object::EnvoyCluster(r) if r.name() == super::translate::ERROR_CLUSTER => {
            d.error(
                "name",
                Problem::invalid(format!(
                    "{:?} is reserved: routes name it for a share that answers 500",
                    r.name()
                )),
            );
            CheckedRaw::default()
        }
        Object::EnvoyCluster(r) => check(r, d, cluster_refs),
        Object::EnvoyClusterLoadAssignment(r) => {
            check(r, d, |_: &endpoint::ClusterLoadAssignment| {
                RawRefs::default()
            })
        }
        Object::EnvoyListener(r) => check(r, d, listener_refs),
        Object::EnvoyRouteConfiguration(r) => check(r, d, |rc: &route::RouteConfiguration| {
            let mut refs = RawRefs::default();
            route_clusters(rc, &[Segment::Field("resource".into())], &mut refs);
            refs
        }),
        Object::EnvoySecret(r) => check(r, d, |s: &tls::Secret| {
            use tls::secret::Type;
            RawRefs {
                secret: Some(match s.r#type {
                    Some(Type::TlsCertificate(_)) => SecretState::TlsCertificate,
                    _ => SecretState::ValidationContext,
                }),
                ..RawRefs::default()
            }
        }),
        _ => return None,
    })
}

fn check<M: RawMessage>(raw: &Raw<M>, d: &mut Diags, refs: fn(&M) -> RawRefs) -> CheckedRaw {
    let Some(message) = decode(raw, d) else {
        return CheckedRaw::default();
    };
    CheckedRaw {
        refs: refs(&message.0),
        body: Some(message.1),
    }
}

/// The message and its canonical encoding, or `None` with the diagnostics saying why.
fn decode<M: RawMessage>(raw: &Raw<M>, d: &mut Diags) -> Option<(M, Bytes)> {
    let full_name = M::full_name();
    // Every resource type is in the pool (a unit test of `descriptors` checks it).
    let desc = pool().get_message_by_name(&full_name)?;
    let dynamic = match raw.body() {
        RawBody::Json(v) => {
            let mut fields = v.clone();
            if let Some(o) = fields.as_object_mut() {
                o.remove("@type");
            }
            let mut track = serde_path_to_error::Track::new();
            let de = serde_path_to_error::Deserializer::new(fields, &mut track);
            match DynamicMessage::deserialize(desc, de) {
                Ok(m) => m,
                Err(e) => {
                    let mut at = vec![Segment::Field("resource".into())];
                    at.extend(
                        FieldPath::from_serde(&track.path())
                            .segments()
                            .iter()
                            .cloned(),
                    );
                    // The unknown field itself is not on the path serde tracked.
                    let text = e.to_string();
                    if let Some(f) = text
                        .strip_prefix("unrecognized field name '")
                        .and_then(|r| r.strip_suffix('\''))
                    {
                        at.push(Segment::Field(f.into()));
                    }
                    d.error(
                        FieldPath::from(at),
                        Problem::invalid(format!("is not a valid {full_name}: {text}")),
                    );
                    return None;
                }
            }
        }
        RawBody::Proto(b) => match DynamicMessage::decode(desc, b.as_ref()) {
            Ok(m) => m,
            Err(e) => return undecodable(d, &full_name, e),
        },
    };
    let mut path = vec![Segment::Field("resource".into())];
    if !walk(&dynamic, &mut path, d) {
        return None;
    }
    let bytes = match crate::canonical::canonicalize(&full_name, &dynamic.encode_to_vec()) {
        Ok(b) => b,
        Err(e) => {
            d.error("resource", Problem::invalid(e.to_string()));
            return None;
        }
    };
    let message = match M::decode(bytes.as_slice()) {
        Ok(m) => m,
        Err(e) => return undecodable(d, &full_name, e),
    };
    if message.resource_name() != raw.name() {
        d.error(
            ("resource", M::NAME_FIELD),
            Problem::invalid(format!(
                "the resource is named {:?}, the object {:?}",
                message.resource_name(),
                raw.name()
            )),
        );
        return None;
    }
    Some((message, Bytes::from(bytes)))
}

fn undecodable<T>(d: &mut Diags, full_name: &str, e: prost::DecodeError) -> Option<T> {
    d.error(
        "resource",
        Problem::invalid(format!("does not decode as {full_name}: {e}")),
    );
    None
}

/// Checks every `Any` in `m` (its type in the pool, its value decoding) and that no field is
/// unknown, reporting at the path of each; returns whether all was well.
fn walk(m: &DynamicMessage, path: &mut Vec<Segment>, d: &mut Diags) -> bool {
    let mut ok = true;
    if let Some(u) = m.unknown_fields().next() {
        d.error(
            FieldPath::from(path.clone()),
            Problem::invalid(format!(
                "unknown field number {} in {}",
                u.number(),
                m.descriptor().full_name()
            )),
        );
        ok = false;
    }
    if m.descriptor().full_name() == Any::full_name() {
        let any = m.transcode_to::<Any>().unwrap_or_default();
        let inner = typed::descriptor(&any.type_url).and_then(|desc| {
            DynamicMessage::decode(desc.clone(), any.value.as_slice()).map_err(|e| {
                Problem::invalid(format!("does not decode as {}: {e}", desc.full_name()))
            })
        });
        return match inner {
            Ok(inner) => walk(&inner, path, d) && ok,
            Err(p) => {
                d.error(FieldPath::from(path.clone()), p);
                false
            }
        };
    }
    for (field, value) in m.fields() {
        path.push(Segment::Field(field.name().into()));
        match value {
            Value::Message(x) => ok &= walk(x, path, d),
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Message(x) = item {
                        path.push(Segment::Index(i));
                        ok &= walk(x, path, d);
                        path.pop();
                    }
                }
            }
            Value::Map(entries) => {
                let mut entries: Vec<_> = entries.iter().collect();
                entries.sort_by_key(|(k, _)| format!("{k:?}"));
                for (k, v) in entries {
                    if let Value::Message(x) = v {
                        let key = match k {
                            prost_reflect::MapKey::String(s) => s.clone(),
                            other => format!("{other:?}"),
                        };
                        Key(&key).push_segments(path);
                        ok &= walk(x, path, d);
                        path.pop();
                    }
                }
            }
            _ => {}
        }
        path.pop();
    }
    ok
}

fn is_ads(source: Option<&core::ConfigSource>) -> bool {
    matches!(
        source.and_then(|s| s.config_source_specifier.as_ref()),
        Some(core::config_source::ConfigSourceSpecifier::Ads(_))
    )
}

/// An `M` in an `Any`, when it holds one that decodes.
fn unpack<M: Message + Name + Default>(any: &Any) -> Option<M> {
    (any.type_url.rsplit('/').next() == Some(M::full_name().as_str()))
        .then(|| M::decode(any.value.as_slice()).ok())
        .flatten()
}

fn path(prefix: &[Segment], rest: impl ToFieldPath) -> FieldPath {
    let mut v = prefix.to_vec();
    rest.push_segments(&mut v);
    FieldPath::from(v)
}

fn sds_names(common: &tls::CommonTlsContext, at: &FieldPath, refs: &mut RawRefs) {
    use tls::common_tls_context::ValidationContextType;
    let mut add = |sds: &tls::SdsSecretConfig, holds: SecretState| {
        if is_ads(sds.sds_config.as_ref()) {
            refs.secrets.push((at.clone(), sds.name.clone(), holds));
        }
    };
    for sds in &common.tls_certificate_sds_secret_configs {
        add(sds, SecretState::TlsCertificate);
    }
    let validation = match &common.validation_context_type {
        Some(ValidationContextType::ValidationContextSdsSecretConfig(sds)) => Some(sds),
        Some(ValidationContextType::CombinedValidationContext(c)) => {
            c.validation_context_sds_secret_config.as_ref()
        }
        _ => None,
    };
    if let Some(sds) = validation {
        add(sds, SecretState::ValidationContext);
    }
}

/// The SDS names of a TLS transport socket, reported at `at`.
fn socket_secrets(socket: &core::TransportSocket, at: FieldPath, refs: &mut RawRefs) {
    let Some(core::transport_socket::ConfigType::TypedConfig(any)) = &socket.config_type else {
        return;
    };
    if let Some(c) = unpack::<tls::DownstreamTlsContext>(any) {
        if let Some(common) = &c.common_tls_context {
            sds_names(common, &at, refs);
        }
    } else if let Some(c) = unpack::<tls::UpstreamTlsContext>(any)
        && let Some(common) = &c.common_tls_context
    {
        sds_names(common, &at, refs);
    }
}

fn cluster_refs(c: &cluster::Cluster) -> RawRefs {
    use cluster::cluster::{ClusterDiscoveryType, DiscoveryType};
    let mut refs = RawRefs::default();
    if c.cluster_discovery_type == Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
        && let Some(eds) = &c.eds_cluster_config
        && is_ads(eds.eds_config.as_ref())
    {
        let service = if eds.service_name.is_empty() {
            &c.name
        } else {
            &eds.service_name
        };
        refs.eds_service = Some(service.clone());
    }
    if let Some(s) = &c.transport_socket {
        socket_secrets(
            s,
            ("resource", "transport_socket").to_field_path(),
            &mut refs,
        );
    }
    for (i, m) in c.transport_socket_matches.iter().enumerate() {
        if let Some(s) = &m.transport_socket {
            let at = (
                "resource",
                "transport_socket_matches",
                i,
                "transport_socket",
            );
            socket_secrets(s, at.to_field_path(), &mut refs);
        }
    }
    refs
}

fn listener_refs(l: &listener::Listener) -> RawRefs {
    let mut refs = RawRefs::default();
    if let Some(core::address::Address::SocketAddress(a)) =
        l.address.as_ref().and_then(|a| a.address.as_ref())
        && let Some(core::socket_address::PortSpecifier::PortValue(port)) = a.port_specifier
    {
        refs.address = Some(format!("{}:{port}", a.address));
    }
    let resource = Segment::Field("resource".into());
    let chains = l
        .filter_chains
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let p = vec![
                resource.clone(),
                "filter_chains".into_segment(),
                Segment::Index(i),
            ];
            (p, c)
        })
        .chain(l.default_filter_chain.iter().map(|c| {
            (
                vec![resource.clone(), "default_filter_chain".into_segment()],
                c,
            )
        }));
    for (at, chain) in chains {
        if let Some(s) = &chain.transport_socket {
            socket_secrets(s, path(&at, "transport_socket"), &mut refs);
        }
        for (j, f) in chain.filters.iter().enumerate() {
            let Some(listener::filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                continue;
            };
            let mut here = at.clone();
            ("filters", j, "typed_config").push_segments(&mut here);
            if let Some(m) = unpack::<hcm::HttpConnectionManager>(any) {
                use hcm::http_connection_manager::RouteSpecifier;
                match &m.route_specifier {
                    Some(RouteSpecifier::Rds(rds)) if is_ads(rds.config_source.as_ref()) => {
                        refs.route_configs.push((
                            path(&here, ("rds", "route_config_name")),
                            rds.route_config_name.clone(),
                        ))
                    }
                    Some(RouteSpecifier::RouteConfig(rc)) => {
                        "route_config".push_segments(&mut here);
                        route_clusters(rc, &here, &mut refs);
                    }
                    _ => {}
                }
            } else if let Some(t) = unpack::<tcp::TcpProxy>(any) {
                use tcp::tcp_proxy::ClusterSpecifier;
                match &t.cluster_specifier {
                    Some(ClusterSpecifier::Cluster(c)) => {
                        refs.clusters.push((path(&here, "cluster"), c.clone()));
                    }
                    Some(ClusterSpecifier::WeightedClusters(w)) => {
                        for (k, c) in w.clusters.iter().enumerate() {
                            let p = path(&here, ("weighted_clusters", "clusters", k, "name"));
                            refs.clusters.push((p, c.name.clone()));
                        }
                    }
                    None => {}
                }
            }
        }
    }
    refs
}

/// The clusters a route configuration's routes forward and mirror to.
fn route_clusters(rc: &route::RouteConfiguration, at: &[Segment], refs: &mut RawRefs) {
    use route::route::Action;
    use route::route_action::ClusterSpecifier;
    for (v, vh) in rc.virtual_hosts.iter().enumerate() {
        for (r, rt) in vh.routes.iter().enumerate() {
            let Some(Action::Route(a)) = &rt.action else {
                continue;
            };
            let here = path(at, ("virtual_hosts", v, "routes", r, "route"));
            match &a.cluster_specifier {
                Some(ClusterSpecifier::Cluster(c)) => {
                    refs.clusters
                        .push((path(here.segments(), "cluster"), c.clone()));
                }
                Some(ClusterSpecifier::WeightedClusters(w)) => {
                    for (k, c) in w.clusters.iter().enumerate() {
                        let p = path(
                            here.segments(),
                            ("weighted_clusters", "clusters", k, "name"),
                        );
                        refs.clusters.push((p, c.name.clone()));
                    }
                }
                _ => {}
            }
            for (k, m) in a.request_mirror_policies.iter().enumerate() {
                let p = path(here.segments(), ("request_mirror_policies", k, "cluster"));
                refs.clusters.push((p, m.cluster.clone()));
            }
        }
    }
}

trait IntoSegment {
    fn into_segment(self) -> Segment;
}

impl IntoSegment for &str {
    fn into_segment(self) -> Segment {
        Segment::Field(self.into())
    }
}

#[cfg(test)]
mod tests;
