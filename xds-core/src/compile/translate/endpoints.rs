//! Endpoints: a model `Endpoints` into a `ClusterLoadAssignment`, grouped by priority and
//! locality, sorted, duplicates reported, priorities made contiguous.
//!
//! Not here: whether the cluster exists (the compiler asks before calling).

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;

use super::parts::{socket_address, u32v};
use crate::compile::validate;
use crate::diagnostic::{Diags, Problem};
use crate::model;

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
