//! Clusters: a model `Cluster` into an EDS `Cluster` with its load-balancing policy,
//! upstream HTTP/2, TLS (its CA secret by SDS), health checks, outlier detection and circuit
//! breakers.
//!
//! Not here: the cluster's endpoints (see `endpoints`).

use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as upstream_http;
use prost::Name;

use super::parts::{ads, any, duration, sds, tls_socket, u32v};
use super::secret::SecretState;
use crate::compile::validate;
use crate::diagnostic::{Diags, Problem};
use crate::model::{self, Kind, ObjectKey};

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
    if !c.typed_extension_protocol_options.is_empty() {
        let (given, resolved) = crate::compile::typed::resolve_map(
            &c.typed_extension_protocol_options,
            &"typed_extension_protocol_options",
            d,
        );
        ok &= resolved;
        for (k, v) in given {
            let taken = out.typed_extension_protocol_options.contains_key(&k);
            if taken {
                d.error(
                    (
                        "typed_extension_protocol_options",
                        crate::diagnostic::Key(&k),
                    ),
                    Problem::invalid("already set by `protocol: http2`"),
                );
                ok = false;
                continue;
            }
            out.typed_extension_protocol_options.insert(k, v);
        }
    }
    if let Some(t) = &c.tls {
        let (socket, tls_ok) = upstream_tls(c, t, secret, d);
        ok &= tls_ok;
        out.transport_socket = Some(socket);
    }
    if let Some(hc) = &c.health_check {
        let (check, check_ok) = health_check(c, hc, d);
        ok &= check_ok;
        out.health_checks.push(check);
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

/// The upstream TLS transport socket of a cluster, and whether its settings are usable.
fn upstream_tls(
    c: &model::Cluster,
    t: &model::UpstreamTls,
    secret: &dyn Fn(&str) -> SecretState,
    d: &mut Diags,
) -> (core::TransportSocket, bool) {
    let mut ok = true;
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
    (tls_socket(&ctx), ok)
}

/// The health check of a cluster, and whether its settings are usable.
fn health_check(
    c: &model::Cluster,
    hc: &model::HealthCheck,
    d: &mut Diags,
) -> (core::HealthCheck, bool) {
    use core::health_check::{HealthChecker, HttpHealthCheck, TcpHealthCheck};
    let mut ok = true;
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
    let check = core::HealthCheck {
        timeout: Some(duration(timeout)),
        interval: Some(duration(interval)),
        healthy_threshold: Some(u32v(hc.healthy_threshold.unwrap_or(2))),
        unhealthy_threshold: Some(u32v(hc.unhealthy_threshold.unwrap_or(3))),
        health_checker: Some(checker),
        ..Default::default()
    };
    (check, ok)
}
