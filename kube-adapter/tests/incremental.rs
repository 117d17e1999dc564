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
}

/// With one kind of edge missing, the property fails (so the property tests the index). Each
/// kind of edge is tried on the objects of the part of the translation that reads it.
#[test]
fn dropping_a_dependency_edge_is_caught() {
    use strategy::Mix;
    for (kind, mix) in [
        (DepKind::Object, Mix::All),
        (DepKind::Slices, Mix::All),
        (DepKind::HostIngresses, Mix::Ingress),
        (DepKind::TlsHost, Mix::Ingress),
        (DepKind::GatewayRoutes, Mix::Gateway),
        (DepKind::PortGateways, Mix::Gateway),
        // Grants: a random grant rarely opens the one reference a random route makes; see
        // `the_grant_and_port_edges_are_needed` for the sequence that needs the edge.
    ] {
        let mut runner = TestRunner::new(Config {
            cases: 3000,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&strategy::batches_of(mix), |b| check(&b, Some(kind)));
        assert!(result.is_err(), "dropping {kind:?} edges went unnoticed");
    }
}

fn parsed(v: serde_json::Value) -> ObjectChange {
    let o = xdsc_kube::translate::KubeObject::from_value(v).expect("a valid manifest");
    ObjectChange::upsert(o, None)
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
fn the_grant_and_port_edges_are_needed() {
    for (kind, batches) in [
        (DepKind::Grants, grant_arrives_later()),
        (DepKind::PortGateways, gateway_joins_a_port()),
    ] {
        check(&batches, None).expect("the translator is right with every edge");
        assert!(
            check(&batches, Some(kind)).is_err(),
            "dropping {kind:?} edges went unnoticed"
        );
    }
}
