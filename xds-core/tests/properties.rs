//! The invariants of DESIGN.md, each as a property over generated models and change sequences:
//! deterministic (permuted input, separate processes), incremental equals full, consistent,
//! quiet, and total (no panic).

// Tests read fixtures and run Envoy: the I/O bans of xdsc-core are for the library.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3 as ecluster;
use envoy_types::pb::envoy::config::listener::v3 as elistener;
use envoy_types::pb::envoy::config::route::v3 as eroute;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use prost::Message;
use xdsc_core::compile::Compiled;
use xdsc_core::model::{Change, Kind, Model, Object, ObjectKey};
use xdsc_core::snapshot::{ResourceType, Snapshot};
use xdsc_core::strategy;

fn config() -> Config {
    Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    }
}

/// The last object per key, as a model would keep it.
fn dedup(objects: Vec<Object>) -> Vec<Object> {
    let mut by_key: BTreeMap<ObjectKey, Object> = BTreeMap::new();
    for o in objects {
        by_key.insert(o.key(), o);
    }
    by_key.into_values().collect()
}

/// Every byte and version of a snapshot, for comparisons across processes.
fn fingerprint(s: &Snapshot) -> String {
    let mut out = format!("{}", s.version());
    for r in s.iter() {
        out.push_str(&format!(
            " {}:{}:{}",
            r.resource_type(),
            r.name(),
            r.version()
        ));
    }
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn deterministic_under_permuted_input(objects in strategy::objects_with_raw(), seed in any::<u64>()) {
        let objects = dedup(objects);
        let mut shuffled = objects.clone();
        // A seeded Fisher-Yates shuffle.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let a = Compiled::new(&Model::from_objects(objects));
        // Arriving one object per batch, in another order.
        let mut b = Compiled::default();
        for o in shuffled {
            b = b.apply([Change::Upsert(Arc::new(o))]);
        }
        prop_assert_eq!(a.snapshot().version(), b.snapshot().version());
        prop_assert_eq!(fingerprint(a.snapshot()), fingerprint(b.snapshot()));
        for r in a.snapshot().iter() {
            let other = b.snapshot().get(r.resource_type(), r.name()).unwrap();
            prop_assert_eq!(r.body(), other.body());
        }
        prop_assert_eq!(a.diagnostics(), b.diagnostics());
    }

    #[test]
    fn incremental_equals_full(initial in strategy::objects_with_raw(), batches in strategy::change_batches_with_raw()) {
        let mut inc = Compiled::new(&Model::from_objects(initial));
        for batch in batches {
            let before = inc.clone();
            inc = inc.apply(batch);
            // Unchanged resources are the same allocation as before.
            for r in inc.snapshot().iter() {
                if let Some(old) = before.snapshot().get(r.resource_type(), r.name())
                    && old.version() == r.version()
                    && old.provenance() == r.provenance()
                {
                    prop_assert!(Arc::ptr_eq(old, r), "{} {} was rebuilt into a new allocation", r.resource_type(), r.name());
                }
            }
            let full = Compiled::new(inc.model());
            prop_assert_eq!(fingerprint(inc.snapshot()), fingerprint(full.snapshot()));
            prop_assert!(inc.snapshot() == full.snapshot());
            prop_assert_eq!(inc.diagnostics(), full.diagnostics());
        }
    }

    #[test]
    fn snapshots_are_consistent(model in strategy::model_with_raw()) {
        let out = Compiled::new(&model);
        check_consistent(out.snapshot())?;
        check_raw_references_reported(&out)?;
    }

    /// A change nothing raw depends on (the endpoints of a compiled cluster) leaves every
    /// resource built from a raw object as it was: same allocation, same version.
    #[test]
    fn raw_resources_are_quiet_under_unrelated_changes(model in strategy::model_with_raw(), port in 1u16..100) {
        let a = Compiled::new(&model);
        let eps = xdsc_core::model::Endpoints::new("c1", [xdsc_core::model::Endpoint::new("10.1.0.1", port)]);
        let b = a.apply([Change::upsert(eps)]);
        for r in a.snapshot().iter() {
            let raw = r.provenance().iter().all(|k| k.kind.raw_type().is_some());
            if raw && r.resource_type() != ResourceType::Endpoint {
                let after = b.snapshot().get(r.resource_type(), r.name());
                prop_assert!(after.is_some_and(|x| Arc::ptr_eq(x, r)), "{} {} changed", r.resource_type(), r.name());
            }
        }
    }

    #[test]
    fn no_op_changes_are_quiet(model in strategy::model_with_raw()) {
        let a = Compiled::new(&model);
        // Re-upserting equal (not identical) objects changes nothing at all.
        let same: Vec<Change> = model.objects().map(|o| Change::Upsert(Arc::new((**o).clone()))).collect();
        let b = a.apply(same);
        prop_assert_eq!(a.snapshot().version(), b.snapshot().version());
        for r in b.snapshot().iter() {
            prop_assert!(Arc::ptr_eq(r, a.snapshot().get(r.resource_type(), r.name()).unwrap()));
        }
        prop_assert!(a.snapshot().diff(b.snapshot()).is_empty());
    }

    #[test]
    fn rotating_a_certificate_changes_one_secret_and_no_listener(model in strategy::model()) {
        let a = Compiled::new(&model);
        let rotated = a.snapshot().resources(ResourceType::Secret).iter().find_map(|r| {
            match model.get(&ObjectKey::new(Kind::Secret, r.name())).map(|o| (**o).clone()) {
                Some(Object::Secret(mut s)) if s.tls_certificate.is_some() => {
                    if let Some(c) = s.tls_certificate.as_mut() {
                        c.certificate_chain.push('\n'); // new bytes, same certificate
                    }
                    Some(s)
                }
                _ => None,
            }
        });
        prop_assume!(rotated.is_some());
        let rotated = rotated.unwrap();
        let name = rotated.name.clone();
        let b = a.apply([Change::upsert(rotated)]);
        let diff = a.snapshot().diff(b.snapshot());
        prop_assert_eq!(diff.changed_types().collect::<Vec<_>>(), vec![ResourceType::Secret]);
        prop_assert_eq!(&diff.get(ResourceType::Secret).changed, &vec![Arc::<str>::from(name.as_str())]);
        prop_assert_eq!(a.snapshot().resources(ResourceType::Listener).version(), b.snapshot().resources(ResourceType::Listener).version());
    }
}

fn any_of<M: Message + Default>(a: &envoy_types::pb::google::protobuf::Any) -> M {
    M::decode(a.value.as_slice()).expect("nested Any decodes")
}

/// The TLS context inside a transport socket.
fn socket<M: Message + Default>(
    ts: &Option<envoy_types::pb::envoy::config::core::v3::TransportSocket>,
) -> Option<M> {
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
    match ts.as_ref()?.config_type.as_ref()? {
        ConfigType::TypedConfig(a) => Some(any_of(a)),
    }
}

/// No dangling reference: every cluster a route, mirror or TCP proxy names exists; every
/// cluster has its load assignment; every SDS secret named exists; every RDS name exists.
fn check_consistent(s: &Snapshot) -> Result<(), TestCaseError> {
    let clusters = s.resources(ResourceType::Cluster);
    let has_cluster = |n: &str| clusters.contains(n);
    let has_secret = |n: &str| s.resources(ResourceType::Secret).contains(n);
    let mut eds_services = std::collections::BTreeSet::new();
    for c in clusters.iter() {
        let c = ecluster::Cluster::decode(c.body().clone()).unwrap();
        if let Some(service) = eds_service(&c) {
            prop_assert!(
                s.resources(ResourceType::Endpoint).contains(&service),
                "no endpoints for {} (EDS {service})",
                c.name
            );
            eds_services.insert(service);
        }
        if let Some(ctx) = socket::<tls::UpstreamTlsContext>(&c.transport_socket)
            && let Some(
                tls::common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(
                    sds,
                ),
            ) = ctx
                .common_tls_context
                .and_then(|c| c.validation_context_type)
        {
            prop_assert!(has_secret(&sds.name), "missing CA secret {}", sds.name);
        }
    }
    for e in s.resources(ResourceType::Endpoint).iter() {
        prop_assert!(
            eds_services.contains(e.name()),
            "endpoints without cluster {}",
            e.name()
        );
    }
    // Every route configuration is served by a listener (perhaps shared by several).
    let mut served_routes = std::collections::BTreeSet::new();
    for l in s.resources(ResourceType::Listener).iter() {
        let listener = elistener::Listener::decode(l.body().clone()).unwrap();
        for f in listener.filter_chains.iter().flat_map(|c| &c.filters) {
            if let Some(elistener::filter::ConfigType::TypedConfig(a)) = &f.config_type
                && f.name == "envoy.filters.network.http_connection_manager"
                && let Some(hcm::http_connection_manager::RouteSpecifier::Rds(rds)) =
                    any_of::<hcm::HttpConnectionManager>(a).route_specifier
            {
                served_routes.insert(rds.route_config_name);
            }
        }
    }
    for r in s.resources(ResourceType::Route).iter() {
        // A raw route configuration is served as written (see check_raw_references_reported).
        if is_raw(r) {
            continue;
        }
        prop_assert!(
            served_routes.contains(r.name()),
            "route configuration {} served by no listener",
            r.name()
        );
        let rc = eroute::RouteConfiguration::decode(r.body().clone()).unwrap();
        prop_assert_eq!(&rc.name, r.name());
        for vh in &rc.virtual_hosts {
            for route in &vh.routes {
                if let Some(eroute::route::Action::Route(a)) = &route.action {
                    match &a.cluster_specifier {
                        Some(eroute::route_action::ClusterSpecifier::Cluster(c)) => {
                            prop_assert!(has_cluster(c), "route to missing {c}")
                        }
                        Some(eroute::route_action::ClusterSpecifier::WeightedClusters(w)) => {
                            prop_assert!(w.clusters.len() > 1);
                            for c in &w.clusters {
                                prop_assert!(has_cluster(&c.name), "route to missing {}", c.name);
                            }
                        }
                        other => prop_assert!(false, "unexpected cluster specifier {other:?}"),
                    }
                    for m in &a.request_mirror_policies {
                        prop_assert!(has_cluster(&m.cluster));
                    }
                }
            }
        }
    }
    for l in s.resources(ResourceType::Listener).iter() {
        let listener = elistener::Listener::decode(l.body().clone()).unwrap();
        prop_assert!(!listener.filter_chains.is_empty());
        for chain in &listener.filter_chains {
            if let Some(ctx) = socket::<tls::DownstreamTlsContext>(&chain.transport_socket) {
                for sds in ctx
                    .common_tls_context
                    .unwrap_or_default()
                    .tls_certificate_sds_secret_configs
                {
                    prop_assert!(
                        has_secret(&sds.name),
                        "listener {} names missing secret {}",
                        l.name(),
                        sds.name
                    );
                }
            }
            for f in &chain.filters {
                let Some(elistener::filter::ConfigType::TypedConfig(a)) = &f.config_type else {
                    continue;
                };
                if f.name == "envoy.filters.network.http_connection_manager" {
                    let m: hcm::HttpConnectionManager = any_of(a);
                    if let Some(hcm::http_connection_manager::RouteSpecifier::Rds(rds)) =
                        m.route_specifier
                    {
                        prop_assert!(
                            s.resources(ResourceType::Route)
                                .contains(&rds.route_config_name)
                        );
                    }
                } else if f.name == "envoy.filters.network.tcp_proxy" && !is_raw(l) {
                    let p: tcp::TcpProxy = any_of(a);
                    match p.cluster_specifier {
                        Some(tcp::tcp_proxy::ClusterSpecifier::Cluster(c)) => {
                            prop_assert!(has_cluster(&c))
                        }
                        Some(tcp::tcp_proxy::ClusterSpecifier::WeightedClusters(w)) => {
                            for c in w.clusters {
                                prop_assert!(has_cluster(&c.name));
                            }
                        }
                        None => prop_assert!(false, "tcp proxy without cluster"),
                    }
                }
            }
        }
    }
    Ok(())
}

fn is_raw(r: &xdsc_core::snapshot::Resource) -> bool {
    r.provenance().iter().any(|k| k.kind.raw_type().is_some())
}

/// The load assignment an EDS cluster fetches, `None` for other clusters.
fn eds_service(c: &ecluster::Cluster) -> Option<String> {
    use ecluster::cluster::{ClusterDiscoveryType, DiscoveryType};
    if c.cluster_discovery_type != Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)) {
        return None;
    }
    let service = c
        .eds_cluster_config
        .as_ref()
        .map(|e| e.service_name.clone())
        .unwrap_or_default();
    Some(if service.is_empty() {
        c.name.clone()
    } else {
        service
    })
}

/// Raw resources are served as written: every cluster a raw route configuration or a raw
/// listener's TCP proxy names that does not exist has a warning naming the object and it.
fn check_raw_references_reported(c: &Compiled) -> Result<(), TestCaseError> {
    use xdsc_core::diagnostic::{Problem, Severity};
    let s = c.snapshot();
    let diags = c.diagnostics();
    let reported = |key: &ObjectKey, cluster: &str| {
        diags.iter().any(|d| {
            d.object.model() == Some(key)
                && d.severity == Severity::Warning
                && d.problem == Problem::Dangling(ObjectKey::new(Kind::Cluster, cluster))
        })
    };
    for r in s
        .resources(ResourceType::Route)
        .iter()
        .filter(|r| is_raw(r))
    {
        let rc = eroute::RouteConfiguration::decode(r.body().clone()).unwrap();
        for route in rc.virtual_hosts.iter().flat_map(|v| &v.routes) {
            if let Some(eroute::route::Action::Route(a)) = &route.action
                && let Some(eroute::route_action::ClusterSpecifier::Cluster(cl)) =
                    &a.cluster_specifier
                && !s.resources(ResourceType::Cluster).contains(cl)
            {
                prop_assert!(
                    reported(&r.provenance()[0], cl),
                    "{} names missing {cl} unreported",
                    r.name()
                );
            }
        }
    }
    for l in s
        .resources(ResourceType::Listener)
        .iter()
        .filter(|r| is_raw(r))
    {
        let listener = elistener::Listener::decode(l.body().clone()).unwrap();
        for f in listener.filter_chains.iter().flat_map(|c| &c.filters) {
            if let Some(elistener::filter::ConfigType::TypedConfig(a)) = &f.config_type
                && f.name == "envoy.filters.network.tcp_proxy"
                && let Some(tcp::tcp_proxy::ClusterSpecifier::Cluster(cl)) =
                    any_of::<tcp::TcpProxy>(a).cluster_specifier
                && !s.resources(ResourceType::Cluster).contains(&cl)
            {
                prop_assert!(
                    reported(&l.provenance()[0], &cl),
                    "{} names missing {cl} unreported",
                    l.name()
                );
            }
        }
    }
    Ok(())
}

/// Compiles a fixed, seeded set of generated models and prints their fingerprints.
fn seeded_fingerprints() -> String {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let mut out = String::new();
    for _ in 0..40 {
        let model = strategy::model_with_raw()
            .new_tree(&mut runner)
            .expect("generates")
            .current();
        let compiled = Compiled::new(&model);
        let mut all = Vec::new();
        for r in compiled.snapshot().iter() {
            all.extend_from_slice(r.body());
        }
        out.push_str(&format!(
            "{} {:032x}\n",
            fingerprint(compiled.snapshot()),
            xxhash_rust_free_hash(&all)
        ));
    }
    out
}

/// A tiny FNV-1a over all bytes, so the test needs no extra dependency.
fn xxhash_rust_free_hash(bytes: &[u8]) -> u128 {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in bytes {
        h ^= u128::from(*b);
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    h
}

/// Determinism across processes: `HashMap` seeds differ per process, so any map iteration
/// order leaking into bytes or versions shows up as a difference here.
#[test]
fn deterministic_across_processes() {
    if std::env::var_os("XDSC_FINGERPRINT_CHILD").is_some() {
        print!("BEGIN\n{}END\n", seeded_fingerprints());
        return;
    }
    let mine = seeded_fingerprints();
    let exe = std::env::current_exe().expect("test binary path");
    for _ in 0..3 {
        let out = std::process::Command::new(&exe)
            .args([
                "deterministic_across_processes",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("XDSC_FINGERPRINT_CHILD", "1")
            .output()
            .expect("runs the test binary again");
        let text = String::from_utf8_lossy(&out.stdout);
        let body = text
            .split_once("BEGIN\n")
            .and_then(|(_, rest)| rest.split_once("END\n"))
            .map(|(b, _)| b)
            .unwrap_or_else(|| panic!("child printed no fingerprints: {text}"));
        assert_eq!(body, mine, "a separate process compiled different bytes");
    }
}

proptest! {
    #![proptest_config(Config { cases: 256, failure_persistence: None, ..Config::default() })]

    /// Total: mutated documents either fail to parse or compile without panicking.
    #[test]
    fn mutated_documents_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models");
        for f in ["http-basic.json", "tls-and-tcp.json"] {
            let mut bytes = std::fs::read(root.join(f)).expect("example model");
            for (i, b) in &edits {
                let at = i.index(bytes.len());
                bytes[at] = *b;
            }
            if let Ok(objects) = serde_json::from_slice::<Vec<Object>>(&bytes) {
                let out = Compiled::new(&Model::from_objects(objects));
                let _ = out.diagnostics();
            }
        }
    }
}

/// A compiled and a raw cluster of one name both refer to a secret; deleting the compiled
/// one must not drop the raw one's edge, or the secret appearing later leaves the raw
/// cluster's diagnostic stale (found by `incremental_equals_full`).
#[test]
fn a_shadowing_object_removed_keeps_the_raw_ones_references() {
    use xdsc_core::model::{Cluster, Raw, Secret, TlsCertificate, UpstreamTls};
    let mut compiled = Cluster::new("c1");
    compiled.tls = Some(UpstreamTls {
        sni: None,
        ca_secret: Some("cert-a".into()),
    });
    let raw = Raw::from_json(serde_json::json!({
        "name": "c1", "connect_timeout": "1s", "type": "STATIC",
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {"validation_context_sds_secret_config": {
                "name": "cert-a", "sds_config": {"ads": {}, "resource_api_version": "V3"}}}}}
    }))
    .unwrap();
    let secret = Secret {
        name: "cert-a".into(),
        tls_certificate: Some(TlsCertificate {
            certificate_chain: strategy::TEST_CERT.into(),
            private_key: strategy::TEST_KEY.into(),
        }),
        validation_context: None,
        provenance: Vec::new(),
    };
    let inc = Compiled::new(&Model::from_objects([
        Object::Cluster(compiled),
        Object::EnvoyCluster(raw),
    ]))
    .apply([Change::Delete(ObjectKey::new(Kind::Cluster, "c1"))])
    .apply([Change::upsert(secret)]);
    let full = Compiled::new(inc.model());
    assert_eq!(inc.diagnostics(), full.diagnostics());
    assert!(inc.snapshot() == full.snapshot());
}
