//! Translation of validated model objects into Envoy v3 messages.
//!
//! Every function here is a pure function of one model object and the availability of what
//! it refers to (given as closures), returning the Envoy message, or `None` when the object
//! must be left out, together with the diagnostics explaining why. Nothing here knows about
//! incremental state; [`super`] decides what to rebuild.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::accesslog::v3 as accesslog;
use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::access_loggers::file::v3 as file_log;
use envoy_types::pb::envoy::extensions::filters::http::router::v3 as router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3 as tls_inspector;
use envoy_types::pb::envoy::extensions::filters::network::connection_limit::v3 as conn_limit;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as upstream_http;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::envoy::r#type::v3 as etype;
use envoy_types::pb::google::protobuf as pb;
use prost::{Message, Name};

use super::validate;
use super::{Diags, Problem};
use crate::diagnostic::{Named, ToFieldPath};
use crate::model::{self, Kind, ObjectKey};

/// Is a secret usable, and as what?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SecretState {
    Missing,
    TlsCertificate,
    ValidationContext,
}

fn any<M: Message + Name>(m: &M) -> pb::Any {
    pb::Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

fn duration(d: model::Duration) -> pb::Duration {
    let ms = d.as_millis();
    pb::Duration {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

fn u32v(v: u32) -> pb::UInt32Value {
    pb::UInt32Value { value: v }
}

fn inline(s: &str) -> core::DataSource {
    core::DataSource {
        specifier: Some(core::data_source::Specifier::InlineString(s.to_owned())),
        ..Default::default()
    }
}

/// Resources are delivered over the aggregated stream (ADS).
fn ads() -> core::ConfigSource {
    core::ConfigSource {
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
            core::AggregatedConfigSource {},
        )),
        resource_api_version: core::ApiVersion::V3 as i32,
        ..Default::default()
    }
}

fn sds(name: &str) -> tls::SdsSecretConfig {
    tls::SdsSecretConfig {
        name: name.to_owned(),
        sds_config: Some(ads()),
    }
}

fn socket_address(address: &str, port: u16) -> core::Address {
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

fn tls_socket<M: Message + Name>(context: &M) -> core::TransportSocket {
    core::TransportSocket {
        name: "envoy.transport_sockets.tls".to_owned(),
        config_type: Some(core::transport_socket::ConfigType::TypedConfig(any(
            context,
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets

pub(crate) fn secret(s: &model::Secret, d: &mut Diags) -> Option<tls::Secret> {
    use tls::secret::Type;
    let ty = match (&s.tls_certificate, &s.validation_context) {
        (Some(cert), None) => {
            let ok_chain = d.check(
                ("tls_certificate", "certificate_chain"),
                validate::pem(&cert.certificate_chain, "certificate chain", false),
            );
            let ok_key = d.check(
                ("tls_certificate", "private_key"),
                validate::pem(&cert.private_key, "private key", true),
            );
            if !(ok_chain && ok_key) {
                return None;
            }
            Type::TlsCertificate(tls::TlsCertificate {
                certificate_chain: Some(inline(&cert.certificate_chain)),
                private_key: Some(inline(&cert.private_key)),
                ..Default::default()
            })
        }
        (None, Some(vc)) => {
            if !d.check(
                ("validation_context", "trusted_ca"),
                validate::pem(&vc.trusted_ca, "CA certificate", false),
            ) {
                return None;
            }
            Type::ValidationContext(tls::CertificateValidationContext {
                trusted_ca: Some(inline(&vc.trusted_ca)),
                ..Default::default()
            })
        }
        _ => {
            d.error(
                (),
                Problem::invalid("set exactly one of tls_certificate and validation_context"),
            );
            return None;
        }
    };
    Some(tls::Secret {
        name: s.name.clone(),
        r#type: Some(ty),
    })
}

// ---------------------------------------------------------------------------------------------
// Clusters

pub(crate) fn cluster(
    c: &model::Cluster,
    secret: &dyn Fn(&str) -> SecretState,
    d: &mut Diags,
) -> Option<cluster::Cluster> {
    use cluster::cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbPolicy};
    let mut ok = true;
    let lb_policy = match c.lb {
        model::LbPolicy::RoundRobin => LbPolicy::RoundRobin,
        model::LbPolicy::LeastRequest => LbPolicy::LeastRequest,
        model::LbPolicy::RingHash => LbPolicy::RingHash,
        model::LbPolicy::Maglev => LbPolicy::Maglev,
        model::LbPolicy::Random => LbPolicy::Random,
    };
    let mut out = cluster::Cluster {
        name: c.name.clone(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: String::new(),
        }),
        connect_timeout: Some(duration(
            c.connect_timeout.unwrap_or(model::Duration::from_secs(5)),
        )),
        lb_policy: lb_policy as i32,
        ..Default::default()
    };
    if c.connect_timeout.is_some_and(|t| t.as_millis() == 0) {
        ok &= d.check(
            "connect_timeout",
            Err(Problem::invalid("must be greater than 0")),
        );
    }
    if c.protocol == model::UpstreamProtocol::Http2 {
        use upstream_http::http_protocol_options::{
            ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
        };
        let opts = upstream_http::HttpProtocolOptions {
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                        core::Http2ProtocolOptions::default(),
                    )),
                },
            )),
            ..Default::default()
        };
        out.typed_extension_protocol_options
            .insert(upstream_http::HttpProtocolOptions::full_name(), any(&opts));
    }
    if let Some(t) = &c.tls {
        let mut ctx = tls::UpstreamTlsContext::default();
        if let Some(sni) = &t.sni {
            ok &= d.check(("tls", "sni"), validate::host(sni));
            ctx.sni = sni.clone();
        }
        let mut common = tls::CommonTlsContext::default();
        if c.protocol == model::UpstreamProtocol::Http2 {
            common.alpn_protocols = vec!["h2".to_owned()];
        }
        if let Some(ca) = &t.ca_secret {
            match secret(ca) {
                SecretState::ValidationContext => {
                    common.validation_context_type = Some(
                        tls::common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(sds(ca)),
                    );
                }
                SecretState::TlsCertificate => {
                    d.error(
                        ("tls", "ca_secret"),
                        Problem::invalid(format!(
                            "secret {ca:?} is a certificate, not a validation context"
                        )),
                    );
                    ok = false;
                }
                SecretState::Missing => {
                    d.error(
                        ("tls", "ca_secret"),
                        Problem::Dangling(ObjectKey::new(Kind::Secret, ca.as_str())),
                    );
                    ok = false;
                }
            }
        }
        ctx.common_tls_context = Some(common);
        out.transport_socket = Some(tls_socket(&ctx));
    }
    if let Some(hc) = &c.health_check {
        use core::health_check::{HealthChecker, HttpHealthCheck, TcpHealthCheck};
        let checker = match &hc.http_path {
            Some(p) => {
                ok &= d.check(("health_check", "http_path"), validate::path(p));
                if let Some(h) = &hc.host {
                    ok &= d.check(("health_check", "host"), validate::host(h));
                }
                HealthChecker::HttpHealthCheck(HttpHealthCheck {
                    host: hc.host.clone().unwrap_or_else(|| c.name.clone()),
                    path: p.clone(),
                    ..Default::default()
                })
            }
            None => HealthChecker::TcpHealthCheck(TcpHealthCheck::default()),
        };
        let interval = hc.interval.unwrap_or(model::Duration::from_secs(10));
        let timeout = hc.timeout.unwrap_or(model::Duration::from_secs(2));
        if interval.as_millis() == 0 || timeout.as_millis() == 0 {
            ok &= d.check(
                "health_check",
                Err(Problem::invalid(
                    "interval and timeout must be greater than 0",
                )),
            );
        }
        out.health_checks.push(core::HealthCheck {
            timeout: Some(duration(timeout)),
            interval: Some(duration(interval)),
            healthy_threshold: Some(u32v(hc.healthy_threshold.unwrap_or(2))),
            unhealthy_threshold: Some(u32v(hc.unhealthy_threshold.unwrap_or(3))),
            health_checker: Some(checker),
            ..Default::default()
        });
    }
    if let Some(od) = &c.outlier_detection {
        if od.max_ejection_percent.is_some_and(|p| p > 100) {
            ok &= d.check(
                ("outlier_detection", "max_ejection_percent"),
                Err(Problem::invalid("must be at most 100")),
            );
        }
        if od.interval.is_some_and(|i| i.as_millis() == 0) {
            ok &= d.check(
                ("outlier_detection", "interval"),
                Err(Problem::invalid("must be greater than 0")),
            );
        }
        out.outlier_detection = Some(cluster::OutlierDetection {
            consecutive_5xx: od.consecutive_5xx.map(u32v),
            interval: od.interval.map(duration),
            base_ejection_time: od.base_ejection_time.map(duration),
            max_ejection_percent: od.max_ejection_percent.map(u32v),
            ..Default::default()
        });
    }
    if let Some(cb) = &c.circuit_breakers {
        out.circuit_breakers = Some(cluster::CircuitBreakers {
            thresholds: vec![cluster::circuit_breakers::Thresholds {
                priority: core::RoutingPriority::Default as i32,
                max_connections: cb.max_connections.map(u32v),
                max_pending_requests: cb.max_pending_requests.map(u32v),
                max_requests: cb.max_requests.map(u32v),
                max_retries: cb.max_retries.map(u32v),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    ok.then_some(out)
}

// ---------------------------------------------------------------------------------------------
// Endpoints

pub(crate) fn endpoints(
    name: &str,
    e: Option<&model::Endpoints>,
    d: &mut Diags,
) -> endpoint::ClusterLoadAssignment {
    use std::collections::BTreeMap;
    // (priority, region, zone, sub_zone) -> (address, port) -> (weight, health)
    type Group = BTreeMap<(String, u16), (u32, model::Health)>;
    let mut groups: BTreeMap<(u32, String, String, String), Group> = BTreeMap::new();
    for (li, loc) in e
        .map(|e| e.localities.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let g = groups
            .entry((
                loc.priority,
                loc.region.clone(),
                loc.zone.clone(),
                loc.sub_zone.clone(),
            ))
            .or_default();
        for (ei, ep) in loc.endpoints.iter().enumerate() {
            let field = ("localities", li, "endpoints", ei);
            let ok = d.check((field, "address"), validate::ip(&ep.address))
                & d.check((field, "port"), validate::port(ep.port))
                & d.check(
                    (field, "weight"),
                    if ep.weight == 0 {
                        Err(Problem::invalid("must be at least 1"))
                    } else {
                        Ok(())
                    },
                );
            if !ok {
                continue;
            }
            let key = (ep.address.clone(), ep.port);
            if g.contains_key(&key) {
                d.warn(
                    field,
                    Problem::invalid(format!(
                        "duplicate endpoint {}:{} in one locality; the first is kept",
                        ep.address, ep.port
                    )),
                );
                continue;
            }
            g.insert(key, (ep.weight, ep.health));
        }
    }
    // Priorities are compacted to 0, 1, 2, ... in order (Envoy requires them contiguous).
    for ((_, region, zone, sub_zone), eps) in &groups {
        let total: u64 = eps.values().map(|(w, _)| u64::from(*w)).sum();
        if total > u64::from(u32::MAX) {
            d.error(
                "localities",
                Problem::invalid(format!(
                    "endpoint weights in locality {region:?}/{zone:?}/{sub_zone:?} add up to {total}, over Envoy's limit of {}",
                    u32::MAX
                )),
            );
        }
    }
    groups.retain(|_, eps| {
        eps.values().map(|(w, _)| u64::from(*w)).sum::<u64>() <= u64::from(u32::MAX)
    });
    let mut priorities: Vec<u32> = groups.keys().map(|k| k.0).collect();
    priorities.dedup();
    let mut out = endpoint::ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        ..Default::default()
    };
    for ((priority, region, zone, sub_zone), eps) in groups {
        if eps.is_empty() {
            continue;
        }
        let dense = priorities.iter().position(|p| *p == priority).unwrap_or(0) as u32;
        out.endpoints.push(endpoint::LocalityLbEndpoints {
            locality: (!(region.is_empty() && zone.is_empty() && sub_zone.is_empty())).then_some(
                core::Locality {
                    region,
                    zone,
                    sub_zone,
                },
            ),
            priority: dense,
            lb_endpoints: eps
                .into_iter()
                .map(|((address, port), (weight, health))| endpoint::LbEndpoint {
                    health_status: match health {
                        model::Health::Healthy => core::HealthStatus::Healthy,
                        model::Health::Draining => core::HealthStatus::Draining,
                        model::Health::Unhealthy => core::HealthStatus::Unhealthy,
                    } as i32,
                    load_balancing_weight: Some(u32v(weight)),
                    host_identifier: Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(
                        endpoint::Endpoint {
                            address: Some(socket_address(&address, port)),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
    }
    // Recompact in case a priority held only invalid endpoints.
    let mut seen: Vec<u32> = out.endpoints.iter().map(|l| l.priority).collect();
    seen.dedup();
    for l in &mut out.endpoints {
        l.priority = seen.iter().position(|p| *p == l.priority).unwrap_or(0) as u32;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Listeners

/// What a listener's translation needs to know about the rest of the model.
pub(crate) struct ListenerContext<'a> {
    pub(crate) secret: &'a dyn Fn(&str) -> SecretState,
    pub(crate) cluster: &'a dyn Fn(&str) -> bool,
    /// Another listener that owns the same address and port, if any.
    pub(crate) address_owner: Option<&'a str>,
}

fn access_logs(logs: &[model::AccessLog], d: &mut Diags) -> Vec<accesslog::AccessLog> {
    logs.iter()
        .enumerate()
        .filter_map(|(i, l)| {
            if l.path.is_empty() || l.path.contains('\0') {
                d.error(
                    ("access_log", i, "path"),
                    Problem::invalid("must be a file path"),
                );
                return None;
            }
            let cfg = file_log::FileAccessLog {
                path: l.path.clone(),
                access_log_format: l.format.as_ref().map(|f| {
                    file_log::file_access_log::AccessLogFormat::LogFormat(
                        core::SubstitutionFormatString {
                            format: Some(
                                core::substitution_format_string::Format::TextFormatSource(inline(
                                    f,
                                )),
                            ),
                            ..Default::default()
                        },
                    )
                }),
            };
            Some(accesslog::AccessLog {
                name: "envoy.access_loggers.file".to_owned(),
                config_type: Some(accesslog::access_log::ConfigType::TypedConfig(any(&cfg))),
                ..Default::default()
            })
        })
        .collect()
}

/// Validates SNI names and claims them for one filter chain: names claimed by an earlier
/// chain of the listener are reported (as `{field}[i]`) and skipped.
fn claim_server_names(
    hosts: &[String],
    claimed: &mut BTreeSet<String>,
    field: impl ToFieldPath + Copy,
    earlier: &str,
    d: &mut Diags,
) -> Vec<String> {
    let mut names = Vec::new();
    for (j, h) in hosts.iter().enumerate() {
        match validate::server_name(h) {
            Ok(n) if claimed.contains(&n) => d.warn(
                (field, j),
                Problem::invalid(format!("{n:?} is already {earlier}")),
            ),
            Ok(n) => {
                claimed.insert(n.clone());
                names.push(n);
            }
            Err(p) => d.error((field, j), p),
        }
    }
    names
}

fn network_filter<M: Message + Name>(name: &str, config: &M) -> listener::Filter {
    listener::Filter {
        name: name.to_owned(),
        config_type: Some(listener::filter::ConfigType::TypedConfig(any(config))),
    }
}

fn weighted_tcp(backends: &[&model::Backend]) -> tcp::tcp_proxy::ClusterSpecifier {
    if let [one] = backends {
        return tcp::tcp_proxy::ClusterSpecifier::Cluster(one.cluster.clone());
    }
    tcp::tcp_proxy::ClusterSpecifier::WeightedClusters(tcp::tcp_proxy::WeightedCluster {
        clusters: backends
            .iter()
            .map(|b| tcp::tcp_proxy::weighted_cluster::ClusterWeight {
                name: b.cluster.clone(),
                weight: b.weight,
                ..Default::default()
            })
            .collect(),
    })
}

/// Backends usable by a route: known clusters with weight > 0. Reports the others.
fn usable_backends<'a>(
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

pub(crate) fn listener(
    l: &model::Listener,
    ctx: &ListenerContext<'_>,
    d: &mut Diags,
) -> Option<listener::Listener> {
    use model::ListenerProtocol as P;
    let mut ok =
        d.check("address", validate::ip(&l.address)) & d.check("port", validate::port(l.port));
    if let Some(owner) = ctx.address_owner {
        d.error(
            "port",
            Problem::Conflict {
                what: format!("address {}:{}", l.address, l.port),
                winner: ObjectKey::new(Kind::Listener, owner),
            },
        );
        ok = false;
    }
    if l.max_connections == Some(0) {
        ok &= d.check(
            "max_connections",
            Err(Problem::invalid("must be at least 1")),
        );
    }
    match l.protocol {
        P::Http | P::Https if !l.tcp_routes.is_empty() => {
            d.warn(
                "tcp_routes",
                Problem::invalid("ignored: only tls_passthrough and tcp listeners have TCP routes"),
            );
        }
        P::Http | P::Tcp | P::TlsPassthrough if !l.tls.is_empty() => {
            d.warn(
                "tls",
                Problem::invalid("ignored: only https listeners terminate TLS"),
            );
        }
        _ => {}
    }
    let logs = access_logs(&l.access_log, d);
    if !ok {
        return None;
    }
    let mut out = listener::Listener {
        name: l.name.clone(),
        address: Some(socket_address(&l.address, l.port)),
        ..Default::default()
    };
    let limit = l.max_connections.map(|max| {
        network_filter(
            "envoy.filters.network.connection_limit",
            &conn_limit::ConnectionLimit {
                stat_prefix: l.name.clone(),
                max_connections: Some(pb::UInt64Value { value: max }),
                ..Default::default()
            },
        )
    });
    let with_limit = |f: listener::Filter| limit.iter().cloned().chain([f]).collect::<Vec<_>>();
    let tls_inspector = || listener::ListenerFilter {
        name: "envoy.filters.listener.tls_inspector".to_owned(),
        config_type: Some(listener::listener_filter::ConfigType::TypedConfig(any(
            &tls_inspector::TlsInspector::default(),
        ))),
        ..Default::default()
    };
    match l.protocol {
        P::Http | P::Https => {
            let manager = hcm::HttpConnectionManager {
                stat_prefix: l.name.clone(),
                codec_type: hcm::http_connection_manager::CodecType::Auto as i32,
                route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
                    hcm::Rds {
                        config_source: Some(ads()),
                        route_config_name: l.name.clone(),
                    },
                )),
                http_filters: vec![hcm::HttpFilter {
                    name: "envoy.filters.http.router".to_owned(),
                    config_type: Some(hcm::http_filter::ConfigType::TypedConfig(any(
                        &router::Router::default(),
                    ))),
                    ..Default::default()
                }],
                common_http_protocol_options: l.idle_timeout.map(|t| core::HttpProtocolOptions {
                    idle_timeout: Some(duration(t)),
                    ..Default::default()
                }),
                access_log: logs,
                // Domains never carry ports (validated), so match hosts without theirs.
                strip_port_mode: Some(
                    hcm::http_connection_manager::StripPortMode::StripAnyHostPort(true),
                ),
                ..Default::default()
            };
            let filter = network_filter("envoy.filters.network.http_connection_manager", &manager);
            if l.protocol == P::Http {
                out.filter_chains.push(listener::FilterChain {
                    filters: with_limit(filter),
                    ..Default::default()
                });
            } else {
                out.listener_filters.push(tls_inspector());
                let mut claimed: BTreeSet<String> = BTreeSet::new();
                let mut has_default = false;
                for (i, t) in l.tls.iter().enumerate() {
                    let field = ("tls", i);
                    match (ctx.secret)(&t.secret) {
                        SecretState::TlsCertificate => {}
                        SecretState::ValidationContext => {
                            d.error(
                                (field, "secret"),
                                Problem::invalid(format!(
                                    "secret {:?} is a validation context, not a certificate",
                                    t.secret
                                )),
                            );
                            continue;
                        }
                        SecretState::Missing => {
                            d.error(
                                (field, "secret"),
                                Problem::Dangling(ObjectKey::new(Kind::Secret, t.secret.as_str())),
                            );
                            continue;
                        }
                    }
                    let mut names = claim_server_names(
                        &t.hosts,
                        &mut claimed,
                        (field, "hosts"),
                        "served by an earlier tls entry",
                        d,
                    );
                    if t.hosts.is_empty() {
                        if has_default {
                            d.warn(
                                field,
                                Problem::invalid(
                                    "a second default certificate (no hosts) is ignored",
                                ),
                            );
                            continue;
                        }
                        has_default = true;
                    } else if names.is_empty() {
                        continue;
                    }
                    names.sort();
                    let context = tls::DownstreamTlsContext {
                        common_tls_context: Some(tls::CommonTlsContext {
                            tls_certificate_sds_secret_configs: vec![sds(&t.secret)],
                            alpn_protocols: vec!["h2".to_owned(), "http/1.1".to_owned()],
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    out.filter_chains.push(listener::FilterChain {
                        filter_chain_match: (!names.is_empty()).then(|| {
                            listener::FilterChainMatch {
                                server_names: names,
                                ..Default::default()
                            }
                        }),
                        filters: with_limit(filter.clone()),
                        transport_socket: Some(tls_socket(&context)),
                        ..Default::default()
                    });
                }
                if out.filter_chains.is_empty() {
                    d.error(
                        "tls",
                        Problem::invalid("an https listener needs at least one usable certificate"),
                    );
                    return None;
                }
            }
        }
        P::TlsPassthrough | P::Tcp => {
            if l.protocol == P::TlsPassthrough {
                out.listener_filters.push(tls_inspector());
            }
            let mut claimed: BTreeSet<String> = BTreeSet::new();
            let mut names_seen: BTreeSet<&str> = BTreeSet::new();
            let mut has_default = false;
            let mut chains = Vec::new();
            for (i, r) in l.tcp_routes.iter().enumerate() {
                let field = ("tcp_routes", i);
                if !d.check((field, "name"), validate::name(&r.name)) {
                    continue;
                }
                if !names_seen.insert(&r.name) {
                    d.error(
                        (field, "name"),
                        Problem::invalid(format!("duplicate route name {:?}", r.name)),
                    );
                    continue;
                }
                if l.protocol == P::Tcp && !r.sni.is_empty() {
                    d.error(
                        (field, "sni"),
                        Problem::invalid(
                            "plain tcp listeners cannot route by SNI; use tls_passthrough",
                        ),
                    );
                    continue;
                }
                let mut names = claim_server_names(
                    &r.sni,
                    &mut claimed,
                    (field, "sni"),
                    "routed by an earlier route",
                    d,
                );
                if r.sni.is_empty() {
                    if has_default {
                        d.error(
                            field,
                            Problem::invalid("only one route may take connections without SNI"),
                        );
                        continue;
                    }
                    has_default = true;
                } else if names.is_empty() {
                    continue;
                }
                if r.backends.iter().map(|b| u64::from(b.weight)).sum::<u64>() > u64::from(u32::MAX)
                {
                    d.error(
                        (field, "backends"),
                        Problem::invalid("weights add up to more than Envoy's limit of 4294967295"),
                    );
                    continue;
                }
                let backends = usable_backends(&r.backends, (field, "backends"), ctx.cluster, d);
                if backends.is_empty() {
                    d.error(
                        (field, "backends"),
                        Problem::invalid("no usable backend (known cluster with weight > 0)"),
                    );
                    continue;
                }
                names.sort();
                let proxy = tcp::TcpProxy {
                    stat_prefix: format!("{}.{}", l.name, r.name),
                    cluster_specifier: Some(weighted_tcp(&backends)),
                    idle_timeout: l.idle_timeout.map(duration),
                    access_log: logs.clone(),
                    ..Default::default()
                };
                chains.push((
                    r.name.clone(),
                    listener::FilterChain {
                        name: r.name.clone(),
                        filter_chain_match: (!names.is_empty()).then(|| {
                            listener::FilterChainMatch {
                                server_names: names,
                                transport_protocol: "tls".to_owned(),
                                ..Default::default()
                            }
                        }),
                        filters: with_limit(network_filter(
                            "envoy.filters.network.tcp_proxy",
                            &proxy,
                        )),
                        ..Default::default()
                    },
                ));
            }
            chains.sort_by(|a, b| a.0.cmp(&b.0));
            out.filter_chains = chains.into_iter().map(|c| c.1).collect();
            if out.filter_chains.is_empty() {
                d.error("tcp_routes", Problem::invalid("no usable TCP route"));
                return None;
            }
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Routes

/// Validated, precedence-ordered routes of one virtual host: derived from the object alone.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CheckedVhost {
    /// Normalized (lowercase), sorted, deduplicated domains; empty when the host is invalid.
    pub(crate) domains: Vec<String>,
    /// Indices into the object's routes, valid ones only, in precedence order.
    pub(crate) order: Vec<usize>,
    /// Whether the virtual host itself is valid (a valid name, listeners and domains).
    pub(crate) valid: bool,
}

/// The precedence of a route match: smaller sorts first.
fn precedence(r: &model::Route) -> impl Ord + '_ {
    let m = &r.matches;
    let (class, len) = match &m.path {
        model::PathMatch::Exact(p) => (0u8, p.len()),
        model::PathMatch::Regex(p) => (1, p.len()),
        model::PathMatch::PathPrefix(p) => (2, p.trim_end_matches('/').len().max(1)),
        model::PathMatch::Prefix(p) => (2, p.len()),
    };
    let separated = !matches!(m.path, model::PathMatch::PathPrefix(_));
    (
        class,
        std::cmp::Reverse(len),
        separated,
        // Gateway API precedence: a method match counts before header and query matches.
        m.methods.is_empty(),
        std::cmp::Reverse(m.headers.len()),
        std::cmp::Reverse(m.query.len()),
        r.name.as_str(),
    )
}

fn check_string_match(
    v: &model::StringMatch,
    field: impl ToFieldPath + Copy,
    d: &mut Diags,
) -> bool {
    match v {
        model::StringMatch::Regex(r) => d.check(field, validate::regex(r)),
        model::StringMatch::Exact(s) | model::StringMatch::Prefix(s) => {
            d.check(field, validate::header_value(s))
        }
        model::StringMatch::Present => true,
    }
}

fn check_headers(
    m: &model::HeaderModifier,
    field: impl ToFieldPath + Copy,
    request: bool,
    d: &mut Diags,
) -> bool {
    let mut ok = true;
    for (i, h) in m.add.iter().enumerate() {
        let f = (field, "add", i);
        let name = if request {
            validate::mutable_header_name(&h.name)
        } else {
            validate::header_name(&h.name)
        };
        ok &= d.check((f, "name"), name.map(|_| ()))
            & d.check((f, "value"), validate::header_value(&h.value));
    }
    for (i, h) in m.remove.iter().enumerate() {
        let name = if request {
            validate::mutable_header_name(h)
        } else {
            validate::header_name(h)
        };
        ok &= d.check((field, "remove", i), name.map(|_| ()));
    }
    ok
}

/// Object-level checks of one route. `field` is `routes[<name>]`.
fn check_route(r: &model::Route, field: impl ToFieldPath + Copy, d: &mut Diags) -> bool {
    let mut ok = true;
    let m = &r.matches;
    let prefix_like = matches!(
        m.path,
        model::PathMatch::Prefix(_) | model::PathMatch::PathPrefix(_)
    );
    ok &= match &m.path {
        model::PathMatch::Prefix(p)
        | model::PathMatch::PathPrefix(p)
        | model::PathMatch::Exact(p) => d.check((field, "match", "path"), validate::path(p)),
        model::PathMatch::Regex(p) => {
            d.check((field, "match", "path", "regex"), validate::regex(p))
        }
    };
    for (i, h) in m.headers.iter().enumerate() {
        let f = (field, "match", "headers", i);
        ok &= d.check((f, "name"), validate::header_name(&h.name).map(|_| ()));
        ok &= check_string_match(&h.value, (f, "value"), d);
    }
    for (i, q) in m.query.iter().enumerate() {
        let f = (field, "match", "query", i);
        if q.name.is_empty() {
            ok &= d.check((f, "name"), Err(Problem::invalid("must not be empty")));
        }
        ok &= check_string_match(&q.value, (f, "value"), d);
    }
    for (i, meth) in m.methods.iter().enumerate() {
        ok &= d.check((field, "match", "methods", i), validate::method(meth));
    }
    let actions = usize::from(r.forward.is_some())
        + usize::from(r.redirect.is_some())
        + usize::from(r.direct_response.is_some());
    if actions != 1 {
        d.error(
            field,
            Problem::invalid("set exactly one of forward, redirect and direct_response"),
        );
        ok = false;
    }
    if let Some(f) = &r.forward {
        let ff = (field, "forward");
        let total: u64 = f.backends.iter().map(|b| u64::from(b.weight)).sum();
        if total > u64::from(u32::MAX) {
            ok &= d.check(
                (ff, "backends"),
                Err(Problem::invalid(format!(
                    "weights add up to {total}, over Envoy's limit of {}",
                    u32::MAX
                ))),
            );
        }
        if f.backends.is_empty() {
            ok &= d.check((ff, "backends"), Err(Problem::invalid("must not be empty")));
        }
        for (i, b) in f.backends.iter().enumerate() {
            ok &= d.check((ff, "backends", i, "cluster"), validate::name(&b.cluster));
        }
        if let Some(retry) = &f.retry {
            for (i, on) in retry.on.iter().enumerate() {
                if !validate::RETRY_ON.contains(&on.as_str()) {
                    ok &= d.check(
                        (ff, "retry", "on", i),
                        Err(Problem::invalid(format!(
                            "{on:?} is not an Envoy retry condition ({})",
                            validate::RETRY_ON.join(", ")
                        ))),
                    );
                }
            }
        }
        if let Some(p) = &f.rewrite.prefix {
            if matches!(m.path, model::PathMatch::Regex(_)) {
                ok &= d.check(
                    (ff, "rewrite", "prefix"),
                    Err(Problem::invalid(
                        "cannot rewrite the prefix of a regex match; use rewrite.regex",
                    )),
                );
            }
            if f.rewrite.regex.is_some() {
                ok &= d.check(
                    (ff, "rewrite"),
                    Err(Problem::invalid("set at most one of prefix and regex")),
                );
            }
            if !p.is_empty() {
                ok &= d.check((ff, "rewrite", "prefix"), validate::path(p));
            }
        }
        if let Some(rx) = &f.rewrite.regex {
            ok &= d.check(
                (ff, "rewrite", "regex", "pattern"),
                validate::regex(&rx.pattern),
            );
        }
        if let Some(h) = &f.rewrite.host {
            ok &= d.check((ff, "rewrite", "host"), validate::host(h));
        }
        for (i, mirror) in f.mirror.iter().enumerate() {
            ok &= d.check(
                (ff, "mirror", i, "cluster"),
                validate::name(&mirror.cluster),
            );
            if mirror.percent > 100 {
                ok &= d.check(
                    (ff, "mirror", i, "percent"),
                    Err(Problem::invalid("must be at most 100")),
                );
            }
        }
        for (i, h) in f.hash_policy.iter().enumerate() {
            match h {
                model::HashPolicy::Header(n) => {
                    ok &= d.check(
                        (ff, "hash_policy", i, "header"),
                        validate::header_name(n).map(|_| ()),
                    )
                }
                model::HashPolicy::Cookie(n) if n.is_empty() => {
                    ok &= d.check(
                        (ff, "hash_policy", i, "cookie"),
                        Err(Problem::invalid("must not be empty")),
                    );
                }
                _ => {}
            }
        }
    }
    if let Some(rd) = &r.redirect {
        let f = (field, "redirect");
        if let Some(s) = &rd.scheme
            && s != "http"
            && s != "https"
        {
            ok &= d.check(
                (f, "scheme"),
                Err(Problem::invalid("must be http or https")),
            );
        }
        if let Some(h) = &rd.host {
            ok &= d.check((f, "host"), validate::host(h));
        }
        if rd.port == Some(0) {
            ok &= d.check((f, "port"), validate::port(0));
        }
        if rd.path.is_some() && rd.prefix.is_some() {
            ok &= d.check(
                f,
                Err(Problem::invalid("set at most one of path and prefix")),
            );
        }
        if let Some(p) = &rd.path {
            ok &= d.check((f, "path"), validate::path(p));
        }
        if let Some(p) = &rd.prefix {
            if !prefix_like {
                ok &= d.check(
                    (f, "prefix"),
                    Err(Problem::invalid("needs a prefix or path_prefix match")),
                );
            }
            if !p.is_empty() {
                ok &= d.check((f, "prefix"), validate::path(p));
            }
        }
        if let Some(code) = rd.code
            && ![301, 302, 303, 307, 308].contains(&code)
        {
            ok &= d.check(
                (f, "code"),
                Err(Problem::invalid("must be 301, 302, 303, 307 or 308")),
            );
        }
    }
    if let Some(dr) = &r.direct_response {
        if !(200..600).contains(&dr.status) {
            ok &= d.check(
                (field, "direct_response", "status"),
                Err(Problem::invalid("must be from 200 to 599")),
            );
        }
        if dr.body.as_ref().is_some_and(|b| b.len() > 4096) {
            ok &= d.check(
                (field, "direct_response", "body"),
                Err(Problem::invalid("longer than 4096 bytes, Envoy's limit")),
            );
        }
    }
    ok &= check_headers(&r.request_headers, (field, "request_headers"), true, d);
    ok &= check_headers(&r.response_headers, (field, "response_headers"), false, d);
    ok
}

/// Validates a virtual host and orders its routes. Invalid routes are reported and left out;
/// a route whose match equals an earlier route's never matches and is left out too.
pub(crate) fn check_vhost(v: &model::VirtualHost, d: &mut Diags) -> CheckedVhost {
    let mut valid = true;
    if v.listeners.is_empty() {
        d.error(
            "listeners",
            Problem::invalid("must name at least one listener"),
        );
        valid = false;
    }
    for (i, l) in v.listeners.iter().enumerate() {
        valid &= d.check(("listeners", i), validate::name(l));
    }
    let mut domains = Vec::new();
    for (i, dom) in v.domains.iter().enumerate() {
        match validate::domain(dom) {
            Ok(n) => domains.push(n),
            Err(p) => d.error(("domains", i), p),
        }
    }
    domains.sort();
    domains.dedup();
    if domains.is_empty() {
        d.error("domains", Problem::invalid("no valid domain"));
        valid = false;
    }
    let mut names = BTreeSet::new();
    let mut candidates = Vec::new();
    for (i, r) in v.routes.iter().enumerate() {
        let named = Named(&r.name);
        let item: &dyn ToFieldPath = if r.name.is_empty() { &i } else { &named };
        let field = ("routes", item);
        if !d.check((field, "name"), validate::name(&r.name)) {
            continue;
        }
        if !names.insert(r.name.as_str()) {
            d.error(
                (field, "name"),
                Problem::invalid(format!("duplicate route name {:?}", r.name)),
            );
            continue;
        }
        if check_route(r, field, d) {
            candidates.push(i);
        }
    }
    candidates.sort_by(|a, b| precedence(&v.routes[*a]).cmp(&precedence(&v.routes[*b])));
    let mut order: Vec<usize> = Vec::with_capacity(candidates.len());
    let mut seen: std::collections::BTreeMap<MatchKey, usize> = std::collections::BTreeMap::new();
    for i in candidates {
        let r = &v.routes[i];
        match seen.entry(match_key(&r.matches)) {
            std::collections::btree_map::Entry::Occupied(first) => {
                d.warn(
                    ("routes", Named(&r.name)),
                    Problem::Shadowed {
                        by: v.routes[*first.get()].name.clone(),
                    },
                );
            }
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(i);
                order.push(i);
            }
        }
    }
    if !valid {
        domains.clear();
        order.clear();
    }
    CheckedVhost {
        domains,
        order,
        valid,
    }
}

/// What makes two route matches the same: path (a trailing `/` of a segment prefix does not
/// count), and headers, query parameters and methods in any order.
type MatchKey = (
    model::PathMatch,
    Vec<(String, model::StringMatch, bool)>,
    Vec<(String, model::StringMatch)>,
    Vec<String>,
);

fn match_key(m: &model::RouteMatch) -> MatchKey {
    let path = match &m.path {
        model::PathMatch::PathPrefix(p) => {
            model::PathMatch::PathPrefix(p.trim_end_matches('/').to_owned())
        }
        other => other.clone(),
    };
    let mut headers: Vec<_> = m
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.clone(), h.invert))
        .collect();
    headers.sort();
    let mut query: Vec<_> = m
        .query
        .iter()
        .map(|q| (q.name.clone(), q.value.clone()))
        .collect();
    query.sort();
    let mut methods = m.methods.clone();
    methods.sort();
    methods.dedup();
    (path, headers, query, methods)
}

fn string_matcher(v: &model::StringMatch) -> Option<matcher::StringMatcher> {
    use matcher::string_matcher::MatchPattern;
    let pattern = match v {
        model::StringMatch::Exact(s) => MatchPattern::Exact(s.clone()),
        model::StringMatch::Prefix(s) => MatchPattern::Prefix(s.clone()),
        model::StringMatch::Regex(r) => MatchPattern::SafeRegex(regex_matcher(r)),
        model::StringMatch::Present => return None,
    };
    Some(matcher::StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    })
}

fn regex_matcher(r: &str) -> matcher::RegexMatcher {
    matcher::RegexMatcher {
        regex: r.to_owned(),
        ..Default::default()
    }
}

fn route_match(m: &model::RouteMatch) -> route::RouteMatch {
    use route::route_match::PathSpecifier;
    let path = match &m.path {
        model::PathMatch::Prefix(p) => PathSpecifier::Prefix(p.clone()),
        model::PathMatch::Exact(p) => PathSpecifier::Path(p.clone()),
        model::PathMatch::Regex(r) => PathSpecifier::SafeRegex(regex_matcher(r)),
        model::PathMatch::PathPrefix(p) => match p.trim_end_matches('/') {
            "" => PathSpecifier::Prefix("/".to_owned()),
            trimmed => PathSpecifier::PathSeparatedPrefix(trimmed.to_owned()),
        },
    };
    let mut headers: Vec<route::HeaderMatcher> = m
        .headers
        .iter()
        .map(|h| route::HeaderMatcher {
            name: h.name.to_ascii_lowercase(),
            header_match_specifier: Some(match string_matcher(&h.value) {
                Some(sm) => route::header_matcher::HeaderMatchSpecifier::StringMatch(sm),
                None => route::header_matcher::HeaderMatchSpecifier::PresentMatch(true),
            }),
            invert_match: h.invert,
            ..Default::default()
        })
        .collect();
    if !m.methods.is_empty() {
        let mut methods = m.methods.clone();
        methods.sort();
        methods.dedup();
        let pattern = if let [one] = methods.as_slice() {
            matcher::string_matcher::MatchPattern::Exact(one.clone())
        } else {
            matcher::string_matcher::MatchPattern::SafeRegex(regex_matcher(&methods.join("|")))
        };
        headers.push(route::HeaderMatcher {
            name: ":method".to_owned(),
            header_match_specifier: Some(route::header_matcher::HeaderMatchSpecifier::StringMatch(
                matcher::StringMatcher {
                    match_pattern: Some(pattern),
                    ignore_case: false,
                },
            )),
            ..Default::default()
        });
    }
    route::RouteMatch {
        path_specifier: Some(path),
        headers,
        query_parameters: m
            .query
            .iter()
            .map(|q| route::QueryParameterMatcher {
                name: q.name.clone(),
                query_parameter_match_specifier: Some(match string_matcher(&q.value) {
                    Some(sm) => {
                        route::query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(
                            sm,
                        )
                    }
                    None => {
                        route::query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(
                            true,
                        )
                    }
                }),
            })
            .collect(),
        ..Default::default()
    }
}

fn header_options(m: &model::HeaderModifier) -> (Vec<core::HeaderValueOption>, Vec<String>) {
    use core::header_value_option::HeaderAppendAction;
    let add = m
        .add
        .iter()
        .map(|h| core::HeaderValueOption {
            header: Some(core::HeaderValue {
                key: h.name.to_ascii_lowercase(),
                value: h.value.clone(),
                ..Default::default()
            }),
            append_action: if h.append {
                HeaderAppendAction::AppendIfExistsOrAdd
            } else {
                HeaderAppendAction::OverwriteIfExistsOrAdd
            } as i32,
            ..Default::default()
        })
        .collect();
    (
        add,
        m.remove.iter().map(|h| h.to_ascii_lowercase()).collect(),
    )
}

fn direct(status: u32, body: Option<&str>) -> route::route::Action {
    route::route::Action::DirectResponse(route::DirectResponseAction {
        status,
        body: body.map(inline),
        ..Default::default()
    })
}

fn forward_action(
    r: &model::Route,
    f: &model::Forward,
    field: impl ToFieldPath + Copy,
    cluster: &dyn Fn(&str) -> bool,
    d: &mut Diags,
) -> route::route::Action {
    use route::route_action::{ClusterSpecifier, HostRewriteSpecifier};
    let backends = usable_backends(&f.backends, (field, "forward", "backends"), cluster, d);
    if backends.is_empty() {
        // Gateway API: every backend weight 0 means 500; no known backend at all, 503.
        let all_zero = f.backends.iter().all(|b| b.weight == 0);
        let status = if all_zero { 500 } else { 503 };
        d.warn(
            (field, "forward", "backends"),
            Problem::invalid(format!("no usable backend; the route answers {status}")),
        );
        return direct(status, None);
    }
    let specifier = if let [one] = backends.as_slice() {
        ClusterSpecifier::Cluster(one.cluster.clone())
    } else {
        ClusterSpecifier::WeightedClusters(route::WeightedCluster {
            clusters: backends
                .iter()
                .map(|b| route::weighted_cluster::ClusterWeight {
                    name: b.cluster.clone(),
                    weight: Some(u32v(b.weight)),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    };
    let mut action = route::RouteAction {
        cluster_specifier: Some(specifier),
        timeout: f.timeout.map(duration),
        ..Default::default()
    };
    if let Some(p) = &f.rewrite.prefix {
        action.prefix_rewrite = match (&r.matches.path, p.as_str()) {
            // Rewriting a segment prefix to "/" would leave "//rest"; Envoy users write "".
            (model::PathMatch::PathPrefix(_), "/") => "/".to_owned(),
            _ => p.clone(),
        };
    }
    if let Some(rx) = &f.rewrite.regex {
        action.regex_rewrite = Some(matcher::RegexMatchAndSubstitute {
            pattern: Some(regex_matcher(&rx.pattern)),
            substitution: rx.substitution.clone(),
        });
    }
    if let Some(h) = &f.rewrite.host {
        action.host_rewrite_specifier = Some(HostRewriteSpecifier::HostRewriteLiteral(h.clone()));
    }
    if let Some(retry) = &f.retry {
        action.retry_policy = Some(route::RetryPolicy {
            retry_on: retry.on.join(","),
            num_retries: Some(u32v(retry.attempts)),
            per_try_timeout: retry.per_try_timeout.map(duration),
            ..Default::default()
        });
    }
    for (i, m) in f.mirror.iter().enumerate() {
        if !cluster(&m.cluster) {
            d.warn(
                (field, "forward", "mirror", i, "cluster"),
                Problem::Dangling(ObjectKey::new(Kind::Cluster, m.cluster.as_str())),
            );
            continue;
        }
        action
            .request_mirror_policies
            .push(route::route_action::RequestMirrorPolicy {
                cluster: m.cluster.clone(),
                runtime_fraction: (m.percent < 100).then(|| core::RuntimeFractionalPercent {
                    default_value: Some(etype::FractionalPercent {
                        numerator: m.percent,
                        denominator: etype::fractional_percent::DenominatorType::Hundred as i32,
                    }),
                    runtime_key: String::new(),
                }),
                ..Default::default()
            });
    }
    for h in &f.hash_policy {
        use route::route_action::hash_policy::{
            ConnectionProperties, Cookie, Header, PolicySpecifier,
        };
        let spec = match h {
            model::HashPolicy::Header(n) => PolicySpecifier::Header(Header {
                header_name: n.to_ascii_lowercase(),
                ..Default::default()
            }),
            model::HashPolicy::Cookie(n) => PolicySpecifier::Cookie(Cookie {
                name: n.clone(),
                ..Default::default()
            }),
            model::HashPolicy::SourceIp => {
                PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: true })
            }
        };
        action.hash_policy.push(route::route_action::HashPolicy {
            policy_specifier: Some(spec),
            terminal: false,
        });
    }
    route::route::Action::Route(action)
}

fn redirect_action(rd: &model::Redirect, m: &model::RouteMatch) -> route::route::Action {
    use route::redirect_action::{
        PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier,
    };
    let code = match rd.code.unwrap_or(301) {
        302 => RedirectResponseCode::Found,
        303 => RedirectResponseCode::SeeOther,
        307 => RedirectResponseCode::TemporaryRedirect,
        308 => RedirectResponseCode::PermanentRedirect,
        _ => RedirectResponseCode::MovedPermanently,
    };
    let path = match (&rd.path, &rd.prefix) {
        (Some(p), _) => Some(PathRewriteSpecifier::PathRedirect(p.clone())),
        (None, Some(p)) => Some(PathRewriteSpecifier::PrefixRewrite(
            if matches!(m.path, model::PathMatch::PathPrefix(_)) && p == "/" {
                "/".to_owned()
            } else {
                p.clone()
            },
        )),
        _ => None,
    };
    route::route::Action::Redirect(route::RedirectAction {
        scheme_rewrite_specifier: rd
            .scheme
            .clone()
            .map(SchemeRewriteSpecifier::SchemeRedirect),
        host_redirect: rd.host.clone().unwrap_or_default(),
        port_redirect: rd.port.map(u32::from).unwrap_or(0),
        path_rewrite_specifier: path,
        response_code: code as i32,
        ..Default::default()
    })
}

/// The Envoy virtual host for `v` on one listener, serving `domains` (those it owns there).
pub(crate) fn virtual_host(
    v: &model::VirtualHost,
    checked: &CheckedVhost,
    domains: Vec<String>,
    cluster: &dyn Fn(&str) -> bool,
    d: &mut Diags,
) -> route::VirtualHost {
    let routes = checked
        .order
        .iter()
        .filter_map(|i| v.routes.get(*i))
        .map(|r| {
            let field = ("routes", Named(&r.name));
            let action = if let Some(f) = &r.forward {
                forward_action(r, f, field, cluster, d)
            } else if let Some(rd) = &r.redirect {
                redirect_action(rd, &r.matches)
            } else if let Some(dr) = &r.direct_response {
                direct(u32::from(dr.status), dr.body.as_deref())
            } else {
                direct(500, None)
            };
            let (req_add, req_remove) = header_options(&r.request_headers);
            let (resp_add, resp_remove) = header_options(&r.response_headers);
            route::Route {
                name: r.name.clone(),
                r#match: Some(route_match(&r.matches)),
                action: Some(action),
                request_headers_to_add: req_add,
                request_headers_to_remove: req_remove,
                response_headers_to_add: resp_add,
                response_headers_to_remove: resp_remove,
                ..Default::default()
            }
        })
        .collect();
    route::VirtualHost {
        name: v.name.clone(),
        domains,
        routes,
        ..Default::default()
    }
}
