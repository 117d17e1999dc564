//! Listeners: a model `Listener` into an Envoy `Listener`: an HTTP connection manager (with
//! TLS filter chains by SNI for https, beside which an https listener may pass other SNI
//! names through to TCP routes) or TCP proxies routed by SNI, a connection limit and access
//! logs.
//!
//! Not here: the route configuration an HTTP listener serves (see `routes`).

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::accesslog::v3 as accesslog;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::extensions::access_loggers::file::v3 as file_log;
use envoy_types::pb::envoy::extensions::filters::http::router::v3 as router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3 as tls_inspector;
use envoy_types::pb::envoy::extensions::filters::network::connection_limit::v3 as conn_limit;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::google::protobuf as pb;
use prost::{Message, Name};

use super::parts::{ads, any, duration, inline, sds, socket_address, tls_socket, usable_backends};
use super::secret::SecretState;
use crate::compile::validate;
use crate::diagnostic::{Diags, Problem, ToFieldPath};
use crate::model::{self, Kind, ObjectKey};

/// The HTTP router filter, always the last HTTP filter.
const ROUTER: &str = "envoy.filters.http.router";

/// A list of named extensions (HTTP or listener filters) as names and `Any`s; reports each
/// bad name or configuration at `field[i]` and clears `ok`.
fn extensions(
    list: &[model::NamedExtension],
    field: &'static str,
    d: &mut Diags,
    ok: &mut bool,
) -> Vec<(String, pb::Any)> {
    let mut out = Vec::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        let named = d.check((field, i, "name"), validate::name(&e.name));
        match crate::compile::typed::resolve(&e.typed_config) {
            Ok(a) if named => out.push((e.name.clone(), a)),
            Ok(_) => *ok = false,
            Err(p) => {
                d.error((field, i, "typed_config"), p);
                *ok = false;
            }
        }
    }
    out
}

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

/// What the filter chains of one listener have claimed so far: SNI names, and whether a chain
/// without names (the default) exists. Shared by an https listener's terminating and
/// passthrough chains, so that no two chains match the same connections.
#[derive(Default)]
struct Claims {
    names: BTreeSet<String>,
    has_default: bool,
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
    if let Some(rc) = &l.route_config {
        ok &= d.check("route_config", validate::name(rc));
    }
    if let Some(prefix) = &l.stat_prefix {
        ok &= d.check("stat_prefix", validate::name(prefix));
    }
    if l.max_connections == Some(0) {
        ok &= d.check(
            "max_connections",
            Err(Problem::invalid("must be at least 1")),
        );
    }
    match l.protocol {
        P::Http if !l.tcp_routes.is_empty() => {
            d.warn(
                "tcp_routes",
                Problem::invalid(
                    "ignored: only https, tls_passthrough and tcp listeners have TCP routes",
                ),
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
    let http_filters = extensions(&l.http_filters, "http_filters", d, &mut ok);
    if !http_filters.is_empty() && !matches!(l.protocol, P::Http | P::Https) {
        d.warn(
            "http_filters",
            Problem::invalid("ignored: only http and https listeners have HTTP filters"),
        );
    }
    for (i, (name, _)) in http_filters.iter().enumerate() {
        if name == ROUTER {
            d.error(
                ("http_filters", i, "name"),
                Problem::invalid("the router is always the last filter; xdsc adds it"),
            );
            ok = false;
        }
    }
    let user_listener_filters = extensions(&l.listener_filters, "listener_filters", d, &mut ok);
    if !ok {
        return None;
    }
    let mut out = listener::Listener {
        name: l.name.clone(),
        address: Some(socket_address(&l.address, l.port)),
        listener_filters: user_listener_filters
            .into_iter()
            .map(|(name, a)| listener::ListenerFilter {
                name,
                config_type: Some(listener::listener_filter::ConfigType::TypedConfig(a)),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let limit = connection_limit(l);
    match l.protocol {
        P::Http => {
            let filter = http_connection_manager(l, logs, &http_filters);
            out.filter_chains.push(listener::FilterChain {
                filters: with_limit(&limit, filter),
                ..Default::default()
            });
        }
        P::Https => {
            out.listener_filters.push(tls_inspector());
            let filter = http_connection_manager(l, logs.clone(), &http_filters);
            let mut claims = Claims::default();
            out.filter_chains = https_chains(l, ctx, &filter, &limit, &mut claims, d);
            let terminated = out.filter_chains.len();
            // SNI names no certificate claims may be passed through, unterminated.
            out.filter_chains
                .extend(tcp_chains(l, ctx, &logs, &limit, &mut claims, d));
            if terminated == 0 {
                d.error(
                    "tls",
                    Problem::invalid("an https listener needs at least one usable certificate"),
                );
                return None;
            }
        }
        P::TlsPassthrough | P::Tcp => {
            if l.protocol == P::TlsPassthrough {
                out.listener_filters.push(tls_inspector());
            }
            out.filter_chains = tcp_chains(l, ctx, &logs, &limit, &mut Claims::default(), d);
            if out.filter_chains.is_empty() {
                d.error("tcp_routes", Problem::invalid("no usable TCP route"));
                return None;
            }
        }
    }
    Some(out)
}

/// The connection limit filter of a listener that sets `max_connections`.
fn connection_limit(l: &model::Listener) -> Option<listener::Filter> {
    l.max_connections.map(|max| {
        network_filter(
            "envoy.filters.network.connection_limit",
            &conn_limit::ConnectionLimit {
                stat_prefix: l.name.clone(),
                max_connections: Some(pb::UInt64Value { value: max }),
                ..Default::default()
            },
        )
    })
}

/// A filter chain's filters: the connection limit, if any, then `filter`.
fn with_limit(limit: &Option<listener::Filter>, filter: listener::Filter) -> Vec<listener::Filter> {
    limit.iter().cloned().chain([filter]).collect()
}

fn tls_inspector() -> listener::ListenerFilter {
    listener::ListenerFilter {
        name: "envoy.filters.listener.tls_inspector".to_owned(),
        config_type: Some(listener::listener_filter::ConfigType::TypedConfig(any(
            &tls_inspector::TlsInspector::default(),
        ))),
        ..Default::default()
    }
}

/// The HTTP connection manager of an http or https listener: routes by RDS (the route
/// configuration the listener names, by default its own name), then the router.
fn http_connection_manager(
    l: &model::Listener,
    logs: Vec<accesslog::AccessLog>,
    filters: &[(String, pb::Any)],
) -> listener::Filter {
    let router = hcm::HttpFilter {
        name: ROUTER.to_owned(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(any(
            &router::Router::default(),
        ))),
        ..Default::default()
    };
    let manager = hcm::HttpConnectionManager {
        stat_prefix: l.stat_prefix_or_name().to_owned(),
        codec_type: hcm::http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
            hcm::Rds {
                config_source: Some(ads()),
                route_config_name: l.route_config_name().to_owned(),
            },
        )),
        http_filters: filters
            .iter()
            .map(|(name, a)| hcm::HttpFilter {
                name: name.clone(),
                config_type: Some(hcm::http_filter::ConfigType::TypedConfig(a.clone())),
                ..Default::default()
            })
            .chain([router])
            .collect(),
        common_http_protocol_options: l.idle_timeout.map(|t| core::HttpProtocolOptions {
            idle_timeout: Some(duration(t)),
            ..Default::default()
        }),
        access_log: logs,
        // Domains never carry ports (validated), so match hosts without theirs.
        strip_port_mode: Some(hcm::http_connection_manager::StripPortMode::StripAnyHostPort(true)),
        ..Default::default()
    };
    network_filter("envoy.filters.network.http_connection_manager", &manager)
}

/// The filter chains of an https listener: one per usable certificate, by SNI (at most one
/// without hosts, the default). Unusable entries are reported and left out.
fn https_chains(
    l: &model::Listener,
    ctx: &ListenerContext<'_>,
    filter: &listener::Filter,
    limit: &Option<listener::Filter>,
    claims: &mut Claims,
    d: &mut Diags,
) -> Vec<listener::FilterChain> {
    let mut chains = Vec::new();
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
            &mut claims.names,
            (field, "hosts"),
            "served by an earlier tls entry",
            d,
        );
        if t.hosts.is_empty() {
            if claims.has_default {
                d.warn(
                    field,
                    Problem::invalid("a second default certificate (no hosts) is ignored"),
                );
                continue;
            }
            claims.has_default = true;
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
        chains.push(listener::FilterChain {
            filter_chain_match: (!names.is_empty()).then(|| listener::FilterChainMatch {
                server_names: names,
                ..Default::default()
            }),
            filters: with_limit(limit, filter.clone()),
            transport_socket: Some(tls_socket(&context)),
            ..Default::default()
        });
    }
    chains
}

/// The filter chains of a tcp or tls_passthrough listener, or the passthrough chains of an
/// https one: one TCP proxy per usable route, by SNI, sorted by route name, after the names
/// and default `claims` already holds. Unusable routes are reported and left out.
fn tcp_chains(
    l: &model::Listener,
    ctx: &ListenerContext<'_>,
    logs: &[accesslog::AccessLog],
    limit: &Option<listener::Filter>,
    claims: &mut Claims,
    d: &mut Diags,
) -> Vec<listener::FilterChain> {
    use model::ListenerProtocol as P;
    let mut names_seen: BTreeSet<&str> = BTreeSet::new();
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
                Problem::invalid("plain tcp listeners cannot route by SNI; use tls_passthrough"),
            );
            continue;
        }
        let mut names = claim_server_names(
            &r.sni,
            &mut claims.names,
            (field, "sni"),
            "routed by an earlier route or served by a certificate",
            d,
        );
        if r.sni.is_empty() {
            if claims.has_default {
                d.error(
                    field,
                    Problem::invalid("only one route may take connections without SNI"),
                );
                continue;
            }
            claims.has_default = true;
        } else if names.is_empty() {
            continue;
        }
        if r.backends.iter().map(|b| u64::from(b.weight)).sum::<u64>() > u64::from(u32::MAX) {
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
            access_log: logs.to_vec(),
            ..Default::default()
        };
        chains.push((
            r.name.clone(),
            listener::FilterChain {
                name: r.name.clone(),
                filter_chain_match: (!names.is_empty()).then(|| listener::FilterChainMatch {
                    server_names: names,
                    transport_protocol: "tls".to_owned(),
                    ..Default::default()
                }),
                filters: with_limit(
                    limit,
                    network_filter("envoy.filters.network.tcp_proxy", &proxy),
                ),
                ..Default::default()
            },
        ));
    }
    chains.sort_by(|a, b| a.0.cmp(&b.0));
    chains.into_iter().map(|c| c.1).collect()
}
