//! Pieces of Envoy messages shared by the translations (`Any` packing, durations, inline
//! data, ADS and SDS config sources, socket addresses, TLS transport sockets), and the choice
//! of a route's usable backends, which TCP routes and HTTP routes make alike.
//!
//! Not here: anything about one kind of object; see the sibling modules.

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::google::protobuf as pb;
use prost::{Message, Name};

use crate::diagnostic::{Diags, Problem, ToFieldPath};
use crate::model::{self, Kind, ObjectKey};

pub(super) fn any<M: Message + Name>(m: &M) -> pb::Any {
    pb::Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

pub(super) fn duration(d: model::Duration) -> pb::Duration {
    let ms = d.as_millis();
    pb::Duration {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

pub(super) fn u32v(v: u32) -> pb::UInt32Value {
    pb::UInt32Value { value: v }
}

pub(super) fn inline(s: &str) -> core::DataSource {
    core::DataSource {
        specifier: Some(core::data_source::Specifier::InlineString(s.to_owned())),
        ..Default::default()
    }
}

/// Resources are delivered over the aggregated stream (ADS).
pub(super) fn ads() -> core::ConfigSource {
    core::ConfigSource {
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
            core::AggregatedConfigSource {},
        )),
        resource_api_version: core::ApiVersion::V3 as i32,
        ..Default::default()
    }
}

pub(super) fn sds(name: &str) -> tls::SdsSecretConfig {
    tls::SdsSecretConfig {
        name: name.to_owned(),
        sds_config: Some(ads()),
    }
}

pub(super) fn socket_address(address: &str, port: u16) -> core::Address {
    core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: address.to_owned(),
            port_specifier: Some(core::socket_address::PortSpecifier::PortValue(u32::from(
                port,
            ))),
            ..Default::default()
        })),
    }
}

pub(super) fn tls_socket<M: Message + Name>(context: &M) -> core::TransportSocket {
    core::TransportSocket {
        name: "envoy.transport_sockets.tls".to_owned(),
        config_type: Some(core::transport_socket::ConfigType::TypedConfig(any(
            context,
        ))),
    }
}

/// Backends usable by a route: known clusters with weight > 0. Reports the others.
pub(super) fn usable_backends<'a>(
    backends: &'a [model::Backend],
    field: impl ToFieldPath + Copy,
    cluster: &dyn Fn(&str) -> bool,
    d: &mut Diags,
) -> Vec<&'a model::Backend> {
    let mut out = Vec::new();
    for (i, b) in backends.iter().enumerate() {
        if !cluster(&b.cluster) {
            d.warn(
                (field, i, "cluster"),
                Problem::Dangling(ObjectKey::new(Kind::Cluster, b.cluster.as_str())),
            );
        } else if b.weight > 0 {
            out.push(b);
        }
    }
    // Weighted clusters must not repeat a name: the first entry for a cluster is kept.
    let mut merged: Vec<&model::Backend> = Vec::new();
    for b in out {
        if !merged.iter().any(|m| m.cluster == b.cluster) {
            merged.push(b);
        }
    }
    merged
}
