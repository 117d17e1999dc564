//! xdsc-benches: seeded, reproducible model generators for the benchmarks and scale runs of
//! xdsc.
//!
//! [`services`] builds a model shaped like a mid-sized mesh ingress: one HTTP listener and, per
//! service, a cluster, its endpoints and a virtual host with a handful of routes.
//! [`endpoint_change`] and [`route_change`] produce the smallest real changes to such a model,
//! the ones a control plane sees most often. Everything is a pure function of its arguments
//! (a tiny splitmix64 generator, no `rand`, no clock), so a bench run is reproducible from its
//! seed (STYLE.md rule 15).
//!
//! This crate uses only the public API of `xdsc-core`; it does not measure anything itself.
//! The Criterion benches are in `benches/compile.rs`, the allocation counts in
//! `benches/alloc.rs`.

use std::net::Ipv4Addr;
use std::sync::Arc;

use xdsc_core::model::{
    Backend, Change, Cluster, Duration, Endpoint, Endpoints, Forward, HeaderMatch, Health,
    HealthCheck, Kind, LbPolicy, Listener, Locality, Model, Object, ObjectKey, OutlierDetection,
    PathMatch, Redirect, Route, RouteMatch, StringMatch, UpstreamProtocol, VirtualHost,
};

/// The name of the one HTTP listener (port 8080) every generated virtual host is attached to;
/// also the name of its route configuration.
pub const LISTENER: &str = "http";

/// The name of the route in every generated virtual host that splits traffic between two
/// clusters (the one [`route_change`] changes).
pub const SPLIT_ROUTE: &str = "split";

/// The name of service `i`: its cluster and endpoints are `svc-i`.
pub fn service_name(i: usize) -> String {
    format!("svc-{i}")
}

/// The name of service `i`'s virtual host: `vh-i`.
pub fn vhost_name(i: usize) -> String {
    format!("vh-{i}")
}

/// splitmix64 (Steele, Lea and Flood): tiny, fast and good enough to vary a model's shape.
struct Rng(u64);

impl Rng {
    /// A generator for one service: its draws depend on the seed and on `i` only, so service
    /// `i` looks the same whatever the number of services.
    fn for_service(seed: u64, i: usize) -> Rng {
        let mut r = Rng(seed ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`); the modulo bias is irrelevant here.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `1/n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// A model of `n` services with `endpoints_per_service` endpoints each, fully determined by
/// `seed`.
///
/// It holds one HTTP listener [`LISTENER`] on port 8080 and, per service `i`:
/// - a [`Cluster`] `svc-i` with a varied load-balancing policy, connect timeout and protocol,
///   and, for some services, an HTTP or TCP health check, outlier detection and circuit
///   breakers;
/// - an [`Endpoints`] object `svc-i` whose endpoints are spread round-robin over two zones at
///   two priorities (four localities), mostly healthy, some draining, with weights 1 to 3;
///   endpoint `j` of service `i` has address `10.0.0.0 + i * endpoints_per_service + j`, so
///   every address in the model is distinct;
/// - a [`VirtualHost`] `vh-i` on the listener for `svc-i.example.com` with 3 to 5 routes: a
///   catch-all prefix route to `svc-i`, a weighted split ([`SPLIT_ROUTE`]) between `svc-i` and
///   `svc-(i+1)`, and one to three of: an exact-path route with a timeout, a header-matched
///   route to `svc-(i+1)`, a path-prefix redirect to HTTPS.
///
/// The model compiles without diagnostics.
///
/// # Panics
///
/// When the addresses do not fit in `10.0.0.0/8` (`n * endpoints_per_service >= 2^24`).
///
/// ```
/// let m = xdsc_benches::services(3, 10, 42);
/// assert_eq!(m.len(), 1 + 3 * 3); // the listener, then a cluster, endpoints and vhost each
/// assert_eq!(m, xdsc_benches::services(3, 10, 42));
/// ```
pub fn services(n: usize, endpoints_per_service: usize, seed: u64) -> Model {
    assert!(
        n.saturating_mul(endpoints_per_service) < 1 << 24,
        "{n} services of {endpoints_per_service} endpoints do not fit in 10.0.0.0/8"
    );
    let mut objects = Vec::with_capacity(1 + 3 * n);
    objects.push(Object::Listener(Listener::new(LISTENER, 8080)));
    for i in 0..n {
        objects.extend(service(i, (i + 1) % n, endpoints_per_service, seed));
    }
    Model::from_objects(objects)
}

/// Service `i` of [`services`]: its cluster, endpoints and virtual host, whose split route
/// also sends traffic to service `partner`.
fn service(i: usize, partner: usize, endpoints_per_service: usize, seed: u64) -> [Object; 3] {
    let mut rng = Rng::for_service(seed, i);
    let name = service_name(i);
    let partner = service_name(partner);
    [
        Object::Cluster(cluster(&name, &mut rng)),
        Object::Endpoints(endpoints(
            &name,
            i * endpoints_per_service,
            endpoints_per_service,
            &mut rng,
        )),
        Object::VirtualHost(vhost(i, &name, &partner, &mut rng)),
    ]
}

/// The changes that add service `n` to a model of `n` services from [`services`] (same
/// `endpoints_per_service` and `seed`): a new cluster, its endpoints and a virtual host with
/// routes to it, as when a Kubernetes Service and its Ingress rule appear. The new virtual
/// host's split route also sends traffic to `svc-0`.
///
/// ```
/// use xdsc_core::compile::Compiled;
/// use xdsc_core::snapshot::ResourceType;
/// let m = xdsc_benches::services(3, 2, 7);
/// let c = Compiled::new(&m).apply(xdsc_benches::service_added(3, 2, 7));
/// assert_eq!(c.diagnostics(), []);
/// assert_eq!(c.snapshot().resources(ResourceType::Cluster).len(), 4);
/// let back = c.apply(xdsc_benches::service_removed(3));
/// assert_eq!(back.snapshot(), Compiled::new(&m).snapshot());
/// ```
pub fn service_added(n: usize, endpoints_per_service: usize, seed: u64) -> Vec<Change> {
    service(n, 0, endpoints_per_service, seed)
        .into_iter()
        .map(|o| Change::Upsert(Arc::new(o)))
        .collect()
}

/// The changes that remove what [`service_added`] added: service `n`'s cluster, endpoints
/// and virtual host.
pub fn service_removed(n: usize) -> Vec<Change> {
    [
        ObjectKey::new(Kind::Cluster, service_name(n)),
        ObjectKey::new(Kind::Endpoints, service_name(n)),
        ObjectKey::new(Kind::VirtualHost, vhost_name(n)),
    ]
    .into_iter()
    .map(Change::Delete)
    .collect()
}

/// The changes that add service `n`'s cluster and endpoints only, as [`service_added`] does
/// but with no virtual host: nothing routes to it yet, so no route configuration changes
/// (a new Kubernetes Service before any route names it). What a cluster change costs the
/// server by itself, without resending the one route configuration of every virtual host.
///
/// ```
/// use xdsc_core::compile::Compiled;
/// use xdsc_core::snapshot::ResourceType;
/// let m = xdsc_benches::services(3, 2, 7);
/// let before = Compiled::new(&m);
/// let c = before.apply(xdsc_benches::cluster_added(3, 2, 7));
/// assert_eq!(c.diagnostics(), []);
/// assert_eq!(c.snapshot().resources(ResourceType::Cluster).len(), 4);
/// assert_eq!(
///     c.snapshot().resources(ResourceType::Route).version(),
///     before.snapshot().resources(ResourceType::Route).version()
/// );
/// let back = c.apply(xdsc_benches::cluster_removed(3));
/// assert_eq!(back.snapshot(), before.snapshot());
/// ```
pub fn cluster_added(n: usize, endpoints_per_service: usize, seed: u64) -> Vec<Change> {
    let mut changes = service_added(n, endpoints_per_service, seed);
    changes.retain(|c| !matches!(c, Change::Upsert(o) if matches!(**o, Object::VirtualHost(_))));
    changes
}

/// The changes that remove what [`cluster_added`] added.
pub fn cluster_removed(n: usize) -> Vec<Change> {
    let mut changes = service_removed(n);
    changes.retain(|c| !matches!(c, Change::Delete(k) if k.kind == Kind::VirtualHost));
    changes
}

fn cluster(name: &str, rng: &mut Rng) -> Cluster {
    let mut c = Cluster::new(name);
    c.lb = match rng.below(8) {
        0..=3 => LbPolicy::RoundRobin,
        4 | 5 => LbPolicy::LeastRequest,
        6 => LbPolicy::RingHash,
        _ => LbPolicy::Random,
    };
    c.connect_timeout = Some(Duration::from_millis(250 * (1 + rng.below(8))));
    if rng.one_in(4) {
        c.protocol = UpstreamProtocol::Http2;
    }
    if !rng.one_in(3) {
        c.health_check = Some(HealthCheck {
            http_path: (!rng.one_in(4)).then(|| "/healthz".to_owned()),
            host: None,
            interval: Some(Duration::from_secs(5 + rng.below(10))),
            timeout: Some(Duration::from_secs(1)),
            healthy_threshold: Some(2),
            unhealthy_threshold: Some(3),
        });
    }
    if rng.one_in(2) {
        c.outlier_detection = Some(OutlierDetection {
            consecutive_5xx: Some(5),
            interval: Some(Duration::from_secs(10)),
            base_ejection_time: Some(Duration::from_secs(30)),
            max_ejection_percent: Some(10 + 10 * rng.below(5) as u32),
        });
    }
    if rng.one_in(4) {
        c.circuit_breakers = Some(xdsc_core::model::CircuitBreakers {
            max_connections: Some(1024),
            max_pending_requests: Some(1024),
            max_requests: Some(4096),
            max_retries: Some(3),
        });
    }
    c
}

fn endpoints(name: &str, first: usize, count: usize, rng: &mut Rng) -> Endpoints {
    // Two zones at two priorities: four localities, filled round-robin.
    let mut localities: Vec<Locality> = (0..4)
        .map(|k| Locality {
            region: "us-east-1".to_owned(),
            zone: format!("us-east-1{}", ['a', 'b'][k % 2]),
            sub_zone: String::new(),
            priority: (k / 2) as u32,
            endpoints: Vec::with_capacity(count.div_ceil(4)),
        })
        .collect();
    for j in 0..count {
        let offset = u32::try_from(first + j).expect("checked by the caller");
        localities[j % 4].endpoints.push(Endpoint {
            address: Ipv4Addr::from(0x0A00_0000 + offset).to_string(),
            port: 8000 + rng.below(4) as u16,
            weight: 1 + rng.below(3) as u32,
            health: if rng.one_in(8) {
                Health::Draining
            } else {
                Health::Healthy
            },
        });
    }
    localities.retain(|l| !l.endpoints.is_empty());
    Endpoints {
        name: name.to_owned(),
        localities,
        provenance: Vec::new(),
    }
}

fn vhost(i: usize, name: &str, partner: &str, rng: &mut Rng) -> VirtualHost {
    let mut v = VirtualHost::new(vhost_name(i), [LISTENER], [format!("{name}.example.com")]);
    v.routes.push(Route::forward_prefix("all", "/", name));
    // Never 50/50, so that swapping the weights (route_change) is a real change.
    let canary = 1 + rng.below(40) as u32;
    v.routes.push(Route {
        forward: Some(Forward {
            backends: vec![
                Backend {
                    cluster: name.to_owned(),
                    weight: 100 - canary,
                },
                Backend {
                    cluster: partner.to_owned(),
                    weight: canary,
                },
            ],
            ..Forward::to(name)
        }),
        ..Route::forward_prefix(SPLIT_ROUTE, "/v2/", name)
    });
    // One to three of the optional routes, in a seeded order.
    let extra = 1 + rng.below(3);
    let start = rng.below(3);
    for k in 0..extra {
        v.routes.push(match (start + k) % 3 {
            0 => {
                let mut r = Route::forward_prefix("status", "/", name);
                r.matches.path = PathMatch::Exact("/api/v1/status".to_owned());
                if let Some(f) = &mut r.forward {
                    f.timeout = Some(Duration::from_millis(500 * (1 + rng.below(4))));
                }
                r
            }
            1 => Route {
                matches: RouteMatch {
                    headers: vec![HeaderMatch {
                        name: "x-canary".to_owned(),
                        value: StringMatch::Exact("true".to_owned()),
                        invert: false,
                    }],
                    ..RouteMatch::default()
                },
                ..Route::forward_prefix("canary-header", "/", partner)
            },
            _ => Route {
                matches: RouteMatch {
                    path: PathMatch::PathPrefix("/old".to_owned()),
                    ..RouteMatch::default()
                },
                forward: None,
                redirect: Some(Redirect {
                    scheme: Some("https".to_owned()),
                    prefix: Some("/new".to_owned()),
                    code: Some(if rng.one_in(2) { 301 } else { 308 }),
                    ..Redirect::default()
                }),
                ..Route::forward_prefix("legacy", "/", name)
            },
        });
    }
    v
}

/// The object of this kind and name in `model`.
fn object(model: &Model, kind: Kind, name: String) -> &Object {
    model
        .get(&ObjectKey::new(kind, name.as_str()))
        .unwrap_or_else(|| panic!("no {kind} {name} in the model"))
}

/// A change to service `i`'s [`Endpoints`] in `model` that moves exactly one endpoint, chosen
/// by `seed`, to another address: the first octet is flipped between 10 and 11 (so applying
/// the change's result again flips it back, and the new address collides with no other).
///
/// # Panics
///
/// When `model` holds no `Endpoints` object `svc-i` with at least one IPv4 endpoint (every
/// model from [`services`] with `i < n` and endpoints does).
///
/// ```
/// use xdsc_core::model::{Change, Object};
/// let m = xdsc_benches::services(2, 4, 7);
/// let Change::Upsert(o) = xdsc_benches::endpoint_change(&m, 1, 0) else { unreachable!() };
/// let Object::Endpoints(e) = &*o else { unreachable!() };
/// let moved = e.localities.iter().flat_map(|l| &l.endpoints).filter(|e| e.address.starts_with("11.")).count();
/// assert_eq!(moved, 1);
/// ```
pub fn endpoint_change(model: &Model, i: usize, seed: u64) -> Change {
    let Object::Endpoints(e) = object(model, Kind::Endpoints, service_name(i)) else {
        unreachable!("an Endpoints key names an Endpoints object")
    };
    let mut e = e.clone();
    let total: usize = e.localities.iter().map(|l| l.endpoints.len()).sum();
    assert!(total > 0, "svc-{i} has no endpoints");
    let pick = Rng::for_service(seed, i).below(total as u64) as usize;
    let ep = e
        .localities
        .iter_mut()
        .flat_map(|l| l.endpoints.iter_mut())
        .nth(pick)
        .expect("pick < total");
    let ip: Ipv4Addr = ep.address.parse().expect("generated endpoints are IPv4");
    let mut octets = ip.octets();
    octets[0] ^= 1;
    ep.address = Ipv4Addr::from(octets).to_string();
    Change::Upsert(Arc::new(Object::Endpoints(e)))
}

/// A change to one route of service `i`'s virtual host in `model`: the weights of its
/// [`SPLIT_ROUTE`] are swapped (canary promoted or rolled back). Only that virtual host's
/// part of the listener's route configuration changes.
///
/// # Panics
///
/// When `model` holds no `VirtualHost` `vh-i` with a route [`SPLIT_ROUTE`] (every model
/// from [`services`] with `i < n` does).
///
/// ```
/// let m = xdsc_benches::services(2, 4, 7);
/// let c = xdsc_benches::route_change(&m, 0);
/// assert_eq!(c.key().name.as_ref(), "vh-0");
/// ```
pub fn route_change(model: &Model, i: usize) -> Change {
    let Object::VirtualHost(v) = object(model, Kind::VirtualHost, vhost_name(i)) else {
        unreachable!("a VirtualHost key names a VirtualHost object")
    };
    let mut v = v.clone();
    let forward = v
        .routes
        .iter_mut()
        .find(|r| r.name == SPLIT_ROUTE)
        .and_then(|r| r.forward.as_mut())
        .unwrap_or_else(|| panic!("vh-{i} has no forwarding route {SPLIT_ROUTE:?}"));
    if let [a, b] = forward.backends.as_mut_slice() {
        std::mem::swap(&mut a.weight, &mut b.weight);
    } else {
        forward.backends.reverse();
    }
    Change::Upsert(Arc::new(Object::VirtualHost(v)))
}

/// The value at fraction `p` (0 to 1) of `sorted` (nearest rank; zero when empty), as the
/// load tools report their p50 / p99.
///
/// ```
/// use std::time::Duration;
/// let ms = |n| Duration::from_millis(n);
/// assert_eq!(xdsc_benches::percentile(&[ms(1), ms(2), ms(3)], 0.5), ms(2));
/// assert_eq!(xdsc_benches::percentile(&[], 0.99), Duration::ZERO);
/// ```
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    if sorted.is_empty() {
        return std::time::Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A process's CPU time so far (user and system, seconds), from `/proc/PID/stat`; zero when
/// it cannot be read.
///
/// ```
/// assert!(xdsc_benches::cpu_seconds(std::process::id()) >= 0.0);
/// ```
pub fn cpu_seconds(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = s.rsplit_once(')')?.1.to_owned();
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .unwrap_or(0.0);
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

#[cfg(test)]
mod tests {
    use xdsc_core::compile::Compiled;
    use xdsc_core::snapshot::ResourceType;

    use super::*;

    #[test]
    fn same_seed_same_model_other_seed_other_model() {
        assert_eq!(services(50, 10, 1), services(50, 10, 1));
        assert_ne!(services(50, 10, 1), services(50, 10, 2));
    }

    #[test]
    fn compiles_cleanly_to_the_expected_resources() {
        let out = Compiled::new(&services(40, 10, 3));
        assert_eq!(out.diagnostics(), []);
        let count = |t| out.snapshot().resources(t).len();
        assert_eq!(count(ResourceType::Cluster), 40);
        assert_eq!(count(ResourceType::Endpoint), 40);
        assert_eq!(count(ResourceType::Listener), 1);
        assert_eq!(count(ResourceType::Route), 1);
    }

    #[test]
    fn one_service_splits_to_itself_without_diagnostics() {
        assert_eq!(Compiled::new(&services(1, 3, 0)).diagnostics(), []);
    }

    #[test]
    fn routes_vary_between_three_and_five() {
        let m = services(200, 1, 9);
        let counts: std::collections::BTreeSet<usize> = m
            .of_kind(Kind::VirtualHost)
            .map(|o| match &**o {
                Object::VirtualHost(v) => v.routes.len(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(counts.into_iter().collect::<Vec<_>>(), [3, 4, 5]);
    }

    #[test]
    fn endpoint_change_changes_one_eds_resource() {
        let model = services(20, 10, 5);
        let old = Compiled::new(&model);
        let new = old.apply([endpoint_change(&model, 7, 11)]);
        assert_eq!(new.diagnostics(), []);
        let diff = old.snapshot().diff(new.snapshot());
        assert_eq!(
            diff.changed_types().collect::<Vec<_>>(),
            [ResourceType::Endpoint]
        );
        assert_eq!(
            diff.get(ResourceType::Endpoint).changed,
            [Arc::from("svc-7")]
        );
    }

    #[test]
    fn route_change_changes_the_route_configuration_only() {
        let model = services(20, 10, 5);
        let old = Compiled::new(&model);
        let new = old.apply([route_change(&model, 3)]);
        assert_eq!(new.diagnostics(), []);
        let diff = old.snapshot().diff(new.snapshot());
        assert_eq!(
            diff.changed_types().collect::<Vec<_>>(),
            [ResourceType::Route]
        );
    }
}
