//! The controller loop: batches of object changes through the incremental translation into
//! the compiled snapshot, published to every Envoy of this replica; statuses to the
//! [`StatusHub`]; Envoy rejections attributed to the objects they came from.
//!
//! Nothing is published before every watch has listed once: a replica that has seen the
//! Ingresses but not yet the EndpointSlices would send Envoys that move to it routes without
//! endpoints. After that, each batch (hold-off, maximum delay: see [`crate::inbox`]) is
//! applied whole; the translation leaves out what is broken, with an error naming the
//! object and field, and serves the rest.
//!
//! Secrets keep their data only while the translation refers to them
//! ([`xdsc_kube::translator::Translator::referenced`]): a TLS Secret nothing refers to is
//! known by name only. When something starts referring to a Secret that was seen, it is
//! read from the API server before the batch is compiled, so no snapshot goes out with the
//! certificate missing.
//!
//! Not here: the watches ([`crate::watch`]), status writing ([`crate::status`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::{Client, ResourceExt};
use xdsc_core::compile::Compiled;
use xdsc_core::model::{Change, ObjectKey};
use xdsc_kube::status::ObjectStatus;
use xdsc_kube::translate::{Diagnostic, KubeKind, KubeObject, ObjectRef, Options};
use xdsc_kube::translator::{ObjectChange, Translator};
use xdsc_server::{Publisher, Rejections};

use crate::health::Board;
use crate::inbox::{Inbox, Timing};
use crate::kinds::Resources;
use crate::status::StatusHub;
use crate::watch::strip;

/// How long reading a newly referenced Secret may hold a batch up.
const SECRET_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What one batch changed, with the transient diagnostics of its two passes netted out.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) changes: Vec<Change>,
    pub(crate) added: Vec<Diagnostic>,
    pub(crate) removed: Vec<Diagnostic>,
    pub(crate) statuses: Vec<(ObjectRef, Option<ObjectStatus>)>,
}

/// Accumulates the deltas of the passes of one batch.
#[derive(Default)]
struct Merged {
    changes: BTreeMap<ObjectKey, Change>,
    diagnostics: BTreeMap<Diagnostic, i32>,
    statuses: BTreeMap<ObjectRef, Option<ObjectStatus>>,
}

impl Merged {
    fn add(&mut self, d: xdsc_kube::translator::TranslationDelta) {
        for c in d.changes {
            let key = match &c {
                Change::Upsert(o) => o.key(),
                Change::Delete(k) => k.clone(),
            };
            self.changes.insert(key, c);
        }
        for x in d.diagnostics_added {
            *self.diagnostics.entry(x).or_default() += 1;
        }
        for x in d.diagnostics_removed {
            *self.diagnostics.entry(x).or_default() -= 1;
        }
        self.statuses.extend(d.statuses);
    }

    fn finish(self) -> Outcome {
        let mut out = Outcome {
            changes: self.changes.into_values().collect(),
            statuses: self.statuses.into_iter().collect(),
            ..Outcome::default()
        };
        for (d, n) in self.diagnostics {
            match n {
                1.. => out.added.push(d),
                ..0 => out.removed.push(d),
                0 => {}
            }
        }
        out
    }
}

/// The translation, the compiled snapshot and what is known of Secrets. Pure: no I/O.
pub(crate) struct Core {
    translator: Translator,
    compiled: Compiled,
    /// TLS Secrets that exist in the cluster (seen by their watch).
    secrets_seen: BTreeSet<ObjectRef>,
    /// Secrets whose data the translator holds.
    secrets_held: BTreeSet<ObjectRef>,
    pending: Merged,
}

impl Core {
    pub(crate) fn new(options: Options) -> Core {
        Core {
            translator: Translator::new(options),
            compiled: Compiled::default(),
            secrets_seen: BTreeSet::new(),
            secrets_held: BTreeSet::new(),
            pending: Merged::default(),
        }
    }

    pub(crate) fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// First pass of a batch: everything but Secrets, then the Secrets the translation now
    /// refers to. Returns the Secrets referred to and seen whose data must be read.
    pub(crate) fn apply(&mut self, batch: Vec<ObjectChange>) -> Vec<ObjectRef> {
        let (secrets, others): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|c| c.id().kind == KubeKind::Secret);
        let d = self.translator.apply(others);
        self.pending.add(d);
        let wanted: BTreeSet<ObjectRef> = self
            .translator
            .referenced(KubeKind::Secret)
            .cloned()
            .collect();
        let mut second = Vec::new();
        let mut in_batch = BTreeSet::new();
        for change in secrets {
            let id = change.id();
            in_batch.insert(id.clone());
            match change {
                ObjectChange::Upsert { .. } => {
                    self.secrets_seen.insert(id.clone());
                    if wanted.contains(&id) {
                        self.secrets_held.insert(id);
                        second.push(change);
                    } else if self.secrets_held.remove(&id) {
                        second.push(ObjectChange::Delete(id));
                    }
                }
                ObjectChange::Delete(_) => {
                    self.secrets_seen.remove(&id);
                    if self.secrets_held.remove(&id) {
                        second.push(change);
                    }
                }
            }
        }
        let unwanted: Vec<ObjectRef> = self
            .secrets_held
            .iter()
            .filter(|s| !wanted.contains(*s))
            .cloned()
            .collect();
        for id in unwanted {
            self.secrets_held.remove(&id);
            second.push(ObjectChange::Delete(id));
        }
        if !second.is_empty() {
            let d = self.translator.apply(second);
            self.pending.add(d);
        }
        wanted
            .into_iter()
            .filter(|s| {
                self.secrets_seen.contains(s)
                    && !self.secrets_held.contains(s)
                    && !in_batch.contains(s)
            })
            .collect()
    }

    /// Second pass: Secrets read because they became referenced (`None`: not found).
    pub(crate) fn apply_read(&mut self, read: Vec<(ObjectRef, Option<KubeObject>)>) {
        let mut changes = Vec::new();
        for (id, object) in read {
            match object {
                Some(o) => {
                    self.secrets_held.insert(id);
                    changes.push(ObjectChange::upsert(o, None));
                }
                None => {
                    self.secrets_seen.remove(&id);
                }
            }
        }
        if !changes.is_empty() {
            let d = self.translator.apply(changes);
            self.pending.add(d);
        }
    }

    /// Compiles what the passes changed; returns it.
    pub(crate) fn finish(&mut self) -> Outcome {
        let out = std::mem::take(&mut self.pending).finish();
        if !out.changes.is_empty() {
            self.compiled = self.compiled.apply(out.changes.clone());
        }
        out
    }

    /// The Kubernetes objects whose Envoy resources the rejections name, each with one
    /// message (Envoy's detail, with the node and type).
    pub(crate) fn attribute(
        &self,
        rejections: &[xdsc_server::Rejection],
    ) -> BTreeMap<ObjectRef, String> {
        let mut out: BTreeMap<ObjectRef, String> = BTreeMap::new();
        let model = self.compiled.model();
        for r in rejections {
            let n = &r.nack;
            // Envoy's detail usually names the resource it failed on; when it names some of
            // the rejected resources, only their objects are blamed.
            let snapshot = self.compiled.snapshot();
            let named: Vec<&ObjectKey> = n
                .resources
                .iter()
                .filter(|name| n.detail.contains(&***name))
                .filter_map(|name| snapshot.get(n.resource_type, name))
                .flat_map(|res| res.provenance())
                .collect();
            let keys: Vec<&ObjectKey> = if named.is_empty() {
                n.provenance.iter().collect()
            } else {
                named
            };
            let message = format!(
                "Envoy {} rejected the {} update: {}",
                r.node, n.resource_type, n.detail
            );
            for key in keys {
                let Some(object) = model.get(key) else {
                    continue;
                };
                for s in object.provenance() {
                    let id = ObjectRef {
                        kind: s.kind.clone(),
                        namespace: s.namespace.clone(),
                        name: s.name.clone(),
                    };
                    out.entry(id).or_insert_with(|| message.clone());
                }
            }
        }
        out
    }
}

/// What the loop needs.
pub(crate) struct Loop {
    pub(crate) core: Core,
    pub(crate) inbox: Arc<Inbox>,
    pub(crate) board: Arc<Board>,
    pub(crate) hub: Arc<StatusHub>,
    pub(crate) resources: Arc<Resources>,
    pub(crate) client: Client,
    pub(crate) publisher: Publisher,
    pub(crate) rejections: Rejections,
    pub(crate) fleet: String,
    pub(crate) timing: Timing,
    pub(crate) metrics: Arc<dyn Fn(f64, usize) + Send + Sync>,
}

impl Loop {
    /// Runs for ever.
    pub(crate) async fn run(mut self) {
        // Until every watch has listed once, nothing is translated: the first batch is the
        // whole cluster.
        let waiting = Instant::now();
        let mut logged = Instant::now();
        while !self.board.synced() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if logged.elapsed() > Duration::from_secs(10) {
                let unsynced: Vec<String> = self
                    .board
                    .unsynced()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                tracing::info!(waiting_for = ?unsynced, waited_s = waiting.elapsed().as_secs(), "waiting for the first list of every watch");
                logged = Instant::now();
            }
        }
        let first = self.inbox.take();
        self.step(first, true).await;
        let mut nacks = self.rejections.subscribe();
        loop {
            tokio::select! {
                batch = self.inbox.next_batch(self.timing) => self.step(batch, false).await,
                changed = nacks.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    self.attribute();
                }
            }
        }
    }

    fn attribute(&self) {
        let rejected = self.core.attribute(&self.rejections.current());
        self.board
            .counters
            .rejected_objects
            .store(rejected.len() as u64, Ordering::Relaxed);
        for (id, why) in &rejected {
            tracing::warn!(object = %id, error = %why, "Envoy rejected configuration built from this object");
        }
        self.hub.set_rejected(rejected);
    }

    async fn step(&mut self, batch: crate::inbox::Batch, first: bool) {
        let started = Instant::now();
        let counters = &self.board.counters;
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters
            .batch_objects
            .fetch_add(batch.changes.len() as u64, Ordering::Relaxed);
        counters
            .coalesced
            .fetch_add(batch.coalesced, Ordering::Relaxed);
        counters
            .pending_max
            .fetch_max(batch.changes.len() as u64, Ordering::Relaxed);
        let objects = batch.changes.len();
        let before = self.core.compiled().snapshot().version();
        let mut core = std::mem::replace(&mut self.core, Core::new(Options::default()));
        let (c, fetch) = run_blocking(move || {
            let fetch = core.apply(batch.changes);
            (core, fetch)
        })
        .await;
        core = c;
        if !fetch.is_empty() {
            counters
                .secret_fetches
                .fetch_add(fetch.len() as u64, Ordering::Relaxed);
            let read = self.read_secrets(fetch).await;
            core = run_blocking(move || {
                core.apply_read(read);
                core
            })
            .await;
        }
        let (c, outcome) = run_blocking(move || {
            let out = core.finish();
            (core, out)
        })
        .await;
        self.core = c;
        let took = started.elapsed();
        counters
            .translate_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        counters
            .pending
            .store(self.inbox.len() as u64, Ordering::Relaxed);
        (self.metrics)(took.as_secs_f64(), objects);
        for d in &outcome.added {
            if d.severity == xdsc_kube::translate::Severity::Error {
                tracing::error!(diagnostic = %d, "configuration error");
            } else {
                tracing::warn!(diagnostic = %d, "configuration warning");
            }
        }
        for d in &outcome.removed {
            tracing::info!(diagnostic = %d, "cleared");
        }
        let snapshot = self.core.compiled().snapshot();
        let version = snapshot.version();
        if first || version != before {
            tracing::info!(
                fleet = %self.fleet,
                %version,
                objects,
                changed = outcome.changes.len(),
                translate_ms = took.as_secs_f64() * 1000.0,
                "publishing snapshot"
            );
            self.publisher.publish(&self.fleet, snapshot.clone());
            self.board.set_published();
        } else {
            tracing::debug!(
                objects,
                translate_ms = took.as_secs_f64() * 1000.0,
                "batch changed no resource"
            );
        }
        if !outcome.statuses.is_empty() {
            self.hub.computed(outcome.statuses);
        }
        if !outcome.changes.is_empty() && !self.rejections.current().is_empty() {
            self.attribute();
        }
    }

    /// Reads Secrets that became referenced, at most 8 at once, each bounded in time.
    async fn read_secrets(&self, ids: Vec<ObjectRef>) -> Vec<(ObjectRef, Option<KubeObject>)> {
        let Some((ar, _)) = self.resources.get(KubeKind::Secret.as_str()) else {
            return Vec::new();
        };
        futures::stream::iter(ids)
            .map(|id| {
                let ar = ar.clone();
                let client = self.client.clone();
                async move {
                    let api: Api<DynamicObject> = Api::namespaced_with(
                        client,
                        id.namespace.as_deref().unwrap_or("default"),
                        &ar,
                    );
                    let got = tokio::time::timeout(SECRET_READ_TIMEOUT, api.get_opt(&id.name)).await;
                    let object = match got {
                        Ok(Ok(Some(mut obj))) => {
                            strip(&mut obj);
                            obj.types = Some(kube::api::TypeMeta {
                                api_version: ar.api_version.clone(),
                                kind: ar.kind.clone(),
                            });
                            let name = obj.name_any();
                            match serde_json::to_value(&obj)
                                .map_err(|e| e.to_string())
                                .and_then(|v| KubeObject::from_value(v).map_err(|e| e.to_string()))
                            {
                                Ok(o) => Some(o),
                                Err(e) => {
                                    tracing::warn!(secret = %name, error = %e, "cannot read the Secret");
                                    None
                                }
                            }
                        }
                        Ok(Ok(None)) => None,
                        Ok(Err(e)) => {
                            tracing::warn!(secret = %id, error = %e, "cannot read a newly referenced Secret; its next watch event brings it");
                            return (id, None);
                        }
                        Err(_) => {
                            tracing::warn!(secret = %id, "reading a newly referenced Secret timed out; its next watch event brings it");
                            return (id, None);
                        }
                    };
                    (id, object)
                }
            })
            .buffer_unordered(8)
            .collect()
            .await
    }
}

async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(t) => t,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> KubeObject {
        KubeObject::from_value(v).unwrap()
    }

    fn ingress(secret: Option<&str>) -> KubeObject {
        let mut spec =
            json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}});
        if let Some(s) = secret {
            spec["tls"] = json!([{"hosts": ["a.example"], "secretName": s}]);
        }
        obj(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "shop"}, "spec": spec}),
        )
    }

    fn secret(name: &str) -> KubeObject {
        // Not a valid certificate; the translation reports it but still reads it.
        obj(
            json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": "shop"},
            "data": {"tls.crt": "Y3J0", "tls.key": "a2V5"}}),
        )
    }

    fn held(core: &Core) -> Vec<String> {
        core.translator
            .inputs()
            .iter()
            .filter(|(id, _)| id.kind == KubeKind::Secret)
            .map(|(id, _)| id.name.clone())
            .collect()
    }

    #[test]
    fn only_referenced_secrets_keep_their_data() {
        let mut core = Core::new(Options::default());
        let fetch = core.apply(vec![
            ObjectChange::upsert(ingress(Some("a")), None),
            ObjectChange::upsert(secret("a"), None),
            ObjectChange::upsert(secret("b"), None),
        ]);
        core.finish();
        assert!(fetch.is_empty(), "a came with the batch");
        assert_eq!(held(&core), ["a"], "b is known by name only");
        // The Ingress moves to b: b must be read, a is dropped.
        let fetch = core.apply(vec![ObjectChange::upsert(ingress(Some("b")), None)]);
        assert_eq!(fetch, [ObjectRef::new("Secret", Some("shop"), "b")]);
        core.apply_read(vec![(fetch[0].clone(), Some(secret("b")))]);
        let out = core.finish();
        assert_eq!(held(&core), ["b"]);
        assert!(
            !out.added
                .iter()
                .any(|d| d.to_string().contains("does not exist")),
            "the transient 'missing Secret' of the first pass is netted out: {:?}",
            out.added
        );
        // No more TLS: nothing held.
        core.apply(vec![ObjectChange::upsert(ingress(None), None)]);
        core.finish();
        assert!(held(&core).is_empty());
        // A Secret referred to but never seen is not read.
        assert!(
            core.apply(vec![ObjectChange::upsert(ingress(Some("c")), None)])
                .is_empty()
        );
    }
}
