//! The source runtime both binaries share: batching in time ([`Debounce`]: a hold-off and a
//! maximum delay), the last-good rule ([`Reconciler`]: what of a batch of model changes is
//! served), and what a source reports ([`Sink`], [`Report`], [`SourceStatus`], readiness).
//!
//! A source (files, a Kubernetes controller) turns what it watches into batches of model
//! changes, incrementally: it never hands over "the whole set". It calls
//! [`Reconciler::step`] with each batch and publishes the snapshot when the outcome says so.
//!
//! # The last-good rule, per object
//!
//! Changes not yet served are *pending*, one per model object (a newer change replaces an
//! older one). A step compiles the served configuration with every pending change. If that
//! brings no error the served configuration lacks (errors are compared by
//! [`Finding::identity`], which leaves out line and column), everything is applied. Else each
//! new error is traced to the pending changes it is about: the change of its own model
//! object, of the object a dangling reference names, of the model objects whose provenance
//! names its source object (a Kubernetes object), or of those read from its file. Those
//! changes are held back and the rest is tried again, until no new error comes from a
//! pending change; once something is held, a new dangling reference (a cluster deleted that
//! a held virtual host still uses) also holds the change that causes it, so what is held
//! keeps what it refers to. Held changes stay pending and are tried with every later batch, so a fix
//! applies them, and a later good change of the same object replaces them.
//!
//! What a user can expect: a broken Ingress holds back that Ingress's virtual host, not the
//! endpoint updates of the same second; a broken file holds back that file's objects, not
//! another file saved with it. A new error that no pending change explains (an object that
//! did not change now refers to one that is gone, and the deletion is what was applied) is
//! decided by [`Unattributed`]: files hold the whole batch back (a file can be fixed; a
//! Kubernetes object deleted from the cluster cannot be kept alive), a controller serves it
//! and reports it. At startup there is no last good configuration: the first batch is served
//! with whatever compiles.
//!
//! Not here: reading files, watching the API server, translating (the sources), serving
//! (the rest of this crate).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;
use xdsc_core::compile::Compiled;
use xdsc_core::diagnostic::{Diagnostic, Problem, Subject};
use xdsc_core::model::{Change, Kind, Object, ObjectKey};
use xdsc_core::snapshot::Snapshot;

/// Timing of a source's batches.
///
/// ```
/// let t = xdsc_server::source::Timing::default();
/// assert_eq!((t.hold_off.as_millis(), t.max_delay.as_millis()), (100, 1000));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Quiet time after the last event before a batch is taken (default 100 ms).
    pub hold_off: Duration,
    /// The longest a batch waits after the first event of a burst (default 1 s).
    pub max_delay: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            hold_off: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }
}

/// When to take a batch, without a clock of its own: events in, a deadline out.
///
/// ```
/// use std::time::{Duration, Instant};
/// use xdsc_server::source::{Debounce, Timing};
/// let t0 = Instant::now();
/// let mut d = Debounce::new(Timing::default());
/// assert_eq!(d.deadline(), None);
/// d.event(t0);
/// d.event(t0 + Duration::from_millis(50));
/// assert_eq!(d.deadline(), Some(t0 + Duration::from_millis(150)));
/// // A burst that never pauses is taken at the maximum delay.
/// for i in 0..30 { d.event(t0 + Duration::from_millis(50 * i)); }
/// assert_eq!(d.deadline(), Some(t0 + Duration::from_secs(1)));
/// assert!(d.due(t0 + Duration::from_secs(1)));
/// d.taken();
/// assert_eq!(d.deadline(), None);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Debounce {
    timing: Timing,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Debounce {
    /// Nothing pending.
    pub fn new(timing: Timing) -> Debounce {
        Debounce {
            timing,
            first: None,
            last: None,
        }
    }

    /// An event arrived at `now`.
    pub fn event(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When the pending batch is due: the hold-off after the last event, or the maximum
    /// delay after the first, whichever comes first; `None` when nothing is pending.
    pub fn deadline(&self) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + self.timing.hold_off).min(first + self.timing.max_delay))
    }

    /// Whether a pending batch is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }

    /// The batch was taken.
    pub fn taken(&mut self) {
        self.first = None;
        self.last = None;
    }
}

/// A diagnostic as a source reports it, for the last-good rule.
pub trait Finding: Clone {
    /// Whether it is an error (only errors hold changes back).
    fn is_error(&self) -> bool;
    /// What makes it "the same error" across reloads: everything but line and column.
    fn identity(&self) -> String;
    /// The object it is about, if any.
    fn subject(&self) -> Option<&Subject>;
    /// The problem, if it is one of the core's.
    fn problem(&self) -> Option<&Problem>;
    /// The file it is in, if any (matched against provenance origins `FILE:LINE:COLUMN`).
    fn file(&self) -> Option<String> {
        None
    }
}

/// The core's diagnostics, as a controller reports them.
impl Finding for Diagnostic {
    fn is_error(&self) -> bool {
        Diagnostic::is_error(self)
    }
    fn identity(&self) -> String {
        self.to_string()
    }
    fn subject(&self) -> Option<&Subject> {
        Some(&self.object)
    }
    fn problem(&self) -> Option<&Problem> {
        Some(&self.problem)
    }
}

/// What to do with a new error that no pending change explains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unattributed {
    /// Hold the whole batch back (files: the user fixes the file).
    #[default]
    HoldAll,
    /// Serve it and report it (a cluster: what was deleted is gone).
    Serve,
}

/// What one step did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<D> {
    /// Changes were applied; `held` of them are held back, for `new_errors`.
    Applied {
        /// How many objects were added, changed or removed.
        changed: usize,
        /// How many pending changes are held back.
        held: usize,
        /// The new errors of the held changes (empty when nothing is held).
        new_errors: Vec<D>,
    },
    /// Nothing differs from what is served.
    Unchanged,
    /// Every pending change is held back: they bring errors the served configuration lacks.
    HeldBack {
        /// The new errors.
        new_errors: Vec<D>,
    },
}

/// The served configuration and the last-good rule (see the module docs), without I/O.
///
/// ```
/// use std::sync::Arc;
/// use xdsc_core::diagnostic::Diagnostic;
/// use xdsc_core::model::{Change, Cluster, Object};
/// use xdsc_server::source::{Outcome, Reconciler, Unattributed};
/// let report = |c: &xdsc_core::compile::Compiled| c.diagnostics().to_vec();
/// let mut r: Reconciler<Diagnostic> = Reconciler::new(Unattributed::Serve);
/// let web = Change::Upsert(Arc::new(Object::Cluster(Cluster::new("web"))));
/// assert!(matches!(r.step(vec![web.clone()], report), Outcome::Applied { changed: 1, .. }));
/// assert_eq!(r.step(vec![web], report), Outcome::Unchanged);
/// let mut bad = Cluster::new("api");
/// bad.connect_timeout = Some(xdsc_core::model::Duration::from_millis(0));
/// let api = Change::Upsert(Arc::new(Object::Cluster(bad)));
/// let db = Change::Upsert(Arc::new(Object::Cluster(Cluster::new("db"))));
/// // The broken cluster is held back; the good one beside it is served.
/// let Outcome::Applied { changed: 1, held: 1, .. } = r.step(vec![api, db], report) else { panic!() };
/// assert_eq!(r.snapshot().len(), 4); // web and db: a cluster and its endpoints each
/// assert_eq!(r.pending(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct Reconciler<D> {
    compiled: Compiled,
    served: Vec<D>,
    newest: Vec<D>,
    held_errors: Vec<D>,
    pending: BTreeMap<ObjectKey, Change>,
    unattributed: Unattributed,
    started: bool,
}

impl<D: Finding> Default for Reconciler<D> {
    fn default() -> Self {
        Reconciler::new(Unattributed::default())
    }
}

/// Whether a change's object (new, or the served one it replaces or deletes) is what a
/// finding is about.
fn concerns<D: Finding>(d: &D, key: &ObjectKey, objects: [Option<&Object>; 2]) -> bool {
    if d.subject().and_then(Subject::model) == Some(key) {
        return true;
    }
    if let Some(Problem::Dangling(target)) = d.problem()
        && target == key
    {
        return true;
    }
    let source = d.subject().and_then(Subject::source);
    let file = d.file().map(|f| format!("{f}:"));
    objects.into_iter().flatten().any(|o| {
        o.provenance().iter().any(|s| {
            source
                .is_some_and(|r| s.kind == r.kind && s.namespace == r.namespace && s.name == r.name)
                || file.as_ref().is_some_and(|f| {
                    s.origin
                        .as_deref()
                        .is_some_and(|o| o.starts_with(f.as_str()))
                })
        })
    })
}

impl<D: Finding> Reconciler<D> {
    /// Nothing served yet.
    pub fn new(unattributed: Unattributed) -> Reconciler<D> {
        Reconciler {
            compiled: Compiled::default(),
            served: Vec::new(),
            newest: Vec::new(),
            held_errors: Vec::new(),
            pending: BTreeMap::new(),
            unattributed,
            started: false,
        }
    }

    /// Takes a batch of model changes and decides what is served. `report` lists every
    /// finding of a candidate compilation (the source's own and the compiler's).
    pub fn step(
        &mut self,
        changes: Vec<Change>,
        report: impl Fn(&Compiled) -> Vec<D>,
    ) -> Outcome<D> {
        for c in changes {
            self.pending.insert(c.key(), c);
        }
        let model = self.compiled.model();
        self.pending.retain(|k, c| match c {
            Change::Upsert(o) => model
                .get(k)
                .is_none_or(|old| !std::sync::Arc::ptr_eq(old, o) && old != o),
            Change::Delete(_) => model.get(k).is_some(),
        });
        let known: BTreeSet<String> = self.served.iter().map(Finding::identity).collect();
        let mut trying = self.pending.clone();
        let mut held_errors: Vec<D> = Vec::new();
        // Errors already traced to held changes: a source's own finding (a file that does not
        // parse) stays in later candidates, explained, and is not served as known.
        let mut explained: BTreeSet<String> = BTreeSet::new();
        loop {
            let candidate = if trying.is_empty() {
                self.compiled.clone()
            } else {
                self.compiled.apply(trying.values().cloned())
            };
            let found = report(&candidate);
            let new_errors: Vec<D> = if self.started {
                // Once something is held, a change that leaves a reference dangling (the
                // deletion of a cluster a held virtual host still uses) is held too, even
                // where the compiler only warns.
                let holding = !explained.is_empty();
                let blocks = |d: &D| {
                    d.is_error() || (holding && matches!(d.problem(), Some(Problem::Dangling(_))))
                };
                found
                    .iter()
                    .filter(|d| blocks(d) && !known.contains(&d.identity()))
                    .filter(|d| !explained.contains(&d.identity()))
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            };
            let culprits: BTreeSet<ObjectKey> = trying
                .iter()
                .filter(|(k, c)| {
                    let new = match c {
                        Change::Upsert(o) => Some(&**o),
                        Change::Delete(_) => None,
                    };
                    let old = self.compiled.model().get(k).map(|o| &**o);
                    new_errors.iter().any(|d| concerns(d, k, [new, old]))
                })
                .map(|(k, _)| k.clone())
                .collect();
            // A cluster held keeps its endpoints (the endpoints of a cluster belong with it).
            let mut culprits = culprits;
            let endpoints: Vec<ObjectKey> = (culprits.iter())
                .filter(|k| k.kind == Kind::Cluster)
                .map(|k| ObjectKey::new(Kind::Endpoints, k.name.clone()))
                .filter(|k| trying.contains_key(k))
                .collect();
            culprits.extend(endpoints);
            let unexplained = !new_errors.is_empty() && culprits.is_empty();
            if new_errors.is_empty() || (unexplained && self.unattributed == Unattributed::Serve) {
                let changed = trying.len();
                for k in trying.keys() {
                    self.pending.remove(k);
                }
                self.newest = found.clone();
                self.compiled = candidate;
                self.served = found
                    .into_iter()
                    .filter(|d| !explained.contains(&d.identity()))
                    .collect();
                self.started = true;
                self.held_errors = held_errors.clone();
                if changed == 0 && self.pending.is_empty() {
                    return Outcome::Unchanged;
                }
                if changed == 0 {
                    return Outcome::HeldBack {
                        new_errors: held_errors,
                    };
                }
                return Outcome::Applied {
                    changed,
                    held: self.pending.len(),
                    new_errors: held_errors,
                };
            }
            explained.extend(new_errors.iter().map(Finding::identity));
            held_errors.extend(new_errors);
            if unexplained {
                trying.clear();
            } else {
                trying.retain(|k, _| !culprits.contains(k));
            }
            if trying.is_empty() {
                self.newest = found;
                self.held_errors = held_errors.clone();
                return Outcome::HeldBack {
                    new_errors: held_errors,
                };
            }
        }
    }

    /// The served compilation.
    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// The served snapshot.
    pub fn snapshot(&self) -> &Snapshot {
        self.compiled.snapshot()
    }

    /// The findings of the served configuration.
    pub fn served_diagnostics(&self) -> &[D] {
        &self.served
    }

    /// The findings of the newest candidate, served or not.
    pub fn newest_diagnostics(&self) -> &[D] {
        &self.newest
    }

    /// The errors that hold pending changes back.
    pub fn held_errors(&self) -> &[D] {
        &self.held_errors
    }

    /// How many changes are held back.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether an object is served.
    pub fn serves(&self, key: &ObjectKey) -> bool {
        self.compiled.model().get(key).is_some()
    }
}

/// A source's state, for `/debug/snapshot` (under `sources`) and the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SourceStatus {
    /// The kind of source: `files`, `kubernetes`.
    pub kind: String,
    /// What it reads (paths, or the API server and namespaces).
    pub paths: Vec<String>,
    /// Batches taken.
    pub reloads: u64,
    /// The version of the served snapshot.
    pub served_version: String,
    /// `serving_newest`, `held_back` (changes wait for a fix) or `starting`.
    pub state: SourceState,
    /// The errors that hold changes back, when some are.
    pub held_back_errors: Option<Vec<String>>,
    /// Errors of the newest batch.
    pub errors: Vec<String>,
    /// Warnings of the newest batch.
    pub warnings: Vec<String>,
    /// Objects of kinds that carry no routing, by kind (counted, not warned about).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ignored: BTreeMap<String, usize>,
}

/// See [`SourceStatus::state`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Nothing served yet.
    #[default]
    Starting,
    /// Every change is served.
    ServingNewest,
    /// Some changes are held back.
    HeldBack,
}

impl SourceStatus {
    /// The source's findings in the status: served (or newest) errors and warnings, and the
    /// errors that hold changes back.
    pub fn set_findings<D: Finding + std::fmt::Display>(&mut self, r: &Reconciler<D>) {
        let text = |ds: &[D], errors: bool| -> Vec<String> {
            ds.iter()
                .filter(|d| d.is_error() == errors)
                .map(ToString::to_string)
                .collect()
        };
        let held = text(r.held_errors(), true);
        self.state = if r.pending() > 0 {
            SourceState::HeldBack
        } else {
            SourceState::ServingNewest
        };
        self.held_back_errors = (r.pending() > 0).then_some(held);
        self.errors = text(r.newest_diagnostics(), true);
        self.warnings = text(r.newest_diagnostics(), false);
        self.served_version = r.snapshot().version().to_string();
    }

    /// Whether the source has served a first configuration (readiness).
    pub fn ready(&self) -> bool {
        self.state != SourceState::Starting
    }
}

/// Where a source publishes and reports.
pub trait Sink: Send + 'static {
    /// A new snapshot to serve.
    fn publish(&mut self, snapshot: Snapshot);
    /// The model now served (after [`Sink::publish`]), for what only the model knows: where
    /// each object was read. Cheap to keep: it shares structure with the next one.
    fn served(&mut self, model: &xdsc_core::model::Model) {
        let _ = model;
    }
    /// A batch was taken.
    fn report(&mut self, report: Report<'_>);
}

/// What one batch did, for a [`Sink`].
#[derive(Debug)]
pub struct Report<'a> {
    /// How many objects were applied (0 when nothing was).
    pub changed: usize,
    /// Whether changes were held back for new errors.
    pub held_back: bool,
    /// Whether it is the same as the previous batch's outcome (a rescan of an unchanged
    /// broken set): count it once.
    pub repeated: bool,
    /// How long reading, translating and compiling took.
    pub took: Duration,
    /// Where the batch's time went, phase by phase in order (the source's own names: a file
    /// source's `look`, `parse`, `translate`, `compile`, `publish`, ...), including what
    /// came after `took` was taken; empty when the source does not say.
    pub phases: &'a [(&'static str, Duration)],
    /// The source's state.
    pub status: &'a SourceStatus,
}

#[cfg(test)]
mod tests;
