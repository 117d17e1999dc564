//! The watches: one task per kind, with a kube-runtime `watcher` per namespace watched (or
//! one for the whole cluster), each event turned into an upsert or delete in the
//! [`Inbox`].
//!
//! Memory is a feature: before anything is kept, `managedFields` and the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation are dropped, and the status
//! of the kinds the controller writes goes to the status writer (as the observed status)
//! instead of into the translation. Secrets are watched with the field selector
//! `type=kubernetes.io/tls` and EndpointSlices with the `kubernetes.io/service-name` label;
//! which Secrets keep their data is decided by the controller loop.
//!
//! A relist (after 410 Gone, or a watch that cannot resume) loses nothing and duplicates
//! nothing: each watch keeps the identity and resourceVersion of every object it knows (not
//! the object: the translation holds that), so a relist forwards only objects that changed
//! and deletes those that went away in the gap, as kube-runtime's reflector does with a
//! store of whole objects. An object that no longer parses keeps its last good version in
//! the translation; the error is logged and shown in `/debug/sources`.
//!
//! Not here: batching ([`crate::inbox`]), readiness ([`crate::health`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, TypeMeta};
use kube::discovery::Scope;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use xdsc_kube::translate::{KubeObject, ObjectRef};

use crate::health::{Board, WatchId};
use crate::inbox::Inbox;
use crate::kinds::{Resources, WatchedKind};
use crate::status::StatusHub;

/// The annotation `kubectl apply` writes: a second copy of the object, never read here.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// How often a kind the API server does not serve is looked for again.
const UNSERVED_RECHECK: Duration = Duration::from_secs(30);

/// What the watch tasks share.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) inbox: Arc<Inbox>,
    pub(crate) board: Arc<Board>,
    pub(crate) hub: Arc<StatusHub>,
    pub(crate) resources: Arc<Resources>,
}

/// What one watch knows: identity and resourceVersion of each object, and, during a list,
/// which of them the list has shown.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    known: BTreeMap<ObjectRef, String>,
    listing: Option<BTreeSet<ObjectRef>>,
}

impl Tracker {
    /// A list starts.
    pub(crate) fn init(&mut self) {
        self.listing = Some(BTreeSet::new());
    }

    /// An object is at `rv`; whether that is news (a relist shows unchanged objects again).
    pub(crate) fn apply(&mut self, id: &ObjectRef, rv: &str) -> bool {
        if let Some(seen) = &mut self.listing {
            seen.insert(id.clone());
        }
        match self.known.get(id) {
            Some(old) if old == rv => false,
            _ => {
                self.known.insert(id.clone(), rv.to_owned());
                true
            }
        }
    }

    /// An object is gone; whether it was known.
    pub(crate) fn delete(&mut self, id: &ObjectRef) -> bool {
        self.known.remove(id).is_some()
    }

    /// The list is complete: the objects it did not show are gone (deleted while the watch
    /// could not see it); they are returned and forgotten.
    pub(crate) fn init_done(&mut self) -> Vec<ObjectRef> {
        let Some(seen) = self.listing.take() else {
            return Vec::new();
        };
        let gone: Vec<ObjectRef> = self
            .known
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for k in &gone {
            self.known.remove(k);
        }
        gone
    }

    pub(crate) fn len(&self) -> usize {
        self.known.len()
    }
}

/// Drops what is never read: managed fields and the last-applied annotation.
pub(crate) fn strip(obj: &mut DynamicObject) {
    obj.metadata.managed_fields = None;
    if let Some(a) = obj.metadata.annotations.as_mut() {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            obj.metadata.annotations = None;
        }
    }
}

fn not_served(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 404,
        kube::Error::Discovery(_) => true,
        _ => false,
    }
}

/// One watch of the kind's task.
struct One {
    id: WatchId,
    tracker: Tracker,
    started: Instant,
}

/// The scopes a kind is watched in: cluster-scoped kinds get one cluster-wide watch, except
/// Namespaces themselves, which are watched by name.
fn scopes(kind: &WatchedKind, namespaces: Vec<Option<String>>) -> Vec<Option<String>> {
    let cluster_wide = !kind.namespaced && kind.kind() != "Namespace";
    if cluster_wide { vec![None] } else { namespaces }
}

fn ids(kind: &WatchedKind, scopes: &[Option<String>]) -> Vec<WatchId> {
    scopes
        .iter()
        .map(|ns| WatchId {
            kind: kind.kind().to_owned(),
            namespace: ns.clone(),
        })
        .collect()
}

/// Puts every watch of every kind on the board before any starts: until each has listed,
/// the board is not synced, so the first batch is the whole cluster and readiness waits.
pub(crate) fn register(board: &Board, kinds: &[WatchedKind], namespaces: &[Option<String>]) {
    for kind in kinds {
        for id in ids(kind, &scopes(kind, namespaces.to_vec())) {
            board.add(id);
        }
    }
}

/// Runs the watches of one kind for ever: discovery, then a watcher per namespace (`None`:
/// every namespace; cluster-scoped kinds get one cluster-wide watcher, except Namespaces
/// themselves, which are watched by name).
///
/// Its watches must be on the board already ([`register`]), so that no batch is cut before
/// every watch of every kind has listed once, however late this task first runs.
pub(crate) async fn run_kind(shared: Shared, kind: WatchedKind, namespaces: Vec<Option<String>>) {
    let scopes = scopes(&kind, namespaces);
    let ids = ids(&kind, &scopes);
    let (ar, namespaced) = resolve(&shared, &kind, &ids).await;
    shared.resources.insert(kind.kind(), ar.clone(), namespaced);
    let mut streams = Vec::new();
    for (i, ns) in scopes.iter().enumerate() {
        let api: Api<DynamicObject> = match ns {
            Some(ns) if namespaced => Api::namespaced_with(shared.client.clone(), ns, &ar),
            _ => Api::all_with(shared.client.clone(), &ar),
        };
        shared
            .board
            .set_path(&ids[i], api.resource_url().to_owned());
        let mut config = watcher::Config::default();
        let mut fields: Vec<String> = kind.fields.iter().map(|f| (*f).to_owned()).collect();
        if let (Some(ns), false) = (ns, namespaced) {
            fields.push(format!("metadata.name={ns}"));
        }
        if !fields.is_empty() {
            config = config.fields(&fields.join(","));
        }
        if let Some(l) = kind.labels {
            config = config.labels(l);
        }
        streams.push(
            watcher::watcher(api, config)
                .default_backoff()
                .map(move |e| (i, e))
                .boxed(),
        );
    }
    let mut watches: Vec<One> = ids
        .into_iter()
        .map(|id| One {
            id,
            tracker: Tracker::default(),
            started: Instant::now(),
        })
        .collect();
    let mut merged = futures::stream::select_all(streams);
    let handler = Handler {
        shared: &shared,
        kind: &kind,
        ar: &ar,
        namespaced,
    };
    while let Some((i, event)) = merged.next().await {
        handler.on_event(&mut watches[i], event);
    }
}

/// Asks discovery for the kind until it answers; a kind not served is reported as such and
/// looked for again every 30 s.
async fn resolve(shared: &Shared, kind: &WatchedKind, ids: &[WatchId]) -> (ApiResource, bool) {
    let mut logged = false;
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut found = None;
        for gvk in &kind.versions {
            match kube::discovery::pinned_kind(&shared.client, gvk).await {
                Err(e) if not_served(&e) => continue,
                other => {
                    found = Some(other);
                    break;
                }
            }
        }
        let found = found.unwrap_or_else(|| {
            Err(kube::Error::Discovery(
                kube::error::DiscoveryError::MissingKind(kind.gvk.kind.clone()),
            ))
        });
        match found {
            Ok((ar, caps)) => {
                for id in ids {
                    shared.board.update(id, |w| w.resolved(Instant::now()));
                }
                tracing::debug!(kind = %kind.gvk.kind, api_version = %ar.api_version, "watching");
                return (ar, caps.scope == Scope::Namespaced);
            }
            Err(e) if not_served(&e) => {
                if !logged {
                    let versions: Vec<String> =
                        kind.versions.iter().map(|v| v.api_version()).collect();
                    tracing::warn!(kind = %kind.gvk.kind, ?versions, "the API server does not serve this kind (is its CRD installed?); looking again every 30s");
                    logged = true;
                }
                let why = format!("{} is not served by the API server", kind.gvk.kind);
                for id in ids {
                    shared.board.update(id, |w| w.unavailable(why.clone()));
                }
                tokio::time::sleep(UNSERVED_RECHECK).await;
            }
            Err(e) => {
                tracing::warn!(kind = %kind.gvk.kind, error = %e, "discovery failed; retrying");
                for id in ids {
                    shared
                        .board
                        .update(id, |w| w.error(Instant::now(), format!("discovery: {e}")));
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

struct Handler<'a> {
    shared: &'a Shared,
    kind: &'a WatchedKind,
    ar: &'a ApiResource,
    namespaced: bool,
}

impl Handler<'_> {
    fn on_event(&self, w: &mut One, event: Result<Event<DynamicObject>, watcher::Error>) {
        let now = Instant::now();
        let board = &self.shared.board;
        match event {
            Ok(Event::Init) => {
                w.tracker.init();
                w.started = now;
                let relist = board.update(&w.id, |s| {
                    let relist = s.synced();
                    s.listing(now);
                    relist
                });
                if relist == Some(true) {
                    tracing::info!(watch = %w.id, "relisting");
                } else {
                    tracing::debug!(watch = %w.id, "listing");
                }
            }
            Ok(Event::InitApply(obj)) => self.apply(w, obj),
            Ok(Event::InitDone) => {
                let gone = w.tracker.init_done();
                for id in &gone {
                    self.forget(w, id.clone());
                }
                let objects = w.tracker.len();
                board.update(&w.id, |s| s.listed(now, objects));
                tracing::info!(watch = %w.id, objects, deleted_while_away = gone.len(), took_ms = now.duration_since(w.started).as_millis() as u64, "watch synced");
            }
            Ok(Event::Apply(obj)) => {
                self.apply(w, obj);
                let objects = w.tracker.len();
                board.update(&w.id, |s| s.event(now, objects));
            }
            Ok(Event::Delete(obj)) => {
                let id = self.id_of(&obj);
                if w.tracker.delete(&id) {
                    self.forget(w, id);
                }
                let objects = w.tracker.len();
                board.update(&w.id, |s| s.event(now, objects));
            }
            Err(e) => {
                tracing::warn!(watch = %w.id, error = %e, "watch request failed; backing off");
                board.update(&w.id, |s| s.error(now, e.to_string()));
            }
        }
    }

    fn id_of(&self, obj: &DynamicObject) -> ObjectRef {
        let ns = if self.namespaced {
            Some(obj.namespace().unwrap_or_else(|| "default".into()))
        } else {
            None
        };
        ObjectRef {
            kind: self.kind.kind().to_owned(),
            namespace: ns,
            name: obj.name_any(),
        }
    }

    fn apply(&self, w: &mut One, mut obj: DynamicObject) {
        let id = self.id_of(&obj);
        let rv = obj.resource_version().unwrap_or_default();
        if !w.tracker.apply(&id, &rv) {
            return;
        }
        strip(&mut obj);
        if self.kind.status {
            let status = obj.data.as_object_mut().and_then(|m| m.remove("status"));
            self.shared.hub.observe(&id, &rv, status);
        }
        obj.types = Some(TypeMeta {
            api_version: self.ar.api_version.clone(),
            kind: self.ar.kind.clone(),
        });
        let name = id.qualified_name();
        let parsed = serde_json::to_value(&obj)
            .map_err(|e| e.to_string())
            .and_then(|v| KubeObject::from_value(v).map_err(|e| e.to_string()));
        match parsed {
            Ok(o) => {
                self.shared
                    .board
                    .update(&w.id, |s| s.set_invalid(name, None));
                self.shared.inbox.upsert(o);
            }
            Err(e) => {
                tracing::warn!(object = %id, error = %e, "cannot read the object; its last good version (if any) stays in use");
                self.shared
                    .board
                    .update(&w.id, |s| s.set_invalid(name, Some(e)));
            }
        }
    }

    fn forget(&self, w: &mut One, id: ObjectRef) {
        let name = id.qualified_name();
        self.shared
            .board
            .update(&w.id, |s| s.set_invalid(name, None));
        if self.kind.status {
            self.shared.hub.forget(&id);
        }
        self.shared.inbox.delete(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_watch_is_on_the_board_before_any_starts() {
        let board = Board::new(
            Duration::from_secs(30),
            crate::activity::Activity::default(),
        );
        let kinds = crate::kinds::watched();
        let namespaces = vec![Some("shop".to_owned()), Some("web".to_owned())];
        register(&board, &kinds, &namespaces);
        let unsynced = board.unsynced();
        // Namespaced kinds once per namespace, Namespaces by name, other cluster kinds once.
        for kind in &kinds {
            let n = unsynced.iter().filter(|id| id.kind == kind.kind()).count();
            let expected = if kind.namespaced || kind.kind() == "Namespace" {
                2
            } else {
                1
            };
            assert_eq!(n, expected, "{}", kind.kind());
        }
        // One watch listing is not the cluster listed: no batch may be cut yet.
        board.update(&unsynced[0], |w| w.listed(Instant::now(), 1));
        assert!(!board.synced());
        for id in &unsynced {
            board.update(id, |w| w.listed(Instant::now(), 0));
        }
        assert!(board.synced());
    }

    fn r(name: &str) -> ObjectRef {
        ObjectRef::new("Service", Some("ns"), name)
    }

    #[test]
    fn a_relist_forwards_changes_only_and_deletes_what_went_away() {
        let mut t = Tracker::default();
        t.init();
        assert!(t.apply(&r("a"), "1"));
        assert!(t.apply(&r("b"), "2"));
        assert_eq!(t.init_done(), vec![]);
        assert!(t.apply(&r("a"), "3"), "a watch event");
        // 410: relist. b was deleted in the gap, c created, a unchanged.
        t.init();
        assert!(!t.apply(&r("a"), "3"), "unchanged: not forwarded again");
        assert!(t.apply(&r("c"), "5"));
        assert_eq!(t.init_done(), vec![r("b")]);
        assert_eq!(t.len(), 2);
        assert!(t.delete(&r("a")));
        assert!(!t.delete(&r("a")));
    }

    #[test]
    fn stripping_drops_managed_fields_and_last_applied_only() {
        let mut obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {
                "name": "web",
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
                "annotations": {LAST_APPLIED: "{\"big\": true}", "keep": "me"},
            },
            "spec": {"ports": [{"port": 80}]},
        }))
        .unwrap();
        strip(&mut obj);
        let v = serde_json::to_value(&obj).unwrap();
        assert!(v["metadata"].get("managedFields").is_none());
        assert_eq!(
            v["metadata"]["annotations"],
            serde_json::json!({"keep": "me"})
        );
        assert_eq!(v["spec"]["ports"][0]["port"], 80);
    }
}
