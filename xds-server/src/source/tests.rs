//! The last-good rule, per object.

use std::sync::Arc;

use xdsc_core::compile::Compiled;
use xdsc_core::model::{Cluster, Duration, Kind, VirtualHost};

use super::*;

fn report(c: &Compiled) -> Vec<Diagnostic> {
    c.diagnostics().to_vec()
}

fn cluster(name: &str, ok: bool) -> Change {
    let mut c = Cluster::new(name);
    if !ok {
        c.connect_timeout = Some(Duration::from_millis(0));
    }
    Change::Upsert(Arc::new(Object::Cluster(c)))
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Cluster, name)
}

#[test]
fn only_the_objects_with_new_errors_are_held_and_a_fix_applies_them() {
    let mut r: Reconciler<Diagnostic> = Reconciler::new(Unattributed::HoldAll);
    r.step(vec![cluster("web", true)], report);
    let out = r.step(vec![cluster("web", false), cluster("api", true)], report);
    let Outcome::Applied {
        changed: 1,
        held: 1,
        new_errors,
    } = out
    else {
        panic!("{out:?}")
    };
    assert_eq!(new_errors.len(), 1);
    assert!(r.serves(&key("api")));
    // The held change is retried with every batch: still broken, still held.
    assert!(matches!(
        r.step(vec![cluster("db", true)], report),
        Outcome::Applied { held: 1, .. }
    ));
    // A change of the same object replaces the held one (here: back to what is served).
    let out = r.step(vec![cluster("web", true)], report);
    assert_eq!(out, Outcome::Unchanged);
    assert_eq!(r.pending(), 0);
    assert!(r.held_errors().is_empty());
}

#[test]
fn a_deletion_that_leaves_a_reference_dangling_is_held() {
    let mut r: Reconciler<Diagnostic> = Reconciler::new(Unattributed::Serve);
    let vh = VirtualHost::new("site", ["http"], ["example.com"]);
    let mut vh = vh;
    vh.routes = vec![xdsc_core::model::Route::forward_prefix("r", "/", "web")];
    let listener = xdsc_core::model::Listener::new("http", 8080);
    r.step(
        vec![
            cluster("web", true),
            Change::Upsert(Arc::new(Object::VirtualHost(vh))),
            Change::Upsert(Arc::new(Object::Listener(listener))),
        ],
        report,
    );
    // Deleting the cluster leaves a dangling reference, a warning in the core: served.
    let out = r.step(
        vec![Change::Delete(key("web")), cluster("api", true)],
        report,
    );
    assert!(
        matches!(
            out,
            Outcome::Applied {
                changed: 2,
                held: 0,
                ..
            }
        ),
        "{out:?}"
    );
    // Made an error (as files do), the deletion it names is held and the rest applies.
    let strict = |c: &Compiled| -> Vec<Diagnostic> {
        c.diagnostics()
            .iter()
            .cloned()
            .map(|mut d| {
                if matches!(d.problem, Problem::Dangling(_)) {
                    d.severity = xdsc_core::diagnostic::Severity::Error;
                }
                d
            })
            .collect()
    };
    let mut r: Reconciler<Diagnostic> = Reconciler::new(Unattributed::HoldAll);
    let mut vh = VirtualHost::new("site", ["http"], ["example.com"]);
    vh.routes = vec![xdsc_core::model::Route::forward_prefix("r", "/", "web")];
    r.step(
        vec![
            cluster("web", true),
            Change::Upsert(Arc::new(Object::VirtualHost(vh))),
            Change::Upsert(Arc::new(Object::Listener(xdsc_core::model::Listener::new(
                "http", 8080,
            )))),
        ],
        strict,
    );
    let out = r.step(
        vec![Change::Delete(key("web")), cluster("api", true)],
        strict,
    );
    assert!(
        matches!(
            out,
            Outcome::Applied {
                changed: 1,
                held: 1,
                ..
            }
        ),
        "{out:?}"
    );
    assert!(r.serves(&key("web")) && r.serves(&key("api")));
}

#[test]
fn an_error_no_change_explains_holds_all_or_is_served() {
    // A source finding about nothing that changed (a file-level problem of another file).
    #[derive(Clone, Debug)]
    struct Loose;
    impl Finding for Loose {
        fn is_error(&self) -> bool {
            true
        }
        fn identity(&self) -> String {
            "loose".into()
        }
        fn subject(&self) -> Option<&Subject> {
            None
        }
        fn problem(&self) -> Option<&Problem> {
            None
        }
    }
    for (policy, served) in [(Unattributed::HoldAll, false), (Unattributed::Serve, true)] {
        let mut r: Reconciler<Loose> = Reconciler::new(policy);
        r.step(vec![cluster("web", true)], |_| Vec::new());
        let out = r.step(vec![cluster("api", true)], |_| vec![Loose]);
        assert_eq!(r.serves(&key("api")), served, "{policy:?}: {out:?}");
    }
}
