//! Incremental equals full: any sequence of batches of upserts and deletes, applied to a
//! `Translator`, ends with the model, diagnostics and statuses of a one-shot translation of
//! the final set, object for object, and compiles to the same snapshot, byte for byte. The
//! deltas are checked too: applying each batch's model changes, diagnostics added and
//! removed, and statuses to what the previous batches gave reproduces the final state.
//!
//! And the test can fail: with one kind of dependency edge dropped from the index, the same
//! property finds a counterexample.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use xdsc_core::compile::Compiled;
use xdsc_core::model::{Change, Model};
use xdsc_kube::status::ObjectStatus;
use xdsc_kube::strategy;
use xdsc_kube::translate::{self, Diagnostic, Inputs, ObjectRef};
use xdsc_kube::translator::{DepKind, ObjectChange, Translator};

fn check(batches: &[Vec<ObjectChange>], drop: Option<DepKind>) -> Result<(), TestCaseError> {
    let options = strategy::options();
    let mut t = Translator::new(options.clone());
    if let Some(kind) = drop {
        t.drop_edges_for_test(kind);
    }
    let mut inputs = Inputs::default();
    let mut model = Model::default();
    let mut compiled = Compiled::default();
    let mut diagnostics: BTreeSet<Diagnostic> = BTreeSet::new();
    let mut statuses: BTreeMap<ObjectRef, ObjectStatus> = BTreeMap::new();
    for batch in batches {
        let delta = t.apply(batch.iter().cloned());
        for c in batch {
            match c {
                ObjectChange::Upsert { object, origin } => {
                    inputs.insert(object.clone(), origin.clone());
                }
                ObjectChange::Delete(id) => {
                    inputs.remove(id);
                }
            }
        }
        for c in &delta.changes {
            let present = model.get(&c.key()).is_some();
            if let Change::Delete(_) = c {
                prop_assert!(present, "deletes {} which is not there", c.key());
            }
        }
        model = model.apply(delta.changes.iter().cloned());
        compiled = compiled.apply(delta.changes.iter().cloned());
        for d in &delta.diagnostics_removed {
            prop_assert!(diagnostics.remove(d), "clears {d}, never reported");
        }
        for d in &delta.diagnostics_added {
            prop_assert!(diagnostics.insert(d.clone()), "reports {d} twice");
        }
        for (id, s) in &delta.statuses {
            match s {
                Some(s) => {
                    let old = statuses.insert(id.clone(), s.clone());
                    prop_assert_ne!(old.as_ref(), Some(s), "{}: an unchanged status", id);
                }
                None => prop_assert!(statuses.remove(id).is_some(), "{id}: no status to clear"),
            }
        }
    }
    let full = translate::full(&inputs, &options);
    let incremental: Vec<_> = model.objects().map(|o| (**o).clone()).collect();
    prop_assert_eq!(&incremental, &full.objects, "model objects");
    let kept: Vec<_> = t.objects().map(|o| (**o).clone()).collect();
    prop_assert_eq!(&kept, &full.objects, "the translator's own model");
    let diagnostics: Vec<_> = diagnostics.into_iter().collect();
    prop_assert_eq!(&diagnostics, &full.diagnostics, "diagnostics");
    prop_assert_eq!(&statuses, &full.statuses, "statuses");
    let fresh = Compiled::new(
        &Model::default().apply(
            full.objects
                .iter()
                .map(|o| Change::Upsert(std::sync::Arc::new(o.clone()))),
        ),
    );
    prop_assert_eq!(compiled.snapshot().version(), fresh.snapshot().version());
    for (a, b) in compiled.snapshot().iter().zip(fresh.snapshot().iter()) {
        prop_assert_eq!(a.name(), b.name());
        prop_assert_eq!(a.body(), b.body(), "{} differs", a.name());
    }
    prop_assert_eq!(compiled.snapshot().len(), fresh.snapshot().len());
    Ok(())
}

proptest! {
    #![proptest_config(Config { cases: 256, ..Config::default() })]

    #[test]
    fn incremental_translation_equals_a_full_translation(batches in strategy::batches()) {
        check(&batches, None)?;
    }

    #[test]
    fn incremental_translation_equals_a_full_translation_where_routes_share_hosts(
        batches in strategy::batches_of(strategy::Mix::GatewayHosts)
    ) {
        check(&batches, None)?;
    }
}

/// A runner with a fixed seed: the property runs below find the same cases on every run,
/// so they cannot pass or fail by luck.
fn seeded(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = proptest::test_runner::TestRng::deterministic_rng(
        proptest::test_runner::RngAlgorithm::ChaCha,
    );
    TestRunner::new_with_rng(config, rng)
}

/// With one kind of edge missing, the property fails (so the property tests the index):
/// on a fixed sequence that needs the edge, and on the seeded random batches of the part
/// of the translation that reads it.
#[test]
fn dropping_a_dependency_edge_is_caught() {
    use strategy::Mix;
    for (kind, mix, needs_it) in [
        (DepKind::Object, Mix::All, service_arrives_later()),
        (DepKind::Slices, Mix::All, slice_arrives_later()),
        (DepKind::HostIngresses, Mix::Ingress, ingress_joins_a_host()),
        (
            DepKind::TlsHost,
            Mix::Ingress,
            another_ingress_gives_a_host_tls(),
        ),
        (DepKind::GatewayRoutes, Mix::Gateway, route_attaches_later()),
        (DepKind::PortGateways, Mix::Gateway, gateway_joins_a_port()),
        (
            DepKind::GatewayHosts,
            Mix::GatewayHosts,
            route_joins_a_host(),
        ),
        // Grants: a random grant rarely opens the one reference a random route makes, so
        // only the fixed sequence is run for it (below).
    ] {
        check(&needs_it, None).expect("the translator is right with every edge");
        assert!(
            check(&needs_it, Some(kind)).is_err(),
            "dropping {kind:?} edges went unnoticed by its fixed sequence"
        );
        let result = seeded(3000).run(&strategy::batches_of(mix), |b| check(&b, Some(kind)));
        assert!(
            result.is_err(),
            "dropping {kind:?} edges went unnoticed by the property"
        );
    }
}

fn parsed(v: serde_json::Value) -> ObjectChange {
    let o = xdsc_kube::translate::KubeObject::from_value(v).expect("a valid manifest");
    ObjectChange::upsert(o, None)
}

/// An IngressClass of ours, the default, and a Service `s0` of port 80 in namespace `a`.
fn ingress_basics() -> Vec<ObjectChange> {
    use serde_json::json;
    vec![
        parsed(xdsc_kube::strategy::ingress_class_manifest()),
        parsed(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s0", "namespace": "a"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        ),
    ]
}

/// An Ingress `name` in namespace `a` routing `host` and `path` to Service `service`.
fn ingress(name: &str, host: &str, path: &str, service: &str) -> ObjectChange {
    parsed(
        serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": "a"},
        "spec": {"rules": [{"host": host, "http": {"paths": [{"path": path, "pathType": "Prefix",
            "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}}),
    )
}

/// An Ingress refers to a Service that arrives later: the host reads it by identity.
fn service_arrives_later() -> Vec<Vec<ObjectChange>> {
    let mut first = ingress_basics();
    first.push(ingress("i0", "a.example", "/", "s1"));
    let s1 = serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s1", "namespace": "a"},
        "spec": {"ports": [{"name": "http", "port": 80}]}});
    vec![first, vec![parsed(s1)]]
}

/// A Service's EndpointSlice arrives later: its Endpoints read the slices by label.
fn slice_arrives_later() -> Vec<Vec<ObjectChange>> {
    let mut first = ingress_basics();
    first.push(ingress("i0", "a.example", "/", "s0"));
    let slice = serde_json::json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "s0-x", "namespace": "a", "labels": {"kubernetes.io/service-name": "s0"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}}]});
    vec![first, vec![parsed(slice)]]
}

/// A second Ingress adds a path to a host the first one has.
fn ingress_joins_a_host() -> Vec<Vec<ObjectChange>> {
    let mut first = ingress_basics();
    first.push(ingress("i0", "a.example", "/a", "s0"));
    vec![first, vec![ingress("i1", "a.example", "/b", "s0")]]
}

/// A second Ingress, for another host, gives the first one's host a certificate (while a
/// third one already has HTTPS served, so only the host's TLS fact changes).
fn another_ingress_gives_a_host_tls() -> Vec<Vec<ObjectChange>> {
    use serde_json::json;
    let with_tls = |name: &str, tls_host: &str, host: &str| {
        parsed(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "a"},
            "spec": {"tls": [{"hosts": [tls_host], "secretName": "cert"}],
                "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "s0", "port": {"number": 80}}}}]}}]}}),
        )
    };
    let mut first = ingress_basics();
    first.push(with_tls("i2", "c.example", "c.example"));
    first.push(parsed(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "cert", "namespace": "a"}, "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": "-----BEGIN CERTIFICATE-----\nb25l\n-----END CERTIFICATE-----\n",
            "tls.key": "-----BEGIN PRIVATE KEY-----\na2V5\n-----END PRIVATE KEY-----\n"}})));
    first.push(ingress("i0", "a.example", "/", "s0"));
    vec![first, vec![with_tls("i1", "a.example", "b.example")]]
}

/// An HTTPRoute attaches to a Gateway that is already there.
fn route_attaches_later() -> Vec<Vec<ObjectChange>> {
    use serde_json::json;
    let gw = "gateway.networking.k8s.io/v1";
    vec![
        vec![
            parsed(
                json!({"apiVersion": gw, "kind": "GatewayClass", "metadata": {"name": "gc"},
                "spec": {"controllerName": "xdsc.dev/gateway-controller"}}),
            ),
            parsed(
                json!({"apiVersion": gw, "kind": "Gateway", "metadata": {"name": "g0", "namespace": "a"},
                "spec": {"gatewayClassName": "gc", "listeners": [{"name": "l0", "port": 80, "protocol": "HTTP"}]}}),
            ),
            ingress_basics().pop().expect("the Service"),
        ],
        vec![parsed(
            json!({"apiVersion": gw, "kind": "HTTPRoute", "metadata": {"name": "r0", "namespace": "a"},
                "spec": {"parentRefs": [{"name": "g0"}], "rules": [{"backendRefs": [{"name": "s0", "port": 80}]}]}}),
        )],
    ]
}

/// An HTTPRoute `name` of Gateway `g0` for `host`, path prefix `path`, to `s0`.
fn host_route(name: &str, host: &str, path: &str) -> ObjectChange {
    parsed(
        serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": "a"},
        "spec": {"parentRefs": [{"name": "g0"}], "hostnames": [host],
                 "rules": [{"matches": [{"path": {"value": path}}],
                            "backendRefs": [{"name": "s0", "port": 80}]}]}}),
    )
}

/// A second HTTPRoute joins a host a first one serves: the port unit attaches it, and the
/// host's virtual host (its own unit, which never read the new route) must hear of it.
fn route_joins_a_host() -> Vec<Vec<ObjectChange>> {
    let mut first = route_attaches_later().remove(0);
    first.push(host_route("r0", "a.x.com", "/a"));
    vec![first, vec![host_route("r1", "a.x.com", "/b")]]
}

/// A wildcard host appears beside an exact one it covers: the exact host's virtual host
/// must take the wildcard's rules after its own (the port's head lists the wildcards).
fn wildcard_joins_a_port() -> Vec<Vec<ObjectChange>> {
    let mut first = route_attaches_later().remove(0);
    first.push(host_route("r0", "a.x.com", "/a"));
    vec![first, vec![host_route("rw", "*.x.com", "/w")]]
}

/// A route's backend in another namespace, then the ReferenceGrant that opens it.
fn grant_arrives_later() -> Vec<Vec<ObjectChange>> {
    use serde_json::json;
    let gw = "gateway.networking.k8s.io/v1";
    vec![
        vec![
            parsed(
                json!({"apiVersion": gw, "kind": "GatewayClass", "metadata": {"name": "gc"},
                "spec": {"controllerName": "xdsc.dev/gateway-controller"}}),
            ),
            parsed(
                json!({"apiVersion": gw, "kind": "Gateway", "metadata": {"name": "g0", "namespace": "a"},
                "spec": {"gatewayClassName": "gc", "listeners": [{"name": "l0", "port": 80, "protocol": "HTTP"}]}}),
            ),
            parsed(
                json!({"apiVersion": gw, "kind": "HTTPRoute", "metadata": {"name": "r0", "namespace": "a"},
                "spec": {"parentRefs": [{"name": "g0"}], "rules": [{"backendRefs": [{"name": "s0", "namespace": "b", "port": 80}]}]}}),
            ),
        ],
        vec![parsed(
            json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
            "metadata": {"name": "rg0", "namespace": "b"},
            "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "a"}],
                     "to": [{"group": "", "kind": "Service"}]}}),
        )],
    ]
}

/// A second Gateway arrives on a port the first one serves: the port is recomputed.
fn gateway_joins_a_port() -> Vec<Vec<ObjectChange>> {
    use serde_json::json;
    let gw = "gateway.networking.k8s.io/v1";
    let gateway = |name: &str, host: &str| {
        parsed(
            json!({"apiVersion": gw, "kind": "Gateway", "metadata": {"name": name, "namespace": "a"},
            "spec": {"gatewayClassName": "gc", "listeners": [{"name": "l0", "port": 80, "protocol": "HTTP", "hostname": host}]}}),
        )
    };
    vec![
        vec![
            parsed(
                json!({"apiVersion": gw, "kind": "GatewayClass", "metadata": {"name": "gc"},
                "spec": {"controllerName": "xdsc.dev/gateway-controller"}}),
            ),
            gateway("g0", "x.com"),
        ],
        vec![gateway("g1", "y.com")],
    ]
}

#[test]
fn the_gateway_host_edges_are_needed() {
    for batches in [route_joins_a_host(), wildcard_joins_a_port()] {
        check(&batches, None).expect("the translator is right with every edge");
        assert!(
            check(&batches, Some(DepKind::GatewayHosts)).is_err(),
            "dropping GatewayHosts edges went unnoticed"
        );
    }
}

#[test]
fn the_grant_edge_is_needed() {
    let batches = grant_arrives_later();
    check(&batches, None).expect("the translator is right with every edge");
    assert!(
        check(&batches, Some(DepKind::Grants)).is_err(),
        "dropping Grants edges went unnoticed"
    );
}
