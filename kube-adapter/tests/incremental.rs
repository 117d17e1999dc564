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

/// With one kind of edge missing, the property fails (so the property tests the index).
#[test]
fn dropping_a_dependency_edge_is_caught() {
    for kind in [
        DepKind::Object,
        DepKind::Slices,
        DepKind::HostIngresses,
        DepKind::GatewayRoutes,
        DepKind::TlsHost,
    ] {
        let mut runner = TestRunner::new(Config {
            cases: 2000,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&strategy::batches(), |b| check(&b, Some(kind)));
        assert!(result.is_err(), "dropping {kind:?} edges went unnoticed");
    }
}
